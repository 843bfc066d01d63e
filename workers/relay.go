package workers

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"partnerd/notify"
	"partnerd/store"
)

// RelayOptions tune a Relay. The zero value gives the defaults.
type RelayOptions struct {
	// BatchSize is how many outbox rows one RelayOnce takes (default 500).
	BatchSize int
	// Sweep is the interval of the backstop sweep that relays rows whose
	// notification was missed (default 1s).
	Sweep time.Duration
	// Retention is how long asynq keeps a completed outbox task, and so how
	// long its task ID refuses a second enqueue of the same row (default 24h).
	Retention time.Duration
	// TaskTimeout bounds one run of an outbox task (default DefaultTaskTimeout).
	TaskTimeout time.Duration
	// Notifications, when set, fans out the batch's events of the
	// notification catalogue right here, all at once, and enqueues their
	// delivery tasks; such a row gets an outbox task only when Registry has
	// consumers for its type. Without it nobody is notified.
	Notifications *Notifications
	// ListenURL is the PostgreSQL the relay LISTENs on, when it must differ
	// from the store's (a transaction-mode pooler in front of the store
	// cannot carry LISTEN): a direct connection to the same database.
	// Empty: the store's URL.
	ListenURL string
	// Registry tells which event types have consumers: a row whose type has
	// none gets no outbox task (its live topics are still published). Nil:
	// every row that is not a notification gets its task.
	Registry *Registry
}

func (o RelayOptions) withDefaults() RelayOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = 500
	}
	if o.Sweep <= 0 {
		o.Sweep = time.Second
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.TaskTimeout <= 0 {
		o.TaskTimeout = DefaultTaskTimeout
	}
	return o
}

// relayBatchTimeout bounds one RelayOnce of the running relay: a database
// that stops answering must not hang it, yet a slow batch (500 rows fanned
// out, each statement within DB_STATEMENT_TIMEOUT) must be able to finish.
const relayBatchTimeout = 2 * time.Minute

// relayParallelism is how many enqueues of one batch are in flight at once.
const relayParallelism = 8

// outboxMaxRetry is how often asynq retries an outbox task.
const outboxMaxRetry = 25

// Backoff bounds of the LISTEN connection's reconnects.
const (
	listenBackoffMin = 100 * time.Millisecond
	listenBackoffMax = 30 * time.Second
)

// listenerAppName is the application_name of the relay's LISTEN connection.
const listenerAppName = "partnerd-relay"

// Relay turns committed outbox rows into asynq tasks. Each row becomes the
// task "outbox:<id>", so a row is enqueued at most once however many relays
// run and however often one dies between enqueueing a row and marking it
// dispatched. Rows with live topics are also published to the Hub once, when
// their task is first enqueued.
type Relay struct {
	st     *store.Store
	client *asynq.Client
	hub    *notify.Hub
	log    *slog.Logger
	opts   RelayOptions

	// afterEnqueue, when set (tests), runs after a batch is enqueued and
	// before it is marked; an error makes RelayOnce return it without
	// marking, as if the relay had died there.
	afterEnqueue func() error
}

// NewRelay returns a relay reading st's outbox and enqueueing with client.
// hub may be nil, in which case live topics are not published.
func NewRelay(st *store.Store, client *asynq.Client, hub *notify.Hub, log *slog.Logger, opts RelayOptions) *Relay {
	if log == nil {
		log = slog.Default()
	}
	return &Relay{st: st, client: client, hub: hub, log: log.With("component", "outbox-relay"), opts: opts.withDefaults()}
}

// Run relays until ctx ends, then returns nil. It LISTENs on
// store.OutboxChannel on a connection of its own (reconnecting with backoff
// when it drops) and drains the outbox on every notification, after every
// (re)connect and on every sweep tick.
func (r *Relay) Run(ctx context.Context) error {
	wake := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.listen(ctx, wake)
	}()
	defer wg.Wait()

	tick := time.NewTicker(r.opts.Sweep)
	defer tick.Stop()
	r.drain(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-tick.C:
		}
		r.drain(ctx)
	}
}

// drain relays batches until a batch comes back short: the rest, if any, is
// locked by another relay or was committed after the batch's query (and so
// has notified us again).
func (r *Relay) drain(ctx context.Context) {
	for ctx.Err() == nil {
		// Bounded: a database that stops answering must not hang the relay.
		bctx, cancel := context.WithTimeout(ctx, relayBatchTimeout)
		n, err := r.RelayOnce(bctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				r.log.Error("relay outbox", "err", err)
			}
			return
		}
		if n < r.opts.BatchSize {
			return
		}
	}
}

