package migration_test

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/migration"
)

func TestParseTemplate_RowsAndRejections(t *testing.T) {
	g := func(n int64) string { return ids.Encode("Account", n) }
	file := "\xef\xbb\xbfCustomer_Account_ID , credit_to_allocate\r\n" +
		"# a comment\r\n" +
		g(11) + ",5000.00\r\n" +
		"\r\n" +
		"12,0\n" +
		g(13) + ",-5\n" +
		g(14) + ",abc\n" +
		g(15) + ",1.1234567\n" +
		g(16) + ",100,extra\n" +
		"\"" + g(17) + "\",\"1,000\"\n" +
		"nonsense,10\n" +
		",10\n" +
		g(11) + ",1\n" +
		g(18) + ",\n" +
		"  " + g(19) + " , 7.5 \n"
	rows, rejected, err := migration.ParseTemplate(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join([]string{itoa(r.Line), itoa(int(r.AccountID)), r.Credit.String()}, ":"))
	}
	if strings.Join(got, " ") != "3:11:5000 5:12:0 15:19:7.5" {
		t.Fatalf("rows %v", got)
	}
	want := map[int]string{
		6: "cannot be negative", 7: "not an amount", 8: "not an amount", 9: "expected 2 columns", 10: "not an amount",
		11: "is not a customer account ID", 12: "is empty", 13: "already appears in row 3", 14: "credit to allocate is empty",
	}
	if len(rejected) != len(want) {
		t.Fatalf("rejected %+v", rejected)
	}
	for _, r := range rejected {
		if !strings.Contains(r.Reason, want[r.Line]) {
			t.Errorf("row %d: %q, want %q", r.Line, r.Reason, want[r.Line])
		}
	}
	// The template itself parses to nothing, without errors.
	if rows, rejected, err := migration.ParseTemplate(strings.NewReader(migration.Template)); err != nil || len(rows)+len(rejected) != 0 {
		t.Fatalf("template: %v %v %v", rows, rejected, err)
	}
}

func TestParseTemplate_WholeFileRefusals(t *testing.T) {
	header := migration.ColumnAccount + "," + migration.ColumnCredit + "\n"
	many := &strings.Builder{}
	many.WriteString(header)
	for i := 0; i <= migration.MaxRows; i++ {
		many.WriteString(itoa(i+1) + ",1\n")
	}
	for name, file := range map[string]string{
		"empty":         "",
		"wrong header":  "account,credit\n1,2\n",
		"extra columns": "customer_account_id,credit_to_allocate,note\n",
		"binary":        "\x89PNG\r\n\x1a\n\x00\x00",
		"bad quote":     header + "\"12,5\n",
		"too many rows": many.String(),
		"too large":     header + strings.Repeat("#"+strings.Repeat("x", 1000)+"\n", migration.MaxBytes/1000+10),
	} {
		_, _, err := migration.ParseTemplate(strings.NewReader(file))
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: %v, want VALIDATION", name, err)
		}
	}
	exactly := &strings.Builder{}
	exactly.WriteString(header)
	for i := 0; i < migration.MaxRows; i++ {
		exactly.WriteString(itoa(i+1) + ",1\n")
	}
	if rows, _, err := migration.ParseTemplate(strings.NewReader(exactly.String())); err != nil || len(rows) != migration.MaxRows {
		t.Fatalf("%d rows: %d, %v", migration.MaxRows, len(rows), err)
	}
}

// FuzzParseTemplate: any input either is refused as a whole with
// VALIDATION or yields rows that hold the rules — never a panic.
func FuzzParseTemplate(f *testing.F) {
	f.Add([]byte(migration.Template))
	f.Add([]byte("customer_account_id,credit_to_allocate\n1,5\n\"2\",\"3.5\"\n3,-1\n"))
	f.Add([]byte("\xef\xbb\xbfcustomer_account_id,credit_to_allocate\r\n# x\r\nQWNjb3VudDo1,1.000001\r\n"))
	f.Add([]byte("customer_account_id,credit_to_allocate\n\"a\"\"b\",1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, rejected, err := migration.ParseTemplate(bytes.NewReader(data))
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("non-validation error %v", err)
			}
			return
		}
		if len(rows)+len(rejected) > migration.MaxRows {
			t.Fatalf("%d rows", len(rows)+len(rejected))
		}
		seen := map[int64]bool{}
		for _, r := range rows {
			if r.Credit.IsNegative() || r.Credit.Exponent() < -6 || r.AccountID <= 0 || seen[r.AccountID] || r.Line < 2 {
				t.Fatalf("bad row %+v", r)
			}
			seen[r.AccountID] = true
		}
		for _, r := range rejected {
			if r.Reason == "" || r.Line < 2 {
				t.Fatalf("bad rejection %+v", r)
			}
		}
	})
}

func itoa(n int) string { return strconv.Itoa(n) }
