package credit

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

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
