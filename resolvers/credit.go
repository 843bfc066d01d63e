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
	conn := &graph.CreditLedgerEntryConnection{}
	conn.Edges, conn.PageInfo = edges(list, more, func(e *models.LedgerEntry) int64 { return e.ID },
		func(c string, e *models.LedgerEntry) *graph.CreditLedgerEntryEdge {
			return &graph.CreditLedgerEntryEdge{Cursor: c, Node: e}
		})
	return conn, nil
}
