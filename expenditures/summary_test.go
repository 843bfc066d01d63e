package expenditures_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/testkit"
)

// rowKey is the key of a summary row, as expect computes it.
func rowKey(g expenditures.GroupBy, r expenditures.Row) string {
	switch g {
	case expenditures.ByCustomer:
		return customerKey(r.CustomerID)
	case expenditures.ByProduct:
		return r.ProductCode
	case expenditures.ByDay:
		return r.Day
	}
	return r.Month.String()
}

// checkSummary compares a summary with the independently computed one,
// row by row and in order.
func checkSummary(t *testing.T, what string, got *expenditures.Summary, want []group, list, actual decimal.Decimal, n int, asOf *time.Time) {
	t.Helper()
	if len(got.Rows) != len(want) {
		t.Errorf("%s: %d rows, want %d", what, len(got.Rows), len(want))
		return
	}
	for i, w := range want {
		r := got.Rows[i]
		if k := rowKey(got.GroupBy, r); k != w.Key || !r.List.Equal(w.List) || !r.Actual.Equal(w.Actual) || r.Records != w.Records ||
			r.AsOf == nil || !r.AsOf.Equal(w.AsOf) {
			t.Errorf("%s: row %d = %s %s/%s %d %v, want %s %s/%s %d %v", what, i, k, r.List, r.Actual, r.Records, r.AsOf,
				w.Key, w.List, w.Actual, w.Records, w.AsOf)
		}
		if got.GroupBy == expenditures.ByDay && r.Month.String() != w.Month {
			t.Errorf("%s: day %s in month %s, want %s", what, r.Day, r.Month, w.Month)
		}
	}
	if !got.List.Equal(list) || !got.Actual.Equal(actual) || got.Records != n {
		t.Errorf("%s: totals %s/%s over %d, want %s/%s over %d", what, got.List, got.Actual, got.Records, list, actual, n)
	}
	if (asOf == nil) != (got.AsOf == nil) || (asOf != nil && !got.AsOf.Equal(*asOf)) {
		t.Errorf("%s: asOf %v, want %v", what, got.AsOf, asOf)
	}
}

// grouping is one of the four summary groupings.
var groupings = []expenditures.GroupBy{expenditures.ByCustomer, expenditures.ByProduct, expenditures.ByDay, expenditures.ByMonth}

