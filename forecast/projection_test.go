package forecast

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/store/storetest"
)

func d(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// Rounding is half to even, on the exact quotient.
func TestDivRound_HalfToEven(t *testing.T) {
	cases := []struct{ a, b, want string }{
		{"1", "3", "0.33"},
		{"2", "3", "0.67"},
		{"0.125", "1", "0.12"},
		{"0.135", "1", "0.14"},
		{"-0.125", "1", "-0.12"},
		{"-0.135", "1", "-0.14"},
		{"0.1250000001", "1", "0.13"},
		{"1", "-8", "-0.12"},
		{"28500", "9.5", "3000"},
		{"100.005", "2", "50"}, // 50.0025
		{"100.01", "2", "50"},  // 50.005: a tie, to the even 50.00
		{"100.03", "2", "50.02"},
	}
	for _, c := range cases {
		if got := divRound(d(c.a), d(c.b), 2); !got.Equal(d(c.want)) {
			t.Errorf("%s / %s = %s, want %s", c.a, c.b, got, c.want)
		}
	}
}

// A projection that reaches the budget exactly as the month ends counts on
// its last day; one a hair short does not; the first hours of a month
// divide by a whole day.
func TestProject_Edges(t *testing.T) {
	loc := storetest.Shanghai
	fr := frameAt(time.Date(2026, 11, 10, 12, 0, 0, 0, loc), loc)
	id, typ := int64(1), models.BudgetMonthly
	in := func(list, amount string) *input {
		a := d(amount)
		return &input{CustomerID: 9, Month: 202611, MonthList: d(list), MonthActual: d(list), CreditLimit: d(amount),
			BudgetID: &id, BudgetType: &typ, BudgetAmount: &a}
	}
	last := time.Date(2026, 11, 30, 0, 0, 0, 0, loc)
	f := fr.project(in("950", "3000"))
	if f.BudgetExceededOn == nil || !f.BudgetExceededOn.Equal(last) {
		t.Errorf("reached at the month's end: %v, want %v", f.BudgetExceededOn, last)
	}
	// Credit at exactly 0 at the month's end is not below it.
	if f.CreditRunsOutOn != nil {
		t.Errorf("credit at 0 at the month's end runs out on %v", f.CreditRunsOutOn)
	}
	if f := fr.project(in("950", "3000.000001")); f.BudgetExceededOn != nil || f.CreditRunsOutOn != nil {
		t.Errorf("a hair short: %v %v", f.BudgetExceededOn, f.CreditRunsOutOn)
	}
	if f := fr.project(in("950", "2999.999999")); f.CreditRunsOutOn == nil || !f.CreditRunsOutOn.Equal(last) {
		t.Errorf("a hair over: %v", f.CreditRunsOutOn)
	}
	// No spend: nothing is reached; a stale month counts as none.
	if f := fr.project(in("0", "1")); f.BudgetExceededOn != nil || f.CreditRunsOutOn != nil {
		t.Errorf("no spend: %+v", f)
	}
	stale := in("950", "1000")
	stale.Month = 202610
	if f := fr.project(stale); !f.ListToDate.IsZero() || f.BudgetExceededOn != nil {
		t.Errorf("last month's row: %+v", f)
	}
	// Available credit exactly 0 now, with spend going on: today.
	today := time.Date(2026, 11, 10, 0, 0, 0, 0, loc)
	if f := fr.project(in("950", "950")); f.CreditRunsOutOn == nil || !f.CreditRunsOutOn.Equal(today) ||
		f.BudgetExceededOn == nil || !f.BudgetExceededOn.Equal(today) {
		t.Errorf("at the limit: %v %v", f.CreditRunsOutOn, f.BudgetExceededOn)
	}
	early := frameAt(time.Date(2026, 11, 1, 0, 0, 0, 0, loc), loc)
	if f := early.project(in("10", "1000")); !f.ProjectedList.Equal(d("310")) || !f.Elapsed.IsZero() {
		t.Errorf("at the month's first instant: %s over %s days", f.ProjectedList, f.Elapsed)
	}
}
