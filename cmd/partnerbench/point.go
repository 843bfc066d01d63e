package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"partnerd/models"
)

// The point scenario (issue 10): one account by id, on random accounts of a
// generated tree, as the platform.

const pointQuery = `query($id: ID!){ account(id: $id) { id name kind status tier } }`

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
	bodies := make([][]byte, len(t.All))
	for i, id := range t.All {
		bodies[i] = gqlBody(pointQuery, map[string]any{"id": gid(id)})
	}
	check := func(out []byte) error {
		if !bytes.Contains(out, []byte(`"name":`)) {
			return errors.New("no account in the answer: " + clip(out))
		}
		return nil
	}
	runs, err := b.loadRuns(ctx, "point", b.o.seed*31+3, func(ctx context.Context, c *client) {
		c.do(ctx, bodies[c.rng.IntN(len(bodies))], check)
	})
	if len(runs) == 0 {
		return nil, err
	}
	sec := loadSection("point", fmt.Sprintf("point: one account by id in a tree of %s accounts, %d clients", thousands(len(t.All)), b.o.concurrency), "requests/s",
		[]string{
			fmt.Sprintf("Tree: %d distributor(s) × 10 second-level resellers × 99 customers = %s accounts, created through accounts.Service.Create as the platform admin.", dists, thousands(len(t.All))),
			"Query: `" + pointQuery + "` on an account chosen at random among all of them, as the platform admin (authentication and scope checks on).",
		}, runs)
	return sec, err
}
