package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hibiken/asynq"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/webhook"
	"partnerd/store"
)

// The webhook scenario (issue 14, point 1): N events through the whole
// product path — emit in a transaction, the outbox relay (whose fan-out
// makes one WEBHOOK delivery per event), asynq, the delivery task (claim,
// sign, POST, record with the endpoint's health) — into a local receiver
// that verifies every signature, against a bare loop POSTing the same kind
// of signed body over one keep-alive connection to the same receiver, in
// one run.

// webhookEvents is the events per run (--quick: 1,000).
const webhookEvents = 10_000

// webhookTolerance is how far from now the receiver accepts a signature's
// timestamp.
const webhookTolerance = 5 * time.Minute

// webhookReceiver is a partner's endpoint as a careful receiver writes it:
// it reads the body, verifies the signature, and answers 204. A request it
// cannot verify is counted as a failure (and answered 401).
type webhookReceiver struct {
	secret   string
	verified atomic.Int64
	failed   atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func (r *webhookReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	switch {
	case err != nil:
		err = fmt.Errorf("read the body: %w", err)
	case req.Method != http.MethodPost:
		err = fmt.Errorf("method %s, want POST", req.Method)
	default:
		err = webhook.Verify(req.Header.Get(webhook.SignatureHeader), body, r.secret, webhookTolerance, time.Now())
	}
	if err != nil {
		r.failed.Add(1)
		r.mu.Lock()
		if r.firstErr == nil {
			r.firstErr = err
		}
		r.mu.Unlock()
		http.Error(w, "signature not verified", http.StatusUnauthorized)
		return
	}
	r.verified.Add(1)
	w.WriteHeader(http.StatusNoContent)
}

// check fails when any request could not be verified.
func (r *webhookReceiver) check() error {
	if n := r.failed.Load(); n > 0 {
		r.mu.Lock()
		defer r.mu.Unlock()
		return fmt.Errorf("the receiver could not verify %d request(s), the first: %w", n, r.firstErr)
	}
	return nil
}

func (b *bench) webhook(ctx context.Context) (*section, error) {
	n := webhookEvents
	if b.o.quick {
		n = 1000
	}
	// One distributor whose one admin turned in-site and email off for
	// credit.limit_set: each event owes exactly one delivery, the webhook.
	partner, err := b.accounts.Create(b.platform, accounts.CreateInput{Kind: models.KindDistributor,
		ParentID: mustPlatformID(b), Name: "Webhook Bench Distributor " + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		return nil, fmt.Errorf("create distributor: %w", err)
	}
	u, err := b.accounts.CreateUser(b.platform, accounts.CreateUserInput{AccountID: partner.ID,
		Email: fmt.Sprintf("integrations-%d@bench.example", partner.ID), Roles: []models.Role{models.RoleAdmin}, Name: "Bench Integrations"})
	if err != nil {
		return nil, fmt.Errorf("create user: %w", err)
	}
	token, _, err := b.accounts.CreateToken(b.platform, u.ID, time.Hour)
	if err != nil {
		return nil, err
	}
	p, err := b.accounts.Authenticate(ctx, token)
	if err != nil {
		return nil, err
	}
	pctx := accounts.WithPrincipal(ctx, p)

	// The operator's allow-list holds the loopback network, where the
	// receiver listens (and over which http is accepted).
	allow, err := webhook.ParseNetworks("127.0.0.0/8")
	if err != nil {
		return nil, err
	}
	guard := webhook.NewGuard(allow)
	sender := webhook.NewSender(guard, 10*time.Second)
	defer sender.Close()
	svc, err := notify.New(b.st, notify.Options{Webhooks: sender, WebhookGuard: guard, Hub: b.hub, Log: b.log})
	if err != nil {
		return nil, err
	}
	for _, ch := range []models.Channel{models.ChannelInSite, models.ChannelEmail} {
		if _, err := svc.SetPreference(pctx, notify.EventCreditLimitSet, ch, false); err != nil {
			return nil, fmt.Errorf("turn %s off: %w", ch, err)
		}
	}

	// The receiver listens first, so that the endpoint can be registered at
	// its address and its secret known before the first request.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	url := "http://" + ln.Addr().String() + "/partnerd/events"
	ep, secret, err := svc.CreateWebhookEndpoint(pctx, partner.ID, url, []string{notify.EventCreditLimitSet}, "partnerbench receiver")
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("create webhook endpoint: %w", err)
	}
	rcv := &webhookReceiver{secret: secret}
	srv := &http.Server{Handler: rcv, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
		}
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.logf("webhook receiver stopped: %v", err)
		}
	}()
	// Later scenarios must not deliver to a receiver that is gone.
	defer func() {
		if _, err := svc.SetWebhookEndpointEnabled(context.WithoutCancel(pctx), ep.ID, false, "partnerbench is over"); err != nil {
			b.logf("disable the webhook endpoint: %v", err)
		}
	}()

	// The body the bare loop sends: the product's shape, the event's
	// payload as the outbox stores it.
	data, err := json.Marshal(notify.CreditLimitSet{PartnerID: partner.ID, Limit: "500000.00", Previous: "300000.00"})
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(struct {
		ID   string          `json:"id"`
		Type string          `json:"type"`
		Time time.Time       `json:"time"`
		Data json.RawMessage `json:"data"`
	}{ID: "evt_1", Type: notify.EventCreditLimitSet, Time: time.Now().UTC(), Data: data})
	if err != nil {
		return nil, err
	}

	stop, insp, err := b.startDeliveryWorkers(ctx, svc)
	if err != nil {
		return nil, err
	}
	defer stop()
	sec := &section{name: "webhook"}
	productRates, bareRates, err := b.versus(ctx, "webhook", "req/s", n,
		func(ctx context.Context, run int) (time.Duration, error) {
			return b.bareWebhookLoop(ctx, rcv, url, body, secret, n, run)
		},
		func(ctx context.Context, run int) (time.Duration, error) {
			pt, err := b.productWebhooks(ctx, rcv, insp, partner.ID, n, run)
			if err == nil {
				err = b.checkWebhookDeliveries(ctx, partner.ID, run*n)
			}
			return pt, err
		})
	if err != nil {
		return nil, err
	}
	sec.title = fmt.Sprintf("webhook: %s events per run through the product vs a bare signed-POST loop", thousands(n))
	sec.notes = []string{
		fmt.Sprintf("Product: %s `credit.limit_set` events emitted through `store.Tx.Emit` in transactions of 500 (one statement each), for a distributor with one webhook endpoint subscribed to that type and one admin who turned in-site and email off, so each event owes exactly one delivery, the webhook; timed from the first commit until the receiver has verified every request and every queue is empty (all the tasks the events caused have run). In the same process, as `partnerd worker` runs them: the outbox relay (which fans the events out, a batch at a time, into WEBHOOK delivery rows, and enqueues one delivery task per row), an asynq worker server with the product's default concurrency (%d) running the delivery tasks (claim, sign, POST, record the attempt with the endpoint's health), and the product's sender (`webhook.NewSender`: keep-alive, at most 4 idle connections, every connection checked by the guard; the allow-list holds 127.0.0.0/8 so the loopback receiver may be reached over http).", thousands(n), workerConcurrency),
		"Floor: one `http.Client` on one keep-alive connection POSTing a body of the same shape (`{\"id\",\"type\",\"time\",\"data\"}`, the same event payload) with the same headers, signed anew for each request with `webhook.Signature`, in a loop, reading and closing each answer.",
		"Both POST to the same local receiver (net/http on 127.0.0.1, keep-alive), which reads the body, verifies the signature with `webhook.Verify` (5 min tolerance) and answers 204; a request it cannot verify fails the run. The bare loop runs first in each run.",
	}
	sec.header = []string{"path", "requests/s (median)", "min", "max"}
	sec.rows = versusRows("product: emit → relay (fan-out, webhook rows) → asynq → delivery (claim, sign, POST, record) → receiver", "bare signed-POST loop, one connection", productRates, bareRates, 50)
	return sec, nil
}

