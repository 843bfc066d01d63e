package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/demo"
	"partnerd/expenditures"
	"partnerd/forecast"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/notify"
	"partnerd/notify/email"
	"partnerd/notify/sms"
	"partnerd/notify/webhook"
	"partnerd/partitions"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/vouchers"
	"partnerd/workers"
)

// roles says which parts a process runs.
type roles struct{ api, worker, scheduler bool }

// openStore creates the database when asked and missing, migrates when
// asked, and opens it.
func openStore(ctx context.Context, cfg *config, log *slog.Logger, create, doMigrate bool) (*store.Store, error) {
	if create {
		created, err := store.EnsureDatabase(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, err
		}
		if created {
			log.Info("created the database named in DATABASE_URL", "database", dbName(cfg.DatabaseURL))
		}
	}
	st, err := store.Open(ctx, cfg.DatabaseURL, store.Options{MaxOpenConns: cfg.DBMaxConns, Logger: log,
		StatementTimeout: cfg.Timeouts.DBStatement, ConnectTimeout: cfg.Timeouts.DBConnect})
	if err != nil {
		return nil, err
	}
	if doMigrate {
		if err := store.Migrate(ctx, st.SQL); err != nil {
			_ = st.Close()
			return nil, err
		}
		log.Info("schema is up to date")
	}
	return st, nil
}

func dbName(u string) string {
	if i := strings.LastIndexByte(u, '/'); i >= 0 {
		s := u[i+1:]
		if j := strings.IndexByte(s, '?'); j >= 0 {
			s = s[:j]
		}
		return s
	}
	return ""
}

func migrate(ctx context.Context, cfg *config, log *slog.Logger) error {
	st, err := openStore(ctx, cfg, log, true, true)
	if err != nil {
		return err
	}
	return st.Close()
}

func bootstrap(ctx context.Context, cfg *config, log *slog.Logger, email, name string, stdout io.Writer) error {
	st, err := openStore(ctx, cfg, log, false, false)
	if err != nil {
		return err
	}
	defer st.Close()
	token, err := accounts.New(st).Bootstrap(ctx, email, name)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}

func seed(ctx context.Context, cfg *config, log *slog.Logger, stdout io.Writer) error {
	st, err := openStore(ctx, cfg, log, false, false)
	if err != nil {
		return err
	}
	defer st.Close()
	dom := domain(st, cfg, log)
	if dom.Notify, err = notify.New(st, notify.Options{Log: log}); err != nil {
		return err
	}
	_, err = loadDemo(ctx, dom, log, stdout)
	return err
}

// loadDemo makes sure the platform exists, loads the demo tree into an empty
// database, and prints a fresh platform admin token.
func loadDemo(ctx context.Context, d demo.Services, log *slog.Logger, stdout io.Writer) (string, error) {
	token, err := d.Accounts.Bootstrap(ctx, demo.AdminEmail, "Demo Cloud Platform")
	if err != nil {
		return "", fmt.Errorf("bootstrap demo platform: %w", err)
	}
	sum, err := demo.Load(ctx, d)
	if err != nil {
		return "", err
	}
	if sum.Loaded {
		log.Info("loaded demo data", "accounts", sum.Accounts, "users", sum.Users, "expenditures", sum.Expenditures,
			"inbox_messages", sum.InboxMessages)
	} else {
		log.Info("the database already holds a tree; demo data not loaded again")
	}
	fmt.Fprintf(stdout, "platform admin (%s) token: %s\n", demo.AdminEmail, token)
	if partner, err := demo.PartnerToken(ctx, d.Accounts, 30*24*time.Hour); err == nil {
		fmt.Fprintf(stdout, "distributor admin (%s, with an inbox) token: %s\n", demo.PartnerAdminEmail, partner)
	}
	return token, nil
}

// domain builds the domain services of one process.
func domain(st *store.Store, cfg *config, log *slog.Logger) demo.Services {
	acc := accounts.New(st)
	return demo.Services{
		Accounts:  acc,
		Credit:    credit.New(st, cfg.BillingTimezone),
		Spend:     spend.New(st, cfg.BillingTimezone).WithLogger(log),
		Guard:     guard.New(st, guard.Options{Location: cfg.BillingTimezone, Retention: cfg.FreezeRetention, Log: log}),
		Groups:    groups.New(st),
		Lifecycle: lifecycle.New(st, lifecycle.Options{PublicURL: cfg.PublicURL, Location: cfg.BillingTimezone}),
		Migration: migration.New(st, migration.Options{Location: cfg.BillingTimezone, TTL: cfg.MigrationTTL, PublicURL: cfg.PublicURL, Log: log}),
		Billing:   billing.New(st, acc, billing.Options{Location: cfg.BillingTimezone, PublicURL: cfg.PublicURL, Log: log}),
		Vouchers:  vouchers.New(st, vouchers.Options{Location: cfg.BillingTimezone, Log: log}),
	}
}

