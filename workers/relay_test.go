package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"partnerd/notify"
	"partnerd/store"
)

func TestRolledBackEmitIsNeverEnqueued(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := e.st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.Emit(testEvent{N: 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("InTx = %v, want boom", err)
	}
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{})
	n, err := r.RelayOnce(ctx)
	if err != nil || n != 0 {
		t.Fatalf("RelayOnce = %d, %v; want 0, nil", n, err)
	}
	if got := e.tasks(); got != 0 {
		t.Fatalf("tasks = %d, want 0", got)
	}
	if total, _ := e.outbox(ctx); total != 0 {
		t.Fatalf("outbox rows = %d, want 0", total)
	}
}

func TestRelayOnceEnqueuesRowsAsTasks(t *testing.T) {
	e := newEnv(t)
	ctx := store.WithRequestID(context.Background(), "req-1")
	e.emit(ctx, testEvent{N: 1, Account: 42}, testEvent{N: 2, Q: QueueCritical})
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{})
	n, err := r.RelayOnce(ctx)
	if err != nil || n != 2 {
		t.Fatalf("RelayOnce = %d, %v; want 2, nil", n, err)
	}
	ids := e.rowIDs(ctx)
	def, crit := e.pending(QueueDefault), e.pending(QueueCritical)
	if len(def) != 1 || len(crit) != 1 {
		t.Fatalf("pending default=%d critical=%d, want 1 and 1", len(def), len(crit))
	}
	if def[0].ID != OutboxTaskID(ids[0]) || crit[0].ID != OutboxTaskID(ids[1]) {
		t.Fatalf("task IDs %s, %s; want %s, %s", def[0].ID, crit[0].ID, OutboxTaskID(ids[0]), OutboxTaskID(ids[1]))
	}
	if def[0].Type != TypeOutboxEvent || def[0].MaxRetry != 25 || def[0].Retention != 24*time.Hour || def[0].Timeout != DefaultTaskTimeout {
		t.Fatalf("task options: type=%s max_retry=%d retention=%v timeout=%v", def[0].Type, def[0].MaxRetry, def[0].Retention, def[0].Timeout)
	}
	var p OutboxPayload
	if err := json.Unmarshal(def[0].Payload, &p); err != nil {
		t.Fatalf("payload: %v", err)
	}
	if p.ID != ids[0] || p.EventType != "test.event" || p.AccountID == nil || *p.AccountID != 42 || p.RequestID != "req-1" {
		t.Fatalf("payload = %+v", p)
	}
	var ev testEvent
	if err := json.Unmarshal(p.Payload, &ev); err != nil || ev.N != 1 {
		t.Fatalf("event payload %s: %v", p.Payload, err)
	}
	if _, pending := e.outbox(ctx); pending != 0 {
		t.Fatalf("pending rows = %d, want 0", pending)
	}
	if n, err := r.RelayOnce(ctx); err != nil || n != 0 {
		t.Fatalf("second RelayOnce = %d, %v; want 0, nil", n, err)
	}
	count, age, err := r.Backlog(ctx)
	if err != nil || count != 0 || age != 0 {
		t.Fatalf("Backlog = %d, %v, %v", count, age, err)
	}
}

func TestTwoRelaysEnqueueEachRowOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	const rows, txs = 1000, 40
	for range 2 {
		r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{BatchSize: 37, Sweep: 50 * time.Millisecond})
		run(t, r.Run)
	}
	// Two more relays race RelayOnce in loops beside the two Runs.
	loopCtx, stopLoops := context.WithCancel(ctx)
	var loops sync.WaitGroup
	for range 2 {
		r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{BatchSize: 23})
		loops.Add(1)
		go func() {
			defer loops.Done()
			for loopCtx.Err() == nil {
				if _, err := r.RelayOnce(loopCtx); err != nil && loopCtx.Err() == nil {
					t.Errorf("RelayOnce: %v", err)
					return
				}
			}
		}()
	}
	t.Cleanup(func() { stopLoops(); loops.Wait() })

	var wg sync.WaitGroup
	errs := make(chan error, txs)
	for i := range txs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- e.st.InTx(ctx, func(tx *store.Tx) error {
				for j := range rows / txs {
					if err := tx.Emit(testEvent{N: i*1000 + j}); err != nil {
						return err
					}
				}
				return nil
			})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("emit: %v", err)
		}
	}
	eventually(t, 30*time.Second, "every row dispatched", func() bool {
		total, pending := e.outbox(ctx)
		return total == rows && pending == 0
	})
	stopLoops()
	loops.Wait()

	if got := e.tasks(); got != rows {
		t.Fatalf("tasks = %d, want %d", got, rows)
	}
	seen := map[string]bool{}
	for _, ti := range e.pending(QueueDefault) {
		if seen[ti.ID] {
			t.Fatalf("task %s listed twice", ti.ID)
		}
		seen[ti.ID] = true
	}
	for _, id := range e.rowIDs(ctx) {
		if !seen[OutboxTaskID(id)] {
			t.Fatalf("row %d has no task", id)
		}
	}
	if len(seen) != rows {
		t.Fatalf("pending tasks = %d, want %d", len(seen), rows)
	}
}

