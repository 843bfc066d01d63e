package workers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/notify"
)

// Task types of notification delivery.
const (
	// TypeDeliver sends one delivery; its payload is a DeliverPayload and its
	// task ID the delivery's notify.TaskID.
	TypeDeliver = "notify:deliver"
	// TypeSweepDeliveries re-enqueues deliveries whose task was lost. It
	// carries no payload.
	TypeSweepDeliveries = "notify:sweep-deliveries"
)

// DeliverPayload is the payload of a TypeDeliver task.
type DeliverPayload struct {
	DeliveryID int64 `json:"delivery_id"`
}

// Delivery task settings.
const (
	// DeliverMaxRetry is how often a delivery is retried: with DeliverRetryDelay
	// that is about a day of attempts before it is marked FAILED.
	DeliverMaxRetry = 20
	// DeliverTimeout bounds one delivery attempt (the providers' own
	// timeouts are shorter).
	DeliverTimeout = time.Minute
	// DeliverRetention keeps a completed delivery task (and so its task ID,
	// refusing a duplicate enqueue) for a day.
	DeliverRetention = 24 * time.Hour
	// deliverBackoffBase and deliverBackoffCap bound the exponential backoff.
	deliverBackoffBase = 10 * time.Second
	deliverBackoffCap  = 2 * time.Hour
	// sweepBatch is how many deliveries one sweep re-enqueues at most.
	sweepBatch = 5000
)

// RetryDelay is the retry schedule of partnerd's tasks: deliveries back off
// exponentially from 10 s, doubling to a cap of 2 h, with ±20% jitter (about
// 24 h over DeliverMaxRetry retries); a delivery held by another worker is
// tried again after 1 s, doubling to 30 s; other tasks use asynq's default.
func RetryDelay(n int, err error, t *asynq.Task) time.Duration {
	if t.Type() != TypeDeliver {
		return asynq.DefaultRetryDelayFunc(n, err, t)
	}
	if errors.Is(err, notify.ErrInFlight) {
		// Usually a batch that is about to record it: look again soon, then
		// less often (a dead worker's lease runs for minutes).
		return min(time.Second<<min(n, 5), 30*time.Second)
	}
	d := deliverBackoffCap
	if n < 20 {
		d = min(deliverBackoffBase<<n, deliverBackoffCap)
	}
	jitter := time.Duration(rand.Int64N(int64(d/5)*2+1)) - d/5
	return d + jitter
}

// Notifications wires the notification service into the workers: the
// relay's fan-out of the catalogue's events (RelayOptions.Notifications),
// the delivery task handler, resends, and the sweep that re-enqueues
// deliveries whose task was lost.
type Notifications struct {
	svc    *notify.Service
	client *asynq.Client
	insp   *asynq.Inspector
	log    *slog.Logger
	// after is how long an open delivery waits before the sweep presumes
	// its task lost.
	after time.Duration
}

// NewNotifications returns the glue between svc and the queue of client.
func NewNotifications(svc *notify.Service, client *asynq.Client, log *slog.Logger) *Notifications {
	if log == nil {
		log = slog.Default()
	}
	return &Notifications{svc: svc, client: client, log: log.With("component", "notifications"), after: DefaultReconcileAfter}
}

// WithInspector lets the sweep replace a delivery's task that asynq has
// archived (its retries ran out before the delivery was final) or kept as
// completed, so the delivery gets a task again.
func (n *Notifications) WithInspector(insp *asynq.Inspector) *Notifications {
	n.insp = insp
	return n
}

// WithReconcile sets how long an open delivery waits before the delivery
// sweep presumes its task lost (rc.After) and returns n.
func (n *Notifications) WithReconcile(rc Reconcile) *Notifications {
	n.after = rc.withDefaults().After
	return n
}

// Register adds the consumer of resends to reg. The events of the catalogue
// are fanned out by the relay (RelayOptions.Notifications), a batch at a
// time.
func (n *Notifications) Register(reg *Registry) {
	reg.On(notify.EventDeliveryResent, n.resent)
}

