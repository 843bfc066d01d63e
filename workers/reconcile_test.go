package workers

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// settled reports which of ids have settled_at set.
func (e *env) settled(ctx context.Context, ids ...int64) []bool {
	e.t.Helper()
	out := make([]bool, len(ids))
	for i, id := range ids {
		if err := e.st.SQL.QueryRowContext(ctx, `SELECT settled_at IS NOT NULL FROM outbox WHERE id = $1`, id).Scan(&out[i]); err != nil {
			e.t.Fatalf("settled %d: %v", id, err)
		}
	}
	return out
}

// Redis loses the tasks of dispatched rows (a restart without persistence):
// the sweep enqueues them again under the same IDs, settles the rows whose
// task completed or was archived, and leaves queued tasks alone.
func TestOutboxSweepReenqueuesLostTasks(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.emit(ctx, testEvent{N: 1}, testEvent{N: 2}, testEvent{N: 3, Q: QueueCritical})
	ids := e.rowIDs(ctx)
	relay := NewRelay(e.st, e.client, nil, e.log, RelayOptions{})
	if n, err := relay.RelayOnce(ctx); err != nil || n != 3 {
		t.Fatalf("RelayOnce = %d, %v", n, err)
	}
	if got := e.settled(ctx, ids...); got[0] || got[1] || got[2] {
		t.Fatalf("rows with tasks settled at dispatch: %v", got)
	}
	sweeper := NewOutboxSweeper(e.st, e.client, e.insp, e.log, Reconcile{After: time.Nanosecond}, RelayOptions{})

	// Tasks still queued: nothing to do.
	if n, err := sweeper.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep with every task queued = %d, %v; want 0", n, err)
	}

	// Redis loses them all.
	for _, q := range []string{QueueDefault, QueueCritical} {
		if _, err := e.insp.DeleteAllPendingTasks(q); err != nil {
			t.Fatal(err)
		}
	}
	if e.tasks() != 0 {
		t.Fatalf("%d tasks left after the loss", e.tasks())
	}
	if n, err := sweeper.Sweep(ctx); err != nil || n != 3 {
		t.Fatalf("Sweep after the loss = %d, %v; want 3", n, err)
	}
	def, crit := e.pending(QueueDefault), e.pending(QueueCritical)
	if len(def) != 2 || len(crit) != 1 || def[0].ID != OutboxTaskID(ids[0]) || def[1].ID != OutboxTaskID(ids[1]) || crit[0].ID != OutboxTaskID(ids[2]) {
		t.Fatalf("re-enqueued tasks default=%v critical=%v, want the rows' own IDs in their queues", def, crit)
	}
	if def[0].Type != TypeOutboxEvent || def[0].MaxRetry != outboxMaxRetry || def[0].Retention != 24*time.Hour {
		t.Fatalf("re-enqueued task options: %+v", def[0])
	}
	// A second sweep finds the tasks back: nothing twice.
	if n, err := sweeper.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("second Sweep = %d, %v; want 0", n, err)
	}

	// Row 0's task runs: the handler settles it.
	if err := NewMux(NewRegistry(), e.st, e.log).ProcessTask(ctx, asynq.NewTask(TypeOutboxEvent, def[0].Payload)); err != nil {
		t.Fatalf("run task: %v", err)
	}
	// Row 1's task is archived (given up after its retries): the sweep
	// settles it and leaves it in the dead-letter queue.
	if err := e.insp.ArchiveTask(QueueDefault, OutboxTaskID(ids[1])); err != nil {
		t.Fatal(err)
	}
	if n, err := sweeper.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep after archiving = %d, %v; want 0", n, err)
	}
	if got := e.settled(ctx, ids...); !got[0] || !got[1] || got[2] {
		t.Fatalf("settled = %v, want [true true false]: run, archived, still queued", got)
	}
	if info, err := e.insp.GetTaskInfo(QueueDefault, OutboxTaskID(ids[1])); err != nil || info.State != asynq.TaskStateArchived {
		t.Fatalf("archived task: %v, %v", info, err)
	}
}

// A row younger than After is not looked at: its task may be on its way.
func TestOutboxSweepWaitsForAfter(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.emit(ctx, testEvent{N: 1})
	if n, err := NewRelay(e.st, e.client, nil, e.log, RelayOptions{}).RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("RelayOnce = %d, %v", n, err)
	}
	if _, err := e.insp.DeleteAllPendingTasks(QueueDefault); err != nil {
		t.Fatal(err)
	}
	sweeper := NewOutboxSweeper(e.st, e.client, e.insp, e.log, Reconcile{After: time.Hour}, RelayOptions{})
	if n, err := sweeper.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("Sweep of a fresh row = %d, %v; want 0", n, err)
	}
}

// A row that needs no task (no consumer) is settled when dispatched.
func TestRelaySettlesRowsWithoutTask(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.emit(ctx, testEvent{N: 1})
	if n, err := NewRelay(e.st, e.client, nil, e.log, RelayOptions{Registry: NewRegistry()}).RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("RelayOnce = %d, %v", n, err)
	}
	if got := e.settled(ctx, e.rowIDs(ctx)...); !got[0] {
		t.Fatal("a row without consumers is not settled at dispatch")
	}
}

func TestReconcileEntries(t *testing.T) {
	es := ReconcileEntries(Reconcile{Every: 3 * time.Second})
	if len(es) != 2 || es[0].Name != "sweep-outbox" || es[1].Name != "sweep-deliveries" || es[0].Every != 3*time.Second || es[1].Every != 3*time.Second {
		t.Fatalf("entries = %+v", es)
	}
	if es := ReconcileEntries(Reconcile{}); es[0].Every != DefaultReconcileEvery {
		t.Fatalf("default Every = %v", es[0].Every)
	}
}
