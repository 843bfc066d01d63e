package resolvers

import (
	"context"

	"partnerd/graph"
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
