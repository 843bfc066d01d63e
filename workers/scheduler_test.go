package workers

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/store/storetest"
)

func tickEntries() []Entry {
	return []Entry{{
		Name:  "test-tick",
		Every: time.Hour,
		Task:  func(p time.Time) *asynq.Task { return asynq.NewTask("test:tick", []byte(p.Format(time.RFC3339))) },
		Queue: QueueBulk,
	}}
}

func TestTwoSchedulersEnqueueOneTaskPerPeriod(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	a := NewScheduler(e.client, tickEntries(), clock, e.log)
	b := NewScheduler(e.client, tickEntries(), clock, e.log)

	t0 := clock.Now()
	var wg sync.WaitGroup
	for _, s := range []*Scheduler{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.Tick(ctx, t0); err != nil {
				t.Errorf("Tick: %v", err)
			}
		}()
	}
	wg.Wait()
	ids := func() []string {
		var out []string
		for _, ti := range e.pending(QueueBulk) {
			out = append(out, ti.ID)
		}
		return out
	}
	first := PeriodTaskID("test-tick", time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC))
	if got := ids(); len(got) != 1 || got[0] != first {
		t.Fatalf("tasks = %v, want [%s]", got, first)
	}
	if first != "test-tick:2030-01-02T03:00:00Z" {
		t.Fatalf("task ID %s", first)
	}
	// Later in the same period: nothing new.
	for _, s := range []*Scheduler{b, a} {
		if err := s.Tick(ctx, t0.Add(40*time.Minute)); err != nil {
			t.Fatalf("Tick: %v", err)
		}
	}
	if got := e.tasks(); got != 1 {
		t.Fatalf("tasks = %d, want 1", got)
	}
	// The next period: one more task, whoever ticks first.
	for _, s := range []*Scheduler{b, a} {
		if err := s.Tick(ctx, t0.Add(time.Hour)); err != nil {
			t.Fatalf("Tick: %v", err)
		}
	}
	if got := e.tasks(); got != 2 {
		t.Fatalf("tasks = %d, want 2", got)
	}
	info, err := e.insp.GetTaskInfo(QueueBulk, first)
	if err != nil {
		t.Fatalf("task info: %v", err)
	}
	if info.Retention != 2*time.Hour || info.Timeout != DefaultTaskTimeout || string(info.Payload) != "2030-01-02T03:00:00Z" {
		t.Fatalf("task: retention %v timeout %v payload %s", info.Retention, info.Timeout, info.Payload)
	}
	// A scheduler started later in a period finds it done.
	c := NewScheduler(e.client, tickEntries(), clock, e.log)
	if err := c.Tick(ctx, t0.Add(time.Hour+time.Minute)); err != nil {
		t.Fatalf("Tick: %v", err)
	}
	if got := e.tasks(); got != 2 {
		t.Fatalf("tasks = %d, want 2", got)
	}
}

func TestSchedulersRun(t *testing.T) {
	e := newEnv(t)
	clock := storetest.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
	entries := append(tickEntries(), Entry{
		Name: "short", Every: time.Second,
		Task: func(time.Time) *asynq.Task { return asynq.NewTask("test:short", nil) },
	})
	for range 2 {
		run(t, NewScheduler(e.client, entries, clock, e.log).Run)
	}
	eventually(t, 5*time.Second, "first period scheduled", func() bool {
		return len(e.pending(QueueBulk)) == 1 && len(e.pending(QueueDefault)) == 1
	})
	clock.Set(clock.Now().Add(time.Hour))
	eventually(t, 5*time.Second, "next period scheduled", func() bool {
		return len(e.pending(QueueBulk)) == 2 && len(e.pending(QueueDefault)) == 2
	})
	ti, err := e.insp.GetTaskInfo(QueueDefault, PeriodTaskID("short", time.Date(2030, 1, 2, 4, 4, 5, 0, time.UTC)))
	if err != nil {
		t.Fatalf("short task: %v", err)
	}
	if ti.Retention != time.Minute {
		t.Fatalf("retention of a 1s entry = %v, want the 1m minimum", ti.Retention)
	}
}

func TestPartitionEntries(t *testing.T) {
	es := PartitionEntries()
	if len(es) != 1 || es[0].Name != "partitions" || es[0].Every != time.Hour || es[0].Queue != QueueBulk {
		t.Fatalf("PartitionEntries = %+v", es)
	}
	if task := es[0].Task(time.Now()); task.Type() != TypeMaintainPartitions {
		t.Fatalf("task type %s", task.Type())
	}
}

// The guard's sweeps with two schedulers at once: one task per entry and
// period, on the entry's queue.
func TestGuardEntries_TwoSchedulers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	clock := storetest.NewClock(time.Date(2026, 11, 30, 16, 0, 0, 0, time.UTC)) // Beijing midnight, December 1st
	a := NewScheduler(e.client, GuardEntries(), clock, e.log)
	b := NewScheduler(e.client, GuardEntries(), clock, e.log)
	for round := 0; round < 3; round++ {
		var wg sync.WaitGroup
		for _, s := range []*Scheduler{a, b} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := s.Tick(ctx, clock.Now()); err != nil {
					t.Errorf("Tick: %v", err)
				}
			}()
		}
		wg.Wait()
		clock.Advance(10 * time.Second)
	}
	types := map[string]int{}
	for _, q := range []string{QueueCritical, QueueDefault} {
		for _, ti := range e.pending(q) {
			types[ti.Type+"@"+q]++
		}
	}
	want := map[string]int{TypeFreezeDue + "@critical": 1, TypeSweepEnforcement + "@critical": 1, TypeSweepThresholds + "@default": 1}
	if len(types) != len(want) {
		t.Fatalf("tasks %v, want %v", types, want)
	}
	for k, n := range want {
		if types[k] != n {
			t.Fatalf("tasks %v, want %v", types, want)
		}
	}
}
