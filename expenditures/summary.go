package expenditures

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Row is one group of a summary: its key (CustomerID for ByCustomer,
// ProductCode for ByProduct, Day — "YYYY-MM-DD" in the billing time zone —
// and its Month for ByDay, Month for ByMonth), the sums of its records' list
// and actual amounts, how many records they are, and AsOf, when the newest
// of them was received.
type Row struct {
	GroupBy     GroupBy
	CustomerID  int64
	ProductCode string
	Day         string
	Month       models.Month
	List        decimal.Decimal
	Actual      decimal.Decimal
	Records     int
	AsOf        *time.Time
	// customerName is the customer's name for exports, "" when the
	// customer is outside the caller's scope now (a former customer).
	customerName string
}

// Summary is what the selected records of a period add up to: one row per
// group with records (groups without records are left out), ordered by day
// or month for ByDay and ByMonth, and by actual amount, largest first, then
// by customer ID or product code for ByCustomer and ByProduct; the totals
// over all rows; and AsOf, when the newest record counted was received (nil
// when none was).
type Summary struct {
	GroupBy GroupBy
	From    models.Month
	To      models.Month
	Rows    []Row
	List    decimal.Decimal
	Actual  decimal.Decimal
	Records int
	AsOf    *time.Time
}

// Summarize adds up the records that f selects in the caller's scope (see
// the package comment), grouped by g (DOMAIN.md §5).
//
// The MONTH grouping of a subtree without a customer, product or tag filter
// is read from the owners' running totals (owner_spend_totals), as is a
// customer's own (spend_totals); those count exactly the same records.
// Everything else is one aggregate over the records of the subtree's owners
// in the period's months, through the (owner_id, month, ...) index — or one
// customer's, through (customer_id, month, ...).
//
// Errors: UNAUTHENTICATED without a principal; VALIDATION for an unknown
// grouping, a period whose from is after its to or that is longer than
// MaxPeriodMonths, a malformed product code or tag, a partnerId that is not
// a partner or a customerId that is not a customer; NOT_FOUND for an
// account outside the caller's scope.
func (s *Service) Summarize(ctx context.Context, g GroupBy, f Filter) (*Summary, error) {
	if !g.IsValid() {
		return nil, apperr.Invalid("groupBy", "groupBy must be CUSTOMER, PRODUCT, DAY or MONTH")
	}
	sel, err := s.resolve(ctx, f)
	if err != nil {
		return nil, err
	}
	sum := &Summary{GroupBy: g, From: sel.period.From, To: sel.period.To, Rows: []Row{}}
	if sel.empty() {
		return sum, nil
	}
	q, args := s.summaryQuery(sel, g, false)
	rows, err := s.st.DB.WithContext(ctx).Raw(q, args...).Rows()
	if err != nil {
		return nil, fmt.Errorf("expenditure summary by %s: %w", g, err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRow(rows, g, false)
		if err != nil {
			return nil, fmt.Errorf("expenditure summary by %s: %w", g, err)
		}
		sum.Rows = append(sum.Rows, r)
		sum.List, sum.Actual, sum.Records = sum.List.Add(r.List), sum.Actual.Add(r.Actual), sum.Records+r.Records
		sum.AsOf = later(sum.AsOf, r.AsOf)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("expenditure summary by %s: %w", g, err)
	}
	return sum, nil
}

// later returns the later of two optional instants.
func later(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

// summaryQuery renders the summary of sel grouped by g. Its columns, in
// order: customer_id, product_code, day, month, list, actual, records,
// as_of, and with names customer_name (the customer's name when it is in the
// caller's scope, else "").
func (s *Service) summaryQuery(sel *selection, g GroupBy, withNames bool) (string, []any) {
	var q string
	var args []any
	switch {
	case g == ByMonth && sel.exactTotals && sel.byOwner:
		q = `SELECT 0::bigint AS customer_id, ''::text AS product_code, ''::text AS day, t.month,
				sum(t.list_total) AS list, sum(t.actual_total) AS actual, sum(t.records)::bigint AS records,
				max(t.last_received_at) AS as_of
			FROM owner_spend_totals t
			WHERE t.owner_id = ANY(?::bigint[]) AND t.month BETWEEN ? AND ?
			GROUP BY t.month HAVING sum(t.records) > 0`
		args = []any{store.Int64Array(sel.owners), sel.from, sel.to}
	case g == ByMonth && sel.exactTotals:
		q = `SELECT 0::bigint AS customer_id, ''::text AS product_code, ''::text AS day, t.month,
				t.list_total AS list, t.actual_total AS actual, t.records, t.last_received_at AS as_of
			FROM spend_totals t
			WHERE t.customer_id = ? AND t.month BETWEEN ? AND ? AND t.records > 0`
		args = []any{sel.customer, sel.from, sel.to}
	default:
		var key, group string
		switch g {
		case ByCustomer:
			key, group = `e.customer_id, ''::text AS product_code, ''::text AS day, 0 AS month`, `e.customer_id`
		case ByProduct:
			key, group = `0::bigint AS customer_id, e.product_code, ''::text AS day, 0 AS month`, `e.product_code`
		case ByDay:
			// Grouped by the date (4 bytes, hashed) and formatted after;
			// GROUP BY names the output column so the zone is one parameter.
			key, group = `0::bigint AS customer_id, ''::text AS product_code,
				(e.usage_at AT TIME ZONE ?)::date AS day, min(e.month) AS month`, `3`
			args = append(args, s.loc.String())
		case ByMonth:
			key, group = `0::bigint AS customer_id, ''::text AS product_code, ''::text AS day, e.month`, `e.month`
		}
		where, wargs := sel.where("e", true)
		q = `SELECT ` + key + `, sum(e.list_amount) AS list, sum(e.actual_amount) AS actual,
				count(*) AS records, max(e.received_at) AS as_of
			FROM expenditures e WHERE ` + where + ` GROUP BY ` + group
		args = append(args, wargs...)
		if g == ByDay {
			q = `SELECT d.customer_id, d.product_code, to_char(d.day, 'YYYY-MM-DD') AS day, d.month,
					d.list, d.actual, d.records, d.as_of
				FROM (` + q + `) d`
		}
	}
	order := map[GroupBy]string{
		ByCustomer: `g.actual DESC, g.customer_id`,
		ByProduct:  `g.actual DESC, g.product_code`,
		ByDay:      `g.day`,
		ByMonth:    `g.month`,
	}[g]
	if withNames && g == ByCustomer {
		vis, vargs := sel.visible("c.path")
		q = `SELECT g.*, CASE WHEN ` + vis + ` THEN c.name ELSE '' END AS customer_name
			FROM (` + q + `) g LEFT JOIN accounts c ON c.id = g.customer_id ORDER BY ` + order
		return q, append(vargs, args...)
	}
	if withNames {
		return `SELECT g.*, ''::text AS customer_name FROM (` + q + `) g ORDER BY ` + order, args
	}
	return `SELECT g.* FROM (` + q + `) g ORDER BY ` + order, args
}

// scanRow reads one row of summaryQuery.
func scanRow(rows *sql.Rows, g GroupBy, withNames bool) (Row, error) {
	r := Row{GroupBy: g}
	var month int
	var records int64
	dest := []any{&r.CustomerID, &r.ProductCode, &r.Day, &month, &r.List, &r.Actual, &records, &r.AsOf}
	if withNames {
		dest = append(dest, &r.customerName)
	}
	if err := rows.Scan(dest...); err != nil {
		return r, err
	}
	r.Records = int(records)
	if month != 0 {
		r.Month = models.MonthOfKey(month)
	}
	if r.AsOf != nil {
		at := r.AsOf.UTC()
		r.AsOf = &at
	}
	return r, nil
}
