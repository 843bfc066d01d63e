package email_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"partnerd/notify/email"
	"partnerd/notify/email/emailtest"
)

const testFrom = "Partner Center <noreply@partner.example>"

// newSender returns an SMTP sender into sink, closed by the test's cleanup.
func newSender(t testing.TB, sink *emailtest.Sink, tune func(*email.Config)) email.Sender {
	t.Helper()
	cfg := email.Config{
		Host:    sink.Host(),
		Port:    sink.Port(),
		From:    testFrom,
		TLS:     email.TLSNone,
		Timeout: 2 * time.Second,
	}
	if tune != nil {
		tune(&cfg)
	}
	s, err := email.New(cfg, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func message(key string) email.Message {
	return email.Message{
		Key:     key,
		To:      "alice@customer.example",
		ToName:  "Alice",
		Subject: "Credit allocated " + key,
		Text:    "You received credit (" + key + ").",
		Locale:  "en-US",
	}
}

// waitUntil polls cond until it holds or a deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestSend_ConcurrentMessagesShareTwoConnections(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 2 })

	const total, workers = 20, 8
	want := map[string]email.Message{} // by Message-ID
	var msgs []email.Message
	for i := range total {
		m := email.Message{
			Key:     fmt.Sprintf("evt-%d:user-%d:email", 100+i, i),
			To:      fmt.Sprintf("user%d@customer.example", i),
			ToName:  fmt.Sprintf("User %d", i),
			Subject: fmt.Sprintf("Budget alert %d", i),
			Text:    fmt.Sprintf("Budget %d reached 80%% = of its limit.\nSee https://partner.example/budgets/%d", i, i),
			Locale:  "en-US",
		}
		if i%2 == 0 {
			m.HTML = fmt.Sprintf("<p>Budget <b>%d</b> reached 80%%.</p>", i)
		}
		if i == 7 {
			m.Subject = "预算提醒：您的账户余额不足，请尽快充值以免服务中断"
			m.ToName = "张三"
			m.Text = "您好，\n您的预算已使用 80%。"
			m.HTML = "<p>您好，您的预算已使用 <b>80%</b>。</p>"
			m.Locale = "zh-CN"
		}
		msgs = append(msgs, m)
		want[email.MessageID(m.Key, testFrom)] = m
	}

	work := make(chan email.Message)
	errs := make(chan error, total)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for m := range work {
				res, err := s.Send(t.Context(), m)
				if err == nil && !strings.HasPrefix(res.Response, "250 ") {
					err = fmt.Errorf("%s: response %q", m.Key, res.Response)
				}
				errs <- err
			}
		})
	}
	for _, m := range msgs {
		work <- m
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}

	got := sink.WaitFor(t, total, 5*time.Second)
	if len(got) != total {
		t.Fatalf("sink got %d messages, want %d", len(got), total)
	}
	for _, r := range got {
		if r.ParseErr != nil {
			t.Fatalf("unparseable message: %v\n%s", r.ParseErr, r.Data)
		}
		m, ok := want[r.MessageID]
		if !ok {
			t.Fatalf("unexpected Message-ID %q", r.MessageID)
		}
		delete(want, r.MessageID)
		if r.From != "noreply@partner.example" || len(r.To) != 1 || r.To[0] != m.To {
			t.Errorf("%s: envelope from %q to %v", m.Key, r.From, r.To)
		}
		if from := r.Header.Get("From"); !strings.Contains(from, "<noreply@partner.example>") {
			t.Errorf("%s: From header %q", m.Key, from)
		}
		to, err := r.Header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Address != m.To || to[0].Name != m.ToName {
			t.Errorf("%s: To header %v (%v), want %s <%s>", m.Key, to, err, m.ToName, m.To)
		}
		if r.Subject != m.Subject {
			t.Errorf("%s: subject %q, want %q", m.Key, r.Subject, m.Subject)
		}
		if got := strings.ReplaceAll(r.TextBody, "\r\n", "\n"); got != m.Text {
			t.Errorf("%s: text body %q, want %q", m.Key, got, m.Text)
		}
		if got := strings.ReplaceAll(r.HTMLBody, "\r\n", "\n"); got != m.HTML {
			t.Errorf("%s: HTML body %q, want %q", m.Key, got, m.HTML)
		}
		if got := r.Header.Get("Content-Language"); got != m.Locale {
			t.Errorf("%s: Content-Language %q, want %q", m.Key, got, m.Locale)
		}
		if _, err := r.Header.Date(); err != nil {
			t.Errorf("%s: Date: %v", m.Key, err)
		}
		ct := r.Header.Get("Content-Type")
		if m.HTML != "" && !strings.HasPrefix(ct, "multipart/alternative") {
			t.Errorf("%s: Content-Type %q, want multipart/alternative", m.Key, ct)
		}
		if m.HTML == "" && !strings.Contains(strings.ToLower(ct), "charset=utf-8") {
			t.Errorf("%s: Content-Type %q, want UTF-8 text", m.Key, ct)
		}
		if m.Locale == "zh-CN" && !strings.HasPrefix(r.Header.Get("Subject"), "=?UTF-8?") {
			t.Errorf("Chinese subject not RFC 2047 encoded: %q", r.Header.Get("Subject"))
		}
	}
	if n := sink.Connections(); n < 1 || n > 2 {
		t.Errorf("sink accepted %d connections for %d messages, want 1 or 2 (reused)", n, total)
	}
}

