package resolvers

import (
	"context"

	"partnerd/credit"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
)

func (r *accountResolver) creditView(ctx context.Context, obj *models.Account) (*credit.View, error) {
	v, err := r.loaders(ctx).Credit.Load(ctx, obj.ID)()
	if err != nil {
		return nil, err
	}
	return &v, nil
}

func (r *queryResolver) creditLedger(ctx context.Context, accountID string, first *int, after *string) (*graph.CreditLedgerEntryConnection, error) {
	key, err := ids.Decode(accountID, TypeAccount)
	if err != nil {
		return nil, err
	}
	before, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	list, more, err := r.Credit.LedgerPage(ctx, key, pageSize(first, 50), before)
	if err != nil {
		return nil, err
	}
	conn := &graph.CreditLedgerEntryConnection{PageInfo: &graph.PageInfo{HasNextPage: more}, Edges: make([]*graph.CreditLedgerEntryEdge, 0, len(list))}
	for _, e := range list {
		conn.Edges = append(conn.Edges, &graph.CreditLedgerEntryEdge{Cursor: encodeCursor(e.ID), Node: e})
	}
	if k := len(conn.Edges); k > 0 {
		conn.PageInfo.EndCursor = &conn.Edges[k-1].Cursor
	}
	return conn, nil
}
