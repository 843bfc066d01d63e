package invariants_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/spend"
)

// generator draws the operations of a round from the seeded source and the
// model as the round finds it. It only reads the model.
type generator struct {
	rng *rand.Rand
	m   *model
	r   *round
}

// kinds are the operations a round draws from, with their weights.
var kinds = []struct {
	name   string
	weight int
	draw   func(g *generator) op
}{
	{"allocate", 20, func(g *generator) op { return g.allocate(false) }},
	{"reverse", 12, func(g *generator) op { return g.allocate(true) }},
	{"setLimit", 2, (*generator).setLimit},
	{"ingest", 14, (*generator).ingest},
	{"freeze", 6, func(g *generator) op { return g.guard("freeze") }},
	{"unfreeze", 7, func(g *generator) op { return g.guard("unfreeze") }},
	{"budget", 5, func(g *generator) op { return g.guard("budget") }},
	{"enforce", 4, func(g *generator) op { return g.guard("enforce") }},
	{"unbindRequest", 5, (*generator).unbindRequest},
	{"unbindDecide", 6, (*generator).unbindDecide},
	{"migrate", 6, (*generator).migrate},
	{"advance", 10, (*generator).advance},
	{"associate", 3, (*generator).associate},
}

// draw fills the round with size operations, then has the model judge each
// of them against everything the round may do.
func (g *generator) draw(size int) {
	total := 0
	for _, k := range kinds {
		total += k.weight
	}
	for tries := 0; len(g.r.ops) < size && tries < 50*size; tries++ {
		x := g.rng.IntN(total)
		for _, k := range kinds {
			if x -= k.weight; x < 0 {
				if o := k.draw(g); o != nil {
					o.info().kind = k.name
					g.r.ops = append(g.r.ops, o)
					o.touch(g.r)
				}
				break
			}
		}
	}
	for _, o := range g.r.ops {
		o.predict(g.m, g.r)
	}
}

func (g *generator) base() base {
	return base{name: fmt.Sprintf("r%d.o%d", g.r.n, len(g.r.ops))}
}

func (g *generator) chance(p float64) bool { return g.rng.Float64() < p }

func (g *generator) pick(ids []int64) int64 { return ids[g.rng.IntN(len(ids))] }

// money is a random amount of 0.01 to about max, in cents.
func (g *generator) money(max float64) decimal.Decimal {
	return decimal.New(g.rng.Int64N(int64(max*100))+1, -2)
}

func (g *generator) token(id int64) string { return g.m.accts[id].Token }

// wrongPartner is a partner that may not allocate to child: one above its
// own partner, or any other.
func (g *generator) wrongPartner(child int64) int64 {
	m := g.m
	if p := m.accts[m.accts[child].Parent]; p.Parent != m.platform && g.chance(0.5) {
		return p.Parent
	}
	return g.pick(m.ids(func(a *acct) bool { return a.Kind.IsPartner() && a.ID != m.accts[child].Parent }))
}

// actorFor is who acts on customer c: mostly its partner; sometimes a
// partner above it or the platform, itself, or a partner anywhere.
func (g *generator) actorFor(c *acct) int64 {
	m := g.m
	switch x := g.rng.IntN(100); {
	case x < 75:
		return c.Parent
	case x < 85:
		if p := m.accts[c.Parent]; p.Parent != 0 {
			return p.Parent
		}
		return m.platform
	case x < 92:
		return c.ID
	}
	return g.pick(m.partners())
}

