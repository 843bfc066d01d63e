package expenditures

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
)

// ExportKind says what an export holds: the records, or a summary.
type ExportKind string

// The kinds of export.
const (
	ExportRecords ExportKind = "records"
	ExportSummary ExportKind = "summary"
)

// exportStatementTimeout replaces the store's statement timeout in an
// export's transaction: the first fetch of a summary computes the whole
// aggregate before its first row.
const exportStatementTimeout = "5min"

// RecordsHeader is the header row of a records export.
var RecordsHeader = []string{"id", "external_id", "customer_id", "customer_name", "owner_id", "owner_name",
	"product_code", "region", "billing_mode", "usage_at", "month", "list_amount", "actual_amount",
	"received_at", "adjustment", "tags"}

// summaryHeaders are the header rows of summary exports, by grouping.
var summaryHeaders = map[GroupBy][]string{
	ByCustomer: {"customer_id", "customer_name", "list_amount", "actual_amount", "records", "as_of"},
	ByProduct:  {"product_code", "list_amount", "actual_amount", "records", "as_of"},
	ByDay:      {"day", "list_amount", "actual_amount", "records", "as_of"},
	ByMonth:    {"month", "list_amount", "actual_amount", "records", "as_of"},
}

// Export is a CSV export whose selection is resolved and checked: what
// remains (WriteCSV) fails only on the database or the connection, so a
// caller can answer bad input before it writes a byte.
type Export struct {
	s       *Service
	sel     *selection
	kind    ExportKind
	groupBy GroupBy
	// labels caches the cells that repeat across rows (account IDs,
	// months), for one WriteCSV.
	labels map[int64]string
}

// label returns the cell of key k (an account ID, or a month key negated),
// making it once per export.
func (e *Export) label(k int64, build func() string) string {
	if v, ok := e.labels[k]; ok {
		return v
	}
	v := build()
	if len(e.labels) < 100_000 {
		e.labels[k] = v
	}
	return v
}

// PrepareExport checks an export of kind (records, or a summary grouped by
// g; g must be empty for records) over what f selects in the caller's scope,
// with the same rules and errors as Page and Summarize.
func (s *Service) PrepareExport(ctx context.Context, kind ExportKind, g GroupBy, f Filter) (*Export, error) {
	switch kind {
	case ExportRecords:
		if g != "" {
			return nil, apperr.Invalid("groupBy", "groupBy applies to kind=summary only")
		}
	case ExportSummary:
		if !g.IsValid() {
			return nil, apperr.Invalid("groupBy", "a summary export needs groupBy: CUSTOMER, PRODUCT, DAY or MONTH")
		}
	default:
		return nil, apperr.Invalid("kind", "kind must be records or summary, not %q", apperr.Clip(string(kind)))
	}
	sel, err := s.resolve(ctx, f)
	if err != nil {
		return nil, err
	}
	return &Export{s: s, sel: sel, kind: kind, groupBy: g}, nil
}

// Filename is the attachment's name: expenditures-records-2026-01_2026-03.csv
// or expenditures-summary-customer-2026-01_2026-03.csv.
func (e *Export) Filename() string {
	name := "expenditures-" + string(e.kind)
	if e.kind == ExportSummary {
		name += "-" + strings.ToLower(string(e.groupBy))
	}
	return name + "-" + e.sel.period.From.String() + "_" + e.sel.period.To.String() + ".csv"
}

// flusher is what an HTTP response offers to send what was written so far.
type flusher interface{ Flush() error }

