package resolvers

import (
	"context"
	"io"

	"github.com/99designs/gqlgen/graphql"

	"partnerd/bulk"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/store"
)

// Bulk changes from CSV: the rules live in the bulk package; these decode,
// call and build edges.

// uploadBulkChanges passes a missing file on as nil: the domain refuses it
// after the scope check.
func (r *mutationResolver) uploadBulkChanges(ctx context.Context, partnerID string, kind bulk.Kind, file *graphql.Upload) (*bulk.Job, error) {
	key, err := ids.Decode(partnerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	var in io.Reader
	if file != nil {
		in = file.File
	}
	return r.BulkChanges.Upload(ctx, key, kind, in)
}

func (r *queryResolver) bulkJobs(ctx context.Context, partnerID string, first *int, after *string) (*graph.BulkJobConnection, error) {
	es, info, total, err := ownedPage(partnerID, TypeAccount, first, after,
		func(key int64, first int, afterID int64) (*store.Page[*bulk.Job], error) {
			return r.BulkChanges.Jobs(ctx, key, first, afterID)
		},
		func(n *bulk.Job) int64 { return n.ID },
		func(c string, n *bulk.Job) *graph.BulkJobEdge { return &graph.BulkJobEdge{Cursor: c, Node: n} })
	if err != nil {
		return nil, err
	}
	return &graph.BulkJobConnection{Edges: es, PageInfo: info, TotalCount: total}, nil
}

func (r *bulkJobResolver) bulkRows(ctx context.Context, obj *bulk.Job, status *bulk.RowStatus, first *int, after *string) (*graph.BulkRowConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	var st bulk.RowStatus
	if status != nil {
		st = *status
	}
	page, err := r.BulkChanges.Rows(ctx, obj.ID, st, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *bulk.Row) int64 { return n.ID },
		func(c string, n *bulk.Row) *graph.BulkRowEdge { return &graph.BulkRowEdge{Cursor: c, Node: n} })
	return &graph.BulkRowConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}
