// Package emailtest runs a real SMTP server (emersion/go-smtp) on 127.0.0.1
// that records what it accepts, for the tests and benchmarks of code that
// sends email: it can be stopped and started on the same port, refuse the
// next messages with a chosen reply, and count connections.
package emailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log"
	"maps"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Received is one message the Sink accepted: the envelope, the raw data and
// the parts tests check, decoded (RFC 2047 subject, quoted-printable or
// base64 bodies).
type Received struct {
	// From and To are the envelope (MAIL FROM, RCPT TO).
	From string
	To   []string
	// Username is who the client authenticated as, "" without SMTP AUTH.
	Username string
	Data     []byte
	// MessageID is the Message-ID header as sent, with its angle brackets.
	MessageID string
	Subject   string
	Header    mail.Header
	// TextBody and HTMLBody are the decoded text/plain and text/html parts
	// (line breaks as sent, CRLF).
	TextBody string
	HTMLBody string
	// ParseErr is why Data could not be parsed, if it could not.
	ParseErr error
}

// Sink is an SMTP server on 127.0.0.1 that records every message it
// accepts. It offers no TLS and accepts any AUTH PLAIN or LOGIN credentials,
// or none. Its methods are safe for concurrent use.
type Sink struct {
	tb   testing.TB // nil outside tests
	addr string     // host:port, fixed by the first listen

	mu       sync.Mutex
	server   *smtp.Server // nil while stopped
	listener net.Listener
	served   chan struct{}
	closed   bool
	msgs     []Received
	arrived  chan struct{} // closed and replaced when a message arrives
	accepted int
	open     map[*trackedConn]struct{}
	reject   *smtp.SMTPError
	rejectN  int
	release  chan struct{} // non-nil while holding replies
	held     int
}

// NewSink starts a Sink on a free port of 127.0.0.1; the test's cleanup
// closes it.
func NewSink(t testing.TB) *Sink {
	t.Helper()
	s, err := NewSinkOn("127.0.0.1:0")
	if err != nil {
		t.Fatalf("start SMTP sink: %v", err)
	}
	s.tb = t
	t.Cleanup(s.Close)
	return s
}

// NewSinkOn starts a Sink listening on addr ("127.0.0.1:0" for a free port),
// for use outside tests (e.g. cmd/partnerbench); the caller must Close it.
func NewSinkOn(addr string) (*Sink, error) {
	s := &Sink{
		addr:    addr,
		arrived: make(chan struct{}),
		open:    make(map[*trackedConn]struct{}),
	}
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// Host is the address the sink listens on, "127.0.0.1".
func (s *Sink) Host() string {
	host, _, _ := net.SplitHostPort(s.Addr())
	return host
}

// Port is the sink's TCP port; it stays the same across Stop and Start.
func (s *Sink) Port() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, port, _ := net.SplitHostPort(s.addr)
	var n int
	_, _ = fmt.Sscan(port, &n)
	return n
}

// Addr is host:port.
func (s *Sink) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addr
}

// Messages returns copies of the accepted messages, in arrival order.
func (s *Sink) Messages() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.msgs))
	for i, r := range s.msgs {
		r.To = slices.Clone(r.To)
		r.Data = slices.Clone(r.Data)
		r.Header = maps.Clone(r.Header)
		out[i] = r
	}
	return out
}

// Count is how many messages the sink has accepted.
func (s *Sink) Count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

// WaitFor waits until the sink has accepted at least n messages and returns
// them; it fails the test when timeout passes first.
func (s *Sink) WaitFor(t testing.TB, n int, timeout time.Duration) []Received {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		got, arrived := len(s.msgs), s.arrived
		s.mu.Unlock()
		if got >= n {
			return s.Messages()
		}
		select {
		case <-arrived:
		case <-deadline.C:
			t.Fatalf("SMTP sink: %d messages after %s, want %d", got, timeout, n)
			return nil
		}
	}
}

// RejectNext makes the sink answer the next n messages, at the end of DATA,
// with code and msg (e.g. 451 for a retryable, 550 for a permanent refusal)
// instead of accepting them.
func (s *Sink) RejectNext(code int, msg string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reject = &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCodeNotSet, Message: msg}
	s.rejectN = n
}

// Hold makes the sink keep its reply to the end of every DATA until
// Release: the client's exchange stays in flight (to test waiting for a
// connection, or cancelling mid-exchange). A held message is recorded when
// released, as a server that got it would.
func (s *Sink) Hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release == nil {
		s.release = make(chan struct{})
	}
}

// Release answers the held DATA commands and stops holding.
func (s *Sink) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.release != nil {
		close(s.release)
		s.release = nil
	}
}

// Holding is how many DATA replies are held now.
func (s *Sink) Holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held
}

// Connections is how many TCP connections the sink has accepted since it
// was created, across Stop and Start.
func (s *Sink) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Active is how many client connections are open now.
func (s *Sink) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.open)
}

