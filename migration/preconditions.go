package migration

import (
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/store"
)

// facts are what the preconditions of one customer look at, read for many
// customers in one statement.
type facts struct {
	ID        int64
	Kind      models.AccountKind
	ParentID  *int64
	Status    models.AccountStatus
	Available decimal.Decimal
	Exempt    bool
	InGroup   bool
	InUnit    bool
	Unbinding bool
	// Other is another batch holding the customer in an open item.
	Other *int64
}

// Check applies the preconditions of a migration (DOMAIN.md §6) to the
// customers ids of a batch from source (self: the batch, whose own open
// items do not count; 0 for a batch not yet created). It returns, for each
// customer that fails, the reason a person understands; customers absent
// from the result may migrate. The same function judges an upload, a
// submission and each customer at execution. One statement whatever the
// number of customers.
func Check(tx *store.Tx, loc *time.Location, source, self int64, ids []int64) (map[int64]string, error) {
	out := make(map[int64]string)
	if len(ids) == 0 {
		return out, nil
	}
	var list []facts
	err := tx.DB.Raw(`SELECT a.id, a.kind, a.parent_id, a.status,
			coalesce(b.credit_limit, 0) - coalesce(t.actual_total - t.voucher_total, 0) AS available,
			coalesce(b.exempt_postpaid OR b.exempt_prepaid, false) AS exempt,
			EXISTS (SELECT 1 FROM customer_group_members g WHERE g.account_id = a.id) AS in_group,
			EXISTS (SELECT 1 FROM sharing_unit_members u WHERE u.account_id = a.id) AS in_unit,
			EXISTS (SELECT 1 FROM unbindings n WHERE n.customer_id = a.id AND n.status = 'PENDING' AND n.expires_at > ?) AS unbinding,
			(SELECT i.migration_id FROM migration_items i WHERE i.account_id = a.id AND i.open AND i.migration_id <> ? LIMIT 1) AS other
		FROM accounts a
		LEFT JOIN credit_balances b ON b.account_id = a.id
		LEFT JOIN spend_totals t ON t.customer_id = a.id AND t.month = ?
		WHERE a.id = ANY(?::bigint[])`,
		tx.Now(), self, models.MonthOf(tx.Now(), loc).Key(), store.Int64Array(ids)).Scan(&list).Error
	if err != nil {
		return nil, fmt.Errorf("migration preconditions: %w", err)
	}
	found := make(map[int64]bool, len(list))
	for i := range list {
		f := &list[i]
		found[f.ID] = true
		if why := f.reason(source); why != "" {
			out[f.ID] = why
		}
	}
	for _, id := range ids {
		if !found[id] {
			out[id] = notSourceCustomer
		}
	}
	return out, nil
}

// notSourceCustomer is the reason of an ID that names no customer of the
// source — whether it exists elsewhere is not told.
const notSourceCustomer = "not a customer of the source partner"

// reason is why f cannot migrate from source, or "".
func (f *facts) reason(source int64) string {
	switch {
	case f.Kind != models.KindCustomer || f.ParentID == nil || *f.ParentID != source:
		return notSourceCustomer
	case f.InGroup:
		return "the customer is an administrator or member of a customer group: remove it from the group first"
	case f.InUnit:
		return "the customer is in a savings-plan shared unit: remove it from the unit first"
	case f.Exempt:
		return "the customer has an arrears exemption (no suspension for arrears): its partner must disable it first"
	case f.Other != nil:
		return fmt.Sprintf("the customer is already in another migration (batch %s)", globalID(*f.Other))
	case f.Unbinding:
		return "the customer is in an unbinding process: it must end first"
	case f.Status != models.StatusActive:
		return "the customer is frozen: its partner must unfreeze it first"
	case f.Available.IsNegative():
		return fmt.Sprintf("the customer's available credit is negative (%s): its partner must settle or reverse it first",
			models.FormatDecimal(f.Available))
	}
	return ""
}

// checkReceiverCredit is the batch-level precondition: a second-level
// receiver's allocatable credit covers the batch's total requested credit.
func checkReceiverCredit(tx *store.Tx, receiver *models.Account, total decimal.Decimal) (string, error) {
	if !secondLevel(receiver) {
		return "", nil
	}
	var allocatable decimal.Decimal
	if err := tx.DB.Raw(`SELECT credit_limit - allocated FROM credit_balances WHERE account_id = ?`, receiver.ID).
		Scan(&allocatable).Error; err != nil {
		return "", fmt.Errorf("receiver credit: %w", err)
	}
	if total.GreaterThan(allocatable) {
		return fmt.Sprintf("the batch asks for %s of credit but the receiver can allocate %s: raise its credit or lower the rows' credit",
			models.FormatDecimal(total), models.FormatDecimal(allocatable)), nil
	}
	return "", nil
}
