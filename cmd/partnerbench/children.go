package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
)

// The children scenario (issue 10): a deep keyset page of a reseller's
// children, children(first: 20, after: <the 50th child's cursor>), on
// trees of 10k, 100k and 1M accounts generated from the seed, against its
// floor: pgbench running the SQL partnerd runs for that page. Target: ours
// at least 25% of pgbench's rate, and flat across the three sizes. It also
// measures the floor of the point scenario: pgbench running the point
// select partnerd runs for account(id), on the largest tree.
//
// The trees grow side by side in one table: 1 distributor × 100 resellers ×
// 100 customers (10,101 accounts), then 9 more distributors (101,010), then
// 90 more (1,010,100), each step written with set-based SQL (INSERT ...
// SELECT generate_series, the triggers deriving paths and creating the
// credit and guard rows) and followed by VACUUM (ANALYZE) accounts. Every
// reseller has 100 customers, so the page read is the same at every size
// and only the table grows. The tree is deleted at the end so the
// scenarios after this one run on the table they would have had without it.

const (
	// childrenFanout is the resellers per distributor and the customers
	// per reseller.
	childrenFanout = 100
	// childrenPerDistributor is the accounts under and including one
	// distributor.
	childrenPerDistributor = 1 + childrenFanout + childrenFanout*childrenFanout
	// childrenFirst is the page size asked for.
	childrenFirst = 20
	// childrenAfterPos is the position (1-based, by id) of the child whose
	// cursor the page starts after: a page deep in the list, not its head.
	childrenAfterPos = 50
	// childrenTarget is issue 10's target: ours ≥ 25% of pgbench's rate.
	childrenTarget = 25.0
	// childrenFlat is the definition of flat used: ours at the largest
	// size ≥ 80% of ours at 10k.
	childrenFlat = 80.0
	// childrenMaxRuns bounds the CASE arms of a pgbench script's id choice.
	childrenMaxRuns = 200
)

// childrenQuery is the deep page, with the fields the check reads.
const childrenQuery = `query($id: ID!, $after: String){ account(id: $id) {
  children(first: 20, after: $after) { edges { cursor node { id name } } pageInfo { endCursor hasNextPage } }
} }`

// childrenPointQuery is the point scenario's query (point.go's pointQuery,
// copied so that this scenario does not depend on that file): its SQL is
// the point floor's.
const childrenPointQuery = `query($id: ID!){ account(id: $id) { id name kind status tier } }`

// childrenSizes are the tree sizes measured, in accounts (about).
func (b *bench) childrenSizes() []int {
	if b.o.quick {
		return []int{10_000}
	}
	return []int{10_000, 100_000, 1_000_000}
}

// bigTree is the generated tree: distributors under the platform, each with
// childrenFanout second-level resellers, each with childrenFanout
// customers.
type bigTree struct {
	// Distributors are the distributors' ids, in creation order.
	Distributors []int64
	// Resellers are the second-level resellers' ids, ascending.
	Resellers []int64
	// After[i] is the id of Resellers[i]'s childrenAfterPos-th child (by
	// id): the page starts after it. First[i] is the next child's, the
	// first node of the page.
	After, First []int64
	// All is every account of the tree, ascending.
	All []int64
	// loads are the loading steps, one per size.
	loads []treeLoad
}

// treeLoad is one loading step of a bigTree.
type treeLoad struct {
	accounts      int // accounts added
	insert, total time.Duration
	vacuum        time.Duration
}

// childrenName is the SQL expression of the name of an account: two words
// chosen by hashing key (a bigint SQL expression unique within a level)
// with the seed ($2), the kind's word and a label (a text SQL expression).
// $1 is the words array.
func childrenName(key string, level int, kind, label string) string {
	w := func(i int) string {
		return fmt.Sprintf("($1::text[])[1 + (hashint8((%s) * 8 + %d + $2::bigint) & 65535) %% cardinality($1::text[])]", key, level*2+i)
	}
	return w(0) + " || ' ' || " + w(1) + " || ' " + kind + " ' || " + label
}

