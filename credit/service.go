// Package credit moves credit down the reseller tree (DOMAIN.md §3): the
// platform sets tier-1 partners' limits, partners allocate to and reverse from
// their children, every change is an append-only ledger row with the balances
// it left, and a customer's available credit is its allocation minus this
// month's actual consumption (below zero: arrears).
package credit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// Service offers the credit operations.
type Service struct {
	st  *store.Store
	loc *time.Location
}

// New returns the credit service; loc is the billing time zone.
func New(st *store.Store, loc *time.Location) *Service { return &Service{st: st, loc: loc} }

// View is an account's credit as the API shows it.
type View struct {
	// Limit: partners' credit limit; customers' allocated credit.
	Limit decimal.Decimal
	// Allocated: what a partner allocated to its children (0 for customers).
	Allocated decimal.Decimal
	// Allocatable: Limit − Allocated.
	Allocatable decimal.Decimal
	// Available: customers: Limit − this month's actual consumption (negative
	// is arrears); partners: the same as Allocatable.
	Available      decimal.Decimal
	Consumed       decimal.Decimal
	ExemptPostpaid bool
	ExemptPrepaid  bool
}

// InArrears reports whether available credit is below zero.
func (v View) InArrears() bool { return v.Available.IsNegative() }

// Arrears is the amount owed beyond the allocation (0 when not in arrears).
func (v View) Arrears() decimal.Decimal {
	if v.Available.IsNegative() {
		return v.Available.Neg()
	}
	return decimal.Zero
}

// Views returns the credit of the given accounts (in the caller's scope) in
// one query; accounts without a credit row (the platform) get zeros.
func (s *Service) Views(ctx context.Context, ids []int64) (map[int64]View, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	month := models.MonthOf(s.st.Now(), s.loc)
	var rows []struct {
		AccountID      int64
		Kind           models.AccountKind
		CreditLimit    decimal.Decimal
		Allocated      decimal.Decimal
		ExemptPostpaid bool
		ExemptPrepaid  bool
		Actual         decimal.Decimal
	}
	err = s.st.DB.WithContext(ctx).Raw(`SELECT b.account_id, a.kind, b.credit_limit, b.allocated, b.exempt_postpaid, b.exempt_prepaid,
			coalesce(t.actual_total - t.voucher_total, 0) AS actual
		FROM credit_balances b JOIN accounts a ON a.id = b.account_id
		LEFT JOIN spend_totals t ON t.customer_id = b.account_id AND t.month = ?
		WHERE b.account_id = ANY(?::bigint[]) AND `+q, append([]any{month.Key(), store.Int64Array(ids)}, args...)...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load credit: %w", err)
	}
	out := make(map[int64]View, len(ids))
	for _, r := range rows {
		v := View{Limit: r.CreditLimit, Allocated: r.Allocated, Allocatable: r.CreditLimit.Sub(r.Allocated),
			ExemptPostpaid: r.ExemptPostpaid, ExemptPrepaid: r.ExemptPrepaid}
		if r.Kind == models.KindCustomer {
			v.Consumed = r.Actual
			v.Available = r.CreditLimit.Sub(r.Actual)
		} else {
			v.Available = v.Allocatable
		}
		out[r.AccountID] = v
	}
	return out, nil
}

// View returns one account's credit (NOT_FOUND outside scope).
func (s *Service) View(ctx context.Context, id int64) (View, error) {
	m, err := s.Views(ctx, []int64{id})
	if err != nil {
		return View{}, err
	}
	v, ok := m[id]
	if !ok {
		// Absent from Views: outside the scope (or nonexistent), or without
		// a credit row (the platform, which gets zeros).
		sc, err := accounts.ScopeOf(ctx)
		if err != nil {
			return View{}, err
		}
		if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, id); err != nil {
			return View{}, err
		}
	}
	return v, nil
}

