package spend

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
)

// Record is one expenditure record from the cloud's billing pipeline
// (DOMAIN.md §4). ExternalID is its idempotency key. Amounts are exact
// decimals with at most 14 integer and 6 fractional digits; whether they make
// sense (not negative, actual ≤ list) is judged per record by Ingest.
type Record struct {
	ExternalID  string
	CustomerID  int64
	ProductCode string
	Region      string
	BillingMode models.BillingMode
	UsageAt     time.Time
	List        decimal.Decimal
	Actual      decimal.Decimal
}

// Source yields the records of one ingestion request, in order. Next returns
// io.EOF after the last record. A malformed record (bad JSON, a malformed
// decimal or time, an unknown billing mode, a missing field) is an
// *apperr.Error with code VALIDATION naming its line or record number, and
// Ingest then refuses the whole request. Any other error is a transport
// failure (the body could not be read).
type Source interface {
	Next() (Record, error)
}

// checkedSource marks the sources of this package, which run checkRecord
// themselves (naming the line); Ingest checks the records of any other.
type checkedSource interface{ checksRecords() }

func (*sliceSource) checksRecords()  {}
func (*ndjsonSource) checksRecords() {}
func (*csvSource) checksRecords()    {}

// Limits on the text fields of a record.
const (
	maxExternalID  = 200
	maxProductCode = 100
	maxRegion      = 100
	// maxLineBytes bounds one NDJSON line or CSV row.
	maxLineBytes = 64 << 10
)

var maxAmount = decimal.New(1, 14)

// checkRecord returns what is malformed in r, or "". It is the shape check
// every source shares; the business checks happen in Ingest.
func checkRecord(r *Record) string {
	switch {
	case r.ExternalID == "":
		return "externalId is required"
	case len(r.ExternalID) > maxExternalID:
		return fmt.Sprintf("externalId is longer than %d bytes", maxExternalID)
	case !cleanText(r.ExternalID):
		return "externalId is not valid UTF-8 text"
	case r.ProductCode == "":
		return "productCode is required"
	case len(r.ProductCode) > maxProductCode:
		return fmt.Sprintf("productCode is longer than %d bytes", maxProductCode)
	case !cleanText(r.ProductCode):
		return "productCode is not valid UTF-8 text"
	case len(r.Region) > maxRegion:
		return fmt.Sprintf("region is longer than %d bytes", maxRegion)
	case !cleanText(r.Region):
		return "region is not valid UTF-8 text"
	case !r.BillingMode.IsValid():
		return fmt.Sprintf("billingMode %q is not one of PAY_PER_USE, SUBSCRIPTION, RESERVED_INSTANCE", apperr.Clip(string(r.BillingMode)))
	case r.UsageAt.IsZero():
		return "usageAt is required"
	case r.UsageAt.UTC().Year() < 2000 || r.UsageAt.UTC().Year() > 2999:
		return fmt.Sprintf("usageAt %s is not a plausible usage time", r.UsageAt.UTC().Format(time.RFC3339))
	}
	if msg := checkAmount("listAmount", r.List); msg != "" {
		return msg
	}
	return checkAmount("actualAmount", r.Actual)
}

func checkAmount(field string, d decimal.Decimal) string {
	if e := d.Exponent(); e >= -6 && e <= 0 && int(e)+d.NumDigits() <= 14 {
		return "" // at most 6 fractional and 14 integer digits, told without arithmetic
	}
	if !d.Equal(d.Truncate(6)) || d.Abs().GreaterThanOrEqual(maxAmount) {
		return fmt.Sprintf("%s %s does not fit: at most 14 digits before the point and 6 after it", field, apperr.Clip(d.String()))
	}
	return ""
}

// cleanText reports whether s can be stored as PostgreSQL text.
func cleanText(s string) bool { return utf8.ValidString(s) && !strings.ContainsRune(s, 0) }

// clip shortens s for an error message, on a character boundary.

// SliceSource yields recs in order: the GraphQL recordExpenditures path.
// Ingest refuses a SliceSource of more than MaxGraphQLBatch records as a
// whole (VALIDATION) before reading any; larger loads stream through
// POST /v1/expenditures. A malformed record is named by its 0-based index.
func SliceSource(recs []Record) Source { return &sliceSource{recs: recs} }

