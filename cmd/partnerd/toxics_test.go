package main

// Slow and failing dependencies (issue 11, point 3): toxiproxy, as a
// library, between the real partnerd binary and each of PostgreSQL, Redis,
// the SMTP server and the SMS provider. Every wait must end within its
// configured bound, readiness must go red while PostgreSQL or Redis is
// unreachable and green again without help, and deliveries held up by a
// provider must go through once it recovers.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify/email/emailtest"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// toxic is a proxy between partnerd and one dependency.
type toxic struct {
	t *testing.T
	p *toxiproxy.Proxy
}

// newToxic starts a proxy on a free port of 127.0.0.1 to upstream.
func newToxic(t *testing.T, srv *toxiproxy.ApiServer, name, upstream string) *toxic {
	t.Helper()
	p := toxiproxy.NewProxy(srv, name, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("start proxy %s: %v", name, err)
	}
	t.Cleanup(p.Stop)
	return &toxic{t: t, p: p}
}

// Addr is where partnerd connects instead of the dependency.
func (x *toxic) Addr() string { return x.p.Listen }

// Add adds a toxic in toxiproxy's JSON form and returns a func removing it.
func (x *toxic) Add(typ string, attrs map[string]any) func() {
	x.t.Helper()
	name := fmt.Sprintf("%s-%d", typ, time.Now().UnixNano())
	body, _ := json.Marshal(map[string]any{"name": name, "type": typ, "stream": "downstream", "toxicity": 1.0, "attributes": attrs})
	if _, err := x.p.Toxics.AddToxicJson(strings.NewReader(string(body))); err != nil {
		x.t.Fatalf("add toxic %s to %s: %v", typ, x.p.Name, err)
	}
	return func() {
		if err := x.p.Toxics.RemoveToxic(context.Background(), name); err != nil {
			x.t.Fatalf("remove toxic %s from %s: %v", name, x.p.Name, err)
		}
	}
}

// Down closes the proxy: every connection through it is cut and new ones
// are refused until Up.
func (x *toxic) Down() { x.p.Stop() }

// Up opens the proxy again on the same address.
func (x *toxic) Up() {
	x.t.Helper()
	if err := x.p.Start(); err != nil {
		x.t.Fatalf("restart proxy %s: %v", x.p.Name, err)
	}
}

// Bounds of the partnerd under test: short, so the test is quick, and the
// checks below are "within the bound plus a margin".
const (
	toxRequestTimeout = 2 * time.Second
	toxSendTimeout    = time.Second
	toxMargin         = 2 * time.Second
)

