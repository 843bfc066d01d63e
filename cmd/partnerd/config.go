package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
	"github.com/jackc/pgx/v5"

	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/notify/sms"
	"partnerd/notify/webhook"
	"partnerd/partitions"
	"partnerd/server"
	"partnerd/workers"
)

// config is the environment of RUNNING.md, parsed and checked once at start.
type config struct {
	DatabaseURL string
	// DatabaseListenURL is where the outbox relay LISTENs
	// (DATABASE_LISTEN_URL; empty: DatabaseURL).
	DatabaseListenURL string
	RedisURL          string
	// Redis is REDIS_URL parsed: one server or a cluster; QueueRedis is the
	// same for asynq.
	Redis      redisConfig
	QueueRedis asynq.RedisConnOpt
	HTTPAddr   string
	// ProbeAddr is where a worker or scheduler serves /healthz, /readyz and
	// /metrics (PROBE_ADDR; empty: nowhere). The API serves them on HTTPAddr.
	ProbeAddr     string
	PublicURL     string
	SMTPHost      string
	SMTPPort      int
	SMTPUsername  string
	SMTPPassword  string
	SMTPFrom      string
	SMTPTLS       string
	SMSProvider   string
	SMSWebhookURL string
	SMSAliyun     sms.AliyunConfig
	// WebhookAllowed are the private networks webhook endpoints may be in
	// (WEBHOOK_ALLOWED_NETWORKS); WebhookTimeout bounds one delivery.
	WebhookAllowed  []netip.Prefix
	WebhookTimeout  time.Duration
	BillingTimezone *time.Location
	FreezeRetention time.Duration
	MigrationTTL    time.Duration
	// BillSchedule is when partner bills are generated and issued
	// (BILL_RUN_DAY, BILL_RUN_HOUR, BILL_ISSUE_DAY; Beijing time).
	BillSchedule    billing.Schedule
	LogLevel        slog.Level
	LogFormat       string
	Playground      bool
	ShutdownTimeout time.Duration
	// ShutdownDrain is how long an api process keeps serving, with /readyz
	// red, after SIGTERM and before it closes its listener
	// (SHUTDOWN_DRAIN).
	ShutdownDrain     time.Duration
	WorkerConcurrency int
	DBMaxConns        int
	MaxDepth          int
	MaxComplexity     int
	// MaxFields, MaxAliases, MaxDirectives and MaxListItems bound an
	// operation (GRAPHQL_MAX_FIELDS, _ALIASES, _DIRECTIVES, _LIST_ITEMS).
	MaxFields, MaxAliases, MaxDirectives, MaxListItems int
	// RateLimit bounds each caller's requests per second (RATE_LIMIT_PER_SECOND,
	// 0 = off; RATE_LIMIT_BURST).
	RateLimit server.RateLimit
	// CORSOrigins may call the API from browser pages (CORS_ALLOWED_ORIGINS).
	CORSOrigins []string
	MaxTokens   int
	MaxBody     int64
	MaxUpload   int64
	LivePrefix  string
	// Timeouts bounds every wait on a dependency (DB_STATEMENT_TIMEOUT,
	// DB_CONNECT_TIMEOUT, REDIS_TIMEOUT, SMTP_TIMEOUT, SMS_TIMEOUT,
	// REQUEST_TIMEOUT).
	Timeouts timeouts
	// Reconcile tunes the sweeps that re-enqueue what Redis lost
	// (RECONCILE_AFTER, RECONCILE_EVERY).
	Reconcile workers.Reconcile
	// Partitions tunes the monthly partitions (PARTITIONS_AHEAD,
	// OUTBOX_RETENTION, DELIVERY_RETENTION).
	Partitions partitions.Options
}

// timeouts are the bounds of the waits on each dependency.
type timeouts struct {
	// DBStatement bounds one statement (server side); DBConnect one dial
	// and handshake.
	DBStatement, DBConnect time.Duration
	// Redis bounds a dial, a read and a write of every Redis connection.
	Redis time.Duration
	// SMTP bounds a dial and one message's exchange; SMS one provider call.
	SMTP, SMS time.Duration
	// Request bounds one API request, whatever it waits on.
	Request time.Duration
	// SendLease is how long a delivery attempt may be in flight before
	// another worker takes it over as "outcome unknown"; longer than the
	// SMTP, SMS and webhook timeouts.
	SendLease time.Duration
}

// configError names the variable that is wrong; main prints it on one line
// and exits 2.
type configError struct {
	name, msg string
}

func (e *configError) Error() string { return e.name + ": " + e.msg }

