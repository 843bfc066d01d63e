package billing

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
)

// RatingRule is a partner's price rule for its customers: Percent on list
// price (negative: a discount, positive: a markup) for ProductCode, or the
// partner's default when ProductCode is "", in force from EffectiveMonth
// until a later rule for the same product.
type RatingRule struct {
	ID             int64
	PartnerID      int64
	ProductCode    string
	Percent        decimal.Decimal
	EffectiveMonth int
	CreatedAt      time.Time
	CreatedBy      string
}

// IsNode marks RatingRule as a Node.
func (RatingRule) IsNode() {}

// GlobalID is the rule's Node ID.
func (r *RatingRule) GlobalID() string { return ids.Encode(TypeRatingRule, r.ID) }

// The bounds of a rating percentage.
var (
	minPercent = decimal.NewFromInt(-100)
	maxPercent = decimal.NewFromInt(1000)
)

// CreateRatingRule adds a rating rule of partner partnerID (ADMIN or
// FINANCE of the partner or above it). productCode "" is the default rule.
// Two rules for one product and month CONFLICT; a rule may not start in a
// month whose customer bills are already issued (they are final).
func (s *Service) CreateRatingRule(ctx context.Context, partnerID int64, productCode string, percent decimal.Decimal, effective models.Month) (*RatingRule, error) {
	productCode = strings.TrimSpace(productCode)
	if len(productCode) > 100 {
		return nil, apperr.Invalid("productCode", "a product code has at most 100 characters")
	}
	if percent.LessThan(minPercent) || percent.GreaterThan(maxPercent) {
		return nil, apperr.Invalid("percent", "the percentage must be between -100 and +1000 (got %s)", percent)
	}
	if percent.Exponent() < -4 {
		return nil, apperr.Invalid("percent", "the percentage has at most 4 decimals (got %s)", percent)
	}
	if effective.Year < 2000 || effective.Year > 9999 {
		return nil, apperr.Invalid("effectiveMonth", "%s is out of range", effective)
	}
	var out RatingRule
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		if err := lockPartnerForFinance(tx, partnerID); err != nil {
			return err
		}
		var issued int
		if err := tx.DB.Raw(`SELECT coalesce(max(month), 0) FROM customer_bills WHERE partner_id = ? AND status = 'ISSUED'`, partnerID).Scan(&issued).Error; err != nil {
			return fmt.Errorf("read the last issued customer bills: %w", err)
		}
		if effective.Key() <= issued {
			return apperr.Preconditionf("the customer bills of %s are issued and final: a new rule starts after it", models.MonthOfKey(issued))
		}
		err := tx.DB.Raw(`INSERT INTO rating_rules (partner_id, product_code, percent, effective_month, created_at, created_by)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, product_code, effective_month) DO NOTHING RETURNING *`,
			partnerID, productCode, percent, effective.Key(), tx.Now(), store.ActorFrom(tx.Context()).Label).Scan(&out).Error
		if err != nil {
			return fmt.Errorf("create rating rule: %w", err)
		}
		if out.ID == 0 {
			what := "the default rule"
			if productCode != "" {
				what = "a rule for " + productCode
			}
			return apperr.Conflictf("%s already starts in %s", what, effective)
		}
		return tx.Audit("billing.rating_rule_created", partnerID, nil, map[string]any{"rule": out.ID, "productCode": productCode,
			"percent": percent.String(), "effectiveMonth": effective.String()})
	})
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// lockPartnerForFinance locks partner id through the caller's scope
// (NOT_FOUND outside it, VALIDATION if it is not a partner) and requires a
// role with PermFinance (ADMIN or FINANCE).
func lockPartnerForFinance(tx *store.Tx, id int64) error {
	sc, err := accounts.ScopeOf(tx.Context())
	if err != nil {
		return err
	}
	a, err := accounts.LockInScope(tx, sc, id)
	if err != nil {
		return err
	}
	if a.Kind != models.KindDistributor && a.Kind != models.KindReseller {
		return apperr.Invalid("partnerId", "account %d is a %s, not a partner", id, a.Kind)
	}
	return sc.Require(accounts.PermFinance)
}

