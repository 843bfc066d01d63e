package models

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/shopspring/decimal"

	"partnerd/apperr"
)

var decimalPattern = regexp.MustCompile(`^-?[0-9]{1,14}(\.[0-9]{1,6})?$`)

// ParseDecimal parses an exact decimal as the API accepts it: digits with an
// optional sign and point, at most 14 integer and 6 fractional digits, no
// exponent, NaN or infinity (they cannot be stored in NUMERIC(20,6)).
func ParseDecimal(s string) (decimal.Decimal, error) {
	if !decimalPattern.MatchString(s) {
		return decimal.Decimal{}, apperr.Invalid("", "%q is not a valid amount: write digits with an optional point, at most 14 digits before and 6 after it (e.g. \"1234.50\")", apperr.Clip(s))
	}
	return decimal.RequireFromString(s), nil
}

// FormatDecimal renders an amount with at least two fractional digits and no
// trailing zeros beyond them ("1234.50", "0.125").
func FormatDecimal(d decimal.Decimal) string {
	if d.Exponent() >= -2 {
		return d.StringFixed(2)
	}
	s := d.StringFixed(-d.Exponent())
	s = strings.TrimRight(s, "0")
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 < 2 {
		s += strings.Repeat("0", 2-(len(s)-i-1))
	}
	return s
}

// MarshalDecimal writes an amount as a GraphQL string.
func MarshalDecimal(d decimal.Decimal) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(FormatDecimal(d)))
	})
}

// UnmarshalDecimal reads an amount from a GraphQL string (numbers are refused
// so no client ever passes money through a binary float).
func UnmarshalDecimal(v any) (decimal.Decimal, error) {
	switch x := v.(type) {
	case string:
		return ParseDecimal(x)
	case json.Number, int, int64, float64:
		return decimal.Decimal{}, apperr.Invalid("", "amounts are strings such as \"12.50\", not numbers (got %v)", x)
	default:
		return decimal.Decimal{}, apperr.Invalid("", "amounts are strings such as \"12.50\"")
	}
}

// Month is a calendar month of billing, written "YYYY-MM", computed in the
// billing time zone (Beijing time by default).
type Month struct {
	Year  int
	Month time.Month
}

// ParseMonth parses "YYYY-MM".
func ParseMonth(s string) (Month, error) {
	if len(s) != 7 || s[4] != '-' {
		return Month{}, apperr.Invalid("", "%q is not a month: write YYYY-MM", apperr.Clip(s))
	}
	y, err1 := strconv.Atoi(s[:4])
	m, err2 := strconv.Atoi(s[5:])
	if err1 != nil || err2 != nil || y < 2000 || y > 2999 || m < 1 || m > 12 || strings.ContainsAny(s, "+ ") {
		return Month{}, apperr.Invalid("", "%q is not a month: write YYYY-MM", apperr.Clip(s))
	}
	return Month{Year: y, Month: time.Month(m)}, nil
}

// MonthOf returns the month that instant t falls in, in zone loc.
func MonthOf(t time.Time, loc *time.Location) Month {
	lt := t.In(loc)
	return Month{Year: lt.Year(), Month: lt.Month()}
}

// String renders the month as "YYYY-MM".
func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Start is the first instant of the month in zone loc.
func (m Month) Start(loc *time.Location) time.Time {
	return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, loc)
}

// End is the first instant of the next month in zone loc (exclusive bound).
func (m Month) End(loc *time.Location) time.Time { return m.Next().Start(loc) }

// Next is the following month.
func (m Month) Next() Month {
	if m.Month == time.December {
		return Month{Year: m.Year + 1, Month: time.January}
	}
	return Month{Year: m.Year, Month: m.Month + 1}
}

// Prev is the preceding month.
func (m Month) Prev() Month {
	if m.Month == time.January {
		return Month{Year: m.Year - 1, Month: time.December}
	}
	return Month{Year: m.Year, Month: m.Month - 1}
}

// MarshalMonth writes "YYYY-MM".
func MarshalMonth(m Month) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) { _, _ = io.WriteString(w, strconv.Quote(m.String())) })
}

// UnmarshalMonth reads "YYYY-MM".
func UnmarshalMonth(v any) (Month, error) {
	s, ok := v.(string)
	if !ok {
		return Month{}, apperr.Invalid("", "a month is a string YYYY-MM")
	}
	return ParseMonth(s)
}

// MarshalTime writes an instant in RFC 3339, UTC.
func MarshalTime(t time.Time) graphql.Marshaler {
	return graphql.WriterFunc(func(w io.Writer) {
		_, _ = io.WriteString(w, strconv.Quote(t.UTC().Format(time.RFC3339Nano)))
	})
}

// UnmarshalTime reads an RFC 3339 instant (with its offset) and returns it in UTC.
func UnmarshalTime(v any) (time.Time, error) {
	s, ok := v.(string)
	if !ok {
		return time.Time{}, apperr.Invalid("", "a time is an RFC 3339 string such as \"2026-01-31T16:00:00Z\"")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, apperr.Invalid("", "%q is not an RFC 3339 time such as \"2026-01-31T16:00:00Z\"", apperr.Clip(s))
	}
	return t.UTC(), nil
}
