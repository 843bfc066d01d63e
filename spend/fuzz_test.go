package spend

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
)

// The fuzz targets of the streamed expenditure sources (issue 11 point 9).
// Each holds the sources to what Source promises: a record that passes
// checkRecord, with amounts of at most 6 fractional and 14 integer digits,
// or a VALIDATION refusal naming its line — never a panic, never a line
// dropped without a word.

const fuzzGoodLine = `{"externalId":"e-1","customerId":7,"productCode":"ecs","region":"cn-north-1","billingMode":"PAY_PER_USE","usageAt":"2026-03-01T00:00:00Z","listAmount":"12.50","actualAmount":"10.000001"}`

// FuzzParseNDJSON: the NDJSON source gives, for every line of the body in
// order, exactly what that line gives on its own — a record, a refusal, or
// nothing for a blank line — up to a line longer than maxLineBytes, which
// ends the stream with a refusal. A line with anything but white space and
// RS on it is never skipped. A record is one encoding/json accepts as JSON,
// fits the column limits and comes back the same when written out again; a
// JSON object encoding/json accepts is never refused as malformed JSON
// (deeper nesting than the scanner follows aside).
func FuzzParseNDJSON(f *testing.F) {
	good := fuzzGoodLine
	with := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	nested := func(depth int) string {
		return with(`"region"`, `"x":`+strings.Repeat("[", depth)+strings.Repeat("]", depth)+`,"region"`)
	}
	for _, body := range []string{
		good,
		good + "\n" + good + "\n",
		"\n" + good + "\r\n\r\n  \t\n\x1e" + good + "\n" + with(`"e-1"`, `"e-2"`),
		with(`7`, `"`+ids.Encode("Account", 7)+`"`),
		with(`7`, `"`+ids.Encode("User", 7)+`"`),
		with(`7`, `99999999999999999999999999`),
		with(`7`, `1e400`),
		with(`7`, `-0`),
		with(`7`, `07`),
		with(`"region"`, `"x":-00.5,"region"`),
		with(`"12.50"`, `"99999999999999.999999"`),
		with(`"12.50"`, `"100000000000000"`),
		with(`"12.50"`, `"123456789012345678901234567890.123456789"`),
		with(`"12.50"`, `"1.0000001"`),
		with(`"12.50"`, `12.50`),
		with(`"12.50"`, `"1e3"`),
		with(`"12.50"`, `"\u0031\u0032"`),
		with(`"e-1"`, `"e-\xff\xfe"`),
		with(`"ecs"`, `"\ud800"`),
		with(`"ecs"`, `"\ud83d\ude00 \u00e9 \u0000"`),
		with(`"e-1"`, `"`+strings.Repeat("x", 300)+`"`),
		with(`"cn-north-1"`, `"`+strings.Repeat("é", 5000)+`"`),
		with(`"e-1"`, `"a","externalId":"b"`),
		with(`"e-1"`, `"a","externalId":null`),
		with(`"region"`, `"x":{"y":[1,-2.5e+3,true,false,null,"s\"\\"]},"region"`),
		nested(64),
		nested(65),
		nested(10000),
		with(`"usageAt":"2026-03-01T00:00:00Z"`, `"usageAt":"2026-03-01T08:00:00.123456789+08:00"`),
		with(`"usageAt":"2026-03-01T00:00:00Z"`, `"usageAt":"1999-12-31T23:59:59Z"`),
		with(`PAY_PER_USE`, `pay_per_use`),
		good[:len(good)-20],
		good + "}",
		"[1,2,3]",
		"{}",
		"",
		"\n\n\r\n",
		" \x1e \x1e \n",
		"\xef\xbb\xbf" + good,
		"{\"a\":01}",
		"{\"a\":1.}",
		"{\"a\":tru}",
		"{\"a\":\"\t\"}",
		"\x00",
		strings.Repeat("x", maxLineBytes-1) + "\n" + good,
		strings.Repeat("x", maxLineBytes) + "\n" + good,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		got := drainNDJSON(t, data)

		var want []fuzzOutcome
		for i, line := range splitNDJSON(data) {
			if len(line) >= maxLineBytes {
				want = append(want, fuzzOutcome{line: i + 1, reason: fmt.Sprintf("longer than %d bytes", maxLineBytes)})
				break
			}
			alone := drainNDJSON(t, line)
			switch {
			case len(alone) > 1:
				t.Fatalf("line %d alone gives %d outcomes: %+v", i+1, len(alone), alone)
			case len(alone) == 0:
				if bytes.ContainsFunc(line, func(r rune) bool { return !unicode.IsSpace(r) && r != '\x1e' }) {
					t.Fatalf("line %d is skipped as blank: %q", i+1, line)
				}
				continue
			}
			o := alone[0]
			if o.reason != "" {
				o.line = i + 1
			}
			checkNDJSONLine(t, i+1, line, o)
			want = append(want, o)
		}
		if len(got) != len(want) {
			t.Fatalf("the body gives %d outcomes, its lines on their own %d:\n%+v\n%+v", len(got), len(want), got, want)
		}
		for i := range got {
			if !sameOutcome(got[i], want[i]) {
				t.Fatalf("outcome %d of the body is %+v, on its own the line gives %+v", i, got[i], want[i])
			}
		}
	})
}

