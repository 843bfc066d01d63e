package credit_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/models"
	"partnerd/store"
	"partnerd/testkit"
)

var seedFlag = flag.Uint64("credit.seed", 0, "seed of the randomized credit tests (0: from the clock); the tests log the seed they used")

// testSeed returns the seed of a randomized test and logs how to replay it.
func testSeed(t *testing.T) uint64 {
	s := *seedFlag
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (replay the operations: go test ./credit -run '^%s$' -credit.seed=%d)", s, t.Name(), s)
	return s
}

// randomAmount is a random amount of 0.01..max with cents.
func randomAmount(r *rand.Rand, max int) decimal.Decimal {
	return decimal.New(int64(r.IntN(max*100)+1), -2)
}

// checkCreditInvariants checks DOMAIN.md §3 on the whole database: for every
// account, what it allocated is exactly the sum of its children's limits and
// never above its own limit; and the ledger replays, row by row in id order,
// to the balances each row recorded and finally to the stored balances.
func checkCreditInvariants(t testing.TB, st *store.Store) {
	t.Helper()
	var bals []models.CreditBalance
	if err := st.DB.Raw(`SELECT * FROM credit_balances ORDER BY account_id`).Scan(&bals).Error; err != nil {
		t.Fatal(err)
	}
	var sums []struct {
		ParentID int64
		Total    decimal.Decimal
	}
	if err := st.DB.Raw(`SELECT a.parent_id, sum(b.credit_limit) AS total FROM accounts a
		JOIN credit_balances b ON b.account_id = a.id WHERE a.parent_id IS NOT NULL GROUP BY a.parent_id`).Scan(&sums).Error; err != nil {
		t.Fatal(err)
	}
	childSum := map[int64]decimal.Decimal{}
	for _, s := range sums {
		childSum[s.ParentID] = s.Total
	}
	var ledgerSums []struct {
		AccountID int64
		Limit     decimal.Decimal
		Allocated decimal.Decimal
	}
	if err := st.DB.Raw(`SELECT b.account_id,
			coalesce((SELECT sum(amount) FROM credit_ledger WHERE to_account_id = b.account_id), 0) AS limit,
			coalesce((SELECT sum(amount) FROM credit_ledger WHERE from_account_id = b.account_id AND kind IN ('ALLOCATE','REVERSE')), 0) AS allocated
		FROM credit_balances b`).Scan(&ledgerSums).Error; err != nil {
		t.Fatal(err)
	}
	fromLedger := map[int64][2]decimal.Decimal{}
	for _, l := range ledgerSums {
		fromLedger[l.AccountID] = [2]decimal.Decimal{l.Limit, l.Allocated}
	}

	var rows []models.LedgerEntry
	if err := st.DB.Raw(`SELECT * FROM credit_ledger ORDER BY id`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	limit, alloc := map[int64]decimal.Decimal{}, map[int64]decimal.Decimal{}
	bad := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 20 {
			t.Errorf(format, args...)
		}
	}
	for _, e := range rows {
		limit[e.ToAccountID] = limit[e.ToAccountID].Add(e.Amount)
		moves := e.Kind == models.LedgerAllocate || e.Kind == models.LedgerReverse
		if moves {
			if e.FromAccountID == nil {
				fail("ledger row %d (%s) has no from account", e.ID, e.Kind)
				continue
			}
			alloc[*e.FromAccountID] = alloc[*e.FromAccountID].Add(e.Amount)
		}
		if !e.ToLimitAfter.Equal(limit[e.ToAccountID]) || !e.ToAllocatedAfter.Equal(alloc[e.ToAccountID]) {
			fail("ledger row %d: recorded to-balances %s/%s, replay gives %s/%s",
				e.ID, e.ToLimitAfter, e.ToAllocatedAfter, limit[e.ToAccountID], alloc[e.ToAccountID])
		}
		if moves {
			from := *e.FromAccountID
			if e.FromLimitAfter == nil || e.FromAllocatedAfter == nil {
				fail("ledger row %d: no from-balances", e.ID)
			} else if !e.FromLimitAfter.Equal(limit[from]) || !e.FromAllocatedAfter.Equal(alloc[from]) {
				fail("ledger row %d: recorded from-balances %s/%s, replay gives %s/%s",
					e.ID, *e.FromLimitAfter, *e.FromAllocatedAfter, limit[from], alloc[from])
			}
			if alloc[from].GreaterThan(limit[from]) {
				fail("ledger row %d: account %d allocated %s over its limit %s", e.ID, from, alloc[from], limit[from])
			}
		}
	}
	for _, b := range bals {
		id := b.AccountID
		if !b.Allocated.Equal(childSum[id]) {
			fail("account %d: allocated %s, its children's limits sum to %s", id, b.Allocated, childSum[id])
		}
		if b.Allocated.GreaterThan(b.CreditLimit) {
			fail("account %d: allocated %s over its limit %s", id, b.Allocated, b.CreditLimit)
		}
		if !b.CreditLimit.Equal(limit[id]) || !b.Allocated.Equal(alloc[id]) {
			fail("account %d: stored %s/%s, ledger replays to %s/%s", id, b.CreditLimit, b.Allocated, limit[id], alloc[id])
		}
		if s := fromLedger[id]; !s[0].Equal(b.CreditLimit) || !s[1].Equal(b.Allocated) {
			fail("account %d: stored %s/%s, ledger sums %s/%s", id, b.CreditLimit, b.Allocated, s[0], s[1])
		}
	}
	if bad > 20 {
		t.Errorf("... %d invariant violations in all", bad)
	}
}

