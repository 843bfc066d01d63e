package resolvers

import (
	"context"

	"partnerd/graph"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
)

// Purchase controls: the ban, batch freezes and the control history. The
// rules live in guard; these decode, call and build edges.

func (r *accountResolver) controlHistory(ctx context.Context, obj *models.Account, first *int, after *string) (*graph.AccountControlChangeConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.Guard.ControlChanges(ctx, obj.ID, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *guard.ControlChange) int64 { return n.ID },
		func(c string, n *guard.ControlChange) *graph.AccountControlChangeEdge {
			return &graph.AccountControlChangeEdge{Cursor: c, Node: n}
		})
	return &graph.AccountControlChangeConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

func (r *mutationResolver) setPurchaseBan(ctx context.Context, customerID string, banned bool, reason string) (*models.Account, error) {
	key, err := ids.Decode(customerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.Guard.SetPurchaseBan(ctx, key, banned, reason)
}

// freezeAccounts freezes (mode set) or unfreezes (mode nil) a batch. IDs
// are decoded as groups decode their members (a malformed one fails the
// call with VALIDATION); the domain judges each account.
func (r *mutationResolver) freezeAccounts(ctx context.Context, accountIDs []string, mode *models.FreezeMode, reason string) ([]*guard.ControlResult, error) {
	keys, err := ids.DecodeAll(accountIDs, TypeAccount)
	if err != nil {
		return nil, err
	}
	var res []guard.ControlResult
	if mode != nil {
		res, err = r.Guard.FreezeAccounts(ctx, keys, *mode, reason)
	} else {
		res, err = r.Guard.UnfreezeAccounts(ctx, keys, reason)
	}
	if err != nil {
		return nil, err
	}
	out := make([]*guard.ControlResult, len(res))
	for i := range res {
		out[i] = &res[i]
	}
	return out, nil
}

// optionalString is nil for "".
func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