// checkNDJSONLine holds one line's outcome against encoding/json and writes
// an accepted record out and back.
func checkNDJSONLine(t *testing.T, n int, line []byte, o fuzzOutcome) {
	b := bytes.TrimSpace(bytes.TrimLeft(bytes.TrimSpace(line), "\x1e"))
	if o.reason == "" {
		if !json.Valid(b) {
			t.Fatalf("line %d is not JSON, but gives the record %+v: %q", n, o.rec, b)
		}
		checkFuzzRecord(t, o.rec)
		if want, ok := recordByEncodingJSON(b); !ok || !sameRecord(o.rec, want) {
			t.Fatalf("line %d gives %+v, encoding/json reads %+v (%v): %q", n, o.rec, want, ok, b)
		}
		again, msg := parseJSONRecord(ndjsonOf(o.rec), &interner{})
		if msg != "" || !sameRecord(again, o.rec) {
			t.Fatalf("line %d gives %+v; written out again it gives %+v, %q", n, o.rec, again, msg)
		}
		return
	}
	// The reasons of malformed JSON (the others start with a field's name
	// and may quote anything).
	syntax := strings.HasPrefix(o.reason, "invalid JSON at byte ") || o.reason == "not a JSON object" ||
		o.reason == "the JSON object is incomplete (a truncated stream?)"
	if syntax && !strings.HasSuffix(o.reason, ": nested too deeply") && json.Valid(b) && b[0] == '{' {
		t.Fatalf("line %d is a JSON object, refused as %q: %q", n, o.reason, b)
	}
}

// recordByEncodingJSON reads the fields of an accepted line with
// encoding/json (exact names, the last of duplicates), the yardstick of
// what the scanner makes of its strings, numbers and escapes.
func recordByEncodingJSON(b []byte) (Record, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return Record{}, false
	}
	var r Record
	str := func(name string) string {
		var s string
		if err := json.Unmarshal(m[name], &s); err != nil && m[name] != nil {
			return "\x00not a string"
		}
		return s
	}
	r.ExternalID, r.ProductCode, r.Region, r.BillingMode = str("externalId"), str("productCode"), str("region"), models.BillingMode(str("billingMode"))
	var msg string
	if raw := m["customerId"]; len(raw) > 0 && raw[0] != '"' {
		var err error
		if r.CustomerID, err = strconv.ParseInt(string(raw), 10, 64); err != nil {
			return r, false
		}
	} else if r.CustomerID, msg = parseCustomerID(str("customerId")); msg != "" {
		return r, false
	}
	if r.UsageAt, msg = parseUsageAt(str("usageAt")); msg != "" {
		return r, false
	}
	if r.List, msg = parseAmount("listAmount", str("listAmount")); msg != "" {
		return r, false
	}
	if r.Actual, msg = parseAmount("actualAmount", str("actualAmount")); msg != "" {
		return r, false
	}
	return r, true
}

