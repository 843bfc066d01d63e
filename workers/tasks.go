// Package workers runs partnerd's background work: the outbox relay that
// turns committed outbox rows into asynq tasks (and live events), the asynq
// server and handler mux that hand those events to the domain's consumers,
// and a small periodic scheduler that is safe to run in several processes.
package workers

import (
	"encoding/json"
	"time"
)

// Task types.
const (
	// TypeOutboxEvent is the task of one outbox row; its payload is an
	// OutboxPayload and its task ID is "outbox:<row id>".
	TypeOutboxEvent = "outbox:event"
)

// Queue names. Queues gives their priorities.
const (
	// QueueCritical carries work that must not wait behind anything else
	// (overspend enforcement, releasing resources).
	QueueCritical = "critical"
	// QueueDefault is the queue of events that name no other.
	QueueDefault = "default"
	// QueueNotifications carries e-mail and other notifications.
	QueueNotifications = "notifications"
	// QueueBulk carries large, patient work (bills, migrations, maintenance).
	QueueBulk = "bulk"
)

// DefaultTaskTimeout bounds one run of a task unless its enqueuer chose
// another timeout.
const DefaultTaskTimeout = 5 * time.Minute

// Queues returns the queues a worker serves with their weighted priorities:
// with every queue non-empty, critical gets 6/12 of the workers' attention,
// default 3/12, notifications 2/12 and bulk 1/12. It returns a new map on
// every call.
func Queues() map[string]int {
	return map[string]int{
		QueueCritical:      6,
		QueueDefault:       3,
		QueueNotifications: 2,
		QueueBulk:          1,
	}
}

// OutboxPayload is the payload of a TypeOutboxEvent task: one outbox row as
// the relay read it.
type OutboxPayload struct {
	// ID is the outbox row's ID.
	ID int64 `json:"id"`
	// EventType routes the event to its consumers ("account.updated").
	EventType string `json:"event_type"`
	// AccountID is the account the event is about, if any.
	AccountID *int64 `json:"account_id,omitempty"`
	// Payload is the event's JSON form, as store.Tx.Emit wrote it.
	Payload json.RawMessage `json:"payload"`
	// RequestID is the request that made the change, for the audit trail
	// of the changes the consumers make in turn.
	RequestID string `json:"request_id,omitempty"`
}