// bareWebhookLoop POSTs body, signed anew each time, n times in sequence
// over one keep-alive connection, and checks that the receiver verified
// them all.
func (b *bench) bareWebhookLoop(ctx context.Context, rcv *webhookReceiver, url string, body []byte, secret string, n, run int) (time.Duration, error) {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxConnsPerHost:     1,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	base := rcv.verified.Load()
	bar := b.progress(fmt.Sprintf("webhook bare loop run %d/%d", run, b.o.runs), int64(n), "requests", nil)
	defer bar.finish()
	start := time.Now()
	for i := range n {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "partnerbench")
		req.Header.Set(webhook.SignatureHeader, webhook.Signature(time.Now(), body, secret))
		req.Header.Set(webhook.EventIDHeader, "evt_1")
		req.Header.Set(webhook.EventTypeHeader, notify.EventCreditLimitSet)
		req.Header.Set(webhook.DeliveryHeader, "bare-"+strconv.Itoa(run)+"-"+strconv.Itoa(i))
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return 0, fmt.Errorf("read the answer: %w", err)
		}
		if resp.StatusCode != http.StatusNoContent {
			if cerr := rcv.check(); cerr != nil {
				return 0, cerr
			}
			return 0, fmt.Errorf("the receiver answered %s", resp.Status)
		}
		bar.add(1)
	}
	took := time.Since(start)
	if err := rcv.check(); err != nil {
		return 0, err
	}
	if got := rcv.verified.Load() - base; got != int64(n) {
		return 0, fmt.Errorf("the receiver verified %d of %d requests", got, n)
	}
	return took, nil
}

