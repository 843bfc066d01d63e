package invariants_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/shopspring/decimal"

	"partnerd/guard"
	"partnerd/models"
)

// guardOp is one of the status changes of a customer (DOMAIN.md §4), by
// actor: a freeze (guard.Freeze), an unfreeze (guard.Unfreeze), a budget
// (guard.SetBudget, which evaluates it at once), or the background
// enforcement as a worker runs it (guard.Evaluate, guard.ReconcileArrears,
// as the system). A round has at most one of them per customer, so the
// customer's status before it is the model's.
type guardOp struct {
	base
	kind     string // "freeze", "unfreeze", "budget", "enforce"
	actor    int64
	token    string
	customer int64
	mode     models.FreezeMode
	amount   decimal.Decimal
	action   models.OverspendAction
	err      error
	// got is the customer's status after the change, as the service
	// returned it (enforce: as the system reads it after).
	got *state
	// outcomes are the statuses the model accepts after it.
	outcomes []state
	// over: whether the budget may be exceeded when an unfreeze runs
	// (judged at the start of the round).
	over []bool
	// basis is what the model knew of the customer when it judged.
	basis string
}

func (o *guardOp) String() string {
	switch o.kind {
	case "freeze":
		return fmt.Sprintf("%s freeze %d (%s) by %d", o.name, o.customer, o.mode, o.actor)
	case "budget":
		return fmt.Sprintf("%s budget of %d: %s %s by %d", o.name, o.customer, o.amount, o.action, o.actor)
	case "enforce":
		return fmt.Sprintf("%s enforce %d as the system", o.name, o.customer)
	}
	return fmt.Sprintf("%s unfreeze %d by %d", o.name, o.customer, o.actor)
}

func (o *guardOp) touch(r *round) { r.statusOp[o.customer] = true }

func (o *guardOp) predict(m *model, r *round) {
	c := m.accts[o.customer]
	s := state{c.Status, c.Reason}
	// First the statuses it may leave when it succeeds, then whether it
	// must.
	o.outcomes = nil
	switch o.kind {
	case "enforce":
		for _, over := range r.overspent(m, c) {
			for _, covered := range budgetCovers(c.Budget) {
				for _, arrears := range r.inArrears(m, c) {
					o.outcomes = appendState(o.outcomes, enforced(s, c.Budget, over, covered, arrears && c.Kind == models.KindCustomer))
				}
			}
		}
	case "freeze":
		o.outcomes = []state{{o.mode.Status(), models.FrozenManual}}
	case "unfreeze":
		o.outcomes = []state{{Status: models.StatusActive}}
		o.over = r.overspent(m, c)
	case "budget":
		b := o.newBudget(c)
		spent := m.listSpent(c.ID)
		for _, over := range possible(spent.GreaterThanOrEqual(b.Amount), spent.Add(r.listIn[c.ID]).GreaterThanOrEqual(b.Amount)) {
			for _, covered := range b.covers() {
				o.outcomes = appendState(o.outcomes, evaluated(s, b, over, covered))
			}
		}
	}
	o.want = o.verdict(m, r, c)
	alo, ahi := r.availableRange(m, c)
	o.basis = fmt.Sprintf("%s %s/%s, limit %s, consumed %s, available %s..%s, list spent %s+%s, budget %+v",
		c.Kind, c.Status, c.Reason, c.Limit, m.consumed(c.ID), alo, ahi, m.listSpent(c.ID), r.listIn[c.ID], c.Budget)
}

// verdict: the enforcement runs as the system and always answers; the
// partner's changes need the customer in the actor's scope, not the
// actor's own account, and the rules of each.
func (o *guardOp) verdict(m *model, r *round, c *acct) verdict {
	switch {
	case o.kind == "enforce":
		return succeeds
	case r.moving[o.customer]:
		return either
	case o.actor == o.customer, c.Kind != models.KindCustomer, !m.sees(o.actor, o.customer):
		return refused
	}
	switch o.kind {
	case "freeze":
		if c.Status == models.StatusFrozenWithResources && o.mode == models.FreezeAccount {
			return refused
		}
	case "unfreeze":
		if c.Status == models.StatusActive {
			o.outcomes = []state{{c.Status, c.Reason}}
			return succeeds
		}
		lo, hi := r.availableRange(m, c)
		switch {
		case c.Budget == nil || hi.IsNegative():
			return refused
		case lo.IsNegative():
			return either
		}
	}
	return succeeds
}

