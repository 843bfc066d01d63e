package resolvers

import (
	"context"
	"time"

	"github.com/graph-gophers/dataloader/v7"

	"partnerd/apperr"
	"partnerd/graph"
	"partnerd/ids"
	"partnerd/lifecycle"
	"partnerd/models"
	"partnerd/store"
)

// TypeInvitation is the Node type name of invitations.
const TypeInvitation = "Invitation"

func (r *queryResolver) invitations(ctx context.Context, status *graph.InvitationStatus, first *int, after *string) (*graph.InvitationConnection, error) {
	beforeID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	st := ""
	if status != nil {
		st = string(*status)
	}
	list, more, total, err := r.Lifecycle.Invitations(ctx, st, pageSize(first, 50), beforeID)
	if err != nil {
		return nil, err
	}
	conn := &graph.InvitationConnection{TotalCount: int(total)}
	conn.Edges, conn.PageInfo = edges(list, more, func(i *lifecycle.Invitation) int64 { return i.ID },
		func(c string, i *lifecycle.Invitation) *graph.InvitationEdge {
			return &graph.InvitationEdge{Cursor: c, Node: i}
		})
	return conn, nil
}

// invitationCustomer is the account an accepted invitation made a customer.
func (r *Resolver) invitationCustomer(ctx context.Context, obj *lifecycle.Invitation) (*models.Account, error) {
	if obj.Status != lifecycle.InvitationAccepted {
		return nil, nil
	}
	return r.account(ctx, obj.AccountID)
}

// TypeUnbinding is the Node type name of unbindings.
const TypeUnbinding = "Unbinding"

// newUnbindingLoader batches Account.inUnbinding.
func (r *Resolver) newUnbindingLoader() *dataloader.Loader[int64, bool] {
	return dataloader.NewBatchedLoader(func(ctx context.Context, keys []int64) []*dataloader.Result[bool] {
		m, err := r.Lifecycle.InUnbinding(ctx, keys)
		out := make([]*dataloader.Result[bool], len(keys))
		for i, k := range keys {
			out[i] = &dataloader.Result[bool]{Data: m[k], Error: err}
		}
		return out
	}, dataloader.WithWait[int64, bool](batchWait))
}

func (r *accountResolver) inUnbinding(ctx context.Context, obj *models.Account) (bool, error) {
	if obj.Kind != models.KindCustomer {
		return false, nil
	}
	return r.loaders(ctx).InUnbinding.Load(ctx, obj.ID)()
}

func (r *queryResolver) unbinding(ctx context.Context, id string) (*lifecycle.Unbinding, error) {
	key, err := ids.Decode(id, TypeUnbinding)
	if err != nil {
		return nil, err
	}
	return r.Lifecycle.Unbinding(ctx, key)
}

func unbindingKey(id string) (int64, error) { return ids.Decode(id, TypeUnbinding) }

// party is an account of an invitation or unbinding: through the scoped,
// batched account loader when the caller sees it, else through the
// lifecycle service, which shows the parties to each other.
func (r *Resolver) party(ctx context.Context, id int64, outside func() (*models.Account, error)) (*models.Account, error) {
	a, err := r.loaders(ctx).Account.Load(ctx, id)()
	if err != nil || a != nil {
		return a, err
	}
	return outside()
}

func (r *mutationResolver) createApplicationLink(ctx context.Context, partnerID string, kind lifecycle.LinkKind, expiresAt time.Time, usageLimit *int) (*graph.CreatedApplicationLink, error) {
	key, err := ids.Decode(partnerID, TypeAccount)
	if err != nil {
		return nil, err
	}
	l, token, err := r.Lifecycle.CreateApplicationLink(ctx, key, kind, expiresAt, usageLimit)
	if err != nil {
		return nil, err
	}
	return &graph.CreatedApplicationLink{Link: l, Token: token, URL: r.Lifecycle.ApplicationLinkURL(token)}, nil
}

func (r *mutationResolver) revokeApplicationLink(ctx context.Context, id string) (*lifecycle.ApplicationLink, error) {
	key, err := ids.Decode(id, lifecycle.TypeApplicationLink)
	if err != nil {
		return nil, err
	}
	return r.Lifecycle.RevokeApplicationLink(ctx, key)
}

func (r *mutationResolver) decideApplication(ctx context.Context, id string, approve bool, reason *string) (*lifecycle.LinkApplication, error) {
	key, err := ids.Decode(id, lifecycle.TypeLinkApplication)
	if err != nil {
		return nil, err
	}
	return r.Lifecycle.DecideApplication(ctx, key, approve, strOr(reason, ""))
}

func (r *mutationResolver) withdrawApplication(ctx context.Context, id string) (*lifecycle.LinkApplication, error) {
	key, err := ids.Decode(id, lifecycle.TypeLinkApplication)
	if err != nil {
		return nil, err
	}
	return r.Lifecycle.WithdrawApplication(ctx, key)
}

func (r *queryResolver) applicationLinks(ctx context.Context, partnerID string, first *int, after *string) (*graph.ApplicationLinkConnection, error) {
	es, info, total, err := ownedPage(partnerID, TypeAccount, first, after,
		func(key int64, first int, afterID int64) (*store.Page[*lifecycle.ApplicationLink], error) {
			return r.Lifecycle.ApplicationLinks(ctx, key, first, afterID)
		},
		func(n *lifecycle.ApplicationLink) int64 { return n.ID },
		func(c string, n *lifecycle.ApplicationLink) *graph.ApplicationLinkEdge {
			return &graph.ApplicationLinkEdge{Cursor: c, Node: n}
		})
	if err != nil {
		return nil, err
	}
	return &graph.ApplicationLinkConnection{Edges: es, PageInfo: info, TotalCount: total}, nil
}

func (r *queryResolver) linkApplications(ctx context.Context, partnerID, linkID, applicantID *string, status *lifecycle.ApplicationStatus, first *int, after *string) (*graph.LinkApplicationConnection, error) {
	var f lifecycle.ApplicationFilter
	var err error
	if f.PartnerID, err = optionalID(partnerID); err != nil {
		return nil, err
	}
	if f.ApplicantID, err = optionalID(applicantID); err != nil {
		return nil, err
	}
	if linkID != nil && *linkID != "" {
		if f.LinkID, err = ids.Decode(*linkID, lifecycle.TypeApplicationLink); err != nil {
			return nil, err
		}
	}
	if status != nil {
		f.Status = *status
	}
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	page, err := r.Lifecycle.LinkApplications(ctx, f, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	es, info := edges(page.Items, page.More, func(n *lifecycle.LinkApplication) int64 { return n.ID },
		func(c string, n *lifecycle.LinkApplication) *graph.LinkApplicationEdge {
			return &graph.LinkApplicationEdge{Cursor: c, Node: n}
		})
	return &graph.LinkApplicationConnection{Edges: es, PageInfo: info, TotalCount: page.Total}, nil
}

// linkOfApplication is an application's link while the caller sees it
// (the partner side), else null (the applicant).
func (r *linkApplicationResolver) linkOfApplication(ctx context.Context, obj *lifecycle.LinkApplication) (*lifecycle.ApplicationLink, error) {
	l, err := r.Lifecycle.ApplicationLink(ctx, obj.LinkID)
	if apperr.Is(err, apperr.NotFound) {
		return nil, nil
	}
	return l, err
}
