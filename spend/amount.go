package spend

import (
	"math"
	"math/big"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
)

// amount is an exact decimal, also in millionths when those fit an int64
// (every amount below 9.2 trillion), so the checks and sums of a million
// records need no big-number arithmetic.
type amount struct {
	d      decimal.Decimal
	micros int64
	fits   bool
}

var pow10 = [...]int64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18}

func newAmount(d decimal.Decimal) amount {
	a := amount{d: d}
	if d.NumDigits() > 18 {
		return a
	}
	c, e := d.CoefficientInt64(), int(d.Exponent())
	switch {
	case e == -6:
		a.micros, a.fits = c, true
	case e < -6:
		if k := -6 - e; k < len(pow10) && c%pow10[k] == 0 {
			a.micros, a.fits = c/pow10[k], true
		}
	default:
		if k := e + 6; k < len(pow10) && c <= math.MaxInt64/pow10[k] && c >= -math.MaxInt64/pow10[k] {
			a.micros, a.fits = c*pow10[k], true
		}
	}
	return a
}

func (a amount) negative() bool {
	if a.fits {
		return a.micros < 0
	}
	return a.d.IsNegative()
}

func (a amount) greaterThan(b amount) bool {
	if a.fits && b.fits {
		return a.micros > b.micros
	}
	return a.d.GreaterThan(b.d)
}

// numeric is a as pgx encodes it; x is reused for its coefficient when that
// fits an int64 (pgx encodes a row's values before it asks for the next).
func (a amount) numeric(x *big.Int) pgtype.Numeric {
	if a.d.NumDigits() <= 18 {
		x.SetInt64(a.d.CoefficientInt64())
	} else {
		x = a.d.Coefficient()
	}
	return pgtype.Numeric{Int: x, Exp: a.d.Exponent(), Valid: true}
}

// sum adds amounts exactly: in millionths while they fit an int64, the rest
// in a decimal.
type sum struct {
	micros int64
	rest   decimal.Decimal
}

func (s *sum) add(a amount) {
	if a.fits && a.micros >= 0 && s.micros <= math.MaxInt64-a.micros {
		s.micros += a.micros
		return
	}
	s.rest = s.rest.Add(a.d)
}

func (s *sum) total() decimal.Decimal { return s.rest.Add(decimal.New(s.micros, -6)) }
