package invariants_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/credit"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// The tests below replay, deterministically, interleavings that
// TestInvariants found. Each orders two concurrent calls by holding a
// credit row in a transaction of the test's own: the first call queues on
// it, the second queues behind the first, and the hold is released once
// both wait (seen in pg_stat_activity, polled with a deadline).

// raceFixture is the standard tree with C1 (under R1) ACTIVE with 100 of
// credit and a budget, and a pending unbinding C1 asked for.
type raceFixture struct {
	*testkit.Tree
	credit    *credit.Service
	spend     *spend.Service
	lifecycle *lifecycle.Service
	unbinding *lifecycle.Unbinding
	usage     time.Time
}

func newRaceFixture(t *testing.T) *raceFixture {
	t.Helper()
	clk := storetest.NewClock(start)
	st := testkit.NewStore(t, store.Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tr := testkit.NewTreeOn(t, st)
	f := &raceFixture{Tree: tr, credit: credit.New(st, beijing), spend: spend.New(st, beijing).WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		lifecycle: lifecycle.New(st, lifecycle.Options{Location: beijing}), usage: start.Add(time.Minute)}
	g := guard.New(st, guard.Options{Location: beijing, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	c1 := tr.C1.Account.ID
	_, err := f.credit.SetLimit(tr.Platform.Ctx, tr.D1.Account.ID, decimal.NewFromInt(10000))
	ok("set limit", err)
	_, err = f.credit.Allocate(tr.D1.Ctx, tr.R1.Account.ID, decimal.NewFromInt(1000))
	ok("fund R1", err)
	_, err = f.credit.Allocate(tr.R1.Ctx, c1, decimal.NewFromInt(100))
	ok("fund C1", err)
	_, err = g.SetBudget(tr.R1.Ctx, guardBudget(c1, decimal.NewFromInt(1000), models.OverspendNone))
	ok("budget", err)
	_, err = g.Unfreeze(tr.R1.Ctx, c1)
	ok("unfreeze", err)
	clk.Advance(time.Hour)
	// This month's running totals exist already, so a later ingestion
	// only updates them.
	f.ingest(t, "early", "1")
	f.unbinding, err = f.lifecycle.RequestUnbinding(tr.C1.Ctx, c1)
	ok("request unbinding", err)
	clk.Advance(time.Minute)
	return f
}

func (f *raceFixture) ingest(t *testing.T, ext, actual string) error {
	t.Helper()
	d := decimal.RequireFromString(actual)
	_, err := f.spend.IngestRecords(f.Platform.Ctx, []spend.Record{{ExternalID: ext, CustomerID: f.C1.Account.ID, ProductCode: "ecs",
		BillingMode: models.PayPerUse, UsageAt: f.usage, List: d, Actual: d}})
	return err
}

// hold locks account id's credit row in a transaction of its own until
// the returned function is called.
func hold(t *testing.T, st *store.Store, id int64) func() {
	t.Helper()
	ctx := context.Background()
	tx, err := st.SQL.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `SELECT 1 FROM credit_balances WHERE account_id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	return func() { _ = tx.Commit() }
}

// job is a call running in the background.
type job struct {
	done chan struct{}
	err  error
}

func background(fn func() error) *job {
	j := &job{done: make(chan struct{})}
	go func() {
		defer close(j.done)
		j.err = fn()
	}()
	return j
}

func (j *job) finished() bool {
	select {
	case <-j.done:
		return true
	default:
		return false
	}
}

func (j *job) wait() error {
	<-j.done
	return j.err
}

// waitForWaiters polls until n sessions of the test's database wait for a
// lock, or the last job started is over (it did not need to wait).
func waitForWaiters(t *testing.T, st *store.Store, n int, last *job) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !last.finished() {
		var waiting int
		if err := st.DB.Raw(`SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`).
			Scan(&waiting).Error; err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sessions wait for a lock after 30 s, want %d", waiting, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// confirm confirms the fixture's unbinding as R1 in the background.
func (f *raceFixture) confirm() *job {
	return background(func() error {
		_, err := f.lifecycle.ConfirmUnbinding(f.R1.Ctx, f.unbinding.ID)
		return err
	})
}

// TestRace_AllocationDuringUnbinding: R1 allocates credit to C1 while C1's
// unbinding is being confirmed. credit.Allocate reads C1 without a lock
// (accounts.GetInScope) and then waits for the credit rows the
// confirmation holds (credit.ReleaseAllocation); once the confirmation has
// made C1 a PERSONAL account under the platform, the allocation goes on
// with what it read: R1's allocated credit grows by credit given to an
// account that is no longer its child, and the personal account holds an
// allocation nobody can reverse (it is outside R1's scope). The same
// happens with a reversal, and with a migration's credit.Transfer instead
// of the unbinding. DOMAIN.md §3: a partner's allocated credit is what it
// allocated to its children.
func TestRace_AllocationDuringUnbinding(t *testing.T) {
	f := newRaceFixture(t)
	c1, r1 := f.C1.Account.ID, f.R1.Account.ID
	release := hold(t, f.Store, r1)
	confirmed := f.confirm()
	waitForWaiters(t, f.Store, 1, confirmed)
	allocated := background(func() error {
		_, err := f.credit.Allocate(f.R1.Ctx, c1, decimal.NewFromInt(50))
		return err
	})
	waitForWaiters(t, f.Store, 2, allocated)
	release()
	if err := confirmed.wait(); err != nil {
		t.Fatalf("confirm unbinding: %v", err)
	}
	allocErr := allocated.wait()

	var got struct {
		Kind            string
		Limit           decimal.Decimal
		R1Allocated     decimal.Decimal
		R1ChildrenLimit decimal.Decimal
	}
	if err := f.Store.DB.Raw(`SELECT a.kind, b.credit_limit AS limit,
			(SELECT allocated FROM credit_balances WHERE account_id = ?) AS r1_allocated,
			(SELECT coalesce(sum(cb.credit_limit), 0) FROM accounts x JOIN credit_balances cb ON cb.account_id = x.id WHERE x.parent_id = ?) AS r1_children_limit
		FROM accounts a JOIN credit_balances b ON b.account_id = a.id WHERE a.id = ?`, r1, r1, c1).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	if got.Kind != string(models.KindPersonal) {
		t.Fatalf("C1 is %s after its unbinding, want PERSONAL", got.Kind)
	}
	if !got.Limit.IsZero() || !got.R1Allocated.Equal(got.R1ChildrenLimit) {
		t.Errorf("BUG credit.move races an unbinding: the allocation answered %v after C1 left R1; C1 (now PERSONAL) holds %s of credit "+
			"and R1 has allocated %s while its children hold %s — an allocation must re-check, under its locks, that the child is still the partner's",
			allocErr, got.Limit, got.R1Allocated, got.R1ChildrenLimit)
	}
}

// TestRace_IngestionDuringUnbinding: records of C1 are ingested while
// C1's unbinding is being confirmed. The ingestion's credit.UpdateArrears
// selects C1's credit row joined with its account (kind = 'CUSTOMER') FOR
// UPDATE OF the credit row only: it waits for the confirmation, and
// PostgreSQL then re-checks the new credit row against the account row it
// had read, still a CUSTOMER. It flags the account, PERSONAL by now, in
// arrears (its limit was released to 0), and nothing ever clears the flag
// (UpdateArrears ignores personal accounts), so no partner can invite it
// again: lifecycle.Invite refuses "the account has unpaid arrears".
func TestRace_IngestionDuringUnbinding(t *testing.T) {
	f := newRaceFixture(t)
	c1 := f.C1.Account.ID
	release := hold(t, f.Store, c1)
	confirmed := f.confirm()
	waitForWaiters(t, f.Store, 1, confirmed)
	ingested := background(func() error { return f.ingest(t, "late", "150") })
	waitForWaiters(t, f.Store, 2, ingested)
	release()
	if err := confirmed.wait(); err != nil {
		t.Fatalf("confirm unbinding: %v", err)
	}
	if err := ingested.wait(); err != nil {
		t.Fatalf("ingest: %v", err)
	}
	var a struct {
		Kind      string
		InArrears bool
	}
	if err := f.Store.DB.Raw(`SELECT a.kind, b.in_arrears FROM accounts a JOIN credit_balances b ON b.account_id = a.id WHERE a.id = ?`, c1).
		Scan(&a).Error; err != nil {
		t.Fatal(err)
	}
	if a.Kind != string(models.KindPersonal) {
		t.Fatalf("C1 is %s after its unbinding, want PERSONAL", a.Kind)
	}
	_, inviteErr := f.lifecycle.Invite(f.S1.Ctx, f.C1.User.Email)
	if a.InArrears || inviteErr != nil {
		t.Errorf("BUG credit.UpdateArrears races an unbinding: the personal account C1 is flagged in arrears (%v) and S1's invitation answers %v — "+
			"UpdateArrears must re-check the account's kind under its lock (lock the account, or FOR UPDATE of both rows)", a.InArrears, inviteErr)
	}
}

// TestRace_AllocationDuringMigration: D2 allocates credit to C5 while a
// batch moving C5 from D2 to S1 executes. credit.Allocate reads C5 under
// D2 without a lock and waits for D2's credit row, which the execution's
// credit.Transfer holds; once C5 is S1's customer with the batch's credit,
// the allocation goes on: D2's allocated credit counts credit of a
// customer it no longer has, and C5's limit exceeds what S1 allocated to
// it (DOMAIN.md §3, §6).
func TestRace_AllocationDuringMigration(t *testing.T) {
	clk := storetest.NewClock(start)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := testkit.NewStore(t, store.Options{Clock: clk, Logger: quiet})
	tr := testkit.NewTreeOn(t, st)
	cr := credit.New(st, beijing)
	g := guard.New(st, guard.Options{Location: beijing, Log: quiet})
	mig := migration.New(st, migration.Options{Location: beijing, Log: quiet})
	reviewer := tr.AddUser(t, tr.Platform.Account, models.RoleReviewer)
	c5, d2, s1 := tr.C5.Account.ID, tr.D2.Account.ID, tr.S1.Account.ID
	ok := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	for _, p := range []int64{d2, s1} {
		_, err := cr.SetLimit(tr.Platform.Ctx, p, decimal.NewFromInt(10000))
		ok("set limit", err)
	}
	_, err := cr.Allocate(tr.D2.Ctx, c5, decimal.NewFromInt(100))
	ok("fund C5", err)
	_, err = g.SetBudget(tr.D2.Ctx, guardBudget(c5, decimal.NewFromInt(1000), models.OverspendNone))
	ok("budget", err)
	_, err = g.Unfreeze(tr.D2.Ctx, c5)
	ok("unfreeze", err)
	clk.Advance(time.Hour)
	b, err := mig.Create(tr.S1.Ctx, d2, []migration.Row{{Line: 2, AccountID: c5, Credit: decimal.NewFromInt(40)}}, nil)
	ok("create batch", err)
	_, err = mig.Submit(tr.S1.Ctx, b.ID)
	ok("submit", err)
	_, err = mig.Approve(tr.D2.Ctx, b.ID, true)
	ok("source approves", err)
	_, err = mig.Approve(reviewer.Ctx, b.ID, false)
	ok("review", err)
	clk.Advance(time.Minute)

	release := hold(t, st, d2)
	executed := background(func() error {
		_, err := mig.ExecuteBatch(context.Background(), b.ID)
		return err
	})
	waitForWaiters(t, st, 1, executed)
	allocated := background(func() error {
		_, err := cr.Allocate(tr.D2.Ctx, c5, decimal.NewFromInt(30))
		return err
	})
	waitForWaiters(t, st, 2, allocated)
	release()
	ok("execute", executed.wait())
	allocErr := allocated.wait()

	var got []struct {
		AccountID             int64
		Allocated, ChildLimit decimal.Decimal
	}
	if err := st.DB.Raw(`SELECT b.account_id, b.allocated,
			(SELECT coalesce(sum(cb.credit_limit), 0) FROM accounts x JOIN credit_balances cb ON cb.account_id = x.id WHERE x.parent_id = b.account_id) AS child_limit
		FROM credit_balances b WHERE b.account_id IN (?, ?) ORDER BY b.account_id`, s1, d2).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	var parent int64
	if err := st.DB.Raw(`SELECT parent_id FROM accounts WHERE id = ?`, c5).Scan(&parent).Error; err != nil || parent != s1 {
		t.Fatalf("C5's partner is %d after the migration, want S1 (%d): %v", parent, s1, err)
	}
	for _, g := range got {
		if !g.Allocated.Equal(g.ChildLimit) {
			t.Errorf("BUG credit.move races a migration: the allocation by D2 answered %v after C5 moved to S1; partner %d has allocated %s "+
				"while its children hold %s — an allocation must re-check, under its locks, that the child is still the partner's",
				allocErr, g.AccountID, g.Allocated, g.ChildLimit)
		}
	}
}
