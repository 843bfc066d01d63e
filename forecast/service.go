// Package forecast projects each customer's spend to the end of the current
// billing month (issue 14 point 4) and warns its partner and itself, once
// per budget and period, when the projection reaches the budget before the
// spend does.
//
// The method, for a customer at the instant AsOf (the store's clock), in
// the Beijing month M that holds it (DOMAIN.md §5):
//
//   - To-date figures are the month's running totals as the purchase guard
//     holds them (purchase_guards, kept current by every ingestion; one
//     query for many customers, no scan of expenditures): list spend of M,
//     and consumption of M = actual amounts − what vouchers paid (DOMAIN.md
//     §3). A guard row of an earlier month counts as zero spend in M.
//   - Elapsed time is AsOf − the 1st of M at 00:00 Beijing, as an exact
//     fraction of days (2026-11-10 12:00 is 9.5 days into November);
//     remaining time is the 1st of the next month at 00:00 − AsOf (20.5).
//     Days are 24 hours: Beijing keeps no daylight saving time.
//   - The daily run-rate is spend to date ÷ elapsed days, with the elapsed
//     days counted as at least 1, so the first hours of a month do not
//     extrapolate a handful of records to a whole month.
//   - Projected month-end = to date + rate × remaining days.
//   - MONTHLY budgets compare the month's list spend; ONE_TIME budgets the
//     list spend since the budget was set (the guard's one_time_spent),
//     projected by adding the month's list rate × remaining days. Credit
//     compares consumption against the customer's allocated credit:
//     available = credit − consumption (DOMAIN.md §3).
//   - Every decision (does the projection reach the budget; on which day;
//     does credit run out) is taken on the exact values. The projections
//     and rates shown are rounded half to even to 2 decimals at the end;
//     to-date figures are as stored (exact).
//   - The day the budget is exceeded is the Beijing date of the instant the
//     projected spend reaches the amount, if that is before the month ends
//     (a projection reaching it exactly at the month's end counts on the
//     last day); nil otherwise, and nil without a budget. A budget already
//     exceeded (spend ≥ amount) gives today: the projection says nothing
//     about the past, and the 100% threshold alert records when it was
//     crossed.
//   - The day credit runs out is the Beijing date from which available
//     credit is projected to be below 0, if that happens before the month
//     ends; nil otherwise. Already below 0 (arrears): today.
//
// Days are returned as the instant of 00:00 Beijing time of that date, in
// UTC.
package forecast

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/store"
)

// Options configure a Service.
type Options struct {
	// Location is the billing time zone (Asia/Shanghai); UTC when nil.
	Location *time.Location
	// Log receives what Tick did.
	Log *slog.Logger
}

// Service makes spend forecasts and sends the forecast alerts.
type Service struct {
	st  *store.Store
	loc *time.Location
	log *slog.Logger
}

// New returns the forecast service.
func New(st *store.Store, opts Options) *Service {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Service{st: st, loc: opts.Location, log: opts.Log.With("component", "forecast")}
}

// Forecast is a customer's spend projected to the end of the current
// Beijing month (the package documentation states the method).
type Forecast struct {
	CustomerID int64
	// Month is the Beijing month projected; AsOf the instant of the
	// projection.
	Month models.Month
	AsOf  time.Time
	// DaysElapsed is the number of whole days of Month before AsOf (9 on
	// the 10th at noon); Elapsed the exact elapsed days to 6 decimals
	// (9.5), the divisor of the rate (counted as at least 1 there).
	DaysElapsed, DaysInMonth int
	Elapsed                  decimal.Decimal
	// ListToDate is the month's list spend; ActualToDate its consumption:
	// actual amounts less what vouchers paid, as counted against credit.
	ListToDate, ActualToDate decimal.Decimal
	// DailyList and DailyActual are the run-rates per day (2 decimals).
	DailyList, DailyActual decimal.Decimal
	// ProjectedList and ProjectedActual are the month-end projections
	// (2 decimals, half to even).
	ProjectedList, ProjectedActual decimal.Decimal
	// CreditLimit is the credit allocated to the customer.
	CreditLimit decimal.Decimal
	// The customer's budget; all nil without one. BudgetSpent is the list
	// spend counted against it (the month's for MONTHLY, since it was set
	// for ONE_TIME); ProjectedBudgetSpent its month-end projection.
	BudgetID             *int64
	BudgetType           *models.BudgetType
	BudgetAmount         *decimal.Decimal
	BudgetSpent          *decimal.Decimal
	ProjectedBudgetSpent *decimal.Decimal
	// BudgetExceededOn is the Beijing date (00:00 Beijing, as a UTC instant)
	// the projection reaches the budget; nil if not this month or without a
	// budget; today when the budget is already exceeded.
	BudgetExceededOn *time.Time
	// CreditRunsOutOn is the Beijing date from which available credit is
	// projected to be below 0; nil if not this month; today when it is
	// already below 0.
	CreditRunsOutOn *time.Time
}

// ProjectedAvailable is the available credit projected at the month's end:
// CreditLimit − ProjectedActual.
func (f *Forecast) ProjectedAvailable() decimal.Decimal { return f.CreditLimit.Sub(f.ProjectedActual) }

// Forecast returns the forecasts of the given customers that are in the
// caller's scope, in one query (for a dataloader). Accounts outside the
// scope, unknown ids and accounts that are not customers are simply absent.
func (s *Service) Forecast(ctx context.Context, customerIDs []int64) (map[int64]*Forecast, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[int64]*Forecast, len(customerIDs))
	if len(customerIDs) == 0 {
		return out, nil
	}
	q, args := sc.SQL("a.path")
	var rows []input
	err = s.st.DB.WithContext(ctx).Raw(`SELECT `+inputColumns+`
		FROM purchase_guards g JOIN accounts a ON a.id = g.customer_id
		LEFT JOIN budgets b ON b.id = g.budget_id
		WHERE g.customer_id = ANY(?::bigint[]) AND a.kind = 'CUSTOMER' AND `+q,
		append([]any{store.Int64Array(customerIDs)}, args...)...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load forecast inputs: %w", err)
	}
	fr := frameAt(s.st.Now(), s.loc)
	for i := range rows {
		out[rows[i].CustomerID] = fr.project(&rows[i])
	}
	return out, nil
}

// inputColumns are the columns of input, read from a purchase guard row g
// and its budget b.
const inputColumns = `g.customer_id, g.credit_limit, g.month, g.month_list, g.month_actual, g.one_time_spent,
	b.id AS budget_id, b.type AS budget_type, b.amount AS budget_amount, b.started_at AS budget_started_at`

// input is what a forecast is made of: a customer's purchase guard row and
// its budget.
type input struct {
	CustomerID      int64
	CreditLimit     decimal.Decimal
	Month           int
	MonthList       decimal.Decimal
	MonthActual     decimal.Decimal
	OneTimeSpent    decimal.Decimal
	BudgetID        *int64
	BudgetType      *models.BudgetType
	BudgetAmount    *decimal.Decimal
	BudgetStartedAt *time.Time
}
