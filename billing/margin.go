package billing

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/ids"
	"partnerd/models"
)

// MarginRow is what a partner earns on one of its own customers in a month
// (issue 14): what it charges the customer against what it pays its parent
// for the customer's usage.
//
//   - Cost is the sum of actual over the lines of the partner's bill of the
//     month whose owner is the partner and whose customer is the customer:
//     the month's own lines and the adjustments of earlier months, exact.
//   - Vouchers is the sum of voucher over the same lines: the part of Cost
//     the customer's vouchers paid. Vouchers spend the quota the platform
//     grants, so the partner does not pay that part: NetCost = Cost −
//     Vouchers is what it pays its parent for the customer.
//   - Revenue is the total of the partner's customer bill of the customer
//     for the month, rated from the same lines: the rated usage less the
//     VOUCHER lines (the customer does not pay what vouchers paid either),
//     2 decimals.
//   - Margin = Revenue − NetCost. MarginPercent = Margin / Revenue × 100,
//     rounded half-even to 2 decimals; nil when Revenue is 0.
//
// A voucher thus comes off both sides and leaves the margin as it was, but
// for the rounding of the VOUCHER line to 2 decimals and its cap at the
// rated amount (a discount deeper than what the voucher paid).
//
// Only the partner's own customers have rows: a distributor's bill also
// holds the lines of its second-level resellers' customers, but those
// resellers rate and bill them, and the rows are in their reports.
type MarginRow struct {
	PartnerID     int64
	CustomerID    int64
	Month         int
	Cost          decimal.Decimal
	Vouchers      decimal.Decimal
	NetCost       decimal.Decimal `gorm:"-"`
	Revenue       decimal.Decimal
	Margin        decimal.Decimal  `gorm:"-"`
	MarginPercent *decimal.Decimal `gorm:"-"`
	// BillID and BillStatus are the customer bill's; 0 and "" when the
	// customer has no bill yet (its lines came with a bill run after the
	// customer bills were rated): its Revenue is then 0.
	BillID     int64
	BillStatus Status
	// Stale: the customer bill was rated before the partner bill was last
	// generated (or there is none), so it may not hold every line the cost
	// counts: generate the customer bills again for a true margin. Bills
	// rated from the ISSUED partner bill are never stale.
	Stale bool
}

// BillMonth is the row's month.
func (r *MarginRow) BillMonth() models.Month { return models.MonthOfKey(r.Month) }

// Margins returns a page of up to first margin rows of partner partnerID
// for month, one per customer of its own (MarginRow), by customer id, after
// the customer afterCustomerID (0: from the start), with the number of
// rows. Its ADMIN or FINANCE users and those of the accounts above it see
// them (NOT_FOUND outside the caller's scope, FORBIDDEN without
// PermFinance); partnerID 0 is the caller's own account, which must be a
// partner (VALIDATION otherwise).
//
// The report compares the stored bills; it is PRECONDITION_FAILED while
// the partner has no bill for the month, or its bill holds lines of its own
// customers but no customer bill of the month has been generated. A partner
// bill without lines of its own customers gives an empty page.
func (s *Service) Margins(ctx context.Context, partnerID int64, month models.Month, first int, afterCustomerID int64) (*Page[*MarginRow], error) {
	src, err := s.marginSource(ctx, partnerID, month)
	if err != nil {
		return nil, err
	}
	if first < 0 || first > MaxPage {
		return nil, apperr.Invalid("first", "first must be between 0 and %d", MaxPage)
	}
	db := s.st.DB.WithContext(ctx)
	q, args := src.rows(afterCustomerID)
	out := &Page[*MarginRow]{}
	if err := db.Raw(`SELECT * FROM (`+q+`) r ORDER BY r.customer_id LIMIT ?`, append(args, first+1)...).Scan(&out.Items).Error; err != nil {
		return nil, fmt.Errorf("read the margins of partner %d for %s: %w", src.partnerID, month, err)
	}
	if out.More = len(out.Items) > first; out.More {
		out.Items = out.Items[:first]
	}
	for _, r := range out.Items {
		src.complete(r)
	}
	if err := db.Raw(`SELECT count(*) FROM (SELECT customer_id FROM partner_bill_lines WHERE bill_id = ? AND owner_id = ?
			UNION SELECT customer_id FROM customer_bills WHERE partner_id = ? AND month = ?) r`,
		src.billID, src.partnerID, src.partnerID, src.month).Scan(&out.Total).Error; err != nil {
		return nil, fmt.Errorf("count the margins of partner %d for %s: %w", src.partnerID, month, err)
	}
	return out, nil
}

