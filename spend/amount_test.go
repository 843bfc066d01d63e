package spend

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

// TestPlainAmount_AgreesWithParseDecimal: the parser's fast path gives
// exactly what models.ParseDecimal gives (same coefficient and exponent,
// so the same COPY encoding), or leaves the string to it.
func TestPlainAmount_AgreesWithParseDecimal(t *testing.T) {
	cases := []string{"0", "-0", "0.0", "1", "12.50", "-12.50", "007.5", "1.000000", "0.000001", "99999999999999",
		"99999999999999.9999", "999999999999.999999", "99999999999999.999999", "100000000000000", "1.0000001",
		"", "-", ".", "1.", ".5", "1e3", "1,5", "+1", " 1", "1 ", "--1", "1.2.3", "١", "0x10", "NaN"}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789.-e"
	for range 20000 {
		var b strings.Builder
		for range rng.IntN(24) {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		want, err := models.ParseDecimal(s)
		got, ok := plainAmount(s)
		gotBytes, okBytes := plainAmount([]byte(s))
		if ok != okBytes || (ok && (got.Exponent() != gotBytes.Exponent() || got.CoefficientInt64() != gotBytes.CoefficientInt64())) {
			t.Fatalf("plainAmount(%q) differs between string and bytes", s)
		}
		if ok && err != nil {
			t.Fatalf("plainAmount(%q) = %s, ParseDecimal refuses it: %v", s, got, err)
		}
		if ok && (got.Exponent() != want.Exponent() || got.Coefficient().Cmp(want.Coefficient()) != 0) {
			t.Fatalf("plainAmount(%q) = %se%d, ParseDecimal %se%d", s, got.Coefficient(), got.Exponent(), want.Coefficient(), want.Exponent())
		}
		if !ok && err == nil && len(strings.Trim(s, "-.")) <= 18 {
			t.Fatalf("plainAmount(%q) leaves a short valid amount to ParseDecimal", s)
		}
	}
}

// TestCheckAmount_FastPathAgrees: the arithmetic-free acceptance in
// checkAmount accepts only what the full check accepts.
func TestCheckAmount_FastPathAgrees(t *testing.T) {
	full := func(d decimal.Decimal) bool { return d.Equal(d.Truncate(6)) && d.Abs().LessThan(maxAmount) }
	rng := rand.New(rand.NewPCG(3, 4))
	for range 50000 {
		d := decimal.New(rng.Int64N(1<<62)>>rng.IntN(62)-rng.Int64N(1<<20), int32(rng.IntN(24)-16))
		if got, want := checkAmount("x", d) == "", full(d); got != want {
			t.Fatalf("checkAmount(%s) accepts = %v, want %v", d, got, want)
		}
	}
}

// TestAmount_SumsExactly: millionths, their overflow into the decimal and
// amounts that do not fit an int64 all add up exactly.
func TestAmount_SumsExactly(t *testing.T) {
	values := []string{"0.000001", "12.5", "99999999999999.999999", "9223372036854.775807", "0", "1.100000",
		"5000000000000", "4999999999999.999999", "0.1"}
	var s sum
	want := decimal.Zero
	for range 3000 {
		for _, v := range values {
			d := decimal.RequireFromString(v)
			s.add(newAmount(d))
			want = want.Add(d)
		}
	}
	if got := s.total(); !got.Equal(want) {
		t.Fatalf("sum = %s, want %s", got, want)
	}
	a, b := newAmount(decimal.RequireFromString("99999999999999.999999")), newAmount(decimal.RequireFromString("1"))
	if a.fits || !b.fits || !a.greaterThan(b) || b.greaterThan(a) || a.negative() {
		t.Errorf("comparisons across the int64 boundary: %+v %+v", a, b)
	}
	if c := newAmount(decimal.New(10, -7)); !c.fits || c.micros != 1 || newAmount(decimal.New(15, -7)).fits {
		t.Errorf("exponents below -6: %+v", c)
	}
}

// TestIDSet_FirstOccurrences: the set answers exactly across its growth.
func TestIDSet_FirstOccurrences(t *testing.T) {
	s := newIDSet()
	const n = 200_000
	for i := range n {
		if _, seen := s.firstOrAdd(fmt.Sprintf("id-%d", i), int64(i)); seen {
			t.Fatalf("id-%d seen before it was added", i)
		}
	}
	for i := range n {
		first, seen := s.firstOrAdd(fmt.Sprintf("id-%d", i), int64(n+i))
		if !seen || first != int64(i) {
			t.Fatalf("id-%d: first %d, seen %v, want %d", i, first, seen, i)
		}
	}
	if _, seen := s.firstOrAdd("", 1); seen {
		t.Error("the empty string was seen")
	}
	if first, seen := s.firstOrAdd("", 2); !seen || first != 1 {
		t.Errorf("the empty string: first %d, seen %v", first, seen)
	}
}
