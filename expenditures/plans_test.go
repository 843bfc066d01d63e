package expenditures_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"testing"

	"partnerd/expenditures"
	"partnerd/partitions"
	"partnerd/store/storetest"
)

// Every statement the expenditure queries run for a period reads only the
// monthly partitions of that period (issue 12, point 3): the partner's and
// the customer's record pages, counts, summaries by every grouping and the
// exports, for one month and for two.
func TestQueries_ReadOnlyThePeriodsPartitions(t *testing.T) {
	f := newFixture(t, ts("2026-08-10T00:00:00Z"))
	tr := f.Tree
	keep := partitions.New(f.Store, partitions.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := keep.Maintain(context.Background()); err != nil {
		t.Fatal(err)
	}
	c1, c2 := tr.C1.Account.ID, tr.C2.Account.ID
	f.ingestAt(t, ts("2026-11-10T00:00:00Z"),
		rec("aug", c1, "2026-08-05T00:00:00Z", "1", "1"),
		rec("sep", c1, "2026-09-05T00:00:00Z", "2", "2"),
		rec("oct", c2, "2026-10-05T00:00:00Z", "3", "3"),
		rec("nov", c2, "2026-11-05T00:00:00Z", "4", "4"))
	for _, m := range []string{"202608", "202609", "202610", "202611"} {
		var n int
		if err := f.Store.SQL.QueryRow(`SELECT count(*) FROM expenditures_p` + m).Scan(&n); err != nil || n != 1 {
			t.Fatalf("expenditures_p%s holds %d records (%v), want 1", m, n, err)
		}
	}

	plans := storetest.WatchPlans(t, f.Store, "expenditures")
	for _, c := range []struct {
		name   string
		period *expenditures.Period
		want   []string
	}{
		{"September", period("2026-09", "2026-09"), []string{"expenditures_p202609"}},
		{"September and October", period("2026-09", "2026-10"), []string{"expenditures_p202609", "expenditures_p202610"}},
	} {
		for _, who := range []struct {
			name   string
			filter expenditures.Filter
			ctx    context.Context
		}{
			{"the distributor", expenditures.Filter{Period: c.period}, tr.D1.Ctx},
			{"the distributor, for a customer", expenditures.Filter{Period: c.period, CustomerID: c1}, tr.D1.Ctx},
			{"the platform", expenditures.Filter{Period: c.period}, tr.Platform.Ctx},
			{"a customer", expenditures.Filter{Period: c.period}, tr.C2.Ctx},
		} {
			plans.Start()
			if _, err := f.Exp.Page(who.ctx, who.filter, 10, 0); err != nil {
				t.Fatalf("%s: page: %v", who.name, err)
			}
			if _, err := f.Exp.Count(who.ctx, who.filter); err != nil {
				t.Fatalf("%s: count: %v", who.name, err)
			}
			for _, g := range []expenditures.GroupBy{expenditures.ByCustomer, expenditures.ByProduct, expenditures.ByDay, expenditures.ByMonth} {
				if _, err := f.Exp.Summarize(who.ctx, g, who.filter); err != nil {
					t.Fatalf("%s: summary by %s: %v", who.name, g, err)
				}
			}
			for kind, g := range map[expenditures.ExportKind]expenditures.GroupBy{expenditures.ExportRecords: "", expenditures.ExportSummary: expenditures.ByCustomer} {
				exp, err := f.Exp.PrepareExport(who.ctx, kind, g, who.filter)
				if err != nil {
					t.Fatalf("%s: export %s: %v", who.name, kind, err)
				}
				if err := exp.WriteCSV(who.ctx, io.Discard); err != nil {
					t.Fatalf("%s: export %s: %v", who.name, kind, err)
				}
			}
			checked := 0
			for _, p := range plans.Stop() {
				if p.Err != nil {
					t.Fatalf("%s: plan %s: %v", who.name, p.SQL, p.Err)
				}
				checked++
				if !isSubset(p.Partitions, c.want) {
					t.Errorf("%s, %s: reads %v, want only %v:\n%s", c.name, who.name, p.Partitions, c.want, p.SQL)
				}
			}
			// The page, the summaries by customer, product and day, and both
			// exports (the count and the summary by month read the monthly
			// totals instead).
			if checked < 6 {
				t.Fatalf("%s, %s: only %d statements read expenditures", c.name, who.name, checked)
			}
		}
	}
}

func isSubset(got, want []string) bool {
	for _, g := range got {
		if !slices.Contains(want, g) {
			return false
		}
	}
	return len(got) > 0
}
