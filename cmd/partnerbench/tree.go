package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"time"

	"partnerd/ids"
	"partnerd/models"
)

// The tree scenario (issue 10): an account → 10 children → 10 each → 10
// each, with names (1 + 10 + 100 + 1,000 = 1,111 accounts per answer), from
// partnerd and from PostGraphile (peer.go) on the same database. The
// platform is the only account with three levels below it, so the scenario
// builds 10 distributors × 10 resellers × 10 customers under it and asks
// from the platform, starting the first level after the platform's children
// that other scenarios made (both servers page children by id).

const (
	treeQuery = `query($id: ID!, $after: String){ account(id: $id) { id name
  children(first: 10, after: $after) { edges { node { id name
    children(first: 10) { edges { node { id name
      children(first: 10) { edges { node { id name } } }
    } } }
  } } }
} }`
	// peerTreeQuery is treeQuery for PostGraphile run with
	// --simple-collections both: accountById from accounts' primary key and
	// accountsByParentIdList, the simple list (not the Relay connection
	// accountsByParentId: the list is PostGraphile's faster form) from the
	// foreign key accounts.parent_id → accounts.id, in the order partnerd
	// pages children (by id). A list has no cursor: the first level skips
	// the platform's earlier children with an offset.
	peerTreeQuery = `query($id: BigInt!, $skip: Int!){ accountById(id: $id) { id name
  accountsByParentIdList(first: 10, offset: $skip, orderBy: PRIMARY_KEY_ASC) { id name
    accountsByParentIdList(first: 10, orderBy: PRIMARY_KEY_ASC) { id name
      accountsByParentIdList(first: 10, orderBy: PRIMARY_KEY_ASC) { id name }
    }
  }
} }`
	// childCursorsQuery pages the platform's children on partnerd, for the
	// cursor of the one before the tree.
	childCursorsQuery = `query($id: ID!, $after: String){ account(id: $id) { children(first: 500, after: $after) {
  edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }`
	// treeTarget is the target: partnerd at least 3× PostGraphile's
	// requests/s.
	treeTarget = 3.0
)

func (b *bench) tree(ctx context.Context) (*section, error) {
	plat, err := b.accounts.Platform(b.platform)
	if err != nil {
		return nil, err
	}
	t, err := b.buildTree(ctx, "platform + 10 × 10 × 10", 4, 10, level{models.KindReseller, 10}, level{models.KindCustomer, 10})
	if err != nil {
		return nil, err
	}
	want := append([]int64{plat.ID}, t.All...)
	names, err := b.readAccountNames(ctx, want)
	if err != nil {
		return nil, err
	}
	// The platform's children that other scenarios made before the tree's
	// distributors: partnerd's first level starts after the cursor of the
	// last of them, PostGraphile's skips as many.
	var (
		skip   int
		before int64
	)
	if err := b.st.SQL.QueryRowContext(ctx, "SELECT count(*), coalesce(max(id), 0) FROM accounts WHERE parent_id = $1 AND id < $2",
		plat.ID, slices.Min(t.Distributors)).Scan(&skip, &before); err != nil {
		return nil, fmt.Errorf("the platform's children before the tree: %w", err)
	}
	peer, skipped, err := b.startPeer(ctx, "tree")
	if err != nil {
		return nil, err
	}
	if peer != nil {
		defer peer.stop()
	}

	hc := newClient(1, 30*time.Second)
	defer hc.CloseIdleConnections()
	var after any // JSON null: from the first child
	if before != 0 {
		if after, err = b.childCursor(ctx, hc, plat.ID, before); err != nil {
			return nil, err
		}
	}
	body := gqlBody(treeQuery, map[string]any{"id": gid(plat.ID), "after": after})
	check := func(out []byte) error {
		if got := bytes.Count(out, []byte(`"name":`)); got != len(want) {
			return fmt.Errorf("the answer names %d accounts, want %d", got, len(want))
		}
		return nil
	}
	out, err := b.graphql(ctx, hc, body)
	if err == nil {
		err = check(out)
	}
	var ours []treeAccount
	if err == nil {
		ours, err = treeAnswerAccounts(out, func(id string) (int64, error) { return ids.Decode(id, "Account") })
	}
	if err == nil {
		err = treeSameAccounts(ours, want, names)
	}
	if err != nil {
		return nil, fmt.Errorf("the tree query: %w", err)
	}
	var peerBody []byte
	if peer != nil {
		peerBody = gqlBody(peerTreeQuery, map[string]any{"id": strconv.FormatInt(plat.ID, 10), "skip": skip})
		out, err := peer.query(ctx, hc, peerBody)
		if err == nil {
			err = check(out)
		}
		var theirs []treeAccount
		if err == nil {
			theirs, err = treeAnswerAccounts(out, func(id string) (int64, error) { return strconv.ParseInt(id, 10, 64) })
		}
		if err == nil && !slices.Equal(ours, theirs) {
			err = fmt.Errorf("%s's answer differs from partnerd's (%d accounts against %d, in order)", peerName, len(theirs), len(ours))
		}
		if err != nil {
			return nil, fmt.Errorf("the tree query on %s: %w", peerName, err)
		}
	}

	seed := b.o.seed*31 + 4
	runs, err := b.loadRuns(ctx, "tree", seed, func(ctx context.Context, c *client) {
		c.do(ctx, body, check)
	})
	if len(runs) == 0 {
		return nil, err
	}
	title := fmt.Sprintf("tree: 3-level children(first: 10) from the platform (%s accounts per answer), %d clients", thousands(len(want)), b.o.concurrency)
	notes := []string{
		fmt.Sprintf("Tree: 10 distributors × 10 resellers × 10 customers under the platform (%s accounts), created through accounts.Service.Create as the platform admin. The platform is the only account with three levels below it; its children made by earlier scenarios (%s) are skipped on the first level: with an `after` cursor on partnerd, an `offset` on %s.",
			thousands(len(t.All)), treeEarlierChildren(skip, before), peerName),
		fmt.Sprintf("partnerd: the platform's `id name`, then three nested `children(first: 10) { edges { node { id name ... } } }` levels (distributors, their resellers, the resellers' customers; children are paged by id), with Relay global IDs, as the platform admin (the token authenticated on every request, the scope check on every level): %s accounts per answer, checked on every answer.", thousands(len(want))),
	}
	if peer == nil || err != nil {
		if skipped != "" {
			notes = append(notes, peerName+" skipped: "+skipped)
		}
		return loadSection("tree", title, "requests/s", notes, runs), err
	}
	peerRuns, err := b.loadRuns(ctx, "tree "+peerName, seed, func(ctx context.Context, c *client) {
		c.doWith(ctx, func() ([]byte, error) { return peer.query(ctx, c.c, peerBody) }, check)
	})
	if len(peerRuns) == 0 {
		return loadSection("tree", title, "requests/s", notes, runs), err
	}
	notes = append(notes,
		peerName+" "+postgraphileVersion+" (Node.js "+peer.node+", one process, `"+peer.commandLine()+"`, NODE_ENV=production): `accountById(id:)` then three nested `accountsByParentIdList(first: 10, orderBy: PRIMARY_KEY_ASC) { id name ... }` levels (the simple lists of `--simple-collections both`, which PostGraphile answers faster than its Relay connection `accountsByParentId`), bigint ids; no authentication (no JWT secret: every request reads as the connection's role, the database's owner) and no scope check.",
		fmt.Sprintf("Both answers were checked once to name the same %s accounts (ids and names, in the same order), and every answer of either to name %s accounts. partnerd's runs come first, then %s's, each after its own warm-up; the ratio pairs run i of one with run i of the other. %s is one Node.js process (a single JavaScript thread), partnerd one Go process using every CPU; both share the machine with PostgreSQL and the load generator.",
			thousands(len(want)), thousands(len(want)), peerName, peerName),
	)
	sec := &section{name: "tree", title: title + ", partnerd vs " + peerName, notes: notes, header: peerHeader,
		rows: peerFigures(runs, peerRuns)}
	sec.rows = append(sec.rows, peerRateRow(runs, peerRuns, treeTarget))
	sec.charts = peerCharts("tree", runs, peerRuns)
	return sec, err
}

