// Package partitions keeps the monthly partitions of partnerd's large
// tables (migration 00025): expenditure records, audit entries, outbox rows,
// and notification deliveries with their attempts.
//
// Maintain, run hourly by the scheduler, does three things:
//   - it creates each table's partitions from the current month through
//     Options.Ahead months ahead, so rows never wait for one;
//   - it creates the partition of any month whose rows landed in a table's
//     default partition (a late expenditure record for an old month, or a
//     scheduler that did not run), which moves them out of it;
//   - it drops outbox and delivery months whose last day is older than
//     their retention, each only when none of its rows is still live (an
//     unsettled outbox row, a PENDING or SENDING delivery). A month that is
//     kept is logged and retried on the next run. Expenditure records and
//     audit entries are never dropped.
//
// Partitions are named <table>_pYYYYMM and bounded by UTC months; the
// expenditure records by their billing month (YYYYMM). Every change takes
// its locks with a lock timeout, so a long transaction on a table makes the
// run give that month up until the next run instead of stalling the table's
// readers and writers behind its lock.
package partitions

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"partnerd/store"
)

// Defaults of Options.
const (
	DefaultAhead             = 3
	DefaultOutboxRetention   = 7 * 24 * time.Hour
	DefaultDeliveryRetention = 90 * 24 * time.Hour
	DefaultLockTimeout       = 3 * time.Second
)

// Options tune Maintain.
type Options struct {
	// Ahead is how many months after the current one have partitions
	// (default DefaultAhead).
	Ahead int
	// OutboxRetention is how long an outbox month is kept after its last
	// day (default DefaultOutboxRetention).
	OutboxRetention time.Duration
	// DeliveryRetention is how long a month of deliveries and their
	// attempts is kept after its last day (default DefaultDeliveryRetention).
	DeliveryRetention time.Duration
	// LockTimeout bounds each wait for a table lock (default
	// DefaultLockTimeout).
	LockTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Ahead <= 0 {
		o.Ahead = DefaultAhead
	}
	if o.OutboxRetention <= 0 {
		o.OutboxRetention = DefaultOutboxRetention
	}
	if o.DeliveryRetention <= 0 {
		o.DeliveryRetention = DefaultDeliveryRetention
	}
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	return o
}

// Table is a partitioned table Maintain keeps.
type Table struct {
	// Name is the partitioned (parent) table.
	Name string
	// Retention is how long a month is kept after its last day; zero keeps
	// every month.
	Retention time.Duration
	// Live is an SQL condition true for a row still in use: a month holding
	// one is not dropped.
	Live string
	// With are tables partitioned by the same months whose rows belong to
	// this table's (the attempts of deliveries): their month is dropped
	// with this table's, first.
	With []string
}

// Tables returns the partitioned tables and their retention under o.
func Tables(o Options) []Table {
	o = o.withDefaults()
	return []Table{
		{Name: "expenditures"},
		{Name: "audit_log"},
		// Unsettled: pending, or dispatched and not settled (written so each
		// arm matches one of the outbox's partial indexes).
		{Name: "outbox", Retention: o.OutboxRetention, Live: "dispatched_at IS NULL OR (dispatched_at IS NOT NULL AND settled_at IS NULL)"},
		{Name: "deliveries", Retention: o.DeliveryRetention, Live: "status IN ('PENDING', 'SENDING')", With: []string{"delivery_attempts"}},
		{Name: "delivery_attempts"},
	}
}

// Report tells what one Maintain run did.
type Report struct {
	// Created are the partitions created.
	Created []string
	// Dropped are the partitions dropped.
	Dropped []string
	// Kept are months past their retention that still hold live rows.
	Kept []string
}

// Service keeps the partitions.
type Service struct {
	st     *store.Store
	opts   Options
	tables []Table
	log    *slog.Logger
}

// New returns the partition keeper of st's database.
func New(st *store.Store, opts Options, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	opts = opts.withDefaults()
	return &Service{st: st, opts: opts, tables: Tables(opts), log: log.With("component", "partitions")}
}

// lockKey is the advisory lock that serializes runs: two schedulers' runs
// would otherwise race to create the same partition.
const lockKey = "partnerd.partitions"