func TestToxics_BoundedWaits(t *testing.T) {
	t.Parallel()
	_, dbURL := missingDatabase(t)
	redisURL, prefix := storetest.RedisDB(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": prefix}
	st, tr := migratedTree(t, vars)

	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	smtp := emailtest.NewSink(t)
	sms := testkit.NewSMSSink(t)
	smsURL, _ := url.Parse(sms.URL())
	pgU, _ := url.Parse(dbURL)
	rdU, _ := url.Parse(redisURL)
	pg := newToxic(t, srv, "postgres", pgU.Host)
	rd := newToxic(t, srv, "redis", rdU.Host)
	mail := newToxic(t, srv, "smtp", smtp.Addr())
	phone := newToxic(t, srv, "sms", smsURL.Host)

	pgU.Host, rdU.Host = pg.Addr(), rd.Addr()
	_, mailPort, _ := net.SplitHostPort(mail.Addr())
	addr := freeAddr(t)
	base := "http://" + addr
	p := start(t, map[string]string{
		"DATABASE_URL": pgU.String(), "REDIS_URL": rdU.String(), "LIVE_PREFIX": prefix,
		"HTTP_ADDR": addr, "PUBLIC_URL": base,
		"SMTP_HOST": "127.0.0.1", "SMTP_PORT": mailPort, "SMTP_TLS": "none", "SMTP_FROM": "notify@partnerd.test",
		"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": "http://" + phone.Addr() + "/sms",
		"REQUEST_TIMEOUT": toxRequestTimeout.String(), "DB_STATEMENT_TIMEOUT": "5s", "DB_CONNECT_TIMEOUT": "1s",
		"REDIS_TIMEOUT": "500ms", "SMTP_TIMEOUT": toxSendTimeout.String(), "SMS_TIMEOUT": toxSendTimeout.String(),
		"WEBHOOK_TIMEOUT": "1s", "SEND_LEASE": "3s", "RECONCILE_AFTER": "2s", "RECONCILE_EVERY": "1s",
		"RATE_LIMIT_PER_SECOND": "0", "SHUTDOWN_TIMEOUT": "10s",
	}, "serve", "--no-migrate")
	p.waitHealthy(base)

	// The data is written straight to PostgreSQL, not through the proxy.
	cust := customerWithPhone(t, tr, "Toxic Co", "+8613800000077")
	api := &toxClient{t: t, base: base, token: tr.Platform.Token, customer: ids.Encode(accounts.TypeAccount, cust),
		http: &http.Client{Timeout: 30 * time.Second}}
	api.mustRead()
	api.waitReady()

	t.Run("postgres slow", func(t *testing.T) {
		defer pg.Add("latency", map[string]any{"latency": 150})()
		took := api.mustRead()
		if took < 150*time.Millisecond {
			t.Errorf("a read through 150 ms of latency took %s: the toxic did not apply", took)
		}
		if code, _ := api.ready(); code != http.StatusOK {
			t.Errorf("/readyz %d while PostgreSQL is only slow", code)
		}
	})

	t.Run("postgres silent", func(t *testing.T) {
		// Data stops flowing; connections stay open: only our own bounds end the waits.
		restore := pg.Add("timeout", map[string]any{"timeout": 0})
		api.retryableRead(toxRequestTimeout + toxMargin)
		api.retryablePurchase(toxRequestTimeout + toxMargin)
		api.waitNotReady("postgres")
		restore()
		api.waitRecovered()
	})

	t.Run("postgres resets", func(t *testing.T) {
		restore := pg.Add("reset_peer", map[string]any{"timeout": 0})
		api.retryableRead(toxMargin)
		api.waitNotReady("postgres")
		restore()
		api.waitRecovered()
	})

	t.Run("postgres gone", func(t *testing.T) {
		pg.Down()
		api.retryableRead(toxRequestTimeout + toxMargin)
		api.retryablePurchase(toxRequestTimeout + toxMargin)
		api.waitNotReady("postgres")
		pg.Up()
		api.waitRecovered()
	})

	t.Run("redis silent", func(t *testing.T) {
		restore := rd.Add("timeout", map[string]any{"timeout": 0})
		api.waitNotReady("redis")
		// Reads and writes need PostgreSQL only: they go on.
		api.mustRead()
		restore()
		api.waitReady()
	})

	t.Run("redis gone", func(t *testing.T) {
		rd.Down()
		api.waitNotReady("redis")
		api.mustRead()
		rd.Up()
		api.waitReady()
	})

	// A provider that stops answering: each attempt ends within its send
	// timeout as a retry (never SENT, never stuck), the other channels go on,
	// and the message goes through once the provider is back.
	providers := []struct {
		name    string
		proxy   *toxic
		channel models.Channel
	}{{"smtp silent", mail, models.ChannelEmail}, {"sms silent", phone, models.ChannelSMS}}
	for _, pr := range providers {
		t.Run(pr.name, func(t *testing.T) {
			restore := pr.proxy.Add("timeout", map[string]any{"timeout": 0})
			outbox := emitArrears(t, st, []int64{cust}, 1)
			stuck := waitDelivery(t, st, outbox[0], cust, pr.channel, func(d deliveryState) bool { return d.attempts >= 1 && d.lastDone })
			if stuck.status == models.DeliverySent {
				t.Fatalf("%s delivery SENT through a silent provider", pr.channel)
			}
			if stuck.longest > toxSendTimeout+toxMargin {
				t.Errorf("an attempt through a silent provider lasted %s, bound %s", stuck.longest, toxSendTimeout)
			}
			t.Logf("%s attempt through a silent provider ended after %s (%s)", pr.channel, stuck.longest.Round(time.Millisecond), stuck.status)
			waitDelivery(t, st, outbox[0], cust, models.ChannelInSite, func(d deliveryState) bool { return d.status == models.DeliverySent })
			restore()
			waitDelivery(t, st, outbox[0], cust, pr.channel, func(d deliveryState) bool { return d.status == models.DeliverySent })
		})
	}

	if p.exited() {
		t.Fatalf("partnerd exited during the faults\n%s", p.stderr)
	}
	p.stop(syscall.SIGTERM, 30*time.Second)
}

// toxClient is the test's API caller.
type toxClient struct {
	t        *testing.T
	base     string
	token    string
	customer string
	http     *http.Client
}

func (c *toxClient) do(method, path, body string) (int, []byte, time.Duration, error) {
	req, _ := http.NewRequest(method, c.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, time.Since(start), err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, time.Since(start), err
}

func (c *toxClient) read() (int, gqlAnswer, time.Duration, error) {
	q, _ := json.Marshal(map[string]string{"query": fmt.Sprintf(`{ account(id: %q) { name parent { name } } }`, c.customer)})
	status, body, took, err := c.do(http.MethodPost, "/graphql", string(q))
	var a gqlAnswer
	if err == nil {
		err = json.Unmarshal(body, &a)
	}
	return status, a, took, err
}

// mustRead reads successfully and returns how long it took.
func (c *toxClient) mustRead() time.Duration {
	c.t.Helper()
	status, a, took, err := c.read()
	if err != nil || status != http.StatusOK || len(a.Errors) > 0 || !strings.Contains(string(a.Data), "Toxic Co") {
		c.t.Fatalf("read: status %d, %+v, %v", status, a, err)
	}
	return took
}

// retryableRead checks a read fails with INTERNAL retryable within bound.
func (c *toxClient) retryableRead(bound time.Duration) {
	c.t.Helper()
	status, a, took, err := c.read()
	if err != nil {
		c.t.Fatalf("read: no answer after %s: %v", took, err)
	}
	if len(a.Errors) == 0 || a.Errors[0].Extensions["code"] != "INTERNAL" || a.Errors[0].Extensions["retryable"] != true {
		c.t.Errorf("read: status %d, %+v; want INTERNAL with extensions.retryable", status, a)
	}
	if took > bound {
		c.t.Errorf("read answered after %s, bound %s", took, bound)
	}
	c.t.Logf("read: retryable INTERNAL after %s", took.Round(time.Millisecond))
}

// retryablePurchase checks a purchase check answers 503, retryable, within
// bound.
func (c *toxClient) retryablePurchase(bound time.Duration) {
	c.t.Helper()
	status, body, took, err := c.do(http.MethodPost, "/v1/purchase-authorizations",
		fmt.Sprintf(`{"customerId":%q,"billingMode":"PAY_PER_USE","listAmount":"1.00"}`, c.customer))
	if err != nil {
		c.t.Fatalf("purchase: no answer after %s: %v", took, err)
	}
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), `"retryable":true`) {
		c.t.Errorf("purchase: %d %s; want 503, retryable", status, body)
	}
	if took > bound {
		c.t.Errorf("purchase answered after %s, bound %s", took, bound)
	}
	c.t.Logf("purchase: 503 retryable after %s", took.Round(time.Millisecond))
}