// SetLimit sets a tier-1 partner's credit limit. Only the platform (ADMIN or
// FINANCE) may; the limit is never below what the partner has already
// allocated (PRECONDITION_FAILED). A second-level reseller's limit is what
// its distributor allocates, so it is refused here (VALIDATION).
func (s *Service) SetLimit(ctx context.Context, accountID int64, amount decimal.Decimal) (*models.Account, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var acct *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := accounts.GetInScope(tx.DB, sc, accountID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if !sc.Principal().IsPlatform() {
			return apperr.Forbiddenf("only the platform sets credit limits; partners allocate credit to their children")
		}
		if !a.Kind.IsPartner() || a.Depth != 1 {
			return apperr.Invalid("accountId", "credit limits are set for tier-1 partners; a second-level reseller's or a customer's credit is what its partner allocates")
		}
		if amount.IsNegative() {
			return apperr.Invalid("amount", "a credit limit cannot be negative")
		}
		b, err := lockBalance(tx, a.ID)
		if err != nil {
			return err
		}
		if amount.LessThan(b.Allocated) {
			return apperr.Preconditionf("the limit cannot be below the %s already allocated to children", models.FormatDecimal(b.Allocated))
		}
		prev := b.CreditLimit
		if err := tx.DB.Exec(`UPDATE credit_balances SET credit_limit = ?, updated_at = ? WHERE account_id = ?`, amount, tx.Now(), a.ID).Error; err != nil {
			return fmt.Errorf("set limit: %w", err)
		}
		b.CreditLimit = amount
		if err := appendLedger(tx, models.LedgerLimit, a.ParentID, nil, a.ID, b, amount.Sub(prev), "credit limit set by the platform"); err != nil {
			return err
		}
		if err := tx.Audit("credit.set_limit", a.ID, map[string]any{"limit": models.FormatDecimal(prev)}, map[string]any{"limit": models.FormatDecimal(amount)}); err != nil {
			return err
		}
		acct = a
		return tx.Emit(notify.CreditLimitSet{PartnerID: a.ID, Limit: models.FormatDecimal(amount), Previous: models.FormatDecimal(prev)})
	})
	return acct, err
}

// Allocate moves credit from a partner to one of its children (a
// second-level reseller or a customer). It refuses more than the partner's
// allocatable credit (PRECONDITION_FAILED). The child's parent or the
// platform may allocate; locks are taken ancestor first.
func (s *Service) Allocate(ctx context.Context, childID int64, amount decimal.Decimal) (*models.Account, error) {
	return s.move(ctx, childID, amount, models.LedgerAllocate)
}

// Reverse reduces a child's allocation and returns it to the partner's
// allocatable credit, never below what the child has consumed this month or
// allocated onward (PRECONDITION_FAILED).
func (s *Service) Reverse(ctx context.Context, childID int64, amount decimal.Decimal) (*models.Account, error) {
	return s.move(ctx, childID, amount, models.LedgerReverse)
}

