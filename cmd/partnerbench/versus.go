package main

import (
	"context"
	"fmt"
	"time"
)

// versus runs a throughput comparison --runs times: each run moves n items
// through the floor first, then through the product, and returns the rates
// (items a second) of each. name and unit label the log lines.
func (b *bench) versus(ctx context.Context, name, unit string, n int, floor, product func(ctx context.Context, run int) (time.Duration, error)) (productRates, floorRates []float64, err error) {
	for run := 1; run <= b.o.runs; run++ {
		ft, err := floor(ctx, run)
		if err != nil {
			return nil, nil, fmt.Errorf("run %d: bare loop: %w", run, err)
		}
		pt, err := product(ctx, run)
		if err != nil {
			return nil, nil, fmt.Errorf("run %d: product: %w", run, err)
		}
		pr, fr := float64(n)/pt.Seconds(), float64(n)/ft.Seconds()
		productRates, floorRates = append(productRates, pr), append(floorRates, fr)
		b.logf("%s run %d/%d: product %.0f %s (%.1f s), bare loop %.0f %s (%.1f s), ratio %.0f%%",
			name, run, b.o.runs, pr, unit, pt.Seconds(), fr, unit, ft.Seconds(), 100*pr/fr)
	}
	return productRates, floorRates, nil
}

// versusRows are the rows of a product-vs-floor table: each side's rate
// (median, min, max) and their ratio against targetPct (the product's
// least share of the floor).
func versusRows(productLabel, floorLabel string, productRates, floorRates []float64, targetPct float64) [][]string {
	ps, fs := spreadOf(productRates), spreadOf(floorRates)
	rs, verdict := ratioOf(productRates, floorRates, targetPct)
	return [][]string{
		{productLabel, num(ps.Median), num(ps.Min), num(ps.Max)},
		{floorLabel, num(fs.Median), num(fs.Min), num(fs.Max)},
		{"product / bare", pct(rs.Median), pct(rs.Min), fmt.Sprintf("%s (target ≥ %.0f%%: %s)", pct(rs.Max), targetPct, verdict)},
	}
}
