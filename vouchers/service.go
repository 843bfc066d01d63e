// Package vouchers holds the vouchers partners hand their customers (issue
// 13): the quota pools the platform grants tier-1 partners and distributors
// pass down, the templates partners define, the vouchers issued from them
// (with the distributor's approval above a threshold), their redemption
// against ingested expenditure records, and their cancellation and expiry.
//
// Money is exact: a pool's allocated + issued never exceeds its quota (a
// CHECK on the locked row), every pool change is an append-only ledger row,
// a voucher's remaining amount never goes below zero, and each record is
// redeemed at most once per voucher, in the transaction that stores it.
//
// Policies chosen where the issue leaves the choice:
//   - A cancelled or expired voucher gives its unused amount back to the
//     pool of the partner that issued it.
//   - A customer that moves to another partner (migration) or leaves its
//     partner (unbinding) loses its live vouchers: they are cancelled at the
//     move and their remaining amount returns to the issuer's pool.
//   - A second-level reseller's pool expires with its distributor's grant.
//     Vouchers already issued keep their own validity.
//   - An issue waiting for approval reserves nothing: the per-customer
//     results are decided when the distributor approves it.
//   - A voucher pays for records whose usage time lies in its validity
//     [effective, expiry) and that are stored while it is live.
package vouchers

import (
	"log/slog"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/ids"
	"partnerd/store"
)

// Node type names of the vouchers' objects.
const (
	TypeVoucher    = "Voucher"
	TypeTemplate   = "VoucherTemplate"
	TypeIssuance   = "VoucherIssuance"
	TypeRedemption = "VoucherRedemption"
)

// MaxPage is the largest page of a vouchers list.
const MaxPage = 500

// MaxIssue is the most customers one issueVouchers call may name.
const MaxIssue = 1000

// lowQuotaPercent: a pool whose remaining quota falls below this share of
// its quota tells its partner once (until it is back above).
var lowQuotaShare = decimal.New(10, -2)

// Options configure the service.
type Options struct {
	// Location is the billing time zone (Beijing): months, and the days of
	// a template's "N days from issue".
	Location *time.Location
	// ReminderBefore is how long before its expiry a customer is reminded
	// of a live voucher (7 days by default).
	ReminderBefore time.Duration
	// Log receives the service's logs.
	Log *slog.Logger
}

// Service offers the voucher operations.
type Service struct {
	st   *store.Store
	opts Options
}

