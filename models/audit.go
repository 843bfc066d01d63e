package models

import (
	"encoding/json"
	"time"
)

// AuditEntry is one append-only record of a state change (DOMAIN.md §2).
type AuditEntry struct {
	ID          int64 `gorm:"primaryKey"`
	At          time.Time
	ActorUserID *int64
	Actor       string
	AccountID   *int64
	Action      string
	Before      json.RawMessage `gorm:"type:jsonb"`
	After       json.RawMessage `gorm:"type:jsonb"`
	RequestID   string
}

// TableName is the audit_log table.
func (AuditEntry) TableName() string { return "audit_log" }

// OutboxEvent is an event a committed change owes: a notification or a
// background step. The relay turns each row into one queue task.
type OutboxEvent struct {
	ID           int64 `gorm:"primaryKey"`
	EventType    string
	Queue        string
	AccountID    *int64
	Payload      json.RawMessage `gorm:"type:jsonb"`
	Topics       string
	RequestID    string
	CreatedAt    time.Time
	DispatchedAt *time.Time
}

// TableName is the outbox table.
func (OutboxEvent) TableName() string { return "outbox" }
