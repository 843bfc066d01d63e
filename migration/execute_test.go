package migration_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
	"partnerd/vouchers"
	"partnerd/workers"
)

// fixture is the standard tree with money: D2 (limit 100,000) has n active
// customers with 10 of credit each and a budget; S1 (limit 100,000) receives.
type fixture struct {
	*testkit.Tree
	clk       *storetest.Clock
	svc       *migration.Service
	credit    *credit.Service
	guard     *guard.Service
	reviewer  context.Context
	customers []int64
}

func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	clk := storetest.NewClock(time.Now().UTC())
	tr := testkit.NewTreeOn(t, testkit.NewStore(t, store.Options{Clock: clk}))
	f := &fixture{Tree: tr, clk: clk, svc: migration.New(tr.Store, migration.Options{Location: testkit.Shanghai}),
		credit: credit.New(tr.Store, testkit.Shanghai), guard: guard.New(tr.Store, guard.Options{Location: testkit.Shanghai}),
		reviewer: tr.AddUser(t, tr.Platform.Account, models.RoleReviewer).Ctx}
	d := decimal.RequireFromString
	for _, id := range []int64{tr.D2.Account.ID, tr.S1.Account.ID} {
		if _, err := f.credit.SetLimit(tr.Platform.Ctx, id, d("100000")); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: tr.D2.Account.ID, Name: fmt.Sprintf("Mover %02d", i)})
		if err != nil {
			t.Fatal(err)
		}
		f.activate(t, tr.D2.Ctx, a.ID)
		if _, err := f.credit.Allocate(tr.D2.Ctx, a.ID, d("10")); err != nil {
			t.Fatal(err)
		}
		f.customers = append(f.customers, a.ID)
	}
	f.clk.Advance(time.Minute) // the parent history needs time to pass
	return f
}

func (f *fixture) activate(t *testing.T, partner context.Context, id int64) {
	t.Helper()
	if _, err := f.guard.SetBudget(partner, guard.BudgetInput{CustomerID: id, Type: models.BudgetMonthly, Amount: decimal.RequireFromString("500")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.guard.Unfreeze(partner, id); err != nil {
		t.Fatal(err)
	}
}

// approved makes S1's batch of the given customers of D2 (credit 5 each) and
// approves it to EXECUTING.
func (f *fixture) approved(t *testing.T, customers []int64) int64 {
	t.Helper()
	rows := make([]migration.Row, len(customers))
	for i, id := range customers {
		rows[i] = migration.Row{Line: i + 2, AccountID: id, Credit: decimal.RequireFromString("5")}
	}
	m, err := f.svc.Create(f.S1.Ctx, f.D2.Account.ID, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.RejectedRows) > 0 {
		t.Fatalf("rejected: %+v", m.RejectedRows)
	}
	for _, step := range []func() (*migration.Migration, error){
		func() (*migration.Migration, error) { return f.svc.Submit(f.S1.Ctx, m.ID) },
		func() (*migration.Migration, error) { return f.svc.Approve(f.D2.Ctx, m.ID, true) },
		func() (*migration.Migration, error) { return f.svc.Approve(f.reviewer, m.ID, false) },
	} {
		if _, err := step(); err != nil {
			t.Fatal(err)
		}
	}
	return m.ID
}

// ledger counts each customer's migration ledger rows by kind.
func (f *fixture) ledger(t *testing.T, id int64) map[string]int {
	t.Helper()
	var rows []struct {
		Kind string
		N    int
	}
	if err := f.Store.DB.Raw(`SELECT kind, count(*) AS n FROM credit_ledger WHERE to_account_id = ? AND reason LIKE 'migration %' GROUP BY kind`, id).
		Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Kind] = r.N
	}
	return out
}

