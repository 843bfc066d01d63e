package guard_test

import (
	"slices"
	"sync"
	"testing"
	"time"

	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/models"
)

func TestSetBudget_DefaultsValidationAndScope(t *testing.T) {
	f := newFixture(t)
	c1 := f.C1.Account.ID
	// Defaults: thresholds 50, 80, 100 and NONE; given thresholds come back sorted.
	f.budget(t, f.R1, c1, models.BudgetMonthly, "1000", "")
	v := f.view(t, c1)
	if v == nil || !slices.Equal([]int(v.Thresholds), []int{50, 80, 100}) || v.OverspendAction != models.OverspendNone || v.Type != models.BudgetMonthly {
		t.Fatalf("defaults: %+v", v)
	}
	f.budget(t, f.R1, c1, models.BudgetMonthly, "1000", models.OverspendFreeze, 90, 10, 1000)
	if v := f.view(t, c1); !slices.Equal([]int(v.Thresholds), []int{10, 90, 1000}) || v.OverspendAction != models.OverspendFreeze {
		t.Fatalf("sorted: %+v", v)
	}
	viewer := f.AddUser(t, f.R1.Account, models.RoleViewer)
	auditBefore := count(t, f.Store, `SELECT count(*) FROM audit_log`)
	bad := []struct {
		name string
		in   guard.BudgetInput
		by   func() (any, error)
		code apperr.Code
	}{
		{name: "zero amount", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("0")}, code: apperr.Validation},
		{name: "negative amount", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("-5")}, code: apperr.Validation},
		{name: "threshold 0", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5"), Thresholds: []int{0, 50}}, code: apperr.Validation},
		{name: "threshold 1001", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5"), Thresholds: []int{1001}}, code: apperr.Validation},
		{name: "duplicate threshold", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5"), Thresholds: []int{50, 80, 50}}, code: apperr.Validation},
		{name: "empty thresholds", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5"), Thresholds: []int{}}, code: apperr.Validation},
		{name: "bad type", in: guard.BudgetInput{CustomerID: c1, Type: "WEEKLY", Amount: dec("5")}, code: apperr.Validation},
		{name: "bad action", in: guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5"), OverspendAction: "EXPLODE"}, code: apperr.Validation},
		{name: "not a customer", in: guard.BudgetInput{CustomerID: f.R1.Account.ID, Type: models.BudgetMonthly, Amount: dec("5")}, code: apperr.Validation},
	}
	for _, b := range bad {
		_, err := f.guard.SetBudget(f.R1.Ctx, b.in)
		wantCode(t, b.name, err, b.code)
	}
	// Outside the subtree: NOT_FOUND; the customer itself: FORBIDDEN; a viewer: FORBIDDEN.
	_, err := f.guard.SetBudget(f.R2.Ctx, guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5")})
	wantCode(t, "other reseller", err, apperr.NotFound)
	_, err = f.guard.SetBudget(f.C1.Ctx, guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5")})
	wantCode(t, "the customer itself", err, apperr.Forbidden)
	_, err = f.guard.SetBudget(viewer.Ctx, guard.BudgetInput{CustomerID: c1, Type: models.BudgetMonthly, Amount: dec("5")})
	wantCode(t, "viewer", err, apperr.Forbidden)
	if n := count(t, f.Store, `SELECT count(*) FROM audit_log`); n != auditBefore {
		t.Fatalf("refusals wrote %d audit entries", n-auditBefore)
	}
	if v := f.view(t, c1); !v.Amount.Equal(dec("1000")) {
		t.Fatalf("a refusal changed the budget: %+v", v)
	}
	// The distributor above may set it; the customer sees it; the other distributor does not.
	f.budget(t, f.D1, c1, models.BudgetMonthly, "2000", "")
	if m, _ := f.guard.BudgetViews(f.C1.Ctx, []int64{c1}); m[c1] == nil || !m[c1].Amount.Equal(dec("2000")) {
		t.Fatalf("customer's own view: %+v", m)
	}
	if m, _ := f.guard.BudgetViews(f.D2.Ctx, []int64{c1}); len(m) != 0 {
		t.Fatalf("another distributor sees the budget: %+v", m)
	}
	// Clearing removes it; clearing again changes nothing.
	if _, err := f.guard.ClearBudget(f.R1.Ctx, c1); err != nil {
		t.Fatal(err)
	}
	if v := f.view(t, c1); v != nil {
		t.Fatalf("cleared budget still there: %+v", v)
	}
	must(t, "clear again", func() error { _, err := f.guard.ClearBudget(f.R1.Ctx, c1); return err }())
}

// Crossing 50/80/100 at exact decimals: 499.99 of 1000 is not 50%.
func TestThresholds_ExactDecimals(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.budget(t, f.R1, c, models.BudgetMonthly, "1000.00", "")
	steps := []struct {
		add, spent, pct string
		alerts          []int
		exceeded        bool
	}{
		{"499.99", "499.99", "50.00", nil, false}, // 49.999% shows as 50.00 but is not 50%
		{"0.01", "500.00", "50.00", []int{50}, false},
		{"299.999999", "799.999999", "80.00", []int{50}, false},
		{"0.000001", "800.00", "80.00", []int{50, 80}, false},
		{"199.99", "999.99", "100.00", []int{50, 80}, false},
		{"0.01", "1000.00", "100.00", []int{50, 80, 100}, true},
		{"500", "1500.00", "150.00", []int{50, 80, 100}, true},
	}
	for i, s := range steps {
		f.ingest(t, c, models.PayPerUse, s.add, f.clock.Now().Add(-time.Minute))
		must(t, "evaluate", f.guard.Evaluate(bg(), c))
		v := f.view(t, c)
		if !v.Spent.Equal(dec(s.spent)) || v.UsedPercent.StringFixed(2) != s.pct || v.Exceeded != s.exceeded {
			t.Fatalf("step %d: spent %s used %s exceeded %v; want %s %s %v", i, v.Spent, v.UsedPercent.StringFixed(2), v.Exceeded, s.spent, s.pct, s.exceeded)
		}
		if got := alerts(t, f.Store, c); !slices.Equal(got, s.alerts) {
			t.Fatalf("step %d: alerts %v, want %v", i, got, s.alerts)
		}
	}
	// The 100% alert carries the figures.
	var payload struct{ Spent, Amount, UsedPercent, Period string }
	must(t, "payload", f.Store.DB.Raw(`SELECT payload->>'spent' AS spent, payload->>'amount' AS amount, payload->>'usedPercent' AS used_percent,
		payload->>'period' AS period FROM outbox WHERE event_type = 'budget.threshold_crossed' AND (payload->>'threshold')::int = 100`).Scan(&payload).Error)
	if payload.Spent != "1000.00" || payload.Amount != "1000.00" || payload.UsedPercent != "100.00" || payload.Period != "2026-11" {
		t.Fatalf("100%% alert: %+v", payload)
	}
}

// Replays, retries and concurrent ingestion and evaluation send each alert
// once.
func TestThresholds_OnceUnderReplaysAndConcurrency(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.budget(t, f.R1, c, models.BudgetMonthly, "100", "")
	usage := f.clock.Now().Add(-time.Hour)
	var wg sync.WaitGroup
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every worker sends the same 12 records (replays of each other) and evaluates after each.
			for i := 0; i < 12; i++ {
				f.ingestAs(t, "shared-"+string(rune('a'+i)), c, models.PayPerUse, "10", usage)
				if err := f.guard.Evaluate(bg(), c); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	for i := 0; i < 3; i++ { // retries of the consumer
		must(t, "evaluate", f.guard.Evaluate(bg(), c))
	}
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80, 100}) {
		t.Fatalf("alerts %v, want one each of 50, 80, 100", got)
	}
	if v := f.view(t, c); !v.Spent.Equal(dec("120")) {
		t.Fatalf("spent %s, want 120 (12 distinct records)", v.Spent)
	}
}

// A MONTHLY budget's period is the Beijing month: 23:59:59 on the 30th
// counts in November, 00:00:00 on December 1st (+08:00) starts afresh.
func TestMonthly_RolloverInBeijingTime(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "1000", models.BudgetMonthly, "100", "")
	lastSecond := time.Date(2026, 11, 30, 23, 59, 59, 0, shanghai)
	f.clock.Set(lastSecond)
	f.ingest(t, c, models.PayPerUse, "100", lastSecond)
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	if v := f.view(t, c); !v.Exceeded || !v.Spent.Equal(dec("100")) {
		t.Fatalf("at 23:59:59: %+v", v)
	}
	d, err := f.guard.Authorize(f.Platform.Ctx, c, models.Subscription, dec("1"))
	must(t, "authorize", err)
	if d.Reason != guard.ReasonBudgetExceeded {
		t.Fatalf("November: %+v", d)
	}
	f.clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, shanghai))
	if v := f.view(t, c); v.Exceeded || !v.Spent.IsZero() {
		t.Fatalf("at 00:00:00 December: %+v", v)
	}
	// The guard row still holds November's figures: the decision reads them as December's zero.
	d, err = f.guard.Authorize(f.Platform.Ctx, c, models.Subscription, dec("1"))
	must(t, "authorize", err)
	if !d.Allowed {
		t.Fatalf("December is refused for November's spend: %+v", d)
	}
	// December's crossings alert again, in December's period; the sweep finds none missing.
	f.ingest(t, c, models.PayPerUse, "60", f.clock.Now())
	n, err := f.guard.SweepThresholds(bg())
	must(t, "sweep", err)
	if n != 1 {
		t.Fatalf("the sweep evaluated %d budgets, want 1", n)
	}
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80, 100, 50}) {
		t.Fatalf("alerts %v", got)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM budget_alerts WHERE period = 202612`); n != 1 {
		t.Fatalf("%d December alert rows", n)
	}
	if n, _ := f.guard.SweepThresholds(bg()); n != 0 {
		t.Fatalf("a second sweep evaluated %d", n)
	}
}

// A ONE_TIME budget counts usage from when it was set, across months, and
// never restarts.
func TestOneTime_CountsFromSetAndNeverRestarts(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.ingest(t, c, models.PayPerUse, "70", f.clock.Now().Add(-time.Hour)) // before the budget: not counted
	f.budget(t, f.R1, c, models.BudgetOneTime, "100", "")
	if v := f.view(t, c); !v.Spent.IsZero() {
		t.Fatalf("spent %s before anything counted", v.Spent)
	}
	f.ingest(t, c, models.PayPerUse, "30", f.clock.Now())
	f.ingest(t, c, models.PayPerUse, "25", f.clock.Now().Add(-2*time.Hour)) // late record from before: not counted
	f.clock.Set(time.Date(2027, 1, 5, 10, 0, 0, 0, shanghai))
	f.ingest(t, c, models.Subscription, "25", f.clock.Now())
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	v := f.view(t, c)
	if !v.Spent.Equal(dec("55")) || v.UsedPercent.StringFixed(2) != "55.00" {
		t.Fatalf("one-time spent %s (%s%%), want 55", v.Spent, v.UsedPercent)
	}
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50}) {
		t.Fatalf("alerts %v", got)
	}
	f.clock.Set(time.Date(2027, 2, 1, 0, 0, 0, 0, shanghai))
	f.ingest(t, c, models.PayPerUse, "45", f.clock.Now())
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	if v := f.view(t, c); !v.Spent.Equal(dec("100")) || !v.Exceeded {
		t.Fatalf("after February: %+v", v)
	}
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80, 100}) {
		t.Fatalf("alerts %v", got)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM budget_alerts WHERE period <> 0`); n != 0 {
		t.Fatalf("%d one-time alerts outside period 0", n)
	}
}

