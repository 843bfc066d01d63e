package testkit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"partnerd/guard"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/email"
	"partnerd/notify/email/emailtest"
	"partnerd/notify/sms"
	"partnerd/notify/webhook"
	"partnerd/store/storetest"
	"partnerd/workers"
)

// Workers is the background half of the product running in the test: the
// outbox relay and an asynq server with every handler, on the test's own
// Redis database, sending email to a real SMTP server (SMTP) and SMS to a
// local webhook (SMS).
type Workers struct {
	Notify   *notify.Service
	SMTP     *emailtest.Sink
	SMS      *SMSSink
	Queue    *asynq.Client
	Inspect  *asynq.Inspector
	RedisURL string
	Prefix   string
	Hub      *notify.Hub
	Guard    *guard.Service
	// Migration is the migration service the workers execute with.
	Migration *migration.Service
}

// WorkerOptions tune StartWorkers; the zero value is fine.
type WorkerOptions struct {
	// SendLease is the notification lease (default 2m).
	SendLease time.Duration
	// RedisURL and Prefix share the Redis database of an API (NewAPIOn).
	RedisURL, Prefix string
	// Guard is the guard service the workers enforce with (default: one
	// with the default FREEZE_RETENTION in Beijing time).
	Guard *guard.Service
	// Migration is the migration service the workers execute with
	// (default: one with the default TTL in Beijing time).
	Migration *migration.Service
	// LogWriter receives everything the workers log (relay, task server,
	// notification senders), as text, from debug level up; nil discards it.
	LogWriter io.Writer
	// SMTPUsername and SMTPPassword, when SMTPUsername is set, make the
	// email sender authenticate to the test SMTP server (SMTP AUTH over
	// plain SMTP: the sink accepts any credentials and records the user).
	SMTPUsername, SMTPPassword string
}

// LoopbackGuard is the webhook guard of tests: the operator allow-list
// holds the loopback networks, where the tests' receivers listen.
func LoopbackGuard() *webhook.Guard {
	allow, err := webhook.ParseNetworks("127.0.0.0/8,::1")
	if err != nil {
		panic(err)
	}
	return webhook.NewGuard(allow)
}

