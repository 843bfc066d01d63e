package credit

import (
	"fmt"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/guard"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// UpdateArrears re-evaluates, inside tx, whether each given customer is in
// arrears this month (available credit = allocated credit − this month's
// actual consumption < 0, DOMAIN.md §3) and emits ArrearsChanged for each
// one whose state flipped. It locks the customers' credit rows in id order,
// so concurrent callers never deadlock. Non-customers are ignored. Then it
// brings the customers' purchase guard rows up to date (guard.Sync): every
// change of a customer's credit or spend comes through here.
func UpdateArrears(tx *store.Tx, customerIDs []int64, loc *time.Location) error {
	if len(customerIDs) == 0 {
		return nil
	}
	ids := append([]int64(nil), customerIDs...)
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	month := models.MonthOf(tx.Now(), loc)
	var rows []struct {
		AccountID    int64
		CreditLimit  decimal.Decimal
		InArrears    bool
		ArrearsMonth int
		Actual       decimal.Decimal
	}
	// Lock first, then read in a statement of its own: after waiting for a
	// lock, a locking SELECT re-checks the locked row but not the rows it
	// joined, so an account unbound meanwhile would still read as a CUSTOMER
	// and be flagged in arrears for good (found by the invariants test). A
	// new statement reads what was committed while it waited.
	if err := tx.DB.Exec(`SELECT 1 FROM credit_balances WHERE account_id = ANY(?::bigint[]) ORDER BY account_id FOR UPDATE`,
		store.Int64Array(ids)).Error; err != nil {
		return fmt.Errorf("arrears: lock balances: %w", err)
	}
	err := tx.DB.Raw(`SELECT b.account_id, b.credit_limit, b.in_arrears, b.arrears_month, coalesce(t.actual_total - t.voucher_total, 0) AS actual
		FROM credit_balances b
		JOIN accounts a ON a.id = b.account_id AND a.kind = 'CUSTOMER'
		LEFT JOIN spend_totals t ON t.customer_id = b.account_id AND t.month = ?
		WHERE b.account_id = ANY(?::bigint[])
		ORDER BY b.account_id`, month.Key(), store.Int64Array(ids)).Scan(&rows).Error
	if err != nil {
		return fmt.Errorf("arrears: %w", err)
	}
	for _, r := range rows {
		available := r.CreditLimit.Sub(r.Actual)
		now := available.IsNegative()
		// A flag left from an earlier month does not count: that month's
		// arrears ended with it.
		was := r.InArrears && r.ArrearsMonth == month.Key()
		if now == was && (r.InArrears == was) {
			continue
		}
		if err := tx.DB.Exec(`UPDATE credit_balances SET in_arrears = ?, arrears_month = ?, updated_at = ? WHERE account_id = ?`,
			now, month.Key(), tx.Now(), r.AccountID).Error; err != nil {
			return fmt.Errorf("arrears: %w", err)
		}
		if now == was {
			continue // only the stale flag was cleared
		}
		if err := tx.Emit(notify.ArrearsChanged{CustomerID: r.AccountID, Entered: now, Available: models.FormatDecimal(available), Month: month.String()}); err != nil {
			return err
		}
	}
	return guard.Sync(tx, loc, ids...)
}