// RatingRules lists the rating rules of partner partnerID (in scope), by
// product (the default first) and effective month.
func (s *Service) RatingRules(ctx context.Context, partnerID int64) ([]*RatingRule, error) {
	if _, _, err := s.partnerInScope(ctx, partnerID); err != nil {
		return nil, err
	}
	var out []*RatingRule
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM rating_rules WHERE partner_id = ? ORDER BY product_code, effective_month`,
		partnerID).Scan(&out).Error; err != nil {
		return nil, fmt.Errorf("list rating rules: %w", err)
	}
	return out, nil
}

// CustomerBill is a customer's bill from a partner for a month, rated from
// the partner bill's lines of that customer.
type CustomerBill struct {
	ID            int64
	PartnerID     int64
	CustomerID    int64
	Month         int
	PartnerBillID int64
	Status        Status
	// ListTotal is the list price of the usage lines.
	ListTotal decimal.Decimal
	// Total is the sum of every line's amount: the rated usage less the
	// voucher deductions.
	Total       decimal.Decimal
	GeneratedAt time.Time
}

// IsNode marks CustomerBill as a Node.
func (CustomerBill) IsNode() {}

// GlobalID is the bill's Node ID.
func (b *CustomerBill) GlobalID() string { return ids.Encode(TypeCustomerBill, b.ID) }

// Number is the bill's invoice number.
func (b *CustomerBill) Number() string { return fmt.Sprintf("INV-%06d-%08d", b.Month, b.ID) }

// LineKind is the kind of a customer bill line.
type LineKind string

// The kinds of customer bill line.
const (
	// LineUsage: the rated usage of a product.
	LineUsage LineKind = "USAGE"
	// LineVoucher: what vouchers paid of a product's usage, deducted.
	LineVoucher LineKind = "VOUCHER"
)

// CustomerLine is one line of a customer bill, of a product in ForMonth
// (an earlier month for an adjustment). A LineUsage line holds the list
// total, the percentage of the rule in force for that month (RuleID nil:
// none, list price), and Amount, list × (1 + percent/100) rounded half-even
// to 2 decimals. A LineVoucher line deducts what vouchers paid of the same
// records: Amount is minus that sum rounded half-even to 2 decimals, never
// more than the usage line's amount; its List and Percent are 0, RuleID nil.
type CustomerLine struct {
	BillID      int64
	ForMonth    int
	Kind        LineKind
	ProductCode string
	List        decimal.Decimal
	RuleID      *int64
	Percent     decimal.Decimal
	Amount      decimal.Decimal
	// Adjustment: ForMonth is earlier than the bill's month (set by
	// CustomerLines).
	Adjustment bool `gorm:"->"`
}

// GenerateCustomerBills rates the customer bills of partner partnerID for
// month from its partner bill (which must exist: generate it first) and
// returns how many bills there are. Bills rated from a DRAFT partner bill
// are DRAFT and rated again on every call; once rated from the ISSUED
// partner bill they are ISSUED and never change (a call returns their
// count). ADMIN or FINANCE of the partner or above it; partnerID 0 is the
// caller's own account.
func (s *Service) GenerateCustomerBills(ctx context.Context, partnerID int64, month models.Month) (int, error) {
	if err := s.checkClosed(month); err != nil {
		return 0, err
	}
	if partnerID == 0 {
		p, ok := accounts.PrincipalFrom(ctx)
		if !ok {
			return 0, accounts.ErrUnauthenticated
		}
		partnerID = p.AccountID
	}
	var n int
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		if err := lockPartnerForFinance(tx, partnerID); err != nil {
			return err
		}
		var err error
		n, err = s.rateCustomers(tx, partnerID, month.Key())
		return err
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// rateCustomers (re)writes the customer bills of partner p for month m in
// tx, unless they are ISSUED: per customer of the partner's own, product
// and month of the partner bill's lines, a usage line rated by the rules
// and, if vouchers paid some of those records, a voucher line deducting it.
func (s *Service) rateCustomers(tx *store.Tx, p int64, m int) (int, error) {
	var pb PartnerBill
	if err := tx.DB.Raw(`SELECT * FROM partner_bills WHERE partner_id = ? AND month = ? FOR SHARE`, p, m).Scan(&pb).Error; err != nil {
		return 0, fmt.Errorf("load the partner bill: %w", err)
	}
	if pb.ID == 0 {
		return 0, apperr.Preconditionf("there is no partner bill for %s yet: generate the partner bills first", models.MonthOfKey(m))
	}
	var issued int
	if err := tx.DB.Raw(`SELECT count(*) FROM customer_bills WHERE partner_id = ? AND month = ? AND status = 'ISSUED'`, p, m).Scan(&issued).Error; err != nil {
		return 0, fmt.Errorf("count issued customer bills: %w", err)
	}
	if issued > 0 {
		return issued, nil
	}
	// Draft bills keep their ids (links to their invoices stay valid); only
	// their lines are rated again.
	if err := tx.DB.Exec(`DELETE FROM customer_bill_lines WHERE bill_id IN (SELECT id FROM customer_bills WHERE partner_id = ? AND month = ?)`,
		p, m).Error; err != nil {
		return 0, fmt.Errorf("clear draft customer bill lines: %w", err)
	}
	now := tx.Now()
	res := tx.DB.Exec(`INSERT INTO customer_bills (partner_id, customer_id, month, partner_bill_id, status, list_total, total, generated_at)
		SELECT ?, customer_id, ?, ?, ?, 0, 0, ? FROM partner_bill_lines WHERE bill_id = ? AND owner_id = ?
		GROUP BY customer_id ORDER BY customer_id
		ON CONFLICT (partner_id, customer_id, month) DO UPDATE SET partner_bill_id = EXCLUDED.partner_bill_id,
			status = EXCLUDED.status, list_total = 0, total = 0, generated_at = EXCLUDED.generated_at`,
		p, m, pb.ID, string(pb.Status), now, pb.ID, p)
	if res.Error != nil {
		return 0, fmt.Errorf("create customer bills: %w", res.Error)
	}
	err := tx.DB.Exec(`WITH l AS (
			SELECT cb.id AS bill_id, pl.for_month, pl.product_code, sum(pl.list) AS list
			FROM partner_bill_lines pl JOIN customer_bills cb ON cb.partner_id = ? AND cb.month = ? AND cb.customer_id = pl.customer_id
			WHERE pl.bill_id = ? AND pl.owner_id = ?
			GROUP BY cb.id, pl.for_month, pl.product_code
		), ins AS (
			INSERT INTO customer_bill_lines (bill_id, for_month, kind, product_code, list, rule_id, percent, amount)
			SELECT l.bill_id, l.for_month, 'USAGE', l.product_code, l.list, r.id, coalesce(r.percent, 0),
				round_half_even(l.list * (100 + coalesce(r.percent, 0)) / 100, 2)
			FROM l LEFT JOIN LATERAL (
				SELECT id, percent FROM rating_rules
				WHERE partner_id = ? AND product_code IN (l.product_code, '') AND effective_month <= l.for_month
				ORDER BY product_code = '', effective_month DESC LIMIT 1) r ON true
			RETURNING bill_id, list, amount
		)
		UPDATE customer_bills b SET list_total = s.list, total = s.amount
		FROM (SELECT bill_id, sum(list) AS list, sum(amount) AS amount FROM ins GROUP BY bill_id) s
		WHERE b.id = s.bill_id`, p, m, pb.ID, p, p).Error
	if err != nil {
		return 0, fmt.Errorf("rate customer bills: %w", err)
	}
	// What vouchers paid is deducted from the rated amount, capped by it: a
	// discount deeper than the price the records were paid at leaves the
	// customer nothing to pay for the product, never a credit.
	err = tx.DB.Exec(`WITH v AS (
			SELECT cb.id AS bill_id, pl.for_month, pl.product_code, sum(pl.voucher) AS voucher
			FROM partner_bill_lines pl JOIN customer_bills cb ON cb.partner_id = ? AND cb.month = ? AND cb.customer_id = pl.customer_id
			WHERE pl.bill_id = ? AND pl.owner_id = ?
			GROUP BY cb.id, pl.for_month, pl.product_code
			HAVING sum(pl.voucher) > 0
		), ins AS (
			INSERT INTO customer_bill_lines (bill_id, for_month, kind, product_code, list, rule_id, percent, amount)
			SELECT v.bill_id, v.for_month, 'VOUCHER', v.product_code, 0, NULL, 0, -least(round_half_even(v.voucher, 2), u.amount)
			FROM v JOIN customer_bill_lines u ON u.bill_id = v.bill_id AND u.for_month = v.for_month AND u.kind = 'USAGE'
				AND u.product_code = v.product_code
			RETURNING bill_id, amount
		)
		UPDATE customer_bills b SET total = b.total + s.amount
		FROM (SELECT bill_id, sum(amount) AS amount FROM ins GROUP BY bill_id) s
		WHERE b.id = s.bill_id`, p, m, pb.ID, p).Error
	if err != nil {
		return 0, fmt.Errorf("deduct vouchers from customer bills: %w", err)
	}
	if err := tx.Audit("billing.customer_bills_generated", p, nil, map[string]any{"month": models.MonthOfKey(m).String(),
		"bills": res.RowsAffected, "status": pb.Status}); err != nil {
		return 0, err
	}
	return int(res.RowsAffected), nil
}

// customerBillVisible reports whether the caller may see a bill of partner
// (its path partnerPath) to customer: the customer itself, and the partner
// and those above it — not a later partner of a customer that moved.
func customerBillVisible(sc accounts.Scope, partnerPath string, customer int64) bool {
	p := sc.Principal()
	return p.System || p.AccountID == customer || sc.Contains(partnerPath)
}

// CustomerBill returns customer bill id if the caller may see it, else
// NOT_FOUND.
func (s *Service) CustomerBill(ctx context.Context, id int64) (*CustomerBill, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var row struct {
		CustomerBill
		PartnerPath string
	}
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT b.*, a.path AS partner_path FROM customer_bills b JOIN accounts a ON a.id = b.partner_id
		WHERE b.id = ?`, id).Scan(&row).Error; err != nil {
		return nil, fmt.Errorf("load customer bill %d: %w", id, err)
	}
	if row.ID == 0 || !customerBillVisible(sc, row.PartnerPath, row.CustomerID) {
		return nil, accounts.NotFound("customer bill")
	}
	return &row.CustomerBill, nil
}

