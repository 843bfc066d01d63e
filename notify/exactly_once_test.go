package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/email"
	"partnerd/notify/email/emailtest"
	"partnerd/notify/sms"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// onceEnv is a notification service without workers: the test plays the
// queue, calling FanOut and Deliver itself.
type onceEnv struct {
	tr    *testkit.Tree
	clock *storetest.Clock
	svc   *notify.Service
	smtp  *emailtest.Sink
	sms   *testkit.SMSSink
	cust  *models.Account
	// adminEmail is the customer's admin's address.
	adminEmail string
}

// noDedupe is an SMS provider that does not drop a repeated id.
type noDedupe struct{ sms.Provider }

func (noDedupe) Deduplicates() bool { return false }

func newOnceEnv(t *testing.T, dedupe bool) *onceEnv { return newOnceEnvWith(t, dedupe) }

// newOnceEnvTB is the environment of the benchmarks: the customer's admin
// gets credit.limit_set by email only.
func newOnceEnvTB(b testing.TB) *onceEnv {
	e := newOnceEnvWith(b, true)
	var u models.User
	if err := e.tr.Store.DB.Where("account_id = ?", e.cust.ID).First(&u).Error; err != nil {
		b.Fatal(err)
	}
	token, _, err := e.tr.Accounts.CreateToken(e.tr.Platform.Ctx, u.ID, 0)
	if err != nil {
		b.Fatal(err)
	}
	p, err := e.tr.Accounts.Authenticate(context.Background(), token)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := e.svc.SetPreference(accounts.WithPrincipal(context.Background(), p), notify.EventCreditLimitSet, models.ChannelInSite, false); err != nil {
		b.Fatal(err)
	}
	return e
}

