package notify

import (
	"strconv"

	"partnerd/accounts"
)

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

// The event types of budgets, freezes and resource releases (DOMAIN.md §4).
const (
	EventBudgetThreshold   = "budget.threshold_crossed"
	EventAccountFrozen     = "account.frozen"
	EventAccountUnfrozen   = "account.unfrozen"
	EventReleaseReminder   = "resources.release_reminder"
	EventResourcesReleased = "resources.released"
)

// BudgetThresholdCrossed is emitted once per budget, period and threshold,
// when the customer's spend in the budget's period reaches Threshold percent
// of the budget (DOMAIN.md §4).
type BudgetThresholdCrossed struct {
	CustomerID int64 `json:"customerId"`
	BudgetID   int64 `json:"budgetId"`
	// BudgetType is MONTHLY or ONE_TIME.
	BudgetType string `json:"budgetType"`
	// Period is the Beijing-time month "YYYY-MM" of a MONTHLY budget, or,
	// for a ONE_TIME budget, the Beijing date "YYYY-MM-DD" it was set (it
	// counts from then on).
	Period    string `json:"period"`
	Threshold int    `json:"threshold"`
	// Spent and Amount are list-price amounts; UsedPercent has two decimals.
	Spent       string `json:"spent"`
	Amount      string `json:"amount"`
	UsedPercent string `json:"usedPercent"`
}

// EventType implements store.Event.
func (BudgetThresholdCrossed) EventType() string { return EventBudgetThreshold }

// EventAccountID implements store.AccountEvent.
func (e BudgetThresholdCrossed) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e BudgetThresholdCrossed) LiveTopics() []string {
	return []string{accounts.AccountTopic(e.CustomerID)}
}

// AccountFrozen is emitted when an account is frozen, or a frozen account's
// resources are stopped too. Mode is ACCOUNT or ACCOUNT_AND_RESOURCES; Reason
// is MANUAL, OVERSPEND, ARREARS or NEW_CUSTOMER; ReleaseAt (RFC 3339, UTC) is
// set with ACCOUNT_AND_RESOURCES: when the resources are released unless the
// account is unfrozen first.
type AccountFrozen struct {
	AccountID int64  `json:"accountId"`
	Mode      string `json:"mode"`
	Reason    string `json:"reason"`
	FrozenAt  string `json:"frozenAt"`
	ReleaseAt string `json:"releaseAt,omitempty"`
	// Resources is how many running resources were stopped.
	Resources int `json:"resources"`
}

// EventType implements store.Event.
func (AccountFrozen) EventType() string { return EventAccountFrozen }

// Queue puts freezes on the critical queue: their consumer schedules the
// release of the resources.
func (AccountFrozen) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e AccountFrozen) EventAccountID() int64 { return e.AccountID }

// LiveTopics implements store.LiveEvent.
func (e AccountFrozen) LiveTopics() []string { return []string{accounts.AccountTopic(e.AccountID)} }

// AccountUnfrozen is emitted when a frozen account becomes ACTIVE again:
// by its partner, or Automatic when an arrears suspension ends. Reason is the
// reason it had been frozen for; Resources is how many stopped resources
// were started again.
type AccountUnfrozen struct {
	AccountID int64  `json:"accountId"`
	Reason    string `json:"reason"`
	Automatic bool   `json:"automatic"`
	Resources int    `json:"resources"`
}

// EventType implements store.Event.
func (AccountUnfrozen) EventType() string { return EventAccountUnfrozen }

// EventAccountID implements store.AccountEvent.
func (e AccountUnfrozen) EventAccountID() int64 { return e.AccountID }

// LiveTopics implements store.LiveEvent.
func (e AccountUnfrozen) LiveTopics() []string { return []string{accounts.AccountTopic(e.AccountID)} }

// ReleaseReminder is emitted DaysLeft days before a FROZEN_WITH_RESOURCES
// account's resources are released (3 and 1, DOMAIN.md §4). ReleaseAt is
// RFC 3339, UTC.
type ReleaseReminder struct {
	AccountID int64  `json:"accountId"`
	ReleaseAt string `json:"releaseAt"`
	DaysLeft  int    `json:"daysLeft"`
	Resources int    `json:"resources"`
}

// EventType implements store.Event.
func (ReleaseReminder) EventType() string { return EventReleaseReminder }

