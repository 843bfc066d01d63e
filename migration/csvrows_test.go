package migration_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"partnerd/apperr"
	"partnerd/migration"
)

// FuzzReadRows: an upload is refused as a whole with VALIDATION, or gives
// the width of its header (the required columns, then up to all of them)
// and at most MaxRows rows of UTF-8 text, in file order, none of them blank
// — never a panic. With the template's own columns it refuses what
// ParseTemplate refuses and returns a row for each row ParseTemplate
// imports or rejects, on the same line.
func FuzzReadRows(f *testing.F) {
	for _, s := range []string{
		migration.Template,
		"customer_id,type,amount,note\n1,MONTHLY,5,x\n2,ONE_TIME\n3,a,b,c,d\n",
		"\xef\xbb\xbf Customer_ID , TYPE\r\n# a comment\r\n1,x\r\n\r\n  \r\n\"2\",\"a,b\"\r\n",
		"customer_id\n\"multi\nline\",x\n\"a\"\"b\"\n",
		"# before\n\ncustomer_id,type\n1,2\n",
		"customer_id,type,amount,note,extra\n1,2,3,4,5\n",
		"type,customer_id\n1,2\n",
		"customer_id\n\"broken\n",
		"customer_id\nab\"c\n",
		"customer_id\n\xff\xfe\n",
		"customer_id\n\x00\n",
		"",
		"\xef\xbb\xbf",
		"customer_account_id,credit_to_allocate\n1,5\n\"2\",\"3.5\"\n3,-1\n1,4\n,\n 4 , 1.0000001 \n5\n",
	} {
		f.Add(uint8(0), []byte(s))
	}
	f.Add(uint8(2), []byte("customer_id,type,amount\n1,2,3\n"))
	f.Fuzz(func(t *testing.T, required uint8, data []byte) {
		columns := []string{"customer_id", "type", "amount", "note"}
		req := 1 + int(required)%len(columns)
		width, rows, err := migration.ReadRows(bytes.NewReader(data), columns, req)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("non-validation error %v", err)
			}
		} else {
			if width < req || width > len(columns) {
				t.Fatalf("width %d, want %d..%d", width, req, len(columns))
			}
			checkRows(t, rows)
		}

		// The template's columns: ReadRows and ParseTemplate read a file alike.
		tw, trows, terr := migration.ReadRows(bytes.NewReader(data), []string{migration.ColumnAccount, migration.ColumnCredit}, 2)
		imported, rejected, perr := migration.ParseTemplate(bytes.NewReader(data))
		if (terr == nil) != (perr == nil) {
			t.Fatalf("ReadRows: %v; ParseTemplate: %v", terr, perr)
		}
		if terr != nil {
			return
		}
		if tw != 2 {
			t.Fatalf("template columns: width %d", tw)
		}
		checkRows(t, trows)
		var want, got []int
		for _, r := range imported {
			want = append(want, r.Line)
		}
		for _, r := range rejected {
			want = append(want, r.Line)
		}
		for _, r := range trows {
			got = append(got, r.Line)
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("ReadRows gives the rows of lines %v, ParseTemplate imports or rejects %v", got, want)
		}
	})
}

// checkRows holds the rows ReadRows returns to its promises.
func checkRows(t *testing.T, rows []migration.Record) {
	t.Helper()
	if len(rows) > migration.MaxRows {
		t.Fatalf("%d rows", len(rows))
	}
	prev := 1 // the header's line, at least
	for _, r := range rows {
		if r.Line <= prev {
			t.Fatalf("row of line %d after line %d", r.Line, prev)
		}
		prev = r.Line
		if len(r.Fields) == 0 || (len(r.Fields) == 1 && strings.TrimSpace(r.Fields[0]) == "") {
			t.Fatalf("blank row %+v", r)
		}
		for _, s := range r.Fields {
			if !utf8.ValidString(s) || strings.ContainsRune(s, 0) {
				t.Fatalf("row %+v: a field that is not UTF-8 text", r)
			}
		}
	}
}

// TestParseTemplate_MaxRowsThenABlankLine: a blank line is not a row, so
// MaxRows rows and a blank line are accepted, by ParseTemplate as by
// ReadRows. (ParseTemplate counted the blank line; FuzzReadRows compares the
// two, but a fuzzer does not write 10,000 rows, so the case is spelt out.)
func TestParseTemplate_MaxRowsThenABlankLine(t *testing.T) {
	var b strings.Builder
	b.WriteString(migration.ColumnAccount + "," + migration.ColumnCredit + "\n")
	for i := 0; i < migration.MaxRows; i++ {
		b.WriteString(itoa(i+1) + ",1\n")
	}
	b.WriteString("  \n")
	rows, rejected, err := migration.ParseTemplate(strings.NewReader(b.String()))
	if err != nil || len(rows) != migration.MaxRows || len(rejected) != 0 {
		t.Fatalf("%d rows, %d rejected, %v; want %d rows", len(rows), len(rejected), err, migration.MaxRows)
	}
	_, recs, err := migration.ReadRows(strings.NewReader(b.String()), []string{migration.ColumnAccount, migration.ColumnCredit}, 2)
	if err != nil || len(recs) != migration.MaxRows {
		t.Fatalf("ReadRows: %d rows, %v", len(recs), err)
	}
}