// Maintain creates the partitions ahead and those that rows in a default
// partition need, and drops the months past their retention. A month it
// could not change (a lock not granted in time) is left for the next run
// and reported in the error, after every other month was done.
func (s *Service) Maintain(ctx context.Context) (Report, error) {
	var (
		rep  Report
		errs []error
	)
	now := s.st.Now().UTC()
	current := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	for _, t := range s.tables {
		months, err := s.waiting(ctx, t.Name)
		if err != nil {
			errs = append(errs, err)
		}
		for i := 0; i <= s.opts.Ahead; i++ {
			months = append(months, current.AddDate(0, i, 0))
		}
		existing, err := s.months(ctx, t.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		// Only months without a partition cost a transaction.
		months = slices.DeleteFunc(months, func(m time.Time) bool {
			return slices.ContainsFunc(existing, func(p partition) bool { return p.month.Equal(m) })
		})
		slices.SortFunc(months, func(a, b time.Time) int { return a.Compare(b) })
		for _, m := range slices.Compact(months) {
			name, created, err := s.ensure(ctx, t.Name, m)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if created {
				rep.Created = append(rep.Created, name)
			}
		}
	}
	for _, t := range s.tables {
		if t.Retention <= 0 {
			continue
		}
		parts, err := s.months(ctx, t.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range parts {
			if !p.month.AddDate(0, 1, 0).Add(t.Retention).Before(now) {
				continue
			}
			dropped, kept, err := s.drop(ctx, t, p)
			rep.Dropped = append(rep.Dropped, dropped...)
			switch {
			case err != nil:
				errs = append(errs, err)
			case kept:
				rep.Kept = append(rep.Kept, p.name)
				s.log.WarnContext(ctx, "month past its retention still holds live rows: kept", "partition", p.name, "live", t.Live)
			}
		}
	}
	if len(rep.Created) > 0 || len(rep.Dropped) > 0 {
		s.log.InfoContext(ctx, "partitions maintained", "created", rep.Created, "dropped", rep.Dropped, "kept", rep.Kept)
	}
	return rep, errors.Join(errs...)
}

// ensure creates table's partition for month m unless it exists (another
// run may have created it since it was listed).
func (s *Service) ensure(ctx context.Context, table string, m time.Time) (string, bool, error) {
	name := Name(table, m)
	created := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		gone, err := missing(ctx, tx, name)
		if err != nil || !gone {
			return err
		}
		created = true
		_, err = tx.ExecContext(ctx, `SELECT month_partition($1, $2::date)`, table, m.Format(time.DateOnly))
		return err
	})
	if err != nil {
		return name, false, fmt.Errorf("create partition %s: %w", name, err)
	}
	return name, created, nil
}

// partition is a month partition of a table.
type partition struct {
	name  string
	month time.Time
}

// namePattern matches the partitions Maintain and migration 00025 create.
var namePattern = regexp.MustCompile(`_p(\d{4})(\d{2})$`)

