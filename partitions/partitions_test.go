package partitions_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"partnerd/partitions"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

type env struct {
	st    *store.Store
	clock *storetest.Clock
	keep  *partitions.Service
}

func newEnv(t *testing.T, now time.Time, opts partitions.Options) *env {
	t.Helper()
	clk := storetest.NewClock(now)
	st := testkit.NewStore(t, store.Options{Clock: clk})
	return &env{st: st, clock: clk, keep: partitions.New(st, opts, slog.New(slog.NewTextHandler(io.Discard, nil)))}
}

func (e *env) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := e.st.SQL.ExecContext(context.Background(), q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.st.SQL.QueryRowContext(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// partitionsOf lists table's partitions.
func (e *env) partitionsOf(t *testing.T, table string) []string {
	t.Helper()
	rows, err := e.st.SQL.Query(`SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY 1`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func (e *env) maintain(t *testing.T) partitions.Report {
	t.Helper()
	rep, err := e.keep.Maintain(context.Background())
	if err != nil {
		t.Fatalf("maintain: %v", err)
	}
	return rep
}

// A run creates every table's months from the current one through Ahead
// months ahead; a second run creates nothing.
func TestMaintain_CreatesMonthsAhead(t *testing.T) {
	e := newEnv(t, ts("2031-11-20T10:00:00Z"), partitions.Options{Ahead: 2})
	rep := e.maintain(t)
	for _, table := range []string{"expenditures", "audit_log", "outbox", "deliveries", "delivery_attempts"} {
		for _, m := range []string{"203111", "203112", "203201"} {
			name := table + "_p" + m
			if !slices.Contains(rep.Created, name) || !slices.Contains(e.partitionsOf(t, table), name) {
				t.Errorf("%s not created: %v", name, rep.Created)
			}
		}
		if slices.Contains(e.partitionsOf(t, table), table+"_p203202") {
			t.Errorf("%s: a month beyond Ahead was created", table)
		}
	}
	// Each partition's primary key is its id, so the planner knows an id
	// matches one row even in a month without statistics yet.
	for _, part := range []string{"deliveries_p203112", "outbox_p203201", "expenditures_p203111", "delivery_attempts_default"} {
		var cols string
		if err := e.st.SQL.QueryRow(`SELECT string_agg(a.attname, ',') FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = $1::regclass AND i.indisprimary`, part).Scan(&cols); err != nil || cols != "id" {
			t.Errorf("%s: primary key on %q (%v), want id", part, cols, err)
		}
	}
	if again := e.maintain(t); len(again.Created) != 0 || len(again.Dropped) != 0 {
		t.Fatalf("second run: %+v", again)
	}
	// Rows of those months go to their partitions, not the default.
	e.exec(t, `INSERT INTO outbox (event_type, payload, created_at) VALUES ('x', '{}', '2031-12-31T23:59:59.999999Z')`)
	if n := e.count(t, `SELECT count(*) FROM outbox_p203112`); n != 1 {
		t.Fatalf("outbox_p203112 holds %d rows", n)
	}
}

// Rows that landed in a default partition (no month existed for them) move
// into the month's partition once it is created, the audit log's too, and
// the audit log is append-only again afterwards.
func TestMaintain_MovesRowsOutOfTheDefaultPartition(t *testing.T) {
	e := newEnv(t, ts("2026-11-20T10:00:00Z"), partitions.Options{})
	e.exec(t, `INSERT INTO expenditures (external_id, customer_id, owner_id, product_code, billing_mode, usage_at, month, list_amount, actual_amount)
		VALUES ('late-1', 1, 1, 'ecs', 'PAY_PER_USE', '2019-03-05T00:00:00Z', 201903, 1, 1),
		       ('late-2', 1, 1, 'ecs', 'PAY_PER_USE', '2019-04-05T00:00:00Z', 201904, 2, 2)`)
	e.exec(t, `INSERT INTO audit_log (at, actor, action) VALUES ('2019-03-05T00:00:00Z', 'test', 'old.entry')`)
	if n := e.count(t, `SELECT count(*) FROM expenditures_default`); n != 2 {
		t.Fatalf("default holds %d records, want 2", n)
	}
	rep := e.maintain(t)
	for _, want := range []string{"expenditures_p201903", "expenditures_p201904", "audit_log_p201903"} {
		if !slices.Contains(rep.Created, want) {
			t.Errorf("%s not created: %v", want, rep.Created)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM expenditures_default`) + e.count(t, `SELECT count(*) FROM audit_log_default`); n != 0 {
		t.Fatalf("%d rows left in the default partitions", n)
	}
	if n := e.count(t, `SELECT count(*) FROM expenditures_p201903 WHERE external_id = 'late-1'`); n != 1 {
		t.Fatal("late-1 is not in its month")
	}
	if n := e.count(t, `SELECT count(*) FROM audit_log_p201903`); n != 1 {
		t.Fatal("the old audit entry is not in its month")
	}
	// The unique key holds across the move: the same record again is refused.
	if _, err := e.st.SQL.Exec(`INSERT INTO expenditures (external_id, customer_id, owner_id, product_code, billing_mode, usage_at, month, list_amount, actual_amount)
		VALUES ('late-1', 1, 1, 'ecs', 'PAY_PER_USE', '2019-03-05T00:00:00Z', 201903, 1, 1)`); store.PgCode(err) != "23505" {
		t.Fatalf("a duplicate record: %v", err)
	}
	e.exec(t, `INSERT INTO audit_log (at, actor, action) VALUES ('2018-01-05T00:00:00Z', 'test', 'waiting.entry')`)
	for _, q := range []string{`UPDATE audit_log SET action = 'changed'`, `DELETE FROM audit_log`,
		`UPDATE audit_log_default SET action = 'changed'`, `UPDATE audit_log_p201903 SET action = 'changed'`} {
		if _, err := e.st.SQL.Exec(q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("%s: %v, want the append-only refusal", q, err)
		}
	}
}

// Outbox and delivery months past their retention are dropped, deliveries
// with their attempts, but only once none of their rows is live; a month
// within its retention, the audit log and expenditure records are kept.
// Inbox messages outlive their deliveries.
func TestMaintain_DropsMonthsPastRetention(t *testing.T) {
	e := newEnv(t, ts("2026-11-20T10:00:00Z"), partitions.Options{OutboxRetention: 7 * 24 * time.Hour, DeliveryRetention: 30 * 24 * time.Hour})
	// September: past both retentions. October: within the deliveries' 30
	// days (it ended 20 days ago), past the outbox's 7.
	var ids []int64
	for _, at := range []string{"2026-09-10T00:00:00Z", "2026-09-11T00:00:00Z", "2026-10-10T00:00:00Z"} {
		var id int64
		if err := e.st.SQL.QueryRow(`INSERT INTO outbox (event_type, payload, created_at, dispatched_at, settled_at)
			VALUES ('credit.allocated', '{}', $1, $1, $1) RETURNING id`, at).Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	e.exec(t, `UPDATE outbox SET settled_at = NULL WHERE id = $1`, ids[1]) // September's second row still owes its consumers
	account := testkit.NewTreeOn(t, e.st).C1.Account.ID
	delivery := func(key, at, status string) int64 {
		var id int64
		sent := "NULL"
		if status == "SENT" {
			sent = "now()"
		}
		if err := e.st.SQL.QueryRow(`INSERT INTO deliveries (key, outbox_id, event_at, event_type, channel, account_id, locale, subject, body_text, status, sent_at)
			VALUES ($1, 1, $2, 'credit.allocated', 'IN_SITE', $3, 'en-US', 's', 'b', $4, `+sent+`) RETURNING id`, key, at, account, status).Scan(&id); err != nil {
			t.Fatal(err)
		}
		e.exec(t, `INSERT INTO delivery_attempts (delivery_id, n, channel, started_at, outcome, event_at) VALUES ($1, 1, 'IN_SITE', now(), 'SENT', $2)`, id, at)
		return id
	}
	sept := delivery("a", "2026-09-10T00:00:00Z", "SENT")
	pending := delivery("b", "2026-09-12T00:00:00Z", "PENDING")
	delivery("c", "2026-10-10T00:00:00Z", "SENT")
	e.exec(t, `INSERT INTO inbox_messages (delivery_id, account_id, event_type, subject, body) VALUES ($1, $2, 'credit.allocated', 's', 'b')`, sept, account)
	e.exec(t, `INSERT INTO audit_log (at, actor, action) VALUES ('2026-09-05T00:00:00Z', 'test', 'old.entry')`)
	e.exec(t, `INSERT INTO expenditures (external_id, customer_id, owner_id, product_code, billing_mode, usage_at, month, list_amount, actual_amount)
		VALUES ('sept', 1, 1, 'ecs', 'PAY_PER_USE', '2026-09-05T00:00:00Z', 202609, 1, 1)`)

	rep := e.maintain(t)
	if !slices.Contains(rep.Dropped, "outbox_p202610") || !slices.Contains(rep.Kept, "outbox_p202609") ||
		!slices.Contains(rep.Kept, "deliveries_p202609") || len(rep.Dropped) != 1 {
		t.Fatalf("first run: %+v", rep)
	}
	if n := e.count(t, `SELECT count(*) FROM outbox WHERE id = ANY($1)`, ids); n != 2 {
		t.Fatalf("%d outbox rows left, want September's 2", n)
	}

	// Once everything in September is settled and final, it goes, with its
	// attempts; October's deliveries are still within their 30 days.
	e.exec(t, `UPDATE outbox SET settled_at = now() WHERE id = $1`, ids[1])
	e.exec(t, `UPDATE deliveries SET status = 'FAILED' WHERE id = $1`, pending)
	rep = e.maintain(t)
	slices.Sort(rep.Dropped)
	if want := []string{"deliveries_p202609", "delivery_attempts_p202609", "outbox_p202609"}; !slices.Equal(rep.Dropped, want) || len(rep.Kept) != 0 {
		t.Fatalf("second run: %+v, want dropped %v", rep, want)
	}
	if n := e.count(t, `SELECT count(*) FROM deliveries`); n != 1 {
		t.Fatalf("%d deliveries left, want October's", n)
	}
	if n := e.count(t, `SELECT count(*) FROM delivery_attempts`); n != 1 {
		t.Fatalf("%d attempts left, want October's", n)
	}
	if n := e.count(t, `SELECT count(*) FROM inbox_messages`); n != 1 {
		t.Fatal("the inbox message went with its delivery")
	}
	if n := e.count(t, `SELECT count(*) FROM audit_log WHERE action = 'old.entry'`) + e.count(t, `SELECT count(*) FROM expenditures WHERE external_id = 'sept'`); n != 2 {
		t.Fatal("an audit entry or an expenditure record was dropped")
	}

	// A month's deliveries go once their retention has passed.
	e.clock.Set(ts("2026-12-05T00:00:00Z"))
	rep = e.maintain(t)
	if !slices.Contains(rep.Dropped, "deliveries_p202610") || !slices.Contains(rep.Dropped, "delivery_attempts_p202610") {
		t.Fatalf("third run: %+v", rep)
	}
}

// Two keepers at once (two schedulers) create each partition once, without
// an error.
func TestMaintain_TwoAtOnce(t *testing.T) {
	e := newEnv(t, ts("2033-05-20T10:00:00Z"), partitions.Options{Ahead: 6})
	other := partitions.New(e.st, partitions.Options{Ahead: 6}, nil)
	errs := make(chan error, 2)
	reps := make(chan partitions.Report, 2)
	for _, k := range []*partitions.Service{e.keep, other} {
		go func() {
			rep, err := k.Maintain(context.Background())
			errs <- err
			reps <- rep
		}()
	}
	created := 0
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("maintain: %v", err)
		}
		created += len((<-reps).Created)
	}
	if created != 5*7 {
		t.Fatalf("created %d partitions in all, want %d", created, 5*7)
	}
}

// A lock the keeper cannot get in time (a long transaction reading the
// table) makes it give that month up with an error, not wait for it.
func TestMaintain_GivesUpOnALockHeldTooLong(t *testing.T) {
	e := newEnv(t, ts("2026-09-15T10:00:00Z"), partitions.Options{OutboxRetention: time.Hour, LockTimeout: 200 * time.Millisecond})
	e.exec(t, `INSERT INTO outbox (event_type, payload, created_at, dispatched_at, settled_at)
		VALUES ('x', '{}', '2026-09-10T00:00:00Z', now(), now())`)
	e.maintain(t) // creates September (from the default partition)
	e.clock.Set(ts("2026-11-20T10:00:00Z"))
	tx, err := e.st.SQL.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.Exec(`SELECT count(*) FROM outbox`); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rep, err := e.keep.Maintain(context.Background())
	if err == nil || !strings.Contains(err.Error(), "outbox_p202609") || slices.Contains(rep.Dropped, "outbox_p202609") {
		t.Fatalf("maintain with the table held: %+v, %v", rep, err)
	}
	if waited := time.Since(start); waited > 30*time.Second {
		t.Fatalf("waited %v", waited)
	}
	_ = tx.Rollback()
	if rep := e.maintain(t); !slices.Contains(rep.Dropped, "outbox_p202609") {
		t.Fatalf("after the transaction ended: %+v", rep)
	}
}

func TestName(t *testing.T) {
	if got := partitions.Name("outbox", ts("2027-01-31T23:00:00Z")); got != "outbox_p202701" {
		t.Fatal(got)
	}
}