// CustomerBillFilter narrows CustomerBills.
type CustomerBillFilter struct {
	// PartnerID: the bills this partner (in scope) issues; 0: for a
	// customer principal its own bills, for a partner its own.
	PartnerID  int64
	CustomerID int64
	Month      *models.Month
}

// CustomerBills returns a page of up to first customer bills the caller may
// see, newest month first then by id, after afterID, with the size of the
// whole list.
func (s *Service) CustomerBills(ctx context.Context, f CustomerBillFilter, first int, afterID int64) (*Page[*CustomerBill], error) {
	q, args, err := s.customerBillsWhere(ctx, f)
	if err != nil {
		return nil, err
	}
	return pageOf[*CustomerBill](s.st.DB.WithContext(ctx), "customer_bills b", q, args, "-b.month, b.id", "b.month DESC, b.id", first, afterID)
}

func (s *Service) customerBillsWhere(ctx context.Context, f CustomerBillFilter) (string, []any, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return "", nil, err
	}
	p := sc.Principal()
	var q string
	var args []any
	switch {
	case f.PartnerID != 0:
		if _, _, err := s.partnerInScope(ctx, f.PartnerID); err != nil {
			return "", nil, err
		}
		q, args = `b.partner_id = ?`, []any{f.PartnerID}
	case p.AccountKind == models.KindCustomer || p.AccountKind == models.KindPersonal:
		q, args = `b.customer_id = ?`, []any{p.AccountID}
	case p.IsPlatform():
		q = `true`
	default:
		q, args = `b.partner_id = ?`, []any{p.AccountID}
	}
	if f.CustomerID != 0 {
		if p.AccountID != f.CustomerID {
			if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, f.CustomerID); err != nil {
				return "", nil, err
			}
		}
		q += ` AND b.customer_id = ?`
		args = append(args, f.CustomerID)
	}
	if f.Month != nil {
		if err := s.checkMonth(*f.Month); err != nil {
			return "", nil, err
		}
		q += ` AND b.month = ?`
		args = append(args, f.Month.Key())
	}
	return q, args, nil
}

