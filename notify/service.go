package notify

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"partnerd/models"
	"partnerd/notify/email"
	"partnerd/notify/sms"
	"partnerd/notify/webhook"
	"partnerd/store"
)

// Options configure a Service. The API process needs none of the senders;
// a worker needs Email and SMS to deliver those channels.
type Options struct {
	// Email sends EMAIL deliveries.
	Email email.Sender
	// SMS sends SMS deliveries.
	SMS sms.Provider
	// Webhooks sends WEBHOOK deliveries (a worker needs it).
	Webhooks *webhook.Sender
	// WebhookGuard checks endpoint URLs at registration (default: one
	// without an allow-list, refusing every private address).
	WebhookGuard *webhook.Guard
	// Hub publishes new inbox messages to inboxMessageReceived subscribers.
	Hub *Hub
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
	// SendLease is how long an attempt may be in flight before another
	// worker may take the delivery over as "outcome unknown" (default 2m:
	// longer than any provider's timeout).
	SendLease time.Duration
}

// Service turns committed events into deliveries and delivers them
// (DOMAIN.md §7): the catalogue says who is told, preferences on which
// channels, the templates what; every delivery is one row whose key is
// unique per (event, recipient, channel), sent at most once per channel's
// guarantee (see Deliver). It also serves the inbox, the preferences and the
// delivery log.
type Service struct {
	st     *store.Store
	cat    *Catalogue
	render *Renderer
	mail   email.Sender
	sms    sms.Provider
	hooks  *webhook.Sender
	guard  *webhook.Guard
	hub    *Hub
	log    *slog.Logger
	lease  time.Duration

	// afterSend, when set (tests), runs after a provider accepted a message
	// and before the outcome is recorded; an error returned from it stops
	// Deliver there, as if the worker had died.
	afterSend func() error
}

// New returns the notification service on st.
func New(st *store.Store, opts Options) (*Service, error) {
	cat := NewCatalogue()
	r, err := NewRenderer(cat)
	if err != nil {
		return nil, fmt.Errorf("notification templates: %w", err)
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.SendLease <= 0 {
		opts.SendLease = 2 * time.Minute
	}
	if opts.WebhookGuard == nil {
		opts.WebhookGuard = webhook.NewGuard(nil)
	}
	return &Service{st: st, cat: cat, render: r, mail: opts.Email, sms: opts.SMS, hooks: opts.Webhooks, guard: opts.WebhookGuard, hub: opts.Hub,
		log: opts.Log.With("component", "notify"), lease: opts.SendLease}, nil
}

// Catalogue is the service's event catalogue.
func (s *Service) Catalogue() *Catalogue { return s.cat }

// Pending is a delivery that waits for its queue task: TaskID is the task's
// unique ID (the delivery key, with the generation after a resend).
type Pending struct {
	DeliveryID int64
	Channel    models.Channel
	TaskID     string
}

// TaskID is the queue task ID of a delivery's generation: its key the first
// time, key#<generation> after a resend, so each generation is enqueued at
// most once.
func TaskID(key string, generation int) string {
	if generation <= 1 {
		return "delivery:" + key
	}
	return "delivery:" + key + "#" + strconv.Itoa(generation)
}

// InboxUserTopic is the live topic of a user's new inbox messages.
func InboxUserTopic(userID int64) string { return "inbox:user:" + strconv.FormatInt(userID, 10) }

// InboxAccountTopic is the live topic of an account's account-wide inbox
// messages (those for accounts without a qualifying user).
func InboxAccountTopic(accountID int64) string {
	return "inbox:account:" + strconv.FormatInt(accountID, 10)
}
