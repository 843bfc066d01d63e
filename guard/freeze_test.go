package guard_test

import (
	"sync"
	"testing"
	"time"

	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/models"
)

// register registers n RUNNING resources for C1 as the platform (the console).
func (f *fixture) register(t testing.TB, customer int64, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := f.guard.RegisterResource(f.Platform.Ctx, customer, "ecs", id); err != nil {
			t.Fatalf("register %s: %v", id, err)
		}
	}
}

func resourceStatuses(t testing.TB, f *fixture, customer int64) map[string]models.ResourceStatus {
	t.Helper()
	var list []models.Resource
	must(t, "resources", f.Store.DB.Where("customer_id = ?", customer).Find(&list).Error)
	out := map[string]models.ResourceStatus{}
	for _, r := range list {
		out[r.ExternalID] = r.Status
	}
	return out
}

func events(t testing.TB, f *fixture, typ string, account int64) int64 {
	t.Helper()
	return count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = ? AND account_id = ?`, typ, account)
}

func TestNewCustomer_FrozenUntilBudgetAndUnfreeze(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	a := account(t, f.Store, c)
	if a.Status != models.StatusFrozen || a.FrozenReason == nil || *a.FrozenReason != models.FrozenNewCustomer || a.FrozenAt == nil {
		t.Fatalf("new customer: %+v", a)
	}
	d, err := f.guard.Authorize(f.Platform.Ctx, c, models.PayPerUse, dec("1"))
	must(t, "authorize", err)
	if d.Allowed || d.Reason != guard.ReasonAccountFrozen {
		t.Fatalf("new customer may buy: %+v", d)
	}
	_, err = f.guard.Unfreeze(f.R1.Ctx, c)
	wantCode(t, "unfreeze without budget", err, apperr.PreconditionFailed)
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen {
		t.Fatalf("refused unfreeze changed the status: %s", a.Status)
	}
	f.activate(t, "", models.BudgetMonthly, "100", "")
	a = account(t, f.Store, c)
	if a.Status != models.StatusActive || a.FrozenAt != nil || a.FrozenReason != nil {
		t.Fatalf("after unfreeze: %+v", a)
	}
	if d, _ := f.guard.Authorize(f.Platform.Ctx, c, models.PayPerUse, dec("1")); !d.Allowed {
		t.Fatalf("active customer refused: %+v", d)
	}
	// Scope and roles: another partner NOT_FOUND, the customer itself FORBIDDEN, a FINANCE user FORBIDDEN.
	_, err = f.guard.Freeze(f.D2.Ctx, c, models.FreezeAccount)
	wantCode(t, "other distributor", err, apperr.NotFound)
	_, err = f.guard.Freeze(f.C1.Ctx, c, models.FreezeAccount)
	wantCode(t, "itself", err, apperr.Forbidden)
	fin := f.AddUser(t, f.R1.Account, models.RoleFinance)
	_, err = f.guard.Freeze(fin.Ctx, c, models.FreezeAccount)
	wantCode(t, "finance", err, apperr.Forbidden)
	_, err = f.guard.Freeze(f.R1.Ctx, f.R1.Account.ID, models.FreezeAccount)
	wantCode(t, "a reseller", err, apperr.Validation)
	_, err = f.guard.Freeze(f.R1.Ctx, c, "SOMETIMES")
	wantCode(t, "bad mode", err, apperr.Validation)
}

// A freeze with resources stops them and schedules reminders and the
// release; unfreezing before the release starts them again and cancels it.
func TestFreezeWithResources_UnfreezeBeforeRelease(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "", models.BudgetMonthly, "100", "")
	f.register(t, c, "i-1", "i-2", "i-3")
	// Idempotent registration; a conflicting one is refused.
	f.register(t, c, "i-1")
	_, err := f.guard.RegisterResource(f.Platform.Ctx, c, "rds", "i-1")
	wantCode(t, "same id, other product", err, apperr.Conflict)
	_, err = f.guard.RegisterResource(f.R1.Ctx, c, "ecs", "i-9")
	wantCode(t, "a partner registers", err, apperr.Forbidden)

	_, err = f.guard.Freeze(f.R1.Ctx, c, models.FreezeAccount)
	must(t, "freeze", err)
	if st := resourceStatuses(t, f, c); st["i-1"] != models.ResourceRunning {
		t.Fatalf("ACCOUNT freeze stopped resources: %v", st)
	}
	_, err = f.guard.RegisterResource(f.Platform.Ctx, c, "ecs", "i-4")
	wantCode(t, "new resource while frozen", err, apperr.PreconditionFailed)
	f.clock.Advance(time.Hour)
	_, err = f.guard.Freeze(f.R1.Ctx, c, models.FreezeAccountAndResources)
	must(t, "freeze with resources", err)
	a := account(t, f.Store, c)
	wantRelease := f.clock.Now().Add(5 * 24 * time.Hour)
	if a.Status != models.StatusFrozenWithResources || a.ReleaseAt == nil || !a.ReleaseAt.Equal(wantRelease) || !a.FrozenAt.Equal(start) {
		t.Fatalf("frozen with resources: status %s release %v (want %v) frozen %v", a.Status, a.ReleaseAt, wantRelease, a.FrozenAt)
	}
	for id, s := range resourceStatuses(t, f, c) {
		if s != models.ResourceStopped {
			t.Fatalf("resource %s is %s", id, s)
		}
	}
	if n := count(t, f.Store, `SELECT count(*) FROM freeze_jobs WHERE account_id = ? AND done_at IS NULL`, c); n != 3 {
		t.Fatalf("%d jobs scheduled, want 2 reminders and the release", n)
	}
	_, err = f.guard.Freeze(f.R1.Ctx, c, models.FreezeAccount)
	wantCode(t, "back to ACCOUNT", err, apperr.PreconditionFailed)

	f.clock.Advance(4*24*time.Hour + 23*time.Hour) // an hour before the release
	f.unfreeze(t, f.R1, c)
	for id, s := range resourceStatuses(t, f, c) {
		if s != models.ResourceRunning {
			t.Fatalf("after unfreeze resource %s is %s", id, s)
		}
	}
	f.clock.Advance(2 * time.Hour)
	n, err := f.guard.ProcessDue(bg())
	must(t, "process", err)
	if n != 0 {
		t.Fatalf("%d jobs ran after the unfreeze", n)
	}
	if a := account(t, f.Store, c); a.Status != models.StatusActive || a.DataDeletedAt != nil || a.ReleaseAt != nil {
		t.Fatalf("after the would-be release: %+v", a)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM freeze_jobs WHERE outcome = 'CANCELLED'`); n != 3 {
		t.Fatalf("%d jobs cancelled", n)
	}
}