func newOnceEnvWith(t testing.TB, dedupe bool) *onceEnv {
	clock := storetest.NewClock(time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC))
	e := &onceEnv{clock: clock}
	e.tr = testkit.NewTreeOn(t, storetest.New(t, store.Options{Clock: clock}))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.smtp = emailtest.NewSink(t)
	mail, err := email.New(email.Config{Host: e.smtp.Host(), Port: e.smtp.Port(), TLS: "none", From: "notify@partnerd.test", Timeout: 2 * time.Second}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mail.Close() })
	e.sms = testkit.NewSMSSink(t)
	var provider sms.Provider
	if provider, err = sms.New(sms.Config{Provider: "webhook", WebhookURL: e.sms.URL()}, nil, log); err != nil {
		t.Fatal(err)
	}
	if !dedupe {
		provider = noDedupe{provider}
	}
	if e.svc, err = notify.New(e.tr.Store, notify.Options{Email: mail, SMS: provider, Log: log, SendLease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	e.cust = customer(t, e.tr, e.tr.D1.Account.ID, "Once Co", nil, nil)
	e.adminEmail = user(t, e.tr, e.cust.ID, "+8613800138031", "en-US", models.RoleAdmin).User.Email
	return e
}

// fanOut fans out one arrears event for the customer and returns its
// deliveries by channel (the customer admin's only).
func (e *onceEnv) fanOut(t *testing.T) map[models.Channel]int64 {
	t.Helper()
	payload, _ := json.Marshal(notify.ArrearsChanged{CustomerID: e.cust.ID, Entered: true, Available: "-5", Month: "2026-11"})
	pending, err := e.svc.FanOut(context.Background(), 9001, notify.EventArrearsEntered, payload)
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.FanOut(context.Background(), 9001, notify.EventArrearsEntered, payload)
	if err != nil || len(again) != len(pending) {
		t.Fatalf("second fan-out: %d pending (first %d), %v", len(again), len(pending), err)
	}
	var list []models.Delivery
	e.tr.Store.DB.Where("outbox_id = 9001 AND account_id = ?", e.cust.ID).Find(&list)
	out := map[models.Channel]int64{}
	for _, d := range list {
		out[d.Channel] = d.ID
	}
	if len(out) != 3 || len(list) != 3 {
		t.Fatalf("deliveries %+v", list)
	}
	return out
}

// mails are the emails the sink got for the customer's admin (a delivery
// task may send other waiting emails, the partner's among them, in its batch).
func (e *onceEnv) mails() []emailtest.Received {
	var out []emailtest.Received
	for _, m := range e.smtp.Messages() {
		if len(m.To) == 1 && m.To[0] == e.adminEmail {
			out = append(out, m)
		}
	}
	return out
}

func (e *onceEnv) status(t *testing.T, id int64) models.Delivery {
	t.Helper()
	var d models.Delivery
	if err := e.tr.Store.DB.First(&d, id).Error; err != nil {
		t.Fatal(err)
	}
	return d
}

// The same task delivered many times at once: one inbox row, one email, one
// SMS.
func TestDeliver_DuplicateTasksSendOnce(t *testing.T) {
	e := newOnceEnv(t, true)
	ids := e.fanOut(t)
	var wg sync.WaitGroup
	for range 8 {
		for _, id := range ids {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// A duplicate finding the delivery in flight is told to retry.
				for {
					err := e.svc.Deliver(context.Background(), id, false)
					if !errors.Is(err, notify.ErrInFlight) {
						if err != nil {
							t.Error(err)
						}
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}()
		}
	}
	wg.Wait()
	var inbox int64
	e.tr.Store.DB.Table("inbox_messages").Where("delivery_id = ?", ids[models.ChannelInSite]).Count(&inbox)
	if mails := e.mails(); inbox != 1 || len(mails) != 1 || len(e.sms.Posts()) != 1 {
		t.Fatalf("inbox %d, emails %d, SMS posts %d", inbox, len(mails), len(e.sms.Posts()))
	}
	for ch, id := range ids {
		if d := e.status(t, id); d.Status != models.DeliverySent || d.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts", ch, d.Status, d.Attempts)
		}
	}
}

// A worker dies after the provider accepted and before recording: the claim
// stays, its lease runs out, and the next task resends under the same id (SMS
// through a deduplicating provider: the phone gets it once) or Message-ID
// (email: the documented window), recording the lost attempt as UNKNOWN.
func TestDeliver_WorkerDiesAfterSend(t *testing.T) {
	e := newOnceEnv(t, true)
	ids := e.fanOut(t)
	died := errors.New("killed")
	notify.SetAfterSend(e.svc, func() error { return died })
	for _, ch := range []models.Channel{models.ChannelSMS, models.ChannelEmail} {
		if err := e.svc.Deliver(context.Background(), ids[ch], false); !errors.Is(err, died) {
			t.Fatalf("%s: %v", ch, err)
		}
		if d := e.status(t, ids[ch]); d.Status != models.DeliverySending {
			t.Fatalf("%s is %s", ch, d.Status)
		}
		// Within the lease another task waits.
		if err := e.svc.Deliver(context.Background(), ids[ch], false); !errors.Is(err, notify.ErrInFlight) {
			t.Fatalf("%s within the lease: %v", ch, err)
		}
	}
	notify.SetAfterSend(e.svc, nil)
	e.clock.Advance(2 * time.Minute)
	for _, ch := range []models.Channel{models.ChannelSMS, models.ChannelEmail} {
		if err := e.svc.Deliver(context.Background(), ids[ch], false); err != nil {
			t.Fatal(err)
		}
		view, err := e.svc.Delivery(e.tr.Platform.Ctx, ids[ch])
		if err != nil {
			t.Fatal(err)
		}
		if view.Status != models.DeliverySent || len(view.AttemptLog) != 2 ||
			*view.AttemptLog[0].Outcome != models.OutcomeUnknown || *view.AttemptLog[1].Outcome != models.OutcomeSent {
			t.Fatalf("%s: %s, attempts %+v", ch, view.Status, view.AttemptLog)
		}
	}
	posts := e.sms.Posts()
	if len(posts) != 2 || posts[0].ID != posts[1].ID || len(e.sms.Delivered()) != 1 {
		t.Fatalf("SMS posts %+v", posts)
	}
	mails := e.mails()
	if len(mails) != 2 || mails[0].MessageID != mails[1].MessageID {
		t.Fatalf("emails %d (the resend must carry the same Message-ID)", len(mails))
	}
}

// Through a provider that does not deduplicate, an SMS whose outcome is
// unknown is not sent again: it is FAILED for an admin to resend.
func TestDeliver_UnknownOutcomeWithoutDedupeIsNotResent(t *testing.T) {
	e := newOnceEnv(t, false)
	ids := e.fanOut(t)
	notify.SetAfterSend(e.svc, func() error { return errors.New("killed") })
	_ = e.svc.Deliver(context.Background(), ids[models.ChannelSMS], false)
	notify.SetAfterSend(e.svc, nil)
	e.clock.Advance(2 * time.Minute)
	if err := e.svc.Deliver(context.Background(), ids[models.ChannelSMS], false); err != nil {
		t.Fatal(err)
	}
	d := e.status(t, ids[models.ChannelSMS])
	if d.Status != models.DeliveryFailed || d.LastError == nil || len(e.sms.Posts()) != 1 {
		t.Fatalf("%s (%v), %d posts", d.Status, d.LastError, len(e.sms.Posts()))
	}
}

// A handler cancelled while the SMTP server holds its reply records the
// attempt anyway (to retry), and the retry sends it: one Message-ID.
func TestDeliver_CancelledMidwayThenRetried(t *testing.T) {
	e := newOnceEnv(t, true)
	ids := e.fanOut(t)
	e.smtp.Hold()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.svc.Deliver(ctx, ids[models.ChannelEmail], false) }()
	deadline := time.Now().Add(wait)
	for e.smtp.Holding() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the message never reached the server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("a cancelled delivery reported success")
	}
	e.smtp.Release()
	if d := e.status(t, ids[models.ChannelEmail]); d.Status != models.DeliveryPending || d.Attempts != 1 {
		t.Fatalf("after the cancel: %s, %d attempts", d.Status, d.Attempts)
	}
	if err := e.svc.Deliver(context.Background(), ids[models.ChannelEmail], false); err != nil {
		t.Fatal(err)
	}
	if d := e.status(t, ids[models.ChannelEmail]); d.Status != models.DeliverySent {
		t.Fatalf("after the retry: %s", d.Status)
	}
	seen := map[string]bool{}
	for _, m := range e.mails() {
		seen[m.MessageID] = true
	}
	if len(seen) != 1 {
		t.Fatalf("%d distinct emails", len(seen))
	}
	// Delivered again (a duplicated task): nothing more is sent.
	before := len(e.mails())
	if err := e.svc.Deliver(context.Background(), ids[models.ChannelEmail], false); err != nil || len(e.mails()) != before {
		t.Fatalf("duplicate task sent again: %v", err)
	}
}