// FuzzParseCSV: after a header of exactly the CSVHeader columns (anything
// else is refused at once), the CSV source gives a record or a refusal for
// every row encoding/csv reads, in order and on the row's line, and stops
// at the first refusal; a record holds the row's fields, fits the column
// limits and comes back the same when written out again.
func FuzzParseCSV(f *testing.F) {
	row := "e-1,7,ecs,cn-north-1,PAY_PER_USE,2026-03-01T00:00:00Z,12.50,10.000001"
	for _, body := range []string{
		CSVHeader + "\n" + row + "\n",
		"\xef\xbb\xbf" + CSVHeader + "\r\n" + row + "\r\n" + `e-2,` + ids.Encode("Account", 7) + `,"ecs, large",,RESERVED_INSTANCE,2026-03-02T00:00:00+08:00,3,2` + "\r\n",
		CSVHeader + "\n\n" + row + "\n\n",
		CSVHeader + "\n" + `"e""1",7,"e` + "\n" + `cs",r,SUBSCRIPTION,2026-03-01T00:00:00Z,1,1` + "\n",
		CSVHeader + "\n" + `e-1,7,ec"s,r,PAY_PER_USE,2026-03-01T00:00:00Z,1,1` + "\n" + row,
		CSVHeader + "\n" + `"e-1,7,ecs` + "\n",
		CSVHeader + "\n" + strings.Replace(row, "12.50", "123456789012345678901234567890", 1),
		CSVHeader + "\n" + strings.Replace(row, "12.50", "1.0000001", 1),
		CSVHeader + "\n" + strings.Replace(row, ",7,", ",99999999999999999999,", 1),
		CSVHeader + "\n" + strings.Replace(row, "e-1", "e-\xff", 1),
		CSVHeader + "\n" + strings.Replace(row, "e-1", strings.Repeat("x", 300), 1),
		CSVHeader + "\n" + strings.Replace(row, ",ecs,", ",ecs\x00,", 1),
		CSVHeader + "\n" + "e-1,7,ecs",
		CSVHeader + "\n" + row + ",extra",
		CSVHeader + "\n" + " " + row,
		CSVHeader,
		"external_id,customer_id\n" + row,
		`"` + CSVHeader + `"` + "\n" + row,
		`"external_id,customer_id",product_code,region,billing_mode,usage_at,list_amount,actual_amount` + "\n" + row,
		"# " + CSVHeader + "\n" + row,
		"",
		"\xef\xbb\xbf",
		"\r\n",
		CSVHeader + "\n" + strings.Replace(row, "cn-north-1", `"`+strings.Repeat("r", maxLineBytes)+`"`, 1) + "\n" + row,
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// encoding/csv on its own, the yardstick of the rows.
		plain := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))))
		plain.FieldsPerRecord = -1
		header, herr := plain.Read()

		src, err := NewCSVSource(bytes.NewReader(data))
		if err != nil {
			fuzzRefusal(t, err)
			if herr == nil && slices.Equal(header, csvColumns) && len(data) <= maxLineBytes {
				t.Fatalf("the header %q is refused: %v", header, err)
			}
			return
		}
		if herr != nil || !slices.Equal(header, csvColumns) {
			t.Fatalf("the header %q (%v) is accepted", header, herr)
		}
		for {
			rec, err := src.Next()
			fields, perr := plain.Read()
			if err == io.EOF {
				if perr != io.EOF {
					t.Fatalf("the source ended, encoding/csv still reads %q, %v", fields, perr)
				}
				return
			}
			if err != nil {
				line, reason := fuzzRefusal(t, err)
				var pe *csv.ParseError
				switch {
				case strings.HasPrefix(reason, "the row is longer than"):
					if len(data) <= maxLineBytes+64<<10 {
						t.Fatalf("a body of %d bytes refused as %q", len(data), reason)
					}
				case perr == io.EOF:
					t.Fatalf("line %d refused after the last row: %q", line, reason)
				case errors.As(perr, &pe):
					if line != pe.Line {
						t.Fatalf("refused on line %d (%q), encoding/csv fails on line %d", line, reason, pe.Line)
					}
				case perr != nil:
					t.Fatalf("encoding/csv fails: %v", perr)
				default:
					if at, _ := plain.FieldPos(0); line != at {
						t.Fatalf("the row of line %d refused as line %d: %q", at, line, reason)
					}
				}
				return
			}
			if perr != nil || len(fields) != len(csvColumns) {
				t.Fatalf("a record %+v from a row encoding/csv reads as %q, %v", rec, fields, perr)
			}
			checkFuzzRecord(t, rec)
			if rec.ExternalID != fields[0] || rec.ProductCode != fields[2] || rec.Region != fields[3] || string(rec.BillingMode) != fields[4] ||
				!sameAmount(rec.List, fields[6]) || !sameAmount(rec.Actual, fields[7]) {
				t.Fatalf("the row %q gives %+v", fields, rec)
			}
			again, err := NewCSVSource(strings.NewReader(CSVHeader + "\n" + csvOf(rec)))
			if err != nil {
				t.Fatal(err)
			}
			if back, err := again.Next(); err != nil || !sameRecord(back, rec) {
				t.Fatalf("the row %q gives %+v; written out again it gives %+v, %v", fields, rec, back, err)
			}
		}
	})
}

