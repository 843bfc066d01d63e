package billing_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

var beijing = testkit.Shanghai

type fixture struct {
	*testkit.Tree
	clk     *storetest.Clock
	svc     *billing.Service
	spend   *spend.Service
	finance context.Context // a platform FINANCE user
	seq     int
}

// newFixture builds the standard tree with the store clock at start (a
// Beijing-time wall clock, "2006-01-02 15:04").
func newFixture(t testing.TB, start string) *fixture {
	t.Helper()
	clk := storetest.NewClock(bj(start))
	st := testkit.NewStore(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{Tree: tr, clk: clk, svc: billing.New(st, tr.Accounts, billing.Options{Location: beijing, PublicURL: "https://pc.test", Log: quiet}),
		spend: spend.New(st, beijing).WithLogger(quiet)}
	f.finance = tr.AddUser(t, tr.Platform.Account, models.RoleFinance).Ctx
	clk.Advance(time.Minute) // the parent history needs time to pass
	return f
}

// bj parses a Beijing wall-clock time "2006-01-02 15:04".
func bj(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, beijing)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func month(s string) models.Month {
	m, err := models.ParseMonth(s)
	if err != nil {
		panic(err)
	}
	return m
}

// ingest records one expenditure of customer at Beijing time at.
func (f *fixture) ingest(t testing.TB, customer int64, product, at, list, actual string) {
	t.Helper()
	f.seq++
	res, err := f.spend.IngestRecords(f.Platform.Ctx, []spend.Record{{ExternalID: fmt.Sprintf("rec-%d", f.seq), CustomerID: customer,
		ProductCode: product, BillingMode: models.PayPerUse, UsageAt: bj(at), List: dec(list), Actual: dec(actual)}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Accepted != 1 {
		t.Fatalf("record not accepted: %+v", res)
	}
}

// bill returns partner's bill of month as seen by the platform.
func (f *fixture) bill(t testing.TB, partner int64, m string) *billing.PartnerBill {
	t.Helper()
	bills, err := f.svc.PartnerBills(f.Platform.Ctx, partner, month(m))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range bills {
		if b.PartnerID == partner {
			return b
		}
	}
	t.Fatalf("no bill of %d for %s", partner, m)
	return nil
}

// lines returns the lines of bill b keyed "forMonth/customer/product".
func (f *fixture) lines(t testing.TB, b *billing.PartnerBill) map[string][2]string {
	t.Helper()
	ls, err := f.svc.Lines(f.Platform.Ctx, []int64{b.ID}, billing.LineFilter{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][2]string{}
	for _, l := range ls[b.ID] {
		out[fmt.Sprintf("%d/%d/%s", l.ForMonth, l.CustomerID, l.ProductCode)] = [2]string{l.List.String(), l.Actual.String()}
	}
	return out
}

func wantCode(t testing.TB, err error, code apperr.Code) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
