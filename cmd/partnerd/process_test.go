package main

// These tests run the built partnerd binary as an operator would, against
// the real PostgreSQL and Redis of storetest, each on a database of its own
// that the binary itself creates.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"partnerd/store/storetest"
	"partnerd/testkit"
)

var (
	binDir    string
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "partnerd-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temp dir:", err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds partnerd once per test run.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		p := binDir + "/partnerd"
		out, err := exec.Command("go", "build", "-o", p, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		binPath = p
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func randName() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// missingDatabase names a database that does not exist yet on the test
// server, and drops it (whoever created it) when the test ends.
func missingDatabase(t *testing.T) (name, dbURL string) {
	t.Helper()
	name = "partnerd_proc_" + randName()
	u, err := url.Parse(storetest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, storetest.BaseURL())
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name, u.String()
}

func databaseExists(t *testing.T, name string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, storetest.BaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

func countAccounts(t *testing.T, dbURL string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM accounts").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// configVars are the variables of RUNNING.md (and the product's own
// additions): the child gets only the values the test sets.
var configVars = []string{
	"DATABASE_URL", "REDIS_URL", "HTTP_ADDR", "PUBLIC_URL", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME",
	"SMTP_PASSWORD", "SMTP_FROM", "SMTP_TLS", "SMS_PROVIDER", "SMS_WEBHOOK_URL", "BILLING_TIMEZONE",
	"FREEZE_RETENTION", "MIGRATION_APPROVAL_TTL", "LOG_LEVEL", "LOG_FORMAT", "PLAYGROUND", "SHUTDOWN_TIMEOUT",
	"WORKER_CONCURRENCY", "DB_MAX_CONNS", "GRAPHQL_MAX_DEPTH", "GRAPHQL_MAX_COMPLEXITY", "GRAPHQL_MAX_TOKENS",
	"HTTP_MAX_BODY", "HTTP_MAX_UPLOAD", "LIVE_PREFIX", "SMTP_TIMEOUT", "SMS_TIMEOUT", "WEBHOOK_TIMEOUT", "SEND_LEASE",
	"RECONCILE_AFTER", "RECONCILE_EVERY", "DB_CONNECT_TIMEOUT", "DB_STATEMENT_TIMEOUT", "REQUEST_TIMEOUT", "REDIS_TIMEOUT",
	"RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "DATABASE_LISTEN_URL", "PROBE_ADDR",
}

func childEnv(vars map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		keep := true
		for _, c := range configVars {
			if k == c {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, kv)
		}
	}
	for k, v := range vars {
		out = append(out, k+"="+v)
	}
	return out
}

// runOnce runs a command that exits by itself.
func runOnce(t *testing.T, vars map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Env = childEnv(vars)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("partnerd %s: %v", strings.Join(args, " "), err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// proc is a long-running partnerd process.
type proc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout *testkit.SyncBuffer
	stderr *testkit.SyncBuffer
	done   chan struct{}
}

func start(t *testing.T, vars map[string]string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: strings.Join(args, " "), stdout: &testkit.SyncBuffer{}, stderr: &testkit.SyncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary(t), args...)
	p.cmd.Env = childEnv(vars)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start partnerd %s: %v", p.name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("partnerd %s stdout:\n%s\nstderr:\n%s", p.name, p.stdout, p.stderr)
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitFor polls cond until it holds, failing the test at the deadline or
// when the process exits first.
func (p *proc) waitFor(what string, timeout time.Duration, cond func() bool) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if p.exited() {
			p.t.Fatalf("partnerd %s exited (code %d) before %s\nstderr:\n%s", p.name, p.cmd.ProcessState.ExitCode(), what, p.stderr)
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("partnerd %s: no %s within %s\nstderr:\n%s", p.name, what, timeout, p.stderr)
		}
		<-tick.C
	}
}

func (p *proc) waitHealthy(base string) {
	p.t.Helper()
	client := &http.Client{Timeout: 2 * time.Second}
	p.waitFor("200 from /healthz", 30*time.Second, func() bool {
		resp, err := client.Get(base + "/healthz")
		if err != nil {
			return false
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// stop sends sig and checks the process exits 0 in time.
func (p *proc) stop(sig os.Signal, within time.Duration) {
	p.t.Helper()
	p.signal(sig)
	p.awaitExit(sig, within)
}

func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal partnerd %s: %v", p.name, err)
	}
}

// awaitExit checks the process exits 0 within the time after sig was sent.
func (p *proc) awaitExit(sig os.Signal, within time.Duration) {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(within):
		p.t.Fatalf("partnerd %s did not exit within %s of %v\nstderr:\n%s", p.name, within, sig, p.stderr)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("partnerd %s exited %d after %v, want 0\nstderr:\n%s", p.name, code, sig, p.stderr)
	}
}

type gqlResult struct {
	Data struct {
		Me *struct {
			Kind     string `json:"kind"`
			Children *struct {
				TotalCount int `json:"totalCount"`
			} `json:"children"`
		} `json:"me"`
	} `json:"data"`
	Errors []json.RawMessage `json:"errors"`
}

func postGraphQL(client *http.Client, base, token, query string) (*http.Response, []byte, error) {
	body, _ := json.Marshal(map[string]string{"query": query})
	req, err := http.NewRequest(http.MethodPost, base+"/graphql", bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// me asks for the caller's account and fails the test unless it is answered.
func me(t *testing.T, base, token, query string) gqlResult {
	t.Helper()
	resp, body, err := postGraphQL(&http.Client{Timeout: 10 * time.Second}, base, token, query)
	if err != nil {
		t.Fatalf("POST /graphql: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /graphql: status %d: %s", resp.StatusCode, body)
	}
	var r gqlResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("POST /graphql: %v: %s", err, body)
	}
	if len(r.Errors) > 0 || r.Data.Me == nil {
		t.Fatalf("POST /graphql: %s", body)
	}
	return r
}

func get(t *testing.T, rawURL string) (*http.Response, string) {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(rawURL)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", rawURL, err)
	}
	return resp, string(b)
}

// TestProcessLifecycle walks one database through migrate, bootstrap and
// seed, then runs api, worker and scheduler against it.
func TestProcessLifecycle(t *testing.T) {
	t.Parallel()
	name, dbURL := missingDatabase(t)
	if databaseExists(t, name) {
		t.Fatalf("database %s exists before the test", name)
	}
	redisURL, prefix := storetest.RedisDB(t)
	vars := map[string]string{"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": prefix}

	// migrate creates the missing database, then is a no-op.
	code, _, stderr := runOnce(t, vars, "migrate")
	if code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	if !databaseExists(t, name) {
		t.Fatalf("migrate did not create %s", name)
	}
	if !strings.Contains(stderr, "created the database") || !strings.Contains(stderr, name) {
		t.Errorf("migrate did not log that it created %s:\n%s", name, stderr)
	}
	code, _, stderr = runOnce(t, vars, "migrate")
	if code != 0 {
		t.Fatalf("second migrate: exit %d\n%s", code, stderr)
	}
	if strings.Contains(stderr, "created the database") {
		t.Errorf("second migrate claims to have created the database:\n%s", stderr)
	}

	// bootstrap prints a token alone on one line, a new one each time.
	var tokens []string
	for i := 0; i < 2; i++ {
		code, stdout, stderr := runOnce(t, vars, "bootstrap", "--email", "admin@x.example")
		if code != 0 {
			t.Fatalf("bootstrap #%d: exit %d\n%s", i+1, code, stderr)
		}
		tok := strings.TrimSuffix(stdout, "\n")
		if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") || !strings.HasPrefix(tok, "pd_") || strings.ContainsAny(tok, " \t\r") {
			t.Fatalf("bootstrap #%d stdout is not one token line: %q", i+1, stdout)
		}
		tokens = append(tokens, tok)
	}
	if tokens[0] == tokens[1] {
		t.Errorf("bootstrap printed the same token twice: %s", tokens[0])
	}

	// seed loads the demo tree once.
	code, _, stderr = runOnce(t, vars, "seed")
	if code != 0 {
		t.Fatalf("seed: exit %d\n%s", code, stderr)
	}
	seeded := countAccounts(t, dbURL)
	if seeded < 3 {
		t.Fatalf("seed left %d accounts, want a tree", seeded)
	}
	code, _, stderr = runOnce(t, vars, "seed")
	if code != 0 {
		t.Fatalf("second seed: exit %d\n%s", code, stderr)
	}
	if n := countAccounts(t, dbURL); n != seeded {
		t.Errorf("second seed changed the account count from %d to %d", seeded, n)
	}

	// api, worker and scheduler start against the migrated database, the
	// bootstrap tokens work, and each part exits 0 on SIGTERM.
	addr := freeAddr(t)
	base := "http://" + addr
	withAddr := func(extra map[string]string) map[string]string { return withVars(vars, extra) }
	api := start(t, withAddr(map[string]string{"HTTP_ADDR": addr, "PUBLIC_URL": base}), "api")
	workerProbes, schedProbes := freeAddr(t), freeAddr(t)
	worker := start(t, withAddr(map[string]string{"HTTP_ADDR": freeAddr(t), "PROBE_ADDR": workerProbes}), "worker")
	sched := start(t, withAddr(map[string]string{"HTTP_ADDR": freeAddr(t), "PROBE_ADDR": schedProbes}), "scheduler")

	api.waitHealthy(base)
	for i, tok := range tokens {
		if r := me(t, base, tok, "{ me { kind } }"); r.Data.Me.Kind != "PLATFORM" {
			t.Errorf("bootstrap token #%d: me.kind = %q, want PLATFORM", i+1, r.Data.Me.Kind)
		}
	}
	worker.waitFor(`"workers started" in the log`, 30*time.Second, func() bool {
		return strings.Contains(worker.stderr.String(), "workers started")
	})
	sched.waitFor(`"scheduler started" in the log`, 30*time.Second, func() bool {
		return strings.Contains(sched.stderr.String(), "scheduler started")
	})
	// Workers and schedulers serve their probes on PROBE_ADDR.
	for _, probes := range []string{workerProbes, schedProbes} {
		for path, want := range map[string]string{"/healthz": "ok", "/readyz": `"postgres":"ok"`, "/metrics": "go_goroutines"} {
			if resp, body := get(t, "http://"+probes+path); resp.StatusCode != http.StatusOK || !strings.Contains(body, want) {
				t.Errorf("GET %s%s: %d %.200s", probes, path, resp.StatusCode, body)
			}
		}
	}

	for _, p := range []*proc{api, worker, sched} {
		p.signal(syscall.SIGTERM)
	}
	for _, p := range []*proc{api, worker, sched} {
		p.awaitExit(syscall.SIGTERM, 25*time.Second)
	}
}

var tokenLine = regexp.MustCompile(`(?m)^platform admin \(.+\) token: (pd_\S+)$`)

// TestProcessServeDemo runs the all-in-one process with demo data and shuts
// it down under load.
func TestProcessServeDemo(t *testing.T) {
	t.Parallel()
	name, dbURL := missingDatabase(t)
	redisURL, prefix := storetest.RedisDB(t)
	addr := freeAddr(t)
	base := "http://" + addr
	vars := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": prefix,
		"HTTP_ADDR": addr, "PUBLIC_URL": base, "LOG_FORMAT": "text",
	}

	p := start(t, vars, "serve", "--demo")
	graphiQL := "GraphiQL: " + base + "/"
	p.waitFor("the GraphiQL URL on stdout", 60*time.Second, func() bool {
		return strings.Contains(p.stdout.String(), graphiQL)
	})
	m := tokenLine.FindStringSubmatch(p.stdout.String())
	if m == nil {
		t.Fatalf("no token line on stdout:\n%s", p.stdout)
	}
	token := m[1]
	if !databaseExists(t, name) {
		t.Fatalf("serve did not create %s", name)
	}
	if !strings.Contains(p.stderr.String(), "level=INFO") {
		t.Errorf("LOG_FORMAT=text but the log is not text:\n%s", p.stderr)
	}

	p.waitHealthy(base)
	if resp, body := get(t, base+"/readyz"); resp.StatusCode != http.StatusOK {
		t.Errorf("/readyz: %d %s", resp.StatusCode, body)
	}
	r := me(t, base, token, "{ me { kind children { totalCount } } }")
	if r.Data.Me.Kind != "PLATFORM" || r.Data.Me.Children == nil || r.Data.Me.Children.TotalCount == 0 {
		t.Errorf("me = %+v, want PLATFORM with demo children", r.Data.Me)
	}
	resp, body := get(t, base+"/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") ||
		!strings.Contains(strings.ToLower(body), "graphiql") {
		t.Errorf("GET /: %d %q, not GraphiQL:\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	shutdownUnderLoad(t, p, base, token, 20)

	// The same database again, without --demo: migrations are a no-op, and
	// SIGINT stops it as SIGTERM does.
	before := countAccounts(t, dbURL)
	p2 := start(t, vars, "serve")
	p2.waitHealthy(base)
	me(t, base, token, "{ me { kind } }")
	p2.stop(syscall.SIGINT, 25*time.Second)
	if strings.Contains(p2.stdout.String(), "token") {
		t.Errorf("serve without --demo printed a token:\n%s", p2.stdout)
	}
	if n := countAccounts(t, dbURL); n != before {
		t.Errorf("serve without --demo changed the account count from %d to %d", before, n)
	}
}

// shutdownUnderLoad keeps clients busy, sends SIGTERM, and checks the
// process exits 0 in time and no client got a partial answer. It returns how
// many requests were in flight when the signal was sent.
func shutdownUnderLoad(t *testing.T, p *proc, base, token string, clients int) int64 {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	const query = "{ me { kind children(first: 50) { totalCount edges { node { id name kind children { totalCount } } } } } }"

	var (
		signaled  atomic.Bool
		sigAt     atomic.Int64 // when SIGTERM was sent, in Unix nanoseconds
		completed atomic.Int64 // 200s with a whole answer
		inFlight  atomic.Int64 // of which sent before SIGTERM and answered after it
		afterSig  atomic.Int64 // of which sent after SIGTERM
		refused   atomic.Int64 // connection errors after SIGTERM
		dropped   atomic.Int64 // of which the request was sent before SIGTERM
		open      atomic.Int64 // requests sent and not yet answered
		mu        sync.Mutex
		problems  []string
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 10 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !p.exited() {
				sig := signaled.Load()
				rs := time.Now()
				open.Add(1)
				resp, body, err := postGraphQL(client, base, token, query)
				open.Add(-1)
				if err != nil {
					if resp != nil {
						// Headers came, the body did not: a truncated answer.
						problem("truncated response (status %d, %d bytes): %v", resp.StatusCode, len(body), err)
						return
					}
					if !signaled.Load() {
						problem("request failed before SIGTERM: %v", err)
						return
					}
					// The listener is closed, or the client raced the
					// server closing an idle keep-alive connection: this
					// client is done.
					refused.Add(1)
					if !sig {
						dropped.Add(1)
						// The idle-connection race lasts a moment; a request
						// the server had long since read must be answered.
						if lead := time.Unix(0, sigAt.Load()).Sub(rs); lead > 100*time.Millisecond {
							problem("request sent %s before SIGTERM was dropped: %v", lead, err)
						}
					}
					return
				}
				var r gqlResult
				if resp.StatusCode != http.StatusOK {
					problem("status %d: %.200s", resp.StatusCode, body)
				} else if err := json.Unmarshal(body, &r); err != nil {
					problem("incomplete JSON (%d bytes): %v", len(body), err)
				} else if len(r.Errors) > 0 || r.Data.Me == nil || r.Data.Me.Kind != "PLATFORM" {
					problem("wrong answer: %.200s", body)
				} else {
					completed.Add(1)
					if sig {
						afterSig.Add(1)
					} else if signaled.Load() {
						inFlight.Add(1)
					}
				}
			}
		}()
	}

	// Let every client get going before the signal.
	loadStart := time.Now()
	p.waitFor("answers under load", 20*time.Second, func() bool { return completed.Load() >= int64(2*clients) })
	warmup := time.Since(loadStart)
	// The signal lands with (nearly) every client waiting on an answer.
	p.waitFor("requests in flight", 20*time.Second, func() bool { return open.Load() >= int64(clients)*9/10 })
	start := time.Now()
	atSignal := open.Load()
	sigAt.Store(start.UnixNano())
	signaled.Store(true)
	p.stop(syscall.SIGTERM, 25*time.Second)
	took := time.Since(start)
	wg.Wait()

	for _, s := range problems {
		t.Error(s)
	}
	t.Logf("%d answers in %s of warm-up; %d requests open at SIGTERM; shutdown took %s: %d complete answers in all, %d in flight at SIGTERM, %d sent after it; %d clients refused (%d of them mid-request)",
		2*clients, warmup.Round(time.Millisecond), atSignal, took.Round(time.Millisecond), completed.Load(), inFlight.Load(), afterSig.Load(), refused.Load(), dropped.Load())
	// With 20 clients busy, requests are in flight when the signal lands;
	// the server must finish them rather than drop them.
	if inFlight.Load() == 0 {
		t.Errorf("no request in flight at SIGTERM was answered")
	}
	if !strings.Contains(p.stderr.String(), "stopped") {
		t.Errorf("no \"stopped\" in the log:\n%s", p.stderr)
	}
	return atSignal
}
