package main

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// The allocate scenario (issue 5): one distributor with a credit limit and
// 1,000 customers; every client loops allocateCredit then reverseCredit of
// 1.00 on a random customer, both as GraphQL mutations by the platform.

const (
	allocateMutation = `mutation($id: ID!, $amount: Decimal!) { allocateCredit(childId: $id, amount: $amount) { id } }`
	reverseMutation  = `mutation($id: ID!, $amount: Decimal!) { reverseCredit(childId: $id, amount: $amount) { id } }`
	limitMutation    = `mutation($id: ID!, $amount: Decimal!) { setCreditLimit(accountId: $id, amount: $amount) { id credit { limit } } }`
	creditLimit      = "1000000000.00"
)

// gqlBody is a GraphQL request body.
func gqlBody(query string, vars map[string]any) []byte {
	b, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		panic(err) // plain strings only
	}
	return b
}

func (b *bench) allocate(ctx context.Context) (*section, error) {
	fx, err := b.customersFixture(ctx)
	if err != nil {
		return nil, err
	}
	hc := newClient(1, 30*time.Second)
	if _, err := b.graphql(ctx, hc, gqlBody(limitMutation, map[string]any{"id": gid(fx.Distributor), "amount": creditLimit})); err != nil {
		return nil, fmt.Errorf("setCreditLimit: %w", err)
	}
	hc.CloseIdleConnections()
	alloc := make([][]byte, len(fx.Customers))
	rev := make([][]byte, len(fx.Customers))
	for i, c := range fx.Customers {
		alloc[i] = gqlBody(allocateMutation, map[string]any{"id": gid(c), "amount": "1.00"})
		rev[i] = gqlBody(reverseMutation, map[string]any{"id": gid(c), "amount": "1.00"})
	}
	runs, err := b.loadRuns(ctx, "allocate", b.o.seed*31+2, func(ctx context.Context, c *client) {
		i := c.rng.IntN(len(alloc))
		if c.do(ctx, alloc[i], nil) {
			c.do(ctx, rev[i], nil)
		}
	})
	if len(runs) == 0 {
		return nil, err
	}
	sec := loadSection("allocate", fmt.Sprintf("allocate: allocateCredit + reverseCredit, %d clients", b.o.concurrency), "operations/s",
		[]string{
			fmt.Sprintf("One distributor with a credit limit of %s (setCreditLimit over GraphQL) and %s customers directly under it.", creditLimit, thousands(len(fx.Customers))),
			fmt.Sprintf("%d closed-loop clients, each looping `allocateCredit(childId, \"1.00\")` then `reverseCredit` of the same customer, chosen at random; every mutation is one operation (one GraphQL request over keep-alive HTTP, platform admin token), its latency recorded in an HDR histogram.", b.o.concurrency),
			"Each mutation locks the distributor's credit row, so all of them queue on one row: the figure is the rate of one partner's credit desk, not of the database.",
		}, runs)
	return sec, err
}
