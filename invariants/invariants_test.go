package invariants_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// TestInvariants plays rounds of random concurrent operations on a tree and
// checks the invariants of the money and the tree after every round (see
// the package documentation). INVARIANTS_SEED replays a run,
// INVARIANTS_OPS and INVARIANTS_ROUND size it.
func TestInvariants(t *testing.T) {
	seed := envUint(t, "INVARIANTS_SEED", uint64(time.Now().UnixNano()))
	total := int(envUint(t, "INVARIANTS_OPS", 800))
	size := int(envUint(t, "INVARIANTS_ROUND", 50))
	t.Logf("seed %d: replay with INVARIANTS_SEED=%d (%d operations, %d at once)", seed, seed, total, size)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	began := time.Now()

	w, m := setup(t, rng)
	chk := newChecker(w, m)
	v := &violations{}
	chk.mark(v)
	chk.afterRound(newRound(0, w.st.Now()), v)
	if !v.empty() {
		t.Fatalf("the tree as built breaks the model or an invariant (replay with INVARIANTS_SEED=%d):\n  %s", seed, strings.Join(v.list, "\n  "))
	}

	st := stats{}
	snapshots := 0
	for n, done := 1, 0; done < total; n++ {
		w.clock.Advance(time.Minute)
		r := newRound(n, w.st.Now())
		g := &generator{rng: rng, m: m, r: r}
		g.draw(min(size, total-done))
		if len(r.ops) == 0 {
			t.Fatalf("round %d drew no operation (seed %d)", n, seed)
		}
		v := &violations{}
		chk.mark(v)
		snapshots += chk.run(r, v)
		applyRound(m, r, v)
		chk.afterRound(r, v)
		st.add(r)
		if !v.empty() {
			t.Fatal(report(seed, r, v))
		}
		done += len(r.ops)
		if n%20 == 0 {
			t.Logf("round %d: %d operations, %s", n, done, time.Since(began).Round(time.Millisecond))
		}
	}
	t.Logf("%d operations in %s, %d snapshots checked while they ran (seed %d)\n%s",
		total, time.Since(began).Round(time.Millisecond), snapshots, seed, st)
}

// applyRound brings the model forward from the outcomes, in the order the
// outcomes allow (op.phase), and checks that each record sent by two
// requests of the round was stored by exactly one.
func applyRound(m *model, r *round, v *violations) {
	ops := slices.Clone(r.ops)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].phase() < ops[j].phase() })
	for _, o := range ops {
		o.apply(m, r, v)
	}
	for ext, n := range r.wins {
		if n != 1 {
			v.add("record %s, sent by two requests at once, was stored by %d of them", ext, n)
		}
	}
}

// report is the failure message of a round: what broke, and the round's
// operations with the model's verdict and what the calls answered.
func report(seed uint64, r *round, v *violations) string {
	var b strings.Builder
	fmt.Fprintf(&b, "round %d broke the model or an invariant — replay with INVARIANTS_SEED=%d\n", r.n, seed)
	for i, s := range v.list {
		if i == 40 {
			fmt.Fprintf(&b, "  … and %d more\n", len(v.list)-40)
			break
		}
		fmt.Fprintf(&b, "  - %s\n", s)
	}
	fmt.Fprintf(&b, "the operations of round %d (verdict → answers):\n", r.n)
	for _, o := range r.ops {
		fmt.Fprintf(&b, "  %s [%s] → %s\n", o, o.info().want, o.outcome())
	}
	fmt.Fprintf(&b, "replay with INVARIANTS_SEED=%d", seed)
	return b.String()
}

// stats count, per kind of operation, the verdicts and the answers.
type stats map[string]*[5]int

func (s stats) add(r *round) {
	for _, o := range r.ops {
		b := o.info()
		c := s[b.kind]
		if c == nil {
			c = &[5]int{}
			s[b.kind] = c
		}
		c[b.want]++
		if len(o.refusedCalls()) == 0 {
			c[3]++
		} else {
			c[4]++
		}
	}
}

func (s stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-14s %9s %9s %9s %9s %9s\n", "operation", "succeeds", "refused", "either", "answered", "refused")
	for _, k := range kinds {
		if c := s[k.name]; c != nil {
			fmt.Fprintf(&b, "%-14s %9d %9d %9d %9d %9d\n", k.name, c[succeeds], c[refused], c[either], c[3], c[4])
		}
	}
	return b.String()
}

