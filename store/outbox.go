package store

import (
	"context"
	"fmt"
	"time"
)

// OutboxBacklog returns how many outbox rows wait for the relay and the age
// of the oldest, for metrics and alerts.
func (s *Store) OutboxBacklog(ctx context.Context) (int64, time.Duration, error) {
	var row struct {
		N      int64
		Oldest *time.Time
	}
	err := s.DB.WithContext(ctx).Raw(`SELECT count(*) AS n, min(created_at) AS oldest FROM outbox WHERE dispatched_at IS NULL`).Scan(&row).Error
	if err != nil {
		return 0, 0, fmt.Errorf("outbox backlog: %w", err)
	}
	var age time.Duration
	if row.Oldest != nil {
		age = s.Now().Sub(*row.Oldest)
	}
	return row.N, age, nil
}

// SettleOutbox marks outbox row id settled: its task has run its consumers
// (or was given up), so reconciliation leaves it alone.
func (s *Store) SettleOutbox(ctx context.Context, ids ...int64) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := s.SQL.ExecContext(ctx, `UPDATE outbox SET settled_at = now() WHERE id = ANY($1) AND settled_at IS NULL`, ids); err != nil {
		return fmt.Errorf("settle outbox rows %v: %w", ids, err)
	}
	return nil
}

// UnsettledOutbox is a dispatched outbox row whose task has not settled it.
type UnsettledOutbox struct {
	ID        int64
	EventType string
	Queue     string
	AccountID *int64
	Payload   []byte
	RequestID string
}

// UnsettledOutbox returns up to limit dispatched rows not settled and
// dispatched before olderThan ago, oldest first, after the row afterID (a
// keyset, so one sweep walks past rows whose tasks are still queued).
func (s *Store) UnsettledOutbox(ctx context.Context, olderThan time.Duration, afterID int64, limit int) ([]UnsettledOutbox, error) {
	rows, err := s.SQL.QueryContext(ctx, `
		SELECT id, event_type, queue, account_id, payload, request_id FROM outbox
		WHERE dispatched_at IS NOT NULL AND settled_at IS NULL
			AND dispatched_at < now() - make_interval(secs => $1) AND id > $2
		ORDER BY id LIMIT $3`, olderThan.Seconds(), afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list unsettled outbox rows: %w", err)
	}
	defer rows.Close()
	var out []UnsettledOutbox
	for rows.Next() {
		var r UnsettledOutbox
		if err := rows.Scan(&r.ID, &r.EventType, &r.Queue, &r.AccountID, &r.Payload, &r.RequestID); err != nil {
			return nil, fmt.Errorf("scan unsettled outbox row: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read unsettled outbox rows: %w", err)
	}
	return out, nil
}