// Freeze → reminders 3 days and 1 day before → release, with a short
// retention and a test clock; two processors at once run each job once; a
// stale job does nothing.
func TestRelease_RemindersReleaseAndStaleJobs(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "", models.BudgetMonthly, "100", "")
	f.register(t, c, "i-1", "i-2")
	_, err := f.guard.Freeze(f.R1.Ctx, c, models.FreezeAccountAndResources)
	must(t, "freeze", err)
	releaseAt := *account(t, f.Store, c).ReleaseAt
	// A job of an earlier freeze (another release time) must not act.
	must(t, "stale job", f.Store.DB.Exec(`INSERT INTO freeze_jobs (account_id, kind, release_at, due_at) VALUES (?, 'RELEASE', ?, ?)`,
		c, releaseAt.Add(-24*time.Hour), start).Error)

	process := func() {
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := f.guard.ProcessDue(bg()); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	process()
	if a := account(t, f.Store, c); a.DataDeletedAt != nil {
		t.Fatal("the stale job released the resources")
	}
	if n := count(t, f.Store, `SELECT count(*) FROM freeze_jobs WHERE outcome = 'STALE'`); n != 1 {
		t.Fatalf("%d stale jobs", n)
	}
	f.clock.Set(releaseAt.Add(-72*time.Hour - time.Second))
	process()
	if n := events(t, f, "resources.release_reminder", c); n != 0 {
		t.Fatalf("%d reminders before they are due", n)
	}
	f.clock.Set(releaseAt.Add(-72 * time.Hour))
	process()
	f.clock.Set(releaseAt.Add(-24 * time.Hour))
	process()
	var days []int
	must(t, "reminders", f.Store.DB.Raw(`SELECT (payload->>'daysLeft')::int FROM outbox WHERE event_type = 'resources.release_reminder' ORDER BY id`).Scan(&days).Error)
	if len(days) != 2 || days[0] != 3 || days[1] != 1 {
		t.Fatalf("reminders %v, want [3 1]", days)
	}
	f.clock.Set(releaseAt.Add(-time.Second))
	process()
	if st := resourceStatuses(t, f, c); st["i-1"] != models.ResourceStopped {
		t.Fatalf("released early: %v", st)
	}
	f.clock.Set(releaseAt)
	process()
	for id, s := range resourceStatuses(t, f, c) {
		if s != models.ResourceReleased {
			t.Fatalf("resource %s is %s after the release", id, s)
		}
	}
	a := account(t, f.Store, c)
	if a.DataDeletedAt == nil || !a.DataDeletedAt.Equal(releaseAt) || a.Status != models.StatusFrozenWithResources {
		t.Fatalf("after the release: %+v", a)
	}
	if n := events(t, f, "resources.released", c); n != 1 {
		t.Fatalf("%d release notifications", n)
	}
	// Irreversible: unfreezing afterwards starts nothing.
	f.unfreeze(t, f.R1, c)
	if st := resourceStatuses(t, f, c); st["i-1"] != models.ResourceReleased {
		t.Fatalf("unfreeze after release: %v", st)
	}
}