// checkArrearsState checks, for every customer whose credit moved, that
// in_arrears says whether its allocation is below this month's consumption
// and that its arrears events alternate entered/left, ending in that state.
func checkArrearsState(t *testing.T, f *fixture) {
	t.Helper()
	var rows []struct {
		AccountID   int64
		CreditLimit decimal.Decimal
		InArrears   bool
		Actual      decimal.Decimal
	}
	err := f.Store.DB.Raw(`SELECT b.account_id, b.credit_limit, b.in_arrears, coalesce(t.actual_total, 0) AS actual
		FROM credit_balances b JOIN accounts a ON a.id = b.account_id AND a.kind = 'CUSTOMER'
		LEFT JOIN spend_totals t ON t.customer_id = b.account_id AND t.month = ?
		WHERE EXISTS (SELECT 1 FROM credit_ledger l WHERE l.to_account_id = b.account_id)`, f.month().Key()).Scan(&rows).Error
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if want := r.CreditLimit.LessThan(r.Actual); r.InArrears != want {
			t.Errorf("customer %d: in_arrears %v with limit %s and consumption %s", r.AccountID, r.InArrears, r.CreditLimit, r.Actual)
		}
		evs := arrearsEvents(t, f.Store, r.AccountID)
		for i, e := range evs {
			want := "credit.arrears_entered"
			if i%2 == 1 {
				want = "credit.arrears_left"
			}
			if e.EventType != want {
				t.Errorf("customer %d: arrears event %d is %s, want %s (events must alternate)", r.AccountID, i, e.EventType, want)
			}
		}
		if last := len(evs)%2 == 1; last != r.InArrears {
			t.Errorf("customer %d: %d arrears events, in_arrears %v", r.AccountID, len(evs), r.InArrears)
		}
	}
}

// concTree is D1 with second-level resellers and customers under it, and
// customers under the resellers, all made through the accounts service.
type concTree struct {
	*fixture
	children  []testkit.Party           // D1's children
	customers map[int64][]testkit.Party // reseller id -> its customers
	resellers []testkit.Party           // D1's children that are resellers
	all       map[int64]testkit.Party   // every account above by id
}

func newConcTree(t *testing.T, resellers, direct int, perReseller []int) *concTree {
	t.Helper()
	f := newFixture(t)
	ct := &concTree{fixture: f, customers: map[int64][]testkit.Party{}, all: map[int64]testkit.Party{}}
	d1 := f.D1.Account.ID
	for i := 0; i < resellers; i++ {
		r := f.Add(t, d1, models.KindReseller, fmt.Sprintf("Concurrent Reseller %d", i))
		ct.children = append(ct.children, r)
		ct.resellers = append(ct.resellers, r)
		ct.all[r.Account.ID] = r
		for j := 0; j < perReseller[i]; j++ {
			c := f.Add(t, r.Account.ID, models.KindCustomer, fmt.Sprintf("Concurrent Customer %d.%d", i, j))
			ct.customers[r.Account.ID] = append(ct.customers[r.Account.ID], c)
			ct.all[c.Account.ID] = c
		}
	}
	for i := 0; i < direct; i++ {
		c := f.Add(t, d1, models.KindCustomer, fmt.Sprintf("Concurrent Direct Customer %d", i))
		ct.children = append(ct.children, c)
		ct.all[c.Account.ID] = c
	}
	return ct
}

type opKind int

const (
	opAllocate opKind = iota
	opReverse
	opSetLimit
)

func (k opKind) String() string { return [...]string{"allocate", "reverse", "setLimit"}[k] }

// creditOp is one operation of a randomized run, fully decided by the seed.
type creditOp struct {
	i      int
	kind   opKind
	by     testkit.Party
	target testkit.Party
	amount decimal.Decimal
	level  string
}

