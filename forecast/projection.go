package forecast

import (
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

const day = 24 * time.Hour

// frame is the month a projection is made in, with the times it needs in
// nanoseconds, so the arithmetic on them is exact.
type frame struct {
	now        time.Time
	loc        *time.Location
	month      models.Month
	end        time.Time
	days       int
	elapsed    time.Duration
	remaining  time.Duration
	divisor    decimal.Decimal // elapsed, at least one day (ns)
	horizon    decimal.Decimal // divisor + remaining (ns)
	remainingD decimal.Decimal // remaining (ns)
}

// frameAt is the frame of instant now in zone loc.
func frameAt(now time.Time, loc *time.Location) frame {
	m := models.MonthOf(now, loc)
	start, end := m.Start(loc), m.End(loc)
	f := frame{now: now.UTC(), loc: loc, month: m, end: end.UTC(),
		days:    time.Date(m.Year, m.Month+1, 0, 0, 0, 0, 0, loc).Day(),
		elapsed: now.Sub(start), remaining: end.Sub(now)}
	div := max(f.elapsed, day)
	f.divisor = decimal.NewFromInt(int64(div))
	f.remainingD = decimal.NewFromInt(int64(f.remaining))
	f.horizon = f.divisor.Add(f.remainingD)
	return f
}

// project makes the forecast of in.
func (f frame) project(in *input) *Forecast {
	list, actual := decimal.Zero, decimal.Zero
	if in.Month == f.month.Key() {
		list, actual = in.MonthList, in.MonthActual
	}
	dayNs := decimal.NewFromInt(int64(day))
	out := &Forecast{CustomerID: in.CustomerID, Month: f.month, AsOf: f.now,
		DaysElapsed: int(f.elapsed / day), DaysInMonth: f.days,
		Elapsed:    divRound(decimal.NewFromInt(int64(f.elapsed)), dayNs, 6),
		ListToDate: list, ActualToDate: actual,
		DailyList:       divRound(list.Mul(dayNs), f.divisor, 2),
		DailyActual:     divRound(actual.Mul(dayNs), f.divisor, 2),
		ProjectedList:   f.projected(list, list),
		ProjectedActual: f.projected(actual, actual),
		CreditLimit:     in.CreditLimit,
	}
	if in.BudgetID != nil && in.BudgetType != nil && in.BudgetAmount != nil {
		spent := list
		if *in.BudgetType == models.BudgetOneTime {
			spent = in.OneTimeSpent
		}
		projected := f.projected(spent, list)
		out.BudgetID, out.BudgetType, out.BudgetAmount = in.BudgetID, in.BudgetType, in.BudgetAmount
		out.BudgetSpent, out.ProjectedBudgetSpent = &spent, &projected
		out.BudgetExceededOn = f.exceededOn(spent, *in.BudgetAmount, list)
	}
	out.CreditRunsOutOn = f.runsOutOn(in.CreditLimit.Sub(actual), actual)
	return out
}

// projected is from + growth × remaining ÷ divisor, where growth is the
// month's spend to date whose rate extends from (the month's spend itself,
// or for a ONE_TIME budget its spend since it was set), rounded half to
// even to 2 decimals.
func (f frame) projected(from, growth decimal.Decimal) decimal.Decimal {
	return divRound(from.Mul(f.divisor).Add(growth.Mul(f.remainingD)), f.divisor, 2)
}

// exceededOn is the Beijing date on which spend, at spent now and growing
// at growth per divisor, reaches amount, if it does by the month's end;
// today when it already has.
func (f frame) exceededOn(spent, amount, growth decimal.Decimal) *time.Time {
	if spent.GreaterThanOrEqual(amount) {
		return f.date(f.now)
	}
	// Reached when (amount − spent) × divisor ≤ growth × remaining.
	gap := amount.Sub(spent).Mul(f.divisor)
	if !growth.IsPositive() || gap.GreaterThan(growth.Mul(f.remainingD)) {
		return nil
	}
	at := f.now.Add(offset(gap, growth))
	if !at.Before(f.end) {
		// Reached exactly as the month ends: on its last day.
		at = f.end.Add(-time.Nanosecond)
	}
	return f.date(at)
}

// runsOutOn is the Beijing date from which available credit, at available
// now and shrinking at consumption per divisor, is below 0, if that is
// before the month's end; today when it already is.
func (f frame) runsOutOn(available, consumption decimal.Decimal) *time.Time {
	if available.IsNegative() {
		return f.date(f.now)
	}
	// Available is 0 at now + available × divisor ÷ consumption and below it
	// right after, so that instant must come before the month's end.
	gap := available.Mul(f.divisor)
	if !consumption.IsPositive() || !gap.LessThan(consumption.Mul(f.remainingD)) {
		return nil
	}
	return f.date(f.now.Add(offset(gap, consumption)))
}

// offset is gap ÷ rate nanoseconds, truncated: the instant it gives falls
// on the same date as the exact one, since dates start on whole
// nanoseconds. The callers bound it by the month's remaining time.
func offset(gap, rate decimal.Decimal) time.Duration {
	q, _ := gap.QuoRem(rate, 0)
	return time.Duration(q.IntPart())
}

// date is 00:00 in the billing zone of the date that holds t, in UTC.
func (f frame) date(t time.Time) *time.Time {
	lt := t.In(f.loc)
	d := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, f.loc).UTC()
	return &d
}

// divRound is a ÷ b (b ≠ 0) rounded half to even at places decimals,
// exactly: no intermediate rounding.
func divRound(a, b decimal.Decimal, places int32) decimal.Decimal {
	q, r := a.QuoRem(b, places)
	if r.IsZero() {
		return q
	}
	unit := decimal.New(1, -places)
	// a = b·q + r with |r| < |b|·unit: compare |r| with half of |b|·unit.
	switch r.Abs().Mul(decimal.NewFromInt(2)).Cmp(b.Abs().Mul(unit)) {
	case -1:
		return q
	case 0:
		if q.Shift(places).BigInt().Bit(0) == 0 {
			return q
		}
	}
	if a.Sign()*b.Sign() < 0 {
		return q.Sub(unit)
	}
	return q.Add(unit)
}