// A run stopped midway (its context cancelled, as when a worker is killed)
// resumes where it stopped; two runs at once share the work; nobody is
// migrated twice and the money adds up to the cent.
func TestExecute_ResumesAndNeverTwice(t *testing.T) {
	f := newFixture(t, 24)
	id := f.approved(t, f.customers)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := f.svc.ExecuteBatch(ctx, id)
		done <- err
	}()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		var n int64
		if err := f.Store.DB.Raw(`SELECT count(*) FROM migration_items WHERE migration_id = ? AND status = 'MIGRATED'`, id).Scan(&n).Error; err != nil {
			t.Fatal(err)
		}
		if n >= 3 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err == nil {
		t.Log("the first run finished before it was stopped")
	}
	var wg sync.WaitGroup
	results := make([]migration.ExecuteResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.svc.ExecuteBatch(context.Background(), id)
			if err != nil {
				t.Error(err)
			}
			results[i] = r
		}()
	}
	wg.Wait()
	if !results[0].Finished && !results[1].Finished {
		t.Fatalf("nobody finished the batch: %+v", results)
	}
	m, err := f.svc.Get(f.S1.Ctx, id)
	if err != nil || m.Status != migration.StatusCompleted {
		t.Fatalf("batch: %+v %v", m, err)
	}
	for _, c := range f.customers {
		if l := f.ledger(t, c); l["RELEASE"] != 1 || l["ALLOCATE"] != 1 {
			t.Fatalf("customer %d ledger: %v", c, l)
		}
		var hist int64
		if err := f.Store.DB.Raw(`SELECT count(*) FROM account_parent_history WHERE account_id = ?`, c).Scan(&hist).Error; err != nil || hist != 2 {
			t.Fatalf("customer %d parent history rows: %d %v", c, hist, err)
		}
	}
	var bal struct{ D2, S1 string }
	if err := f.Store.DB.Raw(`SELECT (SELECT allocated::text FROM credit_balances WHERE account_id = ?) AS d2,
		(SELECT allocated::text FROM credit_balances WHERE account_id = ?) AS s1`, f.D2.Account.ID, f.S1.Account.ID).Scan(&bal).Error; err != nil {
		t.Fatal(err)
	}
	if bal.D2 != "0.000000" || bal.S1 != "120.000000" {
		t.Fatalf("balances: %+v", bal)
	}
	// Running it again does nothing.
	if r, err := f.svc.ExecuteBatch(context.Background(), id); err != nil || r.Migrated+r.Failed != 0 || r.Finished {
		t.Fatalf("third run: %+v %v", r, err)
	}
}

// A customer that no longer meets the conditions at execution fails with its
// reason, as does one the receiver can no longer fund; the others migrate,
// keep their budget, and the batch is PARTIALLY_COMPLETED.
func TestExecute_PartialFailure(t *testing.T) {
	f := newFixture(t, 3)
	id := f.approved(t, f.customers)
	if _, err := f.guard.Freeze(f.D2.Ctx, f.customers[0], models.FreezeAccount); err != nil {
		t.Fatal(err)
	}
	// S1 allocates nearly all its credit elsewhere: 5 left for two customers asking 5 each.
	if _, err := f.credit.Allocate(f.S1.Ctx, f.C4.Account.ID, decimal.RequireFromString("99995")); err != nil {
		t.Fatal(err)
	}
	r, err := f.svc.ExecuteBatch(context.Background(), id)
	if err != nil || !r.Finished || r.Migrated != 1 || r.Failed != 2 {
		t.Fatalf("run: %+v %v", r, err)
	}
	m, _ := f.svc.Get(f.S1.Ctx, id)
	items, _, _, err := f.svc.Items(f.S1.Ctx, m, 10, 0)
	if err != nil || m.Status != migration.StatusPartiallyCompleted {
		t.Fatalf("batch %s %v", m.Status, err)
	}
	var reasons []string
	for _, it := range items {
		reasons = append(reasons, string(it.Status)+": "+it.Reason)
	}
	got := strings.Join(reasons, " | ")
	if !strings.Contains(got, "FAILED: the customer is frozen") || !strings.Contains(got, "FAILED: the receiving partner can allocate 0.00") || !strings.Contains(got, "MIGRATED: ") {
		t.Fatalf("items: %s", got)
	}
	// The frozen customer stayed with the source, untouched.
	var parent int64
	if err := f.Store.DB.Raw(`SELECT parent_id FROM accounts WHERE id = ?`, f.customers[0]).Scan(&parent).Error; err != nil || parent != f.D2.Account.ID {
		t.Fatalf("the failed customer's parent: %d %v", parent, err)
	}
	if l := f.ledger(t, f.customers[0]); len(l) != 0 {
		t.Fatalf("the failed customer's ledger: %v", l)
	}
	// The migrated one kept its budget; the receiver now sees it.
	for _, it := range items {
		if it.Status != migration.ItemMigrated {
			continue
		}
		b, err := f.guard.BudgetViews(f.S1.Ctx, []int64{it.AccountID})
		if err != nil || b[it.AccountID] == nil || !b[it.AccountID].Amount.Equal(decimal.RequireFromString("500")) {
			t.Fatalf("the migrated customer's budget: %+v %v", b, err)
		}
	}
}

