package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/bulk"
)

// Task types of bulk changes.
const (
	// TypeRunBulk applies an uploaded job's rows (resumable: a retried or
	// duplicated task only continues it, and never applies a row twice).
	TypeRunBulk = "bulk:run"
	// TypeSweepBulk makes sure every job not yet COMPLETED has its task.
	TypeSweepBulk = "bulk:sweep"
)

// Bulk is the glue between the bulk change service and the queue.
type Bulk struct {
	svc    *bulk.Service
	client *asynq.Client
	log    *slog.Logger
}

// NewBulk returns the glue of svc, enqueueing runs with client.
func NewBulk(svc *bulk.Service, client *asynq.Client, log *slog.Logger) *Bulk {
	if log == nil {
		log = slog.Default()
	}
	return &Bulk{svc: svc, client: client, log: log.With("component", "bulk")}
}

// Register adds the consumer of an upload to reg: it enqueues the job's run.
func (w *Bulk) Register(reg *Registry) {
	reg.On(bulk.EventQueued, func(ctx context.Context, ev OutboxPayload) error {
		var e bulk.Queued
		if err := json.Unmarshal(ev.Payload, &e); err != nil || e.JobID == 0 {
			return fmt.Errorf("decode %s: %v: %w", ev.EventType, err, asynq.SkipRetry)
		}
		return w.enqueue(ctx, e.JobID)
	})
}

// Handle adds the bulk change task handlers to mux.
func (w *Bulk) Handle(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeRunBulk, func(ctx context.Context, t *asynq.Task) error {
		id, err := strconv.ParseInt(string(t.Payload()), 10, 64)
		if err != nil {
			return fmt.Errorf("bulk job id %q: %v: %w", t.Payload(), err, asynq.SkipRetry)
		}
		_, err = w.svc.Run(ctx, id)
		return err
	})
	mux.HandleFunc(TypeSweepBulk, func(ctx context.Context, _ *asynq.Task) error {
		ids, err := w.svc.Open(ctx)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := w.enqueue(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
}

// enqueue enqueues the run of job id under one task ID per job: while a
// task is queued or running another is not added.
func (w *Bulk) enqueue(ctx context.Context, id int64) error {
	_, err := w.client.EnqueueContext(ctx, asynq.NewTask(TypeRunBulk, []byte(strconv.FormatInt(id, 10))),
		asynq.TaskID("bulk-run:"+strconv.FormatInt(id, 10)), asynq.Queue(QueueBulk), asynq.MaxRetry(50),
		asynq.Timeout(time.Hour))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue run of bulk job %d: %w", id, err)
	}
	return nil
}

// BulkEntries are the scheduler entries of bulk changes: the sweep, every
// minute.
func BulkEntries() []Entry {
	return []Entry{{
		Name:  "bulk-sweep",
		Every: time.Minute,
		Task:  func(time.Time) *asynq.Task { return asynq.NewTask(TypeSweepBulk, nil) },
		Queue: QueueDefault,
	}}
}
