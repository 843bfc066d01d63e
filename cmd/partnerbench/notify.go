package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/hibiken/asynq"
	"github.com/wneessen/go-mail"

	"partnerd/accounts"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/email"
	"partnerd/notify/email/emailtest"
	"partnerd/store"
	"partnerd/workers"
)

// The notify scenario (issue 4): N emails through the whole product path —
// emit in a transaction, the outbox relay, asynq, the fan-out, the delivery
// task, go-mail — into a local SMTP server (emersion/go-smtp), against a
// bare go-mail loop sending the same N messages over one connection to the
// same server, in one run.

// notifyEmails is the emails per run (--quick: 1,000).
const notifyEmails = 10_000

// workerConcurrency is the product's default WORKER_CONCURRENCY.
const workerConcurrency = 10

func (b *bench) notify(ctx context.Context) (*section, error) {
	n := notifyEmails
	if b.o.quick {
		n = 1000
	}
	// The product's sender keeps pointing at one address; each run gets a
	// fresh sink there (a sink keeps every message it got).
	sink, err := emailtest.NewSinkOn("127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("SMTP sink: %w", err)
	}
	addr := sink.Addr()
	defer func() { sink.Close() }()

	// One distributor whose one admin turned in-site off for credit.limit_set:
	// each event owes exactly one email.
	partner, err := b.accounts.Create(b.platform, accounts.CreateInput{Kind: models.KindDistributor,
		ParentID: mustPlatformID(b), Name: "Notify Bench Distributor " + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		return nil, fmt.Errorf("create distributor: %w", err)
	}
	u, err := b.accounts.CreateUser(b.platform, accounts.CreateUserInput{AccountID: partner.ID,
		Email: fmt.Sprintf("finance-%d@bench.example", partner.ID), Roles: []models.Role{models.RoleAdmin}, Name: "Bench Finance"})
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
	mailer, err := email.New(email.Config{Host: sink.Host(), Port: sink.Port(), TLS: "none", From: "notify@bench.example"}, b.log)
	if err != nil {
		return nil, err
	}
	defer mailer.Close()
	svc, err := notify.New(b.st, notify.Options{Email: mailer, Hub: b.hub, Log: b.log})
	if err != nil {
		return nil, err
	}
	if _, err := svc.SetPreference(accounts.WithPrincipal(ctx, p), notify.EventCreditLimitSet, models.ChannelInSite, false); err != nil {
		return nil, err
	}
	// The message the bare loop sends: what the product renders for the event.
	sample, err := notify.NewRenderer(notify.NewCatalogue())
	if err != nil {
		return nil, err
	}
	msg, err := sample.Render(notify.EventCreditLimitSet, models.LocaleEnUS,
		notify.CreditLimitSet{PartnerID: partner.ID, Limit: "500000.00", Previous: "300000.00"}, u.Name,
		func(int64) (string, error) { return partner.Name, nil })
	if err != nil {
		return nil, err
	}

	stop, insp, err := b.startDeliveryWorkers(ctx, svc)
	if err != nil {
		return nil, err
	}
	defer stop()
	sec := &section{name: "notify"}
	productRates, bareRates, err := b.versus(ctx, "notify", "emails/s", n,
		func(ctx context.Context, run int) (time.Duration, error) {
			if run > 1 { // a fresh sink each run
				sink.Close()
				if sink, err = emailtest.NewSinkOn(addr); err != nil {
					return 0, fmt.Errorf("SMTP sink: %w", err)
				}
			}
			return b.bareMailLoop(ctx, sink, u.Email, msg, n, run)
		},
		func(ctx context.Context, run int) (time.Duration, error) {
			return b.productMail(ctx, sink, insp, partner.ID, n, run)
		})
	if err != nil {
		return nil, err
	}
	sec.title = fmt.Sprintf("notify: %s emails per run through the product vs a bare go-mail loop", thousands(n))
	sec.notes = []string{
		fmt.Sprintf("Product: %s `credit.limit_set` events emitted through `store.Tx.Emit` in transactions of 500 (one statement each), for a distributor whose one admin turned in-site off, so each event owes one email; timed from the first commit until the SMTP server has accepted every message and every queue is empty (all the tasks the emails caused have run). In the same process, as `partnerd worker` runs them: the outbox relay (which fans the events out, a batch at a time, and enqueues one delivery task per email), an asynq worker server with the product's default concurrency (%d) running the delivery tasks, and the product's email sender (go-mail, its default pool of 4 connections).", thousands(n), workerConcurrency),
		"Floor: one go-mail client on one connection sending the same rendered message (subject, text and HTML bodies, Message-ID) to the same address in a loop.",
		"Both send to the same local SMTP server (emersion/go-smtp, no TLS, no auth, a fresh one each run), which parses every message; the bare loop runs first in each run.",
	}
	sec.header = []string{"path", "emails/s (median)", "min", "max"}
	sec.rows = versusRows("product: emit → relay (fan-out) → asynq → delivery → go-mail", "bare go-mail loop, one connection", productRates, bareRates, 50)
	return sec, nil
}

func mustPlatformID(b *bench) int64 {
	p, err := b.accounts.Platform(b.platform)
	if err != nil {
		return 0
	}
	return p.ID
}

// startDeliveryWorkers starts the notification workers for svc, as the
// notify and webhook scenarios need them, with an inspector of their queues
// (to wait until they are empty); stop stops both.
func (b *bench) startDeliveryWorkers(ctx context.Context, svc *notify.Service) (stop func(), insp *asynq.Inspector, err error) {
	qopt, err := asynq.ParseRedisURI(b.o.redisURL)
	if err != nil {
		return nil, nil, err
	}
	stopWorkers, err := b.startWorkers(ctx, svc, nil)
	if err != nil {
		return nil, nil, err
	}
	insp = asynq.NewInspector(qopt)
	return func() {
		_ = insp.Close()
		stopWorkers()
	}, insp, nil
}

// startWorkers runs the relay and a worker server with the notification
// handlers, as `partnerd worker` does, and the guard's consumers and task
// handlers when g is not nil.
func (b *bench) startWorkers(ctx context.Context, svc *notify.Service, g *guard.Service) (func(), error) {
	qopt, err := asynq.ParseRedisURI(b.o.redisURL)
	if err != nil {
		return nil, err
	}
	client := asynq.NewClient(qopt)
	reg := workers.NewRegistry()
	nw := workers.NewNotifications(svc, client, b.log)
	nw.Register(reg)
	mux := workers.NewMux(reg, b.st, b.log)
	nw.Handle(mux)
	if g != nil {
		gw := workers.NewGuard(g, client, b.log)
		gw.Register(reg)
		gw.Handle(mux)
	}
	srv := workers.NewServer(qopt, workers.ServerConfig{Concurrency: workerConcurrency, ShutdownTimeout: 5 * time.Second}, b.log)
	if err := srv.Start(mux); err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("start workers: %w", err)
	}
	rctx, cancel := context.WithCancel(ctx)
	relay := workers.NewRelay(b.st, client, b.hub, b.log, workers.RelayOptions{Notifications: nw, Registry: reg})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = relay.Run(rctx)
	}()
	return func() {
		cancel()
		<-done
		srv.Shutdown()
		_ = client.Close()
	}, nil
}