func (c *toxClient) ready() (int, map[string]string) {
	resp, err := c.http.Get(c.base + "/readyz")
	if err != nil {
		c.t.Fatalf("/readyz: %v", err)
	}
	defer resp.Body.Close()
	var m map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

func (c *toxClient) waitNotReady(dep string) {
	c.t.Helper()
	start := time.Now()
	for {
		code, m := c.ready()
		if code == http.StatusServiceUnavailable && m[dep] == "down" {
			c.t.Logf("/readyz red (%s down) %s after the fault", dep, time.Since(start).Round(time.Millisecond))
			return
		}
		if time.Since(start) > 10*time.Second {
			c.t.Fatalf("/readyz still %d %v 10s after %s went down", code, m, dep)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (c *toxClient) waitReady() {
	c.t.Helper()
	start := time.Now()
	for {
		if code, _ := c.ready(); code == http.StatusOK {
			return
		}
		if time.Since(start) > 20*time.Second {
			c.t.Fatal("/readyz not 200 20s after the dependency came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// waitRecovered waits for readiness and a successful read: partnerd comes
// back on its own.
func (c *toxClient) waitRecovered() {
	c.t.Helper()
	c.waitReady()
	start := time.Now()
	for {
		status, a, _, err := c.read()
		if err == nil && status == http.StatusOK && len(a.Errors) == 0 {
			return
		}
		if time.Since(start) > 20*time.Second {
			c.t.Fatalf("reads still fail 20s after PostgreSQL came back: %d %+v %v", status, a, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// deliveryState is one delivery as the test watches it.
type deliveryState struct {
	status   models.DeliveryStatus
	attempts int
	// lastDone: the last attempt has finished; longest: the longest
	// finished attempt.
	lastDone bool
	longest  time.Duration
}

// waitDelivery waits until the delivery of outbox row outboxID to account's
// user on channel satisfies cond, and returns it.
func waitDelivery(t *testing.T, st *store.Store, outboxID, account int64, ch models.Channel, cond func(deliveryState) bool) deliveryState {
	t.Helper()
	start := time.Now()
	for {
		var d deliveryState
		var longest float64
		var lastOpen bool
		err := st.SQL.QueryRow(`SELECT d.status, count(a.id),
			coalesce(max(extract(epoch FROM a.finished_at - a.started_at)), 0),
			coalesce(bool_or(a.finished_at IS NULL AND a.n = (SELECT max(n) FROM delivery_attempts WHERE delivery_id = d.id)), false)
			FROM deliveries d LEFT JOIN delivery_attempts a ON a.delivery_id = d.id
			WHERE d.outbox_id = $1 AND d.channel = $2 AND d.account_id = $3 GROUP BY d.id, d.status`, outboxID, ch, account).Scan(&d.status, &d.attempts, &longest, &lastOpen)
		if err == nil {
			d.longest = time.Duration(longest * float64(time.Second))
			d.lastDone = !lastOpen
			if cond(d) {
				return d
			}
		}
		if time.Since(start) > 90*time.Second {
			t.Fatalf("%s delivery of outbox row %d: %+v after 90s (%v)", ch, outboxID, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