func TestCrashBetweenEnqueueAndMarkCausesNoSecondTask(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hub := e.hub()
	const topic = "account:7"
	sub := subscribe(t, hub, topic)

	const rows = 30
	evs := make([]testEvent, rows)
	for i := range evs {
		evs[i] = testEvent{N: i, Topics: []string{topic}}
	}
	e.emit(ctx, evs...)

	r := NewRelay(e.st, e.client, hub, e.log, RelayOptions{BatchSize: 100})
	crash := errors.New("relay died")
	r.afterEnqueue = func() error { return crash }
	n, err := r.RelayOnce(ctx)
	if !errors.Is(err, crash) || n != 0 {
		t.Fatalf("crashing RelayOnce = %d, %v; want 0, crash", n, err)
	}
	if _, pending := e.outbox(ctx); pending != rows {
		t.Fatalf("pending rows after crash = %d, want %d", pending, rows)
	}
	if got := e.tasks(); got != rows {
		t.Fatalf("tasks after crash = %d, want %d", got, rows)
	}

	r.afterEnqueue = nil
	n, err = r.RelayOnce(ctx)
	if err != nil || n != rows {
		t.Fatalf("RelayOnce after crash = %d, %v; want %d, nil", n, err, rows)
	}
	if _, pending := e.outbox(ctx); pending != 0 {
		t.Fatalf("pending rows = %d, want 0", pending)
	}
	if got := e.tasks(); got != rows {
		t.Fatalf("tasks = %d, want %d", got, rows)
	}
	// Live events went out once, on the first (crashed) enqueue only.
	msgs := nextMessages(t, hub, sub, topic, rows)
	for i, m := range msgs {
		var ev testEvent
		if err := json.Unmarshal(m, &ev); err != nil || ev.N != i {
			t.Fatalf("message %d = %s (%v)", i, m, err)
		}
	}
}

func TestEnqueueFailureMarksTheOthers(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// A blank queue name makes asynq refuse the second row.
	e.emit(ctx, testEvent{N: 1}, testEvent{N: 2, Q: " "}, testEvent{N: 3})
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{})
	n, err := r.RelayOnce(ctx)
	if err == nil || n != 2 {
		t.Fatalf("RelayOnce = %d, %v; want 2 and an error", n, err)
	}
	if total, pending := e.outbox(ctx); total != 3 || pending != 1 {
		t.Fatalf("outbox total=%d pending=%d, want 3 and 1 (the refused row does not hold the others back)", total, pending)
	}
	if got := e.tasks(); got != 2 {
		t.Fatalf("tasks = %d, want 2", got)
	}
	count, _, err := r.Backlog(ctx)
	if err != nil || count != 1 {
		t.Fatalf("Backlog = %d, %v; want 1", count, err)
	}
}

func TestLiveTopicIsPublishedOnce(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	hub := e.hub()
	subA := subscribe(t, hub, "account:1")
	subB := subscribe(t, hub, "tree:1")

	e.emit(ctx, testEvent{Kind: "account.updated", N: 9, Topics: []string{"account:1", "tree:1"}}, testEvent{N: 10})
	r := NewRelay(e.st, e.client, hub, e.log, RelayOptions{})
	if n, err := r.RelayOnce(ctx); err != nil || n != 2 {
		t.Fatalf("RelayOnce = %d, %v; want 2, nil", n, err)
	}
	// Relaying again (nothing pending) and re-enqueueing (conflict) publish nothing.
	if n, err := r.RelayOnce(ctx); err != nil || n != 0 {
		t.Fatalf("second RelayOnce = %d, %v", n, err)
	}
	for topic, sub := range map[string]<-chan []byte{"account:1": subA, "tree:1": subB} {
		m := nextMessages(t, hub, sub, topic, 1)[0]
		var ev testEvent
		if err := json.Unmarshal(m, &ev); err != nil || ev.N != 9 {
			t.Fatalf("%s message = %s (%v)", topic, m, err)
		}
	}
}

// listener returns the PID of the relay's LISTEN backend on the test
// database, or 0.
func listener(t *testing.T, e *env) int {
	t.Helper()
	var pid int
	err := e.st.SQL.QueryRow(`
		SELECT coalesce(max(pid), 0) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = $1
		  AND state = 'idle' AND query ILIKE 'LISTEN%'`, listenerAppName).Scan(&pid)
	if err != nil {
		t.Fatalf("pg_stat_activity: %v", err)
	}
	return pid
}

