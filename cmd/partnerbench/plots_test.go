package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bar and line charts are drawn as PNGs and linked from their section.
func TestDrawCharts(t *testing.T) {
	dir := filepath.Join(os.Getenv("PLOTDIR"), "results-plots")
	if os.Getenv("PLOTDIR") == "" {
		dir = filepath.Join(t.TempDir(), "results-plots")
	}
	s := &section{name: "point", charts: []chart{
		{File: "point-rate.png", Title: "point: requests/s", YLabel: "requests/s", Groups: []string{"10k", "1M"},
			Series: []chartSeries{{Name: "partnerd", Values: []float64{9000, 8800}}, {Name: "pgbench", Values: []float64{30000, 29000}}}},
		{File: "scaling.png", Title: "children page", YLabel: "requests/s", XLabel: "accounts", LogX: true, X: []float64{1e4, 1e5, 1e6},
			Series: []chartSeries{{Name: "partnerd", Values: []float64{5000, 4900, 4950}}}},
	}}
	md, err := drawCharts(dir, filepath.Dir(dir), []*section{s, {name: "none"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"point-rate.png", "scaling.png"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
			t.Fatalf("%s: not a PNG (%v)", f, err)
		}
		if !strings.Contains(md[s], "(results-plots/"+f+")") {
			t.Fatalf("markdown %q lacks %s", md[s], f)
		}
	}
	if len(md) != 1 {
		t.Fatalf("markdown for %d sections, want 1", len(md))
	}
	bad := &section{charts: []chart{{File: "bad.png", Groups: []string{"a"}, Series: []chartSeries{{Name: "x", Values: []float64{1, 2}}}}}}
	if _, err := drawCharts(dir, filepath.Dir(dir), []*section{bad}); err == nil {
		t.Fatal("a series with more values than groups was drawn")
	}
}

// A results file with the markers (BENCHMARKS.md) gets the results between
// them, headings one level down, the rest of its text kept; a file without
// them, or none, gets the results alone.
func TestWriteResults(t *testing.T) {
	dir := t.TempDir()
	results := "# partnerbench results\n\nCommand: `x`\n\n## point\n\n| a |\n| --- |\n| 1 |\n"
	doc := filepath.Join(dir, "BENCHMARKS.md")
	before := "# Benchmarks\n\nintro\n\n" + resultsBegin + "\nold tables\n" + resultsEnd + "\n\n## What limits each figure\n\nanalysis\n"
	if err := os.WriteFile(doc, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // and again: the markers stay
		if err := writeResults(doc, results); err != nil {
			t.Fatal(err)
		}
		got, _ := os.ReadFile(doc)
		want := "# Benchmarks\n\nintro\n\n" + resultsBegin + "\n\n## partnerbench results\n\nCommand: `x`\n\n### point\n\n| a |\n| --- |\n| 1 |\n\n" + resultsEnd + "\n\n## What limits each figure\n\nanalysis\n"
		if string(got) != want {
			t.Fatalf("got\n%s\nwant\n%s", got, want)
		}
	}
	plain := filepath.Join(dir, "results.md")
	for range 2 {
		if err := writeResults(plain, results); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(plain); string(got) != results {
			t.Fatalf("got\n%s", got)
		}
	}
}