type sliceSource struct {
	recs []Record
	i    int
}

func (s *sliceSource) Next() (Record, error) {
	if s.i >= len(s.recs) {
		return Record{}, io.EOF
	}
	r := s.recs[s.i]
	s.i++
	if msg := checkRecord(&r); msg != "" {
		return Record{}, recordError(int64(s.i-1), "%s", msg)
	}
	return r, nil
}

// NewNDJSONSource reads one JSON object per line:
//
//	{"externalId": "...", "customerId": "<Account global ID>" or 42,
//	 "productCode": "...", "region": "...", "billingMode": "PAY_PER_USE",
//	 "usageAt": "2026-01-31T16:00:00Z", "listAmount": "12.50", "actualAmount": "10.00"}
//
// customerId is the account's global ID or its plain integer key; amounts are
// decimal strings (numbers are refused, so money never passes through a
// binary float); usageAt is RFC 3339 with its offset. Blank lines are
// skipped, CRLF and a leading RS (application/json-seq) are tolerated, field
// names are case-sensitive and unknown fields are ignored. A line that is not a complete JSON object — a
// truncated last line included — is VALIDATION naming the line.
func NewNDJSONSource(r io.Reader) Source {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLineBytes)
	return &ndjsonSource{sc: sc}
}

type ndjsonSource struct {
	sc     *bufio.Scanner
	line   int
	intern interner
}

func (s *ndjsonSource) Next() (Record, error) {
	for s.sc.Scan() {
		s.line++
		b := bytes.TrimSpace(bytes.TrimLeft(bytes.TrimSpace(s.sc.Bytes()), "\x1e"))
		if len(b) == 0 {
			continue
		}
		rec, msg := parseJSONRecord(b, &s.intern)
		if msg != "" {
			return Record{}, lineError(s.line, "%s", msg)
		}
		return rec, nil
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Record{}, lineError(s.line+1, "longer than %d bytes", maxLineBytes)
		}
		return Record{}, fmt.Errorf("read NDJSON after line %d: %w", s.line, &BodyError{Err: err})
	}
	return Record{}, io.EOF
}

// parseJSONRecord reads one NDJSON line. It is a scanner for the flat
// objects the pipeline sends, several times faster than encoding/json with
// reflection, which matters at millions of records per request: field names
// match exactly, values of unknown fields are skipped whatever they are.
func parseJSONRecord(b []byte, in *interner) (Record, string) {
	p := jsonScanner{b: b, intern: in}
	var rec Record
	var have struct{ ext, cust, prod, mode, usage, list, actual bool }
	p.ws()
	if p.i >= len(p.b) || p.b[p.i] != '{' {
		return rec, "not a JSON object"
	}
	p.i++
	p.ws()
	if p.peek() == '}' {
		p.i++
	} else {
		for {
			p.ws()
			key, err := p.key()
			if err != nil {
				return rec, p.fail(err)
			}
			p.ws()
			if err := p.expect(':'); err != nil {
				return rec, p.fail(err)
			}
			p.ws()
			var msg string
			switch string(key) { // no copy: the cases compare bytes
			case "externalId":
				rec.ExternalID, have.ext, msg = p.strField("externalId")
			case "customerId":
				rec.CustomerID, have.cust, msg = p.customerID()
			case "productCode":
				rec.ProductCode, have.prod, msg = p.internedField("productCode")
			case "region":
				rec.Region, _, msg = p.internedField("region")
			case "billingMode":
				var m string
				m, have.mode, msg = p.internedField("billingMode")
				rec.BillingMode = models.BillingMode(m)
			case "usageAt":
				var u string
				if u, have.usage, msg = p.strField("usageAt"); msg == "" && have.usage {
					rec.UsageAt, msg = parseUsageAt(u)
				}
			case "listAmount":
				rec.List, have.list, msg = p.amount("listAmount")
			case "actualAmount":
				rec.Actual, have.actual, msg = p.amount("actualAmount")
			default:
				if err := p.skip(0); err != nil {
					return rec, p.fail(err)
				}
			}
			if msg != "" {
				return rec, msg
			}
			p.ws()
			if p.peek() == ',' {
				p.i++
				continue
			}
			if err := p.expect('}'); err != nil {
				return rec, p.fail(err)
			}
			break
		}
	}
	p.ws()
	if p.i < len(p.b) {
		return rec, fmt.Sprintf("invalid JSON at byte %d: unexpected %q after the object", p.i+1, apperr.Clip(string(p.b[p.i:])))
	}
	switch {
	case !have.ext:
		return rec, "externalId is required"
	case !have.cust:
		return rec, "customerId is required"
	case !have.prod:
		return rec, "productCode is required"
	case !have.mode:
		return rec, "billingMode is required"
	case !have.usage:
		return rec, "usageAt is required"
	case !have.list:
		return rec, "listAmount is required"
	case !have.actual:
		return rec, "actualAmount is required"
	}
	return rec, checkRecord(&rec)
}

