package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestIsUnavailable(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("list accounts: %w", err) }
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"refused", wrap(syscall.ECONNREFUSED), true},
		{"reset", wrap(syscall.ECONNRESET), true},
		{"eof", wrap(io.ErrUnexpectedEOF), true},
		{"bad conn", wrap(driver.ErrBadConn), true},
		{"deadline", wrap(context.DeadlineExceeded), true},
		{"admin shutdown", wrap(&pgconn.PgError{Code: "57P01"}), true},
		{"cannot connect now", wrap(&pgconn.PgError{Code: "57P03"}), true},
		{"connection failure", wrap(&pgconn.PgError{Code: "08006"}), true},
		{"too many connections", wrap(&pgconn.PgError{Code: "53300"}), true},
		{"statement timeout", wrap(&pgconn.PgError{Code: "57014"}), true},
		{"read-only after a failover", wrap(&pgconn.PgError{Code: "25006"}), true},
		{"unique violation", wrap(&pgconn.PgError{Code: "23505"}), false},
		{"check violation", wrap(&pgconn.PgError{Code: "23514"}), false},
		{"cancelled by the caller", wrap(context.Canceled), false},
		{"a plain error", errors.New("no such template"), false},
	} {
		if got := IsUnavailable(c.err); got != c.want {
			t.Errorf("%s: IsUnavailable(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
