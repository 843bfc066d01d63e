package migration

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"partnerd/apperr"
)

// Record is one row of an uploaded CSV file as ReadRows returns it: its
// number as a spreadsheet shows it (the header is row 1) and its fields as
// written.
type Record struct {
	Line   int
	Fields []string
}

// ReadRows reads an uploaded CSV file with other columns than the
// template's (bulk changes), under the rules of ParseTemplate: the whole
// upload is refused (VALIDATION, nothing read) when it is larger than
// MaxBytes, not UTF-8 text, not CSV (a broken quote), has more than MaxRows
// rows, or a header other than columns — the first required of them in
// order, then as many of the others as the file uses, in order; case and
// spaces around a name do not matter. A UTF-8 BOM, CRLF or LF line ends,
// blank lines and # comment lines are accepted; blank and comment lines are
// not returned. width is the number of columns the header names: a record
// of another width is the caller's to reject (WidthReason says why), as is
// any field it cannot read.
func ReadRows(r io.Reader, columns []string, required int) (width int, rows []Record, err error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBytes+1))
	if err != nil {
		return 0, nil, fmt.Errorf("read upload: %w", err)
	}
	if len(data) > MaxBytes {
		return 0, nil, apperr.Invalid("file", "the file is larger than %d MiB", MaxBytes>>20)
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 {
		return 0, nil, apperr.Invalid("file", "the file is not UTF-8 text: save the template as CSV (UTF-8)")
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.Comment = '#'
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, nil, apperr.Invalid("file", "the file is empty: fill in the template, one customer per row")
	}
	if err != nil {
		return 0, nil, notCSV(err)
	}
	if !headerOf(header, columns, required) {
		want := strings.Join(columns[:required], ",")
		if required < len(columns) {
			want += " (then " + strings.Join(columns[required:], ", ") + ", if used)"
		}
		return 0, nil, apperr.Invalid("file", "the header must be %q: use the template (got %q)", want,
			apperr.Clip(strings.Join(header, ",")))
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, nil, notCSV(err)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // a blank line
		}
		if len(rows) == MaxRows {
			return 0, nil, apperr.Invalid("file", "the file has more than %d rows: split it into several files", MaxRows)
		}
		line, _ := cr.FieldPos(0)
		rows = append(rows, Record{Line: line, Fields: rec})
	}
	return len(header), rows, nil
}

// headerOf reports whether header names the first required columns and
// then only the next ones, in order.
func headerOf(header, columns []string, required int) bool {
	if len(header) < required || len(header) > len(columns) {
		return false
	}
	for i, h := range header {
		if !sameColumn(h, columns[i]) {
			return false
		}
	}
	return true
}

// WidthReason is the reason a record of found fields is rejected from a
// file whose header names columns.
func WidthReason(columns []string, found int) string {
	return fmt.Sprintf("expected %d columns (%s), found %d", len(columns), strings.Join(columns, ", "), found)
}

// AccountID reads an account ID as the template's first column takes it:
// the Partner Center's ID, or a plain account number; spaces around it do
// not matter.
func AccountID(s string) (int64, bool) { return accountID(strings.TrimSpace(s)) }
