package vouchers

import (
	"context"
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// IssueCode says what became of one customer of an issue.
type IssueCode string

// The per-customer results of an issue.
const (
	// IssueOK: the voucher was issued.
	IssueOK IssueCode = "ISSUED"
	// IssueNotFound: no such customer in the caller's scope.
	IssueNotFound IssueCode = "NOT_FOUND"
	// IssueNotInScope: not a customer of the template's partner (another
	// partner's customer, a reseller, a personal account).
	IssueNotInScope IssueCode = "NOT_IN_SCOPE"
	// IssueOverLimit: the customer already holds the template's
	// per-customer limit of vouchers (cancelled ones do not count).
	IssueOverLimit IssueCode = "OVER_CUSTOMER_LIMIT"
	// IssueQuotaExhausted: the pool's remaining quota is below the face
	// value.
	IssueQuotaExhausted IssueCode = "QUOTA_EXHAUSTED"
	// IssueDuplicate: the customer appeared earlier in the same call.
	IssueDuplicate IssueCode = "DUPLICATE"
)

// IssueResult is the result of one customer of an issue.
type IssueResult struct {
	CustomerID int64     `json:"customerId"`
	Code       IssueCode `json:"code"`
	VoucherID  int64     `json:"voucherId,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// IssueResults are an issue's per-customer results, in the order the
// customers were given; stored as jsonb.
type IssueResults []IssueResult

// Value implements driver.Valuer.
func (r IssueResults) Value() (driver.Value, error) {
	if r == nil {
		return nil, nil
	}
	b, err := json.Marshal([]IssueResult(r))
	return string(b), err
}

// Scan implements sql.Scanner.
func (r *IssueResults) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*r = nil
		return nil
	case []byte:
		return json.Unmarshal(v, (*[]IssueResult)(r))
	case string:
		return json.Unmarshal([]byte(v), (*[]IssueResult)(r))
	default:
		return fmt.Errorf("issue results: cannot scan %T", src)
	}
}

// Issued counts the vouchers issued.
func (r IssueResults) Issued() int {
	n := 0
	for _, x := range r {
		if x.Code == IssueOK {
			n++
		}
	}
	return n
}

// Issue issues one voucher of template templateID to each customer of
// customerIDs (1 to MaxIssue), charged to the template's partner's pool,
// with a result per customer. The partner's ADMIN or FINANCE (or an
// ancestor's, or the platform's) may; a retired template, an expired
// validity or an expired or never granted quota is PRECONDITION_FAILED.
//
// A second-level reseller's own issue of more than the approval threshold
// its distributor set (face value × customers) is stored PENDING_APPROVAL
// and the distributor asked; nothing is issued or reserved until it is
// approved.
func (s *Service) Issue(ctx context.Context, templateID int64, customerIDs []int64) (*Issuance, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *Issuance
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		t, a, err := lockTemplate(tx, sc, templateID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if len(customerIDs) == 0 || len(customerIDs) > MaxIssue {
			return apperr.Invalid("customerIds", "an issue names 1 to %d customers, got %d", MaxIssue, len(customerIDs))
		}
		if err := issuable(tx, t, a); err != nil {
			return err
		}
		p, err := lockPool(tx, a.ID)
		if err != nil {
			return err
		}
		total := t.FaceValue.Mul(decimal.NewFromInt(int64(len(customerIDs))))
		is := &Issuance{TemplateID: t.ID, PartnerID: a.ID, CustomerIDs: store.Int64s(customerIDs), FaceTotal: total,
			Status: IssuanceCompleted, RequestedBy: store.ActorFrom(tx.Context()).Label, RequestedAt: tx.Now()}
		pending := a.Depth == 2 && sc.Principal().AccountID == a.ID && p.ApprovalThreshold != nil && total.GreaterThan(*p.ApprovalThreshold)
		if pending {
			is.Status = IssuancePending
		}
		if err := tx.DB.Table("voucher_issuances").Omit("ID", "DecidedBy", "DecidedAt", "Reason", "Results").Create(is).Error; err != nil {
			return fmt.Errorf("create voucher issuance: %w", err)
		}
		out = is
		if pending {
			if err := tx.Audit("voucher.issue_requested", a.ID, nil, map[string]any{"issuance": is.ID, "template": t.ID,
				"customers": len(customerIDs), "faceTotal": models.FormatDecimal(total)}); err != nil {
				return err
			}
			return tx.Emit(notify.VoucherIssuanceRequested{IssuanceID: is.ID, ResellerID: a.ID, DistributorID: *a.ParentID,
				Template: t.Name, Customers: len(customerIDs), FaceValue: models.FormatDecimal(t.FaceValue),
				FaceTotal: models.FormatDecimal(total), Threshold: models.FormatDecimal(*p.ApprovalThreshold)})
		}
		return s.carryOut(tx, t, a, p, is)
	})
	return out, err
}

// issuable refuses a template that cannot issue now: retired, its fixed
// validity over, or its partner's quota expired or never granted.
func issuable(tx *store.Tx, t *Template, a *models.Account) error {
	if t.Status == TemplateRetired {
		return apperr.Preconditionf("the template is retired")
	}
	if t.ValidUntil != nil && !tx.Now().Before(*t.ValidUntil) {
		return apperr.Preconditionf("the template's validity ended at %s", t.ValidUntil.UTC().Format(time.RFC3339))
	}
	own := &poolRow{}
	if a.Depth <= 1 {
		if err := tx.DB.Raw(`SELECT expires_at FROM voucher_pools WHERE partner_id = ?`, a.ID).Scan(own).Error; err != nil {
			return fmt.Errorf("load voucher pool: %w", err)
		}
	}
	exp, err := expiryOf(tx, a, own)
	if err != nil {
		return err
	}
	return usable(tx.Now(), exp)
}

// carryOut issues the vouchers of issuance is (its customers in order),
// records the results and charges the pool p (locked) of partner a.
// Customers are looked for in a's subtree — whoever carries the issue out
// (a, a partner above it, the platform) — so the results never tell a of
// an account outside its scope.
func (s *Service) carryOut(tx *store.Tx, t *Template, a *models.Account, p *poolRow, is *Issuance) error {
	type cust struct {
		ID       int64
		Kind     models.AccountKind
		ParentID *int64
	}
	var custs []cust
	if err := tx.DB.Raw(`SELECT id, kind, parent_id FROM accounts WHERE id = ANY(?::bigint[]) AND path LIKE ?`,
		store.Int64Array(is.CustomerIDs), accounts.SubtreeLike(a.Path)).Scan(&custs).Error; err != nil {
		return fmt.Errorf("load customers: %w", err)
	}
	known := make(map[int64]cust, len(custs))
	for _, c := range custs {
		known[c.ID] = c
	}
	var held []struct {
		CustomerID int64
		N          int
	}
	if err := tx.DB.Raw(`SELECT customer_id, count(*) AS n FROM vouchers WHERE template_id = ? AND customer_id = ANY(?::bigint[]) AND status <> 'CANCELLED'
		GROUP BY customer_id`, t.ID, store.Int64Array(is.CustomerIDs)).Scan(&held).Error; err != nil {
		return fmt.Errorf("count customers' vouchers: %w", err)
	}
	counts := make(map[int64]int, len(held))
	for _, h := range held {
		counts[h.CustomerID] = h.N
	}
	results := make(IssueResults, 0, len(is.CustomerIDs))
	seen := make(map[int64]bool, len(is.CustomerIDs))
	var issue []int64
	remaining := p.remaining()
	for _, id := range is.CustomerIDs {
		r := IssueResult{CustomerID: id}
		c, ok := known[id]
		switch {
		case seen[id]:
			r.Code, r.Message = IssueDuplicate, "the customer appears earlier in this issue"
		case !ok:
			r.Code, r.Message = IssueNotFound, "no such customer"
		case c.Kind != models.KindCustomer || c.ParentID == nil || *c.ParentID != a.ID:
			r.Code, r.Message = IssueNotInScope, "not a customer of the template's partner"
		case counts[id] >= t.PerCustomerLimit:
			r.Code, r.Message = IssueOverLimit, fmt.Sprintf("the customer already holds %d voucher(s) of this template, the limit", counts[id])
		case remaining.LessThan(t.FaceValue):
			r.Code, r.Message = IssueQuotaExhausted, fmt.Sprintf("the remaining voucher quota %s is below the face value", models.FormatDecimal(remaining))
		default:
			r.Code = IssueOK
			counts[id]++
			remaining = remaining.Sub(t.FaceValue)
			issue = append(issue, id)
		}
		seen[id] = true
		results = append(results, r)
	}
	if len(issue) > 0 {
		effective, expires := t.validity(tx.Now(), s.opts.Location)
		var made []struct{ ID, CustomerID int64 }
		err := tx.DB.Raw(`INSERT INTO vouchers (template_id, issuance_id, issuer_id, customer_id, face_value, remaining, status,
				product_scope, product_codes, billing_modes, effective_at, expires_at, issued_at)
			SELECT ?, ?, ?, u.c, ?, ?, 'ISSUED', ?, ?::text[], ?, ?, ?, ? FROM unnest(?::bigint[]) WITH ORDINALITY AS u(c, n) ORDER BY u.n
			RETURNING id, customer_id`,
			t.ID, is.ID, a.ID, t.FaceValue, t.FaceValue, t.ProductScope, t.ProductCodes, t.BillingModes, effective, expires, tx.Now(),
			store.Int64Array(issue)).Scan(&made).Error
		if err != nil {
			return fmt.Errorf("issue vouchers: %w", err)
		}
		byCustomer := make(map[int64]int64, len(made))
		for _, m := range made {
			byCustomer[m.CustomerID] = m.ID
		}
		for i := range results {
			if results[i].Code == IssueOK {
				results[i].VoucherID = byCustomer[results[i].CustomerID]
			}
		}
		amount := t.FaceValue.Mul(decimal.NewFromInt(int64(len(issue))))
		p.Issued = p.Issued.Add(amount)
		exp, err := expiryOf(tx, a, p)
		if err != nil {
			return err
		}
		if err := savePool(tx, p, exp); err != nil {
			return err
		}
		if err := ledger(tx, p, "ISSUE", amount, nil, nil, &is.ID, fmt.Sprintf("%d voucher(s) of template %d", len(issue), t.ID)); err != nil {
			return err
		}
	}
	is.Results = results
	if err := tx.DB.Exec(`UPDATE voucher_issuances SET results = ?, status = ? WHERE id = ?`, results, is.Status, is.ID).Error; err != nil {
		return fmt.Errorf("record issue results: %w", err)
	}
	return tx.Audit("voucher.issued", a.ID, nil, map[string]any{"issuance": is.ID, "template": t.ID,
		"customers": len(is.CustomerIDs), "issued": len(issue), "faceValue": models.FormatDecimal(t.FaceValue)})
}

// lockIssuance loads a pending issuance of a second-level reseller for its
// distributor's decision: NOT_FOUND outside the caller's scope, FORBIDDEN
// for anyone but the distributor's ADMIN or FINANCE and the platform,
// PRECONDITION_FAILED once decided.
func lockIssuance(tx *store.Tx, sc accounts.Scope, id int64) (*Issuance, *models.Account, error) {
	q, args := sc.SQL("a.path")
	var is Issuance
	if err := tx.DB.Raw(`SELECT i.* FROM voucher_issuances i JOIN accounts a ON a.id = i.partner_id WHERE i.id = ? AND `+q+` FOR UPDATE OF i`,
		append([]any{id}, args...)...).Scan(&is).Error; err != nil {
		return nil, nil, fmt.Errorf("load voucher issuance: %w", err)
	}
	if is.ID == 0 {
		return nil, nil, apperr.NotFoundf("voucher issuance not found")
	}
	if err := sc.Require(accounts.PermFinance); err != nil {
		return nil, nil, err
	}
	var a models.Account
	if err := tx.DB.Take(&a, is.PartnerID).Error; err != nil {
		return nil, nil, fmt.Errorf("load issuance's partner: %w", err)
	}
	if p := sc.Principal(); !p.IsPlatform() && (a.ParentID == nil || p.AccountID != *a.ParentID) {
		return nil, nil, apperr.Forbiddenf("only the reseller's distributor (or the platform) decides its voucher issue")
	}
	if is.Status != IssuancePending {
		return nil, nil, apperr.Preconditionf("the issue was already decided: %s", is.Status)
	}
	return &is, &a, nil
}

// Approve carries out a second-level reseller's pending issue, as its
// distributor (or the platform); the per-customer results are decided now.
func (s *Service) Approve(ctx context.Context, issuanceID int64) (*Issuance, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *Issuance
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		is, a, err := lockIssuance(tx, sc, issuanceID)
		if err != nil {
			return err
		}
		t, _, err := lockTemplate(tx, sc, is.TemplateID)
		if err != nil {
			return err
		}
		if err := issuable(tx, t, a); err != nil {
			return err
		}
		p, err := lockPool(tx, a.ID)
		if err != nil {
			return err
		}
		now, by := tx.Now(), store.ActorFrom(tx.Context()).Label
		is.Status, is.DecidedAt, is.DecidedBy = IssuanceCompleted, &now, &by
		if err := tx.DB.Exec(`UPDATE voucher_issuances SET decided_at = ?, decided_by = ? WHERE id = ?`, now, by, is.ID).Error; err != nil {
			return fmt.Errorf("approve voucher issuance: %w", err)
		}
		if err := s.carryOut(tx, t, a, p, is); err != nil {
			return err
		}
		out = is
		return tx.Emit(notify.VoucherIssuanceDecided{IssuanceID: is.ID, ResellerID: a.ID, DistributorID: *a.ParentID,
			Template: t.Name, Approved: true, Issued: is.Results.Issued()})
	})
	return out, err
}

// Reject refuses a second-level reseller's pending issue with a reason, as
// its distributor (or the platform).
func (s *Service) Reject(ctx context.Context, issuanceID int64, reason string) (*Issuance, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	var out *Issuance
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		is, a, err := lockIssuance(tx, sc, issuanceID)
		if err != nil {
			return err
		}
		if reason == "" || utf8.RuneCountInString(reason) > maxReasonLen {
			return apperr.Invalid("reason", "a rejection needs a reason of 1 to %d characters", maxReasonLen)
		}
		now, by := tx.Now(), store.ActorFrom(tx.Context()).Label
		if err := tx.DB.Exec(`UPDATE voucher_issuances SET status = 'REJECTED', decided_at = ?, decided_by = ?, reason = ? WHERE id = ?`,
			now, by, reason, is.ID).Error; err != nil {
			return fmt.Errorf("reject voucher issuance: %w", err)
		}
		is.Status, is.DecidedAt, is.DecidedBy, is.Reason = IssuanceRejected, &now, &by, &reason
		var name string
		if err := tx.DB.Raw(`SELECT name FROM voucher_templates WHERE id = ?`, is.TemplateID).Scan(&name).Error; err != nil {
			return fmt.Errorf("load template name: %w", err)
		}
		if err := tx.Audit("voucher.issue_rejected", a.ID, map[string]any{"status": IssuancePending},
			map[string]any{"issuance": is.ID, "status": IssuanceRejected, "reason": reason}); err != nil {
			return err
		}
		out = is
		return tx.Emit(notify.VoucherIssuanceDecided{IssuanceID: is.ID, ResellerID: a.ID, DistributorID: *a.ParentID,
			Template: name, Approved: false, Reason: reason})
	})
	return out, err
}

// Cancel cancels a live voucher and gives its unused amount back to the
// issuer's pool. The issuer's ADMIN or FINANCE (or an ancestor's, or the
// platform's) may; the customer sees it but may not (FORBIDDEN); a voucher
// no longer live is PRECONDITION_FAILED.
func (s *Service) Cancel(ctx context.Context, voucherID int64, reason string) (*Voucher, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	reason = strings.TrimSpace(reason)
	var out *Voucher
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		q, args := visibleSQL(sc)
		var row struct {
			Voucher
			IssuerPath string
		}
		if err := tx.DB.Raw(`SELECT b.*, i.path AS issuer_path FROM `+fromVouchers+` WHERE b.id = ? AND `+q+` FOR UPDATE OF b`,
			append([]any{voucherID}, args...)...).Scan(&row).Error; err != nil {
			return fmt.Errorf("load voucher: %w", err)
		}
		if row.ID == 0 {
			return apperr.NotFoundf("voucher not found")
		}
		if !sc.Contains(row.IssuerPath) {
			return apperr.Forbiddenf("only the issuing partner cancels a voucher")
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if reason == "" || utf8.RuneCountInString(reason) > maxReasonLen {
			return apperr.Invalid("reason", "a cancellation needs a reason of 1 to %d characters", maxReasonLen)
		}
		v := &row.Voucher
		if !v.Status.Live() {
			return apperr.Preconditionf("the voucher is %s", v.Status)
		}
		if err := closeVouchers(tx, []*Voucher{v}, StatusCancelled, reason); err != nil {
			return err
		}
		out = v
		return nil
	})
	return out, err
}

// CancelForCustomer cancels, inside tx, every live voucher of a customer
// that leaves its partner (a migration, an unbinding) and gives their
// unused amounts back to their issuers' pools (the package's policy).
func CancelForCustomer(tx *store.Tx, customerID int64, reason string) error {
	var live []*Voucher
	if err := tx.DB.Raw(`SELECT * FROM vouchers WHERE customer_id = ? AND status IN ('ISSUED','PARTIALLY_USED') ORDER BY id FOR UPDATE`,
		customerID).Scan(&live).Error; err != nil {
		return fmt.Errorf("load customer's vouchers: %w", err)
	}
	if len(live) == 0 {
		return nil
	}
	return closeVouchers(tx, live, StatusCancelled, reason)
}

// closeVouchers closes the given live vouchers (locked) as cancelled or
// expired, gives what each had left back to its issuer's pool (issuers in
// id order) and audits each.
func closeVouchers(tx *store.Tx, list []*Voucher, status Status, reason string) error {
	now := tx.Now()
	byIssuer := map[int64][]*Voucher{}
	for _, v := range list {
		byIssuer[v.IssuerID] = append(byIssuer[v.IssuerID], v)
	}
	issuers := make([]int64, 0, len(byIssuer))
	for id := range byIssuer {
		issuers = append(issuers, id)
	}
	sort.Slice(issuers, func(i, j int) bool { return issuers[i] < issuers[j] })
	for _, issuer := range issuers {
		p, err := lockPool(tx, issuer)
		if err != nil {
			return err
		}
		for _, v := range byIssuer[issuer] {
			back := v.Remaining
			before := map[string]any{"status": v.Status, "remaining": models.FormatDecimal(v.Remaining)}
			if err := tx.DB.Exec(`UPDATE vouchers SET status = ?, remaining = 0, returned = ?, closed_at = ?, close_reason = ? WHERE id = ?`,
				status, back, now, reason, v.ID).Error; err != nil {
				return fmt.Errorf("close voucher: %w", err)
			}
			v.Status, v.Remaining, v.Returned, v.ClosedAt, v.CloseReason = status, decimal.Zero, back, &now, &reason
			if back.IsPositive() {
				p.Issued = p.Issued.Sub(back)
				if err := ledger(tx, p, "RETURN", back, nil, &v.ID, nil, strings.ToLower(string(status))+": "+reason); err != nil {
					return err
				}
			}
			action := "voucher.cancelled"
			if status == StatusExpired {
				action = "voucher.expired"
			}
			if err := tx.Audit(action, v.CustomerID, before, map[string]any{"voucher": v.ID, "status": status,
				"returned": models.FormatDecimal(back), "reason": reason}); err != nil {
				return err
			}
		}
		var exp struct{ ExpiresAt *time.Time }
		if err := tx.DB.Raw(`SELECT coalesce(pp.expires_at, p.expires_at) AS expires_at FROM voucher_pools p
			JOIN accounts a ON a.id = p.partner_id LEFT JOIN voucher_pools pp ON pp.partner_id = a.parent_id AND a.depth = 2
			WHERE p.partner_id = ?`, issuer).Scan(&exp).Error; err != nil {
			return fmt.Errorf("load voucher pool expiry: %w", err)
		}
		if err := savePool(tx, p, exp.ExpiresAt); err != nil {
			return err
		}
	}
	return nil
}