// A retention shorter than 3 days schedules only the reminders still ahead.
func TestRelease_OnlyFutureReminders(t *testing.T) {
	f := newFixture(t)
	g := guard.New(f.Store, guard.Options{Location: shanghai, Retention: 2 * 24 * time.Hour})
	c := f.C1.Account.ID
	f.budget(t, f.R1, c, models.BudgetMonthly, "100", "")
	_, err := g.Freeze(f.R1.Ctx, c, models.FreezeAccountAndResources)
	must(t, "freeze", err)
	var kinds []string
	must(t, "jobs", f.Store.DB.Raw(`SELECT kind FROM freeze_jobs WHERE account_id = ? ORDER BY due_at`, c).Scan(&kinds).Error)
	if len(kinds) != 2 || kinds[0] != "REMIND_1D" || kinds[1] != "RELEASE" {
		t.Fatalf("jobs %v", kinds)
	}
}

// The overspend action freezes in the background evaluation; NONE only
// refuses prepaid purchases; an unfreeze over budget is not undone.
func TestOverspend_ActionAndOverride(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "10000", models.BudgetMonthly, "100", models.OverspendNone)
	f.register(t, c, "i-1")
	f.ingest(t, c, models.PayPerUse, "100", f.clock.Now())
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	if a := account(t, f.Store, c); a.Status != models.StatusActive {
		t.Fatalf("NONE froze: %s", a.Status)
	}
	for mode, want := range map[models.BillingMode]string{models.PayPerUse: "", models.Subscription: guard.ReasonBudgetExceeded, models.ReservedInstance: guard.ReasonBudgetExceeded} {
		d, err := f.guard.Authorize(f.Platform.Ctx, c, mode, dec("1"))
		must(t, "authorize", err)
		if d.Reason != want || d.Allowed != (want == "") {
			t.Fatalf("%s over budget: %+v, want %q", mode, d, want)
		}
	}
	// Setting an action on an exceeded budget enforces it at once.
	f.budget(t, f.R1, c, models.BudgetMonthly, "100", models.OverspendFreezeWithResources)
	a := account(t, f.Store, c)
	if a.Status != models.StatusFrozenWithResources || *a.FrozenReason != models.FrozenOverspend {
		t.Fatalf("after setting the action: %s %v", a.Status, a.FrozenReason)
	}
	if st := resourceStatuses(t, f, c); st["i-1"] != models.ResourceStopped {
		t.Fatalf("resources: %v", st)
	}
	// The partner unfreezes over budget: the evaluation and the sweep leave it alone.
	f.unfreeze(t, f.R1, c)
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	if n, err := f.guard.SweepEnforcement(bg()); err != nil || n != 0 {
		t.Fatalf("sweep acted on %d (%v)", n, err)
	}
	if a := account(t, f.Store, c); a.Status != models.StatusActive {
		t.Fatalf("re-frozen after the partner's unfreeze: %s", a.Status)
	}
	// A new amount that is exceeded again is enforced again.
	f.budget(t, f.R1, c, models.BudgetMonthly, "150", models.OverspendFreeze)
	f.ingest(t, c, models.PayPerUse, "60", f.clock.Now())
	if n, err := f.guard.SweepEnforcement(bg()); err != nil || n != 1 {
		t.Fatalf("sweep acted on %d (%v), want the overspent customer", n, err)
	}
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen || *a.FrozenReason != models.FrozenOverspend {
		t.Fatalf("after crossing 150: %s", a.Status)
	}
	if n := events(t, f, "account.frozen", c); n != 2 {
		t.Fatalf("%d freeze events", n)
	}
}