func TestSend_ServerDownIsRetryableAndPoolRecovers(t *testing.T) {
	sink := emailtest.NewSink(t)
	const timeout = 2 * time.Second
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 2; c.Timeout = timeout })
	for i := range 3 {
		if _, err := s.Send(t.Context(), message(fmt.Sprintf("before-%d", i))); err != nil {
			t.Fatalf("send before stop: %v", err)
		}
	}

	sink.Stop()
	start := time.Now()
	_, err := s.Send(t.Context(), message("while-down"))
	if err == nil {
		t.Fatal("send to a stopped server succeeded")
	}
	if email.IsPermanent(err) {
		t.Fatalf("server down reported permanent: %v", err)
	}
	if took := time.Since(start); took >= timeout {
		t.Errorf("send to a stopped server took %s, want under the %s timeout", took, timeout)
	}

	sink.Start()
	for i := range 3 {
		if _, err := s.Send(t.Context(), message(fmt.Sprintf("after-%d", i))); err != nil {
			t.Fatalf("send after restart: %v", err)
		}
	}
	got := sink.WaitFor(t, 6, 5*time.Second)
	if got[5].MessageID != email.MessageID("after-2", testFrom) {
		t.Errorf("last message %q", got[5].MessageID)
	}
}

func TestSend_StaleIdleConnectionIsReplacedTransparently(t *testing.T) {
	// The server drops idle connections (restart) while the sender's pool
	// still holds them: the next send must not fail because of that.
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 2 })
	if _, err := s.Send(t.Context(), message("first")); err != nil {
		t.Fatal(err)
	}
	sink.Stop()
	sink.Start()
	if _, err := s.Send(t.Context(), message("second")); err != nil {
		t.Fatalf("send on a pool of dead connections: %v", err)
	}
	sink.WaitFor(t, 2, 5*time.Second)
	if n := sink.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2 (one redial)", n)
	}
}

func TestSend_RejectionsAreClassified(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 1 })

	sink.RejectNext(550, "mailbox unavailable", 1)
	_, err := s.Send(t.Context(), message("refused"))
	if !email.IsPermanent(err) {
		t.Fatalf("550: IsPermanent = false for %v", err)
	}
	pe, ok := errors.AsType[*email.PermanentError](err)
	if !ok || pe.Response != "550 5.0.0 mailbox unavailable" {
		t.Errorf("550: PermanentError %+v", pe)
	}
	if !strings.Contains(err.Error(), "550") {
		t.Errorf("550: error text %q lacks the reply", err)
	}

	sink.RejectNext(451, "try again later", 1)
	_, err = s.Send(t.Context(), message("deferred"))
	if err == nil || email.IsPermanent(err) {
		t.Fatalf("451: want a retryable error, got %v", err)
	}
	if !strings.Contains(err.Error(), "451") {
		t.Errorf("451: error text %q lacks the reply", err)
	}

	if _, err := s.Send(t.Context(), message("deferred")); err != nil {
		t.Fatalf("send after rejections: %v", err)
	}
	got := sink.WaitFor(t, 1, 5*time.Second)
	if len(got) != 1 || got[0].MessageID != email.MessageID("deferred", testFrom) {
		t.Fatalf("sink got %d messages, want only the retried one", len(got))
	}
	if n := sink.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1: a refused message leaves the connection usable", n)
	}
}

func TestSend_IdleConnectionIsClosedAndReplaced(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.IdleTimeout = 50 * time.Millisecond })
	if _, err := s.Send(t.Context(), message("one")); err != nil {
		t.Fatal(err)
	}
	if n := sink.Connections(); n != 1 {
		t.Fatalf("connections = %d, want 1", n)
	}
	waitUntil(t, "the idle connection is closed", func() bool { return sink.Active() == 0 })
	if _, err := s.Send(t.Context(), message("two")); err != nil {
		t.Fatalf("send after idle timeout: %v", err)
	}
	sink.WaitFor(t, 2, 5*time.Second)
	if n := sink.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2 (the idle one replaced)", n)
	}
}

func TestSend_CancelledContextIsRetryable(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := s.Send(ctx, message("cancelled"))
	if !errors.Is(err, context.Canceled) || email.IsPermanent(err) {
		t.Fatalf("cancelled send: %v", err)
	}
	if _, err := s.Send(t.Context(), message("next")); err != nil {
		t.Fatal(err)
	}
}

