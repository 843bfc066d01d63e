// Package expenditures answers what a partner's customers spent (DOMAIN.md
// §5): summaries by customer, product, day or month with the time up to which
// records have been received ("as of"), the records themselves page by page,
// and both as streamed CSV exports. It reads what spend ingested — the
// expenditure records and their running totals — and never writes.
//
// Who sees which records (the one rule, applied by every query here):
//   - a partner sees the records owned by a partner of its subtree, itself
//     included, where the owner is the partner that owned the customer at
//     usage time (DOMAIN.md §4). After a customer moves between partners each
//     side sees only the records of its own era;
//   - a CUSTOMER or PERSONAL account sees its own records, whoever owned them;
//   - the platform sees every record.
//
// A query may narrow that to a sub-partner (Filter.PartnerID: its subtree's
// records) and to one customer (Filter.CustomerID: a customer that is, or
// was, a customer of a partner of that subtree). An account outside the
// caller's scope is NOT_FOUND, never FORBIDDEN.
//
// Every query is bounded by the owners' running totals and the indexes: the
// owners with records in the period come from owner_spend_totals, and the
// records are read through the owner index (owner_id, month, UTC hour of
// usage) — or, for one customer, (customer_id, month, usage_at) — never by
// scanning everyone's records.
package expenditures

import (
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// TypeExpenditure is the Node type name of expenditure records in global IDs.
const TypeExpenditure = "Expenditure"

// MaxPeriodMonths is the longest period a query may cover, in months.
const MaxPeriodMonths = 24

// maxProductCode is the longest product code ingestion accepts (bytes).
const maxProductCode = 100

// Service answers expenditure queries and exports over the caller's scope.
type Service struct {
	st  *store.Store
	loc *time.Location
	// fetchSize is how many rows an export fetches from its cursor at a time.
	fetchSize int
	// onFetch, when set (tests), runs before each fetch of an export.
	onFetch func()
}

// New returns the expenditure query service on st. loc is the billing time
// zone (BILLING_TIMEZONE, Asia/Shanghai by default), an IANA zone name that
// PostgreSQL knows too: months and days are calendar months and days there.
func New(st *store.Store, loc *time.Location) *Service {
	if loc == nil {
		loc = time.UTC
	}
	return &Service{st: st, loc: loc, fetchSize: 1000}
}

// Location is the billing time zone that months and days are computed in.
func (s *Service) Location() *time.Location { return s.loc }

// Period is an inclusive range of billing months.
type Period struct {
	From models.Month
	To   models.Month
}

// Months is how many months the period covers.
func (p Period) Months() int {
	return (p.To.Year-p.From.Year)*12 + int(p.To.Month) - int(p.From.Month) + 1
}

// Filter says which records a query counts, within the caller's scope.
type Filter struct {
	// PartnerID narrows the records to those owned by the partners of this
	// partner's subtree (0: the caller's own account). It must be a partner
	// (or the platform) in the caller's scope.
	PartnerID int64
	// Period is the range of billing months of usage (nil: the current
	// month). At most MaxPeriodMonths months, From not after To.
	Period *Period
	// CustomerID keeps one customer's records (0: every customer). It must
	// be a CUSTOMER or PERSONAL account that is, or was, a customer of a
	// partner of the narrowed subtree.
	CustomerID int64
	// ProductCode keeps the records of one product code, exactly ("": all).
	ProductCode string
	// Tag keeps the records whose customer carried the tag key=value when
	// the record arrived (records keep their ingestion-time tags), the same
	// key=value syntax as the children(tag:) filter of accounts.
	Tag *accounts.Tag
}

// GroupBy is the key an expenditure summary groups by; the values mirror
// the GraphQL enum ExpenditureGroupBy.
type GroupBy string

// The groupings of a summary.
const (
	// ByCustomer: one row per customer.
	ByCustomer GroupBy = "CUSTOMER"
	// ByProduct: one row per product code.
	ByProduct GroupBy = "PRODUCT"
	// ByDay: one row per calendar day of usage in the billing time zone.
	ByDay GroupBy = "DAY"
	// ByMonth: one row per billing month.
	ByMonth GroupBy = "MONTH"
)

// IsValid reports whether g is a known grouping.
func (g GroupBy) IsValid() bool {
	return g == ByCustomer || g == ByProduct || g == ByDay || g == ByMonth
}

// ParseGroupBy reads a grouping as the API writes it (CUSTOMER, PRODUCT,
// DAY, MONTH); anything else is VALIDATION.
func ParseGroupBy(field, s string) (GroupBy, error) {
	g := GroupBy(s)
	if !g.IsValid() {
		return "", apperr.Invalid(field, "%s must be CUSTOMER, PRODUCT, DAY or MONTH, not %q", field, apperr.Clip(s))
	}
	return g, nil
}

// Record is one expenditure record as the billing pipeline sent it, with
// where ingestion put it: OwnerID is the partner that owned the customer at
// usage time (the platform for a personal account), MonthKey the billing
// month of usage as YYYYMM, Tags the customer's tags when it arrived.
type Record struct {
	ID           int64
	ExternalID   string
	CustomerID   int64
	OwnerID      int64
	ProductCode  string
	Region       string
	BillingMode  models.BillingMode
	UsageAt      time.Time
	MonthKey     int `gorm:"column:month"`
	ListAmount   decimal.Decimal
	ActualAmount decimal.Decimal
	ReceivedAt   time.Time
	// Adjustment: the owner's bill of the month was already issued when the
	// record arrived, so it goes into the next bill (DOMAIN.md §5).
	Adjustment bool
	Tags       models.Tags
}

// IsNode marks Record as a Node.
func (Record) IsNode() {}

// Month is the billing month of the record's usage.
func (r Record) Month() models.Month { return models.MonthOfKey(r.MonthKey) }
