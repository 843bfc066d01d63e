package resolvers

import (
	"context"

	"github.com/graph-gophers/dataloader/v7"
	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/graph"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
)

// TypeResource is the Node type name of resources.
const TypeResource = "Resource"

// newBudgetLoader batches the budget fields of one request into one query.
func (r *Resolver) newBudgetLoader() *dataloader.Loader[int64, *guard.BudgetView] {
	return dataloader.NewBatchedLoader(func(ctx context.Context, keys []int64) []*dataloader.Result[*guard.BudgetView] {
		m, err := r.Guard.BudgetViews(ctx, keys)
		out := make([]*dataloader.Result[*guard.BudgetView], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[*guard.BudgetView]{Data: m[k], Error: err}
		}
		return out
	}, dataloader.WithWait[int64, *guard.BudgetView](batchWait))
}

func (r *accountResolver) budget(ctx context.Context, obj *models.Account) (*guard.BudgetView, error) {
	if obj.Kind != models.KindCustomer {
		return nil, nil
	}
	return r.loaders(ctx).Budget.Load(ctx, obj.ID)()
}

func (r *accountResolver) resources(ctx context.Context, obj *models.Account, status *models.ResourceStatus, first *int, after *string) (*graph.ResourceConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	n := pageSize(first, 50)
	if err := accounts.ValidatePage(n); err != nil {
		return nil, err
	}
	list, more, total, err := r.Guard.ResourcesPage(ctx, obj.ID, status, n, afterID)
	if err != nil {
		return nil, err
	}
	conn := &graph.ResourceConnection{TotalCount: int(total)}
	conn.Edges, conn.PageInfo = edges(list, more, func(x *models.Resource) int64 { return x.ID },
		func(c string, x *models.Resource) *graph.ResourceEdge { return &graph.ResourceEdge{Cursor: c, Node: x} })
	return conn, nil
}

func (r *mutationResolver) setBudget(ctx context.Context, in graph.BudgetInput) (*models.Account, error) {
	key, err := ids.Decode(in.CustomerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	bi := guard.BudgetInput{CustomerID: key, Type: in.Type, Amount: in.Amount, Thresholds: in.Thresholds}
	if in.OverspendAction != nil {
		bi.OverspendAction = *in.OverspendAction
	}
	return r.Guard.SetBudget(ctx, bi)
}

func (r *mutationResolver) authorizePurchase(ctx context.Context, customerID string, mode models.BillingMode, amount decimal.Decimal) (*guard.Decision, error) {
	key, err := ids.Decode(customerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	d, err := r.Guard.Authorize(ctx, key, mode, amount)
	if err != nil {
		return nil, err
	}
	return &d, nil
}
