// Package resolvers turns GraphQL input into domain calls and their results
// back: one file per schema area, thin adapters with no business rules.
package resolvers

//go:generate sh -c "cd .. && go tool gqlgen generate --config gqlgen.yml"

import (
	"partnerd/accounts"
	"partnerd/credit"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/notify"
	"partnerd/spend"
)

// Resolver holds the domain services the resolvers call.
type Resolver struct {
	Accounts  *accounts.Service
	Credit    *credit.Service
	Spend     *spend.Service
	Live      *notify.Hub
	Notify    *notify.Service
	Guard     *guard.Service
	Groups    *groups.Service
	Lifecycle *lifecycle.Service
	// Batches holds sub-customer migrations.
	Batches *migration.Service
}
