package invariants_test

import (
	"context"
	"fmt"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

// op is one randomized operation of a round.
type op interface {
	fmt.Stringer
	// touch registers what the operation may change, before any verdict is
	// taken.
	touch(r *round)
	// predict sets the verdict from the model at the start of the round and
	// everything the round may touch.
	predict(m *model, r *round)
	// run calls the services. It never reads or writes the model.
	run(w *world)
	// phase orders apply: 0 processes ending, 1 everything that needs the
	// accounts where they were, 2 customers moving, 3 what only the new
	// partner of a moved customer could do.
	phase() int
	// apply brings the model forward from the outcome and reports what
	// contradicts it.
	apply(m *model, r *round, v *violations)
	// outcome says what the calls answered.
	outcome() string
	// refusedCalls are the request ids of the calls that were refused.
	refusedCalls() []string
	// info is its name, kind, verdict and calls.
	info() *base
}

// Phases of apply.
const (
	phaseEnd = iota
	phaseMain
	phaseMove
	phaseAfterMove
)

// allocateOp allocates credit from a partner to one of its children, or
// reverses it (credit.Allocate, credit.Reverse; DOMAIN.md §3).
type allocateOp struct {
	base
	reverse       bool
	actor, child  int64
	token         string
	amount        decimal.Decimal
	parentAtStart int64
	err           error
}

func (o *allocateOp) String() string {
	verb := "allocate"
	if o.reverse {
		verb = "reverse"
	}
	return fmt.Sprintf("%s %s %s to %d by %d", o.name, verb, o.amount, o.child, o.actor)
}

func (o *allocateOp) touch(r *round) {
	if !o.amount.IsPositive() {
		return
	}
	if o.reverse {
		add(r.revIn, o.child, o.amount)
		add(r.revBy, o.actor, o.amount)
	} else {
		add(r.allocIn, o.child, o.amount)
		add(r.allocBy, o.actor, o.amount)
	}
}

func (o *allocateOp) predict(m *model, r *round) {
	c := m.accts[o.child]
	switch {
	case !o.amount.IsPositive():
		o.want = refused
	case r.moving[o.child]:
		o.want = either
	case c == nil || c.Parent != o.actor || (c.Kind != models.KindCustomer && c.Kind != models.KindReseller):
		o.want = refused
	case o.reverse:
		o.want = r.reverseVerdict(m, c, o.amount)
	default:
		o.want = r.allocateVerdict(m, m.accts[o.actor], o.amount)
	}
}

// allocateVerdict: partner p allocating amount succeeds when even its
// lowest limit minus everything it may have allocated meanwhile covers it,
// and is refused when even its highest allocatable credit does not.
func (r *round) allocateVerdict(m *model, p *acct, amount decimal.Decimal) verdict {
	limLo, limHi := r.limitRange(m, p)
	alLo, alHi := r.allocatedRange(m, p)
	others := alHi.Sub(amount)
	switch {
	case amount.LessThanOrEqual(limLo.Sub(others)):
		return succeeds
	case amount.GreaterThan(limHi.Sub(alLo)):
		return refused
	}
	return either
}

// reverseVerdict: a reversal may not take the child's limit below what it
// allocated onward or, for a customer, consumed this month.
func (r *round) reverseVerdict(m *model, c *acct, amount decimal.Decimal) verdict {
	limLo, limHi := r.limitRange(m, c)
	limLo = limLo.Add(amount) // the others' reversals only
	alLo, alHi := r.allocatedRange(m, c)
	coLo, coHi := r.consumedRange(m, c)
	switch {
	case limLo.Sub(amount).GreaterThanOrEqual(decimal.Max(alHi, coHi)):
		return succeeds
	case limHi.Sub(amount).LessThan(decimal.Max(alLo, coLo)):
		return refused
	}
	return either
}

func (o *allocateOp) run(w *world) {
	o.err = o.do(w, o.token, "credit", func(ctx context.Context) error {
		var err error
		if o.reverse {
			_, err = w.credit.Reverse(ctx, o.child, o.amount)
		} else {
			_, err = w.credit.Allocate(ctx, o.child, o.amount)
		}
		return err
	})
}

// phase: an allocation by anyone but the child's partner at the start of
// the round can only have succeeded after the child moved under it.
func (o *allocateOp) phase() int {
	if o.actor == o.parentAtStart {
		return phaseMain
	}
	return phaseAfterMove
}

func (o *allocateOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	c := m.accts[o.child]
	if c.Parent != o.actor {
		v.add("%s: succeeded, but in the model %d is the child's partner", o, c.Parent)
		return
	}
	d := o.amount
	if o.reverse {
		d = d.Neg()
	}
	p := m.accts[o.actor]
	p.Allocated, c.Limit = p.Allocated.Add(d), c.Limit.Add(d)
}

// ledger is the ledger row the allocation wrote: one, of its amount.
func (o *allocateOp) ledger() (kind models.LedgerKind, amount decimal.Decimal, ok bool) {
	if o.err != nil {
		return "", decimal.Zero, false
	}
	if o.reverse {
		return models.LedgerReverse, o.amount.Neg(), true
	}
	return models.LedgerAllocate, o.amount, true
}

// setLimitOp sets a tier-1 partner's credit limit as the platform
// (credit.SetLimit): never below what it already allocated.
type setLimitOp struct {
	base
	partner int64
	token   string
	amount  decimal.Decimal
	// before is the limit at the start of the round (the lane makes this
	// the only change of it).
	before decimal.Decimal
	err    error
}

func (o *setLimitOp) String() string {
	return fmt.Sprintf("%s set limit of %d to %s", o.name, o.partner, o.amount)
}

func (o *setLimitOp) touch(r *round) { r.limitOp[o.partner] = o.amount }

func (o *setLimitOp) predict(m *model, r *round) {
	lo, hi := r.allocatedRange(m, m.accts[o.partner])
	switch {
	case o.amount.GreaterThanOrEqual(hi):
		o.want = succeeds
	case o.amount.LessThan(lo):
		o.want = refused
	default:
		o.want = either
	}
}

func (o *setLimitOp) run(w *world) {
	o.err = o.do(w, o.token, "setLimit", func(ctx context.Context) error {
		_, err := w.credit.SetLimit(ctx, o.partner, o.amount)
		return err
	})
}

func (o *setLimitOp) phase() int { return phaseMain }

func (o *setLimitOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err == nil {
		m.accts[o.partner].Limit = o.amount
	}
}

func (o *setLimitOp) ledger() (models.LedgerKind, decimal.Decimal, bool) {
	return models.LedgerLimit, o.amount.Sub(o.before), o.err == nil
}
