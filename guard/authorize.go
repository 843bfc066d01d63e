package guard

import (
	"context"
	"fmt"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// The reasons of a denied purchase.
const (
	ReasonAccountFrozen      = "ACCOUNT_FROZEN"
	ReasonArrearsSuspended   = "ARREARS_SUSPENDED"
	ReasonBudgetExceeded     = "BUDGET_EXCEEDED"
	ReasonInsufficientCredit = "INSUFFICIENT_CREDIT"
	ReasonPurchaseBanned     = "PURCHASE_BANNED"
)

// Decision is the answer to a purchase authorization: Allowed, or not with a
// Reason.
type Decision struct {
	Allowed bool
	Reason  string
}

func deny(reason string) Decision { return Decision{Reason: reason} }

// decide is the purchase rule of DOMAIN.md §4 on one guard row, in month
// cur, checked in this order:
//  1. a frozen account buys nothing (ACCOUNT_FROZEN) — unless it is frozen
//     for arrears, which step 2 judges live;
//  2. in arrears (available credit below 0), a billing mode that no
//     exemption covers is refused (ARREARS_SUSPENDED);
//  3. prepaid modes (SUBSCRIPTION, RESERVED_INSTANCE) only: refused when the
//     partner banned new purchases (PURCHASE_BANNED),
//  4. when the budget is exceeded or this purchase would exceed it
//     (BUDGET_EXCEEDED),
//  5. or when the list amount is above the available credit
//     (INSUFFICIENT_CREDIT).
//
// PAY_PER_USE stays allowed over budget and above credit. A PERSONAL account
// pays for itself: only its status counts.
func decide(r *row, mode models.BillingMode, amount decimal.Decimal, cur int) Decision {
	if r.Status != models.StatusActive && (r.FrozenReason == nil || *r.FrozenReason != models.FrozenArrears) {
		return deny(ReasonAccountFrozen)
	}
	if r.Kind != models.KindCustomer {
		return Decision{Allowed: true}
	}
	available := r.available(cur)
	if available.IsNegative() && !r.exempt(mode) {
		return deny(ReasonArrearsSuspended)
	}
	if mode == models.PayPerUse {
		return Decision{Allowed: true}
	}
	if r.PurchaseBanned {
		return deny(ReasonPurchaseBanned)
	}
	if r.hasBudget() {
		spent := r.spent(cur)
		if spent.GreaterThanOrEqual(*r.BudgetAmount) || spent.Add(amount).GreaterThan(*r.BudgetAmount) {
			return deny(ReasonBudgetExceeded)
		}
	}
	if amount.GreaterThan(available) {
		return deny(ReasonInsufficientCredit)
	}
	return Decision{Allowed: true}
}

// Authorize answers whether customer may buy listAmount (list price) in
// billing mode, for the cloud console before every purchase. Any user whose
// scope holds the account may ask (the platform's console integration, the
// partner, the customer itself); an account outside the caller's scope is
// NOT_FOUND. It reads one row — the account's purchase guard, kept current by
// the transactions that change its inputs (Sync) — joined with the account's
// path for the scope check: one indexed query. Each decision is counted in
// partnerd_purchase_authorizations_total, each denial by reason in
// partnerd_purchase_denials_total.
func (s *Service) Authorize(ctx context.Context, customerID int64, mode models.BillingMode, listAmount decimal.Decimal) (Decision, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return Decision{}, err
	}
	if !mode.IsValid() {
		return Decision{}, apperr.Invalid("billingMode", "unknown billing mode %q", mode)
	}
	if listAmount.IsNegative() {
		return Decision{}, apperr.Invalid("listAmount", "must not be negative")
	}
	if err := sc.Require(accounts.PermRead); err != nil {
		return Decision{}, err
	}
	q, args := sc.SQL("a.path")
	var r row
	err = store.Select(s.st.DB.WithContext(ctx), &r, `SELECT g.* FROM purchase_guards g JOIN accounts a ON a.id = g.customer_id
		WHERE g.customer_id = ? AND `+q, append([]any{customerID}, args...)...)
	if err != nil {
		return Decision{}, fmt.Errorf("authorize purchase: %w", err)
	}
	if r.CustomerID == 0 {
		// Tell an account in scope that cannot buy from one that is not
		// there: only the first is worth a second query.
		if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, customerID); err != nil {
			return Decision{}, err
		}
		return Decision{}, apperr.Invalid("customerId", "only CUSTOMER and PERSONAL accounts buy cloud products")
	}
	d := decide(&r, mode, listAmount, models.MonthOf(s.st.Now(), s.loc).Key())
	if d.Allowed {
		s.decisions.WithLabelValues("ALLOWED").Inc()
	} else {
		s.decisions.WithLabelValues("DENIED").Inc()
		s.denials.WithLabelValues(d.Reason).Inc()
	}
	return d, nil
}
