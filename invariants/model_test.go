package invariants_test

import (
	"slices"
	"sort"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/migration"
	"partnerd/models"
	"partnerd/spend"
)

// model is what the test believes the database holds. It is built from the
// outcomes the services return, never read back from the tables — except
// what only the database knows: the instants of parent changes, and
// whether an unfreeze that raced spend recorded an override.
type model struct {
	platform int64
	// platformToken and reviewerToken act for the platform: an ADMIN and a
	// REVIEWER.
	platformToken, reviewerToken string
	accts                        map[int64]*acct
	// month is the current billing month: the clock never leaves it.
	month int
	// spend and owners are the running totals per customer and per owning
	// partner, by month.
	spend, owners map[spendKey]*sums
	// records are the stored expenditure records by external id, and
	// recordIDs their ids in the order they were stored (for replays).
	records   map[string]spend.Record
	recordIDs []string
	batches   map[int64]*batch
	unbinds   map[int64]*unbinding
	// closedUnbinds are unbindings that ended, to answer again (refused).
	closedUnbinds []int64
}

// acct is one account of the model.
type acct struct {
	ID    int64
	Kind  models.AccountKind
	Depth int
	// Parent is the account's parent (0 for the platform).
	Parent int64
	// Token and Email are its ADMIN user's.
	Token, Email string
	// Limit and Allocated are its credit (DOMAIN.md §3).
	Limit, Allocated decimal.Decimal
	Status           models.AccountStatus
	Reason           models.FrozenReason
	Budget           *budget
	// Batch is the migration batch holding the customer in an open item,
	// Unbinding its pending unbinding (0: none).
	Batch, Unbinding int64
	// History is its owners, oldest first, as account_parent_history has
	// them.
	History []span
}

// span is one owner of an account and when it began to own it.
type span struct {
	From   time.Time
	Parent int64
}

// budget is a customer's MONTHLY budget. Override is the amount at which
// its partner unfroze it while it was exceeded this month (the overspend
// action then leaves this amount alone); OverrideMaybe says the unfreeze
// raced spend, so the override may or may not have been recorded.
type budget struct {
	Amount        decimal.Decimal
	Action        models.OverspendAction
	Override      *decimal.Decimal
	OverrideMaybe bool
}

// covers reports whether the override spares the current amount: never,
// always, or maybe.
func (b *budget) covers() []bool {
	hit := b.Override != nil && b.Override.Equal(b.Amount)
	if hit && b.OverrideMaybe {
		return []bool{false, true}
	}
	return []bool{hit}
}

// batch is a migration batch (DOMAIN.md §6) the model knows of.
type batch struct {
	ID, Receiver, Source int64
	// Distributor approves first when the receiver is a second-level
	// reseller (0: no such step).
	Distributor int64
	Status      migration.Status
	Items       []item
}

// item is one customer of a batch and the credit it asks for it.
type item struct {
	Customer int64
	Credit   decimal.Decimal
}

// unbinding is a customer leaving its partner (DOMAIN.md §1).
type unbinding struct {
	ID, Customer, Partner int64
	RequestedBy           string
	Status                string
}

type spendKey struct {
	id    int64
	month int
}

// sums are running totals: list, actual, prepaid list and records.
type sums struct {
	List, Actual, Prepaid decimal.Decimal
	N                     int64
}

func newModel() *model {
	return &model{accts: map[int64]*acct{}, month: models.MonthOf(start, beijing).Key(),
		spend: map[spendKey]*sums{}, owners: map[spendKey]*sums{}, records: map[string]spend.Record{},
		batches: map[int64]*batch{}, unbinds: map[int64]*unbinding{}}
}