func TestNotifyWakesRun(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	// The sweep never fires during the test: only NOTIFY (and the drain
	// after connecting) can relay.
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{Sweep: time.Hour})
	run(t, r.Run)
	var pid int
	eventually(t, 10*time.Second, "relay LISTENs", func() bool { pid = listener(t, e); return pid != 0 })

	relayed := func(what string) {
		t.Helper()
		eventually(t, 5*time.Second, what, func() bool {
			_, pending := e.outbox(ctx)
			return pending == 0
		})
	}
	// The first row may be caught by the drain after connecting; the
	// second can only be relayed by its notification.
	for i := range 2 {
		e.emit(ctx, testEvent{N: i})
		relayed(fmt.Sprintf("row %d relayed", i))
	}
	if got := e.tasks(); got != 2 {
		t.Fatalf("tasks = %d, want 2", got)
	}

	// The relay reconnects when its LISTEN connection drops.
	var killed bool
	if err := e.st.SQL.QueryRow(`SELECT pg_terminate_backend($1)`, pid).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate listener: %v, %v", killed, err)
	}
	eventually(t, 10*time.Second, "relay LISTENs again", func() bool {
		p := listener(t, e)
		return p != 0 && p != pid
	})
	for i := range 2 {
		e.emit(ctx, testEvent{N: 10 + i})
		relayed(fmt.Sprintf("row %d relayed after reconnect", 10+i))
	}
	if got := e.tasks(); got != 4 {
		t.Fatalf("tasks = %d, want 4", got)
	}
}

// rawEvent is an event whose payload is given as is.
type rawEvent struct {
	typ string
	raw string
}

func (e rawEvent) EventType() string            { return e.typ }
func (e rawEvent) MarshalJSON() ([]byte, error) { return []byte(e.raw), nil }

// An event of the notification catalogue that cannot be fanned out stays
// pending and holds back neither the other notifications of its batch nor
// the other events.
func TestRelayNotificationThatFailsHoldsNothingBack(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	svc, err := notify.New(e.st, notify.Options{Log: e.log})
	if err != nil {
		t.Fatal(err)
	}
	nw := NewNotifications(svc, e.client, e.log)
	e.emit(ctx, testEvent{N: 1})
	if err := e.st.InTx(ctx, func(tx *store.Tx) error {
		for _, ev := range []store.Event{
			rawEvent{notify.EventCreditLimitSet, `{"partnerId": 999999, "limit": "1.00", "previous": "0.00"}`},
			rawEvent{notify.EventCreditLimitSet, `{"partnerId": "not a number"}`},
			rawEvent{notify.EventCreditAllocated, `{"partnerId": 999998, "childId": 999997, "amount": "1.00", "limit": "1.00"}`},
		} {
			if err := tx.Emit(ev); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	reg := NewRegistry()
	reg.On(testEvent{}.EventType(), func(context.Context, OutboxPayload) error { return nil })
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{Notifications: nw, Registry: reg})
	n, err := r.RelayOnce(ctx)
	if err == nil || n != 3 {
		t.Fatalf("RelayOnce = %d, %v; want 3 and the bad row's error", n, err)
	}
	if _, pending := e.outbox(ctx); pending != 1 {
		t.Fatalf("pending rows = %d, want the bad one only", pending)
	}
	// Notification rows without other consumers get no outbox task.
	if got := e.tasks(); got != 1 {
		t.Fatalf("tasks = %d, want 1 (the test event)", got)
	}
}

// With a registry, an event nobody consumes is marked relayed without a
// task: spend.changed by the thousand must not queue no-op work in front of
// the critical queue's real tasks.
func TestRelayUnconsumedEventGetsNoTask(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	e.emit(ctx, testEvent{N: 1})
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{Registry: NewRegistry()})
	if n, err := r.RelayOnce(ctx); err != nil || n != 1 {
		t.Fatalf("RelayOnce = %d, %v", n, err)
	}
	if _, pending := e.outbox(ctx); pending != 0 {
		t.Fatalf("%d rows pending", pending)
	}
	if got := e.tasks(); got != 0 {
		t.Fatalf("tasks = %d, want none", got)
	}
}

// ListenURL names the LISTEN connection's server, not the store's URL (a
// pooler in front of the store cannot carry LISTEN). Pointed at another
// database, the relay listens there, and its sweep still relays.
func TestRelayListensOnListenURL(t *testing.T) {
	e := newEnv(t)
	u, err := url.Parse(e.st.URL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/postgres"
	r := NewRelay(e.st, e.client, nil, e.log, RelayOptions{Sweep: 50 * time.Millisecond, ListenURL: u.String()})
	run(t, r.Run)
	eventually(t, 10*time.Second, "a LISTEN on the ListenURL's database", func() bool {
		var n int
		if err := e.st.SQL.QueryRow(`SELECT count(*) FROM pg_stat_activity WHERE datname = 'postgres'
			AND application_name = $1 AND query ILIKE 'LISTEN%'`, listenerAppName).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	})
	if pid := listener(t, e); pid != 0 {
		t.Fatalf("the relay LISTENs on the store's database (pid %d), not on ListenURL's", pid)
	}
	ctx := context.Background()
	e.emit(ctx, testEvent{N: 1})
	eventually(t, 10*time.Second, "the sweep relays", func() bool {
		_, pending := e.outbox(ctx)
		return pending == 0
	})
}
