// Package invoice renders a customer invoice — the printable document of one
// customer bill of one month — as a self-contained HTML page (HTML) or as an
// A4 PDF (PDF), in English (en-US) or Chinese (zh-CN).
//
// The package only renders: it reads no database and recomputes nothing.
// Every amount and total is printed as the caller gives it, with exactly two
// decimals, so the document shows the figures that were billed. A DRAFT
// invoice is marked as a draft on every page.
package invoice

import (
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/shopspring/decimal"
)

// Locales an invoice can be rendered in.
const (
	LocaleEnUS = "en-US"
	LocaleZhCN = "zh-CN"
)

// Statuses of an invoice. A DRAFT invoice is visibly marked as a draft.
const (
	StatusDraft  = "DRAFT"
	StatusIssued = "ISSUED"
)

// Kinds of invoice line: USAGE is consumption of the invoice's month,
// ADJUSTMENT corrects an earlier month (Line.ForMonth), VOUCHER deducts
// what vouchers paid of a product's usage (of Line.ForMonth if set): a
// negative amount, with neither list price nor percentage.
const (
	KindUsage      = "USAGE"
	KindAdjustment = "ADJUSTMENT"
	KindVoucher    = "VOUCHER"
)

// ErrInvalid is wrapped by the errors HTML and PDF return for an invoice
// they refuse to render (an unknown locale, status or kind, a malformed
// month or currency, an amount that is not rounded to cents, an issued
// invoice without its issue time).
var ErrInvalid = errors.New("invalid invoice")

// Party is a seller or buyer on an invoice.
type Party struct {
	Name, Email, Phone string
}

// Line is one line of an invoice.
type Line struct {
	ProductCode string
	// ForMonth is empty for the invoice's own month; for an adjustment line
	// it is the earlier month ("2026-09") the amounts belong to.
	ForMonth string
	// Kind is KindUsage, KindAdjustment or KindVoucher.
	Kind string
	// List is the list-price total of the line.
	List decimal.Decimal
	// Percent is the rating percentage applied (-10 is a 10% discount, 5 a
	// 5% markup).
	Percent decimal.Decimal
	// Amount is the rated amount (for a voucher line, minus the deduction),
	// already rounded to 2 decimals.
	Amount decimal.Decimal
}

// Invoice is everything an invoice shows.
type Invoice struct {
	// Number identifies the invoice, e.g. "INV-202610-000123".
	Number string
	// Month is the billed month in Beijing time, "2026-10".
	Month string
	// Status is StatusDraft or StatusIssued.
	Status string
	// IssuedAt is shown in the locale's format in Beijing time. An issued
	// invoice must have it; for a draft the zero time is shown as a dash.
	IssuedAt time.Time
	// Locale is LocaleEnUS or LocaleZhCN: the language of every label.
	Locale string
	// Currency is an ISO 4217 code such as "CNY" or "USD".
	Currency string
	// Seller is the partner, Buyer its customer.
	Seller Party
	Buyer  Party
	Lines  []Line
	// ListTotal and Total are printed as given (rounded to 2 decimals for
	// ListTotal); Total must already be rounded to cents.
	ListTotal decimal.Decimal
	Total     decimal.Decimal
}

// monthLayout is the layout of Invoice.Month and Line.ForMonth.
const monthLayout = "2006-01"

var currencyCode = regexp.MustCompile(`^[A-Z]{3}$`)

// validate refuses an invoice the renderers cannot show faithfully. Amounts
// with more than two decimals are refused rather than rounded: the document
// must show the cents that were billed, and a renderer that rounded them
// would hide a bug upstream.
func (inv *Invoice) validate() error {
	if _, ok := localeLabels[inv.Locale]; !ok {
		return fmt.Errorf("%w: locale %q is not one of %s, %s", ErrInvalid, inv.Locale, LocaleEnUS, LocaleZhCN)
	}
	if inv.Status != StatusDraft && inv.Status != StatusIssued {
		return fmt.Errorf("%w: status %q is not %s or %s", ErrInvalid, inv.Status, StatusDraft, StatusIssued)
	}
	if inv.Status == StatusIssued && inv.IssuedAt.IsZero() {
		return fmt.Errorf("%w: an issued invoice has no issue time", ErrInvalid)
	}
	if _, err := parseMonth(inv.Month); err != nil {
		return fmt.Errorf("%w: month: %w", ErrInvalid, err)
	}
	if !currencyCode.MatchString(inv.Currency) {
		return fmt.Errorf("%w: currency %q is not an ISO 4217 code", ErrInvalid, inv.Currency)
	}
	if !isCents(inv.Total) {
		return fmt.Errorf("%w: total %s is not rounded to 2 decimals", ErrInvalid, inv.Total)
	}
	for i, l := range inv.Lines {
		if l.Kind != KindUsage && l.Kind != KindAdjustment && l.Kind != KindVoucher {
			return fmt.Errorf("%w: line %d: kind %q is not %s, %s or %s", ErrInvalid, i+1, l.Kind, KindUsage, KindAdjustment, KindVoucher)
		}
		if l.ForMonth != "" {
			if _, err := parseMonth(l.ForMonth); err != nil {
				return fmt.Errorf("%w: line %d: for month: %w", ErrInvalid, i+1, err)
			}
		}
		if !isCents(l.Amount) {
			return fmt.Errorf("%w: line %d: amount %s is not rounded to 2 decimals", ErrInvalid, i+1, l.Amount)
		}
	}
	return nil
}

// parseMonth parses a "2026-10" month.
func parseMonth(s string) (time.Time, error) {
	t, err := time.Parse(monthLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is not a YYYY-MM month", s)
	}
	return t, nil
}

// isCents reports whether d has no more than two decimals.
func isCents(d decimal.Decimal) bool { return d.Equal(d.Round(2)) }
