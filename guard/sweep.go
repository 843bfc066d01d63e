package guard

import (
	"context"
	"errors"
	"fmt"
	"time"

	"partnerd/models"
	"partnerd/store"
)

// sweepLimit bounds how many accounts one sweep acts on; the next sweep
// takes the rest.
const sweepLimit = 1000

// periodSpent is the SQL of a guard row's spend in its budget's current
// period ($1: the current month key), as row.spent computes it.
const periodSpent = `(CASE WHEN g.budget_type = 'ONE_TIME' THEN g.one_time_spent WHEN g.month = @cur THEN g.month_list ELSE 0 END)`

// needsEnforcement is the SQL condition (on g, a guard row, and b, its
// budget; @cur the current month) of a customer whose overspend action is
// due: exceeded, ACTIVE with an action (or FROZEN with the action that
// stops resources), and no override of the partner for this period and
// amount.
const needsEnforcement = `(g.status = 'ACTIVE' AND b.overspend_action <> 'NONE'
		OR g.status = 'FROZEN' AND b.overspend_action = 'FREEZE_ACCOUNT_AND_RESOURCES') AND ` + periodSpent + ` >= b.amount
	AND NOT (b.override_amount IS NOT DISTINCT FROM b.amount
		AND b.override_period IS NOT DISTINCT FROM (CASE WHEN b.type = 'ONE_TIME' THEN 0 ELSE @cur END))`

// needsAlert is the SQL condition of a budget with a threshold crossed in
// its current period and no alert row for it.
const needsAlert = `EXISTS (SELECT 1 FROM unnest(b.thresholds) AS t(pct)
	WHERE ` + periodSpent + ` * 100 >= b.amount * t.pct
	AND NOT EXISTS (SELECT 1 FROM budget_alerts x WHERE x.budget_id = b.id
		AND x.period = (CASE WHEN b.type = 'ONE_TIME' THEN 0 ELSE @cur END) AND x.threshold = t.pct))`

// Flag emits, inside an ingestion's transaction and after its Sync, one
// BudgetCheck for each of the given customers whose budget now owes
// something — an alert or the overspend action — so the background
// evaluation runs only where it has work, on the critical queue. Customers
// without a budget, or below their next threshold, cost one indexed lookup
// here and nothing afterwards.
func Flag(tx *store.Tx, loc *time.Location, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	cur := models.MonthOf(tx.Now(), loc).Key()
	var due []int64
	err := tx.DB.Raw(`SELECT g.customer_id FROM purchase_guards g JOIN budgets b ON b.id = g.budget_id
		WHERE g.customer_id = ANY(CAST(@ids AS bigint[])) AND ((`+needsAlert+`) OR (`+needsEnforcement+`))
		ORDER BY g.customer_id`, map[string]any{"ids": store.Int64Array(ids), "cur": cur}).Scan(&due).Error
	if err != nil {
		return fmt.Errorf("flag budgets to evaluate: %w", err)
	}
	evs := make([]store.Event, len(due))
	for i, id := range due {
		evs[i] = BudgetCheck{CustomerID: id}
	}
	return tx.Emit(evs...)
}

// BudgetCheck asks the background evaluation (Evaluate) to act on a
// customer's budget: an ingestion crossed one of its thresholds or its
// amount.
type BudgetCheck struct {
	CustomerID int64 `json:"customerId"`
}

// EventBudgetCheck is the type of BudgetCheck.
const EventBudgetCheck = "budget.check"

// EventType implements store.Event.
func (BudgetCheck) EventType() string { return EventBudgetCheck }

// Queue puts the check on the critical queue: the overspend action must
// follow the crossing within seconds.
func (BudgetCheck) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e BudgetCheck) EventAccountID() int64 { return e.CustomerID }

