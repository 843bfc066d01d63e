package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	// defaultTimeout bounds an attempt when NewSender is given none.
	defaultTimeout = 10 * time.Second
	// maxBody bounds how much of a response is read.
	maxBody = 4 << 10
	// maxResponse bounds the body part of Result.Response, in bytes.
	maxResponse = 512
	// userAgent identifies partnerd's deliveries.
	userAgent = "partnerd-webhooks/1"
)

// Request is one delivery attempt.
type Request struct {
	URL         string    // the endpoint, as accepted by Guard.CheckURL
	EventID     string    // sent as EventIDHeader
	EventType   string    // sent as EventTypeHeader
	DeliveryKey string    // sent as DeliveryHeader; receivers de-duplicate by it
	Body        []byte    // the JSON payload, sent and signed as is
	Secrets     []string  // the endpoint's signing secrets, current first; at least one
	At          time.Time // the signing time, the t of the signature; zero means now
}

// Result is what the receiver answered, for the attempt log.
type Result struct {
	StatusCode int    // the HTTP status, 0 when no answer was received
	Response   string // "HTTP <code>: <start of the body>", or the error for a transport failure
}

// StatusError is a delivery the receiver answered with a status other than
// 2xx (redirects are not followed, so a 3xx is one too). Like every failure
// of Send, it is worth retrying.
type StatusError struct {
	Code     int    // the HTTP status
	Response string // as in Result.Response
}

// Error names the status and the start of the answer.
func (e *StatusError) Error() string {
	s := "webhook: receiver answered " + e.Response
	if e.Code >= 300 && e.Code < 400 {
		s += " (redirects are not followed)"
	}
	return s
}

// Sender POSTs signed deliveries through a Guard. It is safe for
// concurrent use and keeps connections alive between deliveries.
type Sender struct {
	client *http.Client
}

// NewSender returns a Sender that connects only where g allows (nil means
// NewGuard(nil): public addresses only) and bounds each attempt, answer
// included, by timeout (10 s when timeout <= 0). It never uses the
// environment's proxy and never follows redirects.
func NewSender(g *Guard, timeout time.Duration) *Sender {
	if g == nil {
		g = NewGuard(nil)
	}
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	transport := &http.Transport{
		Proxy:                 nil, // a proxy would connect on our behalf, past the guard
		DialContext:           g.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
	}
	return &Sender{client: &http.Client{
		Transport: transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Timeout: timeout,
	}}
}

// Close closes the Sender's idle connections.
func (s *Sender) Close() { s.client.CloseIdleConnections() }

// Send makes one delivery attempt: it POSTs r.Body as application/json,
// signed with r.Secrets at r.At (SignatureHeader) and labelled with the
// event and delivery headers, and reads at most 4 KiB of the answer. A 2xx
// is success. Any other status is a *StatusError; a transport failure
// (refused address, timeout, connection error) is an error naming the host.
// Every failure is worth retrying; the Result describes the attempt in
// either case. Errors never contain the secrets, the body or the URL's
// path and query.
func (s *Sender) Send(ctx context.Context, r Request) (Result, error) {
	if err := checkRequest(r); err != nil {
		return Result{Response: err.Error()}, err
	}
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" {
		// url.Parse's error quotes the URL, which may hold a token.
		err = errors.New("webhook: invalid endpoint URL")
		return Result{Response: err.Error()}, err
	}
	at := r.At
	if at.IsZero() {
		at = time.Now()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		err = fmt.Errorf("webhook: build request to %s: %w", u.Host, err)
		return Result{Response: err.Error()}, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(SignatureHeader, Signature(at, r.Body, r.Secrets...))
	req.Header.Set(EventIDHeader, r.EventID)
	req.Header.Set(EventTypeHeader, r.EventType)
	req.Header.Set(DeliveryHeader, r.DeliveryKey)

	resp, err := s.client.Do(req)
	if err != nil {
		// *url.Error quotes the whole URL; keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		err = fmt.Errorf("post webhook to %s: %w", u.Host, err)
		return Result{Response: err.Error()}, err
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()

	res := Result{StatusCode: resp.StatusCode, Response: summarize(resp.StatusCode, data)}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return res, fmt.Errorf("post webhook to %s: %w", u.Host, &StatusError{Code: res.StatusCode, Response: res.Response})
	}
	return res, nil
}

// checkRequest refuses a request that cannot make a verifiable delivery.
func checkRequest(r Request) error {
	switch {
	case r.URL == "":
		return errors.New("webhook: request has no URL")
	case len(r.Secrets) == 0:
		return errors.New("webhook: request has no signing secret")
	}
	for _, s := range r.Secrets {
		if s == "" {
			return errors.New("webhook: request has an empty signing secret")
		}
	}
	return nil
}

// summarize renders an answer for the attempt log: "HTTP <code>: <body>",
// the body cut to maxResponse bytes (not inside a character), made valid
// UTF-8 and trimmed; just "HTTP <code>" when the body is empty.
func summarize(status int, body []byte) string {
	if len(body) > maxResponse {
		// body[cut] is the first byte left out: while it continues a
		// character, back off to that character's start (at most
		// utf8.UTFMax-1 bytes, whatever the body holds).
		cut := maxResponse
		for cut > maxResponse-utf8.UTFMax && !utf8.RuneStart(body[cut]) {
			cut--
		}
		body = body[:cut]
	}
	s := strings.TrimSpace(strings.ToValidUTF8(string(body), "\uFFFD"))
	if s == "" {
		return fmt.Sprintf("HTTP %d", status)
	}
	return fmt.Sprintf("HTTP %d: %s", status, s)
}
