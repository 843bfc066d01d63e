package resolvers

import (
	"context"
	"encoding/json"
	"fmt"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/bulk"
	"partnerd/expenditures"
	"partnerd/graph"
	"partnerd/groups"
	"partnerd/ids"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/vouchers"
)

// The type names inside global IDs.
const (
	TypeAccount     = accounts.TypeAccount
	TypeUser        = "User"
	TypeAPIToken    = "ApiToken"
	TypeAuditEntry  = "AuditEntry"
	TypeLedgerEntry = "CreditLedgerEntry"
)

func (r *accountResolver) children(ctx context.Context, obj *models.Account, kind *models.AccountKind, status *models.AccountStatus, search *string, tag *graph.TagInput, first *int, after *string) (*graph.AccountConnection, error) {
	key, err := childPageKey(kind, status, search, tag, pageSize(first, 50), after)
	if err != nil {
		return nil, err
	}
	key.ParentID = obj.ID
	l := r.loaders(ctx)
	primed := l.done.has(key)
	page, err := l.ChildrenPage.Load(ctx, key)()
	if err != nil {
		return nil, err
	}
	if !primed {
		r.lookahead(ctx, page.Accounts)
	}
	conn := &graph.AccountConnection{ParentID: obj.ID, Filter: key.Filter.Key()}
	conn.Edges, conn.PageInfo = edges(page.Accounts, page.HasNext, func(a *models.Account) int64 { return a.ID },
		func(c string, a *models.Account) *graph.AccountEdge { return &graph.AccountEdge{Cursor: c, Node: a} })
	return conn, nil
}

// childPageKey checks the arguments of a children field and makes the key
// of its page (without the parent): the one place of their rules, for the
// resolver and for the lookahead and compiled answers, which read the same
// arguments from the query.
func childPageKey(kind *models.AccountKind, status *models.AccountStatus, search *string, tag *graph.TagInput, first int, after *string) (childKey, error) {
	afterID, err := decodeCursor(after)
	if err != nil {
		return childKey{}, err
	}
	if err := accounts.ValidatePage(first); err != nil {
		return childKey{}, err
	}
	f := accounts.ChildFilter{Search: strOr(search, "")}
	if tag != nil {
		if tag.Key == "" {
			return childKey{}, apperr.Invalid("tag", "give the tag's key")
		}
		f.TagKey, f.TagValue = tag.Key, tag.Value
	}
	if kind != nil {
		f.Kind = *kind
	}
	if status != nil {
		f.Status = *status
	}
	if len(f.Search) > 200 {
		return childKey{}, apperr.Invalid("search", "search must be at most 200 characters")
	}
	return childKey{Filter: f, First: first, After: afterID}, nil
}

func (r *queryResolver) node(ctx context.Context, id string) (models.Node, error) {
	typ, key, err := ids.Parse(id)
	if err != nil {
		return nil, err
	}
	switch typ {
	case TypeAccount:
		return r.Accounts.Get(ctx, key)
	case TypeUser:
		return r.Accounts.GetUser(ctx, key)
	case TypeInboxMessage:
		return r.Notify.InboxMessage(ctx, key)
	case TypeDelivery:
		return r.Notify.Delivery(ctx, key)
	case notify.TypeWebhookEndpoint:
		return r.Notify.WebhookEndpoint(ctx, key)
	case TypeResource:
		return r.Guard.Resource(ctx, key)
	case TypeUnbinding:
		return r.Lifecycle.Unbinding(ctx, key)
	case TypeInvitation:
		return r.Lifecycle.Invitation(ctx, key)
	case bulk.TypeJob:
		return r.BulkChanges.Job(ctx, key)
	case lifecycle.TypeApplicationLink:
		return r.Lifecycle.ApplicationLink(ctx, key)
	case lifecycle.TypeLinkApplication:
		return r.Lifecycle.LinkApplication(ctx, key)
	case migration.TypeMigration:
		return r.Batches.Get(ctx, key)
	case expenditures.TypeExpenditure:
		return r.ExpenditureQueries.Get(ctx, key)
	case billing.TypePartnerBill:
		return r.Billing.PartnerBill(ctx, key)
	case billing.TypeCustomerBill:
		return r.Billing.CustomerBill(ctx, key)
	case billing.TypeRatingRule:
		return r.Billing.RatingRule(ctx, key)
	case billing.TypeIncentive:
		return r.Billing.Incentive(ctx, key)
	case billing.TypePolicy:
		return r.Billing.Policy(ctx, key)
	case vouchers.TypeVoucher, vouchers.TypeTemplate, vouchers.TypeIssuance:
		return r.voucherNode(ctx, typ, key)
	case TypeCustomerGroup:
		s, err := r.Groups.Get(ctx, groups.KindGroup, key)
		if err != nil {
			return nil, err
		}
		return &groups.Group{Set: *s}, nil
	case TypeSharingUnit:
		s, err := r.Groups.Get(ctx, groups.KindUnit, key)
		if err != nil {
			return nil, err
		}
		return &groups.Unit{Set: *s}, nil
	}
	return nil, apperr.NotFoundf("nothing found with ID %q", id)
}

func (r *queryResolver) auditLog(ctx context.Context, accountID string, descendants bool, first *int, after *string) (*graph.AuditEntryConnection, error) {
	key, err := ids.Decode(accountID, TypeAccount)
	if err != nil {
		return nil, err
	}
	before, err := decodeCursor(after)
	if err != nil {
		return nil, err
	}
	list, more, err := r.Accounts.AuditPage(ctx, key, descendants, pageSize(first, 50), before)
	if err != nil {
		return nil, err
	}
	conn := &graph.AuditEntryConnection{}
	conn.Edges, conn.PageInfo = edges(list, more, func(e *models.AuditEntry) int64 { return e.ID },
		func(c string, e *models.AuditEntry) *graph.AuditEntryEdge {
			return &graph.AuditEntryEdge{Cursor: c, Node: e}
		})
	return conn, nil
}

// accountUpdated streams the account each time an event is published on its
// topic, reloaded through the subscriber's scope.
func (r *subscriptionResolver) accountUpdated(ctx context.Context, id string) (<-chan *models.Account, error) {
	key, err := ids.Decode(id, TypeAccount)
	if err != nil {
		return nil, err
	}
	if _, err := r.Accounts.Get(ctx, key); err != nil {
		return nil, err
	}
	msgs, err := r.Live.Subscribe(ctx, accounts.AccountTopic(key))
	if err != nil {
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	out := make(chan *models.Account, 1)
	go func() {
		defer close(out)
		for range msgs {
			a, err := r.Accounts.Get(ctx, key)
			if err != nil {
				return // moved out of scope or gone: the subscription ends
			}
			select {
			case out <- a:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

func tagInputs(in []*graph.TagInput) []accounts.Tag {
	out := make([]accounts.Tag, 0, len(in))
	for _, t := range in {
		out = append(out, accounts.Tag{Key: t.Key, Value: t.Value})
	}
	return out
}

func jsonText(b json.RawMessage) *string {
	if len(b) == 0 || string(b) == "null" {
		return nil
	}
	s := string(b)
	return &s
}

func invalidTTL() error {
	return apperr.Invalid("ttlHours", "ttlHours must be at least 1; omit it for a token without expiry")
}
