package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"partnerd/accounts"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/migration"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/store"
)

// The product's defaults (cmd/partnerd/config.go), so the server measured is
// the one users run.
const (
	dbMaxConns      = 20
	livePrefix      = "partnerd:"
	billingTimezone = "Asia/Shanghai"
	benchAdminEmail = "bench-admin@partnerbench.example"
)

// bench is the system under test and what the scenarios share: the
// database, the in-process product server and a platform token.
type bench struct {
	o       *options
	stderr  io.Writer
	log     *slog.Logger
	loc     *time.Location
	dbName  string
	dbURL   string
	maint   string
	st      *store.Store
	rdb     *redis.Client
	hub     *notify.Hub
	srv     *http.Server
	baseURL string
	token   string
	// platform is a context acting as the bootstrapped platform admin, for
	// creating data through the domain services as a user would.
	platform context.Context
	accounts *accounts.Service
	// guard is the server's guard service (budgets, freezes, the purchase
	// guard); the overspend scenario's workers enforce with it too.
	guard *guard.Service
	// fixtures built once and shared by the scenarios that fit them.
	customers1k *distributorFixture
	closers     []func()
}

// setup creates the database, migrates it, flushes Redis, starts the
// product server and bootstraps a platform token. On error the returned
// bench (possibly nil) still needs close.
func setup(ctx context.Context, o *options, stderr io.Writer) (*bench, error) {
	loc, err := time.LoadLocation(billingTimezone)
	if err != nil {
		return nil, fmt.Errorf("billing time zone: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	b := &bench{o: o, stderr: stderr, log: log, loc: loc}

	u, err := url.Parse(o.databaseURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, fmt.Errorf("--database-url %q is not a postgres:// URL", o.databaseURL)
	}
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	b.dbName = "partnerbench_" + hex.EncodeToString(suffix)
	du, mu := *u, *u
	du.Path, mu.Path = "/"+b.dbName, "/postgres"
	b.dbURL, b.maint = du.String(), mu.String()

	b.logf("creating database %s", b.dbName)
	t0 := time.Now()
	if _, err := store.EnsureDatabase(ctx, b.dbURL); err != nil {
		return nil, err
	}
	b.closers = append(b.closers, b.dropDatabase)
	b.st, err = store.Open(ctx, b.dbURL, store.Options{MaxOpenConns: dbMaxConns, Logger: log})
	if err != nil {
		return b, err
	}
	b.closers = append(b.closers, func() { _ = b.st.Close() })
	if err := store.Migrate(ctx, b.st.SQL); err != nil {
		return b, err
	}
	b.logf("database ready in %s", time.Since(t0).Round(time.Millisecond))

	ropts, err := redis.ParseURL(o.redisURL)
	if err != nil {
		return b, fmt.Errorf("--redis-url: %w", err)
	}
	queue, err := asynq.ParseRedisURI(o.redisURL)
	if err != nil {
		return b, fmt.Errorf("--redis-url: %w", err)
	}
	// The tests lease Redis database numbers through keys in database 0; take
	// the same lease so a benchmark never flushes a running test's database.
	leaseOpts := *ropts
	leaseOpts.DB = 0
	lease := redis.NewClient(&leaseOpts)
	b.closers = append(b.closers, func() { _ = lease.Close() })
	leaseKey := fmt.Sprintf("partnerd:test:lease:%d", ropts.DB)
	if ropts.DB != 0 {
		ok, err := lease.SetNX(ctx, leaseKey, "partnerbench", 2*time.Hour).Result()
		if err != nil {
			return b, fmt.Errorf("--redis-url: %w", err)
		}
		if !ok {
			return b, fmt.Errorf("--redis-url: Redis database %d is in use by a running test; pass another database number", ropts.DB)
		}
		b.closers = append(b.closers, func() { lease.Del(context.Background(), leaseKey) })
	}
	b.rdb = redis.NewClient(ropts)
	b.closers = append(b.closers, func() { _ = b.rdb.Close() })
	if err := b.rdb.FlushDB(ctx).Err(); err != nil {
		return b, fmt.Errorf("FLUSHDB on %s: %w", o.redisURL, err)
	}
	b.hub = notify.NewHub(b.rdb, livePrefix, log)
	b.closers = append(b.closers, func() { _ = b.hub.Close() })

	b.accounts = accounts.New(b.st)
	b.token, err = b.accounts.Bootstrap(ctx, benchAdminEmail, "Partnerbench Cloud Platform")
	if err != nil {
		return b, fmt.Errorf("bootstrap: %w", err)
	}
	p, err := b.accounts.Authenticate(ctx, b.token)
	if err != nil {
		return b, fmt.Errorf("authenticate the platform token: %w", err)
	}
	b.platform = accounts.WithPrincipal(context.WithoutCancel(ctx), p)

	// The API role of cmd/partnerd/run.go, with the product's default limits.
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	b.guard = guard.New(b.st, guard.Options{Location: loc, Log: log})
	h := server.New(server.Deps{Store: b.st, Accounts: b.accounts, Credit: credit.New(b.st, loc),
		Spend: spend.New(b.st, loc).WithLogger(log), Hub: b.hub, Guard: b.guard,
		Migration: migration.New(b.st, migration.Options{Location: loc, Log: log}), Redis: b.rdb, Queue: queue, Registry: reg, Log: log},
		server.Options{Playground: true, Monitoring: true, Limits: server.Limits{
			Depth: 12, Complexity: 100000, ParserTokens: 15000, BodyBytes: 1 << 20, UploadBytes: 20 << 20}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return b, fmt.Errorf("listen: %w", err)
	}
	b.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
	b.baseURL = "http://" + ln.Addr().String()
	go func() {
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			b.logf("server stopped: %v", err)
		}
	}()
	b.closers = append(b.closers, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.srv.Shutdown(sctx); err != nil {
			_ = b.srv.Close()
		}
	})
	b.logf("partnerd serving at %s", b.baseURL)
	return b, nil
}

// close stops the server, closes the connections and drops the database,
// in the reverse order of setup.
func (b *bench) close() {
	for i := len(b.closers) - 1; i >= 0; i-- {
		b.closers[i]()
	}
	b.closers = nil
}

func (b *bench) dropDatabase() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, b.maint)
	if err != nil {
		b.logf("could not drop database %s (connect to the maintenance database: %v); drop it by hand", b.dbName, err)
		return
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{b.dbName}.Sanitize()+" WITH (FORCE)"); err != nil {
		b.logf("could not drop database %s: %v; drop it by hand", b.dbName, err)
		return
	}
	b.logf("dropped database %s", b.dbName)
}