// Each precondition keeps its customer out of an upload with its reason.
func TestCheck_EveryPrecondition(t *testing.T) {
	f := newFixture(t, 7)
	c := f.customers
	gs := groups.New(f.Store)
	if _, err := gs.Create(f.D2.Ctx, groups.KindGroup, "Key accounts", c[0], []int64{c[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := gs.Create(f.D2.Ctx, groups.KindUnit, "Savings", 0, []int64{c[1]}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.credit.SetExemption(f.D2.Ctx, c[2], true, false); err != nil {
		t.Fatal(err)
	}
	ls := lifecycle.New(f.Store, lifecycle.Options{Location: testkit.Shanghai})
	if _, err := ls.RequestUnbinding(f.D2.Ctx, c[3]); err != nil {
		t.Fatal(err)
	}
	// c[4] spends 25 of its 10 of credit: available -15.
	ss := spend.New(f.Store, testkit.Shanghai)
	if _, err := ss.IngestRecords(f.Platform.Ctx, []spend.Record{{ExternalID: "r1", CustomerID: c[4], ProductCode: "cvm", Region: "ap-guangzhou",
		BillingMode: models.PayPerUse, UsageAt: f.clk.Now(), List: decimal.RequireFromString("25"), Actual: decimal.RequireFromString("25")}}); err != nil {
		t.Fatal(err)
	}
	// c[5] is held by D1's submitted batch.
	d1, err := f.svc.Create(f.D1.Ctx, f.D2.Account.ID, []migration.Row{{Line: 2, AccountID: c[5], Credit: decimal.Zero}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.credit.SetLimit(f.Platform.Ctx, f.D1.Account.ID, decimal.RequireFromString("10")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Submit(f.D1.Ctx, d1.ID); err != nil {
		t.Fatal(err)
	}
	rows := make([]migration.Row, len(c))
	for i, id := range c {
		rows[i] = migration.Row{Line: i + 2, AccountID: id, Credit: decimal.RequireFromString("1")}
	}
	m, err := f.svc.Create(f.S1.Ctx, f.D2.Account.ID, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"customer group", "shared unit", "arrears exemption", "unbinding process", "available credit is negative (-15.00)",
		"already in another migration"}
	if len(m.RejectedRows) != len(want) {
		t.Fatalf("rejected: %+v", m.RejectedRows)
	}
	for i, w := range want {
		if r := m.RejectedRows[i]; r.Line != i+2 || !strings.Contains(r.Reason, w) {
			t.Errorf("row %d: %+v, want %q", i+2, r, w)
		}
	}
	// Only c[6] was imported; a batch from the wrong source imports nothing.
	if n, err := f.svc.Counts(f.S1.Ctx, m); err != nil || n.Items != 1 {
		t.Fatalf("items: %+v %v", n, err)
	}
	other, err := f.svc.Create(f.S1.Ctx, f.D1.Account.ID, []migration.Row{{Line: 2, AccountID: c[6], Credit: decimal.Zero}}, nil)
	if err != nil || len(other.RejectedRows) != 1 || !strings.Contains(other.RejectedRows[0].Reason, "not a customer of the source") {
		t.Fatalf("wrong source: %+v %v", other, err)
	}
	// A second-level receiver's credit must cover the batch.
	r1, err := f.svc.Create(f.R1.Ctx, f.D2.Account.ID, []migration.Row{{Line: 2, AccountID: c[6], Credit: decimal.RequireFromString("1")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Submit(f.R1.Ctx, r1.ID); apperr.CodeOf(err) != apperr.PreconditionFailed {
		t.Fatalf("second-level receiver without credit: %v", err)
	}
}

// Usage before a customer's effective time stays billed to the source, even
// when it arrives after the migration; usage after goes to the receiver.
func TestExecute_LateChargesStayWithTheSource(t *testing.T) {
	f := newFixture(t, 1)
	c := f.customers[0]
	before := f.clk.Now()
	id := f.approved(t, f.customers)
	f.clk.Advance(time.Minute)
	if _, err := f.svc.ExecuteBatch(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	ss := spend.New(f.Store, testkit.Shanghai)
	rec := func(ext string, at time.Time) spend.Record {
		return spend.Record{ExternalID: ext, CustomerID: c, ProductCode: "cvm", Region: "ap-guangzhou", BillingMode: models.PayPerUse,
			UsageAt: at, List: decimal.RequireFromString("2"), Actual: decimal.RequireFromString("1.5")}
	}
	if _, err := ss.IngestRecords(f.Platform.Ctx, []spend.Record{rec("late", before), rec("new", f.clk.Now())}); err != nil {
		t.Fatal(err)
	}
	var owners []struct {
		ExternalID string
		OwnerID    int64
	}
	if err := f.Store.DB.Raw(`SELECT external_id, owner_id FROM expenditures WHERE customer_id = ? ORDER BY external_id`, c).Scan(&owners).Error; err != nil {
		t.Fatal(err)
	}
	if len(owners) != 2 || owners[0].ExternalID != "late" || owners[0].OwnerID != f.D2.Account.ID || owners[1].OwnerID != f.S1.Account.ID {
		t.Fatalf("owners: %+v", owners)
	}
}

// An approved batch whose execution task was lost (here: its outbox event
// never turned into a task) is executed once the scheduler's sweep runs.
func TestExecute_SweepRecoversALostTask(t *testing.T) {
	f := newFixture(t, 2)
	id := f.approved(t, f.customers)
	if err := f.Store.DB.Exec(`UPDATE outbox SET dispatched_at = now() WHERE dispatched_at IS NULL`).Error; err != nil {
		t.Fatal(err)
	}
	w := testkit.StartWorkers(t, f.Tree, testkit.WorkerOptions{Migration: f.svc})
	if _, err := w.Queue.Enqueue(asynq.NewTask(workers.TypeSweepMigrations, nil), asynq.Queue(workers.QueueDefault)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		m, err := f.svc.Get(f.S1.Ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if m.Status == migration.StatusCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the batch is still %s", m.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range f.customers {
		if l := f.ledger(t, c); l["ALLOCATE"] != 1 {
			t.Fatalf("customer %d: %v", c, l)
		}
	}
}

// A migrated customer's live vouchers are cancelled at the move and what
// they had left returns to the source's pool (the vouchers package's
// policy); usage after the move is paid by nothing.
func TestExecute_CancelsTheCustomersVouchers(t *testing.T) {
	f := newFixture(t, 1)
	c, d2 := f.customers[0], f.D2.Account.ID
	d := decimal.RequireFromString
	vs := vouchers.New(f.Store, vouchers.Options{Location: testkit.Shanghai})
	finance := f.AddUser(t, f.Platform.Account, models.RoleFinance).Ctx
	if _, err := vs.Grant(finance, d2, d("100"), f.clk.Now().Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	days := 30
	tpl, err := vs.CreateTemplate(f.D2.Ctx, d2, vouchers.TemplateInput{Name: "Stay", FaceValue: d("40"), ProductScope: vouchers.ScopeAll,
		BillingModes: vouchers.ModesAll, ValidDays: &days, PerCustomerLimit: 1, Reason: "retention"})
	if err != nil {
		t.Fatal(err)
	}
	is, err := vs.Issue(f.D2.Ctx, tpl.ID, []int64{c})
	if err != nil || is.Results[0].Code != vouchers.IssueOK {
		t.Fatalf("issue: %+v, %v", is, err)
	}
	ss := spend.New(f.Store, testkit.Shanghai)
	rec := func(ext string) spend.Record {
		return spend.Record{ExternalID: ext, CustomerID: c, ProductCode: "cvm", BillingMode: models.PayPerUse,
			UsageAt: f.clk.Now(), List: d("2"), Actual: d("1.5")}
	}
	if _, err := ss.IngestRecords(f.Platform.Ctx, []spend.Record{rec("before")}); err != nil {
		t.Fatal(err)
	}
	id := f.approved(t, f.customers)
	f.clk.Advance(time.Minute)
	if _, err := f.svc.ExecuteBatch(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	f.clk.Advance(time.Minute)
	if _, err := ss.IngestRecords(f.Platform.Ctx, []spend.Record{rec("after")}); err != nil {
		t.Fatal(err)
	}
	var v struct {
		Status, Returned, CloseReason string
		Issued                        string
		Redemptions                   int
	}
	if err := f.Store.DB.Raw(`SELECT v.status, v.returned::text, v.close_reason, p.issued::text,
			(SELECT count(*) FROM voucher_redemptions) AS redemptions
		FROM vouchers v JOIN voucher_pools p ON p.partner_id = v.issuer_id WHERE v.customer_id = ?`, c).Scan(&v).Error; err != nil {
		t.Fatal(err)
	}
	if v.Status != "CANCELLED" || v.Returned != "38.500000" || !strings.HasPrefix(v.CloseReason, "migration ") || v.Issued != "1.500000" || v.Redemptions != 1 {
		t.Fatalf("after the migration: %+v", v)
	}
	// The new partner does not see what the old one gave its customer.
	page, err := vs.Vouchers(f.S1.Ctx, vouchers.Filter{CustomerID: c}, 10, 0)
	if err != nil || page.Total != 0 {
		t.Fatalf("the receiver sees %+v, %v", page, err)
	}
}