// loadTree grows t (nil: a new tree) to the first size/10,000 distributors
// (at least one), each with childrenFanout resellers of childrenFanout
// customers, writing the new accounts with set-based SQL (the triggers
// derive path and depth and create the credit and purchase guard rows),
// then runs VACUUM (ANALYZE) accounts. The names follow from seed.
func (b *bench) loadTree(ctx context.Context, t *bigTree, size int, seed uint64) (*bigTree, error) {
	if t == nil {
		t = &bigTree{}
	}
	want := max(1, size/10_000)
	from := len(t.Distributors) + 1
	if want < from {
		return t, nil
	}
	plat, err := b.accounts.Platform(b.platform)
	if err != nil {
		return t, err
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return t, fmt.Errorf("connect for the tree: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	adding := (want - from + 1) * childrenPerDistributor
	b.logf("children: inserting distributors %d to %d (%s accounts) with SQL", from, want, thousands(adding))
	prog := b.progress(fmt.Sprintf("children: tree of %s", thousands(want*childrenPerDistributor)), 3, "levels", nil)
	t0 := time.Now()
	salt := int64(splitmix(seed) >> 9) // room for key*8 in a bigint
	collect := func(rows pgx.Rows, err error) ([]int64, error) {
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[int64])
	}

	dists, err := collect(conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name)
		SELECT 'DISTRIBUTOR', $3, '', 0, `+childrenName("d::bigint", 0, "Distribution", "d")+`
		FROM generate_series($4::int, $5::int) d ORDER BY d
		RETURNING id`, words, salt, plat.ID, from, want))
	if err != nil {
		prog.finish()
		return t, fmt.Errorf("insert distributors: %w", err)
	}
	slices.Sort(dists)
	prog.set(1)
	dOrd := make([]int32, len(dists))
	for i := range dists {
		dOrd[i] = int32(from + i)
	}
	type child struct{ ID, Parent int64 }
	rows, err := conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name)
		SELECT 'RESELLER', p.id, '', 0, `+childrenName("p.d::bigint * 1000 + r", 1, "Solutions", "p.d || '.' || r")+`
		FROM unnest($3::bigint[], $4::int[]) AS p(id, d), generate_series(1, $5::int) r ORDER BY p.d, r
		RETURNING id, parent_id`, words, salt, dists, dOrd, childrenFanout)
	var rs []child
	if err == nil {
		rs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[child])
	}
	if err != nil {
		prog.finish()
		return t, fmt.Errorf("insert resellers: %w", err)
	}
	slices.SortFunc(rs, func(a, b child) int { return cmp.Compare(a.ID, b.ID) })
	prog.set(2)
	// Each reseller's ordinal under its distributor, for the customers' names.
	resellers := make([]int64, len(rs))
	rDist, rOrd := make([]int32, len(rs)), make([]int32, len(rs))
	ordOf := map[int64]int32{}
	seen := map[int64]int32{}
	for i, d := range dists {
		ordOf[d] = dOrd[i]
	}
	for i, r := range rs {
		seen[r.Parent]++
		resellers[i], rDist[i], rOrd[i] = r.ID, ordOf[r.Parent], seen[r.Parent]
	}
	customers, err := collect(conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name)
		SELECT 'CUSTOMER', p.id, '', 0, `+childrenName("(p.d::bigint * 1000 + p.r) * 1000 + k", 2, "Customer", "p.d || '.' || p.r || '.' || k")+`
		FROM unnest($3::bigint[], $4::int[], $5::int[]) AS p(id, d, r), generate_series(1, $6::int) k ORDER BY p.d, p.r, k
		RETURNING id`, words, salt, resellers, rDist, rOrd, childrenFanout))
	if err != nil {
		prog.finish()
		return t, fmt.Errorf("insert customers: %w", err)
	}
	prog.set(3)
	prog.finish()
	insertTook := time.Since(t0)

	// The page of every reseller: its children by id, as the keyset reads them.
	type pageRef struct {
		ID, N, After, First int64
	}
	rows, err = conn.Query(ctx, `SELECT p.id,
			(SELECT count(*) FROM accounts c WHERE c.parent_id = p.id),
			coalesce((SELECT c.id FROM accounts c WHERE c.parent_id = p.id ORDER BY c.id OFFSET $2 - 1 LIMIT 1), 0),
			coalesce((SELECT c.id FROM accounts c WHERE c.parent_id = p.id ORDER BY c.id OFFSET $2 LIMIT 1), 0)
		FROM unnest($1::bigint[]) AS p(id) ORDER BY p.id`, resellers, childrenAfterPos)
	var refs []pageRef
	if err == nil {
		refs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[pageRef])
	}
	if err != nil {
		return t, fmt.Errorf("read the resellers' pages: %w", err)
	}
	for _, r := range refs {
		if r.N != childrenFanout || r.After == 0 || r.First == 0 {
			return t, fmt.Errorf("reseller %d has %d children, want %d", r.ID, r.N, childrenFanout)
		}
		t.Resellers = append(t.Resellers, r.ID)
		t.After = append(t.After, r.After)
		t.First = append(t.First, r.First)
	}
	t.Distributors = append(t.Distributors, dists...)
	t.All = append(t.All, dists...)
	t.All = append(t.All, resellers...)
	t.All = append(t.All, customers...)
	slices.Sort(t.All)
	if len(customers) != len(resellers)*childrenFanout {
		return t, fmt.Errorf("inserted %d customers, want %d", len(customers), len(resellers)*childrenFanout)
	}

	t1 := time.Now()
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) accounts`); err != nil {
		return t, fmt.Errorf("vacuum analyze accounts: %w", err)
	}
	l := treeLoad{accounts: len(dists) + len(resellers) + len(customers), insert: insertTook, vacuum: time.Since(t1), total: time.Since(t0)}
	t.loads = append(t.loads, l)
	b.logf("children: tree of %s accounts ready: %s accounts inserted in %s (%s accounts/s with the triggers), VACUUM (ANALYZE) accounts %s, %s in all",
		thousands(len(t.All)), thousands(l.accounts), l.insert.Round(100*time.Millisecond), num(float64(l.accounts)/l.insert.Seconds()),
		l.vacuum.Round(100*time.Millisecond), l.total.Round(100*time.Millisecond))
	return t, nil
}

