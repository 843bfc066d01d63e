package email

// Duplicates. A message is delivered at least once, and one duplicate window
// remains that no client can close: the server has accepted the message (its
// 250 reply to the end of DATA) and the worker dies, or never reads that
// reply (the connection drops or the context ends after the final dot),
// before the caller records the delivery. The retry sends it again — with
// the same Message-ID, MessageID(Key, From), which receivers use to drop the
// duplicate. The window is as small as SMTP allows: between the server's 250
// and the caller's commit. Failures before the final dot (a refused
// connection, a 4xx/5xx reply to MAIL, RCPT or DATA, a connection dead
// before MAIL) leave nothing at the server, so retrying them cannot
// duplicate; and once the 250 has been read Send reports success even if the
// connection fails right after (go-mail's RSET) or the context ends.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	netmail "net/mail"
	"strconv"
	"sync"
	"time"

	"github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"
)

// quitTimeout bounds the polite QUIT when an idle connection is retired.
const quitTimeout = time.Second

// smtpSender sends through at most cfg.Connections SMTP connections, reused
// across messages.
//
// One go-mail Client holds the configuration (address, TLS, auth) and dials;
// the pool holds the connections it dials (*smtp.Client), and each send runs
// on one of them with SendWithSMTPClient. go-mail documents that split for
// concurrent use: dialing and sending only read-lock the Client, and each
// connection is used by one goroutine at a time (the one holding its pool
// token). The Client's own single connection (DialWithContext + Send) would
// serialise every send behind one mutex.
type smtpSender struct {
	cfg    Config
	addr   string
	from   *netmail.Address
	client *mail.Client
	log    *slog.Logger

	// tokens holds one token per Send that owns or is getting a connection.
	// A connection goes back to idle before its token is returned, so open
	// connections (owned + idle) never exceed cfg.Connections.
	tokens chan struct{}
	// done is closed by Close: waiting Sends give up, the janitor stops.
	done        chan struct{}
	janitorDone chan struct{}
	// quitting tracks the goroutines that QUIT retired connections.
	quitting  sync.WaitGroup
	closeOnce sync.Once

	mu     sync.Mutex
	idle   []*conn // most recently used last
	closed bool
}

// conn is one pooled SMTP connection.
type conn struct {
	sc       *smtp.Client
	lastUsed time.Time
	// reused is set once the connection has sent: a dead reused connection
	// says nothing about the message, and the message may go on a fresh one.
	reused bool
}

func newSMTPSender(cfg Config, from *netmail.Address, log *slog.Logger) (*smtpSender, error) {
	opts := []mail.Option{
		mail.WithTimeout(cfg.Timeout),
		// No NOOP before each message: a dead pooled connection shows at
		// MAIL FROM, before any of the message is handed over, and the
		// message is then sent on another (see deadBeforeHandover).
		mail.WithoutNoop(),
		mail.WithTLSConfig(&tls.Config{
			ServerName:         cfg.Host,
			MinVersion:         tls.VersionTLS12,
			InsecureSkipVerify: cfg.InsecureSkipVerify, //nolint:gosec // Config says: tests only
		}),
	}
	switch cfg.TLS {
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	case TLSStartTLS:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	case TLSImplicit:
		opts = append(opts, mail.WithSSL(), mail.WithTLSPolicy(mail.NoTLS))
	}
	opts = append(opts, mail.WithPort(cfg.Port))
	if cfg.Username != "" {
		// Auto-discovery picks the strongest mechanism the server offers, but
		// it only considers PLAIN and LOGIN on an encrypted connection; on a
		// plain one (TLS none, the operator's explicit choice) use PLAIN.
		auth := mail.SMTPAuthAutoDiscover
		if cfg.TLS == TLSNone {
			auth = mail.SMTPAuthPlainNoEnc
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(cfg.Username), mail.WithPassword(cfg.Password))
	}
	client, err := mail.NewClient(cfg.Host, opts...)
	if err != nil {
		return nil, fmt.Errorf("email config: SMTP client for %s: %w", cfg.Host, err)
	}
	s := &smtpSender{
		cfg:         cfg,
		addr:        net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		from:        from,
		client:      client,
		log:         log,
		tokens:      make(chan struct{}, cfg.Connections),
		done:        make(chan struct{}),
		janitorDone: make(chan struct{}),
	}
	go s.janitor(max(cfg.IdleTimeout/2, 10*time.Millisecond))
	return s, nil
}