// serve runs the parts of the product this process has, until SIGINT or
// SIGTERM; then it stops taking work, finishes what is in flight (bounded by
// SHUTDOWN_TIMEOUT) and returns nil.
func serve(ctx context.Context, cfg *config, log *slog.Logger, r roles, doMigrate, withDemo bool, stdout io.Writer) error {
	st, err := openStore(ctx, cfg, log, doMigrate, doMigrate)
	if err != nil {
		return err
	}
	defer st.Close()
	rdb := cfg.Redis.Client()
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		return fmt.Errorf("connect to Redis at REDIS_URL: %w", err)
	}
	dom := domain(st, cfg, log)
	// One of each per process: the bulk service's row slots bound the
	// process, whether the API or the worker role uses it.
	forecasts := forecast.New(st, forecast.Options{Location: cfg.BillingTimezone, Log: log})
	bulkChanges := bulk.New(st, dom.Guard, dom.Credit, bulk.Options{PublicURL: cfg.PublicURL, Log: log})
	svc := dom.Accounts
	hub := notify.NewHub(rdb, cfg.LivePrefix, log)
	defer hub.Close()
	queue := asynq.NewClient(cfg.QueueRedis)
	defer queue.Close()
	guard := webhook.NewGuard(cfg.WebhookAllowed)
	nopts := notify.Options{Hub: hub, Log: log, WebhookGuard: guard, SendLease: cfg.Timeouts.SendLease}
	if r.worker {
		nopts.Webhooks = webhook.NewSender(guard, cfg.WebhookTimeout)
		defer nopts.Webhooks.Close()
		if nopts.Email, err = email.New(email.Config{Host: cfg.SMTPHost, Port: cfg.SMTPPort, Username: cfg.SMTPUsername,
			Password: cfg.SMTPPassword, From: cfg.SMTPFrom, TLS: cfg.SMTPTLS, Timeout: cfg.Timeouts.SMTP}, log); err != nil {
			return fmt.Errorf("email: %w", err)
		}
		defer nopts.Email.Close()
		if nopts.SMS, err = sms.New(sms.Config{Provider: cfg.SMSProvider, WebhookURL: cfg.SMSWebhookURL, Aliyun: cfg.SMSAliyun, Timeout: cfg.Timeouts.SMS}, nil, log); err != nil {
			return fmt.Errorf("sms: %w", err)
		}
	}
	notifications, err := notify.New(st, nopts)
	if err != nil {
		return err
	}
	dom.Notify = notifications

	if withDemo {
		if _, err := loadDemo(ctx, dom, log, stdout); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "GraphiQL: %s/  (send the header Authorization: Bearer <token>)\n", cfg.PublicURL)
	}

	var wg sync.WaitGroup
	errc := make(chan error, 4)
	runCtx, stopAll := context.WithCancel(ctx)
	defer stopAll()
	goRun := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				errc <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}

	// Readiness turns red at the first signal (drain.Start below).
	drain := &server.Drain{}
	var httpSrv *http.Server
	if r.api {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		h := server.New(server.Deps{Drain: drain, Store: st, Accounts: svc, Credit: dom.Credit, Spend: dom.Spend, Hub: hub, Notify: notifications, Guard: dom.Guard, Groups: dom.Groups,
			Lifecycle: dom.Lifecycle, Migration: dom.Migration,
			Expenditures: expenditures.New(st, cfg.BillingTimezone), Billing: dom.Billing, Vouchers: dom.Vouchers,
			Forecasts: forecasts, BulkChanges: bulkChanges, PublicURL: cfg.PublicURL, Redis: rdb, Queue: cfg.QueueRedis, Registry: reg, Log: log},
			server.Options{Playground: cfg.Playground, Monitoring: true, RateLimit: cfg.RateLimit, CORSOrigins: cfg.CORSOrigins,
				RequestTimeout: cfg.Timeouts.Request, Limits: server.Limits{
					Depth: cfg.MaxDepth, Complexity: cfg.MaxComplexity, ParserTokens: cfg.MaxTokens, BodyBytes: cfg.MaxBody, UploadBytes: cfg.MaxUpload,
					Fields: cfg.MaxFields, Aliases: cfg.MaxAliases, Directives: cfg.MaxDirectives, ListItems: cfg.MaxListItems}})
		ln, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("listen on HTTP_ADDR %s: %w", cfg.HTTPAddr, err)
		}
		httpSrv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 120 * time.Second,
			BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) }}
		log.Info("API listening", "addr", ln.Addr().String(), "graphql", cfg.PublicURL+"/graphql")
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := httpSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("http: %w", err)
			}
		}()
	}

	var probeSrv *http.Server
	if !r.api && cfg.ProbeAddr != "" {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		ln, err := net.Listen("tcp", cfg.ProbeAddr)
		if err != nil {
			return fmt.Errorf("listen on PROBE_ADDR %s: %w", cfg.ProbeAddr, err)
		}
		probeSrv = &http.Server{Handler: server.Probes(server.Deps{Drain: drain, Store: st, Redis: rdb, Registry: reg}), ReadHeaderTimeout: 10 * time.Second}
		log.Info("probes listening", "addr", ln.Addr().String())
		go func() {
			if err := probeSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("probes: %w", err)
			}
		}()
		// Answered until the rest has stopped (serve returns): liveness
		// holds through the drain of running tasks.
		defer func() { _ = probeSrv.Close() }()
	}

	var taskSrv *asynq.Server
	if r.worker {
		reg := workers.NewRegistry()
		insp := asynq.NewInspector(cfg.QueueRedis)
		defer insp.Close()
		nw := workers.NewNotifications(notifications, queue, log).WithInspector(insp).WithReconcile(cfg.Reconcile)
		nw.Register(reg)
		mux := workers.NewMux(reg, st, log)
		nw.Handle(mux)
		gw := workers.NewGuard(dom.Guard, queue, log)
		gw.Register(reg)
		gw.Handle(mux)
		workers.HandleLifecycle(mux, dom.Lifecycle)
		mw := workers.NewMigration(dom.Migration, queue, log)
		mw.Register(reg)
		mw.Handle(mux)
		workers.HandleBilling(mux, dom.Billing, cfg.BillSchedule)
		workers.HandleVouchers(mux, dom.Vouchers)
		workers.HandleForecast(mux, forecasts)
		workers.HandlePartitions(mux, partitions.New(st, cfg.Partitions, log))
		bw := workers.NewBulk(bulkChanges, queue, log)
		bw.Register(reg)
		bw.Handle(mux)
		// The sweep re-enqueues with the relay's own task options.
		relayOpts := workers.RelayOptions{Notifications: nw, Registry: reg, ListenURL: cfg.DatabaseListenURL}
		workers.NewOutboxSweeper(st, queue, insp, log, cfg.Reconcile, relayOpts).Handle(mux)
		taskSrv = workers.NewServer(cfg.QueueRedis, workers.ServerConfig{Concurrency: cfg.WorkerConcurrency, ShutdownTimeout: cfg.ShutdownTimeout}, log)
		if err := taskSrv.Start(mux); err != nil {
			return fmt.Errorf("start workers: %w", err)
		}
		relay := workers.NewRelay(st, queue, hub, log, relayOpts)
		goRun("outbox relay", relay.Run)
		log.Info("workers started", "concurrency", cfg.WorkerConcurrency)
	}
	if r.scheduler {
		entries := append(append(append(workers.PartitionEntries(), workers.ReconcileEntries(cfg.Reconcile)...), workers.GuardEntries()...), workers.LifecycleEntries()...)
		entries = append(append(entries, workers.MigrationEntries()...), workers.BillingEntries()...)
		entries = append(append(append(entries, workers.VouchersEntries()...), workers.ForecastEntries()...), workers.BulkEntries()...)
		sched := workers.NewScheduler(queue, entries, st.Clock(), log)
		goRun("scheduler", sched.Run)
		log.Info("scheduler started")
	}

	var failed error
	select {
	case <-ctx.Done():
		drain.Start()
		if httpSrv != nil && cfg.ShutdownDrain > 0 {
			// Load balancers see /readyz red and stop routing here, while the
			// requests that still come are served.
			log.Info("draining: /readyz answers 503 while requests are still served", "for", cfg.ShutdownDrain.String())
			select {
			case <-time.After(cfg.ShutdownDrain):
			case failed = <-errc:
				log.Error("failure while draining", "err", failed)
			}
		}
		log.Info("shutting down: finishing in-flight requests and tasks", "timeout", cfg.ShutdownTimeout.String())
	case err := <-errc:
		log.Error("stopping after a failure", "err", err)
		stopAll()
		shutdown(httpSrv, taskSrv, cfg.ShutdownTimeout, log)
		wg.Wait()
		return err
	}
	stopAll()
	shutdown(httpSrv, taskSrv, cfg.ShutdownTimeout, log)
	wg.Wait()
	log.Info("stopped")
	return failed
}

func shutdown(httpSrv *http.Server, taskSrv *asynq.Server, timeout time.Duration, log *slog.Logger) {
	var wg sync.WaitGroup
	if httpSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			if err := httpSrv.Shutdown(ctx); err != nil {
				log.Warn("HTTP shutdown did not finish in time", "err", err)
				_ = httpSrv.Close()
			}
		}()
	}
	if taskSrv != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			taskSrv.Shutdown() // waits for active tasks up to the server's shutdown timeout, then hands them back
		}()
	}
	wg.Wait()
}