// Handle adds the delivery and sweep task handlers to mux.
func (n *Notifications) Handle(mux *asynq.ServeMux) {
	mux.HandleFunc(TypeDeliver, n.deliver)
	mux.HandleFunc(TypeSweepDeliveries, n.sweep)
}

func (n *Notifications) resent(ctx context.Context, ev OutboxPayload) error {
	var e notify.DeliveryResent
	if err := json.Unmarshal(ev.Payload, &e); err != nil {
		return fmt.Errorf("decode %s: %v: %w", ev.EventType, err, asynq.SkipRetry)
	}
	_, err := n.enqueue(ctx, []notify.Pending{{DeliveryID: e.DeliveryID, TaskID: e.TaskID}})
	return err
}

// enqueue enqueues one TypeDeliver task per pending delivery under its task
// ID, a few at a time; a task that already exists is left alone. It returns
// how many tasks it enqueued.
func (n *Notifications) enqueue(ctx context.Context, pending []notify.Pending) (int, error) {
	var fresh atomic.Int64
	errs := make([]error, len(pending))
	parallel(len(pending), relayParallelism, func(i int) {
		p := pending[i]
		payload, err := json.Marshal(DeliverPayload{DeliveryID: p.DeliveryID})
		if err != nil {
			errs[i] = fmt.Errorf("encode delivery task: %w", err)
			return
		}
		_, err = n.client.EnqueueContext(ctx, asynq.NewTask(TypeDeliver, payload),
			asynq.TaskID(p.TaskID),
			asynq.Queue(QueueNotifications),
			asynq.MaxRetry(DeliverMaxRetry),
			asynq.Timeout(DeliverTimeout),
			asynq.Retention(DeliverRetention))
		switch {
		case err == nil:
			fresh.Add(1)
		case !errors.Is(err, asynq.ErrTaskIDConflict):
			errs[i] = fmt.Errorf("enqueue delivery %d: %w", p.DeliveryID, err)
		}
	})
	return int(fresh.Load()), errors.Join(errs...)
}

func (n *Notifications) deliver(ctx context.Context, t *asynq.Task) error {
	var p DeliverPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("decode %s payload: %v: %w", TypeDeliver, err, asynq.SkipRetry)
	}
	retried, _ := asynq.GetRetryCount(ctx)
	maxRetry, ok := asynq.GetMaxRetry(ctx)
	final := ok && retried >= maxRetry
	err := n.svc.Deliver(ctx, p.DeliveryID, final)
	if err != nil && permanent(err) {
		return fmt.Errorf("%w (permanent: %w)", err, asynq.SkipRetry)
	}
	return err
}

func (n *Notifications) sweep(ctx context.Context, _ *asynq.Task) error {
	stuck, err := n.svc.Stuck(ctx, n.after, sweepBatch)
	if err != nil {
		return err
	}
	if n.insp != nil {
		// A task that can no longer run (archived) or has run (completed)
		// while its delivery still waits holds the task ID: free it.
		for _, p := range stuck {
			info, err := n.insp.GetTaskInfo(QueueNotifications, p.TaskID)
			if err != nil || (info.State != asynq.TaskStateArchived && info.State != asynq.TaskStateCompleted) {
				continue
			}
			if err := n.insp.DeleteTask(QueueNotifications, p.TaskID); err != nil && !errors.Is(err, asynq.ErrTaskNotFound) {
				return fmt.Errorf("free the task of delivery %d: %w", p.DeliveryID, err)
			}
		}
	}
	// Most of them still have their task (queued behind others); only the
	// ones whose task is gone are enqueued.
	requeued, err := n.enqueue(ctx, stuck)
	if requeued > 0 {
		n.log.InfoContext(ctx, "re-enqueued deliveries whose task was lost", "deliveries", requeued, "waiting", len(stuck))
	}
	return err
}