// errIncomplete is the end of a line in the middle of a JSON value.
var errIncomplete = errors.New("incomplete")

// jsonScanner reads JSON values from one line.
type jsonScanner struct {
	b      []byte
	i      int
	intern *interner
}

// interner shares the strings of the fields that repeat from record to
// record (product code, region, billing mode), so a million records do not
// allocate three million copies of a handful of values.
type interner struct{ m map[string]string }

// maxInterned bounds an interner; values beyond it are not shared.
const maxInterned = 4096

func (in *interner) get(b []byte) string {
	if s, ok := in.m[string(b)]; ok {
		return s
	}
	s := string(b)
	if in.m == nil {
		in.m = map[string]string{}
	}
	if len(in.m) < maxInterned {
		in.m[s] = s
	}
	return s
}

// key reads an object key; it aliases the line unless the key has escapes.
func (p *jsonScanner) key() ([]byte, error) {
	if err := p.expect('"'); err != nil {
		return nil, err
	}
	start := p.i
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == '"':
			p.i++
			return p.b[start : p.i-1], nil
		case c == '\\':
			s, err := p.escaped(start)
			return []byte(s), err
		case c < 0x20:
			return nil, errors.New("control character in a string")
		}
		p.i++
	}
	return nil, errIncomplete
}

func (p *jsonScanner) fail(err error) string {
	if errors.Is(err, errIncomplete) {
		return "the JSON object is incomplete (a truncated stream?)"
	}
	return fmt.Sprintf("invalid JSON at byte %d: %s", p.i+1, err)
}

func (p *jsonScanner) ws() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		default:
			return
		}
	}
}

func (p *jsonScanner) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *jsonScanner) expect(c byte) error {
	if p.i >= len(p.b) {
		return errIncomplete
	}
	if p.b[p.i] != c {
		return fmt.Errorf("expected %q, found %q", c, p.b[p.i])
	}
	p.i++
	return nil
}

// str reads a JSON string.
func (p *jsonScanner) str() (string, error) {
	if err := p.expect('"'); err != nil {
		return "", err
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(p.b[start : p.i-1]), nil
		case c == '\\':
			return p.escaped(start)
		case c < 0x20:
			return "", errors.New("control character in a string")
		}
		p.i++
	}
	return "", errIncomplete
}

// escaped finishes a string that has escapes, from its first backslash.
func (p *jsonScanner) escaped(start int) (string, error) {
	buf := append([]byte(nil), p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			return string(buf), nil
		case c < 0x20:
			return "", errors.New("control character in a string")
		case c != '\\':
			buf = append(buf, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return "", errIncomplete
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			buf = append(buf, e)
		case 'b':
			buf = append(buf, '\b')
		case 'f':
			buf = append(buf, '\f')
		case 'n':
			buf = append(buf, '\n')
		case 'r':
			buf = append(buf, '\r')
		case 't':
			buf = append(buf, '\t')
		case 'u':
			r, err := p.hex4()
			if err != nil {
				return "", err
			}
			if utf16.IsSurrogate(r) {
				// A surrogate takes the \u escape after it only when the two
				// make a pair; otherwise it is U+FFFD and that escape is a
				// character of its own, as encoding/json reads it. Taking it
				// regardless lost a character ("\ud800\u0041" read as
				// "\ufffd", the same external ID as "\ud800\u0042").
				r2 := rune(-1)
				next := p.i
				if p.i+1 < len(p.b) && p.b[p.i] == '\\' && p.b[p.i+1] == 'u' {
					p.i += 2
					if r2, err = p.hex4(); err != nil {
						return "", err
					}
				}
				if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
					p.i = next
				}
			}
			buf = utf8.AppendRune(buf, r)
		default:
			return "", fmt.Errorf("invalid escape \\%c", e)
		}
	}
	return "", errIncomplete
}