func (s *Service) move(ctx context.Context, childID int64, amount decimal.Decimal, kind models.LedgerKind) (*models.Account, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var child *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		// Held, not just read: an unbinding or a migration moving the child
		// away must not commit between this check of its partner and the
		// ledger row (found by the invariants test).
		c, err := accounts.HoldInScope(tx, sc, childID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if c.ParentID == nil || c.Depth < 2 {
			return apperr.Invalid("childId", "credit is allocated by a partner to its children; a tier-1 partner's credit is its limit (setCreditLimit)")
		}
		if c.Kind != models.KindCustomer && c.Kind != models.KindReseller {
			return apperr.Invalid("childId", "credit is allocated to second-level resellers and customers, not to a %s", c.Kind)
		}
		if p := sc.Principal(); !p.IsPlatform() && p.AccountID != *c.ParentID {
			return apperr.Forbiddenf("only the account's own partner allocates or reverses its credit")
		}
		if !amount.IsPositive() {
			return apperr.Invalid("amount", "the amount must be greater than 0")
		}
		parent, err := lockBalance(tx, *c.ParentID)
		if err != nil {
			return err
		}
		cb, err := lockBalance(tx, c.ID)
		if err != nil {
			return err
		}
		delta := amount
		if kind == models.LedgerAllocate {
			if amount.GreaterThan(parent.Allocatable()) {
				return apperr.Preconditionf("insufficient allocatable credit: %s can be allocated, %s was asked",
					models.FormatDecimal(parent.Allocatable()), models.FormatDecimal(amount))
			}
		} else {
			floor := cb.Allocated
			if c.Kind == models.KindCustomer {
				consumed, err := consumedThisMonth(tx, c.ID, models.MonthOf(tx.Now(), s.loc))
				if err != nil {
					return err
				}
				floor = decimal.Max(floor, consumed)
			}
			if cb.CreditLimit.Sub(amount).LessThan(floor) {
				return apperr.Preconditionf("cannot reverse %s: the allocation cannot go below %s (consumed this month or allocated onward); at most %s can be reversed",
					models.FormatDecimal(amount), models.FormatDecimal(floor), models.FormatDecimal(decimal.Max(decimal.Zero, cb.CreditLimit.Sub(floor))))
			}
			delta = amount.Neg()
		}
		before := map[string]any{"limit": models.FormatDecimal(cb.CreditLimit)}
		parent.Allocated = parent.Allocated.Add(delta)
		cb.CreditLimit = cb.CreditLimit.Add(delta)
		now := tx.Now()
		if err := tx.DB.Exec(`UPDATE credit_balances SET allocated = ?, updated_at = ? WHERE account_id = ?`, parent.Allocated, now, parent.AccountID).Error; err != nil {
			return fmt.Errorf("update partner credit: %w", err)
		}
		if err := tx.DB.Exec(`UPDATE credit_balances SET credit_limit = ?, updated_at = ? WHERE account_id = ?`, cb.CreditLimit, now, cb.AccountID).Error; err != nil {
			return fmt.Errorf("update child credit: %w", err)
		}
		if err := appendLedger(tx, kind, c.ParentID, parent, c.ID, cb, delta, ""); err != nil {
			return err
		}
		action, after := "credit.allocate", map[string]any{"limit": models.FormatDecimal(cb.CreditLimit), "amount": models.FormatDecimal(amount)}
		var ev store.Event = notify.CreditAllocated{PartnerID: *c.ParentID, ChildID: c.ID, Amount: models.FormatDecimal(amount), Limit: models.FormatDecimal(cb.CreditLimit)}
		if kind == models.LedgerReverse {
			action = "credit.reverse"
			ev = notify.CreditReversed{PartnerID: *c.ParentID, ChildID: c.ID, Amount: models.FormatDecimal(amount), Limit: models.FormatDecimal(cb.CreditLimit)}
		}
		if err := tx.Audit(action, c.ID, before, after); err != nil {
			return err
		}
		if err := tx.Emit(ev); err != nil {
			return err
		}
		child = c
		if c.Kind == models.KindCustomer {
			return UpdateArrears(tx, []int64{c.ID}, s.loc)
		}
		return nil
	})
	return child, err
}

// SetExemption sets a customer's arrears exemption privileges: postpaid
// (PAY_PER_USE) and prepaid (SUBSCRIPTION, RESERVED_INSTANCE) resources are
// then not suspended for arrears. Its partner (or the platform) with FINANCE
// or ADMIN decides.
func (s *Service) SetExemption(ctx context.Context, customerID int64, postpaid, prepaid bool) (*models.Account, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var acct *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		c, err := accounts.GetInScope(tx.DB, sc, customerID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if c.Kind != models.KindCustomer {
			return apperr.Invalid("customerId", "arrears exemptions apply to customers, not to a %s", c.Kind)
		}
		if p := sc.Principal(); !p.IsPlatform() && p.AccountID != *c.ParentID {
			return apperr.Forbiddenf("only the customer's own partner grants arrears exemptions")
		}
		b, err := lockBalance(tx, c.ID)
		if err != nil {
			return err
		}
		if err := tx.DB.Exec(`UPDATE credit_balances SET exempt_postpaid = ?, exempt_prepaid = ?, updated_at = ? WHERE account_id = ?`,
			postpaid, prepaid, tx.Now(), c.ID).Error; err != nil {
			return fmt.Errorf("set exemption: %w", err)
		}
		acct = c
		if err := tx.Audit("credit.arrears_exemption", c.ID,
			map[string]any{"postpaid": b.ExemptPostpaid, "prepaid": b.ExemptPrepaid},
			map[string]any{"postpaid": postpaid, "prepaid": prepaid}); err != nil {
			return err
		}
		if err := tx.Emit(ExemptionSet{CustomerID: c.ID, Postpaid: postpaid, Prepaid: prepaid}); err != nil {
			return err
		}
		return guard.Sync(tx, s.loc, c.ID)
	})
	return acct, err
}

