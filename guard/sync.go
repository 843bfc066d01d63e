package guard

import (
	"fmt"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/store"
)

// Sync rewrites, inside tx, the purchase guard rows of the given accounts
// from their inputs: the account's status, its credit row (limit and arrears
// exemptions), its running totals of the current Beijing month and its
// budget with the spend counted against it. Every transaction that changes
// one of those inputs calls it before committing, so a purchase decision,
// which reads only this row, is never stale (issue 6 point 6).
//
// It first locks the rows in id order and only then reads the inputs, in a
// statement of its own: under READ COMMITTED that statement sees every
// transaction that synced the same rows before, so two concurrent changes
// (a credit allocation and an ingestion, say) cannot leave the row with the
// older of the two values. Callers lock what they change before calling
// Sync, so the lock order is always "inputs, then guard rows". Accounts that
// are not CUSTOMER or PERSONAL have no row and are ignored.
//
// A ONE_TIME budget's spend is every list amount with a usage time at or
// after the budget was set: the records of its first month from then on,
// plus the running totals of the months after it.
func Sync(tx *store.Tx, loc *time.Location, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	arr := store.Int64Array(ids)
	if err := tx.DB.Exec(`SELECT 1 FROM purchase_guards WHERE customer_id = ANY(?::bigint[]) ORDER BY customer_id FOR UPDATE`, arr).Error; err != nil {
		return fmt.Errorf("lock purchase guards: %w", err)
	}
	now := tx.Now()
	month := models.MonthOf(now, loc).Key()
	err := tx.DB.Exec(`UPDATE purchase_guards g SET
			kind = a.kind, status = a.status, frozen_reason = a.frozen_reason, purchase_banned = a.purchase_banned,
			credit_limit = coalesce(b.credit_limit, 0),
			exempt_postpaid = coalesce(b.exempt_postpaid, false),
			exempt_prepaid = coalesce(b.exempt_prepaid, false),
			month = ?, month_list = coalesce(t.list_total, 0), month_actual = coalesce(t.actual_total - t.voucher_total, 0),
			budget_id = bu.id, budget_type = bu.type, budget_amount = bu.amount,
			one_time_spent = CASE WHEN bu.type = 'ONE_TIME' THEN
				(SELECT coalesce(sum(e.list_amount), 0) FROM expenditures e
					WHERE e.customer_id = a.id AND e.month = bu.start_month AND e.usage_at >= bu.started_at)
				+ (SELECT coalesce(sum(s.list_total), 0) FROM spend_totals s
					WHERE s.customer_id = a.id AND s.month > bu.start_month)
				ELSE 0 END,
			updated_at = ?
		FROM accounts a
		LEFT JOIN credit_balances b ON b.account_id = a.id
		LEFT JOIN spend_totals t ON t.customer_id = a.id AND t.month = ?
		LEFT JOIN budgets bu ON bu.customer_id = a.id
		WHERE g.customer_id = a.id AND a.id = ANY(?::bigint[])`, month, now, month, arr).Error
	if err != nil {
		return fmt.Errorf("sync purchase guards: %w", err)
	}
	return nil
}

// row is one purchase guard row: every input of a purchase decision.
type row struct {
	CustomerID     int64
	Kind           models.AccountKind
	Status         models.AccountStatus
	FrozenReason   *models.FrozenReason
	CreditLimit    decimal.Decimal
	ExemptPostpaid bool
	ExemptPrepaid  bool
	Month          int
	MonthList      decimal.Decimal
	MonthActual    decimal.Decimal
	BudgetID       *int64
	BudgetType     *models.BudgetType
	BudgetAmount   *decimal.Decimal
	OneTimeSpent   decimal.Decimal
	PurchaseBanned bool
}

// month returns the list and actual totals of month cur (a later month than
// the row's starts at zero).
func (r *row) month(cur int) (list, actual decimal.Decimal) {
	if r.Month == cur {
		return r.MonthList, r.MonthActual
	}
	return decimal.Zero, decimal.Zero
}

// available is the customer's available credit in month cur: its allocated
// credit minus the month's actual consumption (DOMAIN.md §3).
func (r *row) available(cur int) decimal.Decimal {
	_, actual := r.month(cur)
	return r.CreditLimit.Sub(actual)
}

// hasBudget reports whether the customer has a budget.
func (r *row) hasBudget() bool {
	return r.BudgetID != nil && r.BudgetAmount != nil && r.BudgetType != nil
}

// spent is the list-price spend counted against the budget in month cur:
// the month's list total for a MONTHLY budget, everything since it was set
// for a ONE_TIME one.
func (r *row) spent(cur int) decimal.Decimal {
	if r.BudgetType != nil && *r.BudgetType == models.BudgetOneTime {
		return r.OneTimeSpent
	}
	list, _ := r.month(cur)
	return list
}

// exempt reports whether an arrears exemption covers billing mode m:
// postpaid covers PAY_PER_USE, prepaid the others.
func (r *row) exempt(m models.BillingMode) bool {
	if m == models.PayPerUse {
		return r.ExemptPostpaid
	}
	return r.ExemptPrepaid
}

// loadRow reads the guard row of id (nil when there is none).
func loadRow(tx *store.Tx, id int64) (*row, error) {
	var r row
	if err := store.Select(tx.DB, &r, `SELECT * FROM purchase_guards WHERE customer_id = ?`, id); err != nil {
		return nil, fmt.Errorf("load purchase guard %d: %w", id, err)
	}
	if r.CustomerID == 0 {
		return nil, nil
	}
	return &r, nil
}
