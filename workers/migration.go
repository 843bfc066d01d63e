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

	"partnerd/migration"
)

// Task types of migrations.
const (
	// TypeExecuteMigration runs an approved batch to its end (resumable:
	// a retried or duplicated task only continues it).
	TypeExecuteMigration = "migration:execute"
	// TypeSweepMigrations expires the batches whose pending step is past
	// due and makes sure every batch being executed has its task.
	TypeSweepMigrations = "migration:sweep"
)

// Migration is the glue between the migration service and the queue.
type Migration struct {
	svc    *migration.Service
	client *asynq.Client
	log    *slog.Logger
}

// NewMigration returns the glue of svc, enqueueing executions with client.
func NewMigration(svc *migration.Service, client *asynq.Client, log *slog.Logger) *Migration {
	if log == nil {
		log = slog.Default()
	}
	return &Migration{svc: svc, client: client, log: log.With("component", "migration")}
}

// Register adds the consumer of the final approval to reg: it enqueues the
// batch's execution.
func (w *Migration) Register(reg *Registry) {
	reg.On(migration.EventExecute, func(ctx context.Context, ev OutboxPayload) error {
		var e migration.Execute
		if err := json.Unmarshal(ev.Payload, &e); err != nil || e.MigrationID == 0 {
			return fmt.Errorf("decode %s: %v: %w", ev.EventType, err, asynq.SkipRetry)
		}
		return w.enqueue(ctx, e.MigrationID)
	})
}

// Handle adds the migration task handlers to mux.
func (w *Migration) Handle(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeExecuteMigration, func(ctx context.Context, t *asynq.Task) error {
		id, err := strconv.ParseInt(string(t.Payload()), 10, 64)
		if err != nil {
			return fmt.Errorf("migration id %q: %v: %w", t.Payload(), err, asynq.SkipRetry)
		}
		_, err = w.svc.ExecuteBatch(ctx, id)
		return err
	})
	mux.HandleFunc(TypeSweepMigrations, func(ctx context.Context, _ *asynq.Task) error {
		n, err := w.svc.SweepExpired(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			w.log.Info("migrations expired", "count", n)
		}
		ids, err := w.svc.Executing(ctx)
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

// enqueue enqueues the execution of batch id under one task ID per batch:
// while a task is queued or running another is not added.
func (w *Migration) enqueue(ctx context.Context, id int64) error {
	_, err := w.client.EnqueueContext(ctx, asynq.NewTask(TypeExecuteMigration, []byte(strconv.FormatInt(id, 10))),
		asynq.TaskID("migration-exec:"+strconv.FormatInt(id, 10)), asynq.Queue(QueueCritical), asynq.MaxRetry(50),
		asynq.Timeout(2*time.Hour))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		return fmt.Errorf("enqueue execution of migration %d: %w", id, err)
	}
	return nil
}

// MigrationEntries are the scheduler entries of migrations: the sweep, every
// minute.
func MigrationEntries() []Entry {
	return []Entry{{
		Name:  "migration-sweep",
		Every: time.Minute,
		Task:  func(time.Time) *asynq.Task { return asynq.NewTask(TypeSweepMigrations, nil) },
		Queue: QueueDefault,
	}}
}