// listen keeps a LISTEN connection open until ctx ends, signalling wake on
// every notification and after every (re)connect.
func (r *Relay) listen(ctx context.Context, wake chan<- struct{}) {
	signal := func() {
		select {
		case wake <- struct{}{}:
		default:
		}
	}
	backoff := listenBackoffMin
	for ctx.Err() == nil {
		conn, err := r.connectListener(ctx)
		if err == nil {
			backoff = listenBackoffMin
			// Rows committed while we were not listening notified no one.
			signal()
			err = waitNotifications(ctx, conn, signal)
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			_ = conn.Close(closeCtx)
			cancel()
		}
		if ctx.Err() != nil {
			return
		}
		delay := backoff/2 + rand.N(backoff/2+1)
		r.log.Warn("outbox LISTEN connection lost; reconnecting", "err", err, "in", delay)
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		backoff = min(backoff*2, listenBackoffMax)
	}
}

func (r *Relay) connectListener(ctx context.Context) (*pgx.Conn, error) {
	url := r.opts.ListenURL
	if url == "" {
		url = r.st.URL
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database URL: %w", err)
	}
	cfg.RuntimeParams["application_name"] = listenerAppName
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect LISTEN connection: %w", err)
	}
	if _, err := conn.Exec(cctx, "LISTEN "+pgx.Identifier{store.OutboxChannel}.Sanitize()); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("LISTEN %s: %w", store.OutboxChannel, err)
	}
	return conn, nil
}

func waitNotifications(ctx context.Context, conn *pgx.Conn, signal func()) error {
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		signal()
	}
}

