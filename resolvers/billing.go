package resolvers

import (
	"context"

	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
)

// monthPtr turns a table month (YYYYMM) into a schema Month.
func monthPtr(k int) *models.Month {
	m := models.MonthOfKey(k)
	return &m
}

// optionalID decodes an optional Account ID argument (0 when
// absent; a malformed ID is VALIDATION, another type's NOT_FOUND).
func optionalID(id *string) (int64, error) {
	if id == nil || *id == "" {
		return 0, nil
	}
	return ids.Decode(*id, TypeAccount)
}

func (r *queryResolver) bills(ctx context.Context, partnerID *string, month *models.Month, status *billing.Status, first *int, after *string) (*graph.PartnerBillConnection, error) {
	pid, err := optionalID(partnerID)
	if err != nil {
		return nil, err
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	f := billing.BillFilter{PartnerID: pid, Month: month, Status: status}
	page, err := r.Billing.Bills(ctx, f, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *billing.PartnerBill) int64 { return n.ID },
		func(c string, n *billing.PartnerBill) *graph.PartnerBillEdge {
			return &graph.PartnerBillEdge{Cursor: c, Node: n}
		})
	return &graph.PartnerBillConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

func (r *queryResolver) customerBills(ctx context.Context, partnerID, customerID *string, month *models.Month, first *int, after *string) (*graph.CustomerBillConnection, error) {
	pid, err := optionalID(partnerID)
	if err != nil {
		return nil, err
	}
	cid, err := optionalID(customerID)
	if err != nil {
		return nil, err
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	f := billing.CustomerBillFilter{PartnerID: pid, CustomerID: cid, Month: month}
	page, err := r.Billing.CustomerBills(ctx, f, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *billing.CustomerBill) int64 { return n.ID },
		func(c string, n *billing.CustomerBill) *graph.CustomerBillEdge {
			return &graph.CustomerBillEdge{Cursor: c, Node: n}
		})
	return &graph.CustomerBillConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

func (r *queryResolver) incentives(ctx context.Context, partnerID *string, status *billing.IncentiveStatus, first *int, after *string) (*graph.IncentiveConnection, error) {
	pid, err := optionalID(partnerID)
	if err != nil {
		return nil, err
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	f := billing.IncentiveFilter{PartnerID: pid, Status: status}
	page, err := r.Billing.Incentives(ctx, f, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *billing.Incentive) int64 { return n.ID },
		func(c string, n *billing.Incentive) *graph.IncentiveEdge {
			return &graph.IncentiveEdge{Cursor: c, Node: n}
		})
	return &graph.IncentiveConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

func (r *partnerBillResolver) lines(ctx context.Context, obj *billing.PartnerBill, customerID, productCode *string) ([]*billing.Line, error) {
	cid, err := optionalID(customerID)
	if err != nil {
		return nil, err
	}
	if cid == 0 && productCode == nil {
		return orEmpty(r.loaders(ctx).BillLines.Load(ctx, obj.ID)())
	}
	ls, err := r.Billing.Lines(ctx, []int64{obj.ID}, billing.LineFilter{CustomerID: cid, ProductCode: strOr(productCode, "")})
	if err != nil {
		return nil, err
	}
	return orEmpty(ls[obj.ID], nil)
}

// orEmpty is list, or an empty list for nil (a non-null GraphQL list).
func orEmpty[T any](list []T, err error) ([]T, error) {
	if list == nil && err == nil {
		list = []T{}
	}
	return list, err
}

func (r *mutationResolver) createIncentivePolicy(ctx context.Context, name string, effective models.Month, in []*graph.IncentiveTierInput) (*billing.Policy, error) {
	tiers := make(billing.Tiers, len(in))
	for i, t := range in {
		tiers[i] = billing.Tier{Threshold: t.Threshold, Percent: t.Percent}
	}
	return r.Billing.CreatePolicy(ctx, name, effective, tiers)
}

// accountIfVisible is account id, or nil when it is outside the caller's
// scope.
func (r *Resolver) accountIfVisible(ctx context.Context, id int64) (*models.Account, error) {
	a, err := r.account(ctx, id)
	if apperr.Is(err, apperr.NotFound) {
		return nil, nil
	}
	return a, err
}

func (r *queryResolver) marginReport(ctx context.Context, partnerID *string, month models.Month, first *int, after *string) (*graph.MarginRowConnection, error) {
	pid, err := optionalID(partnerID)
	if err != nil {
		return nil, err
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.Billing.Margins(ctx, pid, month, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	totals, err := r.Billing.MarginTotals(ctx, pid, month)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *billing.MarginRow) int64 { return n.CustomerID },
		func(c string, n *billing.MarginRow) *graph.MarginRowEdge {
			return &graph.MarginRowEdge{Cursor: c, Node: n}
		})
	return &graph.MarginRowConnection{Edges: es, PageInfo: info, TotalCount: page.Total, Totals: totals}, nil
}

// marginCustomer is a margin row's customer, null in the totals.
func (r *marginRowResolver) marginCustomer(ctx context.Context, obj *billing.MarginRow) (*models.Account, error) {
	if obj.CustomerID == 0 {
		return nil, nil
	}
	return r.optionalAccount(ctx, obj.CustomerID)
}
