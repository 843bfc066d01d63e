package sms

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"
)

// webhookProvider hands each SMS to an HTTP receiver of the operator's
// (RUNNING.md, SMS_WEBHOOK_URL), which de-duplicates by the id.
type webhookProvider struct {
	url     string
	client  *http.Client
	timeout time.Duration
	log     *slog.Logger
}

// webhookBody is the receiver's contract: exactly these three fields.
type webhookBody struct {
	ID   string `json:"id"`
	To   string `json:"to"`
	Text string `json:"text"`
}

// Name is "webhook".
func (p *webhookProvider) Name() string { return "webhook" }

// Send POSTs {"id","to","text"} as application/json. Any 2xx is success;
// 4xx is permanent, except 408 and 429 (the receiver timed out or asks us
// to slow down), which are retried like 5xx, timeouts and connection
// errors. Another status (an unfollowed redirect) is a configuration
// mistake that retrying cannot fix: permanent.
func (p *webhookProvider) Send(ctx context.Context, m Message) (Result, error) {
	if err := checkMessage(m); err != nil {
		return Result{}, err
	}
	body, err := encodeJSON(webhookBody{ID: m.ID, To: m.To, Text: m.Text})
	if err != nil {
		return Result{}, &PermanentError{Err: fmt.Errorf("sms webhook: encode message %s: %w", m.ID, err)}
	}
	status, answer, err := post(ctx, p.client, p.timeout, p.url, "application/json", body)
	if err != nil {
		return Result{}, fmt.Errorf("sms webhook: message %s: %w", m.ID, err)
	}
	summary := summarize(status, answer)
	switch {
	case status >= 200 && status < 300:
		p.log.DebugContext(ctx, "sms sent", slog.String("provider", "webhook"),
			slog.String("sms_id", m.ID), slog.String("to", maskPhone(m.To)), slog.Int("status", status))
		return Result{Response: summary}, nil
	case status >= 500 || status == http.StatusRequestTimeout || status == http.StatusTooManyRequests:
		return Result{}, &retryableError{err: fmt.Errorf("sms webhook: message %s: HTTP %d", m.ID, status), response: summary}
	default:
		return Result{}, &PermanentError{Err: fmt.Errorf("sms webhook: message %s refused: HTTP %d", m.ID, status), Response: summary}
	}
}

// Deduplicates is true: the contract makes the id the receiver's dedupe key.
func (p *webhookProvider) Deduplicates() bool { return true }

// encodeJSON encodes v without HTML escaping, so that the text a receiver
// or Aliyun sees is the text as written ("&", "<" stay readable).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}
