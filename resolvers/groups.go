package resolvers

import (
	"context"

	"github.com/graph-gophers/dataloader/v7"

	"partnerd/apperr"
	"partnerd/graph"
	"partnerd/groups"
	"partnerd/ids"
	"partnerd/models"
)

// Node type names of groups and units.
const (
	TypeCustomerGroup = "CustomerGroup"
	TypeSharingUnit   = "SharingUnit"
)

// newMembershipLoader batches the group fields of one request's accounts.
func (r *Resolver) newMembershipLoader() *dataloader.Loader[int64, groups.Membership] {
	return dataloader.NewBatchedLoader(func(ctx context.Context, keys []int64) []*dataloader.Result[groups.Membership] {
		m, err := r.Groups.Memberships(ctx, keys)
		out := make([]*dataloader.Result[groups.Membership], len(keys))
		for i, k := range keys {
			v, ok := m[k]
			if !ok {
				v = groups.Membership{Role: models.GroupNone}
			}
			out[i] = &dataloader.Result[groups.Membership]{Data: v, Error: err}
		}
		return out
	}, dataloader.WithWait[int64, groups.Membership](batchWait))
}

func (r *accountResolver) membership(ctx context.Context, obj *models.Account) (groups.Membership, error) {
	if obj.Kind != models.KindCustomer {
		return groups.Membership{Role: models.GroupNone}, nil
	}
	return r.loaders(ctx).Membership.Load(ctx, obj.ID)()
}

// set returns the group or unit id of kind, or nil when the caller cannot
// see it (its partner is outside the caller's scope, e.g. for a customer).
func (r *Resolver) set(ctx context.Context, kind groups.Kind, id int64) (*groups.Set, error) {
	if id == 0 {
		return nil, nil
	}
	s, err := r.Groups.Get(ctx, kind, id)
	if err != nil {
		if apperr.CodeOf(err) == apperr.NotFound {
			return nil, nil
		}
		return nil, err
	}
	return s, nil
}

func (r *accountResolver) customerGroup(ctx context.Context, obj *models.Account) (*groups.Group, error) {
	m, err := r.membership(ctx, obj)
	if err != nil {
		return nil, err
	}
	s, err := r.set(ctx, groups.KindGroup, m.GroupID)
	if s == nil || err != nil {
		return nil, err
	}
	return &groups.Group{Set: *s}, nil
}

func (r *accountResolver) sharingUnit(ctx context.Context, obj *models.Account) (*groups.Unit, error) {
	m, err := r.membership(ctx, obj)
	if err != nil {
		return nil, err
	}
	s, err := r.set(ctx, groups.KindUnit, m.UnitID)
	if s == nil || err != nil {
		return nil, err
	}
	return &groups.Unit{Set: *s}, nil
}

func (r *accountResolver) customerGroups(ctx context.Context, obj *models.Account, first *int, after *string) (*graph.CustomerGroupConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	list, more, total, err := r.Groups.Page(ctx, groups.KindGroup, obj.ID, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	conn := &graph.CustomerGroupConnection{TotalCount: int(total)}
	conn.Edges, conn.PageInfo = edges(list, more, func(s *groups.Set) int64 { return s.ID },
		func(c string, s *groups.Set) *graph.CustomerGroupEdge {
			return &graph.CustomerGroupEdge{Cursor: c, Node: &groups.Group{Set: *s}}
		})
	return conn, nil
}

func (r *accountResolver) sharingUnits(ctx context.Context, obj *models.Account, first *int, after *string) (*graph.SharingUnitConnection, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	list, more, total, err := r.Groups.Page(ctx, groups.KindUnit, obj.ID, pageSize(first, 50), afterID)
	if err != nil {
		return nil, err
	}
	conn := &graph.SharingUnitConnection{TotalCount: int(total)}
	conn.Edges, conn.PageInfo = edges(list, more, func(s *groups.Set) int64 { return s.ID },
		func(c string, s *groups.Set) *graph.SharingUnitEdge {
			return &graph.SharingUnitEdge{Cursor: c, Node: &groups.Unit{Set: *s}}
		})
	return conn, nil
}

// members loads the accounts of ids through the account loader.
func (r *Resolver) members(ctx context.Context, list []int64) ([]*models.Account, error) {
	out := make([]*models.Account, 0, len(list))
	thunks := make([]func() (*models.Account, error), len(list))
	for i, id := range list {
		thunks[i] = r.loaders(ctx).Account.Load(ctx, id)
	}
	for _, th := range thunks {
		a, err := th()
		if err != nil {
			return nil, err
		}
		if a != nil {
			out = append(out, a)
		}
	}
	return out, nil
}

// changeSet decodes the set and account ids of a membership change.
func changeSet(setID, setType, accountID string) (int64, int64, error) {
	s, err := ids.Decode(setID, setType)
	if err != nil {
		return 0, 0, err
	}
	a, err := ids.Decode(accountID, TypeAccount)
	if err != nil {
		return 0, 0, err
	}
	return s, a, nil
}

func (r *mutationResolver) createSet(ctx context.Context, kind groups.Kind, name string, administratorID *string, memberIDs []string) (*groups.Set, error) {
	members, err := ids.DecodeAll(memberIDs, TypeAccount)
	if err != nil {
		return nil, err
	}
	var admin int64
	if administratorID != nil {
		if admin, err = ids.Decode(*administratorID, TypeAccount); err != nil {
			return nil, err
		}
	}
	return r.Groups.Create(ctx, kind, name, admin, members)
}