// fuzzOutcome is what a source gives for one line: a record, or the reason
// of its refusal and the line it names.
type fuzzOutcome struct {
	rec    Record
	line   int
	reason string
}

// splitNDJSON cuts data into lines as bufio.ScanLines does: at LF, with no
// empty line after a final LF.
func splitNDJSON(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	lines := bytes.Split(data, []byte("\n"))
	if len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	return lines
}

// drainNDJSON reads data through the NDJSON source, past refusals (the
// scanner goes on after one), to its end or a line too long to read.
func drainNDJSON(t *testing.T, data []byte) []fuzzOutcome {
	src := NewNDJSONSource(bytes.NewReader(data))
	var out []fuzzOutcome
	for range len(data) + 2 {
		rec, err := src.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			line, reason := fuzzRefusal(t, err)
			if len(out) > 0 && out[len(out)-1].line >= line && out[len(out)-1].reason != "" {
				t.Fatalf("refusal of line %d after one of line %d", line, out[len(out)-1].line)
			}
			out = append(out, fuzzOutcome{line: line, reason: reason})
			if strings.HasPrefix(reason, "longer than") {
				return out // the scanner cannot go past it
			}
			continue
		}
		out = append(out, fuzzOutcome{rec: rec})
	}
	t.Fatalf("more outcomes than %d bytes allow", len(data))
	return nil
}

// fuzzRefusal checks that err is a VALIDATION error naming a line, and
// returns the line and the reason.
func fuzzRefusal(t *testing.T, err error) (int, string) {
	t.Helper()
	ae, ok := apperr.As(err)
	if !ok || ae.Code != apperr.Validation {
		t.Fatalf("%v (%T): want VALIDATION", err, err)
	}
	n, reason, ok := strings.Cut(strings.TrimPrefix(ae.Message, "line "), ": ")
	line, nerr := strconv.Atoi(n)
	if !ok || nerr != nil || line < 1 || reason == "" {
		if strings.HasPrefix(ae.Message, "the CSV is empty") {
			return 1, ae.Message
		}
		t.Fatalf("refusal %q names no line and no reason", ae.Message)
	}
	return line, reason
}

// checkFuzzRecord holds a record to the limits of the expenditures table.
func checkFuzzRecord(t *testing.T, r Record) {
	t.Helper()
	if msg := checkRecord(&r); msg != "" {
		t.Fatalf("record %+v: %s", r, msg)
	}
	for _, d := range []decimal.Decimal{r.List, r.Actual} {
		if e := d.Exponent(); e < -6 || e > 0 {
			t.Fatalf("record %+v: an amount with exponent %d, want -6..0", r, e)
		}
	}
	if r.List.Abs().GreaterThanOrEqual(maxAmount) || r.Actual.Abs().GreaterThanOrEqual(maxAmount) {
		t.Fatalf("record %+v: an amount of 15 or more integer digits", r)
	}
	if r.UsageAt.Location() != time.UTC {
		t.Fatalf("record %+v: usageAt in %s, want UTC", r, r.UsageAt.Location())
	}
}

