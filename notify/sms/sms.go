// Package sms delivers partnerd's notifications as text messages. The
// notification engine calls a Provider once per delivery attempt; the
// delivery's unique key travels as Message.ID so that a provider able to
// de-duplicate drops a resend, and receipts can be matched to the delivery.
//
// A provider reports an attempt in one of three ways: success (with a
// Result for the attempt log), a *PermanentError (retrying cannot help), or
// any other error (retry later). ResponseOf extracts the provider's answer
// from either kind of error for the attempt log.
//
// Providers never log the message text or credentials, and log phone
// numbers only masked.
package sms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Message is one SMS to send.
type Message struct {
	ID   string // the delivery key, unique per (event, recipient, channel); providers pass it on for de-duplication / receipts
	To   string // E.164 phone number, e.g. "+8613800138000"
	Text string // the rendered text
}

// Result is what the provider answered on success.
type Result struct {
	ProviderID string // the provider's message/request id, if any
	Response   string // a short summary of the provider's answer for the attempt log (status code and body, truncated to ~500 bytes)
}

// Provider sends SMS.
type Provider interface {
	// Name is the provider's configuration name ("log", "webhook", "aliyun").
	Name() string
	// Send sends one message. A *PermanentError (see IsPermanent) means
	// retrying cannot help (4xx, invalid number, bad signature...); any other
	// error is retryable (timeouts, 5xx, throttling).
	Send(ctx context.Context, m Message) (Result, error)
	// Deduplicates reports whether the provider drops a second message with
	// the same Message.ID, so that resending after an unknown outcome (a
	// worker died during the call) cannot reach the phone twice.
	Deduplicates() bool
}

// PermanentError is a failure that retrying the same message cannot fix: the
// provider refused it (HTTP 4xx, an invalid number, a bad signature, an
// exhausted balance...) or the message itself is malformed. Response is the
// summary of the provider's answer, empty when the message was refused
// before any request was made.
type PermanentError struct {
	Err      error
	Response string
}

// Error returns the cause's message.
func (e *PermanentError) Error() string {
	if e.Err == nil {
		return "sms: permanent failure"
	}
	return e.Err.Error()
}

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// IsPermanent reports whether err (or anything it wraps) is a
// *PermanentError, i.e. whether the delivery must be given up rather than
// retried. A nil error is not permanent.
func IsPermanent(err error) bool {
	var pe *PermanentError
	return errors.As(err, &pe)
}

// ResponseOf returns the summary of the provider's answer carried by an error
// from Send, permanent or retryable ("HTTP 503: ..."), or "" when no answer
// was received (a timeout, a refused connection, a message refused locally).
func ResponseOf(err error) string {
	var pe *PermanentError
	if errors.As(err, &pe) {
		return pe.Response
	}
	var re *retryableError
	if errors.As(err, &re) {
		return re.response
	}
	return ""
}

// retryableError is a failure the provider answered and that may succeed
// later (5xx, throttling); it carries the answer for ResponseOf.
type retryableError struct {
	err      error
	response string
}

func (e *retryableError) Error() string { return e.err.Error() }
func (e *retryableError) Unwrap() error { return e.err }

// maxResponse bounds the body part of a response summary.
const maxResponse = 500

// summarize renders an HTTP answer for the attempt log: "HTTP 200: <body>",
// the body trimmed and cut to maxResponse bytes on a character boundary.
func summarize(status int, body []byte) string {
	s := strings.TrimSpace(string(body))
	if len(s) > maxResponse {
		cut := maxResponse
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	if s == "" {
		return fmt.Sprintf("HTTP %d", status)
	}
	return fmt.Sprintf("HTTP %d: %s", status, s)
}

// checkMessage refuses, as permanent, a message no provider could deliver:
// retrying it unchanged cannot help.
func checkMessage(m Message) error {
	switch {
	case m.ID == "":
		return &PermanentError{Err: errors.New("sms: message has no ID (the delivery key)")}
	case !ValidPhone(m.To):
		return &PermanentError{Err: fmt.Errorf("sms: message %s: recipient %s is not an E.164 number", m.ID, maskPhone(m.To))}
	case strings.TrimSpace(m.Text) == "":
		return &PermanentError{Err: fmt.Errorf("sms: message %s has no text", m.ID)}
	}
	return nil
}