// productWebhooks emits n events, each owing one webhook delivery, and
// waits for the receiver to have verified n more requests and for the
// queues to be empty: the time includes every task the events caused, so
// the next measurement does not share the machine with this one's
// leftovers.
func (b *bench) productWebhooks(ctx context.Context, rcv *webhookReceiver, insp *asynq.Inspector, partnerID int64, n, run int) (time.Duration, error) {
	base := rcv.verified.Load()
	got := func() int64 { return rcv.verified.Load() - base }
	bar := b.progress(fmt.Sprintf("webhook product run %d/%d", run, b.o.runs), int64(n), "requests",
		func() string { return fmt.Sprintf("%d verified", got()) })
	defer bar.finish()
	start := time.Now()
	const perTx = 500
	for done := 0; done < n; {
		k := min(perTx, n-done)
		err := b.st.InTx(ctx, func(tx *store.Tx) error {
			evs := make([]store.Event, k)
			for i := range k {
				evs[i] = notify.CreditLimitSet{PartnerID: partnerID, Limit: strconv.Itoa(500000+done+i) + ".00", Previous: "300000.00"}
			}
			return tx.Emit(evs...)
		})
		if err != nil {
			return 0, fmt.Errorf("emit: %w", err)
		}
		done += k
	}
	deadline := time.Now().Add(10 * time.Minute)
	for got() < int64(n) {
		if err := rcv.check(); err != nil {
			return 0, err
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("only %d of %d webhooks arrived", got(), n)
		}
		bar.set(got())
		time.Sleep(5 * time.Millisecond)
	}
	for queued(insp) > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("the queues never drained: %d tasks left", queued(insp))
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	bar.set(got())
	if err := rcv.check(); err != nil {
		return 0, err
	}
	if got() != int64(n) {
		return 0, fmt.Errorf("the receiver verified %d webhooks, want %d", got(), n)
	}
	return took, nil
}

// checkWebhookDeliveries checks, after a run, that the partner's events
// made only webhook deliveries, want of them in all so far, every one SENT
// (it logs those that needed a retry).
func (b *bench) checkWebhookDeliveries(ctx context.Context, partnerID int64, want int) error {
	var webhooks, sent, firstTry, others int
	err := b.st.SQL.QueryRowContext(ctx, `SELECT
		count(*) FILTER (WHERE channel = 'WEBHOOK'),
		count(*) FILTER (WHERE channel = 'WEBHOOK' AND status = 'SENT'),
		count(*) FILTER (WHERE channel = 'WEBHOOK' AND attempts = 1),
		count(*) FILTER (WHERE channel <> 'WEBHOOK')
		FROM deliveries WHERE account_id = $1 AND event_type = $2`, partnerID, notify.EventCreditLimitSet).
		Scan(&webhooks, &sent, &firstTry, &others)
	switch {
	case err != nil:
		return fmt.Errorf("count deliveries: %w", err)
	case others != 0:
		return fmt.Errorf("the events made %d deliveries besides the webhooks (in-site and email are off)", others)
	case webhooks != want || sent != want:
		return fmt.Errorf("%d webhook deliveries, %d of them SENT; want %d SENT", webhooks, sent, want)
	}
	if firstTry != want {
		b.logf("webhook: %d of %d deliveries needed more than one attempt", want-firstTry, want)
	}
	return nil
}
