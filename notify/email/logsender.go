package email

import (
	"context"
	"fmt"
	"log/slog"
)

// logSender stands in for SMTP when no host is configured: it logs that a
// message would have been sent and succeeds. It logs the key, the masked
// recipient, the subject and the Message-ID, never the bodies (they carry
// links with tokens and personal details).
type logSender struct {
	from string
	log  *slog.Logger
}

// Send validates m like the SMTP sender does, logs it and succeeds.
func (s *logSender) Send(ctx context.Context, m Message) (Result, error) {
	to, err := m.recipient()
	if err != nil {
		return Result{}, fmt.Errorf("log email %q: %w", m.Key, &PermanentError{Err: err})
	}
	id := MessageID(m.Key, s.from)
	s.log.InfoContext(ctx, "email not sent: no SMTP_HOST configured",
		slog.String("key", m.Key),
		slog.String("to", maskAddress(to.Address)),
		slog.String("subject", m.Subject),
		slog.String("message_id", id),
		slog.String("locale", m.Locale),
		slog.Bool("html", m.HTML != ""))
	return Result{Response: "logged, Message-ID " + id}, nil
}

// Close does nothing: the log sender holds no resources.
func (s *logSender) Close() error { return nil }
