package credit

import "partnerd/accounts"

// ExemptionSet is emitted when a customer's arrears exemption privileges
// change; the arrears suspension is reconciled from it (a new exemption lifts
// a suspension, DOMAIN.md §3).
type ExemptionSet struct {
	CustomerID int64 `json:"customerId"`
	Postpaid   bool  `json:"postpaid"`
	Prepaid    bool  `json:"prepaid"`
}

// EventType implements store.Event.
func (ExemptionSet) EventType() string { return EventExemptionSet }

// EventExemptionSet is the type of ExemptionSet.
const EventExemptionSet = "credit.exemption_set"

// Queue puts exemption changes on the critical queue: lifting a suspension
// should not wait.
func (ExemptionSet) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e ExemptionSet) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e ExemptionSet) LiveTopics() []string { return []string{accounts.AccountTopic(e.CustomerID)} }
