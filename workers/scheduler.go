package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/store"
)

// Entry is one periodic task of a Scheduler.
type Entry struct {
	// Name identifies the entry; with the period it makes the task ID, so it
	// must be the same in every process and unique among entries.
	Name string
	// Every is the period; periods start at multiples of Every since the
	// zero time (time.Time.Truncate), e.g. on the hour for time.Hour.
	Every time.Duration
	// Task builds the task of the period that starts at period.
	Task func(period time.Time) *asynq.Task
	// Queue is the task's queue (default QueueDefault).
	Queue string
	// Timeout bounds one run of the task (default DefaultTaskTimeout).
	Timeout time.Duration
}

// Scheduler enqueues each entry's task once per period. Several schedulers
// (one per process) may run at once: the task ID names the entry and the
// period, so the second enqueue of a period conflicts and is ignored.
type Scheduler struct {
	client  *asynq.Client
	entries []Entry
	clock   store.Clock
	log     *slog.Logger

	mu   sync.Mutex
	last map[string]time.Time // the last period enqueued (or found enqueued) per entry
}

// NewScheduler returns a scheduler of entries enqueueing with client and
// reading the time from clock (store.SystemClock{} if nil). Entries without
// a name, a positive period or a task are skipped with an error log.
func NewScheduler(client *asynq.Client, entries []Entry, clock store.Clock, log *slog.Logger) *Scheduler {
	if clock == nil {
		clock = store.SystemClock{}
	}
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "scheduler")
	valid := make([]Entry, 0, len(entries))
	for _, e := range entries {
		if e.Name == "" || e.Every <= 0 || e.Task == nil {
			log.Error("invalid scheduler entry skipped", "name", e.Name, "every", e.Every)
			continue
		}
		valid = append(valid, e)
	}
	return &Scheduler{client: client, entries: valid, clock: clock, log: log, last: map[string]time.Time{}}
}

// Run ticks every second until ctx ends, then returns nil. Its first tick
// enqueues each entry's current period (ignored if another scheduler already
// did).
func (s *Scheduler) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		if err := s.Tick(ctx, s.clock.Now()); err != nil && ctx.Err() == nil {
			s.log.Error("scheduler tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Tick enqueues the task of every entry whose period containing now has not
// been enqueued by this scheduler yet. A failed enqueue is returned and
// tried again on the next tick.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, e := range s.entries {
		period := now.Truncate(e.Every).UTC()
		if last, ok := s.last[e.Name]; ok && !period.After(last) {
			continue
		}
		fresh, err := s.enqueue(ctx, e, period)
		if err != nil {
			errs = append(errs, fmt.Errorf("schedule %s for %s: %w", e.Name, period.Format(time.RFC3339), err))
			continue
		}
		s.last[e.Name] = period
		if fresh {
			s.log.Info("scheduled task", "name", e.Name, "period", period)
		} else {
			s.log.Debug("period already scheduled", "name", e.Name, "period", period)
		}
	}
	return errors.Join(errs...)
}

// enqueue enqueues e's task for period and reports whether this call
// enqueued it (false: another scheduler did).
func (s *Scheduler) enqueue(ctx context.Context, e Entry, period time.Time) (bool, error) {
	task := e.Task(period)
	if task == nil {
		return false, fmt.Errorf("entry returned no task")
	}
	queue := e.Queue
	if queue == "" {
		queue = QueueDefault
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultTaskTimeout
	}
	_, err := s.client.EnqueueContext(ctx, task,
		asynq.TaskID(PeriodTaskID(e.Name, period)),
		asynq.Queue(queue),
		asynq.Retention(max(2*e.Every, time.Minute)),
		asynq.Timeout(timeout),
	)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// PeriodTaskID is the task ID of the named entry's period starting at period.
func PeriodTaskID(name string, period time.Time) string {
	return name + ":" + period.UTC().Format(time.RFC3339)
}
