package forecast

import (
	"context"
	"fmt"
	"time"

	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// alertBatch is how many customers one transaction of Tick handles.
const alertBatch = 1000

// projectedOver is the SQL condition (on g, a guard row, and b, its
// budget; @cur the current month key, @div and @rem the frame's divisor and
// remaining time in ns) of a budget not yet exceeded whose projection
// reaches it: spent < amount ≤ spent + list × rem ÷ div, as project
// computes it, exactly.
const projectedOver = `(CASE WHEN b.type = 'ONE_TIME' THEN g.one_time_spent WHEN g.month = @cur THEN g.month_list ELSE 0 END) < b.amount
	AND (CASE WHEN b.type = 'ONE_TIME' THEN g.one_time_spent WHEN g.month = @cur THEN g.month_list ELSE 0 END) * CAST(@div AS numeric)
		+ (CASE WHEN g.month = @cur THEN g.month_list ELSE 0 END) * CAST(@rem AS numeric) >= b.amount * CAST(@div AS numeric)`

// Tick sends the "forecast to exceed budget" alerts (the scheduler runs it
// every hour; running it twice, or concurrently, sends each alert once): to
// every customer whose budget is not exceeded yet but whose projected spend
// (see the package documentation) reaches it by the month's end, and to its
// partner, once per budget and period — the month for a MONTHLY budget,
// the budget's whole life for a ONE_TIME one. An exceeded budget has its own
// alert (the 100% threshold). Customers frozen with their resources are
// left out: their resources are stopped, so the month's rate says nothing of
// what they will spend. The alert row and its event commit together.
//
// It walks the purchase guard rows with a budget in customer order, in
// batches of alertBatch, with one set-based query each that leaves out the
// budgets already alerted this period. It returns how many alerts it sent.
func (s *Service) Tick(ctx context.Context) (int, error) {
	fr := frameAt(s.st.Now(), s.loc)
	sent := 0
	var after int64
	for {
		n, last, err := s.alertSome(ctx, fr, after)
		sent += n
		if err != nil || last == 0 {
			if sent > 0 {
				s.log.InfoContext(ctx, "forecast alerts sent", "alerts", sent, "month", fr.month.String())
			}
			return sent, err
		}
		after = last
	}
}

// alertSome alerts the budgets due among the next alertBatch candidates
// after customer id after. last is the last candidate's id when the batch
// was full (more may follow), else 0.
func (s *Service) alertSome(ctx context.Context, fr frame, after int64) (sent int, last int64, err error) {
	cur := fr.month.Key()
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		var rows []input
		if err := tx.DB.Raw(`SELECT `+inputColumns+`
			FROM purchase_guards g JOIN budgets b ON b.id = g.budget_id
			WHERE g.customer_id > @after AND g.kind = 'CUSTOMER' AND g.status <> 'FROZEN_WITH_RESOURCES'
				AND `+projectedOver+`
				AND NOT EXISTS (SELECT 1 FROM forecast_alerts x WHERE x.budget_id = b.id
					AND x.period = (CASE WHEN b.type = 'ONE_TIME' THEN 0 ELSE @cur END))
			ORDER BY g.customer_id LIMIT @limit`,
			map[string]any{"after": after, "cur": cur, "div": fr.divisor.String(), "rem": fr.remainingD.String(), "limit": alertBatch}).
			Scan(&rows).Error; err != nil {
			return fmt.Errorf("find budgets forecast to be exceeded: %w", err)
		}
		if len(rows) == alertBatch {
			last = rows[len(rows)-1].CustomerID
		}
		var (
			budgets, customers, periods []int64
			amounts, spents, projs, on  []string
			events                      = map[int64]notify.BudgetForecastExceeding{}
		)
		for i := range rows {
			f := fr.project(&rows[i])
			if f.BudgetExceededOn == nil || f.BudgetSpent.GreaterThanOrEqual(*f.BudgetAmount) {
				continue // the query's rule and project's agree; this is a guard
			}
			period, label := int64(cur), fr.month.String()
			if *f.BudgetType == models.BudgetOneTime {
				period = 0
				if st := rows[i].BudgetStartedAt; st != nil {
					label = st.In(s.loc).Format(time.DateOnly)
				}
			}
			exceeds := f.BudgetExceededOn.In(s.loc).Format(time.DateOnly)
			budgets, customers, periods = append(budgets, *f.BudgetID), append(customers, f.CustomerID), append(periods, period)
			amounts = append(amounts, f.BudgetAmount.String())
			spents = append(spents, f.BudgetSpent.String())
			projs = append(projs, f.ProjectedBudgetSpent.String())
			on = append(on, exceeds)
			events[*f.BudgetID] = notify.BudgetForecastExceeding{CustomerID: f.CustomerID, BudgetID: *f.BudgetID,
				BudgetType: string(*f.BudgetType), Period: label, Month: fr.month.String(),
				Amount: models.FormatDecimal(*f.BudgetAmount), Spent: models.FormatDecimal(*f.BudgetSpent),
				ProjectedList: models.FormatDecimal(*f.ProjectedBudgetSpent), ExceedsOn: exceeds}
		}
		if len(budgets) == 0 {
			return nil
		}
		// A concurrent Tick inserting the same row waits for this one and
		// then inserts nothing: each alert is sent once.
		var fresh []int64
		if err := tx.DB.Raw(`INSERT INTO forecast_alerts (budget_id, period, customer_id, amount, spent, projected, exceeds_on, at)
			SELECT u.budget_id, u.period, u.customer_id, u.amount, u.spent, u.projected, u.exceeds_on, ?
			FROM unnest(?::bigint[], ?::int[], ?::bigint[], ?::numeric[], ?::numeric[], ?::numeric[], ?::date[])
				AS u(budget_id, period, customer_id, amount, spent, projected, exceeds_on)
			ON CONFLICT DO NOTHING RETURNING budget_id`,
			tx.Now(), store.Int64Array(budgets), store.Int64Array(periods), store.Int64Array(customers),
			store.TextArray(amounts), store.TextArray(spents), store.TextArray(projs), store.TextArray(on)).
			Scan(&fresh).Error; err != nil {
			return fmt.Errorf("record forecast alerts: %w", err)
		}
		isFresh := make(map[int64]bool, len(fresh))
		for _, id := range fresh {
			isFresh[id] = true
		}
		evs := make([]store.Event, 0, len(fresh))
		for _, id := range budgets {
			if isFresh[id] {
				evs = append(evs, events[id])
			}
		}
		sent = len(evs)
		return tx.Emit(evs...)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("forecast alerts after customer %d: %w", after, err)
	}
	return sent, last, nil
}