// Send delivers m on a pooled connection. A connection that turns out dead
// before the message was handed over (go-mail's NOOP check, or no reply to
// MAIL FROM) is discarded and the message goes on another or a fresh one.
// Send waits for a free connection as long as ctx allows, and a cancelled
// ctx aborts an exchange in progress by closing its connection.
func (s *smtpSender) Send(ctx context.Context, m Message) (Result, error) {
	msg, id, err := s.compose(m)
	if err != nil {
		return Result{}, fmt.Errorf("send email %q: %w", m.Key, err)
	}
	for attempt := 1; ; attempt++ {
		c, err := s.acquire(ctx)
		if err != nil {
			return Result{}, fmt.Errorf("send email %q: %w", m.Key, err)
		}
		reused := c.reused
		res, keep, err := s.sendOn(ctx, c, msg, id)
		s.release(c, keep)
		if err == nil {
			return res, nil
		}
		if reused && deadBeforeHandover(err) && attempt <= s.cfg.Connections && ctx.Err() == nil {
			s.log.DebugContext(ctx, "smtp connection went stale; sending on another", slog.String("key", m.Key), slog.Any("error", err))
			continue
		}
		return Result{}, fmt.Errorf("send email %q via %s: %w", m.Key, s.addr, classify(err))
	}
}

// compose builds the go-mail message for m and returns it with its Message-ID.
func (s *smtpSender) compose(m Message) (*mail.Msg, string, error) {
	to, err := m.recipient()
	if err != nil {
		return nil, "", &PermanentError{Err: err}
	}
	id := MessageID(m.Key, s.cfg.From)
	msg := mail.NewMsg(mail.WithCharset(mail.CharsetUTF8), mail.WithEncoding(mail.EncodingQP))
	from := *s.from
	msg.FromMailAddress(&from)
	msg.ToMailAddress(to)
	msg.Subject(m.Subject)
	msg.SetDate()
	// Explicit, so a retry carries the same ID (go-mail's default is random).
	msg.SetMessageIDWithValue(id[1 : len(id)-1])
	if m.Locale != "" {
		msg.SetGenHeader(mail.HeaderContentLang, m.Locale)
	}
	// RFC 3834: keeps out-of-office replies from answering notifications.
	msg.SetGenHeader(mail.Header("Auto-Submitted"), "auto-generated")
	msg.SetUserAgent("partnerd")
	msg.SetBodyString(mail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(mail.TypeTextHTML, m.HTML)
	}
	return msg, id, nil
}

// sendOn runs one message's SMTP exchange on c. keep says whether c is fit
// to serve the next message.
func (s *smtpSender) sendOn(ctx context.Context, c *conn, msg *mail.Msg, id string) (res Result, keep bool, err error) {
	if err := ctx.Err(); err != nil {
		return Result{}, true, err
	}
	// go-mail's liveness check (NOOP) runs before it extends the deadline,
	// so an idle connection would fail it on the deadline of its last use.
	if err := c.sc.UpdateDeadline(s.cfg.Timeout); err != nil {
		return Result{}, false, fmt.Errorf("extend SMTP deadline: %w", err)
	}
	// Closing the connection is the only way to interrupt go-mail mid-command
	// (it holds the connection's lock while it waits for a reply).
	stop := context.AfterFunc(ctx, func() { _ = c.sc.Text.Close() })
	err = s.client.SendWithSMTPClient(c.sc, msg)
	aborted := !stop()
	if msg.IsDelivered() {
		// The server took the message; a later failure (the RSET after it,
		// ctx) concerns only the connection.
		return Result{Response: "250 " + msg.ServerResponse() + ", Message-ID " + id}, err == nil && !aborted, nil
	}
	if aborted {
		return Result{}, false, errors.Join(context.Cause(ctx), err)
	}
	if se, ok := errors.AsType[*mail.SendError](err); ok {
		// A 4xx/5xx reply means the connection works (421 means the server
		// is closing it); RSET clears the half-done transaction go-mail
		// leaves after a refused DATA.
		if code := se.ErrorCode(); code >= 400 && code != 421 && se.Reason != mail.ErrSMTPReset {
			return Result{}, c.sc.Reset() == nil, err
		}
	}
	return Result{}, false, err
}

