package expenditures

import (
	"context"
	"fmt"
	"strings"
	"unicode/utf8"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// selection is a Filter resolved against the caller's scope: exactly which
// records a query reads.
type selection struct {
	sc     accounts.Scope
	period Period
	// from and to are the period's month keys (YYYYMM), inclusive.
	from, to int
	// byOwner: only the records owned by owners. False for a customer
	// reading its own records, whoever owned them.
	byOwner bool
	// owners are the owners of the narrowed subtree that have records in the
	// period (from owner_spend_totals), ascending.
	owners []int64
	// customer: only this customer's records (0: any).
	customer int64
	product  string
	tag      *accounts.Tag
	// exactTotals: the running totals count exactly these records (no
	// customer, product or tag filter, or a customer reading its own).
	exactTotals bool
}

// isCustomerKind reports whether accounts of kind k consume (and so have
// records of their own) rather than own records.
func isCustomerKind(k models.AccountKind) bool {
	return k == models.KindCustomer || k == models.KindPersonal
}

// isOwnerKind reports whether accounts of kind k may own records: the
// partners, and the platform (for personal accounts).
func isOwnerKind(k models.AccountKind) bool {
	return k == models.KindPlatform || k == models.KindDistributor || k == models.KindReseller
}

// validate checks the parts of f that need no database, and fills in the
// default period (the current month).
func (s *Service) validate(f Filter) (Period, error) {
	p := Period{}
	if f.Period == nil {
		m := models.MonthOf(s.st.Now(), s.loc)
		p = Period{From: m, To: m}
	} else {
		p = *f.Period
	}
	if p.From.Key() > p.To.Key() {
		return p, apperr.Invalid("period", "the period's from (%s) is after its to (%s)", p.From, p.To)
	}
	if n := p.Months(); n > MaxPeriodMonths {
		return p, apperr.Invalid("period", "a period covers at most %d months, %s to %s is %d", MaxPeriodMonths, p.From, p.To, n)
	}
	if len(f.ProductCode) > maxProductCode || !utf8.ValidString(f.ProductCode) {
		return p, apperr.Invalid("productCode", "productCode must be UTF-8 text of at most %d bytes", maxProductCode)
	}
	if f.Tag != nil {
		if _, err := accounts.ValidateTags("tag", []accounts.Tag{*f.Tag}); err != nil {
			return p, err
		}
	}
	if f.PartnerID < 0 || f.CustomerID < 0 {
		return p, apperr.Invalid("id", "IDs are positive")
	}
	return p, nil
}

// resolve turns f into the selection of records the caller may read, once
// for the whole query: the caller's scope (accounts.ScopeOf), the narrowing
// to a sub-partner and a customer (NOT_FOUND outside the scope, VALIDATION
// for an account of the wrong kind), and the owners with records in the
// period.
func (s *Service) resolve(ctx context.Context, f Filter) (*selection, error) {
	period, err := s.validate(f)
	if err != nil {
		return nil, err
	}
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	sel := &selection{sc: sc, period: period, from: period.From.Key(), to: period.To.Key(),
		product: f.ProductCode, tag: f.Tag}
	db := s.st.DB.WithContext(ctx)
	p := sc.Principal()

	if !p.IsPlatform() && isCustomerKind(p.AccountKind) {
		// A customer or personal account reads its own records, whoever
		// owned them; it sees no partner, and no other customer.
		if f.PartnerID != 0 {
			if _, err := accounts.GetInScope(db, sc, f.PartnerID); err != nil {
				return nil, err
			}
			return nil, apperr.Invalid("partnerId", "partnerId names a partner: a customer reads its own records without it")
		}
		if f.CustomerID != 0 && f.CustomerID != p.AccountID {
			return nil, accounts.NotFound("account")
		}
		sel.customer = p.AccountID
		sel.exactTotals = sel.product == "" && sel.tag == nil
		return sel, nil
	}

	sel.byOwner = true
	root := f.PartnerID
	if root == 0 {
		root = p.AccountID
	}
	rootPath := "" // the whole tree: the system principal (no account of its own)
	if root != 0 {
		ra, err := accounts.GetInScope(db, sc, root)
		if err != nil {
			return nil, err
		}
		if !isOwnerKind(ra.Kind) {
			return nil, apperr.Invalid("partnerId", "partnerId must name a partner (or the platform); filter one customer with customerId")
		}
		rootPath = ra.Path
	}

	if f.CustomerID != 0 {
		if err := s.checkCustomer(ctx, rootPath, f.CustomerID); err != nil {
			return nil, err
		}
		sel.customer = f.CustomerID
	}
	sel.exactTotals = sel.customer == 0 && sel.product == "" && sel.tag == nil

	// Only owners with records in the period: the running totals say which,
	// so the record queries visit no owner in vain.
	q := `SELECT DISTINCT t.owner_id FROM owner_spend_totals t`
	args := []any{sel.from, sel.to}
	if rootPath != "" {
		q += ` JOIN accounts a ON a.id = t.owner_id WHERE t.month BETWEEN ? AND ? AND a.path LIKE ?`
		args = append(args, accounts.SubtreeLike(rootPath))
	} else {
		q += ` WHERE t.month BETWEEN ? AND ?`
	}
	if err := db.Raw(q+` ORDER BY 1`, args...).Scan(&sel.owners).Error; err != nil {
		return nil, fmt.Errorf("owners of %s..%s: %w", period.From, period.To, err)
	}
	return sel, nil
}

// checkCustomer decides whether customerID may narrow a query over the
// subtree at rootPath ("" for the whole tree): it must be a CUSTOMER or
// PERSONAL account that is in the subtree now or had a parent in it (a
// former customer, whose records of that era the subtree still owns).
// Anything else in no such relation is NOT_FOUND; an account of the subtree
// that is not a customer is VALIDATION.
func (s *Service) checkCustomer(ctx context.Context, rootPath string, customerID int64) error {
	var c struct {
		Kind   models.AccountKind
		Path   string
		Former bool
	}
	like := accounts.SubtreeLike(rootPath)
	err := s.st.DB.WithContext(ctx).Raw(`SELECT a.kind, a.path, EXISTS (
			SELECT 1 FROM account_parent_history h JOIN accounts p ON p.id = h.parent_id
			WHERE h.account_id = a.id AND p.path LIKE ?) AS former
		FROM accounts a WHERE a.id = ?`, like, customerID).Scan(&c).Error
	if err != nil {
		return fmt.Errorf("look up customer %d: %w", customerID, err)
	}
	if c.Path == "" || !(strings.HasPrefix(c.Path, rootPath) || c.Former) {
		return accounts.NotFound("account")
	}
	if !isCustomerKind(c.Kind) {
		return apperr.Invalid("customerId", "customerId must name a customer or personal account; narrow to a partner with partnerId")
	}
	return nil
}

// where renders the selection as a WHERE fragment over the expenditures
// alias e. withOwners adds the owner condition; the per-owner page query
// leaves it out and joins each owner instead.
func (q *selection) where(e string, withOwners bool) (string, []any) {
	conds := []string{e + ".month BETWEEN ? AND ?"}
	args := []any{q.from, q.to}
	if q.byOwner && withOwners {
		conds, args = append(conds, e+".owner_id = ANY(?::bigint[])"), append(args, store.Int64Array(q.owners))
	}
	if q.customer != 0 {
		conds, args = append(conds, e+".customer_id = ?"), append(args, q.customer)
	}
	if q.product != "" {
		conds, args = append(conds, e+".product_code = ?"), append(args, q.product)
	}
	if q.tag != nil {
		conds, args = append(conds, e+".tags @> jsonb_build_object(?::text, ?::text)"), append(args, q.tag.Key, q.tag.Value)
	}
	return strings.Join(conds, " AND "), args
}

// empty reports whether the selection can hold no record at all (a subtree
// with no owner that has records in the period), so queries skip the
// database.
func (q *selection) empty() bool { return q.byOwner && len(q.owners) == 0 }

// visible renders the SQL condition under which an account, whose
// materialized path is in pathColumn, may be shown to the caller (its name,
// its ID as an account): the caller's scope.
func (q *selection) visible(pathColumn string) (string, []any) { return q.sc.SQL(pathColumn) }
