// Package migration holds sub-customer migrations (DOMAIN.md §6). So far:
// the CSV template partners download and fill, and its parser, which turns
// an upload into rows to import and rows to report, never half-reading a
// file (issue 8 point 1).
package migration

import (
	"bytes"
	"database/sql/driver"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
)

// Limits of one upload.
const (
	MaxRows  = 10_000
	MaxBytes = 5 << 20
)

// The template's columns, in order.
const (
	ColumnAccount = "customer_account_id"
	ColumnCredit  = "credit_to_allocate"
)

// Template is the CSV template: the header and one commented example row.
// Lines starting with # are comments; the parser skips them.
const Template = ColumnAccount + "," + ColumnCredit + "\r\n" +
	"# one customer per row: its account ID as the Partner Center shows it, and the credit to allocate to it (e.g. 5000.00); delete this line\r\n"

// Row is one valid row of an upload: Line is its row number as a
// spreadsheet shows it (the header is row 1).
type Row struct {
	Line      int
	AccountID int64
	Credit    decimal.Decimal
}

// RowError is a row that was not imported, with its number, the account ID
// as written (when there was one) and the reason.
type RowError struct {
	Line      int    `json:"row"`
	AccountID string `json:"accountId,omitempty"`
	Reason    string `json:"reason"`
}

// RowErrors are a batch's rejected rows, stored as JSON.
type RowErrors []RowError

// Scan implements sql.Scanner.
func (r *RowErrors) Scan(v any) error {
	var b []byte
	switch x := v.(type) {
	case nil:
		*r = nil
		return nil
	case []byte:
		b = x
	case string:
		b = []byte(x)
	default:
		return fmt.Errorf("rejected rows: cannot scan %T", v)
	}
	return json.Unmarshal(b, (*[]RowError)(r))
}

// Value implements driver.Valuer.
func (r RowErrors) Value() (driver.Value, error) {
	if r == nil {
		return "[]", nil
	}
	b, err := json.Marshal([]RowError(r))
	return string(b), err
}

// InputRow is a row given directly (not in a file): the account's ID as
// the Partner Center shows it and the credit to allocate.
type InputRow struct {
	AccountID string
	Credit    string
}

// Read judges what a partner gave for a batch: rows given directly or an
// uploaded file (ParseTemplate), not both (VALIDATION). Direct rows are
// judged like a file's, at most MaxRows of them; a row's number is its
// position in the list, from 1.
func Read(in []InputRow, file io.Reader) ([]Row, []RowError, error) {
	switch {
	case file != nil && in != nil:
		return nil, nil, apperr.Invalid("file", "give rows or a file, not both")
	case file != nil:
		return ParseTemplate(file)
	case len(in) > MaxRows:
		return nil, nil, apperr.Invalid("rows", "at most %d rows: split them into several batches", MaxRows)
	}
	rows, rejected := parseRows(in)
	return rows, rejected, nil
}

func parseRows(in []InputRow) ([]Row, []RowError) {
	j := newJudge()
	for i, r := range in {
		j.row(i+1, r.AccountID, r.Credit)
	}
	return j.rows, j.rejected
}

// judge turns rows into Rows and RowErrors, remembering the customers seen.
type judge struct {
	rows     []Row
	rejected []RowError
	seen     map[int64]int
}

func newJudge() *judge { return &judge{seen: map[int64]int{}} }

func (j *judge) reject(line int, raw, format string, args ...any) {
	j.rejected = append(j.rejected, RowError{Line: line, AccountID: apperr.Clip(raw), Reason: fmt.Sprintf(format, args...)})
}

// row judges one row: its account ID and credit as written.
func (j *judge) row(line int, rawID, rawCredit string) {
	raw := strings.TrimSpace(rawID)
	id, ok := accountID(raw)
	if !ok {
		if raw == "" {
			j.reject(line, raw, "the customer account ID is empty")
		} else {
			j.reject(line, raw, "%q is not a customer account ID", apperr.Clip(raw))
		}
		return
	}
	credit, why := creditOf(strings.TrimSpace(rawCredit))
	if why != "" {
		j.reject(line, raw, "%s", why)
		return
	}
	if first, dup := j.seen[id]; dup {
		j.reject(line, raw, "the customer already appears in row %d", first)
		return
	}
	j.seen[id] = line
	j.rows = append(j.rows, Row{Line: line, AccountID: id, Credit: credit})
}

