package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"

	"partnerd/models"
)

// Event is something a committed change owes: a notification, a background
// step or a live update. Its JSON form is the outbox payload.
type Event interface {
	// EventType names the event ("account.updated"); workers route on it.
	EventType() string
}

// QueuedEvent chooses the task queue of its background work (default "default").
type QueuedEvent interface{ Queue() string }

// AccountEvent names the account an event is about, for scoping and partitioning.
type AccountEvent interface{ EventAccountID() int64 }

// LiveEvent lists the live topics the event is published on for GraphQL
// subscribers once its transaction has committed.
type LiveEvent interface{ LiveTopics() []string }

// maxTxAttempts bounds the retries of a transaction that failed on a
// serialization failure or a deadlock.
const maxTxAttempts = 6

// Tx is one database transaction of a change. Domain code reads and writes
// through Tx.DB, locks what it guards, and records Audit and Emit rows that
// commit with the change or not at all.
type Tx struct {
	// DB is the gorm handle bound to the transaction and its context.
	DB       *gorm.DB
	ctx      context.Context
	store    *Store
	notified bool
}

// Context is the context of the transaction.
func (tx *Tx) Context() context.Context { return tx.ctx }

// Now is the store clock's time.
func (tx *Tx) Now() time.Time { return tx.store.Now() }

// InTx runs fn in one transaction and commits if it returns nil. It retries
// the whole function (bounded, with jitter) on serialization failures and
// deadlocks, so fn must be safe to run again: keep side effects outside the
// database in the outbox.
func (s *Store) InTx(ctx context.Context, fn func(tx *Tx) error) error {
	var err error
	for attempt := 1; attempt <= maxTxAttempts; attempt++ {
		err = s.DB.WithContext(ctx).Transaction(func(gtx *gorm.DB) error {
			return fn(&Tx{DB: gtx, ctx: ctx, store: s})
		})
		if err == nil || !IsRetryable(err) || ctx.Err() != nil {
			return err
		}
		backoff := time.Duration(attempt*attempt)*5*time.Millisecond + time.Duration(rand.IntN(10))*time.Millisecond
		s.log.Debug("retrying transaction", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
	return fmt.Errorf("transaction failed after %d attempts: %w", maxTxAttempts, err)
}

// IsRetryable reports whether err is a serialization failure or a deadlock
// that a retry of the whole transaction may resolve.
func IsRetryable(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && (pg.Code == "40001" || pg.Code == "40P01")
}

// PgCode returns the SQLSTATE of err, or "".
func PgCode(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.Code
	}
	return ""
}

// PgConstraint returns the constraint a PostgreSQL error names, or "".
func PgConstraint(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return pg.ConstraintName
	}
	return ""
}

// Audit appends an audit entry for a change to accountID (0 for none), with
// summaries of the state before and after. It is written in the transaction,
// so it exists exactly when the change does.
func (tx *Tx) Audit(action string, accountID int64, before, after any) error {
	actor := ActorFrom(tx.ctx)
	entry := models.AuditEntry{
		At:        tx.Now(),
		Actor:     actor.Label,
		Action:    action,
		RequestID: RequestID(tx.ctx),
	}
	if actor.UserID != 0 {
		entry.ActorUserID = &actor.UserID
	}
	if accountID != 0 {
		entry.AccountID = &accountID
	}
	var err error
	if entry.Before, err = summary(before); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	if entry.After, err = summary(after); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	if err := tx.DB.Create(&entry).Error; err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

func summary(v any) (json.RawMessage, error) {
	if v == nil {
		return nil, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// Emit writes an outbox row for each event, in one statement. The rows
// commit with the change; the relay turns each into exactly one queue task
// after the commit.
func (tx *Tx) Emit(evs ...Event) error {
	_, err := tx.EmitIDs(evs...)
	return err
}

// EmitIDs is Emit, returning the outbox IDs of the events' rows in order.
func (tx *Tx) EmitIDs(evs ...Event) ([]int64, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	rows := make([]models.OutboxEvent, len(evs))
	for i, ev := range evs {
		payload, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("emit %s: %w", ev.EventType(), err)
		}
		row := models.OutboxEvent{
			EventType: ev.EventType(),
			Queue:     "default",
			Payload:   payload,
			RequestID: RequestID(tx.ctx),
			CreatedAt: tx.Now(),
		}
		if q, ok := ev.(QueuedEvent); ok && q.Queue() != "" {
			row.Queue = q.Queue()
		}
		if a, ok := ev.(AccountEvent); ok && a.EventAccountID() != 0 {
			id := a.EventAccountID()
			row.AccountID = &id
		}
		if l, ok := ev.(LiveEvent); ok {
			row.Topics = strings.Join(l.LiveTopics(), " ")
		}
		rows[i] = row
	}
	if err := tx.DB.CreateInBatches(rows, emitBatch).Error; err != nil {
		return nil, fmt.Errorf("emit %d events (%s first): %w", len(evs), evs[0].EventType(), err)
	}
	if !tx.notified {
		// NOTIFY is transactional: the relay wakes only once the rows are visible.
		if err := tx.DB.Exec("SELECT pg_notify(?, '')", OutboxChannel).Error; err != nil {
			return nil, fmt.Errorf("emit %s: notify: %w", evs[0].EventType(), err)
		}
		tx.notified = true
	}
	ids := make([]int64, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

// emitBatch bounds the rows of one outbox INSERT.
const emitBatch = 1000