// Every grouping, for partners at each level, the platform and customers,
// with and without each filter, adds up to sums computed independently from
// the records the test sent: the owner it knows each record has, the Beijing
// day and month of its usage time, the tags its customer had when it was
// sent, and the time it was received. MONTH without filters comes from the
// running totals, the rest from the records: both must agree with the sums.
func TestSummarize_EveryGroupingMatchesIndependentSums(t *testing.T) {
	f := newFixture(t, ts("2026-12-10T00:00:00Z"))
	tr := f.Tree
	owner := map[int64]int64{
		tr.C1.Account.ID: tr.R1.Account.ID, tr.C2.Account.ID: tr.R2.Account.ID, tr.C3.Account.ID: tr.D1.Account.ID,
		tr.C4.Account.ID: tr.S1.Account.ID, tr.C5.Account.ID: tr.D2.Account.ID, tr.P1.Account.ID: tr.Platform.Account.ID,
	}
	customers := []int64{tr.C1.Account.ID, tr.C2.Account.ID, tr.C3.Account.ID, tr.C4.Account.ID, tr.C5.Account.ID, tr.P1.Account.ID}
	var all []ingested
	tagsOf := map[int64]map[string]string{}
	setTags := func(p testkit.Party, tags ...accounts.Tag) {
		if _, err := tr.Accounts.SetTags(tr.Platform.Ctx, p.Account.ID, tags); err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, tg := range tags {
			m[tg.Key] = tg.Value
		}
		tagsOf[p.Account.ID] = m
	}
	batch := func(at time.Time, recs []spend.Record) {
		f.ingestAt(t, at, recs...)
		for _, r := range recs {
			all = append(all, ingested{Record: r, Owner: owner[r.CustomerID], Received: at, Tags: tagsOf[r.CustomerID]})
		}
	}
	from, to := ts("2026-09-20T00:00:00Z"), ts("2026-12-05T00:00:00Z")
	setTags(tr.C1, accounts.Tag{Key: "env", Value: "prod"}, accounts.Tag{Key: "team", Value: "a"})
	batch(ts("2026-12-06T01:00:00Z"), randomRecords(1, "b1", 400, customers, from, to))
	setTags(tr.C1)
	setTags(tr.C2, accounts.Tag{Key: "env", Value: "prod"})
	batch(ts("2026-12-07T02:00:00.5Z"), randomRecords(2, "b2", 400, customers, from, to))
	batch(ts("2026-12-08T03:00:00Z"), []spend.Record{ // the Beijing edges of a day and a month
		rec("edge-nov-1", tr.C1.Account.ID, "2026-10-31T16:30:00Z", "1.000001", "0.5"),
		rec("edge-oct-31", tr.C1.Account.ID, "2026-10-31T15:59:59Z", "2", "2"),
		rec("edge-dec-1", tr.C3.Account.ID, "2026-11-30T16:00:00Z", "3", "1"),
	})

	subtree := func(p testkit.Party) map[int64]bool {
		out := map[int64]bool{}
		for _, o := range []testkit.Party{tr.Platform, tr.D1, tr.R1, tr.R2, tr.S1, tr.D2} {
			if o.Account.ID == p.Account.ID || len(o.Account.Path) > len(p.Account.Path) && o.Account.Path[:len(p.Account.Path)] == p.Account.Path {
				out[o.Account.ID] = true
			}
		}
		return out
	}
	type view struct {
		name   string
		caller testkit.Party
		sees   func(ingested) bool
	}
	partner := func(name string, p testkit.Party) view {
		owners := subtree(p)
		return view{name, p, func(r ingested) bool { return owners[r.Owner] }}
	}
	customer := func(name string, p testkit.Party) view {
		return view{name, p, func(r ingested) bool { return r.CustomerID == p.Account.ID }}
	}
	views := []view{partner("D1", tr.D1), partner("R1", tr.R1), partner("S1", tr.S1), partner("platform", tr.Platform),
		customer("C1", tr.C1), customer("P1", tr.P1)}

	octNov := period("2026-10", "2026-11")
	inPeriod := func(p *expenditures.Period) func(ingested) bool {
		return func(r ingested) bool {
			k := models.MonthOf(r.UsageAt, beijing).Key()
			return k >= p.From.Key() && k <= p.To.Key()
		}
	}
	type filter struct {
		name string
		f    expenditures.Filter
		keep func(ingested) bool
	}
	wide := period("2026-09", "2026-12")
	filters := []filter{
		{"everything", expenditures.Filter{Period: wide}, inPeriod(wide)},
		{"Oct-Nov", expenditures.Filter{Period: octNov}, inPeriod(octNov)},
		{"rds", expenditures.Filter{Period: wide, ProductCode: "rds"}, func(r ingested) bool { return r.ProductCode == "rds" }},
		{"env=prod", expenditures.Filter{Period: wide, Tag: &accounts.Tag{Key: "env", Value: "prod"}}, func(r ingested) bool { return r.Tags["env"] == "prod" }},
		{"default period (December)", expenditures.Filter{}, inPeriod(period("2026-12", "2026-12"))},
	}
	f.Clock.Set(ts("2026-12-10T00:00:00Z"))
	for _, v := range views {
		for _, fl := range filters {
			for _, g := range groupings {
				got, err := f.Exp.Summarize(v.caller.Ctx, g, fl.f)
				if err != nil {
					t.Fatalf("%s %s %s: %v", v.name, fl.name, g, err)
				}
				want, list, actual, n, asOf := expect(all, g, func(r ingested) bool { return v.sees(r) && inPeriod(wide)(r) && fl.keep(r) })
				checkSummary(t, fmt.Sprintf("%s, %s, by %s", v.name, fl.name, g), got, want, list, actual, n, asOf)
				if count, err := f.Exp.Count(v.caller.Ctx, fl.f); err != nil || count != n {
					t.Errorf("%s, %s: count %d, %v, want %d", v.name, fl.name, count, err, n)
				}
			}
		}
	}

	// One customer, narrowed by a partner above it, and a sub-partner.
	c2 := expenditures.Filter{Period: wide, CustomerID: tr.C2.Account.ID}
	r2 := expenditures.Filter{Period: wide, PartnerID: tr.R2.Account.ID}
	for _, c := range []struct {
		name   string
		caller testkit.Party
		f      expenditures.Filter
		keep   func(ingested) bool
	}{
		{"D1 for C2", tr.D1, c2, func(r ingested) bool { return r.CustomerID == tr.C2.Account.ID }},
		{"platform for C2", tr.Platform, c2, func(r ingested) bool { return r.CustomerID == tr.C2.Account.ID }},
		{"D1 for R2's subtree", tr.D1, r2, func(r ingested) bool { return r.Owner == tr.R2.Account.ID }},
		{"platform for D1's subtree", tr.Platform, expenditures.Filter{Period: wide, PartnerID: tr.D1.Account.ID}, subtreeOwner(subtree(tr.D1))},
		{"C1 for itself", tr.C1, expenditures.Filter{Period: wide, CustomerID: tr.C1.Account.ID}, func(r ingested) bool { return r.CustomerID == tr.C1.Account.ID }},
	} {
		for _, g := range groupings {
			got, err := f.Exp.Summarize(c.caller.Ctx, g, c.f)
			if err != nil {
				t.Fatalf("%s by %s: %v", c.name, g, err)
			}
			want, list, actual, n, asOf := expect(all, g, func(r ingested) bool { return inPeriod(wide)(r) && c.keep(r) })
			checkSummary(t, fmt.Sprintf("%s by %s", c.name, g), got, want, list, actual, n, asOf)
		}
	}
}