func (o creditOp) String() string {
	return fmt.Sprintf("#%d %s %s %s by %s (%s)", o.i, o.kind, o.amount, o.target.Account.Name, o.by.Account.Name, o.level)
}

// plan draws n operations: allocations and reversals from D1 to its children
// and from the resellers to their customers, some by the platform on the
// partner's behalf, and (when setLimits) the platform moving D1's limit.
func (ct *concTree) plan(r *rand.Rand, n int, setLimits bool) []creditOp {
	ops := make([]creditOp, 0, n)
	for i := 0; i < n; i++ {
		o := creditOp{i: i, kind: opKind(r.IntN(2))}
		if setLimits && r.IntN(20) == 0 {
			o.kind, o.by, o.target, o.level = opSetLimit, ct.Platform, ct.D1, "platform"
			o.amount = decimal.New(int64(6000+r.IntN(8000)), 0)
			ops = append(ops, o)
			continue
		}
		if r.IntN(2) == 0 {
			o.level = "D1->child"
			o.by, o.target = ct.D1, ct.children[r.IntN(len(ct.children))]
			o.amount = randomAmount(r, 2500)
		} else {
			o.level = "reseller->customer"
			var withCustomers []testkit.Party
			for _, rs := range ct.resellers {
				if len(ct.customers[rs.Account.ID]) > 0 {
					withCustomers = append(withCustomers, rs)
				}
			}
			rs := withCustomers[r.IntN(len(withCustomers))]
			cs := ct.customers[rs.Account.ID]
			o.by, o.target = rs, cs[r.IntN(len(cs))]
			o.amount = randomAmount(r, 600)
		}
		if r.IntN(5) == 0 {
			o.by = ct.Platform
		}
		ops = append(ops, o)
	}
	return ops
}

type runStats struct {
	mu      sync.Mutex
	ok      map[string]int
	refused map[string]int
}

// run executes ops from workers goroutines at once. PRECONDITION_FAILED is an
// expected answer; any other error (a deadlock or serialization failure that
// InTx did not absorb, a constraint violation) fails the test.
func (ct *concTree) run(t *testing.T, ops []creditOp, workers int) *runStats {
	t.Helper()
	st := &runStats{ok: map[string]int{}, refused: map[string]int{}}
	ch := make(chan creditOp)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for o := range ch {
				var err error
				switch o.kind {
				case opAllocate:
					_, err = ct.svc.Allocate(o.by.Ctx, o.target.Account.ID, o.amount)
				case opReverse:
					_, err = ct.svc.Reverse(o.by.Ctx, o.target.Account.ID, o.amount)
				case opSetLimit:
					_, err = ct.svc.SetLimit(o.by.Ctx, o.target.Account.ID, o.amount)
				}
				key := o.kind.String() + " " + o.level
				switch {
				case err == nil:
					st.mu.Lock()
					st.ok[key]++
					st.mu.Unlock()
				case apperr.CodeOf(err) == apperr.PreconditionFailed:
					st.mu.Lock()
					st.refused[key]++
					st.mu.Unlock()
				default:
					t.Errorf("%s: %v", o, err)
				}
			}
		}()
	}
	for _, o := range ops {
		ch <- o
	}
	close(ch)
	wg.Wait()
	t.Logf("succeeded: %v", st.ok)
	t.Logf("refused (PRECONDITION_FAILED): %v", st.refused)
	return st
}

// seedBalances gives every child and grandchild some credit first, so the
// concurrent reversals have something to take back.
func (ct *concTree) seedBalances(t *testing.T, limit string) {
	t.Helper()
	ct.setLimit(t, ct.D1, limit)
	for _, c := range ct.children {
		ct.allocate(t, ct.D1, c, fmt.Sprint(400+100*len(ct.customers[c.Account.ID])))
	}
	for _, rs := range ct.resellers {
		for _, c := range ct.customers[rs.Account.ID] {
			ct.allocate(t, rs, c, "100")
		}
	}
}

// TestConcurrentAllocateReverse: 100 allocations and reversals at both
// levels of D1's subtree from 8 goroutines at once never overdraw a partner,
// never surface a deadlock, and leave a ledger that replays exactly to the
// stored balances (DOMAIN.md §3, issue 5 point 3).
func TestConcurrentAllocateReverse(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 0x5eed))
	ct := newConcTree(t, 5, 5, []int{4, 2, 2, 1, 0})
	ct.seedBalances(t, "10000")
	checkCreditInvariants(t, ct.Store)

	stats := ct.run(t, ct.plan(r, 100, false), 8)
	total := func(m map[string]int, kind opKind) (n int) {
		for k, v := range m {
			if strings.HasPrefix(k, kind.String()+" ") {
				n += v
			}
		}
		return n
	}
	if total(stats.ok, opAllocate) == 0 || total(stats.ok, opReverse) == 0 {
		t.Errorf("the run did not exercise both directions: %v", stats.ok)
	}
	checkCreditInvariants(t, ct.Store)
	checkArrearsState(t, ct.fixture)
}