func TestSend_WaitsForAFreeConnectionUntilContextEnds(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 1 })
	sink.Hold()
	first := make(chan error, 1)
	go func() {
		_, err := s.Send(t.Context(), message("holds-the-connection"))
		first <- err
	}()
	waitUntil(t, "the first message is in flight", func() bool { return sink.Holding() == 1 })

	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := s.Send(ctx, message("waits"))
	if !errors.Is(err, context.DeadlineExceeded) || email.IsPermanent(err) {
		t.Fatalf("send with the pool busy: %v, want a retryable deadline error", err)
	}
	if n := sink.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1: the cap is 1", n)
	}

	sink.Release()
	if err := <-first; err != nil {
		t.Fatalf("held send: %v", err)
	}
	if _, err := s.Send(t.Context(), message("after")); err != nil {
		t.Fatal(err)
	}
	if n := sink.Connections(); n != 1 {
		t.Errorf("connections = %d, want 1", n)
	}
}

func TestSend_CancelAbortsTheExchange(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 1; c.Timeout = 10 * time.Second })
	sink.Hold()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := s.Send(ctx, message("cancelled"))
		done <- err
	}()
	waitUntil(t, "the message is in flight", func() bool { return sink.Holding() == 1 })
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) || email.IsPermanent(err) {
			t.Fatalf("cancelled send: %v, want a retryable cancellation", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("cancel did not interrupt the SMTP exchange")
	}
	sink.Release()
	// The aborted connection is gone; the next message gets a new one.
	if _, err := s.Send(t.Context(), message("next")); err != nil {
		t.Fatal(err)
	}
	if n := sink.Connections(); n != 2 {
		t.Errorf("connections = %d, want 2", n)
	}
}

func TestSend_AuthenticatesWhenUsernameSet(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Username, c.Password = "relay-user", "secret" })
	if _, err := s.Send(t.Context(), message("auth")); err != nil {
		t.Fatal(err)
	}
	if got := sink.WaitFor(t, 1, 5*time.Second)[0].Username; got != "relay-user" {
		t.Errorf("authenticated as %q, want relay-user", got)
	}
}

func TestSend_StartTLSRequiredNeverDowngrades(t *testing.T) {
	sink := emailtest.NewSink(t) // offers no STARTTLS
	s := newSender(t, sink, func(c *email.Config) { c.TLS = email.TLSStartTLS })
	_, err := s.Send(t.Context(), message("plain"))
	if err == nil {
		t.Fatal("starttls sender sent over a server without STARTTLS")
	}
	if email.IsPermanent(err) {
		t.Errorf("TLS failure reported permanent (it is the server's or the config's fault): %v", err)
	}
	if sink.Count() != 0 {
		t.Errorf("sink got %d messages", sink.Count())
	}
}

func TestSend_InvalidMessageIsPermanent(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, nil)
	for name, m := range map[string]email.Message{
		"no key":      {To: "a@b.example", Text: "x"},
		"no text":     {Key: "k", To: "a@b.example"},
		"bad address": {Key: "k", To: "not an address", Text: "x"},
		"bad locale":  {Key: "k", To: "a@b.example", Text: "x", Locale: "en US\r\nBcc: x@y"},
	} {
		if _, err := s.Send(t.Context(), m); !email.IsPermanent(err) {
			t.Errorf("%s: err = %v, want permanent", name, err)
		}
	}
	if n := sink.Connections(); n != 0 {
		t.Errorf("invalid messages opened %d connections", n)
	}
}

func TestClose_ClosesConnectionsAndRefusesSends(t *testing.T) {
	sink := emailtest.NewSink(t)
	s := newSender(t, sink, func(c *email.Config) { c.Connections = 3 })
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() {
			if _, err := s.Send(t.Context(), message(fmt.Sprintf("c%d", i))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the sink sees every connection closed", func() bool { return sink.Active() == 0 })
	if _, err := s.Send(t.Context(), message("late")); !errors.Is(err, email.ErrClosed) {
		t.Errorf("send after Close: %v, want ErrClosed", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func BenchmarkSend(b *testing.B) {
	sink := emailtest.NewSink(b)
	s := newSender(b, sink, func(c *email.Config) { c.Connections = 4 })
	m := message("bench")
	m.HTML = "<p>You received credit.</p>"
	var seq atomic.Int64
	b.SetParallelism(4) // more senders than connections, as with many workers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mm := m
			mm.Key = fmt.Sprintf("bench-%d", seq.Add(1))
			if _, err := s.Send(context.Background(), mm); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	sink.WaitFor(b, b.N, 10*time.Second)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if c := sink.Connections(); c > 4 {
		b.Errorf("%d connections, want at most 4", c)
	}
}
