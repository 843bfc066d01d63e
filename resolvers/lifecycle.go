package resolvers

import (
	"context"

	"github.com/graph-gophers/dataloader/v7"

	"partnerd/graph"
	"partnerd/ids"
	"partnerd/lifecycle"
	"partnerd/models"
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
