package guard

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// DefaultThresholds are a budget's alert thresholds unless it names others.
var DefaultThresholds = []int{50, 80, 100}

// Threshold bounds (percent of the budget).
const (
	MinThreshold  = 1
	MaxThreshold  = 1000
	maxThresholds = 20
)

// BudgetInput is a budget as a partner sets it. Thresholds nil means the
// defaults; OverspendAction "" means NONE.
type BudgetInput struct {
	CustomerID      int64
	Type            models.BudgetType
	Amount          decimal.Decimal
	Thresholds      []int
	OverspendAction models.OverspendAction
}

// BudgetView is a customer's budget with the spend counted against it in
// its current period (DOMAIN.md §4).
type BudgetView struct {
	models.Budget
	// Spent is the list-price spend of the current period: this Beijing
	// month for MONTHLY, everything since it was set for ONE_TIME.
	Spent decimal.Decimal
	// UsedPercent is Spent / Amount × 100 to two decimals (half away from zero).
	UsedPercent decimal.Decimal
	// Exceeded: Spent ≥ Amount.
	Exceeded bool
}

// normalize checks in and fills its defaults; thresholds come back sorted.
func (in *BudgetInput) normalize() error {
	if !in.Type.IsValid() {
		return apperr.Invalid("type", "unknown budget type %q", in.Type)
	}
	if !in.Amount.IsPositive() {
		return apperr.Invalid("amount", "must be greater than 0")
	}
	if in.OverspendAction == "" {
		in.OverspendAction = models.OverspendNone
	}
	if !in.OverspendAction.IsValid() {
		return apperr.Invalid("overspendAction", "unknown overspend action %q", in.OverspendAction)
	}
	if in.Thresholds == nil {
		in.Thresholds = slices.Clone(DefaultThresholds)
	}
	if len(in.Thresholds) == 0 || len(in.Thresholds) > maxThresholds {
		return apperr.Invalid("thresholds", "give 1 to %d thresholds (or none for the defaults 50, 80, 100)", maxThresholds)
	}
	t := slices.Clone(in.Thresholds)
	slices.Sort(t)
	for i, v := range t {
		if v < MinThreshold || v > MaxThreshold {
			return apperr.Invalid("thresholds", "each threshold is a percentage from %d to %d, got %d", MinThreshold, MaxThreshold, v)
		}
		if i > 0 && t[i-1] == v {
			return apperr.Invalid("thresholds", "threshold %d is given twice", v)
		}
	}
	in.Thresholds = t
	return nil
}

// SetBudget sets a customer's budget (ADMIN or FINANCE of a partner above it,
// or of the platform). Setting the type it already has keeps the budget (and
// the alerts it sent this period) and changes its amount, thresholds and
// overspend action; another type, or a first budget, starts a new one, from
// now on. The thresholds are evaluated again at once, in the same
// transaction: an alert for each newly crossed one, and the overspend action
// when the new amount is already exceeded.
func (s *Service) SetBudget(ctx context.Context, in BudgetInput) (*models.Account, error) {
	if err := in.normalize(); err != nil {
		return nil, err
	}
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := s.lockBudgeted(tx, sc, in.CustomerID)
		if err != nil {
			return err
		}
		out = a
		old, err := lockBudget(tx, a.ID)
		if err != nil {
			return err
		}
		now := tx.Now()
		var before any
		if old != nil {
			before = budgetSummary(old)
		}
		b := &models.Budget{CustomerID: a.ID, Type: in.Type, Amount: in.Amount, Thresholds: models.Int32s(in.Thresholds),
			OverspendAction: in.OverspendAction, StartedAt: now, StartMonth: models.MonthOf(now, s.loc).Key(), CreatedAt: now, UpdatedAt: now}
		switch {
		case old != nil && old.Type == in.Type:
			b.ID, b.StartedAt, b.StartMonth, b.CreatedAt = old.ID, old.StartedAt, old.StartMonth, old.CreatedAt
			// The override was for the old amount.
			err = tx.DB.Exec(`UPDATE budgets SET amount = ?, thresholds = ?::int[], overspend_action = ?,
					override_period = CASE WHEN override_amount = ? THEN override_period END,
					override_amount = CASE WHEN override_amount = ? THEN override_amount END,
					updated_at = ? WHERE id = ?`,
				b.Amount, b.Thresholds, b.OverspendAction, b.Amount, b.Amount, now, b.ID).Error
		default:
			if old != nil {
				if err := tx.DB.Exec(`DELETE FROM budgets WHERE id = ?`, old.ID).Error; err != nil {
					return fmt.Errorf("replace budget: %w", err)
				}
			}
			err = tx.DB.Raw(`INSERT INTO budgets (customer_id, type, amount, thresholds, overspend_action, started_at, start_month, created_at, updated_at)
				VALUES (?, ?, ?, ?::int[], ?, ?, ?, ?, ?) RETURNING id`,
				b.CustomerID, b.Type, b.Amount, b.Thresholds, b.OverspendAction, b.StartedAt, b.StartMonth, now, now).Scan(&b.ID).Error
		}
		if err != nil {
			return fmt.Errorf("set budget: %w", err)
		}
		if err := tx.Audit("budget.set", a.ID, before, budgetSummary(b)); err != nil {
			return err
		}
		if err := tx.Emit(accounts.AccountChanged{AccountID: a.ID, Change: "budget"}); err != nil {
			return err
		}
		if err := Sync(tx, s.loc, a.ID); err != nil {
			return err
		}
		return s.evaluate(tx, a)
	})
	return out, err
}