// EventAccountID implements store.AccountEvent.
func (e ReleaseReminder) EventAccountID() int64 { return e.AccountID }

// ResourcesReleased is emitted when a FROZEN_WITH_RESOURCES account reached
// its release time: its resources were released and its data deleted,
// irreversibly. ReleasedAt is RFC 3339, UTC.
type ResourcesReleased struct {
	AccountID  int64  `json:"accountId"`
	ReleasedAt string `json:"releasedAt"`
	Resources  int    `json:"resources"`
}

// EventType implements store.Event.
func (ResourcesReleased) EventType() string { return EventResourcesReleased }

// Queue puts releases on the critical queue.
func (ResourcesReleased) Queue() string { return "critical" }

// EventAccountID implements store.AccountEvent.
func (e ResourcesReleased) EventAccountID() int64 { return e.AccountID }

// LiveTopics implements store.LiveEvent.
func (e ResourcesReleased) LiveTopics() []string {
	return []string{accounts.AccountTopic(e.AccountID)}
}

// EventGroupChanged is the type of GroupChanged.
const EventGroupChanged = "group.changed"

// The changes a GroupChanged tells of.
const (
	GroupCreated       = "CREATED"
	GroupMemberAdded   = "MEMBER_ADDED"
	GroupMemberRemoved = "MEMBER_REMOVED"
	GroupDeleted       = "DELETED"
)

// GroupChanged tells one customer that its membership in a billing group
// (Kind GROUP) or a savings-plan shared unit (SHARING_UNIT) of its partner
// changed: created with it, it was added or removed, or the set was deleted.
type GroupChanged struct {
	AccountID int64  `json:"accountId"`
	PartnerID int64  `json:"partnerId"`
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Change    string `json:"change"`
}

// EventType implements store.Event.
func (GroupChanged) EventType() string { return EventGroupChanged }

// EventAccountID implements store.AccountEvent.
func (e GroupChanged) EventAccountID() int64 { return e.AccountID }

// The event types of invitations.
const (
	EventInvitationSent     = "invitation.sent"
	EventInvitationAnswered = "invitation.answered"
)

// InvitationSent carries a partner's invitation to the users of a PERSONAL
// account: AcceptURL holds the token (PUBLIC_URL/invitations/accept?token=),
// valid until ExpiresAt (RFC 3339, UTC).
type InvitationSent struct {
	InvitationID int64  `json:"invitationId"`
	PartnerID    int64  `json:"partnerId"`
	AccountID    int64  `json:"accountId"`
	Token        string `json:"token"`
	AcceptURL    string `json:"acceptUrl"`
	ExpiresAt    string `json:"expiresAt"`
}

// EventType implements store.Event.
func (InvitationSent) EventType() string { return EventInvitationSent }

// EventAccountID implements store.AccountEvent.
func (e InvitationSent) EventAccountID() int64 { return e.AccountID }

// InvitationAnswered tells the inviting partner that the invited account
// accepted (it is now its CUSTOMER, frozen until a budget is set and it is
// unfrozen) or declined.
type InvitationAnswered struct {
	InvitationID int64 `json:"invitationId"`
	PartnerID    int64 `json:"partnerId"`
	AccountID    int64 `json:"accountId"`
	Accepted     bool  `json:"accepted"`
}

// EventType implements store.Event.
func (InvitationAnswered) EventType() string { return EventInvitationAnswered }

// EventAccountID implements store.AccountEvent.
func (e InvitationAnswered) EventAccountID() int64 { return e.PartnerID }

// EventUnbindingChanged is the type of UnbindingChanged.
const EventUnbindingChanged = "unbinding.changed"

// UnbindingChanged tells a customer and its partner where the customer's
// unbinding stands: REQUESTED (by RequestedBy, PARTNER or CUSTOMER),
// COMPLETED (it is a personal account now), REJECTED or LAPSED.
type UnbindingChanged struct {
	UnbindingID int64  `json:"unbindingId"`
	CustomerID  int64  `json:"customerId"`
	PartnerID   int64  `json:"partnerId"`
	Status      string `json:"status"`
	RequestedBy string `json:"requestedBy"`
	Reason      string `json:"reason,omitempty"`
}

// EventType implements store.Event.
func (UnbindingChanged) EventType() string { return EventUnbindingChanged }

