package server

import (
	"context"

	"github.com/99designs/gqlgen/graphql"

	"partnerd/accounts"
	"partnerd/models"
)

// redactedSafe are the resolver fields of Account that read only what a
// redacted copy carries (models.Account.Redact): its ID, its tier, its tags
// (none) and its parent (none).
var redactedSafe = map[string]bool{"id": true, "tier": true, "tags": true, "parent": true}

// redactedFields answers NOT_FOUND for every other resolver field of an
// account shown redacted, as for any account outside the caller's scope:
// credit, arrears, users, resources, groups and the rest load by the
// account's ID, which the redacted copy must not open. Plain fields need no
// check: the copy holds nothing but ID, kind, status and a label for a name.
func redactedFields(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc == nil || fc.Object != "Account" || !fc.IsResolver || fc.Parent == nil || redactedSafe[fc.Field.Name] {
		return next(ctx)
	}
	var a *models.Account
	switch v := fc.Parent.Result.(type) {
	case *models.Account:
		a = v
	case **models.Account:
		if v != nil {
			a = *v
		}
	}
	if a != nil && a.Redacted {
		return nil, accounts.NotFound("account")
	}
	return next(ctx)
}