// ClearBudget removes a customer's budget (same callers as SetBudget): no
// more alerts, no overspend action, no budget limit on purchases. A frozen
// customer without a budget cannot be unfrozen. Clearing when there is none
// changes nothing.
func (s *Service) ClearBudget(ctx context.Context, customerID int64) (*models.Account, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := s.lockBudgeted(tx, sc, customerID)
		if err != nil {
			return err
		}
		out = a
		old, err := lockBudget(tx, a.ID)
		if err != nil || old == nil {
			return err
		}
		if err := tx.DB.Exec(`DELETE FROM budgets WHERE id = ?`, old.ID).Error; err != nil {
			return fmt.Errorf("clear budget: %w", err)
		}
		if err := tx.Audit("budget.clear", a.ID, budgetSummary(old), nil); err != nil {
			return err
		}
		if err := tx.Emit(accounts.AccountChanged{AccountID: a.ID, Change: "budget"}); err != nil {
			return err
		}
		return Sync(tx, s.loc, a.ID)
	})
	return out, err
}

// lockBudgeted locks the customer whose budget the caller sets: in scope
// (else NOT_FOUND), a CUSTOMER, not the caller's own account, and the
// caller holds the finance permission.
func (s *Service) lockBudgeted(tx *store.Tx, sc accounts.Scope, id int64) (*models.Account, error) {
	a, err := accounts.LockInScope(tx, sc, id)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermFinance); err != nil {
		return nil, err
	}
	if a.Kind != models.KindCustomer {
		return nil, apperr.Invalid("customerId", "budgets are set for customers, not for a %s", a.Kind)
	}
	if p := sc.Principal(); !p.System && p.AccountID == a.ID {
		return nil, apperr.Forbiddenf("a customer's budget is set by its partner")
	}
	return a, nil
}

// lockBudget locks the budget of customer id (nil when it has none).
func lockBudget(tx *store.Tx, id int64) (*models.Budget, error) {
	var b models.Budget
	if err := tx.DB.Raw(`SELECT * FROM budgets WHERE customer_id = ? FOR UPDATE`, id).Scan(&b).Error; err != nil {
		return nil, fmt.Errorf("lock budget of %d: %w", id, err)
	}
	if b.ID == 0 {
		return nil, nil
	}
	return &b, nil
}

// periodOf is the alert period of a budget of type t in month cur: the
// month for MONTHLY, 0 (its whole life) for ONE_TIME.
func periodOf(t models.BudgetType, cur int) int {
	if t == models.BudgetOneTime {
		return 0
	}
	return cur
}

// usedPercent is spent / amount × 100 to two decimals.
func usedPercent(spent, amount decimal.Decimal) decimal.Decimal {
	return spent.Mul(decimal.NewFromInt(100)).DivRound(amount, 8).Round(2)
}

// crossed reports whether spent reaches threshold percent of amount, exactly.
func crossed(spent, amount decimal.Decimal, threshold int) bool {
	return spent.Mul(decimal.NewFromInt(100)).GreaterThanOrEqual(amount.Mul(decimal.NewFromInt(int64(threshold))))
}

// Evaluate applies customer id's budget as its guard row stands, as the
// system (the consumer of spend changes and the sweeps call it): one alert
// per newly crossed threshold and, when the budget is exceeded, the
// overspend action. Idempotent, and safe with several workers at once: it
// locks the account and the budget, and an alert is a unique row per
// budget, period and threshold.
func (s *Service) Evaluate(ctx context.Context, id int64) error {
	return s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := accounts.Lock(tx, id)
		if err != nil || a == nil || a.Kind != models.KindCustomer {
			return err
		}
		return s.evaluate(tx, a)
	})
}

