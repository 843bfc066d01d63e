package forecast_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/credit"
	"partnerd/forecast"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

var shanghai = testkit.Shanghai

// now is 2026-11-10 12:00 in Beijing: 9.5 of November's 30 days have
// elapsed, 20.5 remain.
var now = bj(2026, 11, 10, 12, 0)

// bj is a Beijing wall-clock time.
func bj(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, shanghai)
}

// fixture is the standard tree on a database with a test clock, and the
// services a forecast is made from.
type fixture struct {
	*testkit.Tree
	clock    *storetest.Clock
	forecast *forecast.Service
	guard    *guard.Service
	spend    *spend.Service
	credit   *credit.Service
	seq      atomic.Int64
}

func newFixture(t testing.TB, at time.Time) *fixture {
	t.Helper()
	clk := storetest.NewClock(at)
	st := testkit.NewStore(t, store.Options{Clock: clk})
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &fixture{Tree: testkit.NewTreeOn(t, st), clock: clk,
		forecast: forecast.New(st, forecast.Options{Location: shanghai, Log: quiet}),
		guard:    guard.New(st, guard.Options{Location: shanghai, Log: quiet}),
		spend:    spend.New(st, shanghai).WithLogger(quiet),
		credit:   credit.New(st, shanghai)}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ingest records one expenditure of customer at usage through the real
// ingestion.
func (f *fixture) ingest(t testing.TB, customer int64, usage time.Time, list, actual string) {
	t.Helper()
	id := fmt.Sprintf("rec-%d", f.seq.Add(1))
	res, err := f.spend.IngestRecords(f.Platform.Ctx, []spend.Record{{ExternalID: id, CustomerID: customer, ProductCode: "ecs",
		BillingMode: models.PayPerUse, UsageAt: usage, List: dec(list), Actual: dec(actual)}})
	must(t, "ingest "+id, err)
	if res.Accepted != 1 {
		t.Fatalf("ingest %s: %+v", id, res)
	}
}

// budget sets a budget (default thresholds, no overspend action) on
// customer as by.
func (f *fixture) budget(t testing.TB, by testkit.Party, customer int64, typ models.BudgetType, amount string) {
	t.Helper()
	_, err := f.guard.SetBudget(by.Ctx, guard.BudgetInput{CustomerID: customer, Type: typ, Amount: dec(amount)})
	must(t, "set budget", err)
}

// fundC1 gives C1 amount of credit down the chain platform → D1 → R1 → C1.
func (f *fixture) fundC1(t testing.TB, amount string) {
	t.Helper()
	_, err := f.credit.SetLimit(f.Platform.Ctx, f.D1.Account.ID, dec(amount))
	must(t, "limit D1", err)
	_, err = f.credit.Allocate(f.D1.Ctx, f.R1.Account.ID, dec(amount))
	must(t, "allocate to R1", err)
	_, err = f.credit.Allocate(f.R1.Ctx, f.C1.Account.ID, dec(amount))
	must(t, "allocate to C1", err)
}

// forecasts asks for ids as by.
func (f *fixture) forecasts(t testing.TB, by context.Context, ids ...int64) map[int64]*forecast.Forecast {
	t.Helper()
	m, err := f.forecast.Forecast(by, ids)
	must(t, "forecast", err)
	return m
}

// alerts are the forecast alerts in the outbox, in order.
func alerts(t testing.TB, st *store.Store) []notify.BudgetForecastExceeding {
	t.Helper()
	var payloads []string
	must(t, "outbox", st.DB.Raw(`SELECT payload::text FROM outbox WHERE event_type = ? ORDER BY id`,
		notify.EventBudgetForecastExceeding).Scan(&payloads).Error)
	out := make([]notify.BudgetForecastExceeding, len(payloads))
	for i, p := range payloads {
		must(t, "decode alert", json.Unmarshal([]byte(p), &out[i]))
	}
	return out
}

func day(y int, m time.Month, d int) time.Time { return bj(y, m, d, 0, 0).UTC() }

func wantDay(t testing.TB, what string, got *time.Time, want *time.Time) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil || want == nil:
		t.Errorf("%s: got %v, want %v", what, got, want)
	case !got.Equal(*want) || got.Location() != time.UTC:
		t.Errorf("%s: got %v, want %v (UTC)", what, got, want.UTC())
	}
}

