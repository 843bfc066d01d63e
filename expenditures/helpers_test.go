package expenditures_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

var beijing = storetest.Shanghai

// fixture is the standard tree on a database of the test's own, with the
// store clock under the test's control, spend to ingest through and the
// service under test.
type fixture struct {
	*testkit.Tree
	Spend *spend.Service
	Exp   *expenditures.Service
	Clock *storetest.Clock
}

func newFixture(t testing.TB, start time.Time) *fixture {
	t.Helper()
	clk := storetest.NewClock(start)
	st := storetest.New(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &fixture{Tree: tr, Spend: spend.New(st, beijing).WithLogger(log), Exp: expenditures.New(st, beijing), Clock: clk}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
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

func period(from, to string) *expenditures.Period {
	return &expenditures.Period{From: month(from), To: month(to)}
}

// rec is an expenditure record of product ecs in cn-north-1.
func rec(ext string, customer int64, usage string, list, actual string) spend.Record {
	return spend.Record{ExternalID: ext, CustomerID: customer, ProductCode: "ecs", Region: "cn-north-1",
		BillingMode: models.PayPerUse, UsageAt: ts(usage), List: dec(list), Actual: dec(actual)}
}

// ingestAt moves the store clock to at (the records' receipt time) and
// ingests recs as the billing pipeline; every record must be accepted.
func (f *fixture) ingestAt(t testing.TB, at time.Time, recs ...spend.Record) {
	t.Helper()
	f.Clock.Set(at)
	res, err := f.Spend.Ingest(f.Platform.Ctx, spend.SliceSource(recs))
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if res.Accepted != len(recs) {
		t.Fatalf("ingest: %d of %d accepted: %+v", res.Accepted, len(recs), res.Errors)
	}
}

// ingestMany ingests recs in requests of at most 5,000.
func (f *fixture) ingestMany(t testing.TB, at time.Time, recs []spend.Record) {
	t.Helper()
	for len(recs) > 0 {
		n := min(len(recs), spend.MaxGraphQLBatch)
		f.ingestAt(t, at, recs[:n]...)
		recs = recs[n:]
	}
}

// moveCustomer moves customer c under partner p at the store's now, as a
// migration's execution does: its later usage belongs to p.
func (f *fixture) moveCustomer(t testing.TB, c, p *models.Account) {
	t.Helper()
	err := f.Store.InTx(context.Background(), func(tx *store.Tx) error {
		a, err := accounts.Lock(tx, c.ID)
		if err != nil {
			return err
		}
		return accounts.Move(tx, a, p, models.KindCustomer)
	})
	if err != nil {
		t.Fatalf("move %s under %s: %v", c.Name, p.Name, err)
	}
}

func wantCode(t testing.TB, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Errorf("%s: got %v (%s), want %s", what, err, got, code)
	}
}

// ingested is one record as the test sent it, with what the test knows
// independently of the code under test: its owner and receipt time.
type ingested struct {
	spend.Record
	Owner    int64
	Received time.Time
	Tags     map[string]string
}

// group is an independently computed summary row.
type group struct {
	Key          string
	List, Actual decimal.Decimal
	Records      int
	AsOf         time.Time
	// Month is the month of a DAY group.
	Month string
}

// customerKey is a customer ID as a key that sorts as the ID does.
func customerKey(id int64) string { return fmt.Sprintf("%020d", id) }

// expect computes the summary of the records that keep selects, grouped by
// g, in the order the API promises.
func expect(all []ingested, g expenditures.GroupBy, keep func(ingested) bool) ([]group, decimal.Decimal, decimal.Decimal, int, *time.Time) {
	byKey := map[string]*group{}
	var list, actual decimal.Decimal
	n := 0
	var asOf *time.Time
	for _, r := range all {
		if !keep(r) {
			continue
		}
		var k string
		switch g {
		case expenditures.ByCustomer:
			k = customerKey(r.CustomerID)
		case expenditures.ByProduct:
			k = r.ProductCode
		case expenditures.ByDay:
			k = r.UsageAt.In(beijing).Format("2006-01-02")
		case expenditures.ByMonth:
			k = models.MonthOf(r.UsageAt, beijing).String()
		}
		gr := byKey[k]
		if gr == nil {
			gr = &group{Key: k, Month: models.MonthOf(r.UsageAt, beijing).String()}
			byKey[k] = gr
		}
		gr.List, gr.Actual, gr.Records = gr.List.Add(r.List), gr.Actual.Add(r.Actual), gr.Records+1
		if r.Received.After(gr.AsOf) {
			gr.AsOf = r.Received
		}
		list, actual, n = list.Add(r.List), actual.Add(r.Actual), n+1
		if asOf == nil || r.Received.After(*asOf) {
			at := r.Received
			asOf = &at
		}
	}
	out := make([]group, 0, len(byKey))
	for _, gr := range byKey {
		out = append(out, *gr)
	}
	sort.Slice(out, func(i, j int) bool {
		if g == expenditures.ByCustomer || g == expenditures.ByProduct {
			if c := out[i].Actual.Cmp(out[j].Actual); c != 0 {
				return c > 0
			}
		}
		return out[i].Key < out[j].Key
	})
	return out, list, actual, n, asOf
}

// randomRecords makes n records of the given customers, seeded: usage times
// between from and to, four products, amounts with up to 6 decimals.
func randomRecords(seed uint64, prefix string, n int, customers []int64, from, to time.Time) []spend.Record {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	products := []string{"ecs", "rds", "oss", "cdn"}
	modes := []models.BillingMode{models.PayPerUse, models.Subscription, models.ReservedInstance}
	span := to.Sub(from)
	out := make([]spend.Record, n)
	for i := range out {
		list := decimal.New(rng.Int64N(50_000_000)+1, -6) // 0.000001 .. 50.000000
		actual := list.Mul(decimal.New(int64(rng.IntN(101)), -2)).Truncate(6)
		out[i] = spend.Record{
			ExternalID:  prefix + "-" + decimal.NewFromInt(int64(i)).String(),
			CustomerID:  customers[rng.IntN(len(customers))],
			ProductCode: products[rng.IntN(len(products))],
			Region:      "cn-north-1",
			BillingMode: modes[rng.IntN(len(modes))],
			UsageAt:     from.Add(time.Duration(rng.Int64N(int64(span/time.Second))) * time.Second),
			List:        list,
			Actual:      actual,
		}
	}
	return out
}