// evaluate is Evaluate in tx, with a locked by the caller.
func (s *Service) evaluate(tx *store.Tx, a *models.Account) error {
	b, err := lockBudget(tx, a.ID)
	if err != nil || b == nil {
		return err
	}
	r, err := loadRow(tx, a.ID)
	if err != nil || r == nil {
		return err
	}
	now := tx.Now()
	cur := models.MonthOf(now, s.loc).Key()
	spent := r.spent(cur)
	period := periodOf(b.Type, cur)
	var hit []int
	for _, t := range b.Thresholds {
		if crossed(spent, b.Amount, t) {
			hit = append(hit, t)
		}
	}
	if len(hit) > 0 {
		var fresh []int
		err := tx.DB.Raw(`INSERT INTO budget_alerts (budget_id, period, threshold, customer_id, spent, amount, at)
			SELECT ?, ?, t, ?, ?, ?, ? FROM unnest(?::int[]) AS t
			ON CONFLICT DO NOTHING RETURNING threshold`,
			b.ID, period, a.ID, spent, b.Amount, now, models.Int32s(hit)).Scan(&fresh).Error
		if err != nil {
			return fmt.Errorf("record budget alerts: %w", err)
		}
		slices.Sort(fresh)
		label := models.MonthOf(now, s.loc).String()
		if b.Type == models.BudgetOneTime {
			label = b.StartedAt.In(s.loc).Format(time.DateOnly)
		}
		evs := make([]store.Event, 0, len(fresh))
		for _, t := range fresh {
			evs = append(evs, notify.BudgetThresholdCrossed{CustomerID: a.ID, BudgetID: b.ID, BudgetType: string(b.Type),
				Period: label, Threshold: t, Spent: models.FormatDecimal(spent), Amount: models.FormatDecimal(b.Amount),
				UsedPercent: usedPercent(spent, b.Amount).StringFixed(2)})
		}
		if err := tx.Emit(evs...); err != nil {
			return err
		}
	}
	if spent.LessThan(b.Amount) || b.OverspendAction == models.OverspendNone {
		return nil
	}
	if b.OverridePeriod != nil && *b.OverridePeriod == period && b.OverrideAmount != nil && b.OverrideAmount.Equal(b.Amount) {
		return nil
	}
	mode := models.FreezeAccount
	if b.OverspendAction == models.OverspendFreezeWithResources {
		mode = models.FreezeAccountAndResources
	}
	// An ACTIVE customer is frozen; one already FROZEN (for arrears, by its
	// partner, as a new customer) still gets its resources stopped when the
	// action says so.
	if a.Status == models.StatusActive || (a.Status == models.StatusFrozen && mode == models.FreezeAccountAndResources) {
		return s.freeze(tx, a, mode, models.FrozenOverspend, "overspend action of the budget")
	}
	return nil
}

// BudgetViews returns the budgets of the given customers that are in the
// caller's scope and have one, with their current spend: one query.
func (s *Service) BudgetViews(ctx context.Context, ids []int64) (map[int64]*BudgetView, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	var rows []struct {
		models.Budget
		Month        int
		MonthList    decimal.Decimal
		OneTimeSpent decimal.Decimal
	}
	err = s.st.DB.WithContext(ctx).Raw(`SELECT b.*, g.month, g.month_list, g.one_time_spent
		FROM budgets b JOIN accounts a ON a.id = b.customer_id JOIN purchase_guards g ON g.customer_id = b.customer_id
		WHERE b.customer_id = ANY(?::bigint[]) AND `+q, append([]any{store.Int64Array(ids)}, args...)...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load budgets: %w", err)
	}
	cur := models.MonthOf(s.st.Now(), s.loc).Key()
	out := make(map[int64]*BudgetView, len(rows))
	for _, r := range rows {
		spent := r.OneTimeSpent
		if r.Type == models.BudgetMonthly {
			spent = decimal.Zero
			if r.Month == cur {
				spent = r.MonthList
			}
		}
		out[r.CustomerID] = &BudgetView{Budget: r.Budget, Spent: spent,
			UsedPercent: usedPercent(spent, r.Amount), Exceeded: spent.GreaterThanOrEqual(r.Amount)}
	}
	return out, nil
}

// budgetSummary is the audit summary of a budget.
func budgetSummary(b *models.Budget) map[string]any {
	return map[string]any{"id": b.ID, "type": b.Type, "amount": models.FormatDecimal(b.Amount),
		"thresholds": []int(b.Thresholds), "overspendAction": b.OverspendAction}
}

// textArray renders ss as a PostgreSQL text[] literal.
func textArray(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
	}
	return "{" + strings.Join(q, ",") + "}"
}

// timeArray renders ts as a PostgreSQL timestamptz[] literal.
func timeArray(ts []time.Time) string {
	q := make([]string, len(ts))
	for i, t := range ts {
		q[i] = `"` + t.UTC().Format(time.RFC3339Nano) + `"`
	}
	return "{" + strings.Join(q, ",") + "}"
}