// StartWorkers starts the relay and a worker server on tr's database. Task
// retries wait 20 ms instead of the production backoff. Everything stops at
// the end of the test.
func StartWorkers(t testing.TB, tr *Tree, opts WorkerOptions) *Workers {
	t.Helper()
	w := &Workers{RedisURL: opts.RedisURL, Prefix: opts.Prefix}
	if w.RedisURL == "" {
		w.RedisURL, w.Prefix = storetest.RedisDB(t)
	}
	ropt, err := redis.ParseURL(w.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	t.Cleanup(func() { _ = rdb.Close() })
	qopt, err := asynq.ParseRedisURI(w.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	log := NewLogger(opts.LogWriter)
	w.Hub = notify.NewHub(rdb, w.Prefix, log)
	t.Cleanup(func() { _ = w.Hub.Close() })

	w.SMTP = emailtest.NewSink(t)
	mail, err := email.New(email.Config{Host: w.SMTP.Host(), Port: w.SMTP.Port(), TLS: "none",
		Username: opts.SMTPUsername, Password: opts.SMTPPassword,
		From: "notify@partnerd.test", Timeout: 2 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mail.Close() })
	w.SMS = NewSMSSink(t)
	smsProvider, err := sms.New(sms.Config{Provider: "webhook", WebhookURL: w.SMS.URL(), Timeout: 2 * time.Second}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	hooks := webhook.NewSender(LoopbackGuard(), 2*time.Second)
	t.Cleanup(hooks.Close)
	w.Notify, err = notify.New(tr.Store, notify.Options{Email: mail, SMS: smsProvider, Webhooks: hooks, WebhookGuard: LoopbackGuard(),
		Hub: w.Hub, Log: log, SendLease: opts.SendLease})
	if err != nil {
		t.Fatal(err)
	}

	w.Queue = asynq.NewClient(qopt)
	t.Cleanup(func() { _ = w.Queue.Close() })
	w.Inspect = asynq.NewInspector(qopt)
	t.Cleanup(func() { _ = w.Inspect.Close() })
	reg := workers.NewRegistry()
	nw := workers.NewNotifications(w.Notify, w.Queue, log).WithInspector(w.Inspect)
	nw.Register(reg)
	mux := workers.NewMux(reg, tr.Store, log)
	nw.Handle(mux)
	w.Guard = opts.Guard
	if w.Guard == nil {
		w.Guard = guard.New(tr.Store, guard.Options{Location: Shanghai, Log: log})
	}
	gw := workers.NewGuard(w.Guard, w.Queue, log)
	gw.Register(reg)
	gw.Handle(mux)
	w.Migration = opts.Migration
	if w.Migration == nil {
		w.Migration = migration.New(tr.Store, migration.Options{Location: Shanghai, PublicURL: "https://partner.test", Log: log})
	}
	mw := workers.NewMigration(w.Migration, w.Queue, log)
	mw.Register(reg)
	mw.Handle(mux)
	srv := workers.NewServer(qopt, workers.ServerConfig{Concurrency: 8, ShutdownTimeout: 5 * time.Second, Poll: 20 * time.Millisecond, RetryPoll: 20 * time.Millisecond,
		RetryDelay: func(int, error, *asynq.Task) time.Duration { return 20 * time.Millisecond }}, log)
	if err := srv.Start(mux); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	ctx, cancel := context.WithCancel(context.Background())
	relay := workers.NewRelay(tr.Store, w.Queue, w.Hub, log, workers.RelayOptions{Sweep: 50 * time.Millisecond, Notifications: nw, Registry: reg})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = relay.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return w
}

// WaitDeliveries polls until the deliveries of outbox events of eventType
// number n and are all final (SENT or FAILED), and returns them ordered by
// id; it fails the test after timeout.
func (w *Workers) WaitDeliveries(t testing.TB, tr *Tree, eventType string, n int, timeout time.Duration) []models.Delivery {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		var list []models.Delivery
		if err := tr.Store.DB.Where("event_type = ?", eventType).Order("id").Find(&list).Error; err != nil {
			t.Fatal(err)
		}
		final := 0
		for _, d := range list {
			if d.Status == models.DeliverySent || d.Status == models.DeliveryFailed {
				final++
			}
		}
		if len(list) >= n && final == len(list) {
			return list
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %d final %s deliveries: have %d, %d final", timeout, n, eventType, len(list), final)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SMSPost is one request the SMS sink received.
type SMSPost struct {
	ID, To, Text string
	// Status is what the sink answered.
	Status int
}

// SMSSink is a local SMS webhook (RUNNING.md's SMS_PROVIDER=webhook
// contract) that records every POST and answers the scripted statuses in
// order, then 200.
type SMSSink struct {
	srv    *httptest.Server
	mu     sync.Mutex
	posts  []SMSPost
	script []int
}

// NewSMSSink starts a sink, stopped at the end of the test.
func NewSMSSink(t testing.TB) *SMSSink {
	s := &SMSSink{}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *SMSSink) serve(w http.ResponseWriter, r *http.Request) {
	var body struct{ ID, To, Text string }
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	status := http.StatusOK
	if len(s.script) > 0 {
		status, s.script = s.script[0], s.script[1:]
	}
	s.posts = append(s.posts, SMSPost{ID: body.ID, To: body.To, Text: body.Text, Status: status})
	s.mu.Unlock()
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"ok":` + map[bool]string{true: "true", false: "false"}[status < 300] + `}`))
}

// URL is the webhook's URL.
func (s *SMSSink) URL() string { return s.srv.URL }

// Script makes the next requests answer these statuses, in order.
func (s *SMSSink) Script(statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = append(s.script, statuses...)
}

// Posts returns every request received, in order.
func (s *SMSSink) Posts() []SMSPost {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMSPost(nil), s.posts...)
}

// Delivered returns the messages accepted (2xx), each id once: what phones
// got, since the id is the receiver's dedupe key.
func (s *SMSSink) Delivered() map[string]SMSPost {
	out := map[string]SMSPost{}
	for _, p := range s.Posts() {
		if p.Status < 300 {
			if _, dup := out[p.ID]; !dup {
				out[p.ID] = p
			}
		}
	}
	return out
}