func (p *jsonScanner) hex4() (rune, error) {
	if p.i+4 > len(p.b) {
		return 0, errIncomplete
	}
	n, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
	if err != nil {
		return 0, errors.New("invalid \\u escape")
	}
	p.i += 4
	return rune(n), nil
}

// number reads a JSON number and returns its text.
func (p *jsonScanner) number() (string, error) {
	start := p.i
	if p.peek() == '-' {
		p.i++
	}
	intStart := p.i
	digits := func() int {
		n := 0
		for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
			p.i++
			n++
		}
		return n
	}
	if digits() == 0 {
		if p.i >= len(p.b) {
			return "", errIncomplete
		}
		return "", fmt.Errorf("unexpected %q", p.b[p.i])
	}
	// JSON writes no leading zeros: a line with "customerId":07 is not JSON,
	// and a line that is not JSON is refused (it was read as 7).
	if p.i-intStart > 1 && p.b[intStart] == '0' {
		return "", errors.New("a number has no leading zeros")
	}
	if p.peek() == '.' {
		p.i++
		if digits() == 0 {
			return "", errors.New("a number needs digits after its point")
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if digits() == 0 {
			return "", errors.New("a number needs digits in its exponent")
		}
	}
	return string(p.b[start:p.i]), nil
}

// literal reads true, false or null.
func (p *jsonScanner) literal() (string, error) {
	for _, lit := range []string{"true", "false", "null"} {
		if p.b[p.i] != lit[0] {
			continue
		}
		rest := p.b[p.i:]
		if len(rest) < len(lit) {
			if string(rest) == lit[:len(rest)] {
				return "", errIncomplete
			}
			break
		}
		if string(rest[:len(lit)]) == lit {
			p.i += len(lit)
			return lit, nil
		}
		break
	}
	return "", fmt.Errorf("unexpected %q", p.b[p.i])
}

// skip reads a value of any kind and drops it.
func (p *jsonScanner) skip(depth int) error {
	if depth > 64 {
		return errors.New("nested too deeply")
	}
	if p.i >= len(p.b) {
		return errIncomplete
	}
	var err error
	switch c := p.b[p.i]; {
	case c == '"':
		_, err = p.str()
	case c == '-' || (c >= '0' && c <= '9'):
		_, err = p.number()
	case c == '{' || c == '[':
		end := byte('}')
		if c == '[' {
			end = ']'
		}
		p.i++
		p.ws()
		if p.peek() == end {
			p.i++
			return nil
		}
		for {
			p.ws()
			if c == '{' {
				if _, err := p.str(); err != nil {
					return err
				}
				p.ws()
				if err := p.expect(':'); err != nil {
					return err
				}
				p.ws()
			}
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			p.ws()
			if p.peek() == ',' {
				p.i++
				continue
			}
			return p.expect(end)
		}
	default:
		_, err = p.literal()
	}
	return err
}

// strField reads the string value of a field; null counts as absent.
func (p *jsonScanner) strField(field string) (string, bool, string) {
	switch c := p.peek(); {
	case c == '"':
		s, err := p.str()
		if err != nil {
			return "", false, p.fail(err)
		}
		return s, true, ""
	case c == 'n':
		if _, err := p.literal(); err != nil {
			return "", false, p.fail(err)
		}
		return "", false, ""
	case c == 0:
		return "", false, p.fail(errIncomplete)
	}
	if err := p.skip(0); err != nil {
		return "", false, p.fail(err)
	}
	return "", false, field + " must be a string"
}

// internedField is strField for the fields that repeat from record to
// record.
func (p *jsonScanner) internedField(field string) (string, bool, string) {
	if p.intern == nil || p.peek() != '"' {
		return p.strField(field)
	}
	start := p.i
	b, err := p.key()
	if err != nil || bytes.IndexByte(p.b[start+1:p.i-1], '\\') >= 0 {
		p.i = start
		return p.strField(field)
	}
	return p.intern.get(b), true, ""
}

