package guard_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

var shanghai = testkit.Shanghai

// fixture is the standard tree on a database with a test clock, and the
// services the guard works with.
type fixture struct {
	*testkit.Tree
	clock  *storetest.Clock
	guard  *guard.Service
	spend  *spend.Service
	credit *credit.Service
	seq    atomic.Int64
}

// start is 2026-11-10 12:00 in Beijing.
var start = time.Date(2026, 11, 10, 4, 0, 0, 0, time.UTC)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	clk := storetest.NewClock(start)
	st := testkit.NewStore(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	return &fixture{Tree: tr, clock: clk,
		guard:  guard.New(st, guard.Options{Location: shanghai, Retention: 5 * 24 * time.Hour}),
		spend:  spend.New(st, shanghai).WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		credit: credit.New(st, shanghai)}
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// ingest records one expenditure of list (= actual) for customer at usage,
// through the real ingestion, and returns its external id.
func (f *fixture) ingest(t testing.TB, customer int64, mode models.BillingMode, list string, usage time.Time) string {
	t.Helper()
	id := fmt.Sprintf("rec-%d", f.seq.Add(1))
	f.ingestAs(t, id, customer, mode, list, usage)
	return id
}

func (f *fixture) ingestAs(t testing.TB, id string, customer int64, mode models.BillingMode, list string, usage time.Time) {
	t.Helper()
	res, err := f.spend.IngestRecords(f.Platform.Ctx, []spend.Record{{ExternalID: id, CustomerID: customer, ProductCode: "ecs",
		BillingMode: mode, UsageAt: usage, List: dec(list), Actual: dec(list)}})
	if err != nil {
		t.Fatalf("ingest %s: %v", id, err)
	}
	if res.Accepted+res.Duplicates != 1 {
		t.Fatalf("ingest %s: %+v", id, res)
	}
}

// budget sets a budget on customer as its partner.
func (f *fixture) budget(t testing.TB, by testkit.Party, customer int64, typ models.BudgetType, amount string, action models.OverspendAction, thresholds ...int) {
	t.Helper()
	in := guard.BudgetInput{CustomerID: customer, Type: typ, Amount: dec(amount), OverspendAction: action}
	if len(thresholds) > 0 {
		in.Thresholds = thresholds
	}
	if _, err := f.guard.SetBudget(by.Ctx, in); err != nil {
		t.Fatalf("set budget: %v", err)
	}
}

// view is the customer's budget as the API shows it.
func (f *fixture) view(t testing.TB, customer int64) *guard.BudgetView {
	t.Helper()
	m, err := f.guard.BudgetViews(f.Platform.Ctx, []int64{customer})
	if err != nil {
		t.Fatal(err)
	}
	return m[customer]
}

// alerts lists the thresholds alerted for customer, in outbox order.
func alerts(t testing.TB, st *store.Store, customer int64) []int {
	t.Helper()
	var out []int
	err := st.DB.Raw(`SELECT (payload->>'threshold')::int FROM outbox WHERE event_type = 'budget.threshold_crossed'
		AND account_id = ? ORDER BY id`, customer).Scan(&out).Error
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func account(t testing.TB, st *store.Store, id int64) models.Account {
	t.Helper()
	var a models.Account
	if err := st.DB.Take(&a, id).Error; err != nil {
		t.Fatal(err)
	}
	return a
}

func count(t testing.TB, st *store.Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.DB.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func wantCode(t testing.TB, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: got %v (%s), want %s", what, err, got, code)
	}
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func bg() context.Context { return context.Background() }

// fund gives C1 amount of credit down the chain platform → D1 → R1 → C1.
func (f *fixture) fund(t testing.TB, amount string) {
	t.Helper()
	_, err := f.credit.SetLimit(f.Platform.Ctx, f.D1.Account.ID, dec(amount))
	must(t, "limit", err)
	_, err = f.credit.Allocate(f.D1.Ctx, f.R1.Account.ID, dec(amount))
	must(t, "allocate to R1", err)
	_, err = f.credit.Allocate(f.R1.Ctx, f.C1.Account.ID, dec(amount))
	must(t, "allocate to C1", err)
}

// unfreeze unfreezes customer as by.
func (f *fixture) unfreeze(t testing.TB, by testkit.Party, customer int64) {
	t.Helper()
	if _, err := f.guard.Unfreeze(by.Ctx, customer); err != nil {
		t.Fatalf("unfreeze: %v", err)
	}
}

// activate makes C1 an ACTIVE customer as R1 would: credit (down the
// chain, when credit is not ""), a budget, and the unfreeze.
func (f *fixture) activate(t testing.TB, credit string, typ models.BudgetType, amount string, action models.OverspendAction) {
	t.Helper()
	if credit != "" {
		f.fund(t, credit)
	}
	f.budget(t, f.R1, f.C1.Account.ID, typ, amount, action)
	f.unfreeze(t, f.R1, f.C1.Account.ID)
}