func bad(name, format string, args ...any) error {
	return &configError{name: name, msg: fmt.Sprintf(format, args...)}
}

type env func(string) (string, bool)

func (e env) get(name, def string) string {
	if v, ok := e(name); ok && strings.TrimSpace(v) != "" {
		return strings.TrimSpace(v)
	}
	return def
}

func loadConfig(lookup env) (*config, error) {
	c := &config{}
	var err error

	c.DatabaseURL = lookup.get("DATABASE_URL", "postgres://localhost:5432/partnerd?sslmode=disable")
	if _, perr := pgx.ParseConfig(c.DatabaseURL); perr != nil {
		return nil, bad("DATABASE_URL", "not a PostgreSQL URL (postgres://user@host:5432/db?sslmode=disable)")
	}
	if u, perr := url.Parse(c.DatabaseURL); perr != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") || strings.Trim(u.Path, "/") == "" {
		return nil, bad("DATABASE_URL", "must name a database (postgres://host:5432/partnerd)")
	}

	c.DatabaseListenURL = lookup.get("DATABASE_LISTEN_URL", "")
	if c.DatabaseListenURL != "" {
		if _, perr := pgx.ParseConfig(c.DatabaseListenURL); perr != nil {
			return nil, bad("DATABASE_LISTEN_URL", "not a PostgreSQL URL (postgres://user@host:5432/db?sslmode=disable)")
		}
	}

	c.RedisURL = lookup.get("REDIS_URL", "redis://127.0.0.1:6379/0")
	if c.Redis, err = parseRedisURL(c.RedisURL); err != nil {
		return nil, bad("REDIS_URL", "not a Redis URL (redis://host:6379/0, or redis+cluster://host1:7000,host2:7001 for a cluster): %v", err)
	}

	c.HTTPAddr = lookup.get("HTTP_ADDR", ":8080")
	if _, port, serr := net.SplitHostPort(c.HTTPAddr); serr != nil || !validPort(port) {
		return nil, bad("HTTP_ADDR", "%q is not host:port (e.g. :8080)", c.HTTPAddr)
	}

	c.ProbeAddr = lookup.get("PROBE_ADDR", "")
	if c.ProbeAddr != "" {
		if _, port, serr := net.SplitHostPort(c.ProbeAddr); serr != nil || !validPort(port) {
			return nil, bad("PROBE_ADDR", "%q is not host:port (e.g. :9090)", c.ProbeAddr)
		}
	}

	c.PublicURL = strings.TrimRight(lookup.get("PUBLIC_URL", "http://localhost:8080"), "/")
	if u, perr := url.Parse(c.PublicURL); perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, bad("PUBLIC_URL", "%q is not an absolute http(s) URL", c.PublicURL)
	}

	c.SMTPHost = lookup.get("SMTP_HOST", "")
	c.SMTPUsername = lookup.get("SMTP_USERNAME", "")
	c.SMTPPassword, _ = lookup("SMTP_PASSWORD")
	c.SMTPTLS = lookup.get("SMTP_TLS", "starttls")
	switch c.SMTPTLS {
	case "none", "starttls", "tls":
	default:
		return nil, bad("SMTP_TLS", "%q is not one of none, starttls, tls", c.SMTPTLS)
	}
	defPort := map[string]string{"none": "25", "starttls": "587", "tls": "465"}[c.SMTPTLS]
	if c.SMTPPort, err = strconv.Atoi(lookup.get("SMTP_PORT", defPort)); err != nil || c.SMTPPort < 1 || c.SMTPPort > 65535 {
		return nil, bad("SMTP_PORT", "must be a port number 1-65535")
	}
	c.SMTPFrom = lookup.get("SMTP_FROM", "partnerd@localhost")
	if _, ferr := accounts.ValidateEmail("SMTP_FROM", c.SMTPFrom); ferr != nil && c.SMTPFrom != "partnerd@localhost" {
		return nil, bad("SMTP_FROM", "%q is not an email address", c.SMTPFrom)
	}

	c.SMSProvider = lookup.get("SMS_PROVIDER", "log")
	c.SMSWebhookURL = lookup.get("SMS_WEBHOOK_URL", "")
	switch c.SMSProvider {
	case "log":
	case "webhook":
		if u, perr := url.Parse(c.SMSWebhookURL); c.SMSWebhookURL == "" || perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, bad("SMS_WEBHOOK_URL", "SMS_PROVIDER=webhook needs an http(s) URL")
		}
	case "aliyun":
		c.SMSAliyun = sms.AliyunConfig{
			AccessKeyID:     lookup.get("SMS_ALIYUN_ACCESS_KEY_ID", ""),
			AccessKeySecret: lookup.get("SMS_ALIYUN_ACCESS_KEY_SECRET", ""),
			SignName:        lookup.get("SMS_ALIYUN_SIGN_NAME", ""),
			TemplateCode:    lookup.get("SMS_ALIYUN_TEMPLATE_CODE", ""),
			Endpoint:        lookup.get("SMS_ALIYUN_ENDPOINT", ""),
			RegionID:        lookup.get("SMS_ALIYUN_REGION", ""),
		}
		for name, v := range map[string]string{"SMS_ALIYUN_ACCESS_KEY_ID": c.SMSAliyun.AccessKeyID,
			"SMS_ALIYUN_ACCESS_KEY_SECRET": c.SMSAliyun.AccessKeySecret, "SMS_ALIYUN_SIGN_NAME": c.SMSAliyun.SignName,
			"SMS_ALIYUN_TEMPLATE_CODE": c.SMSAliyun.TemplateCode} {
			if v == "" {
				return nil, bad(name, "SMS_PROVIDER=aliyun needs it")
			}
		}
		if _, perr := sms.New(sms.Config{Provider: "aliyun", Aliyun: c.SMSAliyun}, nil, nil); perr != nil {
			return nil, bad("SMS_PROVIDER", "aliyun: %v", perr)
		}
	default:
		return nil, bad("SMS_PROVIDER", "%q is not one of log, webhook, aliyun", c.SMSProvider)
	}

	if c.WebhookAllowed, err = webhook.ParseNetworks(lookup.get("WEBHOOK_ALLOWED_NETWORKS", "")); err != nil {
		return nil, bad("WEBHOOK_ALLOWED_NETWORKS", "%v", err)
	}
	if c.WebhookTimeout, err = positiveDuration(lookup, "WEBHOOK_TIMEOUT", "10s"); err != nil {
		return nil, err
	}
	if c.CORSOrigins, err = parseOrigins(lookup.get("CORS_ALLOWED_ORIGINS", "")); err != nil {
		return nil, bad("CORS_ALLOWED_ORIGINS", "%v", err)
	}

	tz := lookup.get("BILLING_TIMEZONE", "Asia/Shanghai")
	if c.BillingTimezone, err = time.LoadLocation(tz); err != nil {
		return nil, bad("BILLING_TIMEZONE", "%q is not an IANA time zone (e.g. Asia/Shanghai)", tz)
	}
	if c.FreezeRetention, err = positiveDuration(lookup, "FREEZE_RETENTION", "360h"); err != nil {
		return nil, err
	}
	if c.MigrationTTL, err = positiveDuration(lookup, "MIGRATION_APPROVAL_TTL", "336h"); err != nil {
		return nil, err
	}
	if c.ShutdownTimeout, err = positiveDuration(lookup, "SHUTDOWN_TIMEOUT", "20s"); err != nil {
		return nil, err
	}
	drain := lookup.get("SHUTDOWN_DRAIN", "0s")
	if c.ShutdownDrain, err = time.ParseDuration(drain); err != nil || c.ShutdownDrain < 0 || c.ShutdownDrain > 5*time.Minute {
		return nil, bad("SHUTDOWN_DRAIN", "%q is not a duration from 0s to 5m (e.g. 5s)", drain)
	}
	for _, d := range []struct {
		name, def string
		dst       *time.Duration
	}{
		{"DB_STATEMENT_TIMEOUT", "30s", &c.Timeouts.DBStatement},
		{"DB_CONNECT_TIMEOUT", "5s", &c.Timeouts.DBConnect},
		{"REDIS_TIMEOUT", "3s", &c.Timeouts.Redis},
		{"SMTP_TIMEOUT", "15s", &c.Timeouts.SMTP},
		{"SMS_TIMEOUT", "10s", &c.Timeouts.SMS},
		{"REQUEST_TIMEOUT", "60s", &c.Timeouts.Request},
		{"SEND_LEASE", "2m", &c.Timeouts.SendLease},
		{"RECONCILE_AFTER", "5m", &c.Reconcile.After},
		{"RECONCILE_EVERY", "1m", &c.Reconcile.Every},
		{"OUTBOX_RETENTION", "168h", &c.Partitions.OutboxRetention},
		{"DELIVERY_RETENTION", "2160h", &c.Partitions.DeliveryRetention},
	} {
		if *d.dst, err = positiveDuration(lookup, d.name, d.def); err != nil {
			return nil, err
		}
	}
	if longest := max(c.Timeouts.SMTP, c.Timeouts.SMS, c.WebhookTimeout); c.Timeouts.SendLease <= longest {
		return nil, bad("SEND_LEASE", "must be longer than SMTP_TIMEOUT, SMS_TIMEOUT and WEBHOOK_TIMEOUT (%s), or a slow send could be taken over while it still runs", longest)
	}
	c.Redis.setTimeouts(c.Timeouts.Redis)
	c.QueueRedis = c.Redis.Queue()

	switch lvl := strings.ToLower(lookup.get("LOG_LEVEL", "info")); lvl {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "info":
		c.LogLevel = slog.LevelInfo
	case "warn", "warning":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	default:
		return nil, bad("LOG_LEVEL", "%q is not one of debug, info, warn, error", lvl)
	}
	c.LogFormat = lookup.get("LOG_FORMAT", "json")
	if c.LogFormat != "json" && c.LogFormat != "text" {
		return nil, bad("LOG_FORMAT", "%q is not one of json, text", c.LogFormat)
	}
	if c.Playground, err = boolVar(lookup, "PLAYGROUND", true); err != nil {
		return nil, err
	}
	ints := []struct {
		name     string
		def, min int
		max      int
		dst      *int
	}{
		{"WORKER_CONCURRENCY", 10, 1, 1000, &c.WorkerConcurrency},
		{"DB_MAX_CONNS", 20, 2, 1000, &c.DBMaxConns},
		{"GRAPHQL_MAX_DEPTH", 12, 2, 100, &c.MaxDepth},
		{"GRAPHQL_MAX_COMPLEXITY", 100000, 10, 10_000_000, &c.MaxComplexity},
		{"GRAPHQL_MAX_TOKENS", 15000, 100, 1_000_000, &c.MaxTokens},
		{"GRAPHQL_MAX_FIELDS", 500, 10, 1_000_000, &c.MaxFields},
		{"GRAPHQL_MAX_ALIASES", 100, 1, 100_000, &c.MaxAliases},
		{"GRAPHQL_MAX_DIRECTIVES", 50, 1, 100_000, &c.MaxDirectives},
		{"GRAPHQL_MAX_LIST_ITEMS", 10000, 1000, 10_000_000, &c.MaxListItems},
		{"BILL_RUN_DAY", 1, 1, 28, &c.BillSchedule.RunDay},
		{"BILL_RUN_HOUR", 2, 0, 23, &c.BillSchedule.RunHour},
		{"BILL_ISSUE_DAY", 5, 1, 28, &c.BillSchedule.IssueDay},
		{"RATE_LIMIT_PER_SECOND", 50, 0, 1_000_000, &c.RateLimit.Rate},
		{"RATE_LIMIT_BURST", 100, 0, 10_000_000, &c.RateLimit.Burst},
		{"PARTITIONS_AHEAD", 3, 1, 24, &c.Partitions.Ahead},
	}
	for _, v := range ints {
		n, err := strconv.Atoi(lookup.get(v.name, strconv.Itoa(v.def)))
		if err != nil || n < v.min || n > v.max {
			return nil, bad(v.name, "must be a whole number from %d to %d", v.min, v.max)
		}
		*v.dst = n
	}
	for _, v := range []struct {
		name string
		def  int64
		dst  *int64
	}{{"HTTP_MAX_BODY", 1 << 20, &c.MaxBody}, {"HTTP_MAX_UPLOAD", 20 << 20, &c.MaxUpload}} {
		n, err := strconv.ParseInt(lookup.get(v.name, strconv.FormatInt(v.def, 10)), 10, 64)
		if err != nil || n < 1024 {
			return nil, bad(v.name, "must be a number of bytes, at least 1024")
		}
		*v.dst = n
	}
	if err := c.BillSchedule.Validate(); err != nil {
		return nil, bad("BILL_ISSUE_DAY", "%v", err)
	}
	c.LivePrefix = lookup.get("LIVE_PREFIX", "partnerd:")
	return c, nil
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535
}

func positiveDuration(lookup env, name, def string) (time.Duration, error) {
	v := lookup.get(name, def)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, bad(name, "%q is not a positive duration such as 360h or 20s", v)
	}
	return d, nil
}

func boolVar(lookup env, name string, def bool) (bool, error) {
	v := lookup.get(name, strconv.FormatBool(def))
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, bad(name, "%q is not true or false", v)
	}
	return b, nil
}

func osEnv(name string) (string, bool) { return os.LookupEnv(name) }

// parseOrigins reads a comma-separated list of web origins
// (scheme://host[:port], no path).
func parseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimRight(strings.TrimSpace(o), "/")
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" || u.User != nil {
			return nil, fmt.Errorf("%q is not an origin: write scheme://host[:port], e.g. https://partners.example.com", o)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}