// RelayOnce relays one batch of pending outbox rows and returns how many it
// marked dispatched. In one transaction it locks the oldest pending rows
// (skipping rows another relay holds), enqueues each as its task, a few at a
// time (a task ID conflict means an earlier attempt enqueued it: it counts as
// done and is not published again), publishes the live topics of freshly
// enqueued rows in outbox order, and marks the rows dispatched (and settled,
// those that need no task: the outbox sweep reconciles the others). When an
// enqueue fails it marks the others and returns the error: the failed row
// stays pending for the next batch without holding the rest back.
func (r *Relay) RelayOnce(ctx context.Context) (int, error) {
	tx, err := r.st.SQL.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("relay outbox: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()

	batch, err := lockPending(ctx, tx, r.opts.BatchSize)
	if err != nil {
		return 0, err
	}
	if len(batch) == 0 {
		return 0, nil
	}

	// Notifications first: the catalogue's events of the whole batch are
	// fanned out together and their deliveries enqueued; a row whose type
	// has no other consumer needs no task of its own.
	needsTask := make([]bool, len(batch))
	var events []notify.Event
	for i, row := range batch {
		notifies := r.opts.Notifications != nil && r.opts.Notifications.svc.Catalogue().FansOut(row.EventType)
		if notifies {
			events = append(events, notify.Event{OutboxID: row.ID, Type: row.EventType, Payload: row.Payload, At: row.CreatedAt})
		}
		// A task only for a type someone consumes: an event that is only
		// notified or published live (spend.changed, by the thousand per
		// ingestion) must not queue no-op tasks in front of real work.
		// Without a registry every non-notified row gets its task.
		consumed := r.opts.Registry == nil || len(r.opts.Registry.Consumers(row.EventType)) > 0
		needsTask[i] = consumed && (!notifies || r.opts.Registry != nil)
	}
	failed := r.notify(ctx, events)

	// Enqueue with a few round trips in flight: each is one Redis call.
	ok := make([]bool, len(batch))
	fresh := make([]bool, len(batch))
	errs := make([]error, len(batch))
	parallel(len(batch), relayParallelism, func(i int) {
		if err, bad := failed[batch[i].ID]; bad {
			errs[i] = err // stays pending, retried with the next batches
			return
		}
		if !needsTask[i] {
			ok[i], fresh[i] = true, true
			return
		}
		f, err := r.enqueue(ctx, batch[i])
		if err != nil {
			errs[i] = fmt.Errorf("relay outbox: enqueue row %d: %w", batch[i].ID, err)
			return
		}
		ok[i], fresh[i] = true, f
	})
	done := make([]int64, 0, len(batch))
	settled := []int64{} // done without a task: nothing left to reconcile
	var live []outboxRow
	var enqErr error
	for i, row := range batch {
		if ok[i] {
			done = append(done, row.ID)
			if !needsTask[i] {
				settled = append(settled, row.ID)
			}
			if fresh[i] && row.Topics != "" {
				live = append(live, row)
			}
		} else if enqErr == nil {
			enqErr = errs[i]
		}
	}
	if len(live) > 0 {
		r.publish(ctx, live) // in outbox order, one round trip
	}
	if r.afterEnqueue != nil {
		if err := r.afterEnqueue(); err != nil {
			return 0, fmt.Errorf("relay outbox: after enqueue: %w", err)
		}
	}
	if len(done) > 0 {
		if _, err := tx.ExecContext(ctx, `UPDATE outbox SET dispatched_at = now(),
			settled_at = CASE WHEN id = ANY($2) THEN now() ELSE settled_at END WHERE id = ANY($1)`, done, settled); err != nil {
			return 0, fmt.Errorf("relay outbox: mark %d rows dispatched: %w", len(done), err)
		}
		if err := tx.Commit(); err != nil {
			return 0, fmt.Errorf("relay outbox: commit: %w", err)
		}
	}
	return len(done), enqErr
}

// outboxRow is an outbox row as the relay reads it.
type outboxRow struct {
	OutboxPayload
	Queue     string
	Topics    string
	CreatedAt time.Time
}

func lockPending(ctx context.Context, tx *sql.Tx, limit int) ([]outboxRow, error) {
	rows, err := tx.QueryContext(ctx, `
		SELECT id, event_type, queue, account_id, payload, topics, request_id, created_at
		FROM outbox
		WHERE dispatched_at IS NULL
		ORDER BY id
		LIMIT $1
		FOR UPDATE SKIP LOCKED`, limit)
	if err != nil {
		return nil, fmt.Errorf("relay outbox: select pending rows: %w", err)
	}
	defer rows.Close()
	var batch []outboxRow
	for rows.Next() {
		var (
			row     outboxRow
			account sql.NullInt64
			payload []byte
		)
		if err := rows.Scan(&row.ID, &row.EventType, &row.Queue, &account, &payload, &row.Topics, &row.RequestID, &row.CreatedAt); err != nil {
			return nil, fmt.Errorf("relay outbox: scan row: %w", err)
		}
		if account.Valid {
			row.AccountID = &account.Int64
		}
		row.Payload = payload
		batch = append(batch, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("relay outbox: read pending rows: %w", err)
	}
	return batch, nil
}

// OutboxTaskID is the asynq task ID of outbox row id.
func OutboxTaskID(id int64) string { return fmt.Sprintf("outbox:%d", id) }

// enqueue enqueues row's task and reports whether this call enqueued it
// (false: an earlier attempt did).
func (r *Relay) enqueue(ctx context.Context, row outboxRow) (bool, error) {
	fresh, err := enqueueOutbox(ctx, r.client, row, r.opts)
	if err == nil && !fresh {
		r.log.Debug("outbox row already enqueued", "id", row.ID)
	}
	return fresh, err
}

// enqueueOutbox enqueues row's task under its task ID and reports whether
// this call enqueued it (false: the task exists already).
func enqueueOutbox(ctx context.Context, client *asynq.Client, row outboxRow, opts RelayOptions) (bool, error) {
	payload, err := json.Marshal(row.OutboxPayload)
	if err != nil {
		return false, fmt.Errorf("encode payload: %w", err)
	}
	queue := row.Queue
	if queue == "" {
		queue = QueueDefault
	}
	_, err = client.EnqueueContext(ctx, asynq.NewTask(TypeOutboxEvent, payload),
		asynq.TaskID(OutboxTaskID(row.ID)),
		asynq.Queue(queue),
		asynq.Retention(opts.Retention),
		asynq.MaxRetry(outboxMaxRetry),
		asynq.Timeout(opts.TaskTimeout),
	)
	if errors.Is(err, asynq.ErrTaskIDConflict) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// publish sends row's payload to each of its live topics. Live updates are
// best effort: a failure is logged, never returned.
func (r *Relay) publish(ctx context.Context, rows []outboxRow) {
	if r.hub == nil {
		return
	}
	var msgs []notify.LiveMessage
	for _, row := range rows {
		for _, topic := range strings.Fields(row.Topics) {
			msgs = append(msgs, notify.LiveMessage{Topic: topic, Data: row.Payload})
		}
	}
	if err := r.hub.PublishAll(ctx, msgs); err != nil {
		r.log.Warn("publish live events", "rows", len(rows), "first", rows[0].ID, "err", err)
	}
}

// Backlog returns how many outbox rows wait for the relay and how old the
// oldest is, for metrics and alerts.
func (r *Relay) Backlog(ctx context.Context) (count int64, oldestAge time.Duration, err error) {
	return r.st.OutboxBacklog(ctx)
}

// notify fans out the notification events of a batch and enqueues their
// deliveries, and returns the events it could not handle with why. When the
// batch fails as a whole it tries each event on its own, so one event that
// cannot be fanned out (a bug, a payload it cannot read) holds back neither
// the others nor the rest of the outbox.
func (r *Relay) notify(ctx context.Context, events []notify.Event) map[int64]error {
	if len(events) == 0 {
		return nil
	}
	n := r.opts.Notifications
	run := func(evs []notify.Event) error {
		pending, err := n.svc.FanOutBatch(ctx, evs)
		if err == nil {
			_, err = n.enqueue(ctx, pending)
		}
		return err
	}
	if err := run(events); err == nil {
		return nil
	} else if len(events) == 1 {
		return map[int64]error{events[0].OutboxID: fmt.Errorf("relay outbox: notifications of row %d: %w", events[0].OutboxID, err)}
	}
	failed := map[int64]error{}
	for _, ev := range events {
		if err := run([]notify.Event{ev}); err != nil {
			failed[ev.OutboxID] = fmt.Errorf("relay outbox: notifications of row %d: %w", ev.OutboxID, err)
		}
	}
	return failed
}

// parallel runs f(0) … f(n-1) on at most width goroutines and waits for them.
func parallel(n, width int, f func(i int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(width, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				f(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
