package notify

import "partnerd/accounts"

// The event types of the notification catalogue. Each is the EventType of
// one typed event below; NewCatalogue says who is told of it and through
// which channels by default, and templates/<type>.<locale>.tmpl what they
// read. Adding one: a constant and its event struct here, one Register line
// in NewCatalogue, two template files.
const (
	EventCreditLimitSet  = "credit.limit_set"
	EventCreditAllocated = "credit.allocated"
	EventCreditReversed  = "credit.reversed"
	EventArrearsEntered  = "credit.arrears_entered"
	EventArrearsLeft     = "credit.arrears_left"
)

// CreditLimitSet is emitted when the platform sets a tier-1 partner's credit
// limit (DOMAIN.md §3).
type CreditLimitSet struct {
	PartnerID int64  `json:"partnerId"`
	Limit     string `json:"limit"`
	Previous  string `json:"previous"`
}

// EventType implements store.Event.
func (CreditLimitSet) EventType() string { return EventCreditLimitSet }

// EventAccountID implements store.AccountEvent.
func (e CreditLimitSet) EventAccountID() int64 { return e.PartnerID }

// LiveTopics implements store.LiveEvent.
func (e CreditLimitSet) LiveTopics() []string { return []string{accounts.AccountTopic(e.PartnerID)} }

// CreditAllocated is emitted when a partner allocates credit to a child:
// Amount is what moved, Limit the child's limit afterwards.
type CreditAllocated struct {
	PartnerID int64  `json:"partnerId"`
	ChildID   int64  `json:"childId"`
	Amount    string `json:"amount"`
	Limit     string `json:"limit"`
}

// EventType implements store.Event.
func (CreditAllocated) EventType() string { return EventCreditAllocated }

// EventAccountID implements store.AccountEvent.
func (e CreditAllocated) EventAccountID() int64 { return e.ChildID }

// LiveTopics implements store.LiveEvent.
func (e CreditAllocated) LiveTopics() []string { return []string{accounts.AccountTopic(e.ChildID)} }

// CreditReversed is emitted when a partner takes credit back from a child:
// Amount is what moved back, Limit the child's limit afterwards.
type CreditReversed struct {
	PartnerID int64  `json:"partnerId"`
	ChildID   int64  `json:"childId"`
	Amount    string `json:"amount"`
	Limit     string `json:"limit"`
}

// EventType implements store.Event.
func (CreditReversed) EventType() string { return EventCreditReversed }

// EventAccountID implements store.AccountEvent.
func (e CreditReversed) EventAccountID() int64 { return e.ChildID }

// LiveTopics implements store.LiveEvent.
func (e CreditReversed) LiveTopics() []string { return []string{accounts.AccountTopic(e.ChildID)} }

// ArrearsChanged is emitted when a customer's available credit crosses zero:
// Entered when it went below 0 (arrears), left when it came back to 0 or
// more (DOMAIN.md §3). The freeze logic consumes it too (arrears suspension
// and recovery).
type ArrearsChanged struct {
	CustomerID int64  `json:"customerId"`
	Entered    bool   `json:"entered"`
	Available  string `json:"available"`
	Month      string `json:"month"`
}

// EventType implements store.Event.
func (e ArrearsChanged) EventType() string {
	if e.Entered {
		return EventArrearsEntered
	}
	return EventArrearsLeft
}

// Queue puts arrears on the critical queue: a suspension must act at once.
func (ArrearsChanged) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e ArrearsChanged) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e ArrearsChanged) LiveTopics() []string { return []string{accounts.AccountTopic(e.CustomerID)} }