// EventAccountID implements store.AccountEvent.
func (e UnbindingChanged) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e UnbindingChanged) LiveTopics() []string { return []string{accounts.AccountTopic(e.CustomerID)} }

// The event types of sub-customer migrations (DOMAIN.md §6).
const (
	EventMigrationChanged           = "migration.changed"
	EventMigrationApprovalRequested = "migration.approval_requested"
	EventMigrationCustomerMigrated  = "migration.customer_migrated"
)

// MigrationTopic is the live topic of a migration batch's changes
// (migrationUpdated subscribers).
func MigrationTopic(id int64) string { return "migration:" + strconv.FormatInt(id, 10) }

// MigrationChanged tells the parties of a migration batch that it moved to
// Status by Action (SUBMITTED, APPROVED, REJECTED, CANCELLED, EXPIRED,
// COMPLETED). DistributorID is the receiver's distributor (0 when the
// receiver is a tier-1 partner); SourceTold is whether the source is a party
// yet (not before the distributor approved). The approver whose turn it now
// is gets MigrationApprovalRequested instead.
type MigrationChanged struct {
	MigrationID   int64  `json:"migrationId"`
	ReceiverID    int64  `json:"receiverId"`
	SourceID      int64  `json:"sourceId"`
	DistributorID int64  `json:"distributorId,omitempty"`
	Status        string `json:"status"`
	Action        string `json:"action"`
	Reason        string `json:"reason,omitempty"`
	SourceTold    bool   `json:"sourceTold"`
	Customers     int    `json:"customers"`
	Migrated      int    `json:"migrated"`
	Failed        int    `json:"failed"`
	URL           string `json:"url"`
	// SourceAcknowledged: the source has approved, acknowledging the data
	// transfer statement; until then its name is kept from the other side.
	SourceAcknowledged bool `json:"sourceAcknowledged,omitempty"`
}

// EventType implements store.Event.
func (MigrationChanged) EventType() string { return EventMigrationChanged }

// Undisclosed implements Discloser: until the source has approved, the
// receiver's side learns neither the source's name nor the receiver's
// distributor's by the source's side.
func (e MigrationChanged) Undisclosed() []int64 {
	return migrationUndisclosed(e.SourceAcknowledged, e.SourceID, e.DistributorID)
}

func migrationUndisclosed(acknowledged bool, ids ...int64) []int64 {
	if acknowledged {
		return nil
	}
	var out []int64
	for _, id := range ids {
		if id != 0 {
			out = append(out, id)
		}
	}
	return out
}

// EventAccountID implements store.AccountEvent.
func (e MigrationChanged) EventAccountID() int64 { return e.ReceiverID }

// LiveTopics implements store.LiveEvent.
func (e MigrationChanged) LiveTopics() []string { return []string{MigrationTopic(e.MigrationID)} }

// MigrationApprovalRequested tells the approver whose turn it is (the
// receiver's distributor, the source, or — ApproverID 0 — the platform's
// reviewers) that a migration batch awaits its approval until DueAt.
type MigrationApprovalRequested struct {
	MigrationID int64  `json:"migrationId"`
	ApproverID  int64  `json:"approverId,omitempty"`
	ReceiverID  int64  `json:"receiverId"`
	SourceID    int64  `json:"sourceId"`
	Status      string `json:"status"`
	Customers   int    `json:"customers"`
	Credit      string `json:"credit"`
	DueAt       string `json:"dueAt"`
	URL         string `json:"url"`
	// SourceAcknowledged: as in MigrationChanged.
	SourceAcknowledged bool `json:"sourceAcknowledged,omitempty"`
}

// EventType implements store.Event.
func (MigrationApprovalRequested) EventType() string { return EventMigrationApprovalRequested }

// Undisclosed implements Discloser: the source's name, until it approves.
func (e MigrationApprovalRequested) Undisclosed() []int64 {
	return migrationUndisclosed(e.SourceAcknowledged, e.SourceID)
}

// EventAccountID implements store.AccountEvent.
func (e MigrationApprovalRequested) EventAccountID() int64 { return e.ReceiverID }