// customerID reads an Account global ID or an integer key.
func (p *jsonScanner) customerID() (int64, bool, string) {
	if c := p.peek(); c == '-' || (c >= '0' && c <= '9') {
		lit, err := p.number()
		if err != nil {
			return 0, false, p.fail(err)
		}
		n, perr := strconv.ParseInt(lit, 10, 64)
		if perr != nil {
			return 0, false, fmt.Sprintf("customerId %s is neither an Account ID nor an integer key", apperr.Clip(lit))
		}
		return n, true, ""
	}
	s, ok, msg := p.strField("customerId")
	if msg != "" || !ok {
		return 0, ok, msg
	}
	id, msg := parseCustomerID(s)
	return id, true, msg
}

// amount reads a decimal string; numbers are refused, so money never passes
// through a binary float on the pipeline's side.
func (p *jsonScanner) amount(field string) (decimal.Decimal, bool, string) {
	if c := p.peek(); c == '-' || (c >= '0' && c <= '9') {
		if _, err := p.number(); err != nil {
			return decimal.Decimal{}, false, p.fail(err)
		}
		return decimal.Decimal{}, false, fmt.Sprintf("%s must be a decimal string such as \"12.50\", not a JSON number", field)
	}
	if p.peek() == '"' { // the common case, without copying the string
		start := p.i
		if b, err := p.key(); err == nil {
			if d, ok := plainAmount(b); ok {
				return d, true, ""
			}
		}
		p.i = start
	}
	s, ok, msg := p.strField(field)
	if msg != "" || !ok {
		return decimal.Decimal{}, ok, msg
	}
	d, msg := parseAmount(field, s)
	return d, true, msg
}

func parseCustomerID(s string) (int64, string) {
	if s == "" {
		return 0, "customerId is required"
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, ""
	}
	id, err := ids.Decode(s, "Account")
	if err != nil {
		if apperr.Is(err, apperr.NotFound) {
			return 0, ""
		}
		return 0, fmt.Sprintf("customerId %q is neither an Account ID nor an integer key", apperr.Clip(s))
	}
	return id, ""
}

func parseAmount(field, s string) (decimal.Decimal, string) {
	if d, ok := plainAmount(s); ok {
		return d, ""
	}
	d, err := models.ParseDecimal(s)
	if err != nil {
		if ae, ok := apperr.As(err); ok {
			return decimal.Decimal{}, field + ": " + ae.Message
		}
		return decimal.Decimal{}, field + ": " + err.Error()
	}
	return d, ""
}

// plainAmount parses what models.ParseDecimal accepts (an optional minus,
// 1 to 14 digits, optionally a point and 1 to 6 digits) when it has at most
// 18 digits, to the same decimal, without its regular expression and
// big-number parsing; ok is false for anything else, which ParseDecimal then
// judges.
func plainAmount[T string | []byte](s T) (decimal.Decimal, bool) {
	i, neg := 0, false
	if i < len(s) && s[i] == '-' {
		i, neg = 1, true
	}
	var c int64
	intDigits, fracDigits := 0, 0
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		c = c*10 + int64(s[i]-'0')
		intDigits++
	}
	if i < len(s) && s[i] == '.' {
		for i++; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
			c = c*10 + int64(s[i]-'0')
			fracDigits++
		}
		if fracDigits == 0 {
			return decimal.Decimal{}, false
		}
	}
	if i != len(s) || intDigits == 0 || intDigits > 14 || fracDigits > 6 || intDigits+fracDigits > 18 {
		return decimal.Decimal{}, false
	}
	if neg {
		c = -c
	}
	return decimal.New(c, -int32(fracDigits)), true
}

func parseUsageAt(s string) (time.Time, string) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Sprintf("usageAt %q is not an RFC 3339 time such as \"2026-01-31T16:00:00Z\"", apperr.Clip(s))
	}
	return t.UTC(), ""
}

// CSVHeader is the header line a CSV request must start with, exactly.
const CSVHeader = "external_id,customer_id,product_code,region,billing_mode,usage_at,list_amount,actual_amount"

var csvColumns = strings.Split(CSVHeader, ",")

