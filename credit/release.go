package credit

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/store"
)

// ReleaseAllocation returns, inside tx, all of customer id's allocated
// credit to its partner's allocatable credit — the customer is leaving the
// partner (an unbinding, a migration) — with a RELEASE ledger row, and
// clears its arrears flag and exemptions (they were the partner's grant).
// The customer's parent must still be the partner. It locks the partner's
// credit row, then the customer's.
func ReleaseAllocation(tx *store.Tx, id int64, reason string, loc *time.Location) error {
	var parentID *int64
	if err := tx.DB.Raw(`SELECT parent_id FROM accounts WHERE id = ?`, id).Scan(&parentID).Error; err != nil {
		return fmt.Errorf("release credit of %d: %w", id, err)
	}
	if parentID == nil {
		return fmt.Errorf("release credit of %d: it has no partner", id)
	}
	parent, err := lockBalance(tx, *parentID)
	if err != nil {
		return err
	}
	cb, err := lockBalance(tx, id)
	if err != nil {
		return err
	}
	delta := cb.CreditLimit.Neg()
	parent.Allocated = parent.Allocated.Add(delta)
	cb.CreditLimit = decimal.Zero
	now := tx.Now()
	if err := tx.DB.Exec(`UPDATE credit_balances SET allocated = ?, updated_at = ? WHERE account_id = ?`, parent.Allocated, now, parent.AccountID).Error; err != nil {
		return fmt.Errorf("release credit to %d: %w", parent.AccountID, err)
	}
	if err := tx.DB.Exec(`UPDATE credit_balances SET credit_limit = 0, in_arrears = false, exempt_postpaid = false, exempt_prepaid = false,
		updated_at = ? WHERE account_id = ?`, now, id).Error; err != nil {
		return fmt.Errorf("release credit of %d: %w", id, err)
	}
	if err := appendLedger(tx, models.LedgerRelease, parentID, parent, id, cb, delta, reason); err != nil {
		return err
	}
	return guard.Sync(tx, loc, id)
}

// Transfer moves customer id's credit from partner from to partner to
// inside tx — a migration: all of its allocation returns to from's
// allocatable credit (a RELEASE ledger row; its arrears flag and exemptions,
// from's grants, go), move re-parents it under to, then to allocates amount
// to it (an ALLOCATE ledger row) and its arrears and purchase guard row are
// brought up to date. More than to can allocate is PRECONDITION_FAILED,
// before anything changed. The three credit rows are locked in one
// statement, in id order. The caller audits and notifies.
func Transfer(tx *store.Tx, id, from, to int64, amount decimal.Decimal, reason string, loc *time.Location, move func() error) error {
	var rows []models.CreditBalance
	if err := tx.DB.Raw(`SELECT * FROM credit_balances WHERE account_id IN (?, ?, ?) ORDER BY account_id FOR UPDATE`, id, from, to).
		Scan(&rows).Error; err != nil {
		return fmt.Errorf("lock credit of %d, %d and %d: %w", id, from, to, err)
	}
	bal := make(map[int64]*models.CreditBalance, 3)
	for i := range rows {
		bal[rows[i].AccountID] = &rows[i]
	}
	src, dst, cb := bal[from], bal[to], bal[id]
	if src == nil || dst == nil || cb == nil {
		return fmt.Errorf("transfer credit of %d: a credit row is missing", id)
	}
	if amount.GreaterThan(dst.Allocatable()) {
		return apperr.Preconditionf("the receiving partner can allocate %s of credit, %s is asked",
			models.FormatDecimal(dst.Allocatable()), models.FormatDecimal(amount))
	}
	released := cb.CreditLimit
	src.Allocated = src.Allocated.Sub(released)
	cb.CreditLimit = decimal.Zero
	if err := appendLedger(tx, models.LedgerRelease, &from, src, id, cb, released.Neg(), reason); err != nil {
		return err
	}
	if err := move(); err != nil {
		return err
	}
	dst.Allocated = dst.Allocated.Add(amount)
	cb.CreditLimit = amount
	if amount.IsPositive() {
		if err := appendLedger(tx, models.LedgerAllocate, &to, dst, id, cb, amount, reason); err != nil {
			return err
		}
	}
	now := tx.Now()
	if err := tx.DB.Exec(`UPDATE credit_balances b SET allocated = v.allocated, credit_limit = v.credit_limit, updated_at = ?,
			in_arrears = CASE WHEN b.account_id = ? THEN false ELSE b.in_arrears END,
			exempt_postpaid = CASE WHEN b.account_id = ? THEN false ELSE b.exempt_postpaid END,
			exempt_prepaid = CASE WHEN b.account_id = ? THEN false ELSE b.exempt_prepaid END
		FROM (VALUES (?::bigint, ?::numeric, ?::numeric), (?, ?, ?), (?, ?, ?)) AS v(account_id, allocated, credit_limit)
		WHERE b.account_id = v.account_id`, now, id, id, id,
		src.AccountID, src.Allocated, src.CreditLimit, dst.AccountID, dst.Allocated, dst.CreditLimit, id, cb.Allocated, cb.CreditLimit).Error; err != nil {
		return fmt.Errorf("transfer credit of %d: %w", id, err)
	}
	return UpdateArrears(tx, []int64{id}, loc)
}
