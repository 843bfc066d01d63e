package spend

import "partnerd/accounts"

// CustomerSpendChanged is emitted, in the ingesting transaction, once per
// customer and month that an ingestion added records to. It carries the new
// running totals of that month (not the increment), so a consumer that sees
// it twice or out of order can act on the figures it holds; budgets and
// overspend enforcement consume it (DOMAIN.md §4).
type CustomerSpendChanged struct {
	CustomerID int64 `json:"customerId"`
	// Month is the Beijing-time billing month, "YYYY-MM".
	Month string `json:"month"`
	// List and Actual are the month's totals at list and actual price.
	List   string `json:"list"`
	Actual string `json:"actual"`
	// Records is how many records the month's totals count.
	Records int64 `json:"records"`
}

// EventType implements store.Event.
func (CustomerSpendChanged) EventType() string { return "spend.changed" }

// Queue puts spend changes on the critical queue: overspend enforcement must
// act within seconds of the record that crossed the line.
func (CustomerSpendChanged) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e CustomerSpendChanged) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e CustomerSpendChanged) LiveTopics() []string {
	return []string{accounts.AccountTopic(e.CustomerID)}
}
