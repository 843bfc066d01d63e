package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/store"
)

// TypeSweepOutbox re-enqueues dispatched outbox rows whose task is gone from
// Redis. It carries no payload.
const TypeSweepOutbox = "maintenance:sweep-outbox"

// Reconciliation defaults: a row or delivery is considered for
// re-enqueueing once it has waited DefaultReconcileAfter, and the sweeps run
// every DefaultReconcileEvery.
const (
	DefaultReconcileAfter = 5 * time.Minute
	DefaultReconcileEvery = time.Minute
)

// outboxSweepBatch is how many unsettled rows one query of the sweep reads;
// outboxSweepMax how many one sweep looks at, so a sweep over a large
// backlog ends (the next one goes on from the oldest again).
const (
	outboxSweepBatch = 1000
	outboxSweepMax   = 20_000
)

// Reconcile tunes the reconciliation of the database with Redis: Redis may
// lose tasks (a restart without persistence, a failover), the database never
// does, so sweeps find what the database still owes and enqueue it again
// under the same task IDs (a task that still exists refuses the duplicate).
type Reconcile struct {
	// After is how long a dispatched outbox row or an open delivery waits
	// before its task is presumed lost (default DefaultReconcileAfter).
	After time.Duration
	// Every is how often the scheduler runs the sweeps (default
	// DefaultReconcileEvery).
	Every time.Duration
}

func (r Reconcile) withDefaults() Reconcile {
	if r.After <= 0 {
		r.After = DefaultReconcileAfter
	}
	if r.Every <= 0 {
		r.Every = DefaultReconcileEvery
	}
	return r
}

// OutboxSweeper re-enqueues the tasks of dispatched, unsettled outbox rows
// that Redis no longer holds.
type OutboxSweeper struct {
	st     *store.Store
	client *asynq.Client
	insp   *asynq.Inspector
	log    *slog.Logger
	after  time.Duration
	opts   RelayOptions
}

// NewOutboxSweeper returns the outbox sweep: rows dispatched more than
// rc.After ago and not settled are looked up with insp and re-enqueued with
// client when their task is gone. opts gives the task options of the relay.
func NewOutboxSweeper(st *store.Store, client *asynq.Client, insp *asynq.Inspector, log *slog.Logger, rc Reconcile, opts RelayOptions) *OutboxSweeper {
	if log == nil {
		log = slog.Default()
	}
	return &OutboxSweeper{st: st, client: client, insp: insp, log: log.With("component", "outbox-sweep"),
		after: rc.withDefaults().After, opts: opts.withDefaults()}
}

// Handle adds the sweep's handler to mux.
func (s *OutboxSweeper) Handle(mux *asynq.ServeMux) { mux.HandleFunc(TypeSweepOutbox, s.handle) }

// ReconcileEntries are the scheduler entries of the outbox sweep and the
// delivery sweep, every rc.Every.
func ReconcileEntries(rc Reconcile) []Entry {
	rc = rc.withDefaults()
	return []Entry{
		// A failed sweep is not retried: the next period's sweeps again.
		{Name: "sweep-outbox", Every: rc.Every, Queue: QueueDefault,
			Task: func(time.Time) *asynq.Task { return asynq.NewTask(TypeSweepOutbox, nil, asynq.MaxRetry(0)) }},
		{Name: "sweep-deliveries", Every: rc.Every, Queue: QueueNotifications,
			Task: func(time.Time) *asynq.Task { return asynq.NewTask(TypeSweepDeliveries, nil, asynq.MaxRetry(0)) }},
	}
}

func (s *OutboxSweeper) handle(ctx context.Context, _ *asynq.Task) error {
	n, err := s.Sweep(ctx)
	if n > 0 {
		s.log.InfoContext(ctx, "re-enqueued outbox rows whose task was lost", "rows", n)
	}
	return err
}

// Sweep walks every dispatched, unsettled row older than the sweep's age:
// a row whose task is gone is enqueued again under its task ID; a row whose
// task completed (its settling failed) or was archived (given up after its
// retries; it waits in the dead-letter queue) is settled; a row whose task
// is still queued, retrying or running is left alone. It returns how many
// rows it re-enqueued.
func (s *OutboxSweeper) Sweep(ctx context.Context) (int, error) {
	var (
		after    int64
		requeued int
	)
	for seen := 0; seen < outboxSweepMax; seen += outboxSweepBatch {
		rows, err := s.st.UnsettledOutbox(ctx, s.after, after, outboxSweepBatch)
		if err != nil {
			return requeued, err
		}
		var settle []int64
		for _, r := range rows {
			after = r.ID
			queue := r.Queue
			if queue == "" {
				queue = QueueDefault
			}
			info, err := s.insp.GetTaskInfo(queue, OutboxTaskID(r.ID))
			switch {
			case errors.Is(err, asynq.ErrTaskNotFound), errors.Is(err, asynq.ErrQueueNotFound):
				row := outboxRow{OutboxPayload: OutboxPayload{ID: r.ID, EventType: r.EventType, AccountID: r.AccountID,
					Payload: json.RawMessage(r.Payload), RequestID: r.RequestID}, Queue: queue}
				fresh, err := enqueueOutbox(ctx, s.client, row, s.opts)
				if err != nil {
					return requeued, fmt.Errorf("re-enqueue outbox row %d: %w", r.ID, err)
				}
				if fresh {
					requeued++
				}
			case err != nil:
				return requeued, fmt.Errorf("look up the task of outbox row %d: %w", r.ID, err)
			case info.State == asynq.TaskStateCompleted:
				settle = append(settle, r.ID)
			case info.State == asynq.TaskStateArchived:
				s.log.WarnContext(ctx, "outbox task archived after its retries; settled, it waits in the dead-letter queue",
					"outbox_id", r.ID, "event_type", r.EventType, "last_error", info.LastErr)
				settle = append(settle, r.ID)
			}
		}
		if err := s.st.SettleOutbox(ctx, settle...); err != nil {
			return requeued, err
		}
		if len(rows) < outboxSweepBatch {
			return requeued, nil
		}
	}
	return requeued, nil
}