func sameRecord(a, b Record) bool {
	return a.ExternalID == b.ExternalID && a.CustomerID == b.CustomerID && a.ProductCode == b.ProductCode &&
		a.Region == b.Region && a.BillingMode == b.BillingMode && a.UsageAt.Equal(b.UsageAt) &&
		a.UsageAt.Location() == b.UsageAt.Location() &&
		a.List.Cmp(b.List) == 0 && a.List.Exponent() == b.List.Exponent() &&
		a.Actual.Cmp(b.Actual) == 0 && a.Actual.Exponent() == b.Actual.Exponent()
}

func sameOutcome(a, b fuzzOutcome) bool {
	if a.reason != "" || b.reason != "" {
		return a.reason == b.reason && a.line == b.line
	}
	return sameRecord(a.rec, b.rec)
}

// sameAmount reports whether d is the amount s writes, with its scale.
func sameAmount(d decimal.Decimal, s string) bool {
	want, msg := parseAmount("amount", s)
	return msg == "" && d.Cmp(want) == 0 && d.Exponent() == want.Exponent()
}

// amountText writes d with its scale ("1.000000" stays so).
func amountText(d decimal.Decimal) string { return d.StringFixed(-d.Exponent()) }

// ndjsonOf writes r as an NDJSON line.
func ndjsonOf(r Record) []byte {
	b, err := json.Marshal(map[string]any{
		"externalId": r.ExternalID, "customerId": r.CustomerID, "productCode": r.ProductCode, "region": r.Region,
		"billingMode": r.BillingMode, "usageAt": r.UsageAt.Format(time.RFC3339Nano),
		"listAmount": amountText(r.List), "actualAmount": amountText(r.Actual),
	})
	if err != nil {
		panic(err)
	}
	return b
}

// csvOf writes r as a CSV row.
func csvOf(r Record) string {
	var b strings.Builder
	w := csv.NewWriter(&b)
	_ = w.Write([]string{r.ExternalID, strconv.FormatInt(r.CustomerID, 10), r.ProductCode, r.Region, string(r.BillingMode),
		r.UsageAt.Format(time.RFC3339Nano), amountText(r.List), amountText(r.Actual)})
	w.Flush()
	return b.String()
}

// TestParseJSONRecord_UnpairedSurrogateKeepsTheNextEscape (found by
// FuzzParseNDJSON): a surrogate without its pair reads as U+FFFD and the
// escape after it as itself, as encoding/json reads them, so two external
// IDs that differ after it stay two.
func TestParseJSONRecord_UnpairedSurrogateKeepsTheNextEscape(t *testing.T) {
	for in, want := range map[string]string{
		`\ud800\u0041`:       "\ufffdA",
		`\ud800\u0042`:       "\ufffdB",
		`\udc00\udc00`:       "\ufffd\ufffd",
		`\ud800\ud800\udc00`: "\ufffd\U00010000",
		`\ud83d\ude00`:       "\U0001F600",
		`\ud800`:             "\ufffd",
		`\ud800x`:            "\ufffdx",
		`\ud800\n`:           "\ufffd\n",
	} {
		line := strings.Replace(fuzzGoodLine, `"e-1"`, `"`+in+`"`, 1)
		rec, msg := parseJSONRecord([]byte(line), &interner{})
		var m map[string]string
		_ = json.Unmarshal([]byte(`{"v":"`+in+`"}`), &m)
		if msg != "" || rec.ExternalID != want || m["v"] != want {
			t.Errorf("%s: externalId %q, %q (encoding/json: %q), want %q", in, rec.ExternalID, msg, m["v"], want)
		}
	}
}