// ids returns the ids of the accounts for which keep is true, in order.
func (m *model) ids(keep func(a *acct) bool) []int64 {
	var out []int64
	for id, a := range m.accts {
		if keep(a) {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

func (m *model) ofKind(kinds ...models.AccountKind) []int64 {
	return m.ids(func(a *acct) bool { return slices.Contains(kinds, a.Kind) })
}

func (m *model) partners() []int64 {
	return m.ofKind(models.KindDistributor, models.KindReseller)
}

func (m *model) childrenOf(p int64) []int64 {
	return m.ids(func(a *acct) bool { return a.Parent == p })
}

// tier1 reports whether a is a partner directly under the platform: its
// limit is set by the platform, not allocated.
func (m *model) tier1(a *acct) bool { return a.Kind.IsPartner() && a.Parent == m.platform }

// secondLevel reports whether a is a reseller under a distributor.
func (m *model) secondLevel(a *acct) bool {
	return a.Kind == models.KindReseller && a.Parent != m.platform
}

// ancestor reports whether p is above c in the tree.
func (m *model) ancestor(p, c int64) bool {
	for a := m.accts[c]; a != nil && a.Parent != 0; a = m.accts[a.Parent] {
		if a.Parent == p {
			return true
		}
	}
	return false
}

// sees reports whether actor's users see account c: the platform sees
// everything, a partner its subtree, anyone else itself.
func (m *model) sees(actor, c int64) bool {
	return actor == m.platform || actor == c || m.ancestor(actor, c)
}

func (m *model) sumsOf(k spendKey) sums {
	if s := m.spend[k]; s != nil {
		return *s
	}
	return sums{}
}

// consumed is the customer's actual spend this month (vouchers never pay
// here): what its available credit is reduced by.
func (m *model) consumed(id int64) decimal.Decimal { return m.sumsOf(spendKey{id, m.month}).Actual }

// listSpent is the customer's list-price spend this month: what a MONTHLY
// budget counts.
func (m *model) listSpent(id int64) decimal.Decimal { return m.sumsOf(spendKey{id, m.month}).List }

// ownerAt is the partner that owned account id at t: the history row in
// force then, the first one for anything before it (spend's rule).
func (m *model) ownerAt(id int64, t time.Time) int64 {
	h := m.accts[id].History
	i := sort.Search(len(h), func(i int) bool { return h[i].From.After(t) })
	if i == 0 {
		return h[0].Parent
	}
	return h[i-1].Parent
}

// store adds a record the database accepted to the running totals.
func (m *model) store(r spend.Record) {
	month := models.MonthOf(r.UsageAt, beijing).Key()
	prepaid := decimal.Zero
	if r.BillingMode != models.PayPerUse {
		prepaid = r.List
	}
	c := m.spend[spendKey{r.CustomerID, month}]
	if c == nil {
		c = &sums{}
		m.spend[spendKey{r.CustomerID, month}] = c
	}
	c.List, c.Actual, c.Prepaid, c.N = c.List.Add(r.List), c.Actual.Add(r.Actual), c.Prepaid.Add(prepaid), c.N+1
	k := spendKey{m.ownerAt(r.CustomerID, r.UsageAt), month}
	o := m.owners[k]
	if o == nil {
		o = &sums{}
		m.owners[k] = o
	}
	o.List, o.Actual, o.N = o.List.Add(r.List), o.Actual.Add(r.Actual), o.N+1
	m.records[r.ExternalID] = r
	m.recordIDs = append(m.recordIDs, r.ExternalID)
}

// move puts customer c under parent as kind (the instant is learnt from
// the database after the round).
func (m *model) move(c *acct, parent int64, kind models.AccountKind) {
	c.Parent, c.Kind, c.Depth = parent, kind, m.accts[parent].Depth+1
	c.History = append(c.History, span{Parent: parent})
}

// round is one batch of operations run at once, and what the model knows
// of them before they run: which accounts they may touch and by how much.
type round struct {
	n int
	// start is the clock when the round was drawn: every record's usage
	// time is before it, every change of the round after it.
	start time.Time
	ops   []op
	// Lanes: at most one operation of the round changes a customer's status
	// (statusOp), answers a given unbinding or advances a given batch, or
	// sets a given partner's limit; processStart counts the operations that
	// may open a process on a customer, mayEnd marks customers whose open
	// process may end, moving those that may change parent.
	statusOp     map[int64]bool
	processStart map[int64]int
	mayEnd       map[int64]bool
	moving       map[int64]bool
	batchOp      map[int64]bool
	unbindOp     map[int64]bool
	limitOp      map[int64]decimal.Decimal
	// incoming are customers that may move under a receiver this round.
	incoming [][2]int64
	// moveCredit is the credit a customer migrating this round receives
	// (its limit becomes it), released marks customers that may leave
	// their partner (their limit becomes 0).
	moveCredit map[int64]decimal.Decimal
	released   map[int64]bool
	// Amounts the round may move: allocated to / reversed from an account,
	// allocated / reversed by a partner, migration credit a receiver may
	// grant, and the actual and list spend a customer may record this month.
	allocIn, revIn, allocBy, revBy, migIn, consIn, listIn map[int64]decimal.Decimal
	// shared is the record sent by two requests of the round, waiting for
	// its second one; wins counts how many requests stored each.
	shared *spend.Record
	wins   map[string]int
}

func newRound(n int, at time.Time) *round {
	d := func() map[int64]decimal.Decimal { return map[int64]decimal.Decimal{} }
	return &round{n: n, start: at, statusOp: map[int64]bool{}, processStart: map[int64]int{}, mayEnd: map[int64]bool{},
		moving: map[int64]bool{}, batchOp: map[int64]bool{}, unbindOp: map[int64]bool{}, limitOp: d(),
		allocIn: d(), revIn: d(), allocBy: d(), revBy: d(), migIn: d(), consIn: d(), listIn: d(), wins: map[string]int{},
		moveCredit: d(), released: map[int64]bool{}}
}

func add(m map[int64]decimal.Decimal, k int64, d decimal.Decimal) { m[k] = m[k].Add(d) }

// limitRange bounds account a's credit limit at any moment of the round.
func (r *round) limitRange(m *model, a *acct) (lo, hi decimal.Decimal) {
	lo, hi = a.Limit.Sub(r.revIn[a.ID]), a.Limit.Add(r.allocIn[a.ID])
	if k, ok := r.moveCredit[a.ID]; ok {
		lo, hi = decimal.Min(lo, k.Sub(r.revIn[a.ID])), decimal.Max(hi, k.Add(r.allocIn[a.ID]))
	}
	if r.released[a.ID] {
		lo = decimal.Min(lo, decimal.Zero)
	}
	if set, ok := r.limitOp[a.ID]; ok {
		lo, hi = decimal.Min(lo, set), decimal.Max(hi, set)
	}
	return lo, hi
}

// allocatedRange bounds what account a has allocated to its children at
// any moment of the round: its own reversals and the releases of children
// leaving may lower it, its allocations and incoming migrations raise it.
func (r *round) allocatedRange(m *model, a *acct) (lo, hi decimal.Decimal) {
	lo, hi = a.Allocated.Sub(r.revBy[a.ID]), a.Allocated.Add(r.allocBy[a.ID]).Add(r.migIn[a.ID])
	for _, c := range m.childrenOf(a.ID) {
		if r.moving[c] {
			_, chi := r.limitRange(m, m.accts[c])
			lo = lo.Sub(chi)
		}
	}
	return lo, hi
}

// consumedRange bounds a customer's actual spend this month during the
// round.
func (r *round) consumedRange(m *model, a *acct) (lo, hi decimal.Decimal) {
	if a.Kind != models.KindCustomer {
		return decimal.Zero, decimal.Zero
	}
	c := m.consumed(a.ID)
	return c, c.Add(r.consIn[a.ID])
}

// availableRange bounds a customer's available credit during the round.
func (r *round) availableRange(m *model, a *acct) (lo, hi decimal.Decimal) {
	llo, lhi := r.limitRange(m, a)
	clo, chi := r.consumedRange(m, a)
	return llo.Sub(chi), lhi.Sub(clo)
}

// possible lists the values a condition may take: [false], [true] or both.
func possible(lo, hi bool) []bool {
	switch {
	case lo && hi:
		return []bool{true}
	case !lo && !hi:
		return []bool{false}
	}
	return []bool{false, true}
}

// overspent lists whether the customer's MONTHLY budget may be exceeded
// during the round.
func (r *round) overspent(m *model, a *acct) []bool {
	if a.Budget == nil {
		return []bool{false}
	}
	l := m.listSpent(a.ID)
	return possible(l.GreaterThanOrEqual(a.Budget.Amount), l.Add(r.listIn[a.ID]).GreaterThanOrEqual(a.Budget.Amount))
}

// inArrears lists whether the customer's available credit may be below 0
// during the round.
func (r *round) inArrears(m *model, a *acct) []bool {
	lo, hi := r.availableRange(m, a)
	return possible(hi.IsNegative(), lo.IsNegative())
}

// tri is a three-valued answer: no, yes, or it depends on the round.
type tri int

const (
	no tri = iota
	yes
	maybe
)

// migratable judges the preconditions of migrating customer c from source
// (DOMAIN.md §6) as they may stand at any moment of the round. self is the
// batch asking at its execution (its own hold and its own move do not
// count; nothing else can move a held customer); opening is true when the
// operation would open a process (another one opening first refuses it).
func (r *round) migratable(m *model, c int64, source, self int64, opening bool) tri {
	a := m.accts[c]
	switch {
	case a == nil:
		return no
	case r.moving[c] && self == 0:
		return maybe
	case a.Kind != models.KindCustomer || a.Parent != source:
		return no
	case (a.Batch != 0 && a.Batch != self) || a.Unbinding != 0:
		if r.mayEnd[c] {
			return maybe
		}
		return no
	case opening && r.processStart[c] > 1:
		return maybe
	case r.statusOp[c]:
		return maybe
	case a.Status != models.StatusActive:
		return no
	}
	lo, hi := r.availableRange(m, a)
	switch {
	case hi.IsNegative():
		return no
	case lo.IsNegative():
		return maybe
	}
	return yes
}

// state is an account's status and the reason it is frozen.
type state struct {
	Status models.AccountStatus
	Reason models.FrozenReason
}

// evaluated is the budget evaluation (guard.Evaluate) of an account in s:
// an ACTIVE customer over its budget with a freezing action and no
// override is frozen for OVERSPEND.
func evaluated(s state, b *budget, over, covered bool) state {
	if b != nil && over && b.Action != models.OverspendNone && !covered && s.Status == models.StatusActive {
		return state{models.StatusFrozen, models.FrozenOverspend}
	}
	return s
}

// enforced is the background enforcement the test runs: guard.Evaluate,
// then guard.ReconcileArrears (suspend an ACTIVE customer in arrears, lift
// an arrears suspension that is over and evaluate the budget again).
func enforced(s state, b *budget, over, covered, arrears bool) state {
	s = evaluated(s, b, over, covered)
	switch {
	case arrears && s.Status == models.StatusActive:
		return state{models.StatusFrozen, models.FrozenArrears}
	case !arrears && s.Status == models.StatusFrozen && s.Reason == models.FrozenArrears:
		return evaluated(state{Status: models.StatusActive}, b, over, covered)
	}
	return s
}
