package notify_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/webhook"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// receiver is a partner's webhook receiver: it records what it is sent and
// answers with status.
type receiver struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	got    []received
}

type received struct {
	header http.Header
	body   []byte
}

func newReceiver(t testing.TB) *receiver {
	r := &receiver{status: http.StatusOK}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{header: req.Header.Clone(), body: body})
		status := r.status
		r.mu.Unlock()
		w.WriteHeader(status)
		_, _ = w.Write([]byte(http.StatusText(status)))
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

func (r *receiver) requests() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// hookEnv is a tree on a test clock with a notification service that sends
// webhooks to loopback receivers.
type hookEnv struct {
	tr    *testkit.Tree
	clock *storetest.Clock
	svc   *notify.Service
}

func newHookEnv(t testing.TB) *hookEnv {
	clock := storetest.NewClock(time.Date(2026, 11, 20, 2, 0, 0, 0, time.UTC))
	e := &hookEnv{clock: clock, tr: testkit.NewTreeOn(t, storetest.New(t, store.Options{Clock: clock}))}
	sender := webhook.NewSender(testkit.LoopbackGuard(), 2*time.Second)
	t.Cleanup(sender.Close)
	var err error
	e.svc, err = notify.New(e.tr.Store, notify.Options{Webhooks: sender, WebhookGuard: testkit.LoopbackGuard(),
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// emit commits ev and fans it out, returning its outbox ID and the WEBHOOK
// deliveries it owes.
func (e *hookEnv) emit(t *testing.T, ev store.Event) (int64, []notify.Pending) {
	t.Helper()
	var id int64
	if err := e.tr.Store.InTx(context.Background(), func(tx *store.Tx) error {
		ids, err := tx.EmitIDs(ev)
		if err == nil {
			id = ids[0]
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return id, e.fanOut(t, id)
}

// fanOut fans out the outbox row id and returns its WEBHOOK deliveries.
func (e *hookEnv) fanOut(t *testing.T, id int64) []notify.Pending {
	t.Helper()
	var row models.OutboxEvent
	if err := e.tr.Store.DB.First(&row, id).Error; err != nil {
		t.Fatal(err)
	}
	pending, err := e.svc.FanOut(context.Background(), row.ID, row.EventType, json.RawMessage(row.Payload))
	if err != nil {
		t.Fatal(err)
	}
	var out []notify.Pending
	for _, p := range pending {
		if p.Channel == models.ChannelWebhook {
			out = append(out, p)
		}
	}
	return out
}

func (e *hookEnv) delivery(t *testing.T, id int64) models.Delivery {
	t.Helper()
	var d models.Delivery
	if err := e.tr.Store.DB.First(&d, id).Error; err != nil {
		t.Fatal(err)
	}
	return d
}

func (e *hookEnv) endpoint(t *testing.T, id int64) notify.WebhookEndpoint {
	t.Helper()
	var ep notify.WebhookEndpoint
	if err := e.tr.Store.DB.First(&ep, id).Error; err != nil {
		t.Fatal(err)
	}
	return ep
}

// An event about a second-level reseller's customer reaches the endpoints
// above it that subscribe to its type — signed so that the receiver can
// verify it — and no other; replays deliver nothing twice.
func TestWebhook_SignedDeliveryToTheSubtreesEndpoints(t *testing.T) {
	e := newHookEnv(t)
	rcv := newReceiver(t)
	d1, secret, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL+"/hooks", []string{notify.EventCreditAllocated}, "ERP")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "whsec_") || d1.SecretHint() != "…"+secret[len(secret)-4:] {
		t.Fatalf("secret %q, hint %q", secret, d1.SecretHint())
	}
	other := newReceiver(t)
	// R2's subtree does not hold C1; D1's second endpoint wants other types.
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.R2.Ctx, e.tr.R2.Account.ID, other.URL, []string{notify.EventCreditAllocated}, ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, other.URL, []string{notify.EventArrearsEntered}, ""); err != nil {
		t.Fatal(err)
	}

	ev := notify.CreditAllocated{PartnerID: e.tr.R1.Account.ID, ChildID: e.tr.C1.Account.ID, Amount: "2000.00", Limit: "5000.00"}
	outboxID, pending := e.emit(t, ev)
	if len(pending) != 1 {
		t.Fatalf("%d webhook deliveries, want 1 (D1's ERP endpoint)", len(pending))
	}
	if err := e.svc.Deliver(context.Background(), pending[0].DeliveryID, false); err != nil {
		t.Fatal(err)
	}
	got := rcv.requests()
	if len(got) != 1 || len(other.requests()) != 0 {
		t.Fatalf("receiver got %d, the other %d", len(got), len(other.requests()))
	}
	h := got[0].header
	if err := webhook.Verify(h.Get(webhook.SignatureHeader), got[0].body, secret, 5*time.Minute, e.clock.Now()); err != nil {
		t.Fatalf("signature does not verify: %v (%s)", err, h.Get(webhook.SignatureHeader))
	}
	if err := webhook.Verify(h.Get(webhook.SignatureHeader), got[0].body, "whsec_wrong", 0, e.clock.Now()); err == nil {
		t.Fatal("a wrong secret verifies")
	}
	var body struct {
		ID   string
		Type string
		Time time.Time
		Data notify.CreditAllocated
	}
	if err := json.Unmarshal(got[0].body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != notify.WebhookEventID(outboxID) || body.Type != notify.EventCreditAllocated || body.Data != ev ||
		!body.Time.Equal(e.clock.Now()) || h.Get(webhook.EventIDHeader) != body.ID || h.Get(webhook.EventTypeHeader) != body.Type {
		t.Fatalf("body %s, headers %v", got[0].body, h)
	}
	d := e.delivery(t, pending[0].DeliveryID)
	if d.Status != models.DeliverySent || d.Attempts != 1 || d.AccountID != e.tr.D1.Account.ID || d.Address != rcv.URL+"/hooks" {
		t.Fatalf("delivery %+v", d)
	}
	if ep := e.endpoint(t, d1.ID); ep.LastSuccessAt == nil || ep.FailingSince != nil {
		t.Fatalf("endpoint health %+v", ep)
	}

	// Replays: the fan-out creates nothing new, a second task sends nothing.
	if again := e.fanOut(t, outboxID); len(again) != 0 {
		t.Fatalf("replayed fan-out left %d waiting", len(again))
	}
	if err := e.svc.Deliver(context.Background(), pending[0].DeliveryID, false); err != nil {
		t.Fatal(err)
	}
	var n int64
	e.tr.Store.DB.Model(&models.Delivery{}).Where("channel = 'WEBHOOK'").Count(&n)
	if n != 1 || len(rcv.requests()) != 1 {
		t.Fatalf("%d webhook deliveries, %d requests after replays", n, len(rcv.requests()))
	}

	// The log shows it with its attempt.
	page, err := e.svc.WebhookDeliveries(e.tr.D1.Ctx, d1.ID, nil, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 || len(page.Deliveries[0].AttemptLog) != 1 || !strings.HasPrefix(page.Deliveries[0].AttemptLog[0].Response, "HTTP 200") {
		t.Fatalf("log %+v", page)
	}
}

// A failing endpoint is retried with backoff for 24 hours; one that has
// failed every delivery for 24 hours is disabled, its waiting deliveries
// FAILED and its partner's admins told. A test event still reaches it, and
// once enabled again a resent delivery goes through.
func TestWebhook_RetriesForADayThenDisabled(t *testing.T) {
	e := newHookEnv(t)
	rcv := newReceiver(t)
	rcv.answer(http.StatusServiceUnavailable)
	ep, secret, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, []string{notify.EventCreditAllocated}, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := notify.CreditAllocated{PartnerID: e.tr.D1.Account.ID, ChildID: e.tr.C3.Account.ID, Amount: "1.00", Limit: "1.00"}
	_, p1 := e.emit(t, ev)
	t0 := e.clock.Now()
	first := p1[0].DeliveryID
	if err := e.svc.Deliver(context.Background(), first, false); err == nil {
		t.Fatal("a 503 is not retried")
	}
	d := e.delivery(t, first)
	if d.Status != models.DeliveryPending || d.LastError == nil || !strings.Contains(*d.LastError, "503") {
		t.Fatalf("after a 503: %+v", d)
	}
	if got := e.endpoint(t, ep.ID); got.FailingSince == nil || !got.FailingSince.Equal(t0) || !got.Enabled {
		t.Fatalf("endpoint after the first failure: %+v", got)
	}

	e.clock.Advance(23 * time.Hour)
	if err := e.svc.Deliver(context.Background(), first, false); err == nil {
		t.Fatal("a 503 is not retried")
	}
	if got := e.endpoint(t, ep.ID); !got.Enabled {
		t.Fatal("disabled before 24 hours of failures")
	}
	_, p2 := e.emit(t, ev)
	second := p2[0].DeliveryID

	e.clock.Advance(time.Hour + time.Minute)
	if err := e.svc.Deliver(context.Background(), first, false); err != nil {
		t.Fatalf("the last attempt is final, not retried: %v", err)
	}
	d = e.delivery(t, first)
	if d.Status != models.DeliveryFailed || d.Attempts != 3 {
		t.Fatalf("after 24 hours: %s after %d attempts", d.Status, d.Attempts)
	}
	got := e.endpoint(t, ep.ID)
	if got.Enabled || got.DisabledReason == nil || !strings.Contains(*got.DisabledReason, "every delivery failed since") {
		t.Fatalf("endpoint not disabled: %+v", got)
	}
	// The waiting delivery was FAILED by the disabling, or — when the
	// first's task claimed it along in its batch and its attempt was in
	// flight then — is FAILED by its own task, without another request.
	if err := e.svc.Deliver(context.Background(), second, false); err != nil {
		t.Fatal(err)
	}
	d2 := e.delivery(t, second)
	if d2.Status != models.DeliveryFailed || d2.Attempts > 2 {
		t.Fatalf("the waiting delivery: %s after %d attempts", d2.Status, d2.Attempts)
	}
	// Every attempt that found the endpoint enabled posted, and no other:
	// the two attempts of the last batch run at once, and the one recorded
	// first may disable the endpoint before the other loads it.
	var posted int64
	e.tr.Store.DB.Model(&models.DeliveryAttempt{}).Where("delivery_id IN ? AND response LIKE '%HTTP 503%'", []int64{first, second}).Count(&posted)
	if n := int64(len(rcv.requests())); n != posted || n < 3 || n > 4 {
		t.Fatalf("%d requests for %d attempts that posted", n, posted)
	}

	// The partner's admin is told, in-site and by email.
	var told models.OutboxEvent
	if err := e.tr.Store.DB.Where("event_type = ?", notify.EventWebhookDisabled).First(&told).Error; err != nil {
		t.Fatalf("no %s event: %v", notify.EventWebhookDisabled, err)
	}
	pending, err := e.svc.FanOut(context.Background(), told.ID, told.EventType, json.RawMessage(told.Payload))
	if err != nil {
		t.Fatal(err)
	}
	var toAdmin int
	for _, p := range pending {
		if d := e.delivery(t, p.DeliveryID); d.UserID != nil && *d.UserID == e.tr.D1.User.ID {
			toAdmin++
			if !strings.Contains(d.Subject, "disabled") {
				t.Errorf("subject %q", d.Subject)
			}
		}
	}
	if toAdmin != 2 {
		t.Fatalf("D1's admin gets %d deliveries, want 2 (in-site, email)", toAdmin)
	}

	// A test event reaches the disabled endpoint and does not change its health.
	rcv.answer(http.StatusNoContent)
	sent, err := e.svc.SendTestWebhook(e.tr.D1.Ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	var testRow models.OutboxEvent
	e.tr.Store.DB.Where("event_type = ?", notify.EventWebhookTest).First(&testRow)
	if sent.EventID != notify.WebhookEventID(testRow.ID) {
		t.Fatalf("event id %s, outbox %d", sent.EventID, testRow.ID)
	}
	tp := e.fanOut(t, testRow.ID)
	if len(tp) != 1 {
		t.Fatalf("%d test deliveries", len(tp))
	}
	if err := e.svc.Deliver(context.Background(), tp[0].DeliveryID, false); err != nil {
		t.Fatal(err)
	}
	reqs := rcv.requests()
	last := reqs[len(reqs)-1]
	if last.header.Get(webhook.EventTypeHeader) != notify.EventWebhookTest || webhook.Verify(last.header.Get(webhook.SignatureHeader), last.body, secret, time.Minute, e.clock.Now()) != nil {
		t.Fatalf("test request %v %s", last.header, last.body)
	}
	if got := e.endpoint(t, ep.ID); got.Enabled || got.LastSuccessAt != nil {
		t.Fatalf("a test changed the endpoint's health: %+v", got)
	}

	// Enabled again: its record starts afresh; a resent delivery goes through.
	if got, err := e.svc.SetWebhookEndpointEnabled(e.tr.D1.Ctx, ep.ID, true, ""); err != nil || !got.Enabled || got.FailingSince != nil || got.DisabledReason != nil {
		t.Fatalf("enable: %+v %v", got, err)
	}
	if _, err := e.svc.Resend(e.tr.D1.Ctx, second); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Deliver(context.Background(), second, false); err != nil {
		t.Fatal(err)
	}
	if d2 := e.delivery(t, second); d2.Status != models.DeliverySent || d2.RetryUntil == nil || !d2.RetryUntil.Equal(e.clock.Now().Add(notify.WebhookRetryWindow)) {
		t.Fatalf("resent: %+v", d2)
	}
	if got := e.endpoint(t, ep.ID); got.LastSuccessAt == nil || got.FailingSince != nil {
		t.Fatalf("after a success: %+v", got)
	}
}

// A success in between clears the failure record, so only 24 hours of
// nothing but failures disable an endpoint.
func TestWebhook_SuccessClearsTheFailureRecord(t *testing.T) {
	e := newHookEnv(t)
	rcv := newReceiver(t)
	ep, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, []string{notify.EventCreditAllocated}, "")
	if err != nil {
		t.Fatal(err)
	}
	ev := notify.CreditAllocated{PartnerID: e.tr.D1.Account.ID, ChildID: e.tr.C3.Account.ID, Amount: "1.00", Limit: "1.00"}
	rcv.answer(http.StatusInternalServerError)
	_, p := e.emit(t, ev)
	_ = e.svc.Deliver(context.Background(), p[0].DeliveryID, false)
	e.clock.Advance(20 * time.Hour)
	rcv.answer(http.StatusOK)
	_, ok := e.emit(t, ev)
	if err := e.svc.Deliver(context.Background(), ok[0].DeliveryID, false); err != nil {
		t.Fatal(err)
	}
	rcv.answer(http.StatusInternalServerError)
	e.clock.Advance(5 * time.Hour)
	_ = e.svc.Deliver(context.Background(), p[0].DeliveryID, false) // 25 h after the first failure
	got := e.endpoint(t, ep.ID)
	if !got.Enabled || got.FailingSince == nil || !got.FailingSince.Equal(e.clock.Now()) {
		t.Fatalf("endpoint %+v", got)
	}
}

// URLs that resolve inside the network are refused at registration unless
// the operator allows them, and at connection time too (a name that later
// resolves to a private address).
func TestWebhook_PrivateDestinationsRefused(t *testing.T) {
	e := newHookEnv(t)
	strict, err := notify.New(e.tr.Store, notify.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, d1 := e.tr.D1.Ctx, e.tr.D1.Account.ID
	types := []string{notify.EventCreditAllocated}
	for _, url := range []string{
		"http://127.0.0.1:8080/hook",
		"https://127.0.0.1/hook",
		"https://[::1]/hook",
		"https://10.0.0.7/hook",
		"https://192.168.1.20/hook",
		"https://169.254.169.254/latest/meta-data",
		"https://[fe80::1]/hook",
		"https://100.64.0.1/hook",
		"http://93.184.216.34/hook", // public, but not https
		"https://user:pw@93.184.216.34/hook",
		"not a url",
		"",
	} {
		_, _, err := strict.CreateWebhookEndpoint(ctx, d1, url, types, "")
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%q: %v, want VALIDATION", url, err)
		}
	}
	var n int64
	e.tr.Store.DB.Model(&notify.WebhookEndpoint{}).Count(&n)
	if n != 0 {
		t.Fatalf("%d endpoints stored", n)
	}
	if _, _, err := strict.CreateWebhookEndpoint(ctx, d1, "https://93.184.216.34/hook", types, ""); err != nil {
		t.Fatalf("a public https URL: %v", err)
	}

	// Registered where loopback is allowed, sent by a worker where it is
	// not: the connection is refused and the attempt logged.
	rcv := newReceiver(t)
	if _, _, err := e.svc.CreateWebhookEndpoint(ctx, d1, rcv.URL, types, ""); err != nil {
		t.Fatal(err)
	}
	sender := webhook.NewSender(webhook.NewGuard(nil), time.Second)
	defer sender.Close()
	worker, err := notify.New(e.tr.Store, notify.Options{Webhooks: sender, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, p := e.emit(t, notify.CreditAllocated{PartnerID: d1, ChildID: e.tr.C3.Account.ID, Amount: "1.00", Limit: "1.00"})
	var local int64
	for _, x := range p {
		if e.delivery(t, x.DeliveryID).Address == rcv.URL {
			local = x.DeliveryID
		}
	}
	if err := worker.Deliver(context.Background(), local, false); err == nil {
		t.Fatal("a loopback destination was not refused")
	}
	if len(rcv.requests()) != 0 {
		t.Fatal("the loopback receiver was reached")
	}
	if d := e.delivery(t, local); d.LastError == nil || !strings.Contains(*d.LastError, "not allowed") {
		t.Fatalf("delivery %+v", d)
	}
}

// Who may manage endpoints, and what input is refused.
func TestWebhook_ScopeAndValidation(t *testing.T) {
	e := newHookEnv(t)
	rcv := newReceiver(t)
	types := []string{notify.EventCreditAllocated}
	ep, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, types, "")
	if err != nil {
		t.Fatal(err)
	}
	// A partner outside the caller's scope, its endpoint: NOT_FOUND.
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.R1.Ctx, e.tr.D1.Account.ID, rcv.URL, types, ""); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("R1 for D1: %v", err)
	}
	if _, err := e.svc.WebhookEndpoint(e.tr.S1.Ctx, ep.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("S1 reads D1's endpoint: %v", err)
	}
	if _, err := e.svc.SendTestWebhook(e.tr.R1.Ctx, ep.ID); apperr.CodeOf(err) != apperr.NotFound {
		t.Errorf("R1 tests D1's endpoint: %v", err)
	}
	// The platform (above D1) may.
	if _, err := e.svc.WebhookEndpoint(e.tr.Platform.Ctx, ep.ID); err != nil {
		t.Errorf("platform reads D1's endpoint: %v", err)
	}
	// A finance user of D1: FORBIDDEN.
	fin := e.tr.AddUser(t, e.tr.D1.Account, models.RoleFinance)
	if _, _, err := e.svc.RotateWebhookSecret(fin.Ctx, ep.ID, 0); apperr.CodeOf(err) != apperr.Forbidden {
		t.Errorf("finance rotates: %v", err)
	}
	// Not a partner; unknown or no event types; a long description; no reason to disable.
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.C1.Ctx, e.tr.C1.Account.ID, rcv.URL, types, ""); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("a customer's endpoint: %v", err)
	}
	for _, bad := range [][]string{nil, {"credit.nope"}, {notify.EventWebhookTest}} {
		if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, bad, ""); apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("event types %v: %v", bad, err)
		}
	}
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, types, strings.Repeat("x", 501)); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("long description: %v", err)
	}
	if _, err := e.svc.SetWebhookEndpointEnabled(e.tr.D1.Ctx, ep.ID, false, " "); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("disable without a reason: %v", err)
	}
	if _, _, err := e.svc.RotateWebhookSecret(e.tr.D1.Ctx, ep.ID, 8*24*time.Hour); apperr.CodeOf(err) != apperr.Validation {
		t.Errorf("an 8-day overlap: %v", err)
	}
	// The twenty-first endpoint of a partner.
	for i := 1; i < notify.MaxWebhookEndpoints; i++ {
		if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, types, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, types, ""); apperr.CodeOf(err) != apperr.PreconditionFailed {
		t.Errorf("endpoint %d: %v", notify.MaxWebhookEndpoints+1, err)
	}
	// Nothing of the secret reaches the audit log.
	var leaked int64
	e.tr.Store.DB.Model(&models.AuditEntry{}).Where("action LIKE 'webhook.%' AND (before::text LIKE '%whsec_%' OR after::text LIKE '%whsec_%')").Count(&leaked)
	if leaked != 0 {
		t.Fatalf("%d audit entries hold a secret", leaked)
	}
	if _, err := accounts.ScopeOf(e.tr.D1.Ctx); err != nil {
		t.Fatal(err)
	}
}

