package notify

import "partnerd/accounts"

// EventBudgetForecastExceeding is the type of BudgetForecastExceeding.
const EventBudgetForecastExceeding = "forecast.budget_exceeding"

// BudgetForecastExceeding warns, once per budget and period, that a
// customer's spend is projected to reach its budget before the period's
// month ends, while it is still below it (issue 14; the package forecast
// states how the projection is made). An exceeded budget has its own alert
// (BudgetThresholdCrossed at 100%).
type BudgetForecastExceeding struct {
	CustomerID int64 `json:"customerId"`
	BudgetID   int64 `json:"budgetId"`
	// BudgetType is MONTHLY or ONE_TIME.
	BudgetType string `json:"budgetType"`
	// Period is the Beijing-time month "YYYY-MM" of a MONTHLY budget, or,
	// for a ONE_TIME budget, the Beijing date "YYYY-MM-DD" it was set, as in
	// BudgetThresholdCrossed.
	Period string `json:"period"`
	// Month is the Beijing-time month "YYYY-MM" to whose end the spend is
	// projected.
	Month string `json:"month"`
	// Amount is the budget; Spent the list-price spend counted against it so
	// far; ProjectedList the projection of that spend at the end of Month.
	Amount        string `json:"amount"`
	Spent         string `json:"spent"`
	ProjectedList string `json:"projectedList"`
	// ExceedsOn is the Beijing date "YYYY-MM-DD" on which the projection
	// reaches the budget.
	ExceedsOn string `json:"exceedsOn"`
}

// EventType implements store.Event.
func (BudgetForecastExceeding) EventType() string { return EventBudgetForecastExceeding }

// EventAccountID implements store.AccountEvent.
func (e BudgetForecastExceeding) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e BudgetForecastExceeding) LiveTopics() []string {
	return []string{accounts.AccountTopic(e.CustomerID)}
}