// WriteCSV writes the export to w as UTF-8 CSV with a byte-order mark (so
// spreadsheets read Chinese names right), CRLF line ends and a header row,
// streaming: it reads from a server-side cursor in a read-only snapshot,
// fetchSize rows at a time, and writes (and, when w can, flushes) each batch
// before it fetches the next, so neither side holds the export in memory.
//
// Records come owner by owner (the partner that owned the customer at usage
// time), each owner's in usage-time order — the index's order, so the
// first rows leave at once however large the export; one customer's records
// (customerId, or a customer's own export) in usage-time order. Summary
// rows come in Summarize's order, each with as_of, when its newest record
// was received.
//
// Cells: amounts are exact decimals ("1234.50"), times RFC 3339 in UTC,
// months YYYY-MM, days YYYY-MM-DD in the billing time zone, IDs the API's
// global IDs, tags a JSON object ordered by key. customer_name and
// owner_name are empty for an account outside the caller's scope now (a
// former customer, or a customer's partner). A text cell that a
// spreadsheet would take for a formula (starting with =, +, -, @, tab or
// carriage return) is prefixed with a single quote.
func (e *Export) WriteCSV(ctx context.Context, w io.Writer) error {
	bw := bufio.NewWriterSize(w, 32<<10)
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true
	flush := func() error {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if f, ok := w.(flusher); ok {
			return f.Flush()
		}
		return nil
	}
	var q string
	var args []any
	var header []string
	var row func(*sql.Rows, []string) error
	if e.kind == ExportRecords {
		q, args = e.recordsQuery()
		header, row = RecordsHeader, e.recordRow
	} else {
		q, args = e.s.summaryQuery(e.sel, e.groupBy, true)
		header, row = summaryHeaders[e.groupBy], e.summaryRow
	}
	started := false
	start := func() error {
		started = true
		if _, err := bw.WriteString("\xef\xbb\xbf"); err != nil {
			return err
		}
		return cw.Write(header)
	}
	if e.sel.empty() {
		if err := start(); err != nil {
			return err
		}
		return flush()
	}
	e.labels = map[int64]string{}
	cells := make([]string, len(header))
	err := e.s.cursor(ctx, q, args, func(rows *sql.Rows) error {
		if !started {
			if err := start(); err != nil {
				return err
			}
		}
		if err := row(rows, cells); err != nil {
			return err
		}
		return cw.Write(cells)
	}, flush)
	if err != nil {
		return fmt.Errorf("export expenditures: %w", err)
	}
	if !started {
		if err := start(); err != nil {
			return err
		}
	}
	return flush()
}

// cursor runs query in a read-only repeatable-read transaction through a
// server-side cursor: each is called for every row, batch is called after
// every fetch of fetchSize rows that returned any.
func (s *Service) cursor(ctx context.Context, query string, args []any, each func(*sql.Rows) error, batch func() error) error {
	return s.st.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Exec(`SET LOCAL statement_timeout = '` + exportStatementTimeout + `'`).Error; err != nil {
			return fmt.Errorf("set statement timeout: %w", err)
		}
		if err := tx.Exec(`DECLARE export NO SCROLL CURSOR FOR `+query, args...).Error; err != nil {
			return fmt.Errorf("declare cursor: %w", err)
		}
		// FETCH runs on the simple protocol: the extended one would cache
		// the description of "FETCH n FROM export" for the connection, and
		// the next export's cursor may have other columns.
		sqlTx, ok := tx.Statement.ConnPool.(*sql.Tx)
		if !ok {
			return fmt.Errorf("export: the transaction is a %T, not a *sql.Tx", tx.Statement.ConnPool)
		}
		fetch := `FETCH ` + strconv.Itoa(s.fetchSize) + ` FROM export`
		for {
			if s.onFetch != nil {
				s.onFetch()
			}
			rows, err := sqlTx.QueryContext(ctx, fetch, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
			n := 0
			for rows.Next() {
				n++
				if err := each(rows); err != nil {
					rows.Close()
					return err
				}
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return fmt.Errorf("fetch: %w", err)
			}
			if n == 0 {
				return nil
			}
			if err := batch(); err != nil {
				return err
			}
		}
	}, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
}