// deadBeforeHandover reports whether err shows a dead connection before any
// of the message reached the server, so sending it on another connection
// cannot duplicate it.
func deadBeforeHandover(err error) bool {
	se, ok := errors.AsType[*mail.SendError](err)
	if !ok {
		return false
	}
	return se.Reason == mail.ErrConnCheck || (se.Reason == mail.ErrSMTPMailFrom && se.ErrorCode() == 0)
}

// acquire returns a connection for one message: the most recently used idle
// one that has not idled past IdleTimeout, else a new one when under the
// cap, else it waits for one to come back (or for ctx, or Close).
func (s *smtpSender) acquire(ctx context.Context) (*conn, error) {
	select {
	case s.tokens <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for an SMTP connection: %w", context.Cause(ctx))
	case <-s.done:
		return nil, ErrClosed
	}
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			<-s.tokens
			return nil, ErrClosed
		}
		n := len(s.idle)
		if n == 0 {
			s.mu.Unlock()
			break
		}
		c := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		if time.Since(c.lastUsed) < s.cfg.IdleTimeout {
			return c, nil
		}
		s.retire(c)
	}
	sc, err := s.client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		<-s.tokens
		return nil, fmt.Errorf("connect to SMTP server %s: %w", s.addr, err)
	}
	s.log.DebugContext(ctx, "smtp connection opened", slog.String("addr", s.addr))
	return &conn{sc: sc}, nil
}

// release returns c to the pool when keep, else closes it, and frees the
// sender's token.
func (s *smtpSender) release(c *conn, keep bool) {
	s.mu.Lock()
	if keep && !s.closed {
		c.lastUsed = time.Now()
		c.reused = true
		s.idle = append(s.idle, c)
		s.mu.Unlock()
		<-s.tokens
		return
	}
	closed := s.closed
	s.mu.Unlock()
	if keep && closed {
		s.retire(c)
	} else {
		_ = c.sc.Close()
	}
	<-s.tokens
}

// retire says QUIT on a healthy connection and closes it, in the background
// so no Send waits for it.
func (s *smtpSender) retire(c *conn) {
	s.quitting.Go(func() {
		_ = c.sc.UpdateDeadline(min(quitTimeout, s.cfg.Timeout))
		if err := c.sc.Quit(); err != nil {
			s.log.Debug("smtp QUIT failed", slog.String("addr", s.addr), slog.Any("error", err))
		}
		_ = c.sc.Close()
	})
}

// janitor closes connections idle past IdleTimeout, so an idle worker holds
// none open, until Close.
func (s *smtpSender) janitor(every time.Duration) {
	defer close(s.janitorDone)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-tick.C:
			for _, c := range s.takeIdle(func(c *conn) bool { return now.Sub(c.lastUsed) >= s.cfg.IdleTimeout }) {
				s.retire(c)
			}
		}
	}
}

// takeIdle removes and returns the idle connections that match.
func (s *smtpSender) takeIdle(match func(*conn) bool) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	var taken []*conn
	kept := s.idle[:0]
	for _, c := range s.idle {
		if match(c) {
			taken = append(taken, c)
		} else {
			kept = append(kept, c)
		}
	}
	clear(s.idle[len(kept):])
	s.idle = kept
	return taken
}

// Close makes Send fail with ErrClosed, waits for the sends in flight (each
// bounded by Timeout), and closes every connection. A second Close does
// nothing.
func (s *smtpSender) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		close(s.done)
		<-s.janitorDone
		// Holding every token means no send is in flight and none will start.
		for range cap(s.tokens) {
			s.tokens <- struct{}{}
		}
		for _, c := range s.takeIdle(func(*conn) bool { return true }) {
			s.retire(c)
		}
		s.quitting.Wait()
	})
	return nil
}
