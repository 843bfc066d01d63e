package guard

import (
	"context"
	"errors"
	"fmt"

	"partnerd/models"
)

// sweepLimit bounds how many accounts one sweep acts on; the next sweep
// takes the rest.
const sweepLimit = 1000

// periodSpent is the SQL of a guard row's spend in its budget's current
// period ($1: the current month key), as row.spent computes it.
const periodSpent = `(CASE WHEN g.budget_type = 'ONE_TIME' THEN g.one_time_spent WHEN g.month = @cur THEN g.month_list ELSE 0 END)`

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
		WHERE g.status = 'ACTIVE' AND b.overspend_action <> 'NONE' AND `+periodSpent+` >= b.amount
			AND NOT (b.override_amount IS NOT DISTINCT FROM b.amount
				AND b.override_period IS NOT DISTINCT FROM (CASE WHEN b.type = 'ONE_TIME' THEN 0 ELSE @cur END))
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
// scheduler: it evaluates every budget that has crossed a threshold in its
// current period without the alert row of that period — after a lost event,
// and at the start of a month, when MONTHLY budgets begin a new period. It
// returns how many budgets it evaluated.
func (s *Service) SweepThresholds(ctx context.Context) (int, error) {
	cur := models.MonthOf(s.st.Now(), s.loc).Key()
	var ids []int64
	err := s.st.DB.WithContext(ctx).Raw(`SELECT g.customer_id FROM purchase_guards g JOIN budgets b ON b.id = g.budget_id
		WHERE EXISTS (SELECT 1 FROM unnest(b.thresholds) AS t(pct)
			WHERE `+periodSpent+` * 100 >= b.amount * t.pct
			AND NOT EXISTS (SELECT 1 FROM budget_alerts x WHERE x.budget_id = b.id
				AND x.period = (CASE WHEN b.type = 'ONE_TIME' THEN 0 ELSE @cur END) AND x.threshold = t.pct))
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