// dropBigTree deletes the tree's accounts and the rows their insert
// triggers created (credit_balances, purchase_guards), then vacuums the
// three tables. It deletes with session_replication_role = replica (no
// foreign key checks: the accounts were only read, and it first checks
// that no other row references them), which needs a superuser; without
// one, or when something references the tree, it leaves the tree and says
// so.
func (b *bench) dropBigTree(ctx context.Context, t *bigTree) (string, error) {
	if t == nil || len(t.All) == 0 {
		return "", nil
	}
	ctx = context.WithoutCancel(ctx)
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	t0 := time.Now()
	if ref, err := referencedTree(ctx, conn, t.All); err != nil || ref != "" {
		if err != nil {
			return "", fmt.Errorf("look for rows referencing the tree: %w", err)
		}
		return fmt.Sprintf("The tree's %s accounts were left in the database, for the scenarios after this one too: %s references some of them.", thousands(len(t.All)), ref), nil
	}
	if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
		return fmt.Sprintf("The tree's %s accounts were left in the database, for the scenarios after this one too (deleting them with the foreign key checks of every table that references accounts is too slow, and skipping the checks needs a superuser: %v).", thousands(len(t.All)), err), nil
	}
	for _, q := range []string{
		`DELETE FROM purchase_guards g USING unnest($1::bigint[]) x(id) WHERE g.customer_id = x.id`,
		`DELETE FROM credit_balances c USING unnest($1::bigint[]) x(id) WHERE c.account_id = x.id`,
		`DELETE FROM accounts a USING unnest($1::bigint[]) x(id) WHERE a.id = x.id`,
	} {
		if _, err := conn.Exec(ctx, q, t.All); err != nil {
			return "", fmt.Errorf("delete the tree: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, `RESET session_replication_role`); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) accounts, credit_balances, purchase_guards`); err != nil {
		return "", fmt.Errorf("vacuum after deleting the tree: %w", err)
	}
	took := time.Since(t0)
	b.logf("children: tree of %s accounts deleted in %s", thousands(len(t.All)), took.Round(100*time.Millisecond))
	return fmt.Sprintf("Afterwards the tree's %s accounts and their credit and guard rows were deleted (in %s, foreign key checks off after checking that no other row references them) and the tables vacuumed, so the scenarios after this one see the table they would have had without it.",
		thousands(len(t.All)), took.Round(100*time.Millisecond)), nil
}

// referencedTree returns the first "table.column" holding a foreign key to
// one of ids, other than the rows the accounts' insert triggers create
// (credit_balances, purchase_guards) and the tree's own parent_id, or "".
func referencedTree(ctx context.Context, conn *pgx.Conn, ids []int64) (string, error) {
	rows, err := conn.Query(ctx, `SELECT c.conrelid::regclass::text, a.attname
		FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		WHERE c.contype = 'f' AND c.confrelid = 'accounts'::regclass AND cardinality(c.conkey) = 1
		ORDER BY 1, 2`)
	if err != nil {
		return "", err
	}
	type fk struct{ Table, Column string }
	fks, err := pgx.CollectRows(rows, pgx.RowToStructByPos[fk])
	if err != nil {
		return "", err
	}
	runs := idRuns(ids)
	for _, f := range fks {
		switch f.Table + "." + f.Column {
		case "accounts.parent_id", "credit_balances.account_id", "purchase_guards.customer_id":
			continue
		}
		col := pgx.Identifier{f.Column}.Sanitize()
		for _, r := range runs {
			var found bool
			var err error
			if r.step[0] == 1 || r.n == 1 {
				err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+f.Table+` WHERE `+col+` BETWEEN $1 AND $2)`,
					r.first[0], r.first[0]+int64(r.n-1)).Scan(&found)
			} else {
				err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+f.Table+` WHERE `+col+` = ANY($1::bigint[]))`, ids).Scan(&found)
			}
			if err != nil {
				return "", err
			}
			if found {
				return f.Table + "." + f.Column, nil
			}
		}
	}
	return "", nil
}

// capturedStmt is one statement partnerd ran through gorm: its SQL with
// $n placeholders and its arguments.
type capturedStmt struct {
	SQL  string
	Vars []any
}

// captureSQL sends body twice as the platform admin and returns the
// statements partnerd ran for the second request (the first one refreshes
// the token cache, so the second is a steady-state request), caught by
// gorm callbacks registered on the server's store for that request only.
// The server must be otherwise idle.
func (b *bench) captureSQL(ctx context.Context, body []byte) ([]capturedStmt, []byte, error) {
	hc := newClient(1, 30*time.Second)
	defer hc.CloseIdleConnections()
	if _, err := b.graphql(ctx, hc, body); err != nil {
		return nil, nil, err
	}
	var (
		mu  sync.Mutex
		got []capturedStmt
	)
	capture := func(db *gorm.DB) {
		mu.Lock()
		got = append(got, capturedStmt{SQL: db.Statement.SQL.String(), Vars: slices.Clone(db.Statement.Vars)})
		mu.Unlock()
	}
	const name = "partnerbench:capture"
	cb := b.st.DB.Callback()
	procs := []interface {
		Remove(string) error
	}{cb.Query(), cb.Row(), cb.Raw(), cb.Create(), cb.Update(), cb.Delete()}
	err := errors.Join(
		cb.Query().After("gorm:query").Register(name, capture),
		cb.Row().After("gorm:row").Register(name, capture),
		cb.Raw().After("gorm:raw").Register(name, capture),
		cb.Create().After("gorm:create").Register(name, capture),
		cb.Update().After("gorm:update").Register(name, capture),
		cb.Delete().After("gorm:delete").Register(name, capture),
	)
	var out []byte
	if err == nil {
		out, err = b.graphql(ctx, hc, body)
	}
	for _, p := range procs {
		_ = p.Remove(name)
	}
	if err != nil {
		return nil, out, err
	}
	mu.Lock()
	defer mu.Unlock()
	return got, out, nil
}

// placeholder is a $n parameter of a statement.
var placeholder = regexp.MustCompile(`\$([0-9]+)`)

// pgbenchSQL turns a captured statement into a pgbench script command:
// whitespace collapsed, each $n replaced by subst[the n-th argument's
// value, printed with %v], a semicolon at the end. An argument with no
// replacement is an error: the floor would not be the statement partnerd
// runs.
func pgbenchSQL(s capturedStmt, subst map[string]string) (string, error) {
	var bad error
	q := placeholder.ReplaceAllStringFunc(oneLine(s.SQL), func(m string) string {
		n, _ := strconv.Atoi(m[1:])
		if n < 1 || n > len(s.Vars) {
			bad = fmt.Errorf("%s has no argument in %q", m, oneLine(s.SQL))
			return m
		}
		v := fmt.Sprint(s.Vars[n-1])
		r, ok := subst[v]
		if !ok {
			bad = fmt.Errorf("argument %s = %q of %q is none of the floor's variables", m, v, oneLine(s.SQL))
			return m
		}
		return r
	})
	return q + ";", bad
}

