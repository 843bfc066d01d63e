package credit_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

var shanghai = storetest.Shanghai

type fixture struct {
	*testkit.Tree
	svc   *credit.Service
	clock *storetest.Clock
}

// newFixture builds the standard tree on a store whose clock stands at
// 2025-03-15 12:00 Beijing time (month 2025-03).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := storetest.NewClock(time.Date(2025, 3, 15, 4, 0, 0, 0, time.UTC))
	st := testkit.NewStore(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	return &fixture{Tree: tr, svc: credit.New(st, shanghai), clock: clk}
}

// month is the billing month the fixture's clock is in.
func (f *fixture) month() models.Month { return models.MonthOf(f.clock.Now(), shanghai) }

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func wantCode(t *testing.T, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: got %v (code %q), want %s", what, err, got, code)
	}
}

func mustOK(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantDec(t *testing.T, what string, got decimal.Decimal, want string) {
	t.Helper()
	if !got.Equal(dec(want)) {
		t.Errorf("%s = %s, want %s", what, got, want)
	}
}

func count(t testing.TB, st *store.Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.DB.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func balance(t testing.TB, st *store.Store, id int64) models.CreditBalance {
	t.Helper()
	var b models.CreditBalance
	if err := st.DB.Raw(`SELECT * FROM credit_balances WHERE account_id = ?`, id).Scan(&b).Error; err != nil {
		t.Fatalf("balance of %d: %v", id, err)
	}
	if b.AccountID == 0 {
		t.Fatalf("no credit row for %d", id)
	}
	return b
}

func lastLedger(t *testing.T, st *store.Store) models.LedgerEntry {
	t.Helper()
	var e models.LedgerEntry
	if err := st.DB.Raw(`SELECT * FROM credit_ledger ORDER BY id DESC LIMIT 1`).Scan(&e).Error; err != nil {
		t.Fatal(err)
	}
	if e.ID == 0 {
		t.Fatal("the ledger is empty")
	}
	return e
}

// setSpend records a customer's running totals for a month, as the
// expenditure ingestion would.
func setSpend(t *testing.T, st *store.Store, customerID int64, m models.Month, actual string) {
	t.Helper()
	err := st.DB.Exec(`INSERT INTO spend_totals (customer_id, month, list_total, actual_total, records) VALUES (?, ?, ?, ?, 1)
		ON CONFLICT (customer_id, month) DO UPDATE SET list_total = EXCLUDED.list_total, actual_total = EXCLUDED.actual_total`,
		customerID, m.Key(), dec(actual), dec(actual)).Error
	if err != nil {
		t.Fatalf("spend totals: %v", err)
	}
}

// snapshot is everything a refused credit operation must leave untouched.
type snapshot struct {
	balances              map[int64]string
	ledger, audit, outbox int64
}

func takeSnapshot(t *testing.T, st *store.Store) snapshot {
	t.Helper()
	var rows []models.CreditBalance
	if err := st.DB.Raw(`SELECT * FROM credit_balances`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	s := snapshot{balances: map[int64]string{}}
	for _, b := range rows {
		s.balances[b.AccountID] = fmt.Sprintf("%s/%s arrears=%v exempt=%v/%v",
			b.CreditLimit, b.Allocated, b.InArrears, b.ExemptPostpaid, b.ExemptPrepaid)
	}
	s.ledger = count(t, st, `SELECT count(*) FROM credit_ledger`)
	s.audit = count(t, st, `SELECT count(*) FROM audit_log`)
	s.outbox = count(t, st, `SELECT count(*) FROM outbox`)
	return s
}

func (s snapshot) assertSame(t *testing.T, st *store.Store, what string) {
	t.Helper()
	now := takeSnapshot(t, st)
	if now.ledger != s.ledger || now.audit != s.audit || now.outbox != s.outbox {
		t.Errorf("%s: rows written by a refused operation: ledger %d->%d audit %d->%d outbox %d->%d",
			what, s.ledger, now.ledger, s.audit, now.audit, s.outbox, now.outbox)
	}
	for id, b := range s.balances {
		if now.balances[id] != b {
			t.Errorf("%s: credit of %d changed: %s -> %s", what, id, b, now.balances[id])
		}
	}
}

func (f *fixture) setLimit(t *testing.T, p testkit.Party, amount string) {
	t.Helper()
	_, err := f.svc.SetLimit(f.Platform.Ctx, p.Account.ID, dec(amount))
	mustOK(t, "set limit of "+p.Account.Name, err)
}

func (f *fixture) allocate(t *testing.T, by, to testkit.Party, amount string) {
	t.Helper()
	_, err := f.svc.Allocate(by.Ctx, to.Account.ID, dec(amount))
	mustOK(t, "allocate "+amount+" to "+to.Account.Name, err)
}

// TestSetLimit_PlatformSetsTier1Limit: the platform's ADMIN and FINANCE set a
// tier-1 partner's limit; each change is a LIMIT ledger row with the delta and
// the balances it left, audited and announced.
func TestSetLimit_PlatformSetsTier1Limit(t *testing.T) {
	f := newFixture(t)
	fin := f.AddUser(t, f.Platform.Account, models.RoleFinance)
	d1 := f.D1.Account.ID

	acct, err := f.svc.SetLimit(f.Platform.Ctx, d1, dec("1000"))
	mustOK(t, "admin sets limit", err)
	if acct.ID != d1 {
		t.Fatalf("returned account %d, want %d", acct.ID, d1)
	}
	e := lastLedger(t, f.Store)
	if e.Kind != models.LedgerLimit || e.ToAccountID != d1 || e.FromAccountID == nil || *e.FromAccountID != f.Platform.Account.ID {
		t.Fatalf("ledger row = %+v, want LIMIT platform -> D1", e)
	}
	wantDec(t, "ledger amount", e.Amount, "1000")
	wantDec(t, "to limit after", e.ToLimitAfter, "1000")
	wantDec(t, "to allocated after", e.ToAllocatedAfter, "0")
	if e.FromLimitAfter != nil || e.FromAllocatedAfter != nil {
		t.Errorf("the platform has no balances, got from balances %v/%v", e.FromLimitAfter, e.FromAllocatedAfter)
	}
	if e.ActorUserID == nil || !strings.HasPrefix(e.Actor, "user:") {
		t.Errorf("ledger row actor = %q (user %v), want the platform's admin user", e.Actor, e.ActorUserID)
	}

	f.allocate(t, f.D1, f.R1, "300")
	_, err = f.svc.SetLimit(fin.Ctx, d1, dec("1500.25"))
	mustOK(t, "finance raises limit", err)
	e = lastLedger(t, f.Store)
	wantDec(t, "raise delta", e.Amount, "500.25")
	wantDec(t, "limit after raise", e.ToLimitAfter, "1500.25")
	wantDec(t, "allocated after raise", e.ToAllocatedAfter, "300")
	if e.ActorUserID == nil || *e.ActorUserID != fin.User.ID {
		t.Errorf("actor user = %v, want finance user %d", e.ActorUserID, fin.User.ID)
	}

	_, err = f.svc.SetLimit(fin.Ctx, d1, dec("300"))
	mustOK(t, "lower to exactly the allocated credit", err)
	e = lastLedger(t, f.Store)
	wantDec(t, "lowering delta", e.Amount, "-1200.25")
	wantDec(t, "limit after lowering", e.ToLimitAfter, "300")
	b := balance(t, f.Store, d1)
	wantDec(t, "stored limit", b.CreditLimit, "300")
	wantDec(t, "stored allocated", b.Allocated, "300")

	if n := count(t, f.Store, `SELECT count(*) FROM audit_log WHERE action = 'credit.set_limit' AND account_id = ?`, d1); n != 3 {
		t.Errorf("set_limit audit rows = %d, want 3", n)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = 'credit.limit_set' AND account_id = ?`, d1); n != 3 {
		t.Errorf("credit.limit_set events = %d, want 3", n)
	}

	// A single-tier reseller is a tier-1 partner too.
	f.setLimit(t, f.S1, "50")
	wantDec(t, "S1 limit", balance(t, f.Store, f.S1.Account.ID).CreditLimit, "50")
}

// TestSetLimit_Refusals: every caller and target SetLimit must refuse, with the
// right code and nothing written.
func TestSetLimit_Refusals(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.R1, "400")
	platViewer := f.AddUser(t, f.Platform.Account, models.RoleViewer)
	platOperator := f.AddUser(t, f.Platform.Account, models.RoleOperator)
	d1Finance := f.AddUser(t, f.D1.Account, models.RoleFinance)

	cases := []struct {
		name    string
		by      testkit.Party
		target  testkit.Party
		amount  string
		code    apperr.Code
		message string
	}{
		{"negative", f.Platform, f.D1, "-1", apperr.Validation, "negative"},
		{"second-level reseller", f.Platform, f.R1, "10", apperr.Validation, ""},
		{"customer under a distributor", f.Platform, f.C3, "10", apperr.Validation, ""},
		{"customer under a reseller", f.Platform, f.C1, "10", apperr.Validation, ""},
		{"personal account", f.Platform, f.P1, "10", apperr.Validation, ""},
		{"partner on itself", f.D1, f.D1, "5000", apperr.Forbidden, ""},
		{"partner finance on itself", d1Finance, f.D1, "5000", apperr.Forbidden, ""},
		{"partner on its child", f.D1, f.R1, "10", apperr.Forbidden, ""},
		{"partner on another partner", f.D1, f.D2, "10", apperr.NotFound, ""},
		{"platform viewer", platViewer, f.D1, "2000", apperr.Forbidden, ""},
		{"platform operator", platOperator, f.D1, "2000", apperr.Forbidden, ""},
		{"below allocated", f.Platform, f.D1, "399.99", apperr.PreconditionFailed, "400.00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := takeSnapshot(t, f.Store)
			_, err := f.svc.SetLimit(c.by.Ctx, c.target.Account.ID, dec(c.amount))
			wantCode(t, "set limit", err, c.code)
			if c.message != "" && !strings.Contains(err.Error(), c.message) {
				t.Errorf("message %q does not mention %q", err, c.message)
			}
			before.assertSame(t, f.Store, c.name)
		})
	}
}

// TestAllocate_WithinAllocatable: a distributor allocates to a second-level
// reseller and to a direct customer up to its allocatable credit; the
// reseller's limit is exactly what it was allocated and it allocates onward.
func TestAllocate_WithinAllocatable(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	d1, r1, c1, c3 := f.D1.Account.ID, f.R1.Account.ID, f.C1.Account.ID, f.C3.Account.ID

	acct, err := f.svc.Allocate(f.D1.Ctx, r1, dec("600"))
	mustOK(t, "D1 -> R1", err)
	if acct.ID != r1 {
		t.Fatalf("returned account %d, want R1 %d", acct.ID, r1)
	}
	e := lastLedger(t, f.Store)
	if e.Kind != models.LedgerAllocate || e.FromAccountID == nil || *e.FromAccountID != d1 || e.ToAccountID != r1 {
		t.Fatalf("ledger row = %+v, want ALLOCATE D1 -> R1", e)
	}
	wantDec(t, "amount", e.Amount, "600")
	wantDec(t, "from limit after", *e.FromLimitAfter, "1000")
	wantDec(t, "from allocated after", *e.FromAllocatedAfter, "600")
	wantDec(t, "to limit after", e.ToLimitAfter, "600")
	wantDec(t, "to allocated after", e.ToAllocatedAfter, "0")
	if e.ActorUserID == nil || *e.ActorUserID != f.D1.User.ID {
		t.Errorf("actor = %v, want D1's admin %d", e.ActorUserID, f.D1.User.ID)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM audit_log WHERE action = 'credit.allocate' AND account_id = ?`, r1); n != 1 {
		t.Errorf("allocate audit rows = %d, want 1", n)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = 'credit.allocated' AND account_id = ?`, r1); n != 1 {
		t.Errorf("credit.allocated events = %d, want 1", n)
	}

	f.allocate(t, f.D1, f.C3, "300")
	v, err := f.svc.View(f.D1.Ctx, d1)
	mustOK(t, "view D1", err)
	wantDec(t, "D1 limit", v.Limit, "1000")
	wantDec(t, "D1 allocated", v.Allocated, "900")
	wantDec(t, "D1 allocatable", v.Allocatable, "100")
	wantDec(t, "R1 limit", balance(t, f.Store, r1).CreditLimit, "600")
	wantDec(t, "C3 limit", balance(t, f.Store, c3).CreditLimit, "300")

	// More than allocatable: refused, nothing changed.
	before := takeSnapshot(t, f.Store)
	_, err = f.svc.Allocate(f.D1.Ctx, r1, dec("100.01"))
	wantCode(t, "allocate beyond allocatable", err, apperr.PreconditionFailed)
	if !strings.Contains(err.Error(), "100.00") {
		t.Errorf("message %q does not say how much can be allocated", err)
	}
	before.assertSame(t, f.Store, "over-allocation")

	f.allocate(t, f.D1, f.R1, "100")
	b := balance(t, f.Store, d1)
	wantDec(t, "D1 allocated", b.Allocated, "1000")
	wantDec(t, "R1 limit (exactly what D1 allocated)", balance(t, f.Store, r1).CreditLimit, "700")

	// The reseller allocates onward from what it was given.
	f.allocate(t, f.R1, f.C1, "250")
	rb := balance(t, f.Store, r1)
	wantDec(t, "R1 allocated", rb.Allocated, "250")
	wantDec(t, "C1 limit", balance(t, f.Store, c1).CreditLimit, "250")
	e = lastLedger(t, f.Store)
	if *e.FromAccountID != r1 || e.ToAccountID != c1 {
		t.Fatalf("ledger row = %+v, want R1 -> C1", e)
	}
	wantDec(t, "R1 allocated after", *e.FromAllocatedAfter, "250")
	_, err = f.svc.Allocate(f.R1.Ctx, c1, dec("450.01"))
	wantCode(t, "R1 beyond its own allocatable", err, apperr.PreconditionFailed)
}

// TestAllocate_PlatformOnBehalf: the platform may allocate and reverse on a
// partner's behalf; the credit still moves from the child's own partner.
func TestAllocate_PlatformOnBehalf(t *testing.T) {
	f := newFixture(t)
	fin := f.AddUser(t, f.Platform.Account, models.RoleFinance)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.Platform, f.R1, "200")
	f.allocate(t, fin, f.C1, "50")
	e := lastLedger(t, f.Store)
	if e.FromAccountID == nil || *e.FromAccountID != f.R1.Account.ID || e.ToAccountID != f.C1.Account.ID {
		t.Fatalf("ledger row = %+v, want R1 -> C1", e)
	}
	if e.ActorUserID == nil || *e.ActorUserID != fin.User.ID {
		t.Errorf("actor = %v, want platform finance user %d", e.ActorUserID, fin.User.ID)
	}
	_, err := f.svc.Reverse(fin.Ctx, f.C1.Account.ID, dec("20"))
	mustOK(t, "platform reverses", err)
	wantDec(t, "D1 allocated", balance(t, f.Store, f.D1.Account.ID).Allocated, "200")
	wantDec(t, "R1 allocated", balance(t, f.Store, f.R1.Account.ID).Allocated, "30")
	wantDec(t, "C1 limit", balance(t, f.Store, f.C1.Account.ID).CreditLimit, "30")
}

// TestAllocateReverse_Refusals: who may move credit to whom, for both
// directions; every refusal leaves the database untouched.
func TestAllocateReverse_Refusals(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.setLimit(t, f.D2, "1000")
	f.allocate(t, f.D1, f.R1, "100")
	f.allocate(t, f.D1, f.R2, "100")
	f.allocate(t, f.R1, f.C1, "10")
	f.allocate(t, f.R2, f.C2, "10")
	f.allocate(t, f.D1, f.C3, "10")
	d1Viewer := f.AddUser(t, f.D1.Account, models.RoleViewer)
	d1Operator := f.AddUser(t, f.D1.Account, models.RoleOperator)
	r1Viewer := f.AddUser(t, f.R1.Account, models.RoleViewer)
	platViewer := f.AddUser(t, f.Platform.Account, models.RoleViewer)

	cases := []struct {
		name   string
		by     testkit.Party
		target testkit.Party
		amount string
		code   apperr.Code
	}{
		{"zero", f.D1, f.R1, "0", apperr.Validation},
		{"negative", f.D1, f.R1, "-5", apperr.Validation},
		{"grandchild in scope", f.D1, f.C1, "1", apperr.Forbidden},
		{"sibling's customer", f.R1, f.C2, "1", apperr.NotFound},
		{"another distributor's customer", f.D1, f.C5, "1", apperr.NotFound},
		{"tier-1 partner by platform", f.Platform, f.D1, "1", apperr.Validation},
		{"tier-1 partner by itself", f.D1, f.D1, "1", apperr.Validation},
		{"personal account", f.Platform, f.P1, "1", apperr.Validation},
		{"reseller on itself", f.R1, f.R1, "1", apperr.Forbidden},
		{"customer on itself", f.C3, f.C3, "1", apperr.Forbidden},
		{"viewer", d1Viewer, f.R1, "1", apperr.Forbidden},
		{"operator", d1Operator, f.C3, "1", apperr.Forbidden},
		{"reseller viewer", r1Viewer, f.C1, "1", apperr.Forbidden},
		{"platform viewer", platViewer, f.R1, "1", apperr.Forbidden},
	}
	ops := map[string]func(context.Context, int64, decimal.Decimal) (*models.Account, error){
		"allocate": f.svc.Allocate,
		"reverse":  f.svc.Reverse,
	}
	for opName, op := range ops {
		for _, c := range cases {
			t.Run(opName+"/"+c.name, func(t *testing.T) {
				before := takeSnapshot(t, f.Store)
				_, err := op(c.by.Ctx, c.target.Account.ID, dec(c.amount))
				wantCode(t, opName, err, c.code)
				before.assertSame(t, f.Store, c.name)
			})
		}
	}
}

// TestReverse_NotBelowAllocatedOnward: a reversal never takes a reseller
// below what it already allocated to its own customers.
func TestReverse_NotBelowAllocatedOnward(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.R1, "100")
	f.allocate(t, f.R1, f.C1, "30")
	r1, d1 := f.R1.Account.ID, f.D1.Account.ID

	before := takeSnapshot(t, f.Store)
	_, err := f.svc.Reverse(f.D1.Ctx, r1, dec("80"))
	wantCode(t, "reverse 80 of 100 with 30 allocated onward", err, apperr.PreconditionFailed)
	if !strings.Contains(err.Error(), "at most 70.00") {
		t.Errorf("message %q does not say that 70.00 can be reversed", err)
	}
	before.assertSame(t, f.Store, "refused reversal")

	acct, err := f.svc.Reverse(f.D1.Ctx, r1, dec("70"))
	mustOK(t, "reverse 70", err)
	if acct.ID != r1 {
		t.Errorf("returned %d, want R1", acct.ID)
	}
	e := lastLedger(t, f.Store)
	if e.Kind != models.LedgerReverse || *e.FromAccountID != d1 || e.ToAccountID != r1 {
		t.Fatalf("ledger row = %+v, want REVERSE D1 -> R1", e)
	}
	wantDec(t, "ledger amount", e.Amount, "-70")
	wantDec(t, "D1 allocated after", *e.FromAllocatedAfter, "30")
	wantDec(t, "R1 limit after", e.ToLimitAfter, "30")
	wantDec(t, "R1 allocated after", e.ToAllocatedAfter, "30")
	if n := count(t, f.Store, `SELECT count(*) FROM outbox WHERE event_type = 'credit.reversed' AND account_id = ?`, r1); n != 1 {
		t.Errorf("credit.reversed events = %d, want 1", n)
	}
	if n := count(t, f.Store, `SELECT count(*) FROM audit_log WHERE action = 'credit.reverse' AND account_id = ?`, r1); n != 1 {
		t.Errorf("credit.reverse audit rows = %d, want 1", n)
	}
	wantDec(t, "D1 allocated", balance(t, f.Store, d1).Allocated, "30")

	_, err = f.svc.Reverse(f.D1.Ctx, r1, dec("0.01"))
	wantCode(t, "reverse below allocated onward", err, apperr.PreconditionFailed)
	if !strings.Contains(err.Error(), "at most 0.00") {
		t.Errorf("message %q does not say that nothing can be reversed", err)
	}
	// Once R1 takes back from C1, D1 may reverse that much more.
	_, err = f.svc.Reverse(f.R1.Ctx, f.C1.Account.ID, dec("30"))
	mustOK(t, "R1 reverses C1", err)
	_, err = f.svc.Reverse(f.D1.Ctx, r1, dec("30"))
	mustOK(t, "D1 reverses the rest", err)
	wantDec(t, "D1 allocated", balance(t, f.Store, d1).Allocated, "0")
	wantDec(t, "R1 limit", balance(t, f.Store, r1).CreditLimit, "0")
}

// TestReverse_NotBelowConsumedThisMonth: a customer's allocation never goes
// below its actual consumption of the current (Beijing) month; last month's
// consumption does not hold anything back.
func TestReverse_NotBelowConsumedThisMonth(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.C3, "100")
	c3 := f.C3.Account.ID
	setSpend(t, f.Store, c3, f.month().Prev(), "1000")
	setSpend(t, f.Store, c3, f.month(), "40")

	before := takeSnapshot(t, f.Store)
	_, err := f.svc.Reverse(f.D1.Ctx, c3, dec("60.01"))
	wantCode(t, "reverse below consumption", err, apperr.PreconditionFailed)
	if !strings.Contains(err.Error(), "at most 60.00") || !strings.Contains(err.Error(), "40.00") {
		t.Errorf("message %q does not say the floor (40.00) and what can be reversed (60.00)", err)
	}
	before.assertSame(t, f.Store, "refused reversal")

	_, err = f.svc.Reverse(f.D1.Ctx, c3, dec("60"))
	mustOK(t, "reverse down to the consumption", err)
	wantDec(t, "C3 limit", balance(t, f.Store, c3).CreditLimit, "40")
	wantDec(t, "D1 allocated", balance(t, f.Store, f.D1.Account.ID).Allocated, "40")

	// More than the allocation itself is refused even without consumption.
	f.allocate(t, f.D1, f.R1, "10")
	_, err = f.svc.Reverse(f.D1.Ctx, f.R1.Account.ID, dec("10.01"))
	wantCode(t, "reverse more than allocated", err, apperr.PreconditionFailed)
}

// TestReverse_MonthBoundaryInBeijingTime: the consumption that holds an
// allocation back is the current month's in Beijing time, so at 16:00 UTC on
// the last day of a month it no longer counts.
func TestReverse_MonthBoundaryInBeijingTime(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(time.Date(2025, 3, 31, 15, 59, 59, 0, time.UTC)) // 23:59:59 Beijing, still March
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.C3, "100")
	c3 := f.C3.Account.ID
	setSpend(t, f.Store, c3, models.Month{Year: 2025, Month: time.March}, "80")

	v, err := f.svc.View(f.D1.Ctx, c3)
	mustOK(t, "view", err)
	wantDec(t, "available on March 31st", v.Available, "20")
	_, err = f.svc.Reverse(f.D1.Ctx, c3, dec("21"))
	wantCode(t, "reverse in March", err, apperr.PreconditionFailed)

	f.clock.Set(time.Date(2025, 3, 31, 16, 0, 0, 0, time.UTC)) // 00:00 April 1st in Beijing
	v, err = f.svc.View(f.D1.Ctx, c3)
	mustOK(t, "view", err)
	wantDec(t, "available on April 1st (Beijing)", v.Available, "100")
	wantDec(t, "consumed on April 1st (Beijing)", v.Consumed, "0")
	_, err = f.svc.Reverse(f.D1.Ctx, c3, dec("100"))
	mustOK(t, "reverse everything in April", err)
}

// TestViews_PartnersAndCustomers: limit, allocated, allocatable and available
// for partners and customers; arrears when a customer's available credit is
// negative; last month's spend does not count; scope applies.
func TestViews_PartnersAndCustomers(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.R1, "100")
	f.allocate(t, f.R1, f.C1, "30")
	f.allocate(t, f.D1, f.C3, "200")
	d1, r1, c1, c3 := f.D1.Account.ID, f.R1.Account.ID, f.C1.Account.ID, f.C3.Account.ID
	setSpend(t, f.Store, c1, f.month(), "10.5")
	setSpend(t, f.Store, c1, f.month().Prev(), "9999")
	setSpend(t, f.Store, c3, f.month(), "250")
	setSpend(t, f.Store, c3, f.month().Prev(), "500")
	_, err := f.svc.SetExemption(f.D1.Ctx, c3, false, true)
	mustOK(t, "exemption", err)

	type want struct {
		limit, allocated, allocatable, available, consumed, arrears string
		inArrears                                                   bool
	}
	wants := map[int64]want{
		d1: {"1000", "300", "700", "700", "0", "0", false},
		r1: {"100", "30", "70", "70", "0", "0", false},
		c1: {"30", "0", "30", "19.5", "10.5", "0", false},
		c3: {"200", "0", "200", "-50", "250", "50", true},
	}
	views, err := f.svc.Views(f.D1.Ctx, []int64{d1, r1, c1, c3, f.D2.Account.ID, f.C5.Account.ID})
	mustOK(t, "views", err)
	if len(views) != 4 {
		t.Errorf("views returned %d accounts, want D1's four (D2 and C5 are outside its scope)", len(views))
	}
	for id, w := range wants {
		v, ok := views[id]
		if !ok {
			t.Errorf("no view of %d", id)
			continue
		}
		wantDec(t, "limit", v.Limit, w.limit)
		wantDec(t, "allocated", v.Allocated, w.allocated)
		wantDec(t, "allocatable", v.Allocatable, w.allocatable)
		wantDec(t, "available", v.Available, w.available)
		wantDec(t, "consumed", v.Consumed, w.consumed)
		wantDec(t, "arrears", v.Arrears(), w.arrears)
		if v.InArrears() != w.inArrears {
			t.Errorf("%d in arrears = %v, want %v", id, v.InArrears(), w.inArrears)
		}
	}
	if v := views[c3]; v.ExemptPostpaid || !v.ExemptPrepaid {
		t.Errorf("C3 exemption = postpaid %v prepaid %v, want false/true", v.ExemptPostpaid, v.ExemptPrepaid)
	}

	// R1's admin sees R1 and C1 only.
	views, err = f.svc.Views(f.R1.Ctx, []int64{d1, r1, c1, c3})
	mustOK(t, "views as R1", err)
	if _, ok := views[d1]; ok || len(views) != 2 {
		t.Errorf("R1 sees %d views (D1 visible: %v), want R1 and C1", len(views), ok)
	}
	_, err = f.svc.View(f.R1.Ctx, d1)
	wantCode(t, "R1 views D1", err, apperr.NotFound)
	_, err = f.svc.View(f.C1.Ctx, c3)
	wantCode(t, "C1 views C3", err, apperr.NotFound)
	v, err := f.svc.View(f.C1.Ctx, c1)
	mustOK(t, "C1 views itself", err)
	wantDec(t, "C1's own available", v.Available, "19.5")

	// The platform has no credit of its own: zeros, not an error.
	v, err = f.svc.View(f.Platform.Ctx, f.Platform.Account.ID)
	mustOK(t, "platform views itself", err)
	if !v.Limit.IsZero() || !v.Available.IsZero() {
		t.Errorf("platform view = %+v, want zeros", v)
	}
}

// arrearsEvents returns the arrears events of a customer in outbox order.
func arrearsEvents(t testing.TB, st *store.Store, customerID int64) []struct {
	EventType, Queue, Payload string
} {
	t.Helper()
	var rows []struct {
		EventType, Queue, Payload string
	}
	err := st.DB.Raw(`SELECT event_type, queue, payload::text AS payload FROM outbox
		WHERE account_id = ? AND event_type LIKE 'credit.arrears%' ORDER BY id`, customerID).Scan(&rows).Error
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// TestUpdateArrears_EmitsOnlyWhenStateFlips: a customer whose actual
// consumption exceeds its allocation enters arrears (one critical event); an
// allocation that covers it again leaves arrears; re-evaluating without a
// change emits nothing.
func TestUpdateArrears_EmitsOnlyWhenStateFlips(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.C3, "100")
	c3 := f.C3.Account.ID
	update := func(ids ...int64) {
		t.Helper()
		err := f.Store.InTx(accounts.SystemContext(context.Background()), func(tx *store.Tx) error {
			return credit.UpdateArrears(tx, ids, shanghai)
		})
		mustOK(t, "update arrears", err)
	}
	if got := arrearsEvents(t, f.Store, c3); len(got) != 0 {
		t.Fatalf("arrears events before any consumption: %v", got)
	}
	setSpend(t, f.Store, c3, f.month().Prev(), "150") // last month: irrelevant
	update(c3)
	if balance(t, f.Store, c3).InArrears || len(arrearsEvents(t, f.Store, c3)) != 0 {
		t.Fatal("last month's consumption put the customer in arrears")
	}

	setSpend(t, f.Store, c3, f.month(), "150")
	update(c3, f.R1.Account.ID, f.D1.Account.ID) // partners are ignored
	if !balance(t, f.Store, c3).InArrears {
		t.Fatal("in_arrears is false with limit 100 and consumption 150")
	}
	evs := arrearsEvents(t, f.Store, c3)
	if len(evs) != 1 || evs[0].EventType != "credit.arrears_entered" || evs[0].Queue != "critical" {
		t.Fatalf("events = %+v, want one credit.arrears_entered on the critical queue", evs)
	}
	var p notify.ArrearsChanged
	if err := json.Unmarshal([]byte(evs[0].Payload), &p); err != nil {
		t.Fatal(err)
	}
	if p.CustomerID != c3 || !p.Entered || p.Available != "-50.00" || p.Month != f.month().String() {
		t.Errorf("payload = %+v", p)
	}
	v, err := f.svc.View(f.D1.Ctx, c3)
	mustOK(t, "view", err)
	if !v.InArrears() || !v.Arrears().Equal(dec("50")) {
		t.Errorf("view arrears = %v %s, want true 50", v.InArrears(), v.Arrears())
	}

	update(c3)
	if n := len(arrearsEvents(t, f.Store, c3)); n != 1 {
		t.Fatalf("re-evaluating unchanged arrears emitted: %d events", n)
	}

	// An allocation that brings available credit back to >= 0 leaves arrears.
	f.allocate(t, f.D1, f.C3, "60")
	if balance(t, f.Store, c3).InArrears {
		t.Fatal("still in arrears with limit 160 and consumption 150")
	}
	evs = arrearsEvents(t, f.Store, c3)
	if len(evs) != 2 || evs[1].EventType != "credit.arrears_left" || evs[1].Queue != "critical" {
		t.Fatalf("events = %+v, want credit.arrears_left appended", evs)
	}
	update(c3)
	f.allocate(t, f.D1, f.C3, "1")
	if n := len(arrearsEvents(t, f.Store, c3)); n != 2 {
		t.Fatalf("no-change evaluations emitted: %d events, want 2", n)
	}

	// Exactly zero available is not arrears.
	setSpend(t, f.Store, c3, f.month(), "161")
	update(c3)
	if balance(t, f.Store, c3).InArrears || len(arrearsEvents(t, f.Store, c3)) != 2 {
		t.Fatal("available credit of exactly 0 counted as arrears")
	}
}

// TestSetExemption: a customer's own partner (or the platform) grants arrears
// exemptions, audited; the distributor above that partner may not, and
// partners have no exemptions.
func TestSetExemption(t *testing.T) {
	f := newFixture(t)
	c1 := f.C1.Account.ID
	acct, err := f.svc.SetExemption(f.R1.Ctx, c1, true, false)
	mustOK(t, "R1 exempts C1", err)
	if acct.ID != c1 {
		t.Errorf("returned %d, want C1", acct.ID)
	}
	b := balance(t, f.Store, c1)
	if !b.ExemptPostpaid || b.ExemptPrepaid {
		t.Errorf("stored exemption = %v/%v, want true/false", b.ExemptPostpaid, b.ExemptPrepaid)
	}
	var audit struct {
		Before, After string
		ActorUserID   int64
	}
	if err := f.Store.DB.Raw(`SELECT before::text AS before, after::text AS after, actor_user_id FROM audit_log
		WHERE action = 'credit.arrears_exemption' AND account_id = ?`, c1).Scan(&audit).Error; err != nil {
		t.Fatal(err)
	}
	if audit.ActorUserID != f.R1.User.ID || !strings.Contains(audit.Before, `"postpaid": false`) || !strings.Contains(audit.After, `"postpaid": true`) {
		t.Errorf("audit = %+v", audit)
	}
	_, err = f.svc.SetExemption(f.Platform.Ctx, c1, true, true)
	mustOK(t, "platform exempts C1", err)
	_, err = f.svc.SetExemption(f.D1.Ctx, f.C3.Account.ID, false, true)
	mustOK(t, "D1 exempts its direct customer", err)

	r1Viewer := f.AddUser(t, f.R1.Account, models.RoleViewer)
	r1Finance := f.AddUser(t, f.R1.Account, models.RoleFinance)
	_, err = f.svc.SetExemption(r1Finance.Ctx, c1, false, false)
	mustOK(t, "R1 finance clears C1's exemptions", err)

	cases := []struct {
		name   string
		by     testkit.Party
		target testkit.Party
		code   apperr.Code
	}{
		{"distributor above the partner", f.D1, f.C1, apperr.Forbidden},
		{"partner account", f.D1, f.R1, apperr.Validation},
		{"tier-1 partner by platform", f.Platform, f.D1, apperr.Validation},
		{"personal account", f.Platform, f.P1, apperr.Validation},
		{"customer on itself", f.C1, f.C1, apperr.Forbidden},
		{"viewer", r1Viewer, f.C1, apperr.Forbidden},
		{"out of scope", f.R1, f.C2, apperr.NotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := takeSnapshot(t, f.Store)
			_, err := f.svc.SetExemption(c.by.Ctx, c.target.Account.ID, true, true)
			wantCode(t, "set exemption", err, c.code)
			before.assertSame(t, f.Store, c.name)
		})
	}
}

// TestLedgerPage_NewestFirstKeysetAndScope: the ledger of an account lists
// the rows that moved credit to or from it, newest first, in keyset pages;
// the balances of a counterparty outside the reader's scope are hidden.
func TestLedgerPage_NewestFirstKeysetAndScope(t *testing.T) {
	f := newFixture(t)
	d1, r1, c1 := f.D1.Account.ID, f.R1.Account.ID, f.C1.Account.ID
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.R1, "100")
	f.allocate(t, f.D1, f.R1, "50")
	f.allocate(t, f.R1, f.C1, "30")
	f.allocate(t, f.D1, f.R2, "5") // not R1's
	f.allocate(t, f.R1, f.C1, "10")
	_, err := f.svc.Reverse(f.D1.Ctx, r1, dec("20"))
	mustOK(t, "reverse", err)
	f.allocate(t, f.D1, f.C3, "5") // not R1's

	var wantIDs []int64
	if err := f.Store.DB.Raw(`SELECT id FROM credit_ledger WHERE to_account_id = ? OR from_account_id = ? ORDER BY id DESC`, r1, r1).Scan(&wantIDs).Error; err != nil {
		t.Fatal(err)
	}
	if len(wantIDs) != 5 {
		t.Fatalf("R1 has %d ledger rows, want 5", len(wantIDs))
	}
	wantAmounts := []string{"-20", "10", "30", "50", "100"}

	readAll := func(t *testing.T, by testkit.Party, id int64, first int) []*models.LedgerEntry {
		t.Helper()
		var all []*models.LedgerEntry
		before := int64(0)
		for pages := 0; ; pages++ {
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			page, more, err := f.svc.LedgerPage(by.Ctx, id, first, before)
			mustOK(t, "ledger page", err)
			if len(page) > first {
				t.Fatalf("page of %d rows, asked %d", len(page), first)
			}
			all = append(all, page...)
			if !more {
				break
			}
			if len(page) == 0 {
				t.Fatal("more pages reported after an empty one")
			}
			before = page[len(page)-1].ID
		}
		return all
	}

	for _, first := range []int{1, 2, 5, 50} {
		rows := readAll(t, f.R1, r1, first)
		if len(rows) != len(wantIDs) {
			t.Fatalf("first=%d: %d rows, want %d", first, len(rows), len(wantIDs))
		}
		for i, e := range rows {
			if e.ID != wantIDs[i] {
				t.Fatalf("first=%d: row %d id %d, want %d (newest first)", first, i, e.ID, wantIDs[i])
			}
			wantDec(t, "amount", e.Amount, wantAmounts[i])
		}
	}

	// Balances of D1 are hidden from R1's admin, R1's own are shown.
	for _, e := range readAll(t, f.R1, r1, 50) {
		switch *e.FromAccountID {
		case d1:
			if e.FromLimitAfter != nil || e.FromAllocatedAfter != nil {
				t.Errorf("row %d shows D1's balances to R1: %v/%v", e.ID, e.FromLimitAfter, e.FromAllocatedAfter)
			}
			if e.ToLimitAfter.IsZero() && e.Amount.IsPositive() {
				t.Errorf("row %d lost R1's own balance", e.ID)
			}
		case r1:
			if e.FromLimitAfter == nil || e.FromAllocatedAfter == nil {
				t.Errorf("row %d hides R1's own balances from R1", e.ID)
			}
		}
	}
	// D1 and the platform see every balance.
	for _, by := range []testkit.Party{f.D1, f.Platform} {
		for _, e := range readAll(t, by, r1, 2) {
			if e.FromLimitAfter == nil || e.FromAllocatedAfter == nil {
				t.Errorf("row %d hides D1's balances from %s", e.ID, by.Account.Name)
			}
		}
	}
	// C1's ledger: R1's balances visible to R1, hidden from C1's own admin.
	for _, e := range readAll(t, f.R1, c1, 50) {
		if e.FromLimitAfter == nil {
			t.Errorf("row %d hides R1's balances from R1", e.ID)
		}
	}
	c1Rows := readAll(t, f.C1, c1, 50)
	if len(c1Rows) != 2 {
		t.Fatalf("C1 ledger rows = %d, want 2", len(c1Rows))
	}
	for _, e := range c1Rows {
		if e.FromLimitAfter != nil || e.FromAllocatedAfter != nil {
			t.Errorf("row %d shows R1's balances to C1", e.ID)
		}
	}
	// D1's own ledger: the LIMIT row from the platform hides no balances of D1.
	d1Rows := readAll(t, f.D1, d1, 50)
	if len(d1Rows) != 6 || d1Rows[len(d1Rows)-1].Kind != models.LedgerLimit {
		t.Fatalf("D1 ledger rows = %d (oldest %v), want 6 ending with the LIMIT row", len(d1Rows), d1Rows[len(d1Rows)-1].Kind)
	}

	// Scope and page size.
	_, _, err = f.svc.LedgerPage(f.R1.Ctx, d1, 10, 0)
	wantCode(t, "R1 reads D1's ledger", err, apperr.NotFound)
	_, _, err = f.svc.LedgerPage(f.R1.Ctx, f.C2.Account.ID, 10, 0)
	wantCode(t, "R1 reads C2's ledger", err, apperr.NotFound)
	_, _, err = f.svc.LedgerPage(f.D1.Ctx, r1, -1, 0)
	wantCode(t, "negative page size", err, apperr.Validation)
	_, _, err = f.svc.LedgerPage(f.D1.Ctx, r1, accounts.MaxPageSize+1, 0)
	wantCode(t, "page too large", err, apperr.Validation)
	page, more, err := f.svc.LedgerPage(f.D1.Ctx, r1, 0, 0)
	mustOK(t, "empty page", err)
	if len(page) != 0 || !more {
		t.Errorf("first=0: %d rows, more %v; want none and more", len(page), more)
	}
}

// TestLedger_AppendOnly: the database refuses to edit or delete ledger rows.
func TestLedger_AppendOnly(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	e := lastLedger(t, f.Store)
	err := f.Store.DB.Exec(`UPDATE credit_ledger SET amount = 0 WHERE id = ?`, e.ID).Error
	if err == nil || store.PgCode(err) != "42501" {
		t.Errorf("UPDATE credit_ledger: %v, want insufficient_privilege", err)
	}
	err = f.Store.DB.Exec(`DELETE FROM credit_ledger WHERE id = ?`, e.ID).Error
	if err == nil || store.PgCode(err) != "42501" {
		t.Errorf("DELETE FROM credit_ledger: %v, want insufficient_privilege", err)
	}
	after := lastLedger(t, f.Store)
	if after.ID != e.ID || !after.Amount.Equal(e.Amount) {
		t.Errorf("ledger row changed: %+v -> %+v", e, after)
	}
}

// Arrears are a month's matter: a customer still flagged from last month
// that falls into arrears again this month is a new entry, notified again;
// one that does not is quietly unflagged.
func TestUpdateArrears_NewMonthIsANewEntry(t *testing.T) {
	f := newFixture(t)
	f.setLimit(t, f.D1, "1000")
	f.allocate(t, f.D1, f.C3, "100")
	c3 := f.C3.Account.ID
	update := func() {
		t.Helper()
		mustOK(t, "update arrears", f.Store.InTx(accounts.SystemContext(context.Background()), func(tx *store.Tx) error {
			return credit.UpdateArrears(tx, []int64{c3}, shanghai)
		}))
	}
	setSpend(t, f.Store, c3, f.month(), "150")
	update()
	f.clock.Set(f.month().Next().Start(shanghai).Add(time.Hour))
	update() // nothing consumed yet this month: the stale flag goes, no event
	if balance(t, f.Store, c3).InArrears || len(arrearsEvents(t, f.Store, c3)) != 1 {
		t.Fatalf("after the rollover: %+v, %d events", balance(t, f.Store, c3), len(arrearsEvents(t, f.Store, c3)))
	}
	setSpend(t, f.Store, c3, f.month(), "120")
	update()
	evs := arrearsEvents(t, f.Store, c3)
	if len(evs) != 2 || evs[1].EventType != "credit.arrears_entered" {
		t.Fatalf("second month's arrears: %+v", evs)
	}
	// And without the quiet update in between, the new month's entry is still seen.
	f.clock.Set(f.month().Next().Start(shanghai).Add(time.Hour))
	setSpend(t, f.Store, c3, f.month(), "130")
	update()
	if evs := arrearsEvents(t, f.Store, c3); len(evs) != 3 || evs[2].EventType != "credit.arrears_entered" {
		t.Fatalf("third month's arrears: %+v", evs)
	}
}