func envUint(t *testing.T, name string, def uint64) uint64 {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n == 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// setup builds the tree through the services and the model beside it:
// testkit's standard tree plus a second-level reseller R3 under D2, four
// customers under every partner and three personal accounts; the platform
// sets the tier-1 limits, the distributors fund their resellers, and each
// customer gets a budget and credit, most of them unfrozen.
func setup(t *testing.T, rng *rand.Rand) (*world, *model) {
	t.Helper()
	clk := &tickClock{now: start}
	st := storetest.New(t, store.Options{Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	tr := testkit.NewTreeOn(t, st)
	w := newWorld(st, clk, tr.Accounts)
	m := newModel()
	m.platform, m.platformToken = tr.Platform.Account.ID, tr.Platform.Token
	m.reviewerToken = tr.AddUser(t, tr.Platform.Account, models.RoleReviewer).Token
	m.accts[m.platform] = &acct{ID: m.platform, Kind: models.KindPlatform, Token: tr.Platform.Token,
		Status: models.StatusActive}

	enter := func(p testkit.Party) *acct {
		a := p.Account
		x := &acct{ID: a.ID, Kind: a.Kind, Depth: a.Depth, Parent: *a.ParentID, Token: p.Token, Email: p.User.Email,
			Status: a.Status, History: []span{{Parent: *a.ParentID}}}
		if a.FrozenReason != nil {
			x.Reason = *a.FrozenReason
		}
		m.accts[a.ID] = x
		return x
	}
	for _, p := range []testkit.Party{tr.D1, tr.R1, tr.R2, tr.C1, tr.C2, tr.C3, tr.S1, tr.C4, tr.D2, tr.C5, tr.P1} {
		enter(p)
	}
	r3 := enter(tr.Add(t, tr.D2.Account.ID, models.KindReseller, "Reseller Three"))
	for i := 2; i <= 3; i++ {
		enter(tr.Add(t, m.platform, models.KindPersonal, fmt.Sprintf("Personal %d", i)))
	}
	partners := []int64{tr.D1.Account.ID, tr.R1.Account.ID, tr.R2.Account.ID, tr.S1.Account.ID, tr.D2.Account.ID, r3.ID}
	for _, p := range partners {
		for i := len(m.childrenOf(p)); i < 4+countKind(m, p, models.KindReseller); i++ {
			enter(tr.Add(t, p, models.KindCustomer, fmt.Sprintf("Customer %d-%d", p, i)))
		}
	}

	must := func(what, token string, fn func(ctx context.Context) error) {
		t.Helper()
		ctx, err := w.ctx(token, "setup")
		if err == nil {
			err = fn(ctx)
		}
		if err != nil {
			t.Fatalf("setup: %s: %v", what, err)
		}
	}
	for _, p := range []int64{tr.D1.Account.ID, tr.D2.Account.ID, tr.S1.Account.ID} {
		limit := decimal.NewFromInt(30000 + 5000*rng.Int64N(4))
		must("set limit", m.platformToken, func(ctx context.Context) error {
			_, err := w.credit.SetLimit(ctx, p, limit)
			return err
		})
		m.accts[p].Limit = limit
	}
	allocate := func(child int64, amount decimal.Decimal) {
		c := m.accts[child]
		must("allocate", m.accts[c.Parent].Token, func(ctx context.Context) error {
			_, err := w.credit.Allocate(ctx, child, amount)
			return err
		})
		p := m.accts[c.Parent]
		p.Allocated, c.Limit = p.Allocated.Add(amount), c.Limit.Add(amount)
	}
	for _, r := range []int64{tr.R1.Account.ID, tr.R2.Account.ID, r3.ID} {
		allocate(r, decimal.NewFromInt(5000+1000*rng.Int64N(4)))
	}
	for _, id := range m.ofKind(models.KindCustomer) {
		c := m.accts[id]
		b := &budget{Amount: decimal.NewFromInt(1000 + 500*rng.Int64N(7)), Action: models.OverspendNone}
		if rng.IntN(10) < 4 {
			b.Action = models.OverspendFreeze
		}
		must("set budget", m.accts[c.Parent].Token, func(ctx context.Context) error {
			_, err := w.guard.SetBudget(ctx, guardBudget(id, b.Amount, b.Action))
			return err
		})
		c.Budget = b
		allocate(id, decimal.NewFromInt(300+100*rng.Int64N(8)))
		if rng.IntN(10) < 8 {
			must("unfreeze", m.accts[c.Parent].Token, func(ctx context.Context) error {
				_, err := w.guard.Unfreeze(ctx, id)
				return err
			})
			c.Status, c.Reason = models.StatusActive, ""
		}
	}
	return w, m
}

// countKind counts p's children of kind k.
func countKind(m *model, p int64, k models.AccountKind) int {
	n := 0
	for _, c := range m.childrenOf(p) {
		if m.accts[c].Kind == k {
			n++
		}
	}
	return n
}