// budgetCovers is budget.covers for a customer that may have no budget.
func budgetCovers(b *budget) []bool {
	if b == nil {
		return []bool{false}
	}
	return b.covers()
}

func appendState(list []state, s state) []state {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// newBudget is the customer's budget after this one is set: the same type
// keeps the override when it was for the new amount.
func (o *guardOp) newBudget(c *acct) *budget {
	b := &budget{Amount: o.amount, Action: o.action}
	if old := c.Budget; old != nil && old.Override != nil && old.Override.Equal(o.amount) {
		b.Override, b.OverrideMaybe = old.Override, old.OverrideMaybe
	}
	return b
}

func (o *guardOp) run(w *world) {
	var acct *models.Account
	switch o.kind {
	case "freeze":
		o.err = o.do(w, o.token, "freeze", func(ctx context.Context) (err error) {
			acct, err = w.guard.Freeze(ctx, o.customer, o.mode)
			return err
		})
	case "unfreeze":
		o.err = o.do(w, o.token, "unfreeze", func(ctx context.Context) (err error) {
			acct, err = w.guard.Unfreeze(ctx, o.customer)
			return err
		})
	case "budget":
		o.err = o.do(w, o.token, "setBudget", func(ctx context.Context) (err error) {
			acct, err = w.guard.SetBudget(ctx, guardBudget(o.customer, o.amount, o.action))
			return err
		})
	case "enforce":
		o.err = o.do(w, "", "evaluate", func(ctx context.Context) error { return w.guard.Evaluate(ctx, o.customer) })
		if o.err == nil {
			o.err = o.do(w, "", "reconcileArrears", func(ctx context.Context) error { return w.guard.ReconcileArrears(ctx, o.customer) })
		}
		if o.err == nil {
			o.err = o.do(w, "", "read", func(ctx context.Context) (err error) {
				acct, err = w.accounts.Get(ctx, o.customer)
				return err
			})
		}
	}
	if acct != nil {
		s := state{Status: acct.Status}
		if acct.FrozenReason != nil {
			s.Reason = *acct.FrozenReason
		}
		o.got = &s
	}
}

func (o *guardOp) phase() int { return phaseMain }

func (o *guardOp) apply(m *model, r *round, v *violations) {
	o.judge(v, o, o.err)
	if o.err != nil {
		return
	}
	c := m.accts[o.customer]
	if !slices.Contains(o.outcomes, *o.got) {
		v.add("%s: left the customer %s/%s, the model expects one of %v (it knew: %s)", o, o.got.Status, o.got.Reason, o.outcomes, o.basis)
	}
	was := c.Status
	c.Status, c.Reason = o.got.Status, o.got.Reason
	switch o.kind {
	case "budget":
		c.Budget = o.newBudget(c)
	case "unfreeze":
		// Unfreezing over budget is the partner's decision: the override.
		b := c.Budget
		if b == nil || was == models.StatusActive || !slices.Contains(o.over, true) {
			break
		}
		certain := len(o.over) == 1 || (b.Override != nil && b.Override.Equal(b.Amount) && !b.OverrideMaybe)
		amount := b.Amount
		b.Override, b.OverrideMaybe = &amount, !certain
	}
}

// guardBudget is a MONTHLY budget with the default thresholds.
func guardBudget(customer int64, amount decimal.Decimal, action models.OverspendAction) guard.BudgetInput {
	return guard.BudgetInput{CustomerID: customer, Type: models.BudgetMonthly, Amount: amount, OverspendAction: action}
}