// New returns the vouchers service.
func New(st *store.Store, opts Options) *Service {
	if opts.Location == nil {
		opts.Location = time.UTC
	}
	if opts.ReminderBefore <= 0 {
		opts.ReminderBefore = 7 * 24 * time.Hour
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Service{st: st, opts: opts}
}

// ProductScope says which products a voucher pays for.
type ProductScope string

// The product scopes.
const (
	ScopeAll    ProductScope = "ALL"
	ScopeOnly   ProductScope = "ONLY"
	ScopeExcept ProductScope = "EXCEPT"
)

// BillingModes says which billing modes a voucher pays for: PREPAID is
// SUBSCRIPTION and RESERVED_INSTANCE.
type BillingModes string

// The billing mode sets.
const (
	ModesAll       BillingModes = "ALL"
	ModesPrepaid   BillingModes = "PREPAID"
	ModesPayPerUse BillingModes = "PAY_PER_USE"
)

// Status is a voucher's status.
type Status string

// The voucher statuses.
const (
	StatusIssued        Status = "ISSUED"
	StatusPartiallyUsed Status = "PARTIALLY_USED"
	StatusUsed          Status = "USED"
	StatusExpired       Status = "EXPIRED"
	StatusCancelled     Status = "CANCELLED"
)

// Live reports whether a voucher in status s can still pay.
func (s Status) Live() bool { return s == StatusIssued || s == StatusPartiallyUsed }

// IssuanceStatus is the status of one issueVouchers call.
type IssuanceStatus string

// The issuance statuses.
const (
	IssuancePending   IssuanceStatus = "PENDING_APPROVAL"
	IssuanceCompleted IssuanceStatus = "COMPLETED"
	IssuanceRejected  IssuanceStatus = "REJECTED"
)

// Pool is a partner's voucher quota as the API shows it.
type Pool struct {
	PartnerID int64
	// Quota: granted by the platform (tier-1) or allocated by the
	// distributor (second-level), net of reclaims.
	Quota decimal.Decimal
	// AllocatedDown: passed to second-level resellers, net of reclaims.
	AllocatedDown decimal.Decimal
	// Issued: face value of the partner's vouchers still charged to the
	// pool (cancelled and expired ones gave their unused amount back).
	Issued decimal.Decimal
	// Redeemed: what the partner's vouchers have paid so far.
	Redeemed decimal.Decimal
	// Remaining: Quota − AllocatedDown − Issued (0 once expired).
	Remaining decimal.Decimal
	// ExpiresAt: when the quota expires (a reseller's: its distributor's).
	ExpiresAt *time.Time
	Expired   bool
	// ApprovalThreshold: a second-level reseller's issue above it waits for
	// the distributor.
	ApprovalThreshold *decimal.Decimal
}

// LedgerEntry is one change of a pool.
type LedgerEntry struct {
	ID             int64
	At             time.Time
	Actor          string
	PartnerID      int64
	Kind           string
	CounterpartyID *int64
	VoucherID      *int64
	IssuanceID     *int64
	Amount         decimal.Decimal
	Reason         string
	QuotaAfter     decimal.Decimal
	AllocatedAfter decimal.Decimal
	IssuedAfter    decimal.Decimal
}

// Template is a partner's voucher template.
type Template struct {
	ID               int64
	PartnerID        int64
	Name             string
	FaceValue        decimal.Decimal
	ProductScope     ProductScope
	ProductCodes     store.Strings `gorm:"type:text[]"`
	BillingModes     BillingModes
	ValidFrom        *time.Time
	ValidUntil       *time.Time
	ValidDays        *int
	PerCustomerLimit int
	Reason           string
	Status           string
	CreatedAt        time.Time
	UpdatedAt        time.Time
	RetiredAt        *time.Time
}

// IsNode marks Template as a Node.
func (Template) IsNode() {}

// GlobalID is the template's Node ID.
func (t *Template) GlobalID() string { return ids.Encode(TypeTemplate, t.ID) }

// Voucher is a voucher issued to a customer.
type Voucher struct {
	ID           int64
	TemplateID   int64
	IssuanceID   int64
	IssuerID     int64
	CustomerID   int64
	FaceValue    decimal.Decimal
	Remaining    decimal.Decimal
	Status       Status
	ProductScope ProductScope
	ProductCodes store.Strings `gorm:"type:text[]"`
	BillingModes BillingModes
	EffectiveAt  time.Time
	ExpiresAt    time.Time
	IssuedAt     time.Time
	ClosedAt     *time.Time
	CloseReason  *string
	Returned     decimal.Decimal
}

// IsNode marks Voucher as a Node.
func (Voucher) IsNode() {}

// GlobalID is the voucher's Node ID.
func (v *Voucher) GlobalID() string { return ids.Encode(TypeVoucher, v.ID) }

// Used is what the voucher has paid: its face value less what it has left
// and what its cancellation or expiry gave back to the pool.
func (v *Voucher) Used() decimal.Decimal { return v.FaceValue.Sub(v.Remaining).Sub(v.Returned) }

// Issuance is one issueVouchers call.
type Issuance struct {
	ID          int64
	TemplateID  int64
	PartnerID   int64
	CustomerIDs store.Int64s `gorm:"type:bigint[]"`
	FaceTotal   decimal.Decimal
	Status      IssuanceStatus
	RequestedBy string
	RequestedAt time.Time
	DecidedBy   *string
	DecidedAt   *time.Time
	Reason      *string
	Results     IssueResults `gorm:"type:jsonb"`
}

// IsNode marks Issuance as a Node.
func (Issuance) IsNode() {}

// GlobalID is the issuance's Node ID.
func (i *Issuance) GlobalID() string { return ids.Encode(TypeIssuance, i.ID) }

// Redemption is what one voucher paid of one expenditure record.
type Redemption struct {
	ID            int64
	VoucherID     int64
	ExpenditureID int64
	ExternalID    string `gorm:"->"`
	CustomerID    int64
	OwnerID       int64
	IssuerID      int64
	Month         int
	ProductCode   string
	UsageAt       time.Time
	Amount        decimal.Decimal
	RedeemedAt    time.Time
}
