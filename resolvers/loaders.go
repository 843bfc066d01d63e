package resolvers

import (
	"context"
	"time"

	"github.com/graph-gophers/dataloader/v7"

	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/credit"
	"partnerd/forecast"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/vouchers"
)

// Loaders batch the per-key fetches of one request (against N+1): each batch
// is one query that also applies the caller's scope.
type Loaders struct {
	Account       *dataloader.Loader[int64, *models.Account]
	ChildrenPage  *dataloader.Loader[childKey, *accounts.Page]
	ChildrenCount *dataloader.Loader[childKey, int]
	Credit        *dataloader.Loader[int64, credit.View]
	Spend         *dataloader.Loader[spendKey, spend.Totals]
	Budget        *dataloader.Loader[int64, *guard.BudgetView]
	Membership    *dataloader.Loader[int64, groups.Membership]
	InUnbinding   *dataloader.Loader[int64, bool]
	InMigration   *dataloader.Loader[int64, bool]
	// Billing: the parts of bills the caller loaded through the scope.
	BillLines        *dataloader.Loader[int64, []*billing.Line]
	BillAdjustments  *dataloader.Loader[int64, []*billing.Adjustment]
	BillIncentive    *dataloader.Loader[int64, *billing.Incentive]
	IncentiveHistory *dataloader.Loader[int64, []*billing.IncentiveEvent]
	CustomerLines    *dataloader.Loader[int64, []*billing.CustomerLine]
	RatingRule       *dataloader.Loader[int64, *billing.RatingRule]
	// Vouchers: templates (unscoped: reached through a voucher or issue in
	// scope), vouchers and issues through the scope, and the redemption
	// pages of a page of vouchers.
	VoucherTemplate   *dataloader.Loader[int64, *vouchers.Template]
	Voucher           *dataloader.Loader[int64, *vouchers.Voucher]
	VoucherIssuance   *dataloader.Loader[int64, *vouchers.Issuance]
	VoucherRedemption *dataloader.Loader[redemptionKey, *store.Page[*vouchers.Redemption]]
	// Forecast: customers' month-end projections through the scope.
	Forecast *dataloader.Loader[int64, *forecast.Forecast]
	done     *prefetched
}

// byID is a loader of values by id from fetch, which loads many ids in one
// query (absent ids get the zero value).
func byID[V any](fetch func(context.Context, []int64) (map[int64]V, error)) *dataloader.Loader[int64, V] {
	return dataloader.NewBatchedLoader(func(ctx context.Context, keys []int64) []*dataloader.Result[V] {
		m, err := fetch(ctx, keys)
		out := make([]*dataloader.Result[V], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[V]{Data: m[k], Error: err}
		}
		return out
	}, dataloader.WithWait[int64, V](batchWait))
}

type childKey struct {
	ParentID int64
	Filter   accounts.ChildFilter
	First    int
	After    int64
}

type spendKey struct {
	AccountID int64
	Month     models.Month
}

// redemptionKey is one voucher's page of redemptions.
type redemptionKey struct {
	VoucherID int64
	First     int
	After     int64
}

type loadersKey struct{}

// batchWait is how long a loader gathers keys before it fetches.
const batchWait = 500 * time.Microsecond

