package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
)

// fakeEnv is a lookup over a map, standing in for the process environment.
func fakeEnv(m map[string]string) env {
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// unreachable points the stores at closed ports, so that a bad value the
// configuration failed to catch shows as exit 1 (a run-time failure), never
// as a touch to the developer's own database.
func unreachable() map[string]string {
	return map[string]string{
		"DATABASE_URL": "postgres://127.0.0.1:1/partnerd_config_test?sslmode=disable&connect_timeout=2",
		"REDIS_URL":    "redis://127.0.0.1:1/0",
	}
}

func runWith(t *testing.T, args []string, vars map[string]string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, fakeEnv(vars), &out, &errb)
	return code, out.String(), errb.String()
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	cases := []struct {
		name string
		vars map[string]string
		// want is the variable the error line must name.
		want string
	}{
		{"database url garbage", map[string]string{"DATABASE_URL": "garbage"}, "DATABASE_URL"},
		{"database url bad escape", map[string]string{"DATABASE_URL": "postgres://%zz/db"}, "DATABASE_URL"},
		{"database url without database", map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1"}, "DATABASE_URL"},
		{"redis url ftp", map[string]string{"REDIS_URL": "ftp://x"}, "REDIS_URL"},
		{"listen url garbage", map[string]string{"DATABASE_LISTEN_URL": "not a url"}, "DATABASE_LISTEN_URL"},
		{"redis cluster without nodes", map[string]string{"REDIS_URL": "redis+cluster://"}, "REDIS_URL"},
		{"redis cluster node without port", map[string]string{"REDIS_URL": "redis+cluster://a:7000,b"}, "REDIS_URL"},
		{"redis cluster database", map[string]string{"REDIS_URL": "redis+cluster://a:7000/3"}, "REDIS_URL"},
		{"http addr", map[string]string{"HTTP_ADDR": "nope"}, "HTTP_ADDR"},
		{"http addr port", map[string]string{"HTTP_ADDR": ":99999"}, "HTTP_ADDR"},
		{"probe addr", map[string]string{"PROBE_ADDR": "9090"}, "PROBE_ADDR"},
		{"public url", map[string]string{"PUBLIC_URL": "not a url"}, "PUBLIC_URL"},
		{"public url scheme", map[string]string{"PUBLIC_URL": "ftp://example.com"}, "PUBLIC_URL"},
		{"smtp tls", map[string]string{"SMTP_TLS": "ssl"}, "SMTP_TLS"},
		{"smtp port zero", map[string]string{"SMTP_PORT": "0"}, "SMTP_PORT"},
		{"smtp port words", map[string]string{"SMTP_PORT": "twenty-five"}, "SMTP_PORT"},
		{"sms provider", map[string]string{"SMS_PROVIDER": "carrier-pigeon"}, "SMS_PROVIDER"},
		{"webhook networks", map[string]string{"WEBHOOK_ALLOWED_NETWORKS": "10.0.0.0/33"}, "WEBHOOK_ALLOWED_NETWORKS"},
		{"webhook timeout", map[string]string{"WEBHOOK_TIMEOUT": "soon"}, "WEBHOOK_TIMEOUT"},
		{"sms webhook missing url", map[string]string{"SMS_PROVIDER": "webhook"}, "SMS_WEBHOOK_URL"},
		{"sms webhook bad url", map[string]string{"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": "not a url"}, "SMS_WEBHOOK_URL"},
		{"billing timezone", map[string]string{"BILLING_TIMEZONE": "Mars/Base"}, "BILLING_TIMEZONE"},
		{"freeze retention negative", map[string]string{"FREEZE_RETENTION": "-1h"}, "FREEZE_RETENTION"},
		{"freeze retention zero", map[string]string{"FREEZE_RETENTION": "0s"}, "FREEZE_RETENTION"},
		{"migration approval ttl", map[string]string{"MIGRATION_APPROVAL_TTL": "soon"}, "MIGRATION_APPROVAL_TTL"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"log format", map[string]string{"LOG_FORMAT": "xml"}, "LOG_FORMAT"},
		{"playground", map[string]string{"PLAYGROUND": "maybe"}, "PLAYGROUND"},
		{"shutdown timeout", map[string]string{"SHUTDOWN_TIMEOUT": "later"}, "SHUTDOWN_TIMEOUT"},
		{"worker concurrency", map[string]string{"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"},
		{"http max body", map[string]string{"HTTP_MAX_BODY": "12"}, "HTTP_MAX_BODY"},
		{"max aliases zero", map[string]string{"GRAPHQL_MAX_ALIASES": "0"}, "GRAPHQL_MAX_ALIASES"},
		{"max list items words", map[string]string{"GRAPHQL_MAX_LIST_ITEMS": "many"}, "GRAPHQL_MAX_LIST_ITEMS"},
		{"rate limit negative", map[string]string{"RATE_LIMIT_PER_SECOND": "-1"}, "RATE_LIMIT_PER_SECOND"},
		{"rate limit burst words", map[string]string{"RATE_LIMIT_BURST": "lots"}, "RATE_LIMIT_BURST"},
		{"cors origin without scheme", map[string]string{"CORS_ALLOWED_ORIGINS": "partners.example.com"}, "CORS_ALLOWED_ORIGINS"},
		{"cors origin with path", map[string]string{"CORS_ALLOWED_ORIGINS": "https://a.example.com, https://b.example.com/app"}, "CORS_ALLOWED_ORIGINS"},
		{"statement timeout", map[string]string{"DB_STATEMENT_TIMEOUT": "0s"}, "DB_STATEMENT_TIMEOUT"},
		{"connect timeout", map[string]string{"DB_CONNECT_TIMEOUT": "quick"}, "DB_CONNECT_TIMEOUT"},
		{"redis timeout", map[string]string{"REDIS_TIMEOUT": "-1s"}, "REDIS_TIMEOUT"},
		{"smtp timeout", map[string]string{"SMTP_TIMEOUT": "15"}, "SMTP_TIMEOUT"},
		{"sms timeout", map[string]string{"SMS_TIMEOUT": "x"}, "SMS_TIMEOUT"},
		{"request timeout", map[string]string{"REQUEST_TIMEOUT": "0"}, "REQUEST_TIMEOUT"},
		{"send lease shorter than the smtp timeout", map[string]string{"SEND_LEASE": "10s", "SMTP_TIMEOUT": "30s"}, "SEND_LEASE"},
		{"send lease equal to the webhook timeout", map[string]string{"SEND_LEASE": "10s", "WEBHOOK_TIMEOUT": "10s"}, "SEND_LEASE"},
		{"reconcile after", map[string]string{"RECONCILE_AFTER": "never"}, "RECONCILE_AFTER"},
		{"reconcile every", map[string]string{"RECONCILE_EVERY": "0s"}, "RECONCILE_EVERY"},
		{"outbox retention", map[string]string{"OUTBOX_RETENTION": "-1h"}, "OUTBOX_RETENTION"},
		{"shutdown drain negative", map[string]string{"SHUTDOWN_DRAIN": "-1s"}, "SHUTDOWN_DRAIN"},
		{"shutdown drain too long", map[string]string{"SHUTDOWN_DRAIN": "10m"}, "SHUTDOWN_DRAIN"},
		{"delivery retention", map[string]string{"DELIVERY_RETENTION": "a quarter"}, "DELIVERY_RETENTION"},
		{"partitions ahead zero", map[string]string{"PARTITIONS_AHEAD": "0"}, "PARTITIONS_AHEAD"},
		{"partitions ahead too many", map[string]string{"PARTITIONS_AHEAD": "25"}, "PARTITIONS_AHEAD"},
	}
	for _, tc := range cases {
		for _, cmd := range []string{"migrate", "serve"} {
			t.Run(tc.name+"/"+cmd, func(t *testing.T) {
				t.Parallel()
				vars := unreachable()
				for k, v := range tc.vars {
					vars[k] = v
				}
				code, stdout, stderr := runWith(t, []string{cmd}, vars)
				if code != 2 {
					t.Fatalf("exit code = %d, want 2; stderr:\n%s", code, stderr)
				}
				if stdout != "" {
					t.Errorf("stdout = %q, want nothing", stdout)
				}
				assertOneLine(t, stderr, tc.want)
			})
		}
	}
}

// assertOneLine checks the operator's contract: one clear line naming the
// variable, never a panic or a stack trace.
func assertOneLine(t *testing.T, stderr, name string) {
	t.Helper()
	if !strings.HasSuffix(stderr, "\n") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("stderr is not exactly one line: %q", stderr)
	}
	if !strings.Contains(stderr, name) {
		t.Errorf("stderr %q does not name %s", stderr, name)
	}
	for _, bad := range []string{"goroutine", "panic"} {
		if strings.Contains(strings.ToLower(stderr), bad) {
			t.Errorf("stderr %q contains %q", stderr, bad)
		}
	}
}

func TestRunUsageErrors(t *testing.T) {
	cases := []struct {
		name    string
		args    []string
		code    int
		mention string
	}{
		{"no args", nil, 2, "Usage"},
		{"unknown command", []string{"frobnicate"}, 2, `"frobnicate"`},
		{"bootstrap without email", []string{"bootstrap"}, 2, "--email"},
		{"bootstrap with empty email", []string{"bootstrap", "--email", ""}, 2, "--email"},
		{"unknown flag", []string{"migrate", "--bogus"}, 2, "bogus"},
		{"stray argument", []string{"migrate", "now"}, 2, `"now"`},
		{"help", []string{"--help"}, 0, "Usage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, stdout, stderr := runWith(t, tc.args, unreachable())
			if code != tc.code {
				t.Fatalf("exit code = %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if stdout != "" {
				t.Errorf("stdout = %q, want nothing", stdout)
			}
			if !strings.Contains(stderr, tc.mention) {
				t.Errorf("stderr does not mention %s:\n%s", tc.mention, stderr)
			}
			if strings.Contains(stderr, "goroutine") || strings.Contains(stderr, "panic") {
				t.Errorf("stderr holds a panic:\n%s", stderr)
			}
		})
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	// An unset variable and one set to blanks both take the default.
	for name, vars := range map[string]map[string]string{
		"unset": {},
		"blank": {"DATABASE_URL": "", "REDIS_URL": " ", "HTTP_ADDR": "", "LOG_LEVEL": "  ", "SMS_PROVIDER": ""},
	} {
		t.Run(name, func(t *testing.T) {
			c, err := loadConfig(fakeEnv(vars))
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			checks := []struct {
				what      string
				got, want any
			}{
				{"DATABASE_URL", c.DatabaseURL, "postgres://localhost:5432/partnerd?sslmode=disable"},
				{"REDIS_URL", c.RedisURL, "redis://127.0.0.1:6379/0"},
				{"redis addr", c.Redis.Single.Addr, "127.0.0.1:6379"},
				{"redis db", c.Redis.Single.DB, 0},
				{"HTTP_ADDR", c.HTTPAddr, ":8080"},
				{"PUBLIC_URL", c.PublicURL, "http://localhost:8080"},
				{"FREEZE_RETENTION", c.FreezeRetention, 360 * time.Hour},
				{"MIGRATION_APPROVAL_TTL", c.MigrationTTL, 336 * time.Hour},
				{"BILLING_TIMEZONE", c.BillingTimezone.String(), "Asia/Shanghai"},
				{"LOG_LEVEL", c.LogLevel, slog.LevelInfo},
				{"LOG_FORMAT", c.LogFormat, "json"},
				{"SMS_PROVIDER", c.SMSProvider, "log"},
				{"SMTP_HOST", c.SMTPHost, ""},
				{"PLAYGROUND", c.Playground, true},
				{"RATE_LIMIT_PER_SECOND", c.RateLimit.Rate, 50},
				{"RATE_LIMIT_BURST", c.RateLimit.Burst, 100},
				{"OUTBOX_RETENTION", c.Partitions.OutboxRetention, 168 * time.Hour},
				{"DELIVERY_RETENTION", c.Partitions.DeliveryRetention, 2160 * time.Hour},
				{"PARTITIONS_AHEAD", c.Partitions.Ahead, 3},
				{"SHUTDOWN_DRAIN", c.ShutdownDrain, time.Duration(0)},
				{"CORS_ALLOWED_ORIGINS", len(c.CORSOrigins), 0},
				{"GRAPHQL_MAX_FIELDS", c.MaxFields, 500},
				{"GRAPHQL_MAX_ALIASES", c.MaxAliases, 100},
				{"GRAPHQL_MAX_DIRECTIVES", c.MaxDirectives, 50},
				{"GRAPHQL_MAX_LIST_ITEMS", c.MaxListItems, 10000},
			}
			for _, ch := range checks {
				if ch.got != ch.want {
					t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
				}
			}
			if c.QueueRedis == nil {
				t.Error("no queue Redis options")
			}
		})
	}
}

func TestLoadConfigAcceptsGoodValues(t *testing.T) {
	c, err := loadConfig(fakeEnv(map[string]string{
		"DATABASE_URL":           "postgres://u:p@db.internal:6543/pc?sslmode=require",
		"REDIS_URL":              "redis://:secret@cache:6380/3",
		"HTTP_ADDR":              "127.0.0.1:9000",
		"PUBLIC_URL":             "https://partners.example.com/",
		"SMTP_HOST":              "mail.example.com",
		"SMTP_TLS":               "tls",
		"SMTP_FROM":              "noreply@example.com",
		"SMS_PROVIDER":           "webhook",
		"SMS_WEBHOOK_URL":        "https://sms.example.com/send",
		"BILLING_TIMEZONE":       "Europe/Berlin",
		"FREEZE_RETENTION":       "48h",
		"MIGRATION_APPROVAL_TTL": "90m",
		"LOG_LEVEL":              "DEBUG",
		"LOG_FORMAT":             "text",
		"PLAYGROUND":             "false",
		"RATE_LIMIT_PER_SECOND":  "0",
		"CORS_ALLOWED_ORIGINS":   "https://partners.example.com",
		"DB_STATEMENT_TIMEOUT":   "5s",
		"REDIS_TIMEOUT":          "750ms",
		"SMTP_TIMEOUT":           "20s",
		"SEND_LEASE":             "30s",
		"REQUEST_TIMEOUT":        "12s",
		"RECONCILE_AFTER":        "90s",
		"RECONCILE_EVERY":        "15s",
		"OUTBOX_RETENTION":       "72h",
		"DELIVERY_RETENTION":     "720h",
		"PARTITIONS_AHEAD":       "6",
		"SHUTDOWN_DRAIN":         "5s",
	}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"redis addr", c.Redis.Single.Addr, "cache:6380"},
		{"redis db", c.Redis.Single.DB, 3},
		{"redis db on the queue", c.QueueRedis.(asynq.RedisClientOpt).DB, 3},
		{"redis password on the queue", c.QueueRedis.(asynq.RedisClientOpt).Password, "secret"},
		{"PUBLIC_URL without the trailing slash", c.PublicURL, "https://partners.example.com"},
		{"SMTP_PORT follows SMTP_TLS", c.SMTPPort, 465},
		{"SMS_WEBHOOK_URL", c.SMSWebhookURL, "https://sms.example.com/send"},
		{"BILLING_TIMEZONE", c.BillingTimezone.String(), "Europe/Berlin"},
		{"FREEZE_RETENTION", c.FreezeRetention, 48 * time.Hour},
		{"MIGRATION_APPROVAL_TTL", c.MigrationTTL, 90 * time.Minute},
		{"LOG_LEVEL", c.LogLevel, slog.LevelDebug},
		{"LOG_FORMAT", c.LogFormat, "text"},
		{"PLAYGROUND", c.Playground, false},
		{"RATE_LIMIT_PER_SECOND 0 turns it off", c.RateLimit.Rate, 0},
		{"CORS_ALLOWED_ORIGINS", strings.Join(c.CORSOrigins, ","), "https://partners.example.com"},
		{"DB_STATEMENT_TIMEOUT", c.Timeouts.DBStatement, 5 * time.Second},
		{"DB_CONNECT_TIMEOUT default", c.Timeouts.DBConnect, 5 * time.Second},
		{"REDIS_TIMEOUT on the Redis client", c.Redis.Single.ReadTimeout, 750 * time.Millisecond},
		{"REDIS_TIMEOUT on the queue", c.QueueRedis.(asynq.RedisClientOpt).DialTimeout, 750 * time.Millisecond},
		{"SMTP_TIMEOUT", c.Timeouts.SMTP, 20 * time.Second},
		{"SMS_TIMEOUT default", c.Timeouts.SMS, 10 * time.Second},
		{"SEND_LEASE", c.Timeouts.SendLease, 30 * time.Second},
		{"REQUEST_TIMEOUT", c.Timeouts.Request, 12 * time.Second},
		{"RECONCILE_AFTER", c.Reconcile.After, 90 * time.Second},
		{"RECONCILE_EVERY", c.Reconcile.Every, 15 * time.Second},
		{"OUTBOX_RETENTION", c.Partitions.OutboxRetention, 72 * time.Hour},
		{"DELIVERY_RETENTION", c.Partitions.DeliveryRetention, 720 * time.Hour},
		{"PARTITIONS_AHEAD", c.Partitions.Ahead, 6},
		{"SHUTDOWN_DRAIN", c.ShutdownDrain, 5 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
}

func TestParseRedisClusterURL(t *testing.T) {
	c, err := loadConfig(fakeEnv(map[string]string{
		"REDIS_URL":     "redis+cluster://app:s3cret@10.0.0.1:7000, 10.0.0.2:7001,10.0.0.3:7002/?max_redirects=5",
		"REDIS_TIMEOUT": "2s",
	}))
	if err != nil {
		t.Fatalf("loadConfig: %v", err)
	}
	if c.Redis.Single != nil || c.Redis.Cluster == nil {
		t.Fatalf("a cluster URL gave %+v", c.Redis)
	}
	cl := c.Redis.Cluster
	if strings.Join(cl.Addrs, " ") != "10.0.0.1:7000 10.0.0.2:7001 10.0.0.3:7002" || cl.Username != "app" || cl.Password != "s3cret" ||
		cl.MaxRedirects != 5 || cl.ReadTimeout != 2*time.Second {
		t.Fatalf("cluster options %+v", cl)
	}
	q, ok := c.QueueRedis.(asynq.RedisClusterClientOpt)
	if !ok || strings.Join(q.Addrs, " ") != strings.Join(cl.Addrs, " ") || q.Password != "s3cret" || q.DialTimeout != 2*time.Second || q.MaxRedirects != 5 {
		t.Fatalf("queue option %#v", c.QueueRedis)
	}
	if _, err := parseRedisURL("rediss+cluster://a:7000"); err != nil {
		t.Errorf("TLS cluster URL: %v", err)
	}
	// A query without a path, a password with an '@', IPv6 nodes.
	r, err := parseRedisURL("redis+cluster://app:p@ss@[::1]:7000,[::1]:7001?max_redirects=2")
	if err != nil || strings.Join(r.Cluster.Addrs, " ") != "[::1]:7000 [::1]:7001" || r.Cluster.Password != "p@ss" || r.Cluster.MaxRedirects != 2 {
		t.Errorf("cluster URL with a query and no path: %+v, %v", r.Cluster, err)
	}
	if _, err := parseRedisURL("redis+cluster://a:7000,b:abc"); err == nil {
		t.Error("a second node without a port number was accepted")
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := parseOrigins(" https://partners.example.com/ ,http://localhost:5173,, ")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://partners.example.com", "http://localhost:5173"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("origins %q, want %q", got, want)
	}
	for _, bad := range []string{"ftp://x.example.com", "https://user@x.example.com", "https://x.example.com?a=1", "*"} {
		if _, err := parseOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