// withArgs is s with each $n written as its argument's value (numbers and
// array literals only), for a note.
func (s capturedStmt) withArgs() string {
	return placeholder.ReplaceAllStringFunc(oneLine(s.SQL), func(m string) string {
		n, _ := strconv.Atoi(m[1:])
		if n < 1 || n > len(s.Vars) {
			return m
		}
		switch v := s.Vars[n-1].(type) {
		case string:
			return "'" + strings.ReplaceAll(v, "'", "''") + "'"
		default:
			return fmt.Sprint(v)
		}
	})
}

// pgbenchVar matches a pgbench :variable (not a :: cast).
var pgbenchVar = regexp.MustCompile(`(^|[^:]):([a-z_]+)`)

// checkFloorSQL runs a floor's SQL once on conn with its variables written
// in as numbers and returns how many rows it gave and the first column of
// the first row.
func checkFloorSQL(ctx context.Context, conn *pgx.Conn, q string, vals map[string]int64) (int, int64, error) {
	lit := literalSQL(q, vals)
	rows, err := conn.Query(ctx, lit, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", lit, err)
	}
	defer rows.Close()
	n, first := 0, int64(0)
	for rows.Next() {
		if n == 0 {
			vals, err := rows.Values()
			if err != nil {
				return 0, 0, err
			}
			if id, ok := vals[0].(int64); ok {
				first = id
			}
		}
		n++
	}
	return n, first, rows.Err()
}

// literalSQL is a floor's SQL with its variables written in as numbers.
func literalSQL(q string, vals map[string]int64) string {
	return pgbenchVar.ReplaceAllStringFunc(strings.TrimSuffix(q, ";"), func(m string) string {
		sub := pgbenchVar.FindStringSubmatch(m)
		if v, ok := vals[sub[2]]; ok {
			return sub[1] + strconv.FormatInt(v, 10)
		}
		return m
	})
}

// pagePlan is what EXPLAIN (ANALYZE, BUFFERS) says of one execution of the
// page SQL.
type pagePlan struct {
	shape        string
	planMs       float64
	execMs       float64
	hit, read    int64
	ok           bool
	explainError string
}

// explainBuffers reads a plan node's shared buffers.
var explainBuffers = regexp.MustCompile(`Buffers: shared(?: hit=([0-9]+))?(?: read=([0-9]+))?`)

// explainPage runs EXPLAIN (ANALYZE, BUFFERS) of the floor's SQL q with
// vals written in (a custom plan, as the first executions of a prepared
// statement get).
func explainPage(ctx context.Context, conn *pgx.Conn, q string, vals map[string]int64) pagePlan {
	rows, err := conn.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+literalSQL(q, vals), pgx.QueryExecModeSimpleProtocol)
	var lines []string
	if err == nil {
		lines, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return pagePlan{explainError: err.Error()}
	}
	p := pagePlan{ok: true}
	var nodes []string
	seenBuffers := false
	for _, l := range lines {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->"))
		if name, _, ok := strings.Cut(l, "  (cost="); ok {
			nodes = append(nodes, strings.TrimSpace(name))
		}
		if v, ok := strings.CutPrefix(l, "Planning Time: "); ok {
			p.planMs, _ = strconv.ParseFloat(strings.TrimSuffix(v, " ms"), 64)
		}
		if v, ok := strings.CutPrefix(l, "Execution Time: "); ok {
			p.execMs, _ = strconv.ParseFloat(strings.TrimSuffix(v, " ms"), 64)
		}
		// The first Buffers line is the top node's: the whole execution's.
		if m := explainBuffers.FindStringSubmatch(l); m != nil && !seenBuffers {
			seenBuffers = true
			p.hit, _ = strconv.ParseInt(m[1], 10, 64)
			p.read, _ = strconv.ParseInt(m[2], 10, 64)
		}
	}
	p.shape = strings.Join(nodes, " → ")
	return p
}

// pickScript is the head of a pgbench script choosing row :j of cols at
// random and setting the variable names[c] to its column c.
func pickScript(names []string, cols ...[]int64) (string, error) {
	runs := idRuns(cols...)
	if len(runs) > childrenMaxRuns {
		return "", fmt.Errorf("the ids fall into %d arithmetic runs, more than the %d a pgbench script picks from", len(runs), childrenMaxRuns)
	}
	// Check the runs give back every row.
	k := 0
	for _, r := range runs {
		for i := 0; i < r.n; i++ {
			for c := range cols {
				if r.first[c]+int64(i)*r.step[c] != cols[c][k] {
					return "", fmt.Errorf("the runs of ids do not give row %d back", k)
				}
			}
			k++
		}
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "\\set j random(0, %d)\n", len(cols[0])-1)
	for c, name := range names {
		fmt.Fprintf(&sb, "\\set %s %s\n", name, pgbenchCase("j", runs, c))
	}
	return sb.String(), nil
}

// childrenSize is what was measured at one tree size.
type childrenSize struct {
	accounts  int
	tableRows int64
	load      treeLoad
	ours      []runResult
	floor     []pgbenchResult
	ref       []pgbenchResult
	plan      pagePlan
}