// LedgerPage lists the ledger rows that moved credit to or from an account
// in the caller's scope, newest first (keyset on id). The balances of a
// counterparty outside the caller's scope (a partner's parent) are hidden.
func (s *Service) LedgerPage(ctx context.Context, accountID int64, first int, beforeID int64) ([]*models.LedgerEntry, bool, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := accounts.ValidatePage(first); err != nil {
		return nil, false, err
	}
	if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, accountID); err != nil {
		return nil, false, err
	}
	if beforeID <= 0 {
		beforeID = 1<<63 - 1
	}
	var list []*models.LedgerEntry
	err = s.st.DB.WithContext(ctx).Raw(`SELECT * FROM credit_ledger WHERE id < ? AND (to_account_id = ? OR from_account_id = ?)
		ORDER BY id DESC LIMIT ?`, beforeID, accountID, accountID, first+1).Scan(&list).Error
	if err != nil {
		return nil, false, fmt.Errorf("credit ledger: %w", err)
	}
	more := len(list) > first
	if more {
		list = list[:first]
	}
	if !sc.All() {
		visible := map[int64]bool{accountID: true}
		for _, e := range list {
			if e.FromAccountID == nil {
				continue
			}
			id := *e.FromAccountID
			seen, ok := visible[id]
			if !ok {
				_, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, id)
				seen = err == nil
				visible[id] = seen
			}
			if !seen {
				e.FromLimitAfter, e.FromAllocatedAfter = nil, nil
			}
		}
	}
	return list, more, nil
}

func lockBalance(tx *store.Tx, id int64) (*models.CreditBalance, error) {
	var b models.CreditBalance
	err := tx.DB.Raw(`SELECT * FROM credit_balances WHERE account_id = ? FOR UPDATE`, id).Scan(&b).Error
	if err != nil {
		return nil, fmt.Errorf("lock credit of %d: %w", id, err)
	}
	if b.AccountID == 0 {
		return nil, errors.New("credit row missing for account")
	}
	return &b, nil
}

func consumedThisMonth(tx *store.Tx, customerID int64, m models.Month) (decimal.Decimal, error) {
	var v decimal.Decimal
	err := tx.DB.Raw(`SELECT coalesce((SELECT actual_total - voucher_total FROM spend_totals WHERE customer_id = ? AND month = ?), 0)`, customerID, m.Key()).Scan(&v).Error
	if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
		return v, fmt.Errorf("consumption: %w", err)
	}
	return v, nil
}

func appendLedger(tx *store.Tx, kind models.LedgerKind, fromID *int64, from *models.CreditBalance, toID int64, to *models.CreditBalance, amount decimal.Decimal, reason string) error {
	actor := store.ActorFrom(tx.Context())
	e := models.LedgerEntry{At: tx.Now(), Actor: actor.Label, Kind: kind, FromAccountID: fromID, ToAccountID: toID, Amount: amount,
		Reason: reason, ToLimitAfter: to.CreditLimit, ToAllocatedAfter: to.Allocated, RequestID: store.RequestID(tx.Context())}
	if actor.UserID != 0 {
		e.ActorUserID = &actor.UserID
	}
	if from != nil {
		e.FromLimitAfter, e.FromAllocatedAfter = &from.CreditLimit, &from.Allocated
	}
	if err := tx.DB.Create(&e).Error; err != nil {
		return fmt.Errorf("credit ledger: %w", err)
	}
	return nil
}
