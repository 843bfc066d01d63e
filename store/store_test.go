package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"partnerd/store"
	"partnerd/store/storetest"
)

type testEvent struct {
	N int `json:"n"`
}

func (testEvent) EventType() string { return "test.event" }

func TestInTx_RetriesSerializationFailuresAndDeadlocks(t *testing.T) {
	st := storetest.New(t, store.Options{})
	for _, code := range []string{"40001", "40P01"} {
		attempts := 0
		err := st.InTx(context.Background(), func(tx *store.Tx) error {
			attempts++
			if err := tx.Emit(testEvent{N: attempts}); err != nil {
				return err
			}
			if attempts < 3 {
				return fmt.Errorf("wrapped: %w", &pgconn.PgError{Code: code})
			}
			return nil
		})
		if err != nil || attempts != 3 {
			t.Fatalf("%s: err=%v attempts=%d, want success on the 3rd attempt", code, err, attempts)
		}
	}
	// Only the committed attempts left rows: one per code.
	var n int64
	st.DB.Raw("SELECT count(*) FROM outbox").Scan(&n)
	if n != 2 {
		t.Fatalf("outbox rows = %d, want 2 (the failed attempts rolled back)", n)
	}
}

func TestInTx_GivesUpAfterBoundedAttempts(t *testing.T) {
	st := storetest.New(t, store.Options{})
	attempts := 0
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		attempts++
		return &pgconn.PgError{Code: "40001"}
	})
	if err == nil || !store.IsRetryable(err) || attempts < 2 || attempts > 10 {
		t.Fatalf("err=%v attempts=%d", err, attempts)
	}
}

func TestInTx_OtherErrorsAreNotRetried(t *testing.T) {
	st := storetest.New(t, store.Options{})
	attempts := 0
	boom := errors.New("boom")
	err := st.InTx(context.Background(), func(tx *store.Tx) error {
		attempts++
		if err := tx.Audit("test.action", 0, nil, map[string]any{"x": 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || attempts != 1 {
		t.Fatalf("err=%v attempts=%d", err, attempts)
	}
	var n int64
	st.DB.Raw("SELECT count(*) FROM audit_log").Scan(&n)
	if n != 0 {
		t.Fatalf("audit rows = %d after a rolled-back change, want 0", n)
	}
}

func TestAuditAndEmit_RecordActorRequestAndPayload(t *testing.T) {
	st := storetest.New(t, store.Options{})
	ctx := store.WithRequestID(store.WithActor(context.Background(), store.Actor{UserID: 0, Label: "tester"}), "req-42")
	err := st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Audit("thing.change", 0, map[string]any{"a": 1}, map[string]any{"a": 2}); err != nil {
			return err
		}
		return tx.Emit(testEvent{N: 7})
	})
	if err != nil {
		t.Fatal(err)
	}
	var audit struct {
		Actor, Action, RequestID string
		Before, After            string
	}
	st.DB.Raw("SELECT actor, action, request_id, before::text AS before, after::text AS after FROM audit_log").Scan(&audit)
	if audit.Actor != "tester" || audit.Action != "thing.change" || audit.RequestID != "req-42" || audit.Before != `{"a": 1}` || audit.After != `{"a": 2}` {
		t.Fatalf("audit row: %+v", audit)
	}
	var ob struct {
		EventType, Payload, RequestID string
	}
	st.DB.Raw("SELECT event_type, payload::text AS payload, request_id FROM outbox").Scan(&ob)
	if ob.EventType != "test.event" || ob.Payload != `{"n": 7}` || ob.RequestID != "req-42" {
		t.Fatalf("outbox row: %+v", ob)
	}
	if _, err := st.SQL.Exec("DELETE FROM audit_log"); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("deleting audit rows: %v", err)
	}
}

func TestEnsureDatabase_CreatesOnceThenMigrates(t *testing.T) {
	ctx := context.Background()
	base := storetest.BaseURL()
	name := fmt.Sprintf("partnerd_ensure_%d", uniq())
	url := strings.Replace(base, "/postgres?", "/"+name+"?", 1)
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, base)
		if err == nil {
			_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			_ = c.Close(ctx)
		}
	})
	created, err := store.EnsureDatabase(ctx, url)
	if err != nil || !created {
		t.Fatalf("first: created=%v err=%v", created, err)
	}
	created, err = store.EnsureDatabase(ctx, url)
	if err != nil || created {
		t.Fatalf("second: created=%v err=%v", created, err)
	}
	st, err := store.Open(ctx, url, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// Two migrations at once serialize on goose's lock; both succeed.
	errs := make(chan error, 2)
	for i := 0; i < 2; i++ {
		go func() { errs <- store.Migrate(ctx, st.SQL) }()
	}
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatalf("migrate: %v", err)
		}
	}
	var n int
	st.DB.Raw("SELECT count(*) FROM information_schema.tables WHERE table_name IN ('accounts','users','api_tokens','audit_log','outbox')").Scan(&n)
	if n != 5 {
		t.Fatalf("tables after migrate: %d", n)
	}
}