// The last retry of a retryable failure marks the delivery FAILED.
func TestDeliver_LastRetryFails(t *testing.T) {
	e := newOnceEnv(t, true)
	ids := e.fanOut(t)
	e.sms.Script(503)
	if err := e.svc.Deliver(context.Background(), ids[models.ChannelSMS], true); err != nil {
		t.Fatal(err)
	}
	if d := e.status(t, ids[models.ChannelSMS]); d.Status != models.DeliveryFailed {
		t.Fatalf("%s", d.Status)
	}
}

// One delivery task sends a batch of the emails waiting for their first
// attempt (one commit claims them, one records them); the batch members'
// own tasks then find them sent. Every email goes out once.
func TestDeliver_EmailBatch(t *testing.T) {
	e := newOnceEnvTB(t)
	payload, _ := json.Marshal(notify.CreditLimitSet{PartnerID: e.cust.ID, Limit: "1.00", Previous: "0.00"})
	var ids []int64
	for i := range 20 {
		pending, err := e.svc.FanOut(context.Background(), int64(500+i), notify.EventCreditLimitSet, payload)
		if err != nil || len(pending) != 1 || pending[0].Channel != models.ChannelEmail {
			t.Fatalf("fan-out %d: %+v, %v", i, pending, err)
		}
		ids = append(ids, pending[0].DeliveryID)
	}
	if err := e.svc.Deliver(context.Background(), ids[5], false); err != nil {
		t.Fatal(err)
	}
	if got := len(e.mails()); got != 16 {
		t.Fatalf("one task sent %d emails, want a batch of 16", got)
	}
	for _, id := range ids {
		if err := e.svc.Deliver(context.Background(), id, false); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, m := range e.mails() {
		if seen[m.MessageID] {
			t.Fatalf("%s sent twice", m.MessageID)
		}
		seen[m.MessageID] = true
	}
	if len(seen) != 20 {
		t.Fatalf("%d emails", len(seen))
	}
	for _, id := range ids {
		if d := e.status(t, id); d.Status != models.DeliverySent || d.Attempts != 1 {
			t.Fatalf("delivery %d: %s after %d attempts", id, d.Status, d.Attempts)
		}
	}
}
