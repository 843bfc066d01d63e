package workers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"partnerd/notify"
	"partnerd/store"
	"partnerd/store/storetest"
)

// testEvent is an event of the tests' own type.
type testEvent struct {
	Kind    string   `json:"kind,omitempty"`
	N       int      `json:"n"`
	Q       string   `json:"-"`
	Topics  []string `json:"-"`
	Account int64    `json:"-"`
}

func (e testEvent) EventType() string {
	if e.Kind != "" {
		return e.Kind
	}
	return "test.event"
}
func (e testEvent) Queue() string         { return e.Q }
func (e testEvent) LiveTopics() []string  { return e.Topics }
func (e testEvent) EventAccountID() int64 { return e.Account }

// env is a test's database, Redis database, asynq client and inspector.
type env struct {
	t        *testing.T
	st       *store.Store
	redisOpt asynq.RedisConnOpt
	rdb      *redis.Client
	client   *asynq.Client
	insp     *asynq.Inspector
	prefix   string
	log      *slog.Logger
}

func newEnv(t *testing.T) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	st := storetest.New(t, store.Options{Logger: log})
	redisURL, prefix := storetest.RedisDB(t)
	opt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatalf("parse redis URL: %v", err)
	}
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatalf("parse redis URL: %v", err)
	}
	rdb := redis.NewClient(ropt)
	client := asynq.NewClient(opt)
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() {
		_ = insp.Close()
		_ = client.Close()
		_ = rdb.Close()
	})
	return &env{t: t, st: st, redisOpt: opt, rdb: rdb, client: client, insp: insp, prefix: prefix, log: log}
}

func (e *env) hub() *notify.Hub {
	h := notify.NewHub(e.rdb, e.prefix, e.log)
	e.t.Cleanup(func() { _ = h.Close() })
	return h
}

// emit writes evs in one committed transaction.
func (e *env) emit(ctx context.Context, evs ...testEvent) {
	e.t.Helper()
	err := e.st.InTx(ctx, func(tx *store.Tx) error {
		for _, ev := range evs {
			if err := tx.Emit(ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatalf("emit: %v", err)
	}
}

// outbox counts the outbox rows and the pending ones.
func (e *env) outbox(ctx context.Context) (total, pending int64) {
	e.t.Helper()
	err := e.st.SQL.QueryRowContext(ctx,
		`SELECT count(*), count(*) FILTER (WHERE dispatched_at IS NULL) FROM outbox`).Scan(&total, &pending)
	if err != nil {
		e.t.Fatalf("count outbox: %v", err)
	}
	return total, pending
}

// rowIDs returns the IDs of every outbox row.
func (e *env) rowIDs(ctx context.Context) []int64 {
	e.t.Helper()
	rows, err := e.st.SQL.QueryContext(ctx, `SELECT id FROM outbox ORDER BY id`)
	if err != nil {
		e.t.Fatalf("list outbox: %v", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			e.t.Fatalf("scan: %v", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatalf("list outbox: %v", err)
	}
	return ids
}

// tasks counts the tasks in every queue, whatever their state.
func (e *env) tasks() int {
	e.t.Helper()
	queues, err := e.insp.Queues()
	if err != nil {
		e.t.Fatalf("list queues: %v", err)
	}
	n := 0
	for _, q := range queues {
		info, err := e.insp.GetQueueInfo(q)
		if err != nil {
			e.t.Fatalf("queue %s: %v", q, err)
		}
		n += info.Size
	}
	return n
}

// pending lists the pending tasks of queue, page by page.
func (e *env) pending(queue string) []*asynq.TaskInfo {
	e.t.Helper()
	var all []*asynq.TaskInfo
	for page := 1; ; page++ {
		ts, err := e.insp.ListPendingTasks(queue, asynq.PageSize(200), asynq.Page(page))
		if errors.Is(err, asynq.ErrQueueNotFound) {
			return nil
		}
		if err != nil {
			e.t.Fatalf("list pending tasks of %s: %v", queue, err)
		}
		all = append(all, ts...)
		if len(ts) < 200 {
			return all
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// run starts fn in a goroutine and stops it (and waits for it) when the
// test ends.
func run(t *testing.T, fn func(ctx context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := fn(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
}

// subscribe subscribes to topic and waits until the subscription is live,
// by publishing probes until one comes back.
func subscribe(t *testing.T, h *notify.Hub, topic string) <-chan []byte {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	ch, err := h.Subscribe(ctx, topic)
	if err != nil {
		t.Fatalf("subscribe %s: %v", topic, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := h.Publish(ctx, topic, []byte("probe")); err != nil {
			t.Fatalf("publish probe: %v", err)
		}
		select {
		case m := <-ch:
			if string(m) != "probe" {
				t.Fatalf("unexpected message %q while probing", m)
			}
			// Drain probes still in flight: a sentinel marks the end.
			drainUntil(t, h, ch, topic)
			return ch
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscription to %s never became live", topic)
		}
	}
}

// drainUntil publishes a sentinel on topic and discards messages up to it.
func drainUntil(t *testing.T, h *notify.Hub, ch <-chan []byte, topic string) {
	t.Helper()
	sentinel := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	if err := h.Publish(context.Background(), topic, []byte(sentinel)); err != nil {
		t.Fatalf("publish sentinel: %v", err)
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m := <-ch:
			if string(m) == sentinel {
				return
			}
		case <-timeout:
			t.Fatalf("sentinel on %s never arrived", topic)
		}
	}
}

// nextMessages reads n messages from ch, then checks, with a sentinel, that
// no other message follows them.
func nextMessages(t *testing.T, h *notify.Hub, ch <-chan []byte, topic string, n int) [][]byte {
	t.Helper()
	var got [][]byte
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, m)
		case <-timeout:
			t.Fatalf("got %d of %d messages on %s", len(got), n, topic)
		}
	}
	sentinel := fmt.Sprintf("sentinel-%d", time.Now().UnixNano())
	if err := h.Publish(context.Background(), topic, []byte(sentinel)); err != nil {
		t.Fatalf("publish sentinel: %v", err)
	}
	select {
	case m := <-ch:
		if string(m) != sentinel {
			t.Fatalf("extra message on %s: %s", topic, m)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("sentinel on %s never arrived", topic)
	}
	return got
}