func (b *bench) children(ctx context.Context) (sec *section, err error) {
	var t *bigTree
	defer func() {
		note, derr := b.dropBigTree(ctx, t)
		if derr != nil {
			b.logf("children: %v", derr)
			note = fmt.Sprintf("**Deleting the tree failed** (%v): the scenarios after this one ran with it in the table.", derr)
		}
		if sec != nil && note != "" {
			sec.notes = append(sec.notes, note)
		}
	}()
	_, pgbenchErr := pgbenchBinary()
	if pgbenchErr != nil {
		b.logf("children: %v: the floors are not measured", pgbenchErr)
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var (
		sizes                  []*childrenSize
		pageSQL, refSQL        string
		pointStmts             []capturedStmt
		pointSQL               string
		pointRuns              []pgbenchResult
		pointAccounts          int
		pageSQLNote, pointNote string
	)
	for si, size := range b.childrenSizes() {
		if t, err = b.loadTree(ctx, t, size, b.o.seed); err != nil {
			return nil, err
		}
		cs := &childrenSize{accounts: len(t.All), load: t.loads[len(t.loads)-1]}
		sizes = append(sizes, cs)
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM accounts`).Scan(&cs.tableRows); err != nil {
			return nil, err
		}
		label := thousands(cs.accounts)

		// Ours: the deep page of a random reseller of the tree.
		bodies := make([][]byte, len(t.Resellers))
		firstIDs := make([][]byte, len(t.Resellers))
		for i, r := range t.Resellers {
			bodies[i] = gqlBody(childrenQuery, map[string]any{"id": gid(r), "after": cursorOf(t.After[i])})
			firstIDs[i] = []byte(`"id":"` + gid(t.First[i]) + `"`)
		}
		check := func(i int) func([]byte) error {
			return func(out []byte) error {
				if n := bytes.Count(out, []byte(`"cursor":`)); n != childrenFirst {
					return fmt.Errorf("%d edges in the answer, want %d: %s", n, childrenFirst, clip(out))
				}
				if !bytes.Contains(out, []byte(`"hasNextPage":true`)) || !bytes.Contains(out, firstIDs[i]) {
					return fmt.Errorf("not the page after the %dth child: %s", childrenAfterPos, clip(out))
				}
				return nil
			}
		}

		// The SQL partnerd runs for the page, once (it does not depend on
		// the size), and the floors' scripts made from it.
		if si == 0 {
			r, a := t.Resellers[0], t.After[0]
			stmts, out, err := b.captureSQL(ctx, bodies[0])
			if err == nil {
				err = check(0)(out)
			}
			if err != nil {
				return nil, fmt.Errorf("the page query: %w", err)
			}
			subst, err := substitutions(
				store64Array(r), "ARRAY[:parent::bigint]",
				strconv.FormatInt(a, 10), ":after",
				strconv.Itoa(childrenFirst+1), ":lim",
				strconv.FormatInt(r, 10), ":parent",
				"1", ":one")
			if err != nil {
				return nil, err
			}
			// A statement whose arguments are not all the page's (none is
			// expected) is left out of the floors; the note lists them all.
			var page, get []string
			var unmapped []error
			for _, s := range stmts {
				q, err := pgbenchSQL(s, subst)
				switch {
				case err != nil:
					unmapped = append(unmapped, err)
				case strings.Contains(q, ":after"):
					page = append(page, q)
				case strings.Contains(q, ":parent"):
					get = append(get, q)
				}
			}
			if len(page) != 1 {
				return nil, fmt.Errorf("partnerd ran %d statements with the page's arguments, want 1: %v (%v)", len(page), stmtList(stmts), errors.Join(unmapped...))
			}
			pageSQL = page[0]
			refSQL = strings.Join(append(get, pageSQL), "\n")
			n, first, err := checkFloorSQL(ctx, conn, pageSQL, map[string]int64{"parent": r, "after": a, "lim": childrenFirst + 1})
			if err != nil {
				return nil, fmt.Errorf("the floor's SQL: %w", err)
			}
			if n != childrenFirst+1 || first != t.First[0] {
				return nil, fmt.Errorf("the floor's SQL gave %d rows starting at %d, want %d starting at %d", n, first, childrenFirst+1, t.First[0])
			}
			pageSQLNote = fmt.Sprintf("What partnerd ran for one request, as captured by gorm callbacks on its store (the token cache warm): %s.", stmtList(stmts))
		}

		runs, err := b.loadRuns(ctx, "children "+label, b.o.seed*31+uint64(20+si), func(ctx context.Context, c *client) {
			i := c.rng.IntN(len(bodies))
			c.do(ctx, bodies[i], check(i))
		})
		cs.ours = runs
		if err != nil {
			return nil, fmt.Errorf("tree of %s: %w", label, err)
		}

		// The page statement's plan at this size, on the middle reseller.
		mid := len(t.Resellers) / 2
		cs.plan = explainPage(ctx, conn, pageSQL, map[string]int64{"parent": t.Resellers[mid], "after": t.After[mid], "lim": childrenFirst + 1})

		if pgbenchErr == nil {
			head, err := pickScript([]string{"parent", "after"}, t.Resellers, t.After)
			if err != nil {
				return nil, err
			}
			vars := map[string]string{"lim": strconv.Itoa(childrenFirst + 1), "one": "1"}
			if cs.floor, err = b.pgbenchRuns(ctx, "children floor "+label, head+pageSQL+"\n", vars); err != nil {
				return nil, fmt.Errorf("tree of %s: floor: %w", label, err)
			}
			if !b.o.quick && refSQL != pageSQL {
				if cs.ref, err = b.pgbenchRuns(ctx, "children reference "+label, head+refSQL+"\n", vars); err != nil {
					return nil, fmt.Errorf("tree of %s: reference: %w", label, err)
				}
			}
		}
	}

	// The point scenario's floor, on the largest tree.
	if pgbenchErr == nil {
		id := t.All[len(t.All)/2]
		stmts, out, err := b.captureSQL(ctx, gqlBody(childrenPointQuery, map[string]any{"id": gid(id)}))
		if err == nil && !bytes.Contains(out, []byte(`"name":`)) {
			err = errors.New("no account in the answer: " + clip(out))
		}
		if err != nil {
			return nil, fmt.Errorf("the point query: %w", err)
		}
		pointStmts = stmts
		subst, err := substitutions(strconv.FormatInt(id, 10), ":id", "1", ":one")
		if err != nil {
			return nil, err
		}
		var sel []string
		var unmapped []error
		for _, s := range stmts {
			q, err := pgbenchSQL(s, subst)
			if err != nil {
				unmapped = append(unmapped, err)
			} else if strings.Contains(q, ":id") {
				sel = append(sel, q)
			}
		}
		if len(sel) != 1 {
			return nil, fmt.Errorf("partnerd ran %d statements with the account's id for the point query, want 1: %v (%v)", len(sel), stmtList(stmts), errors.Join(unmapped...))
		}
		pointSQL = sel[0]
		n, first, err := checkFloorSQL(ctx, conn, pointSQL, map[string]int64{"id": id, "one": 1})
		if err != nil {
			return nil, fmt.Errorf("the point floor's SQL: %w", err)
		}
		if n != 1 || first != id {
			return nil, fmt.Errorf("the point floor's SQL gave %d rows (first id %d), want account %d", n, first, id)
		}
		head, err := pickScript([]string{"id"}, t.All)
		if err != nil {
			return nil, err
		}
		pointAccounts = len(t.All)
		if pointRuns, err = b.pgbenchRuns(ctx, "point floor "+thousands(pointAccounts), head+pointSQL+"\n", map[string]string{"one": "1"}); err != nil {
			return nil, fmt.Errorf("point floor: %w", err)
		}
		pointNote = fmt.Sprintf("What partnerd ran for the point scenario's query `%s` (captured the same way): %s.", childrenPointQuery, stmtList(pointStmts))
	}

	sec = b.childrenSection(sizes, t, pgbenchErr, pageSQL, refSQL, pointSQL, pointRuns, pointAccounts)
	sec.notes = append(sec.notes, pageSQLNote)
	if pointNote != "" {
		sec.notes = append(sec.notes, pointNote)
	}
	return sec, nil
}

// cursorOf is partnerd's opaque keyset cursor of a row id, as
// resolvers/pagination.go's encodeCursor makes it.
func cursorOf(id int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("c:" + strconv.FormatInt(id, 10)))
}

// store64Array is how store.Int64Array renders one id: the page query's
// first argument.
func store64Array(id int64) string { return "{" + strconv.FormatInt(id, 10) + "}" }

// stmtList renders captured statements with their arguments, for a note.
func stmtList(stmts []capturedStmt) string {
	if len(stmts) == 0 {
		return "no statement"
	}
	parts := make([]string, len(stmts))
	for i, s := range stmts {
		parts[i] = fmt.Sprintf("(%d) `%s`", i+1, s.withArgs())
	}
	return strings.Join(parts, ", ")
}

// childrenSection is the scenario's table: one column per tree size.
func (b *bench) childrenSection(sizes []*childrenSize, t *bigTree, pgbenchErr error, pageSQL, refSQL, pointSQL string,
	pointRuns []pgbenchResult, pointAccounts int) *section {
	sec := &section{name: "children",
		title: fmt.Sprintf("children: a deep page, children(first: %d, after: the %dth child), of a random reseller's %d children, %d clients, vs pgbench",
			childrenFirst, childrenAfterPos, childrenFanout, b.o.concurrency)}
	sec.header = []string{"figure"}
	for _, s := range sizes {
		sec.header = append(sec.header, fmt.Sprintf("tree of %s accounts", thousands(s.accounts)))
	}
	row := func(label string, f func(*childrenSize) string) {
		r := []string{label}
		for _, s := range sizes {
			r = append(r, f(s))
		}
		sec.rows = append(sec.rows, r)
	}
	cell := func(vals []float64, format func(float64) string) string {
		if len(vals) == 0 {
			return "—"
		}
		s := spreadOf(vals)
		if len(vals) == 1 {
			return format(s.Median)
		}
		return fmt.Sprintf("%s (%s–%s)", format(s.Median), format(s.Min), format(s.Max))
	}
	oursBy := func(f func(runResult) float64, format func(float64) string) func(*childrenSize) string {
		return func(s *childrenSize) string {
			v := make([]float64, len(s.ours))
			for i, r := range s.ours {
				v[i] = f(r)
			}
			return cell(v, format)
		}
	}
	// ratioCell is a ratio's spread over n runs, in percent.
	ratioCell := func(rs spread, n int) string {
		if n == 1 {
			return pct(rs.Median)
		}
		return fmt.Sprintf("%s (%s–%s)", pct(rs.Median), pct(rs.Min), pct(rs.Max))
	}
	pgBy := func(runs func(*childrenSize) []pgbenchResult, f func(pgbenchResult) float64, format func(float64) string) func(*childrenSize) string {
		return func(s *childrenSize) string {
			rs := runs(s)
			v := make([]float64, len(rs))
			for i, r := range rs {
				v[i] = f(r)
			}
			return cell(v, format)
		}
	}
	floorRuns := func(s *childrenSize) []pgbenchResult { return s.floor }
	refRuns := func(s *childrenSize) []pgbenchResult { return s.ref }
	tps := func(r pgbenchResult) float64 { return r.TPS }
	p50 := func(r pgbenchResult) float64 { return r.p(50) }
	p99 := func(r pgbenchResult) float64 { return r.p(99) }
	rates := func(runs []runResult) []float64 {
		v := make([]float64, len(runs))
		for i, r := range runs {
			v[i] = r.rate()
		}
		return v
	}

	row("accounts in the `accounts` table", func(s *childrenSize) string { return thousands(int(s.tableRows)) })
	row("load: accounts added, insert + VACUUM (ANALYZE) (s)", func(s *childrenSize) string {
		return fmt.Sprintf("%s in %.1f + %.1f", thousands(s.load.accounts), s.load.insert.Seconds(), s.load.vacuum.Seconds())
	})
	row("the page SQL once, EXPLAIN (ANALYZE, BUFFERS): planning + execution (ms), shared buffers hit/read", func(s *childrenSize) string {
		if !s.plan.ok {
			return "failed: " + s.plan.explainError
		}
		return fmt.Sprintf("%.3f + %.3f, %d/%d", s.plan.planMs, s.plan.execMs, s.plan.hit, s.plan.read)
	})
	row("ours: requests/s", oursBy(runResult.rate, num))
	row("ours: p50 latency (ms)", oursBy(func(r runResult) float64 { return r.p(50) }, ms))
	row("ours: p99 latency (ms)", oursBy(func(r runResult) float64 { return r.p(99) }, ms))
	row("ours: errors per run", oursBy(func(r runResult) float64 { return float64(r.Errors) }, num))
	if pgbenchErr == nil {
		row("floor, pgbench running the page SQL: transactions/s", pgBy(floorRuns, tps, num))
		row("floor: p50 latency (ms)", pgBy(floorRuns, p50, ms))
		row("floor: p99 latency (ms)", pgBy(floorRuns, p99, ms))
		if !b.o.quick && refSQL != pageSQL {
			row("reference, pgbench running both statements partnerd runs (the account, the page): transactions/s", pgBy(refRuns, tps, num))
			row("reference: p99 latency (ms)", pgBy(refRuns, p99, ms))
		}
		row(fmt.Sprintf("ours / floor (target ≥ %.0f%%)", childrenTarget), func(s *childrenSize) string {
			if len(s.floor) != len(s.ours) || len(s.ours) == 0 {
				return "—"
			}
			fl := make([]float64, len(s.floor))
			for i, r := range s.floor {
				fl[i] = r.TPS
			}
			rs, verdict := ratioOf(rates(s.ours), fl, childrenTarget)
			return ratioCell(rs, len(s.ours)) + " " + verdict
		})
	}
	if len(sizes) > 1 {
		base := rates(sizes[0].ours)
		row(fmt.Sprintf("flat: ours / ours at %s accounts (target ≥ %.0f%%)", thousands(sizes[0].accounts), childrenFlat), func(s *childrenSize) string {
			if s == sizes[0] {
				return "(the base)"
			}
			rs, verdict := ratioOf(rates(s.ours), base, childrenFlat)
			out := ratioCell(rs, len(s.ours))
			if s == sizes[len(sizes)-1] {
				out += " " + verdict
			}
			return out
		})
	}
	if len(pointRuns) > 0 {
		last := sizes[len(sizes)-1]
		pointCell := func(f func(pgbenchResult) float64, format func(float64) string) func(*childrenSize) string {
			return func(s *childrenSize) string {
				if s != last {
					return ""
				}
				return pgBy(func(*childrenSize) []pgbenchResult { return pointRuns }, f, format)(s)
			}
		}
		row("floor for the point scenario, pgbench running the point select on a random account of the tree: transactions/s", pointCell(tps, num))
		row("floor for the point scenario: p99 latency (ms)", pointCell(p99, ms))
	}

	var loads []string
	var total time.Duration
	for _, l := range t.loads {
		total += l.total
		loads = append(loads, fmt.Sprintf("%s accounts in %s (insert %s at %s accounts/s, VACUUM (ANALYZE) %s)", thousands(l.accounts),
			l.total.Round(100*time.Millisecond), l.insert.Round(100*time.Millisecond), num(float64(l.accounts)/l.insert.Seconds()), l.vacuum.Round(100*time.Millisecond)))
	}
	sec.notes = []string{
		fmt.Sprintf("Trees, side by side under the platform, grown one after the other in the same table and measured at each size: distributors × %d second-level resellers × %d customers each (1 distributor: %s accounts; 10: %s; 100: %s), so every reseller has %d children at every size and only the table grows. Written with set-based SQL (`INSERT INTO accounts ... SELECT ... generate_series`, level by level; the product's triggers derive path and depth, check the kinds and create the credit and purchase guard rows), names from the seed (two words by `hashint8` of the position and the seed), then `VACUUM (ANALYZE) accounts`. Loading: %s; %s in all.",
			childrenFanout, childrenFanout, thousands(childrenPerDistributor), thousands(10*childrenPerDistributor), thousands(100*childrenPerDistributor),
			childrenFanout, strings.Join(loads, "; "), total.Round(100*time.Millisecond)),
		fmt.Sprintf("Ours: `%s` with `after` the cursor (as resolvers' `encodeCursor` makes it) of the reseller's %dth child by id, so the page is children %d to %d of %d and `hasNextPage` is true; each request picks a reseller at random among all the resellers of the tree measured; every answer is checked for %d edges, the expected first node and `hasNextPage`. As the platform admin, through the whole HTTP/GraphQL stack; the same process runs the load generator.",
			oneLine(childrenQuery), childrenAfterPos, childrenAfterPos+1, childrenAfterPos+childrenFirst, childrenFanout, childrenFirst),
	}
	var shapes []string
	for _, s := range sizes {
		if s.plan.ok && !slices.Contains(shapes, s.plan.shape) {
			shapes = append(shapes, s.plan.shape)
		}
	}
	if len(shapes) > 0 {
		sec.notes = append(sec.notes, fmt.Sprintf("The page statement's plan (EXPLAIN of its SQL with the middle reseller's arguments written in, once per size, after ours' runs): %s.", strings.Join(shapes, "; at another size: ")))
	}
	if pgbenchErr != nil {
		sec.notes = append(sec.notes, fmt.Sprintf("**Floors not measured:** %v.", pgbenchErr))
		return sec
	}
	th := max(1, min(b.o.concurrency, runtime.GOMAXPROCS(0)))
	sec.notes = append(sec.notes,
		fmt.Sprintf("Floor: `pgbench -n -M prepared -c %d -j %d -T %d --random-seed %d --log` on the benchmark's database, running only the page statement partnerd runs, as captured from it (below): `%s` with `-D lim=%d`, after choosing a random reseller of the tree and its %dth child's id with `\\set` (`random`, then the ids as arithmetic runs in a `case`). %s Its p50/p99 are computed from pgbench's per-transaction log (every transaction), its rate is pgbench's \"tps (without initial connection time)\".",
			b.o.concurrency, th, pgbenchSeconds(b.o.duration), b.o.seed, pageSQL, childrenFirst+1, childrenAfterPos, pageStatementNote(pageSQL, refSQL)),
	)
	if !b.o.quick && refSQL != pageSQL {
		sec.notes = append(sec.notes, fmt.Sprintf("Reference (not a target): pgbench running both statements partnerd runs per request, one after the other in a transaction-less script: `%s`.", strings.ReplaceAll(refSQL, "\n", " ")))
	}
	sec.notes = append(sec.notes,
		fmt.Sprintf("Ours / floor is run i of ours over run i of pgbench (ours' runs first, then pgbench's, %d of each, %s each after a warm-up), median (min–max). Flat: ours' rate at a size over ours' at %s accounts, run by run; flat is ≥ %.0f%% at the largest size.",
			b.o.runs, b.o.duration, thousands(sizes[0].accounts), childrenFlat))
	sec.charts = childrenCharts(sizes)
	if len(pointRuns) > 0 {
		sec.notes = append(sec.notes, fmt.Sprintf("Floor for the point scenario (its own figures are in the point section): pgbench, as above, running the point select partnerd runs for `account(id)`: `%s`%s, on an account chosen at random among the %s of the tree.",
			pointSQL, map[bool]string{true: " with `-D one=1`"}[strings.Contains(pointSQL, ":one")], thousands(pointAccounts)))
	}
	return sec
}

// pageStatementNote says how the floor's page statement stands to what
// partnerd runs per request.
func pageStatementNote(pageSQL, refSQL string) string {
	var sb strings.Builder
	if strings.Contains(pageSQL, "ARRAY[:parent") {
		sb.WriteString("The one change: partnerd binds the parent list as an array literal string (`$1::bigint[]` = `'{id}'`), which pgbench's integer variables cannot make, so the floor writes `ARRAY[:parent::bigint]::bigint[]`; the plan is the same lateral index scan on `accounts_children_idx`. ")
	}
	if refSQL != pageSQL {
		sb.WriteString("partnerd also runs the account lookup of `account(id)` per request (its only other statement; the platform admin's token is cached for 1 s, its scope adds no condition: `TRUE`); the floor leaves it out.")
	} else {
		sb.WriteString("It is the only statement partnerd runs per request: the account of `account(id)`, read through the scope (for the platform admin `TRUE`), and its page come together; the platform admin's token is cached for 1 s.")
	}
	return sb.String()
}

// substitutions pairs argument values (as %v prints them) with what the
// floor's SQL writes instead, from value, replacement, value, ...; a value
// given twice is an error (the floor could not tell the arguments apart).
func substitutions(pairs ...string) (map[string]string, error) {
	m := make(map[string]string, len(pairs)/2)
	for i := 0; i+1 < len(pairs); i += 2 {
		if prev, ok := m[pairs[i]]; ok && prev != pairs[i+1] {
			return nil, fmt.Errorf("the floor's arguments %s and %s have the same value %s", prev, pairs[i+1], pairs[i])
		}
		m[pairs[i]] = pairs[i+1]
	}
	return m, nil
}

// childrenCharts are the scaling curves of the page: requests/s and p99 of
// ours and of the floor (medians) against the tree's size.
func childrenCharts(sizes []*childrenSize) []chart {
	x := make([]float64, len(sizes))
	var ours, floor, oursP99, floorP99 []float64
	for i, s := range sizes {
		x[i] = float64(s.accounts)
		ours = append(ours, spreadBy(s.ours, runResult.rate).Median)
		oursP99 = append(oursP99, spreadBy(s.ours, func(r runResult) float64 { return r.p(99) }).Median)
		var tps, p99 []float64
		for _, r := range s.floor {
			tps, p99 = append(tps, r.TPS), append(p99, r.p(99))
		}
		floor, floorP99 = append(floor, spreadOf(tps).Median), append(floorP99, spreadOf(p99).Median)
	}
	rate := chart{File: "children-rate.png", Title: "children page: requests/s by tree size", YLabel: "requests/s", XLabel: "accounts",
		LogX: true, X: x, Series: []chartSeries{{Name: "partnerd (GraphQL)", Values: ours}}}
	p99 := chart{File: "children-p99.png", Title: "children page: p99 latency by tree size", YLabel: "p99 (ms)", XLabel: "accounts",
		LogX: true, X: x, Series: []chartSeries{{Name: "partnerd (GraphQL)", Values: oursP99}}}
	if len(sizes) > 0 && len(sizes[0].floor) > 0 {
		rate.Series = append(rate.Series, chartSeries{Name: "pgbench, the page SQL (floor)", Values: floor})
		p99.Series = append(p99.Series, chartSeries{Name: "pgbench, the page SQL (floor)", Values: floorP99})
	}
	return []chart{rate, p99}
}
