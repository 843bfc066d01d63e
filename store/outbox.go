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
