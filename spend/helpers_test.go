package spend_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// beijing is the billing time zone of the tests.
var beijing = storetest.Shanghai

type fixture struct {
	*testkit.Tree
	Spend *spend.Service
	Clock *storetest.Clock
}

// newFixture builds the standard tree on a database of the test's own, with
// the store clock at start.
func newFixture(t testing.TB, start time.Time) *fixture {
	t.Helper()
	clk := storetest.NewClock(start)
	st := storetest.New(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("SPEND_DEBUG") != "" {
		log = slog.Default()
	}
	return &fixture{Tree: tr, Spend: spend.New(st, beijing).WithLogger(log), Clock: clk}
}

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func rec(ext string, customer int64, usage string, list, actual string) spend.Record {
	return spend.Record{ExternalID: ext, CustomerID: customer, ProductCode: "ecs", Region: "cn-north-1",
		BillingMode: models.PayPerUse, UsageAt: ts(usage), List: dec(list), Actual: dec(actual)}
}

func (f *fixture) ingest(t testing.TB, recs ...spend.Record) *spend.Result {
	t.Helper()
	res, err := f.Spend.Ingest(f.Platform.Ctx, spend.SliceSource(recs))
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	return res
}

func (f *fixture) count(t testing.TB, query string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := f.Store.DB.Raw(query, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

type totalsRow struct {
	ListTotal   decimal.Decimal
	ActualTotal decimal.Decimal
	PrepaidList decimal.Decimal
	Records     int64
}

func (f *fixture) totals(t testing.TB, customer int64, month int) totalsRow {
	t.Helper()
	var r totalsRow
	err := f.Store.DB.Raw(`SELECT list_total, actual_total, prepaid_list, records FROM spend_totals WHERE customer_id = ? AND month = ?`,
		customer, month).Scan(&r).Error
	if err != nil {
		t.Fatal(err)
	}
	return r
}

type storedRow struct {
	CustomerID   int64
	OwnerID      int64
	Month        int
	ListAmount   decimal.Decimal
	ActualAmount decimal.Decimal
	Adjustment   bool
}

func (f *fixture) stored(t testing.TB, ext string) storedRow {
	t.Helper()
	var r storedRow
	res := f.Store.DB.Raw(`SELECT customer_id, owner_id, month, list_amount, actual_amount, adjustment FROM expenditures WHERE external_id = ?`, ext).Scan(&r)
	if res.Error != nil {
		t.Fatal(res.Error)
	}
	if res.RowsAffected != 1 {
		t.Fatalf("expenditure %q: %d rows stored, want 1", ext, res.RowsAffected)
	}
	return r
}

// assertNothingStored checks that a refused request left no trace.
func (f *fixture) assertNothingStored(t testing.TB) {
	t.Helper()
	for _, q := range []string{
		`SELECT count(*) FROM expenditures`,
		`SELECT count(*) FROM spend_totals`,
		`SELECT count(*) FROM audit_log WHERE action = 'expenditures.ingest'`,
		`SELECT count(*) FROM outbox WHERE event_type = 'spend.changed'`,
	} {
		if n := f.count(t, q); n != 0 {
			t.Errorf("%s = %d after a refused request, want 0", q, n)
		}
	}
}

func wantCode(t testing.TB, err error, code apperr.Code, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if apperr.CodeOf(err) != code {
		t.Fatalf("got %v (code %s), want %s", err, apperr.CodeOf(err), code)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %q", err, s)
		}
	}
}

func wantCounts(t testing.TB, res *spend.Result, accepted, duplicates, conflicts, rejected int) {
	t.Helper()
	if res.Accepted != accepted || res.Duplicates != duplicates || res.Conflicts != conflicts || res.Rejected != rejected {
		t.Fatalf("result accepted/duplicates/conflicts/rejected = %d/%d/%d/%d, want %d/%d/%d/%d (errors %+v)",
			res.Accepted, res.Duplicates, res.Conflicts, res.Rejected, accepted, duplicates, conflicts, rejected, res.Errors)
	}
}

// ndjsonLine renders r as the pipeline sends it; the customer as a global ID
// when globalID is set, else as its integer key.
func ndjsonLine(r spend.Record, globalID bool) string {
	m := map[string]any{
		"externalId": r.ExternalID, "productCode": r.ProductCode, "region": r.Region,
		"billingMode": string(r.BillingMode), "usageAt": r.UsageAt.Format(time.RFC3339Nano),
		"listAmount": r.List.String(), "actualAmount": r.Actual.String(),
	}
	if globalID {
		m["customerId"] = ids.Encode("Account", r.CustomerID)
	} else {
		m["customerId"] = r.CustomerID
	}
	b, err := json.Marshal(m)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// pathLog records, from the service's log, which path each ingestion took
// ("direct" or "staged").
type pathLog struct {
	mu    sync.Mutex
	paths []string
}

func (p *pathLog) Enabled(context.Context, slog.Level) bool { return true }
func (p *pathLog) WithAttrs([]slog.Attr) slog.Handler       { return p }
func (p *pathLog) WithGroup(string) slog.Handler            { return p }

func (p *pathLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "expenditures ingested" {
		return nil
	}
	r.Attrs(func(a slog.Attr) bool {
		if a.Key == "path" {
			p.mu.Lock()
			p.paths = append(p.paths, a.Value.String())
			p.mu.Unlock()
		}
		return true
	})
	return nil
}

// count returns how many ingestions took path.
func (p *pathLog) count(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, q := range p.paths {
		if q == path {
			n++
		}
	}
	return n
}

// service returns another spend service on the fixture's store, whose log
// records the paths taken.
func (f *fixture) service() (*spend.Service, *pathLog) {
	pl := &pathLog{}
	return spend.New(f.Store, beijing).WithLogger(slog.New(pl)), pl
}

// ndjsonSource renders recs as an NDJSON stream, the way POST
// /v1/expenditures passes a body to Ingest.
func ndjsonSource(recs []spend.Record) spend.Source {
	var b strings.Builder
	for _, r := range recs {
		b.WriteString(ndjsonLine(r, false) + "\n")
	}
	return spend.NewNDJSONSource(strings.NewReader(b.String()))
}

// sums are a month's running totals as spend_totals or owner_spend_totals
// hold them, keyed "<account>/<month>".
type sums map[string]string

// consistentTotals checks that the running totals are exactly the sums of
// the stored records, per customer and month and per owner and month.
func (f *fixture) consistentTotals(t testing.TB) {
	t.Helper()
	for _, q := range []struct{ totals, records string }{
		{`SELECT customer_id || '/' || month AS k, list_total || ' ' || actual_total || ' ' || prepaid_list || ' ' || records AS v FROM spend_totals`,
			`SELECT customer_id || '/' || month AS k, sum(list_amount) || ' ' || sum(actual_amount) || ' ' ||
				coalesce(sum(list_amount) FILTER (WHERE billing_mode <> 'PAY_PER_USE'), 0)::numeric(20,6) || ' ' || count(*) AS v
			FROM expenditures GROUP BY customer_id, month`},
		{`SELECT owner_id || '/' || month AS k, list_total || ' ' || actual_total || ' ' || records AS v FROM owner_spend_totals`,
			`SELECT owner_id || '/' || month AS k, sum(list_amount) || ' ' || sum(actual_amount) || ' ' || count(*) AS v
			FROM expenditures GROUP BY owner_id, month`},
	} {
		got, want := f.keyed(t, q.totals), f.keyed(t, q.records)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("totals of %s = %q, the stored records sum to %q", k, got[k], v)
			}
		}
		for k, v := range got {
			if _, ok := want[k]; !ok && !strings.HasPrefix(v, "0.000000 0.000000") {
				t.Errorf("totals of %s = %q without stored records", k, v)
			}
		}
	}
}

func (f *fixture) keyed(t testing.TB, q string) sums {
	t.Helper()
	var rows []struct{ K, V string }
	if err := f.Store.DB.Raw(q).Scan(&rows).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	out := sums{}
	for _, r := range rows {
		out[r.K] = r.V
	}
	return out
}