// SweepEnforcement is the backstop of the background enforcement, for the
// scheduler: it evaluates every ACTIVE customer whose budget is exceeded
// with an overspend action not yet enforced, and reconciles the arrears
// suspension of every customer whose status disagrees with its arrears
// (ACTIVE while suspended, or frozen for arrears while not — which is how
// suspensions end when a new month starts). It returns how many accounts it
// acted on.
func (s *Service) SweepEnforcement(ctx context.Context) (int, error) {
	cur := models.MonthOf(s.st.Now(), s.loc).Key()
	db := s.st.DB.WithContext(ctx)
	var over []int64
	err := db.Raw(`SELECT g.customer_id FROM purchase_guards g JOIN budgets b ON b.id = g.budget_id
		WHERE `+needsEnforcement+`
		ORDER BY g.customer_id LIMIT @limit`, map[string]any{"cur": cur, "limit": sweepLimit}).Scan(&over).Error
	if err != nil {
		return 0, fmt.Errorf("find overspent customers: %w", err)
	}
	var arrears []int64
	err = db.Raw(`SELECT g.customer_id FROM purchase_guards g
		WHERE g.kind = 'CUSTOMER' AND (
			(g.status = 'ACTIVE' AND NOT g.exempt_postpaid AND NOT g.exempt_prepaid
				AND g.credit_limit - (CASE WHEN g.month = @cur THEN g.month_actual ELSE 0 END) < 0)
			OR (g.status = 'FROZEN' AND g.frozen_reason = 'ARREARS' AND (g.exempt_postpaid OR g.exempt_prepaid
				OR g.credit_limit - (CASE WHEN g.month = @cur THEN g.month_actual ELSE 0 END) >= 0)))
		ORDER BY g.customer_id LIMIT @limit`, map[string]any{"cur": cur, "limit": sweepLimit}).Scan(&arrears).Error
	if err != nil {
		return 0, fmt.Errorf("find arrears to reconcile: %w", err)
	}
	var errs []error
	for _, id := range over {
		errs = append(errs, s.Evaluate(ctx, id))
	}
	for _, id := range arrears {
		errs = append(errs, s.ReconcileArrears(ctx, id))
	}
	if n := len(over) + len(arrears); n > 0 {
		s.log.InfoContext(ctx, "enforcement sweep acted", "overspent", len(over), "arrears", len(arrears))
	}
	return len(over) + len(arrears), errors.Join(errs...)
}

// SweepThresholds is the backstop of the threshold alerts, for the
// scheduler: it re-syncs the guard rows a new month's early records left
// behind, then evaluates every budget that has crossed a threshold in its
// current period without the alert row of that period — after a lost event,
// and at the start of a month, when MONTHLY budgets begin a new period. It
// returns how many budgets it evaluated.
func (s *Service) SweepThresholds(ctx context.Context) (int, error) {
	cur := models.MonthOf(s.st.Now(), s.loc).Key()
	// Records may be stamped up to 5 minutes ahead, so a new month can hold
	// spend before it starts; the guard rows synced then still show the old
	// month. Bring those up to date first (a handful, at month start).
	var stale []int64
	err := s.st.DB.WithContext(ctx).Raw(`SELECT g.customer_id FROM purchase_guards g
		JOIN spend_totals t ON t.customer_id = g.customer_id AND t.month = ?
		WHERE g.month < ? ORDER BY g.customer_id LIMIT ?`, cur, cur, sweepLimit).Scan(&stale).Error
	if err != nil {
		return 0, fmt.Errorf("find guard rows of an earlier month: %w", err)
	}
	if len(stale) > 0 {
		if err := s.st.InTx(ctx, func(tx *store.Tx) error { return Sync(tx, s.loc, stale...) }); err != nil {
			return 0, err
		}
	}
	var ids []int64
	err = s.st.DB.WithContext(ctx).Raw(`SELECT g.customer_id FROM purchase_guards g JOIN budgets b ON b.id = g.budget_id
		WHERE `+needsAlert+`
		ORDER BY g.customer_id LIMIT @limit`, map[string]any{"cur": cur, "limit": sweepLimit}).Scan(&ids).Error
	if err != nil {
		return 0, fmt.Errorf("find budgets with missing alerts: %w", err)
	}
	var errs []error
	for _, id := range ids {
		errs = append(errs, s.Evaluate(ctx, id))
	}
	if len(ids) > 0 {
		s.log.InfoContext(ctx, "threshold sweep evaluated budgets", "budgets", len(ids))
	}
	return len(ids), errors.Join(errs...)
}