func (g *generator) allocate(reverse bool) op {
	m, r := g.m, g.r
	var child, actor int64
	if len(r.incoming) > 0 && g.chance(0.3) {
		// The receiver of a batch executing now funds one of its customers.
		in := r.incoming[g.rng.IntN(len(r.incoming))]
		actor, child = in[0], in[1]
	} else {
		child = g.pick(m.ids(func(a *acct) bool {
			return (a.Kind == models.KindCustomer || a.Kind == models.KindReseller) && a.Parent != m.platform
		}))
		actor = m.accts[child].Parent
		if g.chance(0.06) {
			actor = g.wrongPartner(child)
		}
	}
	c := m.accts[child]
	var amount decimal.Decimal
	switch {
	case g.chance(0.03):
		amount = decimal.NewFromInt(-g.rng.Int64N(2))
	case reverse:
		amount = g.money(max(50, c.Limit.InexactFloat64()*0.6))
	default:
		p := m.accts[actor]
		amount = g.money(max(50, p.Limit.Sub(p.Allocated).InexactFloat64()*0.4))
	}
	return &allocateOp{base: g.base(), reverse: reverse, actor: actor, child: child, token: g.token(actor), amount: amount, parentAtStart: c.Parent}
}

func (g *generator) setLimit() op {
	m := g.m
	p := m.accts[g.pick(m.ids(func(a *acct) bool { return m.tier1(a) }))]
	if _, taken := g.r.limitOp[p.ID]; taken {
		return nil
	}
	amount := p.Allocated.Mul(decimal.NewFromFloat(0.9 + g.rng.Float64()*0.7)).Add(g.money(2000)).Round(2)
	return &setLimitOp{base: g.base(), partner: p.ID, token: m.platformToken, amount: amount, before: p.Limit}
}

var products = []string{"ecs", "rds", "oss", "cdn", "slb"}

var modes = []models.BillingMode{models.PayPerUse, models.PayPerUse, models.Subscription, models.ReservedInstance}

func (g *generator) ingest() op {
	m, r := g.m, g.r
	o := &ingestOp{base: g.base(), token: m.platformToken}
	targets := m.ofKind(models.KindCustomer, models.KindPersonal)
	used := map[string]bool{}
	add := func(rec spend.Record, f fate) {
		o.recs, o.fates = append(o.recs, rec), append(o.fates, f)
		used[rec.ExternalID] = true
	}
	for i := range 1 + g.rng.IntN(6) {
		rec := g.record(fmt.Sprintf("%s-%d", o.name, i), g.pick(targets))
		switch x := g.rng.IntN(100); {
		case x < 8 && len(m.recordIDs) > 0:
			old := m.records[m.recordIDs[g.rng.IntN(len(m.recordIDs))]]
			if used[old.ExternalID] {
				continue
			}
			if g.chance(0.3) {
				old.List = old.List.Add(decimal.New(1, -2))
				add(old, conflicting)
			} else {
				add(old, replayed)
			}
		case x < 10:
			rec.CustomerID = 1_000_000_000 + g.rng.Int64N(1000) // no such account
			add(rec, rejected)
		case x < 12:
			rec.CustomerID = g.pick(m.partners())
			add(rec, rejected)
		case x < 14:
			rec.Actual = rec.List.Add(decimal.New(1, -2))
			add(rec, rejected)
		case x < 17 && len(o.recs) > 0:
			again := o.recs[g.rng.IntN(len(o.recs))]
			o.recs, o.fates = append(o.recs, again), append(o.fates, rejected) // repeated in the request
		default:
			add(rec, fresh)
		}
	}
	switch {
	case r.shared != nil && g.chance(0.5):
		add(*r.shared, shared)
		r.shared = nil
	case r.shared == nil && g.chance(0.15):
		rec := g.record(o.name+"-shared", g.pick(targets))
		add(rec, shared)
		r.shared = &rec
	}
	if len(o.recs) == 0 {
		return nil
	}
	return o
}

// record is a new expenditure record of account id, used before the round
// began: mostly in the last half hour, sometimes late, in the month before.
func (g *generator) record(ext string, id int64) spend.Record {
	monthStart := models.MonthOf(g.r.start, beijing).Start(beijing)
	usage := g.r.start.Add(-time.Duration(1+g.rng.Int64N(int64(30*time.Minute/time.Microsecond))) * time.Microsecond)
	if g.chance(0.08) {
		usage = monthStart.Add(-time.Duration(1+g.rng.Int64N(10*24*3600)) * time.Second)
	} else if usage.Before(monthStart) {
		usage = monthStart
	}
	list := g.money(60)
	actual := list.Mul(decimal.NewFromInt(40 + g.rng.Int64N(61))).Div(decimal.NewFromInt(100)).Truncate(2)
	return spend.Record{ExternalID: ext, CustomerID: id, ProductCode: products[g.rng.IntN(len(products))], Region: "cn-north-1",
		BillingMode: modes[g.rng.IntN(len(modes))], UsageAt: usage.UTC(), List: list, Actual: actual}
}