// Changing the amount re-evaluates at once (in setBudget's transaction),
// without alerting a threshold twice in the period.
func TestSetBudget_AmountChangeReevaluatesAtOnce(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.budget(t, f.R1, c, models.BudgetMonthly, "1000", "")
	f.ingest(t, c, models.PayPerUse, "600", f.clock.Now())
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	f.budget(t, f.R1, c, models.BudgetMonthly, "700", "")
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80}) {
		t.Fatalf("after lowering to 700: %v", got)
	}
	f.budget(t, f.R1, c, models.BudgetMonthly, "2000", "")
	f.budget(t, f.R1, c, models.BudgetMonthly, "700", "")
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80}) {
		t.Fatalf("raising and lowering again alerted twice: %v", got)
	}
	// A new type is a new budget: its alerts start afresh.
	f.clock.Advance(time.Minute)
	f.budget(t, f.R1, c, models.BudgetOneTime, "100", "")
	f.ingest(t, c, models.PayPerUse, "60", f.clock.Now())
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80, 50}) {
		t.Fatalf("new budget: %v", got)
	}
}

// An ingestion flags a budget for the background evaluation only when it
// owes something: a threshold without its alert, or the overspend action.
func TestFlag_OnlyWhenABudgetOwesSomething(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "", models.BudgetMonthly, "100", models.OverspendFreeze)
	checks := func() int64 {
		return count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = ? AND account_id = ?`, guard.EventBudgetCheck, c)
	}
	f.ingest(t, c, models.PayPerUse, "49.99", f.clock.Now())
	f.ingest(t, f.C2.Account.ID, models.PayPerUse, "1000", f.clock.Now()) // no budget: never flagged
	if n := checks(); n != 0 {
		t.Fatalf("%d checks below the first threshold", n)
	}
	f.ingest(t, c, models.PayPerUse, "0.01", f.clock.Now())
	if n := checks(); n != 1 {
		t.Fatalf("%d checks after crossing 50%%", n)
	}
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	f.ingest(t, c, models.PayPerUse, "10", f.clock.Now()) // 60%: nothing new
	if n := checks(); n != 1 {
		t.Fatalf("%d checks with nothing owed", n)
	}
	f.ingest(t, c, models.PayPerUse, "40", f.clock.Now()) // 100%: alerts and the action
	must(t, "evaluate", f.guard.Evaluate(bg(), c))
	if a := account(t, f.Store, c); a.Status != models.StatusFrozen || checks() != 2 {
		t.Fatalf("status %s, %d checks", a.Status, checks())
	}
	f.ingest(t, c, models.PayPerUse, "5", f.clock.Now()) // frozen and alerted: nothing owed
	if n := checks(); n != 2 {
		t.Fatalf("%d checks once frozen", n)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = ? AND account_id = ?`, guard.EventBudgetCheck, f.C2.Account.ID); n != 0 {
		t.Fatalf("a customer without a budget was flagged %d times", n)
	}
}

// A record stamped a minute into the next month (allowed: clocks drift)
// counts in that month's budget from its first sweep on, even though the
// ingestion synced the guard row in the old month.
func TestMonthly_EarlyRecordOfTheNextMonth(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "1000", models.BudgetMonthly, "100", "")
	f.clock.Set(time.Date(2026, 11, 30, 23, 59, 0, 0, shanghai))
	f.ingest(t, c, models.PayPerUse, "100", time.Date(2026, 12, 1, 0, 1, 0, 0, shanghai))
	f.clock.Set(time.Date(2026, 12, 1, 0, 5, 0, 0, shanghai))
	if _, err := f.guard.SweepThresholds(bg()); err != nil {
		t.Fatal(err)
	}
	d, err := f.guard.Authorize(f.Platform.Ctx, c, models.Subscription, dec("1"))
	must(t, "authorize", err)
	if d.Reason != guard.ReasonBudgetExceeded {
		t.Fatalf("December's early record is not counted: %+v", d)
	}
	if got := alerts(t, f.Store, c); !slices.Equal(got, []int{50, 80, 100}) {
		t.Fatalf("alerts %v", got)
	}
}