func treeEarlierChildren(n int, before int64) string {
	if n == 0 {
		return "none in this run"
	}
	return fmt.Sprintf("%d, ids up to %d", n, before)
}

// childCursor is partnerd's cursor of the platform's child id, found by
// paging the platform's children.
func (b *bench) childCursor(ctx context.Context, hc *http.Client, platform, id int64) (string, error) {
	var after any
	for {
		out, err := b.graphql(ctx, hc, gqlBody(childCursorsQuery, map[string]any{"id": gid(platform), "after": after}))
		if err != nil {
			return "", fmt.Errorf("the platform's children: %w", err)
		}
		var r struct {
			Data struct {
				Account struct {
					Children struct {
						Edges []struct {
							Cursor string
							Node   struct{ ID string }
						}
						PageInfo struct {
							HasNextPage bool
							EndCursor   string
						}
					}
				}
			}
		}
		if err := json.Unmarshal(out, &r); err != nil {
			return "", fmt.Errorf("the platform's children: %w", err)
		}
		page := r.Data.Account.Children
		for _, e := range page.Edges {
			if e.Node.ID == gid(id) {
				return e.Cursor, nil
			}
		}
		if !page.PageInfo.HasNextPage {
			return "", fmt.Errorf("account %d is not among the platform's children", id)
		}
		after = page.PageInfo.EndCursor
	}
}

// treeAccount is an account of an answer.
type treeAccount struct {
	ID   int64
	Name string
}

// treeAnswerAccounts lists the accounts (objects with an id and a name) of a
// GraphQL answer, parents before their children, children in the answer's
// order; decode turns a server's id into the account's.
func treeAnswerAccounts(out []byte, decode func(string) (int64, error)) ([]treeAccount, error) {
	var v any
	if err := json.Unmarshal(out, &v); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	var list []treeAccount
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case map[string]any:
			if id, ok := x["id"].(string); ok {
				name, _ := x["name"].(string)
				n, err := decode(id)
				if err != nil {
					return fmt.Errorf("id %q: %w", id, err)
				}
				list = append(list, treeAccount{ID: n, Name: name})
			}
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			sort.Strings(keys) // one nested list per account: any order keeps the answer's
			for _, k := range keys {
				if err := walk(x[k]); err != nil {
					return err
				}
			}
		case []any:
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return list, walk(v)
}

// treeSameAccounts checks that got names exactly the accounts of want, with
// their names.
func treeSameAccounts(got []treeAccount, want []int64, names map[int64]string) error {
	if len(got) != len(want) {
		return fmt.Errorf("the answer names %d accounts, want %d", len(got), len(want))
	}
	seen := make(map[int64]bool, len(got))
	for _, a := range got {
		name, ok := names[a.ID]
		switch {
		case !ok:
			return fmt.Errorf("the answer names account %d (%q), which is not in the tree", a.ID, a.Name)
		case seen[a.ID]:
			return fmt.Errorf("the answer names account %d twice", a.ID)
		case a.Name != name:
			return fmt.Errorf("the answer names account %d %q, want %q", a.ID, a.Name, name)
		}
		seen[a.ID] = true
	}
	return nil
}
