package resolvers

import (
	"context"

	"partnerd/accounts"
	"partnerd/expenditures"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
)

// expenditureFilter turns the filter arguments of expenditureSummary and
// expenditures into the domain's filter: IDs decoded (malformed: VALIDATION,
// of another type: NOT_FOUND), everything else judged by the domain.
func expenditureFilter(partnerID *string, period *expenditures.Period, customerID, productCode *string, tag *graph.TagInput) (expenditures.Filter, error) {
	f := expenditures.Filter{Period: period, ProductCode: strOr(productCode, "")}
	var err error
	if partnerID != nil {
		if f.PartnerID, err = ids.Decode(*partnerID, TypeAccount); err != nil {
			return f, err
		}
	}
	if customerID != nil {
		if f.CustomerID, err = ids.Decode(*customerID, TypeAccount); err != nil {
			return f, err
		}
	}
	if tag != nil {
		f.Tag = &accounts.Tag{Key: tag.Key, Value: tag.Value}
	}
	return f, nil
}

func (r *queryResolver) expenditureSummary(ctx context.Context, groupBy expenditures.GroupBy, partnerID *string, period *expenditures.Period, customerID, productCode *string, tag *graph.TagInput) (*expenditures.Summary, error) {
	f, err := expenditureFilter(partnerID, period, customerID, productCode, tag)
	if err != nil {
		return nil, err
	}
	return r.ExpenditureQueries.Summarize(ctx, groupBy, f)
}

func (r *queryResolver) expenditures(ctx context.Context, filter *graph.ExpenditureFilter, first *int, after *string) (*graph.ExpenditureConnection, error) {
	var f expenditures.Filter
	if filter != nil {
		var err error
		if f, err = expenditureFilter(filter.PartnerID, filter.Period, filter.CustomerID, filter.ProductCode, filter.Tag); err != nil {
			return nil, err
		}
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.ExpenditureQueries.Page(ctx, f, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	conn := &graph.ExpenditureConnection{Filter: f}
	conn.Edges, conn.PageInfo = edges(page.Records, page.HasNext, func(e *expenditures.Record) int64 { return e.ID },
		func(c string, e *expenditures.Record) *graph.ExpenditureEdge {
			return &graph.ExpenditureEdge{Cursor: c, Node: e}
		})
	return conn, nil
}

// optionalAccount loads an account that may be outside the caller's scope:
// null then, rather than an error.
func (r *Resolver) optionalAccount(ctx context.Context, id int64) (*models.Account, error) {
	return r.loaders(ctx).Account.Load(ctx, id)()
}

func tagList(t models.Tags) []*graph.Tag {
	list := accounts.SortedTags(t)
	out := make([]*graph.Tag, len(list))
	for i, t := range list {
		out[i] = &graph.Tag{Key: t.Key, Value: t.Value}
	}
	return out
}

// summaryKey returns v when row groups by g, else nil: a row sets only its
// grouping's key.
func summaryKey[T any](row *expenditures.Row, v T, g ...expenditures.GroupBy) *T {
	for _, k := range g {
		if row.GroupBy == k {
			return &v
		}
	}
	return nil
}
