// Package storetest gives each test a database of its own, cloned from a
// migrated template database (CREATE DATABASE ... TEMPLATE), and a Redis
// database number of its own. Tests talk to the real PostgreSQL and Redis.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"partnerd/store"
)

// BaseURL is the server the tests use: TEST_DATABASE_URL, or the local
// PostgreSQL of the development machine.
func BaseURL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// RedisBaseURL is the Redis the tests use: TEST_REDIS_URL or the local one.
func RedisBaseURL() string {
	if u := os.Getenv("TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

func withDB(base, name string) string {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + name
	return u.String()
}

// NewDatabase creates a fresh migrated database for the test and returns its
// URL. It is dropped when the test ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := BaseURL()
	tmpl, err := ensureTemplate(ctx, base)
	if err != nil {
		t.Fatalf("template database: %v", err)
	}
	name := "partnerd_test_" + randHex(6)
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var lastErr error
	for i := 0; i < 50; i++ {
		_, lastErr = conn.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", name, tmpl))
		if lastErr == nil {
			break
		}
		// Another process cloning the template at the same instant holds it briefly.
		if !strings.Contains(lastErr.Error(), "being accessed by other users") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if lastErr != nil {
		t.Fatalf("create test database: %v", lastErr)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return
		}
		defer c.Close(ctx)
		_, _ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return withDB(base, name)
}

// New opens a store on a fresh migrated database for the test.
func New(t testing.TB, opts store.Options) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), NewDatabase(t), opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func ensureTemplate(ctx context.Context, base string) (string, error) {
	ver, err := store.MigrationsVersion()
	if err != nil {
		return "", err
	}
	name := "partnerd_tmpl_" + ver
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	// Test binaries of several packages run at once: one builds the template.
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(827364)"); err != nil {
		return "", err
	}
	defer conn.Exec(context.Background(), "SELECT pg_advisory_unlock(827364)") //nolint:errcheck
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname=$1 AND datistemplate)", name).Scan(&ok); err != nil {
		return "", err
	}
	if ok {
		return name, nil
	}
	building := name + "_build"
	_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)")
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return "", err
	}
	st, err := store.Open(ctx, withDB(base, building), store.Options{MaxOpenConns: 2})
	if err != nil {
		return "", err
	}
	err = store.Migrate(ctx, st.SQL)
	_ = st.Close()
	if err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+building+" RENAME TO "+name); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "ALTER DATABASE "+name+" WITH IS_TEMPLATE true"); err != nil {
		return "", err
	}
	return name, nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// RedisDB leases a Redis database number (1..15) for the test, flushes it,
// and returns its URL and a key prefix unique to the test (for pub/sub
// channels, which Redis shares across database numbers). The lease is held
// in database 0 and released when the test ends.
func RedisDB(t testing.TB) (redisURL, prefix string) {
	t.Helper()
	ctx := context.Background()
	opt, err := redis.ParseURL(RedisBaseURL())
	if err != nil {
		t.Fatalf("redis url: %v", err)
	}
	opt.DB = 0
	c := redis.NewClient(opt)
	defer c.Close()
	token := randHex(8)
	deadline := time.Now().Add(3 * time.Minute)
	for {
		for n := 1; n <= 15; n++ {
			key := fmt.Sprintf("partnerd:test:lease:%d", n)
			ok, err := c.SetNX(ctx, key, token, 10*time.Minute).Result()
			if err != nil {
				t.Fatalf("redis: %v", err)
			}
			if !ok {
				continue
			}
			o := *opt
			o.DB = n
			rc := redis.NewClient(&o)
			if err := rc.FlushDB(ctx).Err(); err != nil {
				t.Fatalf("redis flush: %v", err)
			}
			_ = rc.Close()
			t.Cleanup(func() {
				c := redis.NewClient(opt)
				defer c.Close()
				rc := redis.NewClient(&o)
				_ = rc.FlushDB(context.Background()).Err()
				_ = rc.Close()
				if v, _ := c.Get(context.Background(), key).Result(); v == token {
					c.Del(context.Background(), key)
				}
			})
			u, _ := url.Parse(RedisBaseURL())
			u.Path = fmt.Sprintf("/%d", n)
			return u.String(), "t" + token + ":"
		}
		if time.Now().After(deadline) {
			t.Fatalf("no free Redis database for the test")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
