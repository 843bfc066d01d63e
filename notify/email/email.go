// Package email sends partnerd's notification emails. With an SMTP host
// configured it sends through a small pool of reused SMTP connections
// (go-mail); without one it writes a line per message to the log instead, so
// a development machine needs no mail server. It is safe for many goroutines
// (asynq handlers) at once.
package email

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// The values of Config.TLS (RUNNING.md: SMTP_TLS).
const (
	// TLSNone speaks plain SMTP: no encryption, and SMTP AUTH credentials
	// travel in clear. Only for a relay on a trusted network or a test server.
	TLSNone = "none"
	// TLSStartTLS upgrades the connection with STARTTLS and refuses a server
	// that does not offer it: the default, never a silent downgrade.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (SMTPS, RFC 8314).
	TLSImplicit = "tls"
)

// Defaults for the zero values of Config.
const (
	// DefaultConnections is how many SMTP connections a sender keeps at most.
	DefaultConnections = 4
	// DefaultIdleTimeout is how long an unused connection stays open.
	DefaultIdleTimeout = 30 * time.Second
	// DefaultTimeout bounds a dial and each message's SMTP exchange.
	DefaultTimeout = 15 * time.Second
)

// Config is the SMTP configuration (RUNNING.md: SMTP_HOST, SMTP_PORT,
// SMTP_USERNAME, SMTP_PASSWORD, SMTP_FROM, SMTP_TLS none|starttls|tls).
// No Host means email is logged, not sent.
type Config struct {
	// Host is the SMTP server; empty means email is logged, not sent.
	Host string
	// Username and Password enable SMTP AUTH when Username is set.
	Username, Password string
	// From is the sender, "noreply@example.com" or "Name <noreply@example.com>";
	// required with a Host. Its domain is the Message-ID's.
	From string
	// Port defaults to 587 for starttls, 465 for tls and 25 for none.
	Port int
	// TLS is "none", "starttls" (default) or "tls".
	TLS string
	// Connections is the most SMTP connections kept open at once (default 4).
	Connections int
	// IdleTimeout closes a connection unused this long (default 30s).
	IdleTimeout time.Duration
	// Timeout bounds a dial and each message's SMTP exchange (default 15s).
	Timeout time.Duration
	// InsecureSkipVerify accepts any server certificate: for tests only.
	InsecureSkipVerify bool
}

// Message is one email to send.
type Message struct {
	// Key is the delivery key, unique per (event, recipient, channel). It is
	// required: the Message-ID is derived from it, so a retry of the same
	// delivery carries the same Message-ID.
	Key string
	// To is the recipient's address (required).
	To string
	// ToName is the recipient's display name (optional; overrides a name in To).
	ToName string
	// Subject may be any UTF-8 text; it is RFC 2047 encoded as needed.
	Subject string
	// Text is the plain-text body (required).
	Text string
	// HTML is the HTML body (optional); when set the message is
	// multipart/alternative with Text first.
	HTML string
	// Locale is the language of the bodies, e.g. "en-US" or "zh-CN"; it
	// becomes the Content-Language header (omitted when empty).
	Locale string
}

// Result summarises the server's answer for the attempt log, e.g.
// "250 2.0.0 OK: queued, Message-ID <...>".
type Result struct {
	Response string
}

// Sender delivers messages. Send is safe for concurrent use. An error from
// Send is permanent (IsPermanent: retrying the same message cannot succeed)
// or retryable; a nil error means the server accepted the message (250 after
// DATA), or, for the log sender, that it was logged.
type Sender interface {
	Send(ctx context.Context, m Message) (Result, error)
	// Close releases the sender's connections; Send fails afterwards.
	Close() error
}

// ErrClosed is returned by Send after Close.
var ErrClosed = errors.New("email sender closed")

// New returns the sender cfg describes. Without cfg.Host it returns a sender
// that logs each message (key, masked recipient, subject; never the bodies)
// and succeeds; otherwise an SMTP sender. It refuses a configuration that
// could never send: From missing or not an address when Host is set, an
// unknown TLS mode, a port outside 1-65535, negative limits. log may be nil.
func New(cfg Config, log *slog.Logger) (Sender, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, from, err := cfg.normalize()
	if err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		return &logSender{from: cfg.From, log: log}, nil
	}
	return newSMTPSender(cfg, from, log)
}

// normalize validates cfg and fills in the defaults. from is the parsed
// From address (nil without a host).
func (cfg Config) normalize() (Config, *mail.Address, error) {
	cfg.Host = strings.TrimSpace(cfg.Host)
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	switch cfg.TLS {
	case "":
		cfg.TLS = TLSStartTLS
	case TLSNone, TLSStartTLS, TLSImplicit:
	default:
		return cfg, nil, fmt.Errorf("email config: SMTP_TLS %q: want none, starttls or tls", cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = map[string]int{TLSNone: 25, TLSStartTLS: 587, TLSImplicit: 465}[cfg.TLS]
	}
	if cfg.Port < 1 || cfg.Port > 65535 {
		return cfg, nil, fmt.Errorf("email config: SMTP_PORT %d: want 1-65535", cfg.Port)
	}
	if cfg.Connections == 0 {
		cfg.Connections = DefaultConnections
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Connections < 0 || cfg.IdleTimeout < 0 || cfg.Timeout < 0 {
		return cfg, nil, fmt.Errorf("email config: connections %d, idle timeout %s, timeout %s: none may be negative",
			cfg.Connections, cfg.IdleTimeout, cfg.Timeout)
	}
	if cfg.Host == "" {
		return cfg, nil, nil
	}
	if strings.TrimSpace(cfg.From) == "" {
		return cfg, nil, errors.New("email config: SMTP_FROM is required when SMTP_HOST is set")
	}
	from, err := mail.ParseAddress(cfg.From)
	if err != nil {
		return cfg, nil, fmt.Errorf("email config: SMTP_FROM %q is not an address: %w", cfg.From, err)
	}
	return cfg, from, nil
}

// localeRE is a BCP 47 language tag in its common shape ("en-US", "zh-CN").
var localeRE = regexp.MustCompile(`^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$`)

// recipient validates m and returns its recipient. A message that fails
// here can never be sent, so callers report it as permanent.
func (m Message) recipient() (*mail.Address, error) {
	if m.Key == "" {
		return nil, errors.New("invalid email: no delivery key")
	}
	if m.Text == "" {
		return nil, errors.New("invalid email: no text body")
	}
	if m.Locale != "" && !localeRE.MatchString(m.Locale) {
		return nil, fmt.Errorf("invalid email: locale %q", m.Locale)
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return nil, fmt.Errorf("invalid email: recipient %q: %w", maskAddress(m.To), err)
	}
	if m.ToName != "" {
		to.Name = m.ToName
	}
	return to, nil
}

// maskAddress hides most of the local part of an address for the log:
// "alice@example.com" becomes "a***@example.com".
func maskAddress(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 {
		return "***"
	}
	first := []rune(addr[:at])[0]
	return string(first) + "***" + addr[at:]
}
