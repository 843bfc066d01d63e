package main

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"partnerd/guard"
	"partnerd/models"
	"partnerd/store"
)

// Fixtures of the guard scenarios (issue 6), written with SQL: creating
// 100,000 accounts through accounts.Service.Create would take longer than
// the measurements. The database's own triggers still derive each
// account's path and depth and create its credit_balances and
// purchase_guards rows; what the services would also write (audit entries,
// credit ledger rows, outbox events, the expenditure records behind a
// running total) is left out, and the purchase guard rows are brought up to
// date with guard.Sync, as the product's transactions do.

// syncChunk is how many purchase guard rows one transaction of the fixture
// brings up to date.
const syncChunk = 5000

// sqlTree is a tree inserted with SQL: the ids of each level.
type sqlTree struct {
	Distributors []int64
	Resellers    []int64
	Customers    []int64
}

// insertTree inserts dists distributors under the platform, resellersPer
// resellers under each (none: the customers sit under the distributors)
// and customers customers spread round-robin over the lowest partners, all
// ACTIVE, named after prefix.
func (b *bench) insertTree(ctx context.Context, conn *pgx.Conn, prefix string, dists, resellersPer, customers int) (*sqlTree, error) {
	plat, err := b.accounts.Platform(b.platform)
	if err != nil {
		return nil, err
	}
	t := &sqlTree{}
	collect := func(rows pgx.Rows, err error) ([]int64, error) {
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	t.Distributors, err = collect(conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name)
		SELECT 'DISTRIBUTOR', $1, '', 0, $2 || ' Distributor ' || g FROM generate_series(1, $3::int) g ORDER BY g
		RETURNING id`, plat.ID, prefix, dists))
	if err != nil {
		return nil, fmt.Errorf("insert distributors: %w", err)
	}
	parents := t.Distributors
	if resellersPer > 0 {
		t.Resellers, err = collect(conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name)
			SELECT 'RESELLER', p.id, '', 0, $2 || ' Reseller ' || p.n || '.' || g
			FROM unnest($1::bigint[]) WITH ORDINALITY AS p(id, n), generate_series(1, $3::int) g ORDER BY p.n, g
			RETURNING id`, t.Distributors, prefix, resellersPer))
		if err != nil {
			return nil, fmt.Errorf("insert resellers: %w", err)
		}
		parents = t.Resellers
	}
	t.Customers, err = collect(conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name)
		SELECT 'CUSTOMER', ($1::bigint[])[1 + g % cardinality($1::bigint[])], '', 0, $2 || ' Customer ' || g
		FROM generate_series(0, $3::int - 1) g ORDER BY g
		RETURNING id`, parents, prefix, customers))
	if err != nil {
		return nil, fmt.Errorf("insert customers: %w", err)
	}
	return t, nil
}

// rollUpCredit makes each of parents' credit limit and allocated credit the
// sum of its children's limits, as allocations from a parent with nothing
// to spare would leave them. Call it level by level, from the bottom.
func rollUpCredit(ctx context.Context, conn *pgx.Conn, parents []int64) error {
	_, err := conn.Exec(ctx, `UPDATE credit_balances b SET credit_limit = s.total, allocated = s.total, updated_at = now()
		FROM (SELECT a.parent_id, sum(c.credit_limit) AS total FROM accounts a JOIN credit_balances c ON c.account_id = a.id
			WHERE a.parent_id = ANY($1::bigint[]) GROUP BY a.parent_id) s
		WHERE b.account_id = s.parent_id`, parents)
	if err != nil {
		return fmt.Errorf("roll up credit: %w", err)
	}
	return nil
}

// syncGuards brings the purchase guard rows of ids up to date with
// guard.Sync, syncChunk rows a transaction.
func (b *bench) syncGuards(ctx context.Context, label string, ids []int64) error {
	prog := b.progress(label, int64(len(ids)), "guard rows", nil)
	defer prog.finish()
	for i := 0; i < len(ids); i += syncChunk {
		chunk := ids[i:min(i+syncChunk, len(ids))]
		if err := b.st.InTx(ctx, func(tx *store.Tx) error { return guard.Sync(tx, b.loc, chunk...) }); err != nil {
			return err
		}
		prog.add(int64(len(chunk)))
	}
	return nil
}

// currentMonth is the Beijing-time month of now, as YYYYMM.
func (b *bench) currentMonth() int { return models.MonthOf(b.st.Now(), b.loc).Key() }

// guardMix are the states of the authorize scenario's customers, by
// id % 100 (ranges of that bucket, inclusive); the SQL of
// applyAuthorizeMix spells out the same table.
var guardMix = []string{
	"60% ACTIVE, credit 50,000, MONTHLY budget 10,000 (FREEZE_ACCOUNT), spent 0–7,900 this month",
	"10% ACTIVE, same credit and budget, spent 9,500–9,990 (close to the budget)",
	"8% ACTIVE, budget 10,000 with overspend action NONE, exceeded (spent 10,000–12,000)",
	"7% ACTIVE without a budget, credit 50,000, spent 0–5,000",
	"5% ACTIVE with a budget but only 200 of credit, nothing spent",
	"3% FROZEN (OVERSPEND), budget 10,000 exceeded",
	"2% FROZEN (MANUAL), budget, spent 0–5,000",
	"2% FROZEN (NEW_CUSTOMER), no budget, no credit",
	"2% FROZEN (ARREARS): credit 1,000, consumed 1,500 (list 2,000), no exemption",
	"1% ACTIVE in arrears with a postpaid exemption: credit 1,000, consumed 1,200 (list 1,500)",
}

// applyAuthorizeMix puts the customers ids in the states of guardMix:
// status, credit, budget and this month's running totals.
func (b *bench) applyAuthorizeMix(ctx context.Context, conn *pgx.Conn, ids []int64) error {
	now := b.st.Now()
	month := b.currentMonth()
	frozenAt := now.Add(-72 * time.Hour)
	steps := []struct {
		what string
		sql  string
		args []any
	}{
		{"statuses", `UPDATE accounts a SET status = 'FROZEN', frozen_at = $2, updated_at = $2,
			frozen_reason = CASE WHEN a.id % 100 < 93 THEN 'OVERSPEND' WHEN a.id % 100 < 95 THEN 'MANUAL'
				WHEN a.id % 100 < 97 THEN 'NEW_CUSTOMER' ELSE 'ARREARS' END
			WHERE a.id = ANY($1::bigint[]) AND a.id % 100 BETWEEN 90 AND 98`, []any{ids, frozenAt}},
		{"credit", `UPDATE credit_balances b SET updated_at = $2,
			credit_limit = CASE WHEN k BETWEEN 85 AND 89 THEN 200 WHEN k BETWEEN 95 AND 96 THEN 0 WHEN k >= 97 THEN 1000 ELSE 50000 END,
			in_arrears = k >= 97, exempt_postpaid = k = 99
			FROM (SELECT id, id % 100 AS k FROM unnest($1::bigint[]) AS id) c WHERE b.account_id = c.id`, []any{ids, now}},
		{"budgets", `INSERT INTO budgets (customer_id, type, amount, thresholds, overspend_action, started_at, start_month, created_at, updated_at)
			SELECT id, 'MONTHLY', 10000, '{50,80,100}', CASE WHEN k BETWEEN 70 AND 77 THEN 'NONE' ELSE 'FREEZE_ACCOUNT' END, $2, $3, $2, $2
			FROM (SELECT id, id % 100 AS k FROM unnest($1::bigint[]) AS id) c
			WHERE NOT (k BETWEEN 78 AND 84 OR k BETWEEN 95 AND 96)`, []any{ids, now.Add(-30 * 24 * time.Hour), month}},
		{"spend", `INSERT INTO spend_totals (customer_id, month, list_total, actual_total, prepaid_list, records, last_received_at)
			SELECT id, $2, l, round(l * r, 2), round(l * 0.3, 2), 1 + (l / 100)::bigint, $3 FROM (
				SELECT id, CASE
					WHEN k < 60 THEN id * 7919 % 7901
					WHEN k < 70 THEN 9500 + id * 7919 % 491
					WHEN k < 78 THEN 10000 + id * 7919 % 2001
					WHEN k < 85 THEN id * 7919 % 5001
					WHEN k < 90 THEN 0
					WHEN k < 93 THEN 10000 + id * 7919 % 1001
					WHEN k < 95 THEN id * 7919 % 5001
					WHEN k < 97 THEN 0
					WHEN k < 99 THEN 2000
					ELSE 1500 END::numeric AS l,
				CASE WHEN k BETWEEN 97 AND 98 THEN 0.75 ELSE 0.8 END AS r
				FROM (SELECT id, id % 100 AS k FROM unnest($1::bigint[]) AS id) c) s
			WHERE l > 0`, []any{ids, month, now}},
	}
	for _, s := range steps {
		if _, err := conn.Exec(ctx, s.sql, s.args...); err != nil {
			return fmt.Errorf("fixture %s: %w", s.what, err)
		}
	}
	return nil
}