// recordsQuery renders the records of the export in cursor order, with the
// customer's and owner's names when they are in the caller's scope (NULL
// otherwise).
func (e *Export) recordsQuery() (string, []any) {
	sel := e.sel
	where, wargs := sel.where("e", true)
	cvis, cargs := sel.visible("c.path")
	ovis, oargs := sel.visible("o.path")
	order := `e.owner_id, e.month, ` + usageHour + `, e.usage_at, e.id`
	if sel.customer != 0 {
		order = `e.month, e.usage_at, e.id`
	}
	q := `SELECT e.id, e.external_id, e.customer_id, CASE WHEN ` + cvis + ` THEN c.name END,
			e.owner_id, CASE WHEN ` + ovis + ` THEN o.name END,
			e.product_code, e.region, e.billing_mode, e.usage_at, e.month, e.list_amount, e.actual_amount,
			e.received_at, e.adjustment, e.tags
		FROM expenditures e
		LEFT JOIN accounts c ON c.id = e.customer_id
		LEFT JOIN accounts o ON o.id = e.owner_id
		WHERE ` + where + ` ORDER BY ` + order
	args := append(append(cargs, oargs...), wargs...)
	return q, args
}

// recordRow renders one row of recordsQuery into cells.
func (e *Export) recordRow(rows *sql.Rows, cells []string) error {
	var (
		id, customer, owner int64
		ext, product        string
		region, mode        string
		cname, oname        sql.NullString
		usage, received     time.Time
		month               int
		list, actual        decimal.Decimal
		adjustment          bool
		tags                models.Tags
	)
	if err := rows.Scan(&id, &ext, &customer, &cname, &owner, &oname, &product, &region, &mode, &usage, &month,
		&list, &actual, &received, &adjustment, &tags); err != nil {
		return err
	}
	cells[0] = ids.Encode(TypeExpenditure, id)
	cells[1] = SafeCell(ext)
	cells[2] = e.label(customer, func() string { return ids.Encode(accounts.TypeAccount, customer) })
	cells[3] = SafeCell(cname.String)
	cells[4] = ""
	if oname.Valid {
		// An owner outside the caller's scope (a customer's partner) is
		// not named, by ID or name.
		cells[4] = e.label(owner, func() string { return ids.Encode(accounts.TypeAccount, owner) })
	}
	cells[5] = SafeCell(oname.String)
	cells[6] = SafeCell(product)
	cells[7] = SafeCell(region)
	cells[8] = mode
	cells[9] = usage.UTC().Format(time.RFC3339Nano)
	cells[10] = e.label(-int64(month), func() string { return models.MonthOfKey(month).String() })
	cells[11] = models.FormatDecimal(list)
	cells[12] = models.FormatDecimal(actual)
	cells[13] = received.UTC().Format(time.RFC3339Nano)
	cells[14] = strconv.FormatBool(adjustment)
	cells[15] = ""
	if len(tags) > 0 {
		b, err := json.Marshal(map[string]string(tags))
		if err != nil {
			return err
		}
		cells[15] = SafeCell(string(b))
	}
	return nil
}

// summaryRow renders one row of summaryQuery (with names) into cells.
func (e *Export) summaryRow(rows *sql.Rows, cells []string) error {
	r, err := scanRow(rows, e.groupBy, true)
	if err != nil {
		return err
	}
	i := 0
	switch e.groupBy {
	case ByCustomer:
		cells[0], cells[1], i = ids.Encode(accounts.TypeAccount, r.CustomerID), SafeCell(r.customerName), 2
	case ByProduct:
		cells[0], i = SafeCell(r.ProductCode), 1
	case ByDay:
		cells[0], i = r.Day, 1
	case ByMonth:
		cells[0], i = r.Month.String(), 1
	}
	cells[i], cells[i+1], cells[i+2] = models.FormatDecimal(r.List), models.FormatDecimal(r.Actual), strconv.Itoa(r.Records)
	cells[i+3] = ""
	if r.AsOf != nil {
		cells[i+3] = r.AsOf.UTC().Format(time.RFC3339Nano)
	}
	return nil
}

// SafeCell makes a text cell safe to open in a spreadsheet (CSV injection):
// a cell starting with =, +, -, @, a tab or a carriage return would be read
// as a formula, so it gets a leading single quote, as spreadsheets
// themselves write text that looks like a formula.
func SafeCell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}
