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

// AllocateIn allocates amount of credit, inside tx, from partner id's
// allocatable credit to its child (already under it) — the system's own
// allocation of a change checked before, such as a migration's. More than
// the partner can allocate is PRECONDITION_FAILED. It writes an ALLOCATE
// ledger row with reason and updates the child's arrears; the caller audits
// and notifies. Locks: the partner's credit row, then the child's.
func AllocateIn(tx *store.Tx, partnerID, childID int64, amount decimal.Decimal, reason string, loc *time.Location) error {
	if !amount.IsPositive() {
		return nil
	}
	parent, err := lockBalance(tx, partnerID)
	if err != nil {
		return err
	}
	cb, err := lockBalance(tx, childID)
	if err != nil {
		return err
	}
	if amount.GreaterThan(parent.Allocatable()) {
		return apperr.Preconditionf("the receiving partner can allocate %s of credit, %s is asked",
			models.FormatDecimal(parent.Allocatable()), models.FormatDecimal(amount))
	}
	parent.Allocated = parent.Allocated.Add(amount)
	cb.CreditLimit = cb.CreditLimit.Add(amount)
	now := tx.Now()
	if err := tx.DB.Exec(`UPDATE credit_balances SET allocated = ?, updated_at = ? WHERE account_id = ?`, parent.Allocated, now, partnerID).Error; err != nil {
		return fmt.Errorf("allocate from %d: %w", partnerID, err)
	}
	if err := tx.DB.Exec(`UPDATE credit_balances SET credit_limit = ?, updated_at = ? WHERE account_id = ?`, cb.CreditLimit, now, childID).Error; err != nil {
		return fmt.Errorf("allocate to %d: %w", childID, err)
	}
	if err := appendLedger(tx, models.LedgerAllocate, &partnerID, parent, childID, cb, amount, reason); err != nil {
		return err
	}
	return UpdateArrears(tx, []int64{childID}, loc)
}