// A rotation with an overlap signs with both secrets until the overlap
// ends, then with the new one only.
func TestWebhook_RotationOverlap(t *testing.T) {
	e := newHookEnv(t)
	rcv := newReceiver(t)
	ep, old, err := e.svc.CreateWebhookEndpoint(e.tr.D1.Ctx, e.tr.D1.Account.ID, rcv.URL, []string{notify.EventCreditAllocated}, "")
	if err != nil {
		t.Fatal(err)
	}
	rotated, fresh, err := e.svc.RotateWebhookSecret(e.tr.D1.Ctx, ep.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if fresh == old || rotated.SecretHint() == ep.SecretHint() || rotated.PreviousUntil == nil {
		t.Fatalf("rotation: %+v", rotated)
	}
	ev := notify.CreditAllocated{PartnerID: e.tr.D1.Account.ID, ChildID: e.tr.C3.Account.ID, Amount: "1.00", Limit: "1.00"}
	send := func() received {
		_, p := e.emit(t, ev)
		if err := e.svc.Deliver(context.Background(), p[0].DeliveryID, false); err != nil {
			t.Fatal(err)
		}
		r := rcv.requests()
		return r[len(r)-1]
	}
	r := send()
	for _, s := range []string{old, fresh} {
		if err := webhook.Verify(r.header.Get(webhook.SignatureHeader), r.body, s, time.Minute, e.clock.Now()); err != nil {
			t.Errorf("during the overlap: %v", err)
		}
	}
	e.clock.Advance(2*time.Hour + time.Second)
	r = send()
	if err := webhook.Verify(r.header.Get(webhook.SignatureHeader), r.body, fresh, time.Minute, e.clock.Now()); err != nil {
		t.Errorf("new secret after the overlap: %v", err)
	}
	if err := webhook.Verify(r.header.Get(webhook.SignatureHeader), r.body, old, time.Minute, e.clock.Now()); !errors.Is(err, webhook.ErrNoMatch) {
		t.Errorf("old secret after the overlap: %v", err)
	}
}