// WithLoaders returns ctx with fresh loaders for one request.
func (r *Resolver) WithLoaders(ctx context.Context) context.Context {
	svc := r.Accounts
	l := &Loaders{
		Spend: dataloader.NewBatchedLoader(func(ctx context.Context, keys []spendKey) []*dataloader.Result[spend.Totals] {
			byMonth := map[models.Month][]int{}
			for i, k := range keys {
				byMonth[k.Month] = append(byMonth[k.Month], i)
			}
			out := make([]*dataloader.Result[spend.Totals], len(keys))
			for m, idx := range byMonth {
				accts := make([]int64, len(idx))
				for j, i := range idx {
					accts[j] = keys[i].AccountID
				}
				totals, err := r.Spend.MonthTotals(ctx, accts, m)
				for _, i := range idx {
					out[i] = &dataloader.Result[spend.Totals]{Data: totals[keys[i].AccountID], Error: err}
				}
			}
			return out
		}, dataloader.WithWait[spendKey, spend.Totals](batchWait)),
		Credit:      byID(r.Credit.Views),
		done:        &prefetched{keys: map[childKey]bool{}},
		Budget:      r.newBudgetLoader(),
		Membership:  r.newMembershipLoader(),
		InUnbinding: r.newUnbindingLoader(),
		InMigration: r.newInMigrationLoader(),
		Account:     byID(svc.GetMany),
		BillLines: byID(func(ctx context.Context, ids []int64) (map[int64][]*billing.Line, error) {
			return r.Billing.Lines(ctx, ids, billing.LineFilter{})
		}),
		BillAdjustments:  byID(r.Billing.Adjustments),
		BillIncentive:    byID(r.Billing.IncentivesOfBills),
		IncentiveHistory: byID(r.Billing.IncentiveHistory),
		CustomerLines:    byID(r.Billing.CustomerLines),
		RatingRule:       byID(r.Billing.RulesOfLines),
		VoucherTemplate:  byID(r.VoucherService.TemplatesByID),
		Voucher:          byID(r.VoucherService.VouchersByID),
		VoucherIssuance:  byID(r.VoucherService.IssuancesByID),
		Forecast:         byID(r.Forecasts.Forecast),
		VoucherRedemption: dataloader.NewBatchedLoader(func(ctx context.Context, keys []redemptionKey) []*dataloader.Result[*store.Page[*vouchers.Redemption]] {
			// Keys that share the page size and cursor are one query.
			groups := map[[2]int64][]int{}
			for i, k := range keys {
				g := [2]int64{int64(k.First), k.After}
				groups[g] = append(groups[g], i)
			}
			out := make([]*dataloader.Result[*store.Page[*vouchers.Redemption]], len(keys))
			for g, idx := range groups {
				list := make([]int64, len(idx))
				for j, i := range idx {
					list[j] = keys[i].VoucherID
				}
				pages, err := r.VoucherService.RedemptionPages(ctx, list, int(g[0]), g[1])
				for _, i := range idx {
					out[i] = &dataloader.Result[*store.Page[*vouchers.Redemption]]{Error: err}
					if err == nil {
						out[i].Data = pages[keys[i].VoucherID]
					}
				}
			}
			return out
		}, dataloader.WithWait[redemptionKey, *store.Page[*vouchers.Redemption]](batchWait)),
		ChildrenPage: dataloader.NewBatchedLoader(func(ctx context.Context, keys []childKey) []*dataloader.Result[*accounts.Page] {
			out := make([]*dataloader.Result[*accounts.Page], len(keys))
			for group, idx := range groupChildKeys(keys) {
				parents := make([]int64, len(idx))
				for j, i := range idx {
					parents[j] = keys[i].ParentID
				}
				pages, err := svc.ChildrenPages(ctx, parents, group.Filter, group.First, group.After)
				for _, i := range idx {
					out[i] = &dataloader.Result[*accounts.Page]{Error: err}
					if err == nil {
						out[i].Data = pages[keys[i].ParentID]
					}
				}
			}
			return out
		}, dataloader.WithWait[childKey, *accounts.Page](batchWait)),
		ChildrenCount: dataloader.NewBatchedLoader(func(ctx context.Context, keys []childKey) []*dataloader.Result[int] {
			out := make([]*dataloader.Result[int], len(keys))
			for group, idx := range groupChildKeys(keys) {
				parents := make([]int64, len(idx))
				for j, i := range idx {
					parents[j] = keys[i].ParentID
				}
				counts, err := svc.CountChildren(ctx, parents, group.Filter)
				for _, i := range idx {
					out[i] = &dataloader.Result[int]{Data: counts[keys[i].ParentID], Error: err}
				}
			}
			return out
		}, dataloader.WithWait[childKey, int](batchWait)),
	}
	return context.WithValue(ctx, loadersKey{}, l)
}

// groupChildKeys groups keys that share everything but the parent, so each
// group is one query.
func groupChildKeys(keys []childKey) map[childKey][]int {
	groups := map[childKey][]int{}
	for i, k := range keys {
		g := k
		g.ParentID = 0
		groups[g] = append(groups[g], i)
	}
	return groups
}

// loaders returns the request's loaders, or fresh ones outside a request.
func (r *Resolver) loaders(ctx context.Context) *Loaders {
	if l, ok := ctx.Value(loadersKey{}).(*Loaders); ok {
		return l
	}
	return r.WithLoaders(ctx).Value(loadersKey{}).(*Loaders)
}

// account loads one account through the request's loader; a missing one
// (or one outside the caller's scope) is NOT_FOUND.
func (r *Resolver) account(ctx context.Context, id int64) (*models.Account, error) {
	a, err := r.loaders(ctx).Account.Load(ctx, id)()
	if err == nil && a == nil {
		err = accounts.NotFound("account")
	}
	return a, err
}
