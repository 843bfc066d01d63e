package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"gorm.io/gorm"
)

// Copier bulk-loads rows with PostgreSQL COPY inside the transaction of
// InCopyTx: it runs on the same connection, so what it loads commits or rolls
// back with the rest of the change.
type Copier struct {
	conn *sql.Conn
}

// CopyFrom streams the rows of src into table with COPY ... FROM STDIN
// (binary). src is pulled one row at a time, so memory does not grow with the
// number of rows; pgx calls it from a goroutine of its own, and CopyFrom
// returns only once that goroutine is done with it.
func (c *Copier) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	var n int64
	err := c.conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("copy into %s: the driver connection is a %T, not pgx", table.Sanitize(), dc)
		}
		var err error
		n, err = sc.Conn().CopyFrom(ctx, table, columns, src)
		return err
	})
	return n, err
}

// InCopyTx runs fn in one transaction on a pooled connection of its own and
// commits if fn returns nil. The Tx is bound to that transaction (Audit, Emit
// and every gorm statement through tx.DB run in it) and the Copier loads rows
// with COPY on the same connection, in the same transaction.
//
// Unlike InTx it never retries: what a Copier streams (an HTTP body, say)
// cannot be replayed. A serialization failure or deadlock is returned as is
// (IsRetryable tells), and the caller decides whether its input can be sent
// again. Do not use tx.DB while a CopyFrom is running.
func (s *Store) InCopyTx(ctx context.Context, fn func(tx *Tx, cp *Copier) error) (err error) {
	conn, err := s.SQL.Conn(ctx)
	if err != nil {
		return fmt.Errorf("copy transaction: connection: %w", err)
	}
	defer func() {
		if cerr := conn.Close(); cerr != nil && !errors.Is(cerr, sql.ErrConnDone) && err == nil {
			err = fmt.Errorf("copy transaction: release connection: %w", cerr)
		}
	}()
	sqlTx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("copy transaction: begin: %w", err)
	}
	gdb := s.DB.Session(&gorm.Session{Context: ctx, NewDB: true})
	gdb.Statement.ConnPool = sqlTx
	tx := &Tx{DB: gdb, ctx: ctx, store: s}

	committed := false
	defer func() {
		if !committed { // fn failed or panicked
			_ = sqlTx.Rollback()
		}
	}()
	if err := fn(tx, &Copier{conn: conn}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("copy transaction: commit: %w", err)
	}
	committed = true
	return nil
}
