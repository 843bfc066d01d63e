package expenditures_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/expenditures"
	"partnerd/ids"
	"partnerd/models"
)

// readCSV checks the BOM and CRLF line ends and parses the export.
func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	if !bytes.HasPrefix(b, []byte("\xef\xbb\xbf")) {
		t.Fatalf("no byte-order mark: %q", b[:min(len(b), 20)])
	}
	if !bytes.HasSuffix(b, []byte("\r\n")) {
		t.Fatalf("the export does not end with CRLF")
	}
	rows, err := csv.NewReader(bytes.NewReader(b[3:])).ReadAll()
	if err != nil {
		t.Fatalf("parse the export: %v", err)
	}
	return rows
}

func (f *fixture) export(t *testing.T, ctx context.Context, kind expenditures.ExportKind, g expenditures.GroupBy, fl expenditures.Filter) [][]string {
	t.Helper()
	exp, err := f.Exp.PrepareExport(ctx, kind, g, fl)
	if err != nil {
		t.Fatalf("prepare: %v", err)
	}
	var buf bytes.Buffer
	if err := exp.WriteCSV(ctx, &buf); err != nil {
		t.Fatalf("write: %v", err)
	}
	return readCSV(t, buf.Bytes())
}

// The records export holds exactly the records of the caller's scope, one
// line each, with exact amounts, the names it may see and formula-like text
// made harmless; summary exports hold Summarize's rows in its order.
func TestExport_RecordsAndSummaries(t *testing.T) {
	f := newFixture(t, ts("2026-03-20T00:00:00Z"))
	tr := f.Tree
	evil, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: tr.R1.Account.ID,
		Name: "=HYPERLINK(\"http://evil.example\")", Tags: []accounts.Tag{{Key: "@owner", Value: "+1 555"}}})
	if err != nil {
		t.Fatal(err)
	}
	formula := rec("-2+3", evil.ID, "2026-03-02T00:00:00Z", "1234.5", "1000.123456")
	formula.ProductCode, formula.Region = "@SUM(A1)", "=cmd|' /C calc'!A0"
	f.ingestAt(t, ts("2026-03-20T01:02:03.456Z"), formula,
		rec("c1", tr.C1.Account.ID, "2026-03-01T00:00:00Z", "10", "9.99"),
		rec("c4", tr.C4.Account.ID, "2026-03-01T00:00:00Z", "7", "7"))
	// Records are read in fetches of two, so the export crosses fetch boundaries.
	expenditures.SetFetchSize(f.Exp, 2)

	rows := f.export(t, tr.R1.Ctx, expenditures.ExportRecords, "", expenditures.Filter{})
	if strings.Join(rows[0], ",") != strings.Join(expenditures.RecordsHeader, ",") {
		t.Fatalf("header %q", rows[0])
	}
	if len(rows) != 3 {
		t.Fatalf("R1's export: %q", rows)
	}
	byExt := map[string]map[string]string{}
	for _, r := range rows[1:] {
		m := map[string]string{}
		for i, h := range rows[0] {
			m[h] = r[i]
		}
		byExt[m["external_id"]] = m
	}
	got := byExt["'-2+3"]
	want := map[string]string{
		"customer_id": ids.Encode("Account", evil.ID), "customer_name": "'=HYPERLINK(\"http://evil.example\")",
		"owner_id": ids.Encode("Account", tr.R1.Account.ID), "owner_name": "Reseller One",
		"product_code": "'@SUM(A1)", "region": "'=cmd|' /C calc'!A0", "billing_mode": "PAY_PER_USE",
		"usage_at": "2026-03-02T00:00:00Z", "month": "2026-03", "list_amount": "1234.50", "actual_amount": "1000.123456",
		"received_at": "2026-03-20T01:02:03.456Z", "adjustment": "false", "tags": `{"@owner":"+1 555"}`,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if c1 := byExt["c1"]; c1["actual_amount"] != "9.99" || c1["tags"] != "" || c1["customer_name"] != "Customer One" {
		t.Errorf("C1's record: %v", c1)
	}

	// A customer's export: its own records, its partner unnamed.
	rows = f.export(t, tr.C1.Ctx, expenditures.ExportRecords, "", expenditures.Filter{})
	if len(rows) != 2 || rows[1][1] != "c1" || rows[1][4] != "" || rows[1][5] != "" || rows[1][3] != "Customer One" {
		t.Errorf("C1's export: %q", rows)
	}

	// Summaries: the same rows as Summarize, in its order.
	for _, g := range groupings {
		s, err := f.Exp.Summarize(tr.D1.Ctx, g, expenditures.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		rows := f.export(t, tr.D1.Ctx, expenditures.ExportSummary, g, expenditures.Filter{})
		if len(rows) != len(s.Rows)+1 {
			t.Fatalf("by %s: %q", g, rows)
		}
		for i, r := range s.Rows {
			line := strings.Join(rows[i+1], ",")
			var key string
			switch g {
			case expenditures.ByCustomer:
				name := "Customer One"
				if r.CustomerID == evil.ID {
					name = `'=HYPERLINK("http://evil.example")`
				}
				key = ids.Encode("Account", r.CustomerID) + "," + name
			case expenditures.ByProduct:
				key = expenditures.SafeCell(r.ProductCode)
			case expenditures.ByDay:
				key = r.Day
			case expenditures.ByMonth:
				key = r.Month.String()
			}
			want := fmt.Sprintf("%s,%s,%s,%d,%s", key, models.FormatDecimal(r.List), models.FormatDecimal(r.Actual), r.Records,
				"2026-03-20T01:02:03.456Z")
			if line != want {
				t.Errorf("by %s, row %d: %s, want %s", g, i, line, want)
			}
		}
	}
	// An empty export is its header.
	rows = f.export(t, tr.D2.Ctx, expenditures.ExportSummary, expenditures.ByDay, expenditures.Filter{})
	if len(rows) != 1 || strings.Join(rows[0], ",") != "day,list_amount,actual_amount,records,as_of" {
		t.Errorf("D2's empty summary: %q", rows)
	}
}

// countingWriter records the writes of an export, and how many fetches of
// its cursor had been made at the first one.
type countingWriter struct {
	fetches        *int
	writes         int
	bytes          int
	maxWrite       int
	fetchesAtFirst int
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.writes == 0 {
		w.fetchesAtFirst = *w.fetches
	}
	w.writes++
	w.bytes += len(p)
	w.maxWrite = max(w.maxWrite, len(p))
	return len(p), nil
}

// A large export streams: its first bytes are written after the first fetch
// of 1,000 rows from the cursor, before the second (the other 49,000 not yet
// read), in many bounded writes rather than one buffer of the whole file;
// and every record is in it once, with amounts that add up exactly.
func TestExport_StreamsFromTheCursor(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests 50,000 records")
	}
	f := newFixture(t, ts("2026-02-28T00:00:00Z"))
	tr := f.Tree
	const n = 50_000
	recs := randomRecords(42, "big", n, []int64{tr.C1.Account.ID, tr.C2.Account.ID, tr.C3.Account.ID},
		ts("2026-01-01T00:00:00Z"), ts("2026-02-27T00:00:00Z"))
	f.ingestMany(t, ts("2026-02-28T00:00:00Z"), recs)
	var list decimal.Decimal
	for _, r := range recs {
		list = list.Add(r.List)
	}
	exp, err := f.Exp.PrepareExport(tr.D1.Ctx, expenditures.ExportRecords, "", expenditures.Filter{Period: period("2026-01", "2026-02")})
	if err != nil {
		t.Fatal(err)
	}
	fetches := 0
	expenditures.SetOnFetch(f.Exp, func() { fetches++ })
	w := &countingWriter{fetches: &fetches}
	if err := exp.WriteCSV(tr.D1.Ctx, w); err != nil {
		t.Fatal(err)
	}
	if w.fetchesAtFirst != 1 {
		t.Errorf("the first bytes were written after %d fetches: want them out before the second fetch", w.fetchesAtFirst)
	}
	if fetches != n/1000+1 {
		t.Errorf("%d fetches, want %d of 1,000 rows and the empty last one", fetches, n/1000+1)
	}
	if w.writes < 50 || w.maxWrite > 64<<10 {
		t.Errorf("%d writes of at most %d bytes (%d in all): want many bounded writes", w.writes, w.maxWrite, w.bytes)
	}
	expenditures.SetOnFetch(f.Exp, nil)

	// And the content, read back.
	var buf bytes.Buffer
	if err := exp.WriteCSV(tr.D1.Ctx, &buf); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, buf.Bytes())
	if len(rows) != n+1 {
		t.Fatalf("%d lines, want %d records and the header", len(rows), n)
	}
	seen := map[string]bool{}
	var sum decimal.Decimal
	for _, r := range rows[1:] {
		if seen[r[1]] {
			t.Fatalf("%s twice", r[1])
		}
		seen[r[1]] = true
		sum = sum.Add(decimal.RequireFromString(r[11]))
	}
	if !sum.Equal(list) {
		t.Errorf("list amounts add up to %s, want %s", sum, list)
	}
}
