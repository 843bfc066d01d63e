package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"partnerd/store/storetest"
)

// slowSMS is an SMS provider (the webhook contract) that takes its time over
// each message, so delivery tasks are in flight when the test wants them.
type slowSMS struct {
	srv    *httptest.Server
	delay  time.Duration
	active atomic.Int64
	mu     sync.Mutex
	got    map[string]int
}

func newSlowSMS(t *testing.T, delay time.Duration) *slowSMS {
	s := &slowSMS{delay: delay, got: map[string]int{}}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.active.Add(1)
		defer s.active.Add(-1)
		var body struct{ ID string }
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		time.Sleep(s.delay)
		s.mu.Lock()
		s.got[body.ID]++
		s.mu.Unlock()
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *slowSMS) received() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// TestShutdown_InFlight (issue 11, point 4): SIGTERM to an all-in-one
// process with 200 GraphQL requests waiting on answers and delivery tasks
// running. Every request sent before the signal is answered whole, the
// running tasks finish (the provider gets each message once), the queued
// ones stay in Redis for the next worker, and the process exits 0 within
// SHUTDOWN_TIMEOUT. A new worker then delivers the rest: every SMS exactly
// once.
func TestShutdown_InFlight(t *testing.T) {
	t.Parallel()
	_, dbURL := missingDatabase(t)
	redisURL, prefix := storetest.RedisDB(t)
	sms := newSlowSMS(t, 200*time.Millisecond)
	addr := freeAddr(t)
	base := "http://" + addr
	vars := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": prefix, "HTTP_ADDR": addr, "PUBLIC_URL": base,
		"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": sms.srv.URL, "SMS_TIMEOUT": "5s",
		"WORKER_CONCURRENCY": "20", "SHUTDOWN_TIMEOUT": "10s", "RATE_LIMIT_PER_SECOND": "0", "DB_MAX_CONNS": "40",
	}
	st, tr := migratedTree(t, vars)
	cust := customerWithPhone(t, tr, "Shutdown Co", "+8613800000088")

	p := start(t, vars, "serve", "--no-migrate")
	p.waitHealthy(base)
	// 200 SMS at 200 ms each on 20 workers: about two seconds of tasks.
	outboxIDs := emitArrears(t, st, []int64{cust}, 200)
	p.waitFor("delivery tasks in flight", 30*time.Second, func() bool { return sms.active.Load() >= 10 })

	requests := shutdownUnderLoad(t, p, base, tr.Platform.Token, 200)
	if requests < 150 {
		t.Errorf("%d requests in flight at SIGTERM, want about 200", requests)
	}
	atExit := len(sms.received())

	// What the stopped process left queued, a new worker delivers.
	w := start(t, vars, "worker")
	var smsKeys []string
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var open int
		if err := st.SQL.QueryRow(`SELECT count(*) FROM deliveries WHERE outbox_id = ANY($1) AND status <> 'SENT'`, outboxIDs).Scan(&open); err != nil {
			t.Fatal(err)
		}
		if open == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries not sent 2 minutes after the restart", open)
		}
		time.Sleep(50 * time.Millisecond)
	}
	rows, err := st.SQL.Query(`SELECT key FROM deliveries WHERE outbox_id = ANY($1) AND channel = 'SMS'`, outboxIDs)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		if err := rows.Scan(&k); err != nil {
			t.Fatal(err)
		}
		smsKeys = append(smsKeys, k)
	}
	rows.Close()
	got := sms.received()
	for _, k := range smsKeys {
		if got[k] != 1 {
			t.Errorf("SMS %s reached the provider %d times, want once", k, got[k])
		}
	}
	if atExit == 0 || atExit >= len(smsKeys) {
		t.Errorf("%d of %d SMS sent before the exit: the shutdown did not land mid-delivery", atExit, len(smsKeys))
	}
	t.Logf("%d requests in flight at SIGTERM; %d of %d SMS sent by the stopped process, the rest by the next worker, each once", requests, atExit, len(smsKeys))
	w.stop(syscall.SIGTERM, 30*time.Second)
}

// TestShutdown_DrainTurnsReadinessRed: with SHUTDOWN_DRAIN, an api process
// that gets SIGTERM answers /readyz with 503 at once, so load balancers stop
// routing to it, but keeps serving the requests that still come for the
// drain's length, then shuts down as usual and exits 0.
func TestShutdown_DrainTurnsReadinessRed(t *testing.T) {
	t.Parallel()
	_, dbURL := missingDatabase(t)
	redisURL, prefix := storetest.RedisDB(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": prefix, "SHUTDOWN_DRAIN": "3s"}
	if code, _, stderr := runOnce(t, vars, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	code, stdout, stderr := runOnce(t, vars, "bootstrap", "--email", "admin@drain.example")
	if code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s", code, stderr)
	}
	token := strings.TrimSpace(stdout)
	addr := freeAddr(t)
	base := "http://" + addr
	api := start(t, withVars(vars, map[string]string{"HTTP_ADDR": addr, "PUBLIC_URL": base}), "api")
	api.waitHealthy(base)
	if resp, body := get(t, base+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz before the signal: %d %s", resp.StatusCode, body)
	}

	signalled := time.Now()
	api.signal(syscall.SIGTERM)
	api.waitFor("/readyz red", 2*time.Second, func() bool {
		resp, body := get(t, base+"/readyz")
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, `"shutdown":"draining"`)
	})
	// Still serving: requests that arrive during the drain are answered.
	for i := 0; i < 5; i++ {
		if r := me(t, base, token, "{ me { kind } }"); r.Data.Me.Kind != "PLATFORM" {
			t.Fatalf("request %d during the drain: %+v", i, r)
		}
		if resp, body := get(t, base+"/healthz"); resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz during the drain: %d %s", resp.StatusCode, body)
		}
	}
	api.awaitExit(syscall.SIGTERM, 30*time.Second)
	if took := time.Since(signalled); took < 3*time.Second {
		t.Errorf("the api exited %v after SIGTERM, before its 3s drain", took)
	}
	if !strings.Contains(api.stderr.String(), "draining: /readyz answers 503") {
		t.Errorf("no drain in the api's log:\n%s", api.stderr)
	}
}
