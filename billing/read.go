package billing

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// partnerVisible reports whether partner id's bills are the caller's to
// see: the partner itself and those above it (its distributor, the
// platform). Its customers and second-level resellers do not see them.
func (s *Service) partnerVisible(db *gorm.DB, sc accounts.Scope, id int64) (bool, error) {
	var path string
	if err := db.Raw(`SELECT path FROM accounts WHERE id = ? AND kind IN ('DISTRIBUTOR','RESELLER')`, id).Scan(&path).Error; err != nil {
		return false, fmt.Errorf("load partner %d: %w", id, err)
	}
	return path != "" && sc.Contains(path), nil
}

// partnerInScope loads partner id through the caller's scope: NOT_FOUND if
// it is outside it or not a partner.
func (s *Service) partnerInScope(ctx context.Context, id int64) (*models.Account, accounts.Scope, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, sc, err
	}
	a, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, id)
	if err != nil {
		return nil, sc, err
	}
	if a.Kind != models.KindDistributor && a.Kind != models.KindReseller {
		return nil, sc, apperr.Invalid("partnerId", "account %d is a %s, not a partner", id, a.Kind)
	}
	return a, sc, nil
}

// PartnerBills returns the bills of month that concern partner id: its own
// bill (what it settles with its parent) followed by the bills of the
// second-level resellers that settle with it, by partner. A month without a
// bill run yet gives an empty list.
func (s *Service) PartnerBills(ctx context.Context, partnerID int64, month models.Month) ([]*PartnerBill, error) {
	if _, _, err := s.partnerInScope(ctx, partnerID); err != nil {
		return nil, err
	}
	if err := s.checkMonth(month); err != nil {
		return nil, err
	}
	var out []*PartnerBill
	err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM partner_bills WHERE month = ? AND (partner_id = ? OR settles_with_id = ?)
		ORDER BY partner_id <> ?, partner_id`, month.Key(), partnerID, partnerID, partnerID).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("load the bills of partner %d for %s: %w", partnerID, month, err)
	}
	return out, nil
}

// checkMonth refuses a malformed or future month for a query.
func (s *Service) checkMonth(m models.Month) error {
	if m.Year < 2000 || m.Year > 9999 || m.Month < 1 || m.Month > 12 {
		return apperr.Invalid("month", "%s is out of range", m)
	}
	if cur := s.CurrentMonth(); m.Key() > cur.Key() {
		return apperr.Invalid("month", "%s is in the future (the current month is %s)", m, cur)
	}
	return nil
}

// PartnerBill returns bill id if the caller may see it, else NOT_FOUND.
func (s *Service) PartnerBill(ctx context.Context, id int64) (*PartnerBill, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	var b PartnerBill
	if err := db.Raw(`SELECT * FROM partner_bills WHERE id = ?`, id).Scan(&b).Error; err != nil {
		return nil, fmt.Errorf("load partner bill %d: %w", id, err)
	}
	if b.ID == 0 {
		return nil, accounts.NotFound("partner bill")
	}
	if ok, err := s.partnerVisible(db, sc, b.PartnerID); err != nil || !ok {
		if err == nil {
			err = accounts.NotFound("partner bill")
		}
		return nil, err
	}
	return &b, nil
}

// BillFilter narrows Bills.
type BillFilter struct {
	// PartnerID: the bills of this partner (in scope) and of those settling
	// with it; 0: every bill in the caller's scope.
	PartnerID int64
	Month     *models.Month
	Status    *Status
}

// MaxPage is the largest page of a billing list.
const MaxPage = 500

// Bills returns a page of up to first bills the caller may see, newest
// month first (then by id), after the bill afterID (0: from the start),
// with the size of the whole list.
func (s *Service) Bills(ctx context.Context, f BillFilter, first int, afterID int64) (*Page[*PartnerBill], error) {
	q, args, err := s.billsWhere(ctx, f)
	if err != nil {
		return nil, err
	}
	return pageOf[*PartnerBill](s.st.DB.WithContext(ctx), "partner_bills b JOIN accounts a ON a.id = b.partner_id", q, args,
		"-b.month, b.id", "b.month DESC, b.id", first, afterID)
}

func (s *Service) billsWhere(ctx context.Context, f BillFilter) (string, []any, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return "", nil, err
	}
	q, args := sc.SQL("a.path")
	if f.PartnerID != 0 {
		if _, _, err := s.partnerInScope(ctx, f.PartnerID); err != nil {
			return "", nil, err
		}
		q += ` AND (b.partner_id = ? OR b.settles_with_id = ?)`
		args = append(args, f.PartnerID, f.PartnerID)
	}
	if f.Month != nil {
		if err := s.checkMonth(*f.Month); err != nil {
			return "", nil, err
		}
		q += ` AND b.month = ?`
		args = append(args, f.Month.Key())
	}
	if f.Status != nil {
		if *f.Status != StatusDraft && *f.Status != StatusIssued {
			return "", nil, apperr.Invalid("status", "%q is not a bill status", *f.Status)
		}
		q += ` AND b.status = ?`
		args = append(args, string(*f.Status))
	}
	return q, args, nil
}

// LineFilter narrows a bill's lines.
type LineFilter struct {
	CustomerID  int64
	ProductCode string
}

// Lines returns the lines of the bills billIDs (which the caller was
// allowed to load), each bill's in a stable order: its own month's first,
// then adjustments by month; within them by customer and product.
func (s *Service) Lines(ctx context.Context, billIDs []int64, f LineFilter) (map[int64][]*Line, error) {
	q := `SELECT l.*, l.for_month <> b.month AS adjustment FROM partner_bill_lines l JOIN partner_bills b ON b.id = l.bill_id
		WHERE l.bill_id = ANY(?)`
	args := []any{store.Int64Array(billIDs)}
	if f.CustomerID != 0 {
		q += ` AND l.customer_id = ?`
		args = append(args, f.CustomerID)
	}
	if f.ProductCode != "" {
		q += ` AND l.product_code = ?`
		args = append(args, f.ProductCode)
	}
	var list []*Line
	if err := s.st.DB.WithContext(ctx).Raw(q+` ORDER BY l.bill_id, l.for_month <> b.month, l.for_month, l.customer_id, l.product_code, l.owner_id`, args...).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load bill lines: %w", err)
	}
	return groupBy(list, func(x *Line) int64 { return x.BillID }), nil
}

// EachLine calls fn with the lines of bill b (which the caller was allowed
// to load) in the order of Lines, streaming them from a cursor.
func (s *Service) EachLine(ctx context.Context, b *PartnerBill, fn func(*Line) error) error {
	rows, err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM partner_bill_lines WHERE bill_id = ?
		ORDER BY for_month <> ?, for_month, customer_id, product_code, owner_id`, b.ID, b.Month).Rows()
	if err != nil {
		return fmt.Errorf("read the lines of bill %d: %w", b.ID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l Line
		if err := s.st.DB.ScanRows(rows, &l); err != nil {
			return fmt.Errorf("read the lines of bill %d: %w", b.ID, err)
		}
		if err := fn(&l); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Adjustments returns the adjustment sums of bills billIDs, by bill.
func (s *Service) Adjustments(ctx context.Context, billIDs []int64) (map[int64][]*Adjustment, error) {
	var list []*Adjustment
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM partner_bill_adjustments WHERE bill_id = ANY(?) ORDER BY bill_id, for_month`,
		store.Int64Array(billIDs)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load bill adjustments: %w", err)
	}
	return groupBy(list, func(x *Adjustment) int64 { return x.BillID }), nil
}

// Page is one keyset page of a billing list.
type Page[T any] = store.Page[T]

// pageOf is store.PageOf with billing's largest page.
func pageOf[T any](db *gorm.DB, from, where string, args []any, key, order string, first int, afterID int64) (*Page[T], error) {
	return store.PageOf[T](db, from, where, args, key, order, first, MaxPage, afterID)
}

// groupBy groups rows by key, keeping their order.
func groupBy[T any](rows []T, key func(T) int64) map[int64][]T {
	out := map[int64][]T{}
	for _, r := range rows {
		k := key(r)
		out[k] = append(out[k], r)
	}
	return out
}