// MarginTotals sums the margin rows of partner partnerID for month, with
// the checks of Margins: Cost, Vouchers, NetCost, Revenue and Margin are the
// sums of the rows', MarginPercent is computed from the sums, and Stale says
// whether any row is. CustomerID, BillID and BillStatus are zero.
func (s *Service) MarginTotals(ctx context.Context, partnerID int64, month models.Month) (*MarginRow, error) {
	src, err := s.marginSource(ctx, partnerID, month)
	if err != nil {
		return nil, err
	}
	q, args := src.rows(0)
	var out MarginRow
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT coalesce(sum(cost), 0) AS cost, coalesce(sum(vouchers), 0) AS vouchers,
			coalesce(sum(revenue), 0) AS revenue, coalesce(bool_or(stale), false) AS stale FROM (`+q+`) r`, args...).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("sum the margins of partner %d for %s: %w", src.partnerID, month, err)
	}
	src.complete(&out)
	return &out, nil
}

// marginSource is what a margin report reads: the partner's bill of the
// month, checked.
type marginSource struct {
	partnerID int64
	month     int
	billID    int64
	generated time.Time
}

// marginSource checks a margin report's caller, partner and month and
// finds the partner bill it reads (see Margins).
func (s *Service) marginSource(ctx context.Context, partnerID int64, month models.Month) (*marginSource, error) {
	if partnerID == 0 {
		p, ok := accounts.PrincipalFrom(ctx)
		if !ok {
			return nil, accounts.ErrUnauthenticated
		}
		partnerID = p.AccountID
	}
	_, sc, err := s.partnerInScope(ctx, partnerID)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermFinance); err != nil {
		return nil, err
	}
	if err := s.checkMonth(month); err != nil {
		return nil, err
	}
	var b struct {
		ID          int64
		GeneratedAt time.Time
		Lines       bool
		Rated       bool
	}
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT b.id, b.generated_at,
			EXISTS (SELECT 1 FROM partner_bill_lines l WHERE l.bill_id = b.id AND l.owner_id = b.partner_id) AS lines,
			EXISTS (SELECT 1 FROM customer_bills c WHERE c.partner_id = b.partner_id AND c.month = b.month) AS rated
		FROM partner_bills b WHERE b.partner_id = ? AND b.month = ?`, partnerID, month.Key()).Scan(&b).Error; err != nil {
		return nil, fmt.Errorf("load the bill of partner %d for %s: %w", partnerID, month, err)
	}
	if b.ID == 0 {
		return nil, apperr.Preconditionf("there is no partner bill for %s yet: margins compare it with the customer bills rated from it", month)
	}
	if b.Lines && !b.Rated {
		return nil, apperr.Preconditionf("the customer bills of %s have not been generated yet: generate them first", month)
	}
	return &marginSource{partnerID: partnerID, month: month.Key(), billID: b.ID, generated: b.GeneratedAt}, nil
}

// rows is the query of the margin rows of customers after the customer
// after (unordered, without NetCost, Margin and MarginPercent): a customer
// with lines, a bill or both (a draft bill whose lines a later run dropped
// still counts what it charges).
func (m *marginSource) rows(after int64) (string, []any) {
	return `WITH l AS (
			SELECT customer_id, sum(actual) AS cost, sum(voucher) AS vouchers FROM partner_bill_lines
			WHERE bill_id = ? AND owner_id = ? AND customer_id > ? GROUP BY customer_id
		), c AS (
			SELECT id, customer_id, total, status, generated_at FROM customer_bills
			WHERE partner_id = ? AND month = ? AND customer_id > ?
		)
		SELECT coalesce(l.customer_id, c.customer_id) AS customer_id, coalesce(l.cost, 0) AS cost,
			coalesce(l.vouchers, 0) AS vouchers, coalesce(c.total, 0) AS revenue, coalesce(c.id, 0) AS bill_id,
			coalesce(c.status, '') AS bill_status, coalesce(c.generated_at < ?, true) AS stale
		FROM l FULL JOIN c ON c.customer_id = l.customer_id`,
		[]any{m.billID, m.partnerID, after, m.partnerID, m.month, after, m.generated}
}

