package models

import (
	"time"

	"github.com/shopspring/decimal"
)

// BillingMode is how a product is billed (DOMAIN.md §4).
type BillingMode string

// The billing modes. PAY_PER_USE is postpaid; SUBSCRIPTION and
// RESERVED_INSTANCE are prepaid.
const (
	PayPerUse        BillingMode = "PAY_PER_USE"
	Subscription     BillingMode = "SUBSCRIPTION"
	ReservedInstance BillingMode = "RESERVED_INSTANCE"
)

// IsValid reports whether m is a known billing mode.
func (m BillingMode) IsValid() bool {
	return m == PayPerUse || m == Subscription || m == ReservedInstance
}

// Prepaid reports whether the mode is paid in advance.
func (m BillingMode) Prepaid() bool { return m == Subscription || m == ReservedInstance }

// CreditBalance is an account's credit: the limit its parent granted and
// what it allocated onward (DOMAIN.md §3).
type CreditBalance struct {
	AccountID      int64 `gorm:"primaryKey"`
	CreditLimit    decimal.Decimal
	Allocated      decimal.Decimal
	ExemptPostpaid bool
	ExemptPrepaid  bool
	InArrears      bool
	UpdatedAt      time.Time
}

// TableName is the credit_balances table.
func (CreditBalance) TableName() string { return "credit_balances" }

// Allocatable is what a partner may still allocate: limit − allocated.
func (b *CreditBalance) Allocatable() decimal.Decimal { return b.CreditLimit.Sub(b.Allocated) }

// LedgerKind says what a credit ledger row records.
type LedgerKind string

// The ledger kinds.
const (
	LedgerLimit    LedgerKind = "LIMIT"
	LedgerAllocate LedgerKind = "ALLOCATE"
	LedgerReverse  LedgerKind = "REVERSE"
	LedgerRelease  LedgerKind = "RELEASE"
)

// LedgerEntry is one append-only credit movement with the balances it left.
type LedgerEntry struct {
	ID                 int64 `gorm:"primaryKey"`
	At                 time.Time
	Actor              string
	ActorUserID        *int64
	Kind               LedgerKind
	FromAccountID      *int64
	ToAccountID        int64
	Amount             decimal.Decimal
	Reason             string
	FromLimitAfter     *decimal.Decimal
	FromAllocatedAfter *decimal.Decimal
	ToLimitAfter       decimal.Decimal
	ToAllocatedAfter   decimal.Decimal
	RequestID          string
}

// TableName is the credit_ledger table.
func (LedgerEntry) TableName() string { return "credit_ledger" }

// Key is the month as the integer YYYYMM used in the spend tables.
func (m Month) Key() int { return m.Year*100 + int(m.Month) }

// MonthOfKey is the inverse of Key: the month of the integer YYYYMM.
func MonthOfKey(k int) Month { return Month{Year: k / 100, Month: time.Month(k % 100)} }