func wantDec(t testing.TB, what string, got decimal.Decimal, want string) {
	t.Helper()
	if !got.Equal(dec(want)) {
		t.Errorf("%s: got %s, want %s", what, got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// C1: MONTHLY budget 2,000 and credit 1,500. November so far: list 950,
// actual 760 on four days, so 100.00 and 80.00 a day over 9.5 days.
//   - list: 950 + 100 × 20.5 = 3,000.00; the budget's remaining 1,050 takes
//     10.5 days: reached at 2026-11-21 00:00 exactly, so on the 21st;
//   - credit: 1,500 − 760 = 740 left at 80 a day lasts 9.25 days: zero at
//     2026-11-19 18:00, below it from then on, so the 19th;
//   - actual: 760 + 80 × 20.5 = 2,400.00.
//
// C4: MONTHLY budget 10,000 and credit 10,000; list 100, actual 95:
// 100 × 30 ÷ 9.5 = 315.789… → 315.79, 95 × 30 ÷ 9.5 = 300.00; neither day.
func TestForecast_MonthlyBudgetAndCredit(t *testing.T) {
	f := newFixture(t, now)
	c1, c4 := f.C1.Account.ID, f.C4.Account.ID
	f.fundC1(t, "1500")
	f.budget(t, f.R1, c1, models.BudgetMonthly, "2000")
	f.ingest(t, c1, bj(2026, 11, 1, 3, 0), "300", "240")
	f.ingest(t, c1, bj(2026, 11, 4, 15, 30), "250", "200")
	f.ingest(t, c1, bj(2026, 11, 8, 23, 59), "250", "200")
	f.ingest(t, c1, bj(2026, 11, 10, 9, 0), "150", "120")
	// October's spend is not November's.
	f.ingest(t, c1, bj(2026, 10, 31, 23, 0), "5000", "5000")

	_, err := f.credit.SetLimit(f.Platform.Ctx, f.S1.Account.ID, dec("10000"))
	must(t, "limit S1", err)
	_, err = f.credit.Allocate(f.S1.Ctx, c4, dec("10000"))
	must(t, "allocate C4", err)
	f.budget(t, f.S1, c4, models.BudgetMonthly, "10000")
	f.ingest(t, c4, bj(2026, 11, 5, 8, 0), "100", "95")

	m := f.forecasts(t, f.Platform.Ctx, c1, c4)
	fc := m[c1]
	if fc == nil {
		t.Fatalf("no forecast of C1: %v", m)
	}
	if fc.Month != (models.Month{Year: 2026, Month: time.November}) || !fc.AsOf.Equal(now) || fc.DaysElapsed != 9 || fc.DaysInMonth != 30 {
		t.Errorf("frame: %+v", fc)
	}
	wantDec(t, "elapsed", fc.Elapsed, "9.5")
	wantDec(t, "list to date", fc.ListToDate, "950")
	wantDec(t, "actual to date", fc.ActualToDate, "760")
	wantDec(t, "daily list", fc.DailyList, "100")
	wantDec(t, "daily actual", fc.DailyActual, "80")
	wantDec(t, "projected list", fc.ProjectedList, "3000")
	wantDec(t, "projected actual", fc.ProjectedActual, "2400")
	wantDec(t, "credit", fc.CreditLimit, "1500")
	wantDec(t, "projected available", fc.ProjectedAvailable(), "-900")
	if fc.BudgetID == nil || *fc.BudgetType != models.BudgetMonthly || fc.BudgetAmount == nil {
		t.Fatalf("budget: %+v", fc)
	}
	wantDec(t, "budget", *fc.BudgetAmount, "2000")
	wantDec(t, "budget spent", *fc.BudgetSpent, "950")
	wantDec(t, "budget projected", *fc.ProjectedBudgetSpent, "3000")
	wantDay(t, "C1 budget exceeded on", fc.BudgetExceededOn, ptr(day(2026, 11, 21)))
	wantDay(t, "C1 credit runs out on", fc.CreditRunsOutOn, ptr(day(2026, 11, 19)))

	fc = m[c4]
	if fc == nil {
		t.Fatalf("no forecast of C4: %v", m)
	}
	wantDec(t, "C4 projected list", fc.ProjectedList, "315.79")
	wantDec(t, "C4 projected actual", fc.ProjectedActual, "300")
	wantDec(t, "C4 daily list", fc.DailyList, "10.53")
	wantDay(t, "C4 budget exceeded on", fc.BudgetExceededOn, nil)
	wantDay(t, "C4 credit runs out on", fc.CreditRunsOutOn, nil)

	// Half an hour later, the same spend projects a little lower, and a
	// forecast on the month's first hour divides by a whole day.
	f.clock.Set(now.Add(30 * time.Minute))
	fc = f.forecasts(t, f.Platform.Ctx, c1)[c1]
	// 950 × 30 ÷ 9.520833… = 2,993.435…
	wantDec(t, "later projection", fc.ProjectedList, "2993.44")
	f.clock.Set(bj(2026, 12, 1, 6, 0))
	f.ingest(t, c1, bj(2026, 12, 1, 1, 0), "10", "10")
	fc = f.forecasts(t, f.Platform.Ctx, c1)[c1]
	// 10 a day (not 40) over the remaining 30.75 days: 10 + 307.5.
	wantDec(t, "first hours", fc.ProjectedList, "317.5")
	wantDec(t, "first hours elapsed", fc.Elapsed, "0.25")
	if fc.DaysElapsed != 0 || fc.DaysInMonth != 31 {
		t.Errorf("December frame: %d of %d days", fc.DaysElapsed, fc.DaysInMonth)
	}
}

// C2 is over its MONTHLY budget: exceeded today, and no forecast alert
// (its 100% threshold alert tells). C3 has a ONE_TIME budget of 1,030 set
// on 2026-10-20 12:00 and no credit: its spend since then is 150 in
// October (an October 15 record before the budget does not count) and 475
// in November (50 a day): 625 + 50 × 20.5 = 1,650.00, the remaining 405
// reached in 8.1 days, on 2026-11-18 (14:24); its credit is already below 0.
func TestForecast_ExceededAndOneTime(t *testing.T) {
	f := newFixture(t, bj(2026, 10, 20, 12, 0))
	c2, c3 := f.C2.Account.ID, f.C3.Account.ID
	f.budget(t, f.D1, c3, models.BudgetOneTime, "1030")
	f.ingest(t, c3, bj(2026, 10, 15, 10, 0), "100", "100")
	f.clock.Set(bj(2026, 10, 26, 8, 0))
	f.ingest(t, c3, bj(2026, 10, 25, 10, 0), "150", "150")
	f.clock.Set(now)
	f.ingest(t, c3, bj(2026, 11, 3, 10, 0), "200", "200")
	f.ingest(t, c3, bj(2026, 11, 9, 10, 0), "275", "275")
	f.budget(t, f.R2, c2, models.BudgetMonthly, "500")
	f.ingest(t, c2, bj(2026, 11, 2, 10, 0), "600", "600")

	m := f.forecasts(t, f.D1.Ctx, c2, c3)
	fc := m[c3]
	if fc == nil || fc.BudgetType == nil || *fc.BudgetType != models.BudgetOneTime {
		t.Fatalf("C3: %+v", fc)
	}
	wantDec(t, "C3 list to date", fc.ListToDate, "475")
	wantDec(t, "C3 projected list", fc.ProjectedList, "1500")
	wantDec(t, "C3 budget spent", *fc.BudgetSpent, "625")
	wantDec(t, "C3 budget projected", *fc.ProjectedBudgetSpent, "1650")
	wantDay(t, "C3 budget exceeded on", fc.BudgetExceededOn, ptr(day(2026, 11, 18)))
	wantDay(t, "C3 credit runs out on", fc.CreditRunsOutOn, ptr(day(2026, 11, 10)))

	fc = m[c2]
	if fc == nil {
		t.Fatal("no forecast of C2")
	}
	wantDec(t, "C2 budget spent", *fc.BudgetSpent, "600")
	wantDay(t, "C2 budget exceeded on", fc.BudgetExceededOn, ptr(day(2026, 11, 10)))

	n, err := f.forecast.Tick(context.Background())
	must(t, "tick", err)
	got := alerts(t, f.Store)
	if n != 1 || len(got) != 1 {
		t.Fatalf("tick sent %d alerts: %+v", n, got)
	}
	want := notify.BudgetForecastExceeding{CustomerID: c3, BudgetID: *m[c3].BudgetID, BudgetType: "ONE_TIME", Period: "2026-10-20",
		Month: "2026-11", Amount: "1030.00", Spent: "625.00", ProjectedList: "1650.00", ExceedsOn: "2026-11-18"}
	if got[0] != want {
		t.Fatalf("alert: %+v, want %+v", got[0], want)
	}
	// A ONE_TIME budget's period is its whole life: the next month does not
	// warn again.
	f.clock.Set(bj(2026, 12, 3, 12, 0))
	f.ingest(t, c3, bj(2026, 12, 2, 10, 0), "100", "100")
	n, err = f.forecast.Tick(context.Background())
	must(t, "tick in December", err)
	if n != 0 || len(alerts(t, f.Store)) != 1 {
		t.Fatalf("a ONE_TIME budget warned twice: %d", n)
	}
}

// A partner sees the forecasts of its subtree only; a customer its own;
// accounts that are not customers have none.
func TestForecast_Scope(t *testing.T) {
	f := newFixture(t, now)
	c1, c2, c5 := f.C1.Account.ID, f.C2.Account.ID, f.C5.Account.ID
	f.budget(t, f.R1, c1, models.BudgetMonthly, "2000")
	f.ingest(t, c1, bj(2026, 11, 3, 10, 0), "950", "950")
	all := []int64{c1, c2, f.C3.Account.ID, f.C4.Account.ID, c5}
	cases := []struct {
		name string
		by   context.Context
		ids  []int64
		want []int64
	}{
		{"platform", f.Platform.Ctx, all, all},
		{"other distributor", f.D2.Ctx, []int64{c1, c2}, nil},
		{"other distributor, own customer", f.D2.Ctx, all, []int64{c5}},
		{"distributor above", f.D1.Ctx, all, []int64{c1, c2, f.C3.Account.ID}},
		{"sibling reseller", f.R2.Ctx, []int64{c1}, nil},
		{"the customer", f.C1.Ctx, []int64{c1, c2}, []int64{c1}},
		{"not customers", f.Platform.Ctx, []int64{f.Platform.Account.ID, f.D1.Account.ID, f.R1.Account.ID, f.P1.Account.ID, 1 << 40}, nil},
		{"none", f.R1.Ctx, nil, nil},
	}
	for _, c := range cases {
		m := f.forecasts(t, c.by, c.ids...)
		if len(m) != len(c.want) {
			t.Errorf("%s: got %d forecasts, want %v", c.name, len(m), c.want)
		}
		for _, id := range c.want {
			if m[id] == nil || m[id].CustomerID != id {
				t.Errorf("%s: no forecast of %d", c.name, id)
			}
		}
	}
	if fc := f.forecasts(t, f.C1.Ctx, c1)[c1]; fc.BudgetExceededOn == nil || !fc.ProjectedList.Equal(dec("3000")) {
		t.Errorf("the customer's own forecast: %+v", fc)
	}
	if _, err := f.forecast.Forecast(context.Background(), []int64{c1}); err == nil {
		t.Error("a forecast without a principal")
	}
}

// The alert is sent once per budget and period, to the customer and its
// partner, even when Tick runs twice or concurrently; not for a projection
// under 100%, not for a customer frozen with its resources; and again in
// the next month of a MONTHLY budget when the projection crosses again.
func TestTick_AlertsOncePerPeriod(t *testing.T) {
	f := newFixture(t, now)
	c1, c4, c5 := f.C1.Account.ID, f.C4.Account.ID, f.C5.Account.ID
	f.budget(t, f.R1, c1, models.BudgetMonthly, "2000")
	f.ingest(t, c1, bj(2026, 11, 3, 10, 0), "950", "700")
	f.budget(t, f.S1, c4, models.BudgetMonthly, "3000.01") // projects to 3,000.00: stays under
	f.ingest(t, c4, bj(2026, 11, 3, 10, 0), "950", "950")
	f.budget(t, f.D2, c5, models.BudgetMonthly, "1000")
	f.ingest(t, c5, bj(2026, 11, 3, 10, 0), "900", "900")
	_, err := f.guard.Freeze(f.D2.Ctx, c5, models.FreezeAccountAndResources)
	must(t, "freeze C5", err)

	var wg sync.WaitGroup
	var sent atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := f.forecast.Tick(context.Background())
			if err != nil {
				t.Error(err)
			}
			sent.Add(int64(n))
		}()
	}
	wg.Wait()
	n, err := f.forecast.Tick(context.Background())
	must(t, "tick again", err)
	got := alerts(t, f.Store)
	if sent.Load() != 1 || n != 0 || len(got) != 1 {
		t.Fatalf("concurrent ticks sent %d, then %d: %+v", sent.Load(), n, got)
	}
	want := notify.BudgetForecastExceeding{CustomerID: c1, BudgetID: got[0].BudgetID, BudgetType: "MONTHLY", Period: "2026-11",
		Month: "2026-11", Amount: "2000.00", Spent: "950.00", ProjectedList: "3000.00", ExceedsOn: "2026-11-21"}
	if got[0] != want || got[0].BudgetID == 0 {
		t.Fatalf("alert: %+v, want %+v", got[0], want)
	}
	var row struct {
		Period    int
		Projected decimal.Decimal
		ExceedsOn string
	}
	must(t, "alert row", f.Store.DB.Raw(`SELECT period, projected, exceeds_on::text AS exceeds_on FROM forecast_alerts WHERE budget_id = ?`,
		got[0].BudgetID).Scan(&row).Error)
	if row.Period != 202611 || !row.Projected.Equal(dec("3000")) || row.ExceedsOn != "2026-11-21" {
		t.Fatalf("alert row: %+v", row)
	}
	// Who is told: the customer's and its partner's finance people.
	audience := notify.NewCatalogue()
	if !audience.Has(notify.EventBudgetForecastExceeding) {
		t.Fatal("the alert is not in the catalogue")
	}
	var acct int64
	must(t, "outbox account", f.Store.DB.Raw(`SELECT account_id FROM outbox WHERE event_type = ?`, notify.EventBudgetForecastExceeding).Scan(&acct).Error)
	if acct != c1 {
		t.Fatalf("outbox account %d", acct)
	}

	// December: the new period of the MONTHLY budget warns again, once.
	f.clock.Set(bj(2026, 12, 10, 12, 0))
	n, err = f.forecast.Tick(context.Background())
	must(t, "tick in December before spend", err)
	if n != 0 {
		t.Fatalf("warned on last month's spend: %d", n)
	}
	f.ingest(t, c1, bj(2026, 12, 2, 10, 0), "950", "950")
	for i, want := range []int{1, 0} {
		n, err = f.forecast.Tick(context.Background())
		must(t, "tick in December", err)
		if n != want {
			t.Fatalf("December tick %d sent %d, want %d", i, n, want)
		}
	}
	got = alerts(t, f.Store)
	if len(got) != 2 || got[1].Period != "2026-12" || got[1].ExceedsOn != "2026-12-21" || got[1].ProjectedList != "3100.00" {
		t.Fatalf("December alert: %+v", got)
	}
}