// complete fills in what a row read by rows derives.
func (m *marginSource) complete(r *MarginRow) {
	r.PartnerID, r.Month = m.partnerID, m.month
	r.NetCost = r.Cost.Sub(r.Vouchers)
	r.Margin = r.Revenue.Sub(r.NetCost)
	r.MarginPercent = marginPercent(r.Margin, r.Revenue)
}

// marginPercent is margin / revenue × 100 rounded half-even to 2 decimals,
// nil for a revenue of 0. It rounds the exact quotient: one first cut to a
// fixed number of digits could land on a tie it is not.
func marginPercent(margin, revenue decimal.Decimal) *decimal.Decimal {
	if revenue.IsZero() {
		return nil
	}
	// margin × 100 = revenue × q + r, q truncated to 2 decimals: what is
	// left, r / revenue, is below one step of 0.01 and decides the rounding.
	q, r := margin.Shift(2).QuoRem(revenue, 2)
	half := r.Abs().Shift(2).Mul(decimal.NewFromInt(2)).Cmp(revenue.Abs())
	if half > 0 || (half == 0 && q.Shift(2).BigInt().Bit(0) == 1) {
		q = q.Add(decimal.New(int64(r.Sign()*revenue.Sign()), -2))
	}
	return &q
}

// MarginExport is a checked export of a partner's margin rows of a month.
type MarginExport struct {
	s    *Service
	src  *marginSource
	name string
}

// PrepareMarginExport checks the caller, partner and month as Margins does
// and returns the export to write.
func (s *Service) PrepareMarginExport(ctx context.Context, partnerID int64, month models.Month) (*MarginExport, error) {
	src, err := s.marginSource(ctx, partnerID, month)
	if err != nil {
		return nil, err
	}
	return &MarginExport{s: s, src: src, name: fmt.Sprintf("margins-%d-%s.csv", src.partnerID, month)}, nil
}

// Filename is the download name.
func (e *MarginExport) Filename() string { return e.name }

// WriteCSV writes one row per margin row, by customer, streamed from a
// cursor. Cost, vouchers, net cost and margin are exact, revenue has 2
// decimals, margin_percent is empty when the revenue is 0; stale (last, so
// the columns before it keep their places) is MarginRow.Stale. Text cells
// are safe to open in a spreadsheet.
func (e *MarginExport) WriteCSV(ctx context.Context, w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"customer_id", "customer_name", "month", "bill_status", "cost", "vouchers", "net_cost", "revenue",
		"margin", "margin_percent", "stale"}); err != nil {
		return err
	}
	q, args := e.src.rows(0)
	rows, err := e.s.st.DB.WithContext(ctx).Raw(`SELECT r.customer_id, a.name, r.bill_status, r.cost, r.vouchers, r.revenue, r.stale
		FROM (`+q+`) r JOIN accounts a ON a.id = r.customer_id ORDER BY r.customer_id`, args...).Rows()
	if err != nil {
		return fmt.Errorf("read the margins of partner %d: %w", e.src.partnerID, err)
	}
	defer rows.Close()
	month := models.MonthOfKey(e.src.month).String()
	for rows.Next() {
		var r MarginRow
		var name, status string
		if err := rows.Scan(&r.CustomerID, &name, &status, &r.Cost, &r.Vouchers, &r.Revenue, &r.Stale); err != nil {
			return fmt.Errorf("read the margins of partner %d: %w", e.src.partnerID, err)
		}
		e.src.complete(&r)
		percent := ""
		if r.MarginPercent != nil {
			percent = r.MarginPercent.StringFixed(2)
		}
		if err := cw.Write([]string{ids.Encode(accounts.TypeAccount, r.CustomerID), expenditures.SafeCell(name), month, status,
			r.Cost.String(), r.Vouchers.String(), r.NetCost.String(), r.Revenue.StringFixed(2), r.Margin.String(), percent,
			strconv.FormatBool(r.Stale)}); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read the margins of partner %d: %w", e.src.partnerID, err)
	}
	cw.Flush()
	return cw.Error()
}
