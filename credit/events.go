package credit

import (
	"partnerd/accounts"
)

// CreditLimitSet is emitted when the platform sets a tier-1 partner's limit.
type CreditLimitSet struct {
	PartnerID int64  `json:"partnerId"`
	Limit     string `json:"limit"`
	Previous  string `json:"previous"`
}

// EventType implements store.Event.
func (CreditLimitSet) EventType() string { return "credit.limit_set" }

// EventAccountID implements store.AccountEvent.
func (e CreditLimitSet) EventAccountID() int64 { return e.PartnerID }

// LiveTopics implements store.LiveEvent.
func (e CreditLimitSet) LiveTopics() []string { return []string{accounts.AccountTopic(e.PartnerID)} }

// CreditAllocated is emitted when a partner allocates credit to a child.
type CreditAllocated struct {
	PartnerID int64  `json:"partnerId"`
	ChildID   int64  `json:"childId"`
	Amount    string `json:"amount"`
	Limit     string `json:"limit"`
}

// EventType implements store.Event.
func (CreditAllocated) EventType() string { return "credit.allocated" }

// EventAccountID implements store.AccountEvent.
func (e CreditAllocated) EventAccountID() int64 { return e.ChildID }

// LiveTopics implements store.LiveEvent.
func (e CreditAllocated) LiveTopics() []string { return []string{accounts.AccountTopic(e.ChildID)} }

// CreditReversed is emitted when a partner reduces a child's allocation.
type CreditReversed struct {
	PartnerID int64  `json:"partnerId"`
	ChildID   int64  `json:"childId"`
	Amount    string `json:"amount"`
	Limit     string `json:"limit"`
}

// EventType implements store.Event.
func (CreditReversed) EventType() string { return "credit.reversed" }

// EventAccountID implements store.AccountEvent.
func (e CreditReversed) EventAccountID() int64 { return e.ChildID }

// LiveTopics implements store.LiveEvent.
func (e CreditReversed) LiveTopics() []string { return []string{accounts.AccountTopic(e.ChildID)} }

// ArrearsChanged is emitted when a customer's available credit crosses zero:
// Entered true when it went below 0 (arrears), false when it came back to
// 0 or more. The freeze logic consumes it (arrears suspension and recovery).
type ArrearsChanged struct {
	CustomerID int64  `json:"customerId"`
	Entered    bool   `json:"entered"`
	Available  string `json:"available"`
	Month      string `json:"month"`
}

// EventType implements store.Event.
func (e ArrearsChanged) EventType() string {
	if e.Entered {
		return "credit.arrears_entered"
	}
	return "credit.arrears_left"
}

// Queue puts arrears on the critical queue: a suspension must act at once.
func (ArrearsChanged) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e ArrearsChanged) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e ArrearsChanged) LiveTopics() []string { return []string{accounts.AccountTopic(e.CustomerID)} }
