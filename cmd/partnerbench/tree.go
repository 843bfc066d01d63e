package main

import (
	"bytes"
	"context"
	"fmt"

	"partnerd/models"
)

// The tree scenario (issue 10): a 3-level children(first: 20) query from a
// distributor with 20 resellers × 20 customers.

const treeQuery = `query($id: ID!){ account(id: $id) { id name
  children(first: 20) { edges { node { id name
    children(first: 20) { edges { node { id name
      children(first: 20) { edges { node { id name } } }
    } } }
  } } }
} }`

func (b *bench) tree(ctx context.Context) (*section, error) {
	t, err := b.buildTree(ctx, "distributor + 20 × 20", 4, 1, level{models.KindReseller, 20}, level{models.KindCustomer, 20})
	if err != nil {
		return nil, err
	}
	body := gqlBody(treeQuery, map[string]any{"id": gid(t.Distributors[0])})
	want := len(t.All) // the distributor, its resellers and their customers
	check := func(out []byte) error {
		if got := bytes.Count(out, []byte(`"name":`)); got != want {
			return fmt.Errorf("the answer names %d accounts, want %d", got, want)
		}
		return nil
	}
	hc := newClient(1, 0)
	out, err := b.graphql(ctx, hc, body)
	hc.CloseIdleConnections()
	if err == nil {
		err = check(out)
	}
	if err != nil {
		return nil, fmt.Errorf("the tree query: %w", err)
	}
	runs, err := b.loadRuns(ctx, "tree", b.o.seed*31+4, func(ctx context.Context, c *client) {
		c.do(ctx, body, check)
	})
	if len(runs) == 0 {
		return nil, err
	}
	sec := loadSection("tree", fmt.Sprintf("tree: 3-level children(first: 20) from a distributor, %d clients", b.o.concurrency), "requests/s",
		[]string{
			"Tree: one distributor with 20 second-level resellers × 20 customers each (421 accounts), created through accounts.Service.Create.",
			fmt.Sprintf("Query: the distributor's `id name`, then three nested `children(first: 20) { edges { node { id name ... } } }` levels (resellers, their customers, and the customers' children, which are none): %d accounts per answer, checked on every response; as the platform admin.", want),
		}, runs)
	return sec, err
}