func (g *generator) guard(kind string) op {
	m, r := g.m, g.r
	var pool []int64
	switch {
	case kind == "unfreeze" && g.chance(0.8):
		pool = m.ids(func(a *acct) bool { return a.Kind == models.KindCustomer && a.Status != models.StatusActive })
	case g.chance(0.03):
		pool = m.ofKind(models.KindPersonal)
	}
	if len(pool) == 0 {
		pool = m.ofKind(models.KindCustomer)
	}
	c := m.accts[g.pick(pool)]
	if r.statusOp[c.ID] {
		return nil
	}
	o := &guardOp{base: g.base(), kind: kind, customer: c.ID}
	if kind != "enforce" {
		o.actor = g.actorFor(c)
		o.token = g.token(o.actor)
	}
	switch kind {
	case "freeze":
		o.mode = models.FreezeAccount
		if g.chance(0.3) {
			o.mode = models.FreezeAccountAndResources
		}
	case "budget":
		o.amount = g.money(3000).Add(decimal.NewFromInt(200))
		o.action = models.OverspendNone
		if g.chance(0.4) {
			o.action = models.OverspendFreeze
		}
	}
	return o
}

func (g *generator) unbindRequest() op {
	m := g.m
	pool := m.ids(func(a *acct) bool { return a.Kind == models.KindCustomer && a.Batch == 0 && a.Unbinding == 0 })
	if len(pool) == 0 || g.chance(0.3) {
		pool = m.ofKind(models.KindCustomer)
	}
	c := m.accts[g.pick(pool)]
	o := &unbindRequestOp{base: g.base(), customer: c.ID, parent: c.Parent, actor: c.ID, side: lifecycle.SideCustomer}
	if g.chance(0.6) {
		o.side, o.actor = lifecycle.SidePartner, c.Parent
		switch x := g.rng.IntN(100); {
		case x < 5:
			o.actor = m.platform
		case x < 10 && m.accts[c.Parent].Parent != m.platform:
			o.actor = m.accts[c.Parent].Parent // a partner above its own: refused
		}
	}
	o.token = g.token(o.actor)
	return o
}

func (g *generator) unbindDecide() op {
	m, r := g.m, g.r
	var pending []int64
	for _, id := range sortedKeys(m.unbinds) {
		if u := m.unbinds[id]; u.Status == lifecycle.UnbindingPending && !r.unbindOp[id] {
			pending = append(pending, id)
		}
	}
	if len(pending) == 0 || g.chance(0.04) {
		if len(m.closedUnbinds) == 0 {
			return nil
		}
		// Answering an unbinding that has ended: refused.
		u := m.unbinds[m.closedUnbinds[g.rng.IntN(len(m.closedUnbinds))]]
		if r.unbindOp[u.ID] {
			return nil
		}
		return &unbindDecideOp{base: g.base(), id: u.ID, customer: u.Customer, actor: u.Customer, token: g.token(u.Customer), closed: true}
	}
	u := m.unbinds[g.pick(pending)]
	o := &unbindDecideOp{base: g.base(), id: u.ID, customer: u.Customer, confirm: g.chance(0.7)}
	if o.confirm && r.statusOp[u.Customer] {
		return nil
	}
	other := u.RequestedBy == lifecycle.SidePartner
	if g.chance(0.08) {
		other = !other // the side that asked answers: refused
	}
	o.actor = u.Partner
	if other {
		o.actor = u.Customer
	} else if g.chance(0.1) {
		o.actor = m.platform
	}
	o.token = g.token(o.actor)
	return o
}

