// Package resolvers turns GraphQL input into domain calls and their results
// back: one file per schema area, thin adapters with no business rules.
package resolvers

//go:generate sh -c "cd .. && go tool gqlgen generate --config gqlgen.yml"

import (
	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/expenditures"
	"partnerd/forecast"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/notify"
	"partnerd/spend"
	"partnerd/vouchers"
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
	// ExpenditureQueries answers expenditure summaries and record pages
	// (the name Expenditures is the query field's resolver).
	ExpenditureQueries *expenditures.Service
	// Billing holds partner and customer bills, rating rules, incentives.
	Billing *billing.Service
	// VoucherService holds voucher pools, templates, vouchers and
	// redemptions (the name Vouchers is the query field's resolver).
	VoucherService *vouchers.Service
	// Forecasts projects customers' month-end spend.
	Forecasts *forecast.Service
	// BulkChanges applies CSV uploads of changes in the background.
	BulkChanges *bulk.Service
	// PublicURL is where users reach the product (download links start
	// with it).
	PublicURL string
}
