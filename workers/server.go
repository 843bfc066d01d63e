package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/notify"
	"partnerd/store"
)

// Consumer handles one outbox event. It runs as the system principal with
// the request ID of the change that emitted the event. It must be
// idempotent: a retried or duplicated task runs it again, and when a later
// consumer of the same event fails, every consumer of the event runs again.
// An *apperr.Error with code VALIDATION, NOT_FOUND or PRECONDITION_FAILED is
// permanent and not retried; any other error is retried.
type Consumer func(ctx context.Context, ev OutboxPayload) error

// Registry maps event types to their consumers. main builds one and hands it
// to NewMux; it is safe for concurrent use.
type Registry struct {
	mu        sync.RWMutex
	consumers map[string][]Consumer
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{consumers: map[string][]Consumer{}}
}

// On registers c for events of eventType. Consumers of one event type run in
// the order they were registered.
func (r *Registry) On(eventType string, c Consumer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.consumers[eventType] = append(r.consumers[eventType], c)
}

// Consumers returns the consumers registered for eventType, in order.
func (r *Registry) Consumers(eventType string) []Consumer {
	r.mu.RLock()
	defer r.mu.RUnlock()
	cs := r.consumers[eventType]
	out := make([]Consumer, len(cs))
	copy(out, cs)
	return out
}

// NewMux returns the handler of partnerd's tasks: TypeOutboxEvent runs the
// registered consumers of the event and then settles its outbox row in st.
// The other task types are added by their Handle functions.
func NewMux(reg *Registry, st *store.Store, log *slog.Logger) *asynq.ServeMux {
	if log == nil {
		log = slog.Default()
	}
	h := &handlers{reg: reg, st: st, log: log.With("component", "worker")}
	mux := asynq.NewServeMux()
	mux.HandleFunc(TypeOutboxEvent, h.outboxEvent)
	return mux
}

type handlers struct {
	reg *Registry
	st  *store.Store
	log *slog.Logger
}

func (h *handlers) outboxEvent(ctx context.Context, t *asynq.Task) error {
	var ev OutboxPayload
	if err := json.Unmarshal(t.Payload(), &ev); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", TypeOutboxEvent, err, asynq.SkipRetry)
	}
	consumers := h.reg.Consumers(ev.EventType)
	if len(consumers) == 0 {
		h.log.Debug("no consumer for event", "event_type", ev.EventType, "outbox_id", ev.ID)
	}
	cctx := accounts.SystemContext(store.WithRequestID(ctx, ev.RequestID))
	for i, c := range consumers {
		if err := c(cctx, ev); err != nil {
			err = fmt.Errorf("event %s (outbox %d), consumer %d: %w", ev.EventType, ev.ID, i, err)
			if permanent(err) {
				return fmt.Errorf("%w (permanent: %w)", err, asynq.SkipRetry)
			}
			return err
		}
	}
	// Settled: the outbox sweep no longer reconciles the row. Should this
	// fail, the task is retried and its consumers run again, which they
	// take (every consumer is idempotent).
	if err := h.st.SettleOutbox(ctx, ev.ID); err != nil {
		return err
	}
	return nil
}

// permanent reports whether a consumer's error will not go away on retry.
func permanent(err error) bool {
	switch apperr.CodeOf(err) {
	case apperr.Validation, apperr.NotFound, apperr.PreconditionFailed:
		return true
	}
	return false
}

// ServerConfig configures NewServer.
type ServerConfig struct {
	// Concurrency is how many tasks run at once.
	Concurrency int
	// ShutdownTimeout is how long running tasks get to finish on shutdown.
	ShutdownTimeout time.Duration
	// RetryDelay schedules retries (nil: RetryDelay).
	RetryDelay asynq.RetryDelayFunc
	// Poll is how often idle queues are checked for new tasks (default
	// 50ms: an idle check is one cheap Redis call).
	Poll time.Duration
	// RetryPoll is how often due retries and scheduled tasks are moved back
	// to their queues (default 1s).
	RetryPoll time.Duration
}

// NewServer returns an asynq server on redisOpt serving Queues(), logging
// through log. Tasks run at most DefaultTaskTimeout unless enqueued with
// another timeout (the relay and the scheduler set it).
func NewServer(redisOpt asynq.RedisConnOpt, cfg ServerConfig, log *slog.Logger) *asynq.Server {
	if log == nil {
		log = slog.Default()
	}
	if cfg.RetryDelay == nil {
		cfg.RetryDelay = RetryDelay
	}
	if cfg.Poll <= 0 {
		cfg.Poll = 50 * time.Millisecond
	}
	if cfg.RetryPoll <= 0 {
		cfg.RetryPoll = time.Second
	}
	log = log.With("component", "asynq")
	return asynq.NewServer(redisOpt, asynq.Config{
		Concurrency:              cfg.Concurrency,
		Queues:                   Queues(),
		ShutdownTimeout:          cfg.ShutdownTimeout,
		RetryDelayFunc:           cfg.RetryDelay,
		TaskCheckInterval:        cfg.Poll,
		DelayedTaskCheckInterval: cfg.RetryPoll,
		Logger:                   slogAdapter{log: log},
		LogLevel:                 asynqLevel(log),
		ErrorHandler: asynq.ErrorHandlerFunc(func(ctx context.Context, t *asynq.Task, err error) {
			id, _ := asynq.GetTaskID(ctx)
			retried, _ := asynq.GetRetryCount(ctx)
			maxRetry, _ := asynq.GetMaxRetry(ctx)
			level := slog.LevelWarn
			switch {
			case errors.Is(err, notify.ErrInFlight):
				level = slog.LevelDebug // another task is sending it: this one looks again later
			case errors.Is(err, asynq.SkipRetry) || retried >= maxRetry:
				level = slog.LevelError
			}
			log.Log(ctx, level, "task failed", "type", t.Type(), "task_id", id,
				"retried", retried, "max_retry", maxRetry, "err", err)
		}),
	})
}

// asynqLevel is the asynq log level matching the most verbose level log has
// enabled, so asynq does not format messages slog would drop.
func asynqLevel(log *slog.Logger) asynq.LogLevel {
	ctx := context.Background()
	switch {
	case log.Enabled(ctx, slog.LevelDebug):
		return asynq.DebugLevel
	case log.Enabled(ctx, slog.LevelInfo):
		return asynq.InfoLevel
	case log.Enabled(ctx, slog.LevelWarn):
		return asynq.WarnLevel
	default:
		return asynq.ErrorLevel
	}
}

// slogAdapter is asynq's Logger on a slog.Logger.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Debug(args ...any) { a.log.Debug(fmt.Sprint(args...)) }
func (a slogAdapter) Info(args ...any)  { a.log.Info(fmt.Sprint(args...)) }
func (a slogAdapter) Warn(args ...any)  { a.log.Warn(fmt.Sprint(args...)) }
func (a slogAdapter) Error(args ...any) { a.log.Error(fmt.Sprint(args...)) }

// Fatal logs at error level and exits, as asynq's Logger contract requires.
func (a slogAdapter) Fatal(args ...any) {
	a.log.Error(fmt.Sprint(args...), "fatal", true)
	os.Exit(1)
}