func subtreeOwner(owners map[int64]bool) func(ingested) bool {
	return func(r ingested) bool { return owners[r.Owner] }
}

// A record at 2026-10-31T16:30:00Z is used on November 1st in Beijing: it
// is in November's summaries and on that day; one a second before 16:00 is
// October 31st's.
func TestSummarize_BeijingDayAndMonthEdges(t *testing.T) {
	f := newFixture(t, ts("2026-12-05T00:00:00Z"))
	c1 := f.C1.Account.ID
	f.ingestAt(t, ts("2026-12-05T00:00:00Z"),
		rec("nov-1", c1, "2026-10-31T16:30:00Z", "10", "8"),
		rec("nov-1-midnight", c1, "2026-10-31T16:00:00Z", "1", "1"),
		rec("oct-31", c1, "2026-10-31T15:59:59Z", "5", "4"),
		rec("nov-30", c1, "2026-11-30T15:59:59Z", "2", "2"),
		rec("dec-1", c1, "2026-11-30T16:00:00Z", "7", "7"),
	)
	days, err := f.Exp.Summarize(f.R1.Ctx, expenditures.ByDay, expenditures.Filter{Period: period("2026-10", "2026-12")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range days.Rows {
		got = append(got, fmt.Sprintf("%s %s %s %d", r.Day, r.Month, r.List, r.Records))
	}
	want := []string{"2026-10-31 2026-10 5 1", "2026-11-01 2026-11 11 2", "2026-11-30 2026-11 2 1", "2026-12-01 2026-12 7 1"}
	if !slices.Equal(got, want) {
		t.Errorf("days: %q, want %q", got, want)
	}
	nov, err := f.Exp.Summarize(f.R1.Ctx, expenditures.ByMonth, expenditures.Filter{Period: period("2026-11", "2026-11")})
	if err != nil {
		t.Fatal(err)
	}
	if len(nov.Rows) != 1 || nov.Rows[0].Month.String() != "2026-11" || !nov.List.Equal(dec("13")) || nov.Records != 3 {
		t.Errorf("November: %+v", nov)
	}
	// The default period is the store clock's Beijing month: at
	// 2026-11-30T16:00:00Z that is already December.
	f.Clock.Set(ts("2026-11-30T16:00:00Z"))
	dec1, err := f.Exp.Summarize(f.C1.Ctx, expenditures.ByMonth, expenditures.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if dec1.From.String() != "2026-12" || dec1.To.String() != "2026-12" || !dec1.List.Equal(dec("7")) {
		t.Errorf("default period at the turn of the month: %+v", dec1)
	}
	page, err := f.Exp.Page(f.R1.Ctx, expenditures.Filter{Period: period("2026-11", "2026-11")}, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var exts []string
	for _, r := range page.Records {
		exts = append(exts, r.ExternalID+" "+r.Month().String())
	}
	if !slices.Equal(exts, []string{"nov-1-midnight 2026-11", "nov-1 2026-11", "nov-30 2026-11"}) {
		t.Errorf("November's records: %q", exts)
	}
}

// A summary states when its newest counted record arrived; a record that
// arrives later is not in it and moves asOf on.
func TestSummarize_AsOfIsTheNewestCountedReceipt(t *testing.T) {
	f := newFixture(t, ts("2026-05-20T00:00:00Z"))
	p := period("2026-05", "2026-05")
	empty, err := f.Exp.Summarize(f.D1.Ctx, expenditures.ByMonth, expenditures.Filter{Period: p})
	if err != nil || empty.AsOf != nil || len(empty.Rows) != 0 || !empty.List.IsZero() {
		t.Fatalf("no records: %+v %v", empty, err)
	}
	f.ingestAt(t, ts("2026-05-20T01:00:00Z"), rec("a", f.C1.Account.ID, "2026-05-10T00:00:00Z", "1", "1"))
	f.ingestAt(t, ts("2026-05-20T02:00:00Z"), rec("b", f.C5.Account.ID, "2026-05-10T00:00:00Z", "1", "1")) // D2's
	for _, g := range groupings {
		s, err := f.Exp.Summarize(f.D1.Ctx, g, expenditures.Filter{Period: p})
		if err != nil || s.AsOf == nil || !s.AsOf.Equal(ts("2026-05-20T01:00:00Z")) {
			t.Errorf("D1 by %s: asOf %v, %v (D2's later record must not count)", g, s.AsOf, err)
		}
	}
	f.ingestAt(t, ts("2026-05-21T00:00:00Z"), rec("c", f.C2.Account.ID, "2026-04-30T16:00:00Z", "1", "1"))
	s, err := f.Exp.Summarize(f.D1.Ctx, expenditures.ByProduct, expenditures.Filter{Period: p})
	if err != nil || s.AsOf == nil || !s.AsOf.Equal(ts("2026-05-21T00:00:00Z")) || s.Records != 2 {
		t.Errorf("after a late record: %+v %v", s, err)
	}
}

// Bad input is VALIDATION and names the problem; no principal is
// UNAUTHENTICATED.
func TestQueries_RefuseBadInput(t *testing.T) {
	f := newFixture(t, ts("2026-05-20T00:00:00Z"))
	ctx := f.D1.Ctx
	for name, fl := range map[string]expenditures.Filter{
		"from after to":       {Period: period("2026-05", "2026-04")},
		"25 months":           {Period: period("2024-01", "2026-01")},
		"a long product code": {ProductCode: string(make([]byte, 101))},
		"an invalid product":  {ProductCode: "\xff"},
		"a tag without a key": {Tag: &accounts.Tag{Value: "x"}},
		"a malformed tag key": {Tag: &accounts.Tag{Key: "a b", Value: "x"}},
		"a long tag value":    {Tag: &accounts.Tag{Key: "k", Value: string(make([]rune, 257))}},
	} {
		_, err := f.Exp.Summarize(ctx, expenditures.ByMonth, fl)
		wantCode(t, name+" (summary)", err, apperr.Validation)
		_, err = f.Exp.Page(ctx, fl, 10, 0)
		wantCode(t, name+" (page)", err, apperr.Validation)
		_, err = f.Exp.PrepareExport(ctx, expenditures.ExportRecords, "", fl)
		wantCode(t, name+" (export)", err, apperr.Validation)
	}
	if _, err := f.Exp.Summarize(ctx, expenditures.ByMonth, expenditures.Filter{Period: period("2024-02", "2026-01")}); err != nil {
		t.Errorf("24 months: %v", err)
	}
	_, err := f.Exp.Summarize(ctx, "WEEK", expenditures.Filter{})
	wantCode(t, "an unknown grouping", err, apperr.Validation)
	_, err = f.Exp.Page(ctx, expenditures.Filter{}, 501, 0)
	wantCode(t, "a page of 501", err, apperr.Validation)
	_, err = f.Exp.Page(ctx, expenditures.Filter{}, -1, 0)
	wantCode(t, "a negative page", err, apperr.Validation)
	_, err = f.Exp.PrepareExport(ctx, "pdf", "", expenditures.Filter{})
	wantCode(t, "an unknown export kind", err, apperr.Validation)
	_, err = f.Exp.PrepareExport(ctx, expenditures.ExportSummary, "", expenditures.Filter{})
	wantCode(t, "a summary export without groupBy", err, apperr.Validation)
	_, err = f.Exp.PrepareExport(ctx, expenditures.ExportRecords, expenditures.ByDay, expenditures.Filter{})
	wantCode(t, "a records export with groupBy", err, apperr.Validation)
	_, err = f.Exp.Summarize(context.Background(), expenditures.ByMonth, expenditures.Filter{})
	wantCode(t, "no principal", err, apperr.Unauthenticated)
	_, err = f.Exp.Get(context.Background(), 1)
	wantCode(t, "no principal (get)", err, apperr.Unauthenticated)
}