// CustomerLines returns the lines of customer bills billIDs (already
// loaded through the scope), by bill: the month's own first, then
// adjustments by month, by product, each product's usage line followed by
// its voucher line.
func (s *Service) CustomerLines(ctx context.Context, billIDs []int64) (map[int64][]*CustomerLine, error) {
	var list []*CustomerLine
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT l.*, l.for_month <> b.month AS adjustment FROM customer_bill_lines l JOIN customer_bills b ON b.id = l.bill_id
		WHERE l.bill_id = ANY(?) ORDER BY l.bill_id, l.for_month <> b.month, l.for_month, l.product_code, l.kind <> 'USAGE'`,
		store.Int64Array(billIDs)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load customer bill lines: %w", err)
	}
	return groupBy(list, func(x *CustomerLine) int64 { return x.BillID }), nil
}

// RatingRule returns rule id if the caller may see its partner's rules
// (the partner and those above it), else NOT_FOUND.
func (s *Service) RatingRule(ctx context.Context, id int64) (*RatingRule, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	rules, err := s.RulesOfLines(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	r := rules[id]
	if r == nil {
		return nil, accounts.NotFound("rating rule")
	}
	if ok, err := s.partnerVisible(s.st.DB.WithContext(ctx), sc, r.PartnerID); err != nil || !ok {
		if err == nil {
			err = accounts.NotFound("rating rule")
		}
		return nil, err
	}
	return r, nil
}

// RulesOfLines loads the rules ids that customer bill lines name (the
// caller loaded the lines through the scope), by id.
func (s *Service) RulesOfLines(ctx context.Context, ids []int64) (map[int64]*RatingRule, error) {
	var list []*RatingRule
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM rating_rules WHERE id = ANY(?)`, store.Int64Array(ids)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load rating rules: %w", err)
	}
	out := make(map[int64]*RatingRule, len(list))
	for _, r := range list {
		out[r.ID] = r
	}
	return out, nil
}
