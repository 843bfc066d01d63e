package expenditures_test

import (
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"partnerd/expenditures"
)

// benchRecords is how many records the benchmark's partner D1 owns
// (EXP_BENCH_RECORDS overrides); four times as many belong to other
// partners.
func benchRecords() int {
	if n, err := strconv.Atoi(os.Getenv("EXP_BENCH_RECORDS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// BenchmarkQueries measures D1's queries over a database where D1's
// subtree owns benchRecords() records over two months (its three customers,
// four products) and the other partners four times as many: every summary
// grouping (MONTH from the running totals and, with a product filter, from
// the records), pages, the count, and a records export. The metric
// records/s is D1's records counted per second of one query. With -v it
// logs the plans (EXPLAIN ANALYZE) of the summaries and the first page.
func BenchmarkQueries(b *testing.B) {
	f := newFixture(b, ts("2026-03-01T00:00:00Z"))
	tr := f.Tree
	n := benchRecords()
	mine := randomRecords(11, "d1", n, []int64{tr.C1.Account.ID, tr.C2.Account.ID, tr.C3.Account.ID},
		ts("2026-01-01T00:00:00Z"), ts("2026-02-28T00:00:00Z"))
	others := randomRecords(12, "others", 4*n, []int64{tr.C4.Account.ID, tr.C5.Account.ID, tr.P1.Account.ID},
		ts("2026-01-01T00:00:00Z"), ts("2026-02-28T00:00:00Z"))
	// As the pipeline sends them: everyone's records of a period together.
	for i := 0; i < n; i += 5000 {
		f.ingestMany(b, ts("2026-03-01T00:00:00Z"), mine[i:min(i+5000, n)])
		f.ingestMany(b, ts("2026-03-01T00:00:00Z"), others[4*i:min(4*(i+5000), 4*n)])
	}
	if err := f.Store.DB.Exec(`VACUUM ANALYZE expenditures`).Error; err != nil {
		b.Fatal(err)
	}
	ctx := tr.D1.Ctx
	both := expenditures.Filter{Period: period("2026-01", "2026-02")}
	rds := expenditures.Filter{Period: both.Period, ProductCode: "rds"}

	explain := func(name, q string, args []any, err error) {
		if err != nil {
			b.Fatal(err)
		}
		var lines []string
		if err := f.Store.DB.Raw("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) "+q, args...).Scan(&lines).Error; err != nil {
			b.Fatal(err)
		}
		b.Logf("%s:\n%s", name, strings.Join(lines, "\n"))
	}
	if testing.Verbose() {
		for _, g := range groupings {
			q, args, err := expenditures.SummarySQL(ctx, f.Exp, g, both)
			explain("summary by "+string(g), q, args, err)
		}
		q, args, err := expenditures.SummarySQL(ctx, f.Exp, expenditures.ByMonth, rds)
		explain("summary by MONTH of rds", q, args, err)
		q, args, err = expenditures.PageSQL(ctx, f.Exp, both, 50, 0)
		explain("first page of 50", q, args, err)
		q, args, err = expenditures.SummarySQL(tr.R1.Ctx, f.Exp, expenditures.ByCustomer, both)
		explain("R1's summary by CUSTOMER", q, args, err)
		q, args, err = expenditures.SummarySQL(ctx, f.Exp, expenditures.ByProduct, expenditures.Filter{Period: both.Period, CustomerID: tr.C3.Account.ID})
		explain("D1's summary of C3 by PRODUCT", q, args, err)
	}

	for _, g := range groupings {
		b.Run("Summarize/"+string(g), func(b *testing.B) {
			records, loops := 0, 0
			for b.Loop() {
				s, err := f.Exp.Summarize(ctx, g, both)
				if err != nil {
					b.Fatal(err)
				}
				records, loops = s.Records, loops+1
			}
			if records != n {
				b.Fatalf("%d records counted, want %d", records, n)
			}
			b.ReportMetric(float64(records)*float64(loops)/b.Elapsed().Seconds(), "records/s")
		})
	}
	b.Run("Summarize/MONTH-of-one-product", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.Exp.Summarize(ctx, expenditures.ByMonth, rds); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Page/first-50", func(b *testing.B) {
		for b.Loop() {
			if p, err := f.Exp.Page(ctx, both, 50, 0); err != nil || len(p.Records) != 50 {
				b.Fatal(err)
			}
		}
	})
	mid, err := f.Exp.Page(ctx, both, 500, 0)
	if err != nil {
		b.Fatal(err)
	}
	for range n / 2 / 500 {
		if mid, err = f.Exp.Page(ctx, both, 500, mid.Records[len(mid.Records)-1].ID); err != nil {
			b.Fatal(err)
		}
	}
	after := mid.Records[len(mid.Records)-1].ID
	if testing.Verbose() {
		q, args, err := expenditures.PageSQL(ctx, f.Exp, both, 50, after)
		explain("a page of 50 in the middle", q, args, err)
		q, args, err = expenditures.RecordsSQL(ctx, f.Exp, both)
		explain("the records export (first 1000 rows, as a cursor's first fetch)", q+" LIMIT 1000", args, err)
	}
	b.Run("Page/50-in-the-middle", func(b *testing.B) {
		for b.Loop() {
			if p, err := f.Exp.Page(ctx, both, 50, after); err != nil || len(p.Records) != 50 {
				b.Fatal(err)
			}
		}
	})
	b.Run("Count/from-totals", func(b *testing.B) {
		for b.Loop() {
			if c, err := f.Exp.Count(ctx, both); err != nil || c != n {
				b.Fatal(c, err)
			}
		}
	})
	b.Run("Count/one-product", func(b *testing.B) {
		for b.Loop() {
			if _, err := f.Exp.Count(ctx, rds); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Export/records", func(b *testing.B) {
		loops := 0
		for b.Loop() {
			loops++
			exp, err := f.Exp.PrepareExport(ctx, expenditures.ExportRecords, "", both)
			if err != nil {
				b.Fatal(err)
			}
			if err := exp.WriteCSV(ctx, io.Discard); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n)*float64(loops)/b.Elapsed().Seconds(), "records/s")
	})
}
