package sms

import (
	"context"
	"log/slog"
)

// logProvider is the development and default provider: it records that a
// message would have been sent and sends nothing.
type logProvider struct {
	log *slog.Logger
}

// Name is "log".
func (p *logProvider) Name() string { return "log" }

// Send logs the message at info level (its ID, the number masked and the
// segment count, never the text) and succeeds. A message no provider could
// send (no ID, a number that is not E.164, no text) fails permanently, as it
// would in production.
func (p *logProvider) Send(ctx context.Context, m Message) (Result, error) {
	if err := checkMessage(m); err != nil {
		return Result{}, err
	}
	p.log.InfoContext(ctx, "sms not sent (log provider)",
		slog.String("sms_id", m.ID),
		slog.String("to", maskPhone(m.To)),
		slog.Int("segments", Segments(m.Text)))
	return Result{Response: "logged, not sent"}, nil
}

// Deduplicates is true: the log provider reaches no phone, so a resend after
// an unknown outcome only logs the message twice.
func (p *logProvider) Deduplicates() bool { return true }