func (g *generator) migrate() op {
	m := g.m
	sources := m.ids(func(a *acct) bool { return a.Kind.IsPartner() && len(m.childrenOf(a.ID)) > 0 })
	s := g.pick(sources)
	// Mostly customers that may leave (ACTIVE, in no process), sometimes
	// any of the source's.
	free := g.chance(0.8)
	var customers []int64
	for _, id := range m.childrenOf(s) {
		c := m.accts[id]
		if c.Kind == models.KindCustomer && (!free || (c.Status == models.StatusActive && c.Batch == 0 && c.Unbinding == 0)) {
			customers = append(customers, id)
		}
	}
	if len(customers) == 0 {
		return nil
	}
	recv := g.pick(m.ids(func(a *acct) bool { return a.Kind.IsPartner() && a.ID != s }))
	g.rng.Shuffle(len(customers), func(i, j int) { customers[i], customers[j] = customers[j], customers[i] })
	pick := customers[:min(len(customers), 1+g.rng.IntN(3))]
	if g.chance(0.15) {
		// Someone else's customer: rejected.
		other := m.ids(func(a *acct) bool { return a.Kind == models.KindCustomer && a.Parent != s })
		if len(other) > 0 {
			pick = append(pick, g.pick(other))
		}
	}
	o := &migrateOp{base: g.base(), receiver: recv, source: s, token: g.token(recv)}
	for i, c := range pick {
		credit := g.money(400)
		if g.chance(0.1) {
			credit = decimal.Zero
		}
		o.rows = append(o.rows, migration.Row{Line: i + 2, AccountID: c, Credit: credit})
	}
	return o
}

func (g *generator) advance() op {
	m, r := g.m, g.r
	var open []int64
	for _, id := range sortedKeys(m.batches) {
		if b := m.batches[id]; (b.Status.Pending() || b.Status == migration.StatusExecuting) && !r.batchOp[id] {
			open = append(open, id)
		}
	}
	if len(open) == 0 {
		return nil
	}
	b := m.batches[g.pick(open)]
	o := &advanceOp{base: g.base(), batch: b.ID, readToken: g.token(b.Receiver)}
	x := g.rng.IntN(100)
	turn := map[migration.Status]int64{migration.StatusPendingDistributorApproval: b.Distributor,
		migration.StatusPendingSourceApproval: b.Source}[b.Status]
	switch {
	case b.Status == migration.StatusExecuting && x < 90:
		o.action = "execute"
		if g.chance(0.2) {
			o.action = "executeTwice"
		}
	case b.Status == migration.StatusExecuting:
		o.action, o.actor = "cancel", b.Receiver // too late: refused
	case x < 6:
		o.action, o.actor = "cancel", b.Receiver
	case x < 12:
		o.action, o.actor = "reject", turn
	case x < 20:
		// The wrong party: the reviewer before its turn, the source after its
		// own.
		o.action, o.actor = "wrong", m.platform
		if b.Status == migration.StatusPendingInternalReview {
			o.actor = b.Source
		}
	case x < 28 && b.Status == migration.StatusPendingSourceApproval:
		o.action, o.actor = "approveNoAck", b.Source
	default:
		o.action, o.actor = "approve", turn
	}
	switch {
	case o.actor == m.platform && o.action == "wrong":
		o.token = m.reviewerToken
	case turn == 0 && (o.action == "approve" || o.action == "reject"):
		o.actor, o.token = m.platform, m.reviewerToken
	case !o.executes():
		o.token = g.token(o.actor)
	}
	o.touchBatch(r, b)
	return o
}

func (g *generator) associate() op {
	m, r := g.m, g.r
	pool := m.ids(func(a *acct) bool { return a.Kind == models.KindPersonal && !r.statusOp[a.ID] })
	if len(pool) == 0 {
		return nil
	}
	a := m.accts[g.pick(pool)]
	p := g.pick(m.partners())
	return &associateOp{base: g.base(), partner: p, account: a.ID, partnerToken: g.token(p), userToken: a.Token, email: a.Email}
}

func sortedKeys[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