// Stop closes the listener and every connection: clients see the server
// down (refused connections, dropped sessions) until Start.
func (s *Sink) Stop() {
	s.mu.Lock()
	server, listener, served := s.server, s.listener, s.served
	s.server, s.listener = nil, nil
	s.mu.Unlock()
	if server == nil {
		return
	}
	_ = server.Close()
	// go-smtp registers the listener only once Serve runs, so a Close right
	// after start would miss it and Serve would accept forever.
	_ = listener.Close()
	<-served // no connection is accepted after this
	s.mu.Lock()
	conns := slices.Collect(maps.Keys(s.open))
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// Start listens again on the same port after Stop; it does nothing while
// running. It fails the test (outside a test: panics) when the port cannot
// be had.
func (s *Sink) Start() {
	if err := s.start(); err != nil {
		if s.tb != nil {
			s.tb.Fatalf("restart SMTP sink: %v", err)
		}
		panic(fmt.Sprintf("restart SMTP sink: %v", err))
	}
}

// Close stops the sink for good.
func (s *Sink) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.Release()
	s.Stop()
}

func (s *Sink) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("SMTP sink closed")
	}
	if s.server != nil {
		return nil
	}
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.addr, err)
	}
	s.addr = ln.Addr().String()
	server := smtp.NewServer(backend{s})
	server.Domain = "localhost"
	server.AllowInsecureAuth = true
	server.MaxMessageBytes = 10 << 20
	server.ErrorLog = log.New(io.Discard, "", 0)
	served := make(chan struct{})
	s.server, s.listener, s.served = server, ln, served
	go func() {
		defer close(served)
		_ = server.Serve(&trackingListener{Listener: ln, sink: s})
	}()
	return nil
}

// record stores an accepted message and wakes WaitFor.
func (s *Sink) record(r Received) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, r)
	close(s.arrived)
	s.arrived = make(chan struct{})
}

// wait blocks while the sink holds replies.
func (s *Sink) wait() {
	s.mu.Lock()
	release := s.release
	if release == nil {
		s.mu.Unlock()
		return
	}
	s.held++
	s.mu.Unlock()
	<-release
	s.mu.Lock()
	s.held--
	s.mu.Unlock()
}

// takeReject returns the refusal for this message, if one is pending.
func (s *Sink) takeReject() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejectN <= 0 {
		return nil
	}
	s.rejectN--
	return s.reject
}

// trackingListener counts accepted connections and tracks the open ones, so
// Stop can drop them all.
type trackingListener struct {
	net.Listener
	sink *Sink
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, sink: l.sink}
	l.sink.mu.Lock()
	l.sink.accepted++
	l.sink.open[tc] = struct{}{}
	l.sink.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	sink *Sink
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.sink.mu.Lock()
		delete(c.sink.open, c)
		c.sink.mu.Unlock()
	})
	return c.Conn.Close()
}

type backend struct{ sink *Sink }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) {
	return &session{sink: b.sink}, nil
}

// session is one SMTP connection's state; go-smtp calls it from that
// connection's goroutine only.
type session struct {
	sink *Sink
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain, sasl.Login} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	accept := func(username, _ string) error {
		s.user = username
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, username, password string) error { return accept(username, password) }), nil
	case sasl.Login:
		return &loginServer{accept: accept}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.sink.wait()
	if err := s.sink.takeReject(); err != nil {
		return err
	}
	rec := Received{From: s.from, To: slices.Clone(s.to), Username: s.user, Data: data}
	rec.ParseErr = parse(&rec)
	s.sink.record(rec)
	return nil
}

func (s *session) Reset() {
	s.from, s.to = "", nil
}

func (s *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	accept   func(username, password string) error
	step     int
	username string
}

func (a *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch a.step {
	case 0:
		a.step = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		a.username = string(response)
		a.step = 2
		return []byte("Password:"), false, nil
	case 2:
		a.step = 3
		return nil, true, a.accept(a.username, string(response))
	}
	return nil, false, errors.New("unexpected AUTH LOGIN response")
}

// parse fills r's header, Message-ID, subject and bodies from r.Data.
func parse(r *Received) error {
	msg, err := mail.ReadMessage(bytes.NewReader(r.Data))
	if err != nil {
		return fmt.Errorf("read message: %w", err)
	}
	r.Header = msg.Header
	r.MessageID = msg.Header.Get("Message-ID")
	var dec mime.WordDecoder
	if r.Subject, err = dec.DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return fmt.Errorf("decode subject: %w", err)
	}
	return r.walk(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, true)
}

// walk decodes one MIME entity into r's bodies, descending into multiparts.
// top is the message itself: a single-part message's body loses the one
// line break that SMTP requires at the end of the data (in a multipart, the
// boundary owns it).
func (r *Received) walk(contentType, encoding string, body io.Reader, top bool) error {
	if contentType == "" {
		contentType = "text/plain"
	}
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return fmt.Errorf("content type %q: %w", contentType, err)
	}
	if strings.HasPrefix(mediaType, "multipart/") {
		parts := multipart.NewReader(body, params["boundary"])
		for {
			// NextPart decodes quoted-printable itself and hides the header.
			p, err := parts.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("multipart: %w", err)
			}
			if err := r.walk(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p, false); err != nil {
				return err
			}
		}
	}
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		body = quotedprintable.NewReader(body)
	case "base64":
		body = base64.NewDecoder(base64.StdEncoding, body)
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		return fmt.Errorf("%s body: %w", mediaType, err)
	}
	text := string(raw)
	if top {
		text = strings.TrimSuffix(text, "\r\n")
	}
	switch {
	case mediaType == "text/plain" && r.TextBody == "":
		r.TextBody = text
	case mediaType == "text/html" && r.HTMLBody == "":
		r.HTMLBody = text
	}
	return nil
}
