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

	"partnerd/credit"
	"partnerd/guard"
	"partnerd/notify"
)

// Task types of the guard's background work.
const (
	// TypeFreezeDue runs the freeze jobs (reminders, releases) that are
	// due. It is enqueued to run at each job's due time, as a wake-up, and
	// every minute by the scheduler: the jobs live in the database.
	TypeFreezeDue = "guard:freeze-due"
	// TypeSweepEnforcement is the backstop of overspend and arrears
	// enforcement.
	TypeSweepEnforcement = "guard:sweep-enforcement"
	// TypeSweepThresholds is the backstop of budget threshold alerts (and
	// the start of MONTHLY budgets' periods).
	TypeSweepThresholds = "guard:sweep-thresholds"
)

// Guard is the glue between the guard service and the queue: consumers of
// the events that change what a customer may buy, and the tasks of the
// freeze jobs and sweeps.
type Guard struct {
	svc    *guard.Service
	client *asynq.Client
	log    *slog.Logger
}

// NewGuard returns the glue of svc, enqueueing wake-ups with client.
func NewGuard(svc *guard.Service, client *asynq.Client, log *slog.Logger) *Guard {
	if log == nil {
		log = slog.Default()
	}
	return &Guard{svc: svc, client: client, log: log.With("component", "guard")}
}

// Register adds the guard's consumers to reg: a budget check (an ingestion
// crossed a threshold or the amount) evaluates the customer's budget
// (alerts, overspend action); arrears and exemption
// changes reconcile the arrears suspension; a freeze schedules the wake-ups
// of its release jobs.
func (g *Guard) Register(reg *Registry) {
	reg.On(guard.EventBudgetCheck, g.budgetCheck)
	reg.On(notify.EventArrearsEntered, g.arrearsChanged)
	reg.On(notify.EventArrearsLeft, g.arrearsChanged)
	reg.On(credit.EventExemptionSet, g.arrearsChanged)
	reg.On(notify.EventAccountFrozen, g.frozen)
}

// Handle adds the guard's task handlers to mux.
func (g *Guard) Handle(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeFreezeDue, func(ctx context.Context, _ *asynq.Task) error {
		_, err := g.svc.ProcessDue(ctx)
		return err
	})
	mux.HandleFunc(TypeSweepEnforcement, func(ctx context.Context, _ *asynq.Task) error {
		_, err := g.svc.SweepEnforcement(ctx)
		return err
	})
	mux.HandleFunc(TypeSweepThresholds, func(ctx context.Context, _ *asynq.Task) error {
		_, err := g.svc.SweepThresholds(ctx)
		return err
	})
}

// GuardEntries are the scheduler entries of the guard: the release sweep
// every minute, the overspend (and arrears) sweep every 30 seconds and the
// threshold sweep every 5 minutes — Beijing midnight is on a 5-minute
// boundary, so a new month's first sweep runs within seconds of it.
func GuardEntries() []Entry {
	task := func(typ string) func(time.Time) *asynq.Task {
		return func(time.Time) *asynq.Task { return asynq.NewTask(typ, nil) }
	}
	return []Entry{
		{Name: "release-sweep", Every: time.Minute, Task: task(TypeFreezeDue), Queue: QueueCritical},
		{Name: "overspend-sweep", Every: 30 * time.Second, Task: task(TypeSweepEnforcement), Queue: QueueCritical},
		{Name: "threshold-sweep", Every: 5 * time.Minute, Task: task(TypeSweepThresholds), Queue: QueueDefault},
	}
}

func (g *Guard) budgetCheck(ctx context.Context, ev OutboxPayload) error {
	var e guard.BudgetCheck
	if err := json.Unmarshal(ev.Payload, &e); err != nil {
		return fmt.Errorf("decode %s: %v: %w", ev.EventType, err, asynq.SkipRetry)
	}
	return g.svc.Evaluate(ctx, e.CustomerID)
}

func (g *Guard) arrearsChanged(ctx context.Context, ev OutboxPayload) error {
	var e struct {
		CustomerID int64 `json:"customerId"`
	}
	if err := json.Unmarshal(ev.Payload, &e); err != nil || e.CustomerID == 0 {
		return fmt.Errorf("decode %s: %v: %w", ev.EventType, err, asynq.SkipRetry)
	}
	return g.svc.ReconcileArrears(ctx, e.CustomerID)
}

// frozen enqueues one TypeFreezeDue wake-up per pending job of the frozen
// account, to run at the job's due time; the task ID names the job, so a
// replayed event enqueues nothing twice.
func (g *Guard) frozen(ctx context.Context, ev OutboxPayload) error {
	var e notify.AccountFrozen
	if err := json.Unmarshal(ev.Payload, &e); err != nil {
		return fmt.Errorf("decode %s: %v: %w", ev.EventType, err, asynq.SkipRetry)
	}
	if e.ReleaseAt == "" {
		return nil
	}
	jobs, err := g.svc.PendingJobs(ctx, e.AccountID)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		// asynq keeps the time of a scheduled task in whole seconds and may
		// run it up to a second early: wake up a second late instead.
		at := j.DueAt.Truncate(time.Second).Add(time.Second)
		_, err := g.client.EnqueueContext(ctx, asynq.NewTask(TypeFreezeDue, nil),
			asynq.TaskID("freeze-job:"+strconv.FormatInt(j.ID, 10)), asynq.ProcessAt(at),
			asynq.Queue(QueueCritical), asynq.Retention(24*time.Hour))
		if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
			return fmt.Errorf("enqueue wake-up of freeze job %d: %w", j.ID, err)
		}
	}
	return nil
}