// TestConcurrentCreditRandomized: a larger seeded run of 300 operations that
// also moves D1's limit concurrently and has customers with consumption this
// month (reversals stop at it, allocations move customers in and out of
// arrears).
func TestConcurrentCreditRandomized(t *testing.T) {
	r := rand.New(rand.NewPCG(testSeed(t), 0xc0ffee))
	ct := newConcTree(t, 6, 6, []int{5, 3, 3, 2, 1, 0})
	// Consumption this month for about half of the customers, some above
	// what they will first be given.
	var ids []int64
	for id := range ct.all {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if ct.all[id].Account.Kind == models.KindCustomer && r.IntN(2) == 0 {
			setSpend(t, ct.Store, id, ct.month(), randomAmount(r, 500).String())
		}
	}
	ct.seedBalances(t, "12000")
	ct.run(t, ct.plan(r, 300, true), 8)
	checkCreditInvariants(t, ct.Store)
	checkArrearsState(t, ct.fixture)
}

// BenchmarkAllocate measures allocate/reverse pairs from ~16 concurrent
// clients on one distributor with 1,000 customers directly under it (issue 5,
// Benchmarks). Every operation locks the distributor's credit row, so this is
// the throughput of the hottest lock of the tree. It reports operations per
// second (each pair is two), pairs per second and the latency percentiles of
// single operations.
func BenchmarkAllocate(b *testing.B) {
	st := testkit.NewStore(b, store.Options{})
	tr := testkit.NewTreeOn(b, st)
	svc := credit.New(st, shanghai)
	if _, err := svc.SetLimit(tr.Platform.Ctx, tr.D1.Account.ID, dec("1000000000")); err != nil {
		b.Fatal(err)
	}
	const nCustomers = 1000
	customers := make([]int64, nCustomers)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= nCustomers {
					return
				}
				a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{
					Kind: models.KindCustomer, ParentID: tr.D1.Account.ID, Name: fmt.Sprintf("Bench Customer %04d", i)})
				if err != nil {
					b.Errorf("create customer %d: %v", i, err)
					return
				}
				customers[i] = a.ID
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("created %d customers in %s", nCustomers, time.Since(start).Round(time.Millisecond))

	const clients = 16
	b.Run(fmt.Sprintf("customers=%d/clients=%d", nCustomers, clients), func(b *testing.B) {
		procs := runtime.GOMAXPROCS(0)
		b.SetParallelism((clients + procs - 1) / procs)
		var (
			mu        sync.Mutex
			latencies []time.Duration
			worker    atomic.Uint64
		)
		ctx := tr.D1.Ctx
		b.ResetTimer()
		began := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			r := rand.New(rand.NewPCG(worker.Add(1), 42))
			local := make([]time.Duration, 0, 4096)
			defer func() {
				mu.Lock()
				latencies = append(latencies, local...)
				mu.Unlock()
			}()
			for pb.Next() {
				id := customers[r.IntN(nCustomers)]
				amount := randomAmount(r, 100)
				if !timed(b, ctx, &local, svc.Allocate, id, amount) || !timed(b, ctx, &local, svc.Reverse, id, amount) {
					return
				}
			}
		})
		elapsed := time.Since(began)
		b.StopTimer()
		if len(latencies) == 0 {
			return
		}
		sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
		pct := func(p float64) float64 {
			return float64(latencies[int(p*float64(len(latencies)-1))]) / float64(time.Millisecond)
		}
		b.ReportMetric(float64(len(latencies))/elapsed.Seconds(), "ops/s")
		b.ReportMetric(float64(len(latencies)/2)/elapsed.Seconds(), "pairs/s")
		b.ReportMetric(pct(0.50), "p50-ms")
		b.ReportMetric(pct(0.99), "p99-ms")
	})
	checkCreditInvariants(b, st)
}

func timed(b *testing.B, ctx context.Context, into *[]time.Duration,
	op func(context.Context, int64, decimal.Decimal) (*models.Account, error), id int64, amount decimal.Decimal) bool {
	t0 := time.Now()
	_, err := op(ctx, id, amount)
	*into = append(*into, time.Since(t0))
	if err != nil {
		b.Errorf("credit operation on %d: %v", id, err)
		return false
	}
	return true
}