// MigrationCustomerMigrated tells a customer that it moved from SourceID to
// ReceiverID at EffectiveAt with Credit allocated by its new partner.
type MigrationCustomerMigrated struct {
	MigrationID int64  `json:"migrationId"`
	CustomerID  int64  `json:"customerId"`
	SourceID    int64  `json:"sourceId"`
	ReceiverID  int64  `json:"receiverId"`
	Credit      string `json:"credit"`
	EffectiveAt string `json:"effectiveAt"`
}

// EventType implements store.Event.
func (MigrationCustomerMigrated) EventType() string { return EventMigrationCustomerMigrated }

// EventAccountID implements store.AccountEvent.
func (e MigrationCustomerMigrated) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent: the batch's subscribers follow its
// progress, the customer's its move.
func (e MigrationCustomerMigrated) LiveTopics() []string {
	return []string{MigrationTopic(e.MigrationID), accounts.AccountTopic(e.CustomerID)}
}

// The event types of billing (DOMAIN.md §5).
const (
	EventBillIssued    = "billing.bill_issued"
	EventPayoutApplied = "billing.payout_applied"
	EventPayoutDecided = "billing.payout_decided"
)

// BillIssued tells a partner that its bill of Month is issued: final, the
// settlement basis with SettlesWithID. Amounts are fixed to 2 decimals for
// display; Adjustments is the actual amount of records of earlier months
// that arrived after their bills.
type BillIssued struct {
	BillID        int64  `json:"billId"`
	PartnerID     int64  `json:"partnerId"`
	SettlesWithID int64  `json:"settlesWithId"`
	Month         string `json:"month"`
	ListTotal     string `json:"listTotal"`
	ActualTotal   string `json:"actualTotal"`
	Adjustments   string `json:"adjustments"`
	URL           string `json:"url"`
}

// EventType implements store.Event.
func (BillIssued) EventType() string { return EventBillIssued }

// EventAccountID implements store.AccountEvent.
func (e BillIssued) EventAccountID() int64 { return e.PartnerID }

// PayoutChanged tells of an incentive payout: APPLIED (the platform's
// reviewers are asked), APPROVED or REJECTED with Reason (the partner is
// told).
type PayoutChanged struct {
	IncentiveID int64  `json:"incentiveId"`
	PartnerID   int64  `json:"partnerId"`
	Month       string `json:"month"`
	Amount      string `json:"amount"`
	Status      string `json:"status"`
	Reason      string `json:"reason,omitempty"`
	URL         string `json:"url"`
}

// EventType implements store.Event: the reviewers are asked
// (EventPayoutApplied) and the partner told (EventPayoutDecided) by two
// event types, so each chooses its channels apart.
func (e PayoutChanged) EventType() string {
	if e.Status == "APPLIED" {
		return EventPayoutApplied
	}
	return EventPayoutDecided
}

// EventAccountID implements store.AccountEvent.
func (e PayoutChanged) EventAccountID() int64 { return e.PartnerID }

// The event types of vouchers (issue 13).
const (
	EventVoucherQuotaLow          = "voucher.quota_low"
	EventVoucherQuotaExpired      = "voucher.quota_expired"
	EventVoucherExpiring          = "voucher.expiring"
	EventVoucherExpired           = "voucher.expired"
	EventVoucherIssuanceRequested = "voucher.issuance_requested"
	EventVoucherIssuanceDecided   = "voucher.issuance_decided"
)

// VoucherQuotaLow tells a partner that the remaining voucher quota of its
// pool (quota less what it allocated to its resellers and issued) fell below
// 10% of its quota. ExpiresAt (RFC 3339, UTC) is when the quota expires, if
// it does.
type VoucherQuotaLow struct {
	PartnerID int64  `json:"partnerId"`
	Quota     string `json:"quota"`
	Remaining string `json:"remaining"`
	ExpiresAt string `json:"expiresAt,omitempty"`
}

// EventType implements store.Event.
func (VoucherQuotaLow) EventType() string { return EventVoucherQuotaLow }

// EventAccountID implements store.AccountEvent.
func (e VoucherQuotaLow) EventAccountID() int64 { return e.PartnerID }

// LiveTopics implements store.LiveEvent.
func (e VoucherQuotaLow) LiveTopics() []string { return []string{accounts.AccountTopic(e.PartnerID)} }

// VoucherQuotaExpired tells a partner that its voucher quota expired at
// ExpiredAt (RFC 3339, UTC); Unused is what was left unissued.
type VoucherQuotaExpired struct {
	PartnerID int64  `json:"partnerId"`
	ExpiredAt string `json:"expiredAt"`
	Unused    string `json:"unused"`
}