// Arrears suspend a customer without exemptions and lift automatically;
// one exemption keeps it ACTIVE and refuses only the uncovered mode.
func TestArrears_SuspensionAndLift(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "100", models.BudgetMonthly, "100000", "")
	f.ingest(t, c, models.PayPerUse, "150", f.clock.Now())
	// Before the consumer runs, the guard already refuses (it reads arrears live).
	d, _ := f.guard.Authorize(f.Platform.Ctx, c, models.PayPerUse, dec("1"))
	if d.Reason != guard.ReasonArrearsSuspended {
		t.Fatalf("in arrears: %+v", d)
	}
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	a := account(t, f.Store, c)
	if a.Status != models.StatusFrozen || *a.FrozenReason != models.FrozenArrears {
		t.Fatalf("arrears: %s %v", a.Status, a.FrozenReason)
	}
	d, _ = f.guard.Authorize(f.Platform.Ctx, c, models.Subscription, dec("1"))
	if d.Reason != guard.ReasonArrearsSuspended {
		t.Fatalf("suspended prepaid: %+v", d)
	}
	_, err := f.guard.Unfreeze(f.R1.Ctx, c)
	wantCode(t, "unfreeze in arrears", err, apperr.PreconditionFailed)
	// A postpaid exemption lifts the suspension; prepaid stays refused.
	_, err = f.credit.SetExemption(f.R1.Ctx, c, true, false)
	must(t, "exemption", err)
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	if a := account(t, f.Store, c); a.Status != models.StatusActive {
		t.Fatalf("exempt: %s", a.Status)
	}
	if d, _ := f.guard.Authorize(f.Platform.Ctx, c, models.PayPerUse, dec("1")); !d.Allowed {
		t.Fatalf("exempt postpaid refused: %+v", d)
	}
	if d, _ := f.guard.Authorize(f.Platform.Ctx, c, models.Subscription, dec("1")); d.Reason != guard.ReasonArrearsSuspended {
		t.Fatalf("prepaid not exempt: %+v", d)
	}
	// Without exemptions again, the sweep suspends; credit clears it and the lift is automatic.
	_, err = f.credit.SetExemption(f.R1.Ctx, c, false, false)
	must(t, "exemption", err)
	if n, err := f.guard.SweepEnforcement(bg()); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen {
		t.Fatalf("not suspended: %s", a.Status)
	}
	_, err = f.credit.SetLimit(f.Platform.Ctx, f.D1.Account.ID, dec("200"))
	must(t, "limit", err)
	_, err = f.credit.Allocate(f.D1.Ctx, f.R1.Account.ID, dec("100"))
	must(t, "allocate", err)
	_, err = f.credit.Allocate(f.R1.Ctx, c, dec("100"))
	must(t, "allocate", err)
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	a = account(t, f.Store, c)
	if a.Status != models.StatusActive {
		t.Fatalf("after the arrears cleared: %s", a.Status)
	}
	var automatic bool
	must(t, "event", f.Store.DB.Raw(`SELECT (payload->>'automatic')::boolean FROM outbox WHERE event_type = 'account.unfrozen' ORDER BY id DESC LIMIT 1`).Scan(&automatic).Error)
	if !automatic {
		t.Fatal("the lift is not marked automatic")
	}
	// A new month ends arrears: the sweep lifts a suspension left from the old one.
	f.ingest(t, c, models.PayPerUse, "100", f.clock.Now())
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen {
		t.Fatalf("second arrears: %s", a.Status)
	}
	f.clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai))
	if d, _ := f.guard.Authorize(f.Platform.Ctx, c, models.PayPerUse, dec("1")); !d.Allowed {
		t.Fatalf("new month still suspended: %+v", d)
	}
	if n, err := f.guard.SweepEnforcement(bg()); err != nil || n != 1 {
		t.Fatalf("rollover sweep: %d %v", n, err)
	}
	if a := account(t, f.Store, c); a.Status != models.StatusActive {
		t.Fatalf("after the rollover sweep: %s", a.Status)
	}
}