// ParseTemplate reads an uploaded template. The whole upload is refused
// (VALIDATION, nothing imported) when it is larger than MaxBytes, not UTF-8
// text, not CSV (a broken quote), has a header other than the template's,
// or more than MaxRows rows. Otherwise each row is judged on its own: it is
// rejected — with its row number and a reason a person understands — when
// it has other than two columns, an account ID that is empty or not one,
// a credit that is not a number, negative, or with more than 6 decimals or
// 14 integer digits, or a customer already named in an earlier row. A UTF-8
// BOM, CRLF or LF line ends, blank lines and # comment lines are accepted.
// Account IDs are the Partner Center's IDs; a plain number is taken as the
// account's number.
func ParseTemplate(r io.Reader) ([]Row, []RowError, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("read upload: %w", err)
	}
	if len(data) > MaxBytes {
		return nil, nil, apperr.Invalid("file", "the file is larger than %d MiB", MaxBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return nil, nil, apperr.Invalid("file", "the file is not UTF-8 text: save the template as CSV (UTF-8)")
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil, apperr.Invalid("file", "the file is empty: fill in the template, one customer per row")
	}
	if err != nil {
		return nil, nil, notCSV(err)
	}
	if len(header) != 2 || !sameColumn(header[0], ColumnAccount) || !sameColumn(header[1], ColumnCredit) {
		return nil, nil, apperr.Invalid("file", "the header must be %q: use the template (got %q)", ColumnAccount+","+ColumnCredit,
			apperr.Clip(strings.Join(header, ",")))
	}
	j := newJudge()
	for n := 0; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, notCSV(err)
		}
		// A blank line is not a row: it is skipped before the rows are
		// counted, as ReadRows does (counted after, MaxRows rows and a
		// trailing blank line were refused as too many).
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			n--
			continue
		}
		if n == MaxRows {
			return nil, nil, apperr.Invalid("file", "the file has more than %d rows: split it into several batches", MaxRows)
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != 2 {
			raw := ""
			if len(rec) > 0 {
				raw = strings.TrimSpace(rec[0])
			}
			j.reject(line, raw, "expected 2 columns (%s, %s), found %d", ColumnAccount, ColumnCredit, len(rec))
			continue
		}
		j.row(line, rec[0], rec[1])
	}
	return j.rows, j.rejected, nil
}

// accountID reads a Partner Center account ID, or a plain account number.
func accountID(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return n, n > 0
	}
	n, err := ids.Decode(s, "Account")
	return n, err == nil && n > 0
}

// creditOf reads the credit column: an exact decimal, 0 or more, at most 14
// integer and 6 fractional digits.
func creditOf(s string) (decimal.Decimal, string) {
	if s == "" {
		return decimal.Zero, "the credit to allocate is empty (write 0 for none)"
	}
	d, err := models.ParseDecimal(s)
	if err != nil {
		if strings.HasPrefix(s, "-") {
			return decimal.Zero, "the credit to allocate cannot be negative"
		}
		return decimal.Zero, fmt.Sprintf("%q is not an amount: write digits with an optional point and at most 6 decimals (e.g. 5000.00)", apperr.Clip(s))
	}
	if d.IsNegative() {
		return decimal.Zero, "the credit to allocate cannot be negative"
	}
	return d, ""
}

func sameColumn(got, want string) bool {
	return strings.EqualFold(strings.TrimSpace(got), want)
}

func notCSV(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return apperr.Invalid("file", "the file is not valid CSV at row %d: %v", pe.Line, pe.Err)
	}
	return apperr.Invalid("file", "the file is not valid CSV: %v", err)
}
