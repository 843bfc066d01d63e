package resolvers

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"

	"partnerd/graph"
	"partnerd/models"
)

// Lookahead for the tree: when a children connection resolves, it reads the
// rest of the query below it and fetches the next levels for all of its
// nodes at once (one page query and one count query per level), priming the
// loaders. Time-window batching alone depends on goroutine timing; this makes
// a nested tree query a constant number of statements however wide it is.

// prefetched remembers the children keys already primed in this request, so
// a resolver whose page came from the lookahead does not look ahead again.
type prefetched struct {
	mu   sync.Mutex
	keys map[childKey]bool
}

func (p *prefetched) mark(k childKey) {
	p.mu.Lock()
	p.keys[k] = true
	p.mu.Unlock()
}

func (p *prefetched) has(k childKey) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[k]
}

// childrenSelection is one nested children field under a connection's nodes.
type childrenSelection struct {
	key        func(parent int64) childKey
	totalCount bool
	nested     []*ast.Field // the children fields under this one's nodes
	wantParent bool         // its nodes select parent (which is the node above)
}

// lookahead primes the loaders for every level below a children connection
// whose nodes are given.
func (r *accountResolver) lookahead(ctx context.Context, nodes []*models.Account) {
	if !graphql.HasOperationContext(ctx) {
		return
	}
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Field.Field == nil {
		return
	}
	oc := graphql.GetOperationContext(ctx)
	l := r.loaders(ctx)
	r.prefetchLevel(ctx, oc, l, nodes, nodeFields(oc, fc.Field.Selections), 0)
}

// nodeFields returns the fields selected on the nodes of a connection
// selection (edges { node { ... } }).
func nodeFields(oc *graphql.OperationContext, conn ast.SelectionSet) []graphql.CollectedField {
	var out []graphql.CollectedField
	for _, edges := range graphql.CollectFields(oc, conn, []string{"AccountConnection"}) {
		if edges.Name != "edges" {
			continue
		}
		for _, node := range graphql.CollectFields(oc, edges.Selections, []string{"AccountEdge"}) {
			if node.Name == "node" {
				out = append(out, graphql.CollectFields(oc, node.Selections, []string{"Account", "Node"})...)
			}
		}
	}
	return out
}

func (r *accountResolver) prefetchLevel(ctx context.Context, oc *graphql.OperationContext, l *Loaders, nodes []*models.Account, fields []graphql.CollectedField, depth int) {
	if len(nodes) == 0 || depth > 16 {
		return
	}
	ids := make([]int64, len(nodes))
	byID := make(map[int64]*models.Account, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID
		byID[n.ID] = n
	}
	for _, f := range fields {
		switch f.Name {
		case "parent":
			// The parent of these nodes is already loaded by the level above.
			continue
		case "children":
		default:
			continue
		}
		key, ok := childKeyFromArgs(f.ArgumentMap(oc.Variables))
		if !ok {
			continue
		}
		pages, err := r.Accounts.ChildrenPages(ctx, ids, key.Filter, key.First, key.After)
		if err != nil {
			return // the resolvers will load (and report) on their own
		}
		var next []*models.Account
		for _, id := range ids {
			k := key
			k.ParentID = id
			l.ChildrenPage.Prime(ctx, k, pages[id])
			l.done.mark(k)
			l.Account.Prime(ctx, id, byID[id])
			next = append(next, pages[id].Accounts...)
		}
		below := nodeFields(oc, f.Selections)
		for _, cf := range graphql.CollectFields(oc, f.Selections, []string{"AccountConnection"}) {
			if cf.Name != "totalCount" {
				continue
			}
			counts, err := r.Accounts.CountChildren(ctx, ids, key.Filter)
			if err == nil {
				for _, id := range ids {
					ck := childKey{ParentID: id, Filter: key.Filter}
					l.ChildrenCount.Prime(ctx, ck, counts[id])
				}
			}
		}
		r.prefetchLevel(ctx, oc, l, next, below, depth+1)
	}
}

// childKeyFromArgs reads the children arguments of a selection (as
// gqlgen's ArgumentMap gives them) through childPageKey; false when the
// children resolver would refuse them (it reports why) or when they are of
// an unexpected form.
func childKeyFromArgs(args map[string]any) (childKey, bool) {
	first := 50
	switch n := args["first"].(type) {
	case nil:
	case int:
		first = n
	case int64:
		first = int(n)
	case float64:
		first = int(n)
	case json.Number:
		i, err := n.Int64()
		if err != nil {
			return childKey{}, false
		}
		first = int(i)
	default:
		return childKey{}, false
	}
	var kind *models.AccountKind
	var status *models.AccountStatus
	var search, after *string
	if v, ok := args["kind"].(string); ok {
		k := models.AccountKind(v)
		kind = &k
	}
	if v, ok := args["status"].(string); ok {
		st := models.AccountStatus(v)
		status = &st
	}
	if v, ok := args["search"].(string); ok {
		search = &v
	}
	if v, ok := args["after"].(string); ok {
		after = &v
	} else if args["after"] != nil {
		return childKey{}, false
	}
	var tag *graph.TagInput
	switch t := args["tag"].(type) {
	case nil:
	case map[string]any:
		key, _ := t["key"].(string)
		value, _ := t["value"].(string)
		tag = &graph.TagInput{Key: key, Value: value}
	case *graph.TagInput:
		tag = t
	default:
		return childKey{}, false
	}
	k, err := childPageKey(kind, status, search, tag, first, after)
	return k, err == nil
}