// A partner's freeze of a customer suspended for arrears takes it over: the
// end of the arrears no longer lifts it.
func TestFreeze_TakesOverAnArrearsSuspension(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "100", models.BudgetMonthly, "100000", "")
	f.ingest(t, c, models.PayPerUse, "150", f.clock.Now())
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	_, err := f.guard.Freeze(f.R1.Ctx, c, models.FreezeAccount)
	must(t, "freeze", err)
	if a := account(t, f.Store, c); *a.FrozenReason != models.FrozenManual {
		t.Fatalf("reason %s", *a.FrozenReason)
	}
	_, err = f.credit.SetExemption(f.R1.Ctx, c, true, true)
	must(t, "exemption", err)
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen {
		t.Fatalf("the partner's freeze was lifted: %s", a.Status)
	}
}

// A customer already frozen (here for arrears) still has its resources
// stopped when it overspends a budget whose action says so — from the
// ingestion's flag as from the sweep.
func TestOverspend_StopsResourcesOfAFrozenCustomer(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "100", models.BudgetMonthly, "500", models.OverspendFreezeWithResources)
	f.register(t, c, "i-1")
	f.ingest(t, c, models.PayPerUse, "150", f.clock.Now())
	must(t, "reconcile", f.guard.ReconcileArrears(bg(), c))
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen || *a.FrozenReason != models.FrozenArrears {
		t.Fatalf("arrears: %s", a.Status)
	}
	f.ingest(t, c, models.PayPerUse, "400", f.clock.Now())
	if n := count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = ? AND account_id = ?`, guard.EventBudgetCheck, c); n == 0 {
		t.Fatal("the crossing was not flagged")
	}
	if n, err := f.guard.SweepEnforcement(bg()); err != nil || n == 0 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	a := account(t, f.Store, c)
	if a.Status != models.StatusFrozenWithResources || *a.FrozenReason != models.FrozenOverspend || a.ReleaseAt == nil {
		t.Fatalf("after overspending: %s %v", a.Status, *a.FrozenReason)
	}
	if st := resourceStatuses(t, f, c); st["i-1"] != models.ResourceStopped {
		t.Fatalf("resources: %v", st)
	}
	// Nothing more is owed: no further flag, no further action.
	if n, err := f.guard.SweepEnforcement(bg()); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
}
