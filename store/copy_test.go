package store_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5"

	"partnerd/store"
	"partnerd/store/storetest"
)

type copyEvent struct{}

func (copyEvent) EventType() string { return "test.copy" }

// copyRows copies n rows into a table copy_target through the Copier and
// writes an audit row and an outbox row through the Tx, all in one
// transaction that fails with failWith when it is not nil.
func copyRows(st *store.Store, n int, failWith error) error {
	return st.InCopyTx(context.Background(), func(tx *store.Tx, cp *store.Copier) error {
		if err := tx.DB.Exec(`CREATE TABLE IF NOT EXISTS copy_target (n int)`).Error; err != nil {
			return err
		}
		i := 0
		copied, err := cp.CopyFrom(tx.Context(), pgx.Identifier{"copy_target"}, []string{"n"}, pgx.CopyFromFunc(func() ([]any, error) {
			if i == n {
				return nil, nil
			}
			i++
			return []any{i}, nil
		}))
		if err != nil {
			return err
		}
		if copied != int64(n) {
			return errors.New("short copy")
		}
		// The gorm handle sees what COPY wrote: same connection, same transaction.
		var seen int64
		if err := tx.DB.Raw(`SELECT count(*) FROM copy_target`).Scan(&seen).Error; err != nil {
			return err
		}
		if seen < int64(n) {
			return errors.New("the Tx does not see the copied rows")
		}
		if err := tx.Audit("test.copy", 0, nil, map[string]int{"n": n}); err != nil {
			return err
		}
		if err := tx.Emit(copyEvent{}); err != nil {
			return err
		}
		return failWith
	})
}

func TestInCopyTx_CommitsCopyAuditAndOutboxTogether(t *testing.T) {
	st := storetest.New(t, store.Options{})
	count := func(q string) int64 {
		t.Helper()
		var n int64
		if err := st.DB.Raw(q).Scan(&n).Error; err != nil {
			return -1
		}
		return n
	}
	boom := errors.New("boom")
	if err := copyRows(st, 100, boom); !errors.Is(err, boom) {
		t.Fatalf("got %v, want the function's error", err)
	}
	if n := count(`SELECT count(*) FROM copy_target`); n != -1 {
		t.Errorf("the table created in a failed copy transaction exists (%d rows)", n)
	}
	if n := count(`SELECT count(*) FROM audit_log WHERE action = 'test.copy'`) + count(`SELECT count(*) FROM outbox WHERE event_type = 'test.copy'`); n != 0 {
		t.Errorf("%d audit/outbox rows survived a rolled-back copy transaction", n)
	}

	if err := copyRows(st, 250, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(`SELECT count(*) FROM copy_target`); n != 250 {
		t.Errorf("%d rows copied, want 250", n)
	}
	if n := count(`SELECT count(*) FROM audit_log WHERE action = 'test.copy'`) + count(`SELECT count(*) FROM outbox WHERE event_type = 'test.copy'`); n != 2 {
		t.Errorf("%d audit+outbox rows, want 2", n)
	}
	// The connection went back to the pool healthy: the pool still works.
	if err := st.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}
