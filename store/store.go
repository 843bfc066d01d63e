// Package store opens partnerd's PostgreSQL database, applies its embedded
// goose migrations, and offers the one transaction path of a change: InTx,
// with the audit writer (Tx.Audit) and the outbox (Tx.Emit) inside it.
package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

//go:embed migrations/*.sql
var migrationsFS embed.FS

// OutboxChannel is the LISTEN/NOTIFY channel that wakes the outbox relay.
const OutboxChannel = "partnerd_outbox"

// Clock tells the time. Domain rules that depend on time take it from the
// store's clock so tests can move it.
type Clock interface{ Now() time.Time }

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns the current time in UTC.
func (SystemClock) Now() time.Time { return time.Now().UTC() }

// Options tune Open.
type Options struct {
	// MaxOpenConns bounds the pool (default 20).
	MaxOpenConns int
	// Clock overrides the system clock (tests).
	Clock Clock
	// Logger receives slow-query and retry logs.
	Logger *slog.Logger
	// StatementTimeout bounds every statement (default 30s).
	StatementTimeout time.Duration
	// ConnectTimeout bounds a new connection's dial and handshake (default
	// 5s).
	ConnectTimeout time.Duration
}

// Store is the database handle shared by the domain packages.
type Store struct {
	// DB is the gorm handle; use DB.WithContext(ctx).
	DB *gorm.DB
	// SQL is the underlying pool.
	SQL *sql.DB
	// URL is the connection string the store was opened with.
	URL   string
	clock Clock
	log   *slog.Logger
	// statements counts statements executed through gorm (see CountStatements).
	statements atomic.Int64
}

// Open connects to the database at url. It does not create or migrate it;
// see EnsureDatabase and Migrate.
func Open(ctx context.Context, dbURL string, opts Options) (*Store, error) {
	if opts.MaxOpenConns == 0 {
		opts.MaxOpenConns = 20
	}
	if opts.Clock == nil {
		opts.Clock = SystemClock{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.StatementTimeout == 0 {
		opts.StatementTimeout = 30 * time.Second
	}
	if opts.ConnectTimeout == 0 {
		opts.ConnectTimeout = 5 * time.Second
	}
	cfg, err := pgx.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	if cfg.ConnectTimeout == 0 || cfg.ConnectTimeout > opts.ConnectTimeout {
		cfg.ConnectTimeout = opts.ConnectTimeout
	}
	cfg.RuntimeParams["timezone"] = "UTC"
	cfg.RuntimeParams["statement_timeout"] = fmt.Sprint(opts.StatementTimeout.Milliseconds())
	cfg.RuntimeParams["application_name"] = "partnerd"
	sqlDB := stdlib.OpenDB(*cfg)
	sqlDB.SetMaxOpenConns(opts.MaxOpenConns)
	sqlDB.SetMaxIdleConns(opts.MaxOpenConns)
	sqlDB.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := sqlDB.PingContext(pctx); err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	gdb, err := gorm.Open(postgres.New(postgres.Config{Conn: sqlDB}), &gorm.Config{
		Logger:                 logger.Discard,
		SkipDefaultTransaction: true,
		PrepareStmt:            false,
		NowFunc:                func() time.Time { return opts.Clock.Now() },
	})
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("open gorm: %w", err)
	}
	s := &Store{DB: gdb, SQL: sqlDB, URL: dbURL, clock: opts.Clock, log: opts.Logger}
	s.registerCounter()
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() error { return s.SQL.Close() }

// Now is the store clock's time, in UTC.
func (s *Store) Now() time.Time { return s.clock.Now().UTC() }

// Clock returns the store's clock.
func (s *Store) Clock() Clock { return s.clock }

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.SQL.PingContext(ctx) }

// CountStatements returns how many statements gorm has run on this store;
// tests use it to prove a query does not grow with its data (N+1).
func (s *Store) CountStatements() int64 { return s.statements.Load() }

func (s *Store) registerCounter() {
	inc := func(*gorm.DB) { s.statements.Add(1) }
	cb := s.DB.Callback()
	_ = cb.Query().Before("gorm:query").Register("partnerd:count", inc)
	_ = cb.Row().Before("gorm:row").Register("partnerd:count", inc)
	_ = cb.Raw().Before("gorm:raw").Register("partnerd:count", inc)
	_ = cb.Create().Before("gorm:create").Register("partnerd:count", inc)
	_ = cb.Update().Before("gorm:update").Register("partnerd:count", inc)
	_ = cb.Delete().Before("gorm:delete").Register("partnerd:count", inc)
}

// EnsureDatabase creates the database named in dbURL when it does not exist,
// connecting through the "postgres" maintenance database. It reports whether
// it created it.
func EnsureDatabase(ctx context.Context, dbURL string) (bool, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return false, fmt.Errorf("parse DATABASE_URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	if name == "" {
		return false, fmt.Errorf("DATABASE_URL names no database")
	}
	maint := *u
	maint.Path = "/postgres"
	conn, err := pgx.Connect(ctx, maint.String())
	if err != nil {
		return false, fmt.Errorf("connect to the postgres maintenance database: %w", err)
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return false, fmt.Errorf("look up database %q: %w", name, err)
	}
	if exists {
		return false, nil
	}
	_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42P04" { // created concurrently by another process
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create database %q: %w", name, err)
	}
	return true, nil
}

// Migrate applies every pending embedded migration. Several processes may
// call it at once: goose serializes them with an advisory lock.
func Migrate(ctx context.Context, db *sql.DB) error {
	p, err := newProvider(db)
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	return nil
}

// MigrationsVersion returns the highest embedded migration version, used to
// name test template databases.
func MigrationsVersion() (string, error) {
	entries, err := migrationsFS.ReadDir("migrations")
	if err != nil {
		return "", err
	}
	h := fnv64()
	for _, e := range entries {
		b, err := migrationsFS.ReadFile("migrations/" + e.Name())
		if err != nil {
			return "", err
		}
		h.add(e.Name())
		h.add(string(b))
	}
	return fmt.Sprintf("%016x", h.sum), nil
}

func newProvider(db *sql.DB) (*goose.Provider, error) {
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("goose locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithSessionLocker(locker), goose.WithVerbose(false))
	if err != nil {
		return nil, fmt.Errorf("goose: %w", err)
	}
	return p, nil
}

type fnvHash struct{ sum uint64 }

func fnv64() *fnvHash { return &fnvHash{sum: 14695981039346656037} }

func (h *fnvHash) add(s string) {
	for i := 0; i < len(s); i++ {
		h.sum ^= uint64(s[i])
		h.sum *= 1099511628211
	}
}