// logf prints one line of progress on stderr.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "partnerbench: "+format+"\n", args...)
}

// machineInfo describes where the figures were taken.
type machineInfo struct {
	CPUs       int
	CPUModel   string
	Memory     string
	OS         string
	Go         string
	PostgreSQL string
	Redis      string
}

func (b *bench) machine(ctx context.Context) machineInfo {
	m := machineInfo{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version(),
		Memory: "unknown", CPUModel: "unknown", PostgreSQL: "unknown", Redis: "unknown"}
	if kb, ok := procField("/proc/meminfo", "MemTotal"); ok {
		if n, err := strconv.ParseInt(strings.Fields(kb)[0], 10, 64); err == nil {
			m.Memory = fmt.Sprintf("%.1f GiB", float64(n)/(1<<20))
		}
	}
	if model, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.CPUModel = model
	}
	if err := b.st.SQL.QueryRowContext(ctx, "SHOW server_version").Scan(&m.PostgreSQL); err != nil {
		m.PostgreSQL = "unknown (" + err.Error() + ")"
	}
	if info, err := b.rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				m.Redis = v
			}
		}
	}
	return m
}

// procField returns the value of the first "name : value" line of a /proc file.
func procField(path, name string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == name {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// newClient is a keep-alive HTTP client for conc concurrent callers.
func newClient(conc int, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

// graphql sends one GraphQL request with the platform token on c and
// returns the body, failing on a transport error, a status other than 200
// or an errors entry in the answer.
func (b *bench) graphql(ctx context.Context, c *http.Client, body []byte) ([]byte, error) {
	return graphqlAt(ctx, c, b.baseURL+"/graphql", b.token, body)
}

// graphqlAt sends one GraphQL request to url (with token, unless empty) on
// c and returns the body, failing on a transport error, a status other
// than 200 or an errors entry in the answer.
func graphqlAt(ctx context.Context, c *http.Client, url, token string, body []byte) ([]byte, error) {
	out, err := postJSONTo(ctx, c, url, token, body)
	if err != nil {
		return out, err
	}
	if bytes.Contains(out, []byte(`"errors":`)) {
		return out, fmt.Errorf("GraphQL error: %s", clip(out))
	}
	return out, nil
}

func clip(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 300 {
		return s[:300] + "…"
	}
	return s
}
