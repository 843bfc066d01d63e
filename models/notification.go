package models

import "time"

// Channel is a way a notification reaches a person (DOMAIN.md §7).
type Channel string

// The channels.
const (
	ChannelInSite Channel = "IN_SITE"
	ChannelEmail  Channel = "EMAIL"
	ChannelSMS    Channel = "SMS"
	// ChannelWebhook carries an event to a partner's webhook endpoint, not
	// to a person: it has no preferences and is not in AllChannels.
	ChannelWebhook Channel = "WEBHOOK"
)

// AllChannels lists every channel people are notified on, in the order the
// product shows them.
var AllChannels = []Channel{ChannelInSite, ChannelEmail, ChannelSMS}

// IsValid reports whether c is a channel people are notified on (one of
// AllChannels): the ones preferences choose between.
func (c Channel) IsValid() bool {
	return c == ChannelInSite || c == ChannelEmail || c == ChannelSMS
}

// DeliveryStatus is where a delivery stands.
type DeliveryStatus string

// The delivery statuses: PENDING waits for (another) attempt, SENDING has an
// attempt in flight, SENT and FAILED are final (a FAILED one can be resent).
const (
	DeliveryPending DeliveryStatus = "PENDING"
	DeliverySending DeliveryStatus = "SENDING"
	DeliverySent    DeliveryStatus = "SENT"
	DeliveryFailed  DeliveryStatus = "FAILED"
)

// IsValid reports whether s is a known status.
func (s DeliveryStatus) IsValid() bool {
	switch s {
	case DeliveryPending, DeliverySending, DeliverySent, DeliveryFailed:
		return true
	}
	return false
}

// Delivery is one notification to one recipient on one channel. Key is
// unique per (event, recipient, channel) and is the task ID of its queue task.
type Delivery struct {
	ID       int64 `gorm:"primaryKey"`
	Key      string
	OutboxID int64
	// EventAt is when the event was emitted: the month partition the
	// delivery and its attempts are stored in.
	EventAt      time.Time
	EventType    string
	Channel      Channel
	AccountID    int64
	UserID       *int64
	Address      string
	Locale       Locale
	Subject      string
	BodyText     string
	BodyHTML     string `gorm:"column:body_html"`
	Status       DeliveryStatus
	Generation   int
	Attempts     int
	ClaimedUntil *time.Time
	LastError    *string
	ProviderID   *string
	// EndpointID is the webhook endpoint of a WEBHOOK delivery.
	EndpointID *int64
	// RetryUntil is when a WEBHOOK delivery stops being retried.
	RetryUntil *time.Time
	CreatedAt  time.Time
	UpdatedAt  time.Time
	SentAt     *time.Time
}

// TableName is the deliveries table.
func (Delivery) TableName() string { return "deliveries" }

// DeliveryOutcome is how one attempt ended.
type DeliveryOutcome string

// The attempt outcomes. UNKNOWN: the worker stopped during the provider call,
// so whether the message went out is not known.
const (
	OutcomeSent    DeliveryOutcome = "SENT"
	OutcomeRetry   DeliveryOutcome = "RETRY"
	OutcomeFailed  DeliveryOutcome = "FAILED"
	OutcomeUnknown DeliveryOutcome = "UNKNOWN"
)

// DeliveryAttempt is one attempt at a delivery; Outcome is nil while it is in
// flight.
type DeliveryAttempt struct {
	ID         int64 `gorm:"primaryKey"`
	DeliveryID int64
	N          int
	Channel    Channel
	StartedAt  time.Time
	// EventAt is the delivery's EventAt: the attempt is stored in the same
	// month partition.
	EventAt    time.Time
	FinishedAt *time.Time
	Outcome    *DeliveryOutcome
	Response   string
}

// TableName is the delivery_attempts table.
func (DeliveryAttempt) TableName() string { return "delivery_attempts" }

// InboxMessage is an in-site message, for one user or (UserID nil) for every
// user of the account.
type InboxMessage struct {
	ID         int64 `gorm:"primaryKey"`
	DeliveryID int64
	AccountID  int64
	UserID     *int64
	EventType  string
	Subject    string
	Body       string
	ReadAt     *time.Time
	CreatedAt  time.Time
}

// TableName is the inbox_messages table.
func (InboxMessage) TableName() string { return "inbox_messages" }