// bareMailLoop sends n copies of msg over one go-mail connection and waits
// for the sink to have them all.
func (b *bench) bareMailLoop(ctx context.Context, sink *emailtest.Sink, to string, msg notify.Message, n, run int) (time.Duration, error) {
	c, err := mail.NewClient(sink.Host(), mail.WithPort(sink.Port()), mail.WithTLSPolicy(mail.NoTLS))
	if err != nil {
		return 0, err
	}
	base := sink.Count()
	bar := b.progress(fmt.Sprintf("notify bare go-mail run %d/%d", run, b.o.runs), int64(n), "emails", nil)
	start := time.Now()
	if err := c.DialWithContext(ctx); err != nil {
		bar.finish()
		return 0, err
	}
	for i := range n {
		m := mail.NewMsg()
		if err := m.From("notify@bench.example"); err != nil {
			return 0, err
		}
		if err := m.To(to); err != nil {
			return 0, err
		}
		m.Subject(msg.Subject)
		m.SetMessageIDWithValue(fmt.Sprintf("bare-%d-%d@bench.example", run, i))
		m.SetBodyString(mail.TypeTextPlain, msg.Text)
		m.AddAlternativeString(mail.TypeTextHTML, msg.HTML)
		if err := c.Send(m); err != nil {
			bar.finish()
			return 0, err
		}
		bar.add(1)
	}
	_ = c.Close()
	took := time.Since(start)
	bar.finish()
	if got := sink.Count() - base; got != n {
		return 0, fmt.Errorf("the sink got %d of %d messages", got, n)
	}
	return took, nil
}

// productMail emits n events, each owing one email, and waits for the sink
// to have received n more messages and for the queues to be empty: the
// time includes every task the emails caused, so the next measurement does
// not share the machine with this one's leftovers.
func (b *bench) productMail(ctx context.Context, sink *emailtest.Sink, insp *asynq.Inspector, partnerID int64, n, run int) (time.Duration, error) {
	base := sink.Count()
	bar := b.progress(fmt.Sprintf("notify product run %d/%d", run, b.o.runs), int64(n), "emails",
		func() string { return fmt.Sprintf("%d accepted", sink.Count()-base) })
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
	for sink.Count()-base < n {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("only %d of %d emails arrived", sink.Count()-base, n)
		}
		bar.set(int64(sink.Count() - base))
		time.Sleep(5 * time.Millisecond)
	}
	for queued(insp) > 0 {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return 0, fmt.Errorf("the queues never drained: %d tasks left", queued(insp))
		}
		time.Sleep(5 * time.Millisecond)
	}
	took := time.Since(start)
	if got := sink.Count() - base; got != n {
		return 0, fmt.Errorf("the sink got %d emails, want %d", got, n)
	}
	return took, nil
}

// queued counts the tasks waiting, running or due for a retry in every
// queue.
func queued(insp *asynq.Inspector) int {
	qs, err := insp.Queues()
	if err != nil {
		return 1
	}
	n := 0
	for _, q := range qs {
		info, err := insp.GetQueueInfo(q)
		if err != nil {
			return 1
		}
		n += info.Pending + info.Active + info.Scheduled + info.Retry + info.Aggregating
	}
	return n
}