// NewCSVSource reads a CSV request (RFC 4180 quoting, LF or CRLF line ends, a
// leading UTF-8 BOM tolerated) whose first line is exactly CSVHeader. The
// fields mean what their NDJSON namesakes do; region may be empty. A wrong
// header is VALIDATION at once; a malformed row is VALIDATION naming its line
// when it is read.
func NewCSVSource(r io.Reader) (Source, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if b, err := br.Peek(3); err == nil && bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, _ = br.Discard(3)
	}
	bounded := &boundedReader{r: br, max: maxLineBytes + 64<<10}
	cr := csv.NewReader(bounded)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, apperr.Invalid("records", "the CSV is empty: its first line must be the header %q", CSVHeader)
	}
	if err != nil {
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			return nil, lineError(pe.Line, "%s", pe.Err)
		case errors.Is(err, errRecordTooLong):
			return nil, lineError(1, "the header is longer than %d bytes", maxLineBytes)
		}
		return nil, fmt.Errorf("read CSV header: %w", &BodyError{Err: err})
	}
	// Field by field: the header's fields must be the columns, so a quoted
	// "external_id,customer_id,...", one field that joins to the same text,
	// is not a header (it was taken for one).
	if !slices.Equal(header, csvColumns) {
		return nil, apperr.Invalid("records", "line 1: the CSV header must be exactly %q, got %q", CSVHeader, apperr.Clip(strings.Join(header, ",")))
	}
	return &csvSource{cr: cr, bounded: bounded, line: 1}, nil
}

type csvSource struct {
	cr      *csv.Reader
	bounded *boundedReader
	line    int // of the last row read
}

func (s *csvSource) Next() (Record, error) {
	s.bounded.n = 0
	row, err := s.cr.Read()
	if err == io.EOF {
		return Record{}, io.EOF
	}
	if err != nil {
		var pe *csv.ParseError
		switch {
		case errors.As(err, &pe):
			return Record{}, lineError(pe.Line, "%s", pe.Err)
		case errors.Is(err, errRecordTooLong):
			return Record{}, lineError(s.line+1, "the row is longer than %d bytes", maxLineBytes)
		}
		return Record{}, fmt.Errorf("read CSV after line %d: %w", s.line, &BodyError{Err: err})
	}
	s.line, _ = s.cr.FieldPos(0)
	if len(row) != len(csvColumns) {
		return Record{}, lineError(s.line, "%d fields, expected %d (%s)", len(row), len(csvColumns), CSVHeader)
	}
	rec, msg := parseCSVRow(row)
	if msg != "" {
		return Record{}, lineError(s.line, "%s", csvNames.Replace(msg))
	}
	return rec, nil
}

// csvNames turns the field names of messages into the CSV column names.
var csvNames = strings.NewReplacer("externalId", "external_id", "customerId", "customer_id",
	"productCode", "product_code", "billingMode", "billing_mode", "usageAt", "usage_at",
	"listAmount", "list_amount", "actualAmount", "actual_amount")

var errRecordTooLong = errors.New("CSV record too long")

// boundedReader fails once more than max bytes were read since n was last
// reset, so one endless row cannot make the CSV reader buffer the whole body.
type boundedReader struct {
	r      io.Reader
	n, max int
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.n > b.max {
		return 0, errRecordTooLong
	}
	n, err := b.r.Read(p)
	b.n += n
	return n, err
}

func parseCSVRow(row []string) (Record, string) {
	rec := Record{
		ExternalID:  row[0],
		ProductCode: row[2],
		Region:      row[3],
		BillingMode: models.BillingMode(row[4]),
	}
	var msg string
	if rec.CustomerID, msg = parseCustomerID(row[1]); msg != "" {
		return rec, msg
	}
	if row[5] == "" {
		return rec, "usageAt is required"
	}
	if rec.UsageAt, msg = parseUsageAt(row[5]); msg != "" {
		return rec, msg
	}
	if rec.List, msg = parseAmount("listAmount", row[6]); msg != "" {
		return rec, msg
	}
	if rec.Actual, msg = parseAmount("actualAmount", row[7]); msg != "" {
		return rec, msg
	}
	return rec, checkRecord(&rec)
}

// BodyError is a failure to read the request body itself (a truncated gzip
// stream, a connection cut or idle mid-upload): the sender's to resend, not
// a failure of the store.
type BodyError struct{ Err error }

// Error says what could not be read.
func (e *BodyError) Error() string { return "read the request body: " + e.Err.Error() }

// Unwrap is the read's own error.
func (e *BodyError) Unwrap() error { return e.Err }
