package resolvers

import (
	"context"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/expenditures"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
	"partnerd/vouchers"
)

// Vouchers: pools, templates, issues, vouchers and their redemptions. The
// rules live in the vouchers package; these decode, call and build edges.

// voucherNode resolves node(id) for the vouchers' Node types.
func (r *queryResolver) voucherNode(ctx context.Context, typ string, key int64) (models.Node, error) {
	var n models.Node
	var err error
	switch typ {
	case vouchers.TypeVoucher:
		n, err = r.VoucherService.Voucher(ctx, key)
	case vouchers.TypeTemplate:
		n, err = r.VoucherService.Template(ctx, key)
	case vouchers.TypeIssuance:
		n, err = r.VoucherService.Issuance(ctx, key)
	default:
		return nil, apperr.NotFoundf("nothing found with this ID")
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

func (r *queryResolver) voucherPool(ctx context.Context, partnerID string) (*vouchers.Pool, error) {
	key, err := ids.Decode(partnerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Pool(ctx, key)
}

func (r *queryResolver) vouchers(ctx context.Context, customerID, partnerID *string, status *vouchers.Status, first *int, after *string) (*graph.VoucherConnection, error) {
	cid, err := optionalID(customerID)
	if err != nil {
		return nil, err
	}
	pid, err := optionalID(partnerID)
	if err != nil {
		return nil, err
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.VoucherService.Vouchers(ctx, vouchers.Filter{CustomerID: cid, IssuerID: pid, Status: status}, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *vouchers.Voucher) int64 { return n.ID },
		func(c string, n *vouchers.Voucher) *graph.VoucherEdge { return &graph.VoucherEdge{Cursor: c, Node: n} })
	return &graph.VoucherConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

func (r *queryResolver) voucherRedemptions(ctx context.Context, voucherID, customerID *string, period *expenditures.Period, first *int, after *string) (*graph.VoucherRedemptionConnection, error) {
	f := vouchers.RedemptionFilter{}
	if voucherID != nil && *voucherID != "" {
		key, err := ids.Decode(*voucherID, vouchers.TypeVoucher)
		if err != nil {
			return nil, err
		}
		f.VoucherID = key
	}
	cid, err := optionalID(customerID)
	if err != nil {
		return nil, err
	}
	f.CustomerID = cid
	if period != nil {
		f.From, f.To = &period.From, &period.To
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.VoucherService.Redemptions(ctx, f, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	return redemptionConnection(page), nil
}

func redemptionConnection(page *store.Page[*vouchers.Redemption]) *graph.VoucherRedemptionConnection {
	es, info := edges(page.Items, page.More, func(n *vouchers.Redemption) int64 { return n.ID },
		func(c string, n *vouchers.Redemption) *graph.VoucherRedemptionEdge {
			return &graph.VoucherRedemptionEdge{Cursor: c, Node: n}
		})
	return &graph.VoucherRedemptionConnection{Edges: es, PageInfo: info, TotalCount: page.Total}
}

func (r *queryResolver) voucherTemplates(ctx context.Context, partnerID string, includeRetired *bool, first *int, after *string) (*graph.VoucherTemplateConnection, error) {
	es, info, total, err := ownedPage(partnerID, TypeAccount, first, after,
		func(key int64, first int, afterID int64) (*store.Page[*vouchers.Template], error) {
			return r.VoucherService.Templates(ctx, key, includeRetired != nil && *includeRetired, first, afterID)
		},
		func(n *vouchers.Template) int64 { return n.ID },
		func(c string, n *vouchers.Template) *graph.VoucherTemplateEdge {
			return &graph.VoucherTemplateEdge{Cursor: c, Node: n}
		})
	if err != nil {
		return nil, err
	}
	return &graph.VoucherTemplateConnection{Edges: es, PageInfo: info, TotalCount: total}, nil
}

func (r *queryResolver) voucherIssuances(ctx context.Context, partnerID string, status *vouchers.IssuanceStatus, first *int, after *string) (*graph.VoucherIssuanceConnection, error) {
	es, info, total, err := ownedPage(partnerID, TypeAccount, first, after,
		func(key int64, first int, afterID int64) (*store.Page[*vouchers.Issuance], error) {
			return r.VoucherService.Issuances(ctx, vouchers.IssuanceFilter{PartnerID: key, Status: status}, first, afterID)
		},
		func(n *vouchers.Issuance) int64 { return n.ID },
		func(c string, n *vouchers.Issuance) *graph.VoucherIssuanceEdge {
			return &graph.VoucherIssuanceEdge{Cursor: c, Node: n}
		})
	if err != nil {
		return nil, err
	}
	return &graph.VoucherIssuanceConnection{Edges: es, PageInfo: info, TotalCount: total}, nil
}

func (r *mutationResolver) grantVoucherQuota(ctx context.Context, partnerID string, amount decimal.Decimal, expiresAt time.Time) (*vouchers.Pool, error) {
	key, err := ids.Decode(partnerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Grant(ctx, key, amount, expiresAt)
}

func (r *mutationResolver) allocateVoucherQuota(ctx context.Context, resellerID string, amount decimal.Decimal) (*vouchers.Pool, error) {
	key, err := ids.Decode(resellerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Allocate(ctx, key, amount)
}

func (r *mutationResolver) reclaimVoucherQuota(ctx context.Context, resellerID string, amount decimal.Decimal) (*vouchers.Pool, error) {
	key, err := ids.Decode(resellerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Reclaim(ctx, key, amount)
}

func (r *mutationResolver) setVoucherApprovalThreshold(ctx context.Context, resellerID string, threshold *decimal.Decimal) (*vouchers.Pool, error) {
	key, err := ids.Decode(resellerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.SetApprovalThreshold(ctx, key, threshold)
}

// templateInput is the domain's form of a template's terms (it judges them).
func templateInput(in graph.VoucherTemplateInput) vouchers.TemplateInput {
	return vouchers.TemplateInput{Name: in.Name, FaceValue: in.FaceValue, ProductScope: in.ProductScope, ProductCodes: in.ProductCodes,
		BillingModes: in.BillingModes, ValidFrom: in.ValidFrom, ValidUntil: in.ValidUntil, ValidDays: in.ValidDays,
		PerCustomerLimit: in.PerCustomerLimit, Reason: in.Reason}
}

func (r *mutationResolver) createVoucherTemplate(ctx context.Context, partnerID string, in graph.VoucherTemplateInput) (*vouchers.Template, error) {
	key, err := ids.Decode(partnerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.CreateTemplate(ctx, key, templateInput(in))
}

func (r *mutationResolver) updateVoucherTemplate(ctx context.Context, id string, in graph.VoucherTemplateInput) (*vouchers.Template, error) {
	key, err := ids.Decode(id, vouchers.TypeTemplate)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.UpdateTemplate(ctx, key, templateInput(in))
}

func (r *mutationResolver) retireVoucherTemplate(ctx context.Context, id string) (*vouchers.Template, error) {
	key, err := ids.Decode(id, vouchers.TypeTemplate)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.RetireTemplate(ctx, key)
}

// issueVouchers decodes the customers as groups do their members: a
// malformed ID is VALIDATION and another type's NOT_FOUND for the whole
// call; an account ID the caller does not see becomes that customer's
// NOT_FOUND result (the domain judges each customer).
func (r *mutationResolver) issueVouchers(ctx context.Context, templateID string, customerIDs []string) (*vouchers.Issuance, error) {
	key, err := ids.Decode(templateID, vouchers.TypeTemplate)
	if err != nil {
		return nil, err
	}
	custs, err := ids.DecodeAll(customerIDs, TypeAccount)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Issue(ctx, key, custs)
}

func (r *mutationResolver) approveVoucherIssuance(ctx context.Context, id string) (*vouchers.Issuance, error) {
	key, err := ids.Decode(id, vouchers.TypeIssuance)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Approve(ctx, key)
}

func (r *mutationResolver) rejectVoucherIssuance(ctx context.Context, id, reason string) (*vouchers.Issuance, error) {
	key, err := ids.Decode(id, vouchers.TypeIssuance)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Reject(ctx, key, reason)
}

func (r *mutationResolver) cancelVoucher(ctx context.Context, id, reason string) (*vouchers.Voucher, error) {
	key, err := ids.Decode(id, vouchers.TypeVoucher)
	if err != nil {
		return nil, err
	}
	return r.VoucherService.Cancel(ctx, key, reason)
}

func (r *voucherPoolResolver) ledger(ctx context.Context, obj *vouchers.Pool, first *int, after *string) (*graph.VoucherPoolLedgerConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.VoucherService.Ledger(ctx, obj.PartnerID, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *vouchers.LedgerEntry) int64 { return n.ID },
		func(c string, n *vouchers.LedgerEntry) *graph.VoucherPoolLedgerEdge {
			return &graph.VoucherPoolLedgerEdge{Cursor: c, Node: n}
		})
	return &graph.VoucherPoolLedgerConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

// counterparty is the other pool of an allocation or reclaim while the
// caller sees it, else nil.
func (r *voucherPoolLedgerEntryResolver) counterparty(ctx context.Context, obj *vouchers.LedgerEntry) (*models.Account, error) {
	if obj.CounterpartyID == nil {
		return nil, nil
	}
	return r.optionalAccount(ctx, *obj.CounterpartyID)
}

// voucherIfVisible is voucher *id while the caller sees it, else nil.
func (r *Resolver) voucherIfVisible(ctx context.Context, id *int64) (*vouchers.Voucher, error) {
	if id == nil || *id == 0 {
		return nil, nil
	}
	return r.loaders(ctx).Voucher.Load(ctx, *id)()
}

func (r *voucherPoolLedgerEntryResolver) issuance(ctx context.Context, obj *vouchers.LedgerEntry) (*vouchers.Issuance, error) {
	if obj.IssuanceID == nil {
		return nil, nil
	}
	return r.loaders(ctx).VoucherIssuance.Load(ctx, *obj.IssuanceID)()
}

// voucherTemplate loads the template of a voucher or issue the caller sees.
func (r *Resolver) voucherTemplate(ctx context.Context, id int64) (*vouchers.Template, error) {
	t, err := r.loaders(ctx).VoucherTemplate.Load(ctx, id)()
	if err == nil && t == nil {
		err = apperr.NotFoundf("voucher template not found")
	}
	return t, err
}

// codes is a list of product codes, never null.
func codes(list store.Strings) []string {
	if list == nil {
		return []string{}
	}
	return list
}

func (r *voucherResolver) redemptions(ctx context.Context, obj *vouchers.Voucher, first *int, after *string) (*graph.VoucherRedemptionConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.loaders(ctx).VoucherRedemption.Load(ctx, redemptionKey{VoucherID: obj.ID, First: pageSize(first, 50), After: afterID})()
	if err != nil {
		return nil, err
	}
	return redemptionConnection(page), nil
}

func (r *voucherRedemptionResolver) voucher(ctx context.Context, obj *vouchers.Redemption) (*vouchers.Voucher, error) {
	v, err := r.loaders(ctx).Voucher.Load(ctx, obj.VoucherID)()
	if err == nil && v == nil {
		err = apperr.NotFoundf("voucher not found")
	}
	return v, err
}

func customerIDs(obj *vouchers.Issuance) []string {
	out := make([]string, len(obj.CustomerIDs))
	for i, id := range obj.CustomerIDs {
		out[i] = ids.Encode(TypeAccount, id)
	}
	return out
}

func issueResults(obj *vouchers.Issuance) []*vouchers.IssueResult {
	out := make([]*vouchers.IssueResult, len(obj.Results))
	for i := range obj.Results {
		out[i] = &obj.Results[i]
	}
	return out
}

// customer is a result's customer while the caller sees it; never for
// NOT_FOUND, so a result does not tell more than its code.
func (r *voucherIssueResultResolver) customer(ctx context.Context, obj *vouchers.IssueResult) (*models.Account, error) {
	if obj.Code == vouchers.IssueNotFound {
		return nil, nil
	}
	return r.accountIfVisible(ctx, obj.CustomerID)
}

func issueMessage(obj *vouchers.IssueResult) *string {
	if obj.Message == "" {
		return nil
	}
	return &obj.Message
}
