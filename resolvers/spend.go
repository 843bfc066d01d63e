package resolvers

import (
	"context"

	"partnerd/apperr"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/spend"
)

func (r *accountResolver) spend(ctx context.Context, obj *models.Account, month *models.Month) (*graph.Spend, error) {
	m := models.MonthOf(r.Accounts.Store().Now(), r.Resolver.Spend.Location())
	if month != nil {
		m = *month
	}
	t, err := r.loaders(ctx).Spend.Load(ctx, spendKey{AccountID: obj.ID, Month: m})()
	if err != nil {
		return nil, err
	}
	return &graph.Spend{Month: m, List: t.List, Actual: t.Actual, AsOf: t.AsOf}, nil
}

func (r *mutationResolver) recordExpenditures(ctx context.Context, records []*graph.ExpenditureInput) (*graph.IngestResult, error) {
	recs := make([]spend.Record, len(records))
	for i, in := range records {
		id, err := ids.Decode(in.CustomerID, TypeAccount)
		if err != nil {
			return nil, apperr.Invalid("records", "record %d: customerId %q is not a valid account ID", i, in.CustomerID)
		}
		recs[i] = spend.Record{ExternalID: in.ExternalID, CustomerID: id, ProductCode: in.ProductCode, Region: strOr(in.Region, ""),
			BillingMode: in.BillingMode, UsageAt: in.UsageAt, List: in.ListAmount, Actual: in.ActualAmount}
	}
	res, err := r.Spend.IngestRecords(ctx, recs)
	if err != nil {
		return nil, err
	}
	out := &graph.IngestResult{Accepted: res.Accepted, Duplicates: res.Duplicates, Conflicts: res.Conflicts, Rejected: res.Rejected,
		AsOf: res.AsOf, Errors: make([]*graph.IngestError, 0, len(res.Errors))}
	for _, e := range res.Errors {
		out.Errors = append(out.Errors, &graph.IngestError{Index: e.Index, ExternalID: e.ExternalID, Reason: e.Reason})
	}
	return out, nil
}