// months lists table's month partitions, oldest first.
func (s *Service) months(ctx context.Context, table string) ([]partition, error) {
	rows, err := s.st.SQL.QueryContext(ctx, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = $1::regclass ORDER BY c.relname`, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	defer rows.Close()
	var out []partition
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("list partitions of %s: %w", table, err)
		}
		if m, ok := monthOf(table, name); ok {
			out = append(out, partition{name: name, month: m})
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	return out, nil
}

// waiting returns the months of the rows in table's default partition.
func (s *Service) waiting(ctx context.Context, table string) ([]time.Time, error) {
	var col, typ string
	err := s.st.SQL.QueryRowContext(ctx, `SELECT a.attname, format_type(a.atttypid, NULL)
		FROM pg_partitioned_table p JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
		WHERE p.partrelid = $1::regclass`, table).Scan(&col, &typ)
	if err != nil {
		return nil, fmt.Errorf("partition key of %s: %w", table, err)
	}
	month := `date_trunc('month', ` + ident(col) + ` AT TIME ZONE 'UTC')::date`
	if typ == "integer" {
		month = `to_date(` + ident(col) + `::text, 'YYYYMM')`
	}
	rows, err := s.st.SQL.QueryContext(ctx, `SELECT DISTINCT `+month+` FROM `+ident(table+"_default"))
	if err != nil {
		return nil, fmt.Errorf("months waiting in %s_default: %w", table, err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var m time.Time
		if err := rows.Scan(&m); err != nil {
			return nil, fmt.Errorf("months waiting in %s_default: %w", table, err)
		}
		out = append(out, time.Date(m.Year(), m.Month(), 1, 0, 0, 0, 0, time.UTC))
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("months waiting in %s_default: %w", table, err)
	}
	return out, nil
}

// drop detaches and drops p, after the same month of t.With, when none of
// its rows is live, and returns the partitions it dropped; when a row is
// live it changes nothing and reports p kept. It looks before it locks, so
// a month that is kept costs no lock; then it locks the parents (as DETACH
// would, in the order statements take them) and looks again, so no row can
// turn live between the check and the drop.
func (s *Service) drop(ctx context.Context, t Table, p partition) (dropped []string, kept bool, err error) {
	live, err := s.live(ctx, s.st.SQL, t, p)
	if err != nil || live {
		return nil, live, err
	}
	gone := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		dropped = nil
		for _, parent := range append([]string{t.Name}, t.With...) {
			if _, err := tx.ExecContext(ctx, `LOCK TABLE `+ident(parent)+` IN ACCESS EXCLUSIVE MODE`); err != nil {
				return err
			}
		}
		if live, err = s.live(ctx, tx, t, p); err != nil || live {
			return err
		}
		if gone, err = missing(ctx, tx, p.name); err != nil || gone {
			return err // another run dropped it meanwhile
		}
		for _, w := range t.With {
			name := Name(w, p.month)
			absent, err := missing(ctx, tx, name)
			if err != nil {
				return err
			}
			if !absent {
				if err := detachDrop(ctx, tx, w, name); err != nil {
					return err
				}
				dropped = append(dropped, name)
			}
		}
		if err := detachDrop(ctx, tx, t.Name, p.name); err != nil {
			return err
		}
		dropped = append(dropped, p.name)
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("drop partition %s: %w", p.name, err)
	}
	return dropped, live, nil
}

// querier is a *sql.DB or a *sql.Tx.
type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// missing reports whether table name does not exist.
func missing(ctx context.Context, q querier, name string) (bool, error) {
	var gone bool
	if err := q.QueryRowContext(ctx, `SELECT to_regclass($1) IS NULL`, ident(name)).Scan(&gone); err != nil {
		return false, fmt.Errorf("look up %s: %w", name, err)
	}
	return gone, nil
}

// live reports whether partition p of t holds a live row (false when
// another run dropped it since it was listed).
func (s *Service) live(ctx context.Context, q querier, t Table, p partition) (bool, error) {
	if gone, err := missing(ctx, q, p.name); err != nil || gone {
		return false, err
	}
	var live bool
	err := q.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+ident(p.name)+` WHERE `+t.Live+`)`).Scan(&live)
	if store.PgCode(err) == "42P01" { // undefined_table: dropped since the look-up
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for live rows in %s: %w", p.name, err)
	}
	return live, nil
}

func detachDrop(ctx context.Context, tx *sql.Tx, parent, part string) error {
	if _, err := tx.ExecContext(ctx, `ALTER TABLE `+ident(parent)+` DETACH PARTITION `+ident(part)); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DROP TABLE `+ident(part))
	return err
}

// inTx runs fn in a transaction holding the run's advisory lock, with the
// lock timeout set.
func (s *Service) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.st.SQL.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtext($1)), set_config('lock_timeout', $2, true)`,
		lockKey, strconv.FormatInt(s.opts.LockTimeout.Milliseconds(), 10)); err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Name is the partition of table for the month of m.
func Name(table string, m time.Time) string {
	return fmt.Sprintf("%s_p%04d%02d", table, m.Year(), int(m.Month()))
}

// monthOf parses a partition name of table made by Name.
func monthOf(table, name string) (time.Time, bool) {
	if len(name) != len(table)+8 || name[:len(table)] != table {
		return time.Time{}, false
	}
	g := namePattern.FindStringSubmatch(name)
	if g == nil {
		return time.Time{}, false
	}
	y, _ := strconv.Atoi(g[1])
	mo, _ := strconv.Atoi(g[2])
	if mo < 1 || mo > 12 {
		return time.Time{}, false
	}
	return time.Date(y, time.Month(mo), 1, 0, 0, 0, 0, time.UTC), true
}

// ident quotes an SQL identifier.
func ident(s string) string { return pgx.Identifier{s}.Sanitize() }