// EventType implements store.Event.
func (VoucherQuotaExpired) EventType() string { return EventVoucherQuotaExpired }

// EventAccountID implements store.AccountEvent.
func (e VoucherQuotaExpired) EventAccountID() int64 { return e.PartnerID }

// LiveTopics implements store.LiveEvent.
func (e VoucherQuotaExpired) LiveTopics() []string {
	return []string{accounts.AccountTopic(e.PartnerID)}
}

// VoucherExpiring reminds a customer that a voucher IssuerID issued to it,
// with Remaining left, expires at ExpiresAt (RFC 3339, UTC), in DaysLeft
// whole days (7 by default).
type VoucherExpiring struct {
	VoucherID  int64 `json:"voucherId"`
	CustomerID int64 `json:"customerId"`
	IssuerID   int64 `json:"issuerId"`
	// Name is the name of the voucher's template.
	Name      string `json:"name"`
	Remaining string `json:"remaining"`
	ExpiresAt string `json:"expiresAt"`
	DaysLeft  int    `json:"daysLeft"`
}

// EventType implements store.Event.
func (VoucherExpiring) EventType() string { return EventVoucherExpiring }

// EventAccountID implements store.AccountEvent.
func (e VoucherExpiring) EventAccountID() int64 { return e.CustomerID }

// VoucherExpired tells a customer that a voucher IssuerID issued to it
// expired at ExpiredAt (RFC 3339, UTC) with Unused left unused.
type VoucherExpired struct {
	VoucherID  int64 `json:"voucherId"`
	CustomerID int64 `json:"customerId"`
	IssuerID   int64 `json:"issuerId"`
	// Name is the name of the voucher's template.
	Name      string `json:"name"`
	Unused    string `json:"unused"`
	ExpiredAt string `json:"expiredAt"`
}

// EventType implements store.Event.
func (VoucherExpired) EventType() string { return EventVoucherExpired }

// EventAccountID implements store.AccountEvent.
func (e VoucherExpired) EventAccountID() int64 { return e.CustomerID }

// LiveTopics implements store.LiveEvent.
func (e VoucherExpired) LiveTopics() []string { return []string{accounts.AccountTopic(e.CustomerID)} }

// VoucherIssuanceRequested asks a distributor to approve its second-level
// reseller's issue of vouchers of Template to Customers customers, FaceValue
// each (FaceTotal in all): more than the Threshold the distributor set.
type VoucherIssuanceRequested struct {
	IssuanceID    int64  `json:"issuanceId"`
	ResellerID    int64  `json:"resellerId"`
	DistributorID int64  `json:"distributorId"`
	Template      string `json:"template"`
	Customers     int    `json:"customers"`
	FaceValue     string `json:"faceValue"`
	FaceTotal     string `json:"faceTotal"`
	Threshold     string `json:"threshold"`
}

// EventType implements store.Event.
func (VoucherIssuanceRequested) EventType() string { return EventVoucherIssuanceRequested }

// EventAccountID implements store.AccountEvent.
func (e VoucherIssuanceRequested) EventAccountID() int64 { return e.ResellerID }

// VoucherIssuanceDecided tells a second-level reseller that its distributor
// approved its issue of vouchers of Template (Issued vouchers were issued) or
// rejected it (with Reason).
type VoucherIssuanceDecided struct {
	IssuanceID    int64  `json:"issuanceId"`
	ResellerID    int64  `json:"resellerId"`
	DistributorID int64  `json:"distributorId"`
	Template      string `json:"template"`
	Approved      bool   `json:"approved"`
	Issued        int    `json:"issued"`
	Reason        string `json:"reason,omitempty"`
}

// EventType implements store.Event.
func (VoucherIssuanceDecided) EventType() string { return EventVoucherIssuanceDecided }

// EventAccountID implements store.AccountEvent.
func (e VoucherIssuanceDecided) EventAccountID() int64 { return e.ResellerID }

// LiveTopics implements store.LiveEvent: an approved issue charged the
// reseller's pool.
func (e VoucherIssuanceDecided) LiveTopics() []string {
	return []string{accounts.AccountTopic(e.ResellerID)}
}
