package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"

	"partnerd/models"
)

// The point scenario (issue 10): one account by id, on random accounts of a
// generated tree, as the platform; then the same accounts, in the same
// order, from PostGraphile (peer.go) on the same database.

const (
	pointQuery = `query($id: ID!){ account(id: $id) { id name kind status } }`
	// peerPointQuery is pointQuery for PostGraphile: accountById is the
	// root field its default inflection makes from accounts' primary key;
	// its BigInt is sent as a string.
	peerPointQuery = `query($id: BigInt!){ accountById(id: $id) { id name kind status } }`
	// pointTarget is the target for requests/s: partnerd at least
	// 1.5× PostGraphile's, with a p99 no worse.
	pointTarget = 1.5
)

func (b *bench) point(ctx context.Context) (*section, error) {
	dists := 10 // 10 × (1 + 10 resellers × (1 + 99 customers)) = 10,010 accounts
	if b.o.quick {
		dists = 1
	}
	t, err := b.buildTree(ctx, fmt.Sprintf("tree of %s accounts", thousands(dists*1001)), 3, dists,
		level{models.KindReseller, 10}, level{models.KindCustomer, 99})
	if err != nil {
		return nil, err
	}
	names, err := b.readAccountNames(ctx, t.All)
	if err != nil {
		return nil, err
	}
	peer, skipped, err := b.startPeer(ctx, "point")
	if err != nil {
		return nil, err
	}
	if peer != nil {
		defer peer.stop()
	}
	bodies := make([][]byte, len(t.All))
	peerBodies := make([][]byte, len(t.All))
	wants := make([][]byte, len(t.All))
	for i, id := range t.All {
		bodies[i] = gqlBody(pointQuery, map[string]any{"id": gid(id)})
		peerBodies[i] = gqlBody(peerPointQuery, map[string]any{"id": strconv.FormatInt(id, 10)})
		wants[i] = pointNameField(names[id])
	}
	check := func(i int) func([]byte) error {
		return func(out []byte) error {
			if !bytes.Contains(out, wants[i]) {
				return fmt.Errorf("the answer does not name account %d (%s): %s", t.All[i], wants[i], clip(out))
			}
			return nil
		}
	}
	seed := b.o.seed*31 + 3
	runs, err := b.loadRuns(ctx, "point", seed, func(ctx context.Context, c *client) {
		i := c.rng.IntN(len(bodies))
		c.do(ctx, bodies[i], check(i))
	})
	if len(runs) == 0 {
		return nil, err
	}
	title := fmt.Sprintf("point: one account by id in a tree of %s accounts, %d clients", thousands(len(t.All)), b.o.concurrency)
	notes := []string{
		fmt.Sprintf("Tree: %d distributor(s) × 10 second-level resellers × 99 customers = %s accounts, created through accounts.Service.Create as the platform admin.", dists, thousands(len(t.All))),
		"partnerd: `" + pointQuery + "` with the account's Relay global ID, as the platform admin: the bearer token is authenticated on every request and the read goes through the scope check.",
	}
	if peer == nil || err != nil {
		if skipped != "" {
			notes = append(notes, peerName+" skipped: "+skipped)
		}
		return loadSection("point", title, "requests/s", notes, runs), err
	}
	peerRuns, err := b.loadRuns(ctx, "point "+peerName, seed, func(ctx context.Context, c *client) {
		i := c.rng.IntN(len(peerBodies))
		c.doWith(ctx, func() ([]byte, error) { return peer.query(ctx, c.c, peerBodies[i]) }, check(i))
	})
	if len(peerRuns) == 0 {
		return loadSection("point", title, "requests/s", notes, runs), err
	}
	notes = append(notes,
		peerName+" "+postgraphileVersion+" (Node.js "+peer.node+", one process, `"+peer.commandLine()+"`, NODE_ENV=production): `"+peerPointQuery+
			"` with the account's bigint id; no authentication (no JWT secret: every request reads as the connection's role, the database's owner) and no scope check.",
		"Both: the same clients, the same seed, so the same sequence of random accounts; every answer must hold the account's name. partnerd's runs come first, then "+peerName+"'s, each after its own warm-up; the ratios pair run i of one with run i of the other. "+peerName+" is one Node.js process (a single JavaScript thread), partnerd one Go process using every CPU; both share the machine with PostgreSQL and the load generator.",
	)
	sec := &section{name: "point", title: title + ", partnerd vs " + peerName, notes: notes, header: peerHeader,
		rows: peerFigures(runs, peerRuns)}
	sec.rows = append(sec.rows, peerRateRow(runs, peerRuns, pointTarget), peerP99Row(runs, peerRuns))
	sec.charts = peerCharts("point", runs, peerRuns)
	return sec, err
}

// readAccountNames reads the names of accounts by id.
func (b *bench) readAccountNames(ctx context.Context, ids []int64) (map[int64]string, error) {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect to read account names: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, "SELECT id, name FROM accounts WHERE id = ANY($1)", ids)
	if err != nil {
		return nil, fmt.Errorf("read account names: %w", err)
	}
	out := make(map[int64]string, len(ids))
	for rows.Next() {
		var (
			id   int64
			name string
		)
		if err := rows.Scan(&id, &name); err != nil {
			return nil, fmt.Errorf("read account names: %w", err)
		}
		out[id] = name
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read account names: %w", err)
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			return nil, fmt.Errorf("account %d is not in the database", id)
		}
	}
	return out, nil
}

// pointNameField is `"name":"<name>"` as both servers write it in JSON.
func pointNameField(name string) []byte {
	v, err := json.Marshal(name)
	if err != nil {
		panic(err) // a string always marshals
	}
	return append([]byte(`"name":`), v...)
}
