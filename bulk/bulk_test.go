package bulk_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
	"partnerd/workers"
)

// fixture is the standard tree with three more direct customers of D1 (C6,
// C7, C8; C3 is the tree's), D1 funded with a credit limit of 10,000, and
// the bulk service.
type fixture struct {
	*testkit.Tree
	C6, C7, C8 testkit.Party
	svc        *bulk.Service
	guard      *guard.Service
	credit     *credit.Service
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	tr := testkit.NewTree(t)
	f := &fixture{Tree: tr, guard: guard.New(tr.Store, guard.Options{Location: testkit.Shanghai}),
		credit: credit.New(tr.Store, testkit.Shanghai)}
	f.svc = bulk.New(tr.Store, f.guard, f.credit, bulk.Options{PublicURL: "https://partner.test/",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	f.C6 = tr.Add(t, tr.D1.Account.ID, models.KindCustomer, "Customer Six")
	f.C7 = tr.Add(t, tr.D1.Account.ID, models.KindCustomer, "Customer Seven")
	f.C8 = tr.Add(t, tr.D1.Account.ID, models.KindCustomer, "Customer Eight")
	_, err := f.credit.SetLimit(tr.Platform.Ctx, tr.D1.Account.ID, dec("10000"))
	must(t, "limit of D1", err)
	return f
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func gid(p testkit.Party) string { return ids.Encode("Account", p.Account.ID) }

func num(p testkit.Party) string { return strconv.FormatInt(p.Account.ID, 10) }

func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func wantCode(t *testing.T, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: got %v (code %q), want %s", what, err, got, code)
	}
}

// upload uploads file as by for D1.
func (f *fixture) upload(t *testing.T, by context.Context, kind bulk.Kind, file string) *bulk.Job {
	t.Helper()
	j, err := f.svc.Upload(by, f.D1.Account.ID, kind, strings.NewReader(file))
	must(t, "upload", err)
	return j
}

// run runs job id as the worker does and returns it.
func (f *fixture) run(t *testing.T, id int64) *bulk.Job {
	t.Helper()
	j, err := f.svc.Run(context.Background(), id)
	must(t, "run", err)
	return j
}

// rows lists job id's rows of status ("" for all) as by sees them.
func (f *fixture) rows(t *testing.T, by context.Context, id int64, status bulk.RowStatus) []*bulk.Row {
	t.Helper()
	p, err := f.svc.Rows(by, id, status, bulk.MaxPage, 0)
	must(t, "rows", err)
	return p.Items
}

// outcome is a row's line, status and code, and a piece of its message.
type outcome struct {
	line   int
	status bulk.RowStatus
	code   apperr.Code
	msg    string
}

func wantRows(t *testing.T, got []*bulk.Row, want []outcome) {
	t.Helper()
	if len(got) != len(want) {
		for _, r := range got {
			t.Logf("row %d %s %s %q", r.Line, r.Status, r.Code, r.Message)
		}
		t.Fatalf("%d rows, want %d", len(got), len(want))
	}
	for i, w := range want {
		r := got[i]
		if r.Line != w.line || r.Status != w.status || r.Code != w.code || !strings.Contains(r.Message, w.msg) {
			t.Errorf("row %d: line %d %s %s %q, want line %d %s %s containing %q", i, r.Line, r.Status, r.Code, r.Message,
				w.line, w.status, w.code, w.msg)
		}
	}
}

func wantCounts(t *testing.T, j *bulk.Job, status bulk.Status, valid, rejected, done, failed int) {
	t.Helper()
	if j.Status != status || j.Valid != valid || j.Rejected != rejected || j.Done != done || j.Failed != failed {
		t.Fatalf("job %s valid %d rejected %d done %d failed %d, want %s %d %d %d %d", j.Status, j.Valid, j.Rejected, j.Done, j.Failed,
			status, valid, rejected, done, failed)
	}
}

func (f *fixture) count(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	var n int64
	must(t, "count", f.Store.DB.Raw(q, args...).Scan(&n).Error)
	return n
}

func (f *fixture) budget(t *testing.T, p testkit.Party) *guard.BudgetView {
	t.Helper()
	m, err := f.guard.BudgetViews(f.Platform.Ctx, []int64{p.Account.ID})
	must(t, "budgets", err)
	return m[p.Account.ID]
}

func (f *fixture) allocation(t *testing.T, p testkit.Party) string {
	t.Helper()
	v, err := f.credit.View(f.Platform.Ctx, p.Account.ID)
	must(t, "credit", err)
	return models.FormatDecimal(v.Limit)
}

func TestBudgets_GoodRowsAppliedBadRowsReportedByLine(t *testing.T) {
	f := newFixture(t)
	file := "\xef\xbb\xbfCustomer_ID,type,amount,thresholds,overspend_action\r\n" + // 1
		gid(f.C3) + ",MONTHLY,1000.00,50;80;100,FREEZE_ACCOUNT\r\n" + // 2
		"# a comment\r\n" + // 3
		num(f.C6) + ",one_time,500,,\r\n" + // 4
		gid(f.C1) + ",MONTHLY,100,,\r\n" + // 5: R1's customer
		gid(f.C5) + ",MONTHLY,100,,\r\n" + // 6: D2's customer
		gid(f.R1) + ",MONTHLY,100,,\r\n" + // 7: D1's reseller
		gid(f.C3) + ",MONTHLY,10,,\r\n" + // 8
		gid(f.C7) + ",WEEKLY,10,,\r\n" + // 9
		gid(f.C7) + ",MONTHLY,0,,\r\n" + // 10
		gid(f.C7) + ",MONTHLY,10,50;50,\r\n" + // 11
		gid(f.C7) + ",MONTHLY,10,,SOMETIMES\r\n" + // 12
		gid(f.C7) + ",MONTHLY,10\r\n" + // 13
		"99999999,MONTHLY,10,,\r\n" + // 14
		gid(f.C7) + ",MONTHLY,abc,,\r\n" + // 15
		"\r\n" + // 16
		" " + gid(f.C7) + " , Monthly , 250.5 , 20;10 , none \r\n" // 17
	j := f.upload(t, f.D1.Ctx, bulk.KindBudgets, file)
	wantCounts(t, j, bulk.StatusQueued, 3, 11, 0, 0)
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE event_type = ? AND (payload->>'jobId')::bigint = ?`, bulk.EventQueued, j.ID); n != 1 {
		t.Fatalf("%d run events", n)
	}
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, bulk.RowRejected), []outcome{
		{5, bulk.RowRejected, apperr.Validation, "is a customer of Reseller One, not a direct customer of Distributor One"},
		{6, bulk.RowRejected, apperr.NotFound, "no customer of Distributor One has this ID"},
		{7, bulk.RowRejected, apperr.Validation, "is a reseller, not a customer"},
		{8, bulk.RowRejected, apperr.Validation, "already appears in row 2"},
		{9, bulk.RowRejected, apperr.Validation, "not a budget type"},
		{10, bulk.RowRejected, apperr.Validation, "must be greater than 0"},
		{11, bulk.RowRejected, apperr.Validation, "threshold 50 is given twice"},
		{12, bulk.RowRejected, apperr.Validation, "not an overspend action"},
		{13, bulk.RowRejected, apperr.Validation, "expected 5 columns"},
		{14, bulk.RowRejected, apperr.NotFound, "no customer of Distributor One has this ID"},
		{15, bulk.RowRejected, apperr.Validation, "not an amount"},
	})
	if r := f.rows(t, f.D1.Ctx, j.ID, bulk.RowRejected)[5]; r.CustomerRef != gid(f.C7) || r.CustomerID != 0 {
		t.Fatalf("rejected row keeps %q / %d", r.CustomerRef, r.CustomerID)
	}

	j = f.run(t, j.ID)
	wantCounts(t, j, bulk.StatusCompleted, 3, 11, 3, 0)
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, bulk.RowDone), []outcome{
		{2, bulk.RowDone, "", "budget set: MONTHLY 1000.00"},
		{4, bulk.RowDone, "", "budget set: ONE_TIME 500.00"},
		{17, bulk.RowDone, "", "budget set: MONTHLY 250.50"},
	})
	for _, c := range []struct {
		p          testkit.Party
		typ        models.BudgetType
		amount     string
		thresholds []int
		action     models.OverspendAction
	}{
		{f.C3, models.BudgetMonthly, "1000", []int{50, 80, 100}, models.OverspendFreeze},
		{f.C6, models.BudgetOneTime, "500", []int{50, 80, 100}, models.OverspendNone},
		{f.C7, models.BudgetMonthly, "250.5", []int{10, 20}, models.OverspendNone},
	} {
		b := f.budget(t, c.p)
		if b == nil || b.Type != c.typ || !b.Amount.Equal(dec(c.amount)) || fmt.Sprint([]int(b.Thresholds)) != fmt.Sprint(c.thresholds) ||
			b.OverspendAction != c.action {
			t.Errorf("%s: budget %+v", c.p.Account.Name, b)
		}
	}
	// Applied as the uploading user, under the row's own request ID.
	var actor string
	must(t, "audit", f.Store.DB.Raw(`SELECT actor FROM audit_log WHERE action = 'budget.set' AND account_id = ?`, f.C3.Account.ID).Scan(&actor).Error)
	if !strings.Contains(actor, f.D1.User.Email) {
		t.Fatalf("applied as %q", actor)
	}
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE event_type = 'bulk.completed' AND (payload->>'jobId')::bigint = ?`, j.ID); n != 1 {
		t.Fatalf("%d completion events", n)
	}

	// A second run changes nothing.
	sets := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'budget.set'`)
	j = f.run(t, j.ID)
	wantCounts(t, j, bulk.StatusCompleted, 3, 11, 3, 0)
	if n := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'budget.set'`); n != sets {
		t.Fatalf("a second run set %d budgets", n-sets)
	}
	if n := f.count(t, `SELECT count(*) FROM outbox WHERE event_type = 'bulk.completed' AND (payload->>'jobId')::bigint = ?`, j.ID); n != 1 {
		t.Fatalf("%d completion events after a second run", n)
	}
}

// A worker killed after a row's change committed and before its result was
// written leaves the row PENDING: the next run takes it as applied (its
// audit entry carries the row's request ID) instead of applying it again.
func TestRun_RowCommittedButNotRecorded_IsNotAppliedTwice(t *testing.T) {
	f := newFixture(t)
	j := f.upload(t, f.D1.Ctx, bulk.KindBudgets, "customer_id,type,amount\n"+gid(f.C3)+",MONTHLY,100\n"+gid(f.C6)+",MONTHLY,200\n")
	f.run(t, j.ID)
	sets := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'budget.set'`)
	// Undo the record of row 2 as if the worker had died there.
	must(t, "reset", f.Store.DB.Exec(`UPDATE bulk_rows SET status = 'PENDING', message = '', finished_at = NULL WHERE job_id = ? AND line = 2`, j.ID).Error)
	must(t, "reset", f.Store.DB.Exec(`UPDATE bulk_jobs SET status = 'RUNNING', done_count = done_count - 1, finished_at = NULL WHERE id = ?`, j.ID).Error)
	j = f.run(t, j.ID)
	wantCounts(t, j, bulk.StatusCompleted, 2, 0, 2, 0)
	if n := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'budget.set'`); n != sets {
		t.Fatalf("the row was applied again (%d more budget.set)", n-sets)
	}
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, ""), []outcome{
		{2, bulk.RowDone, "", "interrupted"},
		{3, bulk.RowDone, "", "budget set"},
	})
}

// CREDIT rows set the allocation: the difference is allocated or reversed,
// so uploading the same file again changes nothing.
func TestCredit_SetsTheAllocation(t *testing.T) {
	f := newFixture(t)
	_, err := f.credit.Allocate(f.D1.Ctx, f.C3.Account.ID, dec("300"))
	must(t, "allocate", err)
	file := "customer_id,allocation\n" +
		gid(f.C3) + ",1000\n" + // 2: +700
		gid(f.C6) + ",0\n" + // 3: already 0
		gid(f.C7) + ",-5\n" + // 4
		gid(f.C1) + ",100\n" + // 5: R1's
		gid(f.C8) + ",20000\n" + // 6: more than D1 can allocate
		gid(f.C2) + "\n" // 7
	j := f.upload(t, f.D1.Ctx, bulk.KindCredit, file)
	wantCounts(t, j, bulk.StatusQueued, 3, 3, 0, 0)
	j = f.run(t, j.ID)
	wantCounts(t, j, bulk.StatusCompleted, 3, 3, 2, 1)
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, ""), []outcome{
		{2, bulk.RowDone, "", "allocated 700.00: from 300.00 to 1000.00"},
		{3, bulk.RowDone, "", "already 0.00"},
		{4, bulk.RowRejected, apperr.Validation, "cannot be negative"},
		{5, bulk.RowRejected, apperr.Validation, "not a direct customer"},
		{6, bulk.RowFailed, apperr.PreconditionFailed, "insufficient allocatable credit"},
		{7, bulk.RowRejected, apperr.Validation, "expected 2 columns"},
	})
	if got := f.allocation(t, f.C3); got != "1000.00" {
		t.Fatalf("C3 has %s", got)
	}
	if got := f.allocation(t, f.C8); got != "0.00" {
		t.Fatalf("C8 has %s", got)
	}
	ledger := f.count(t, `SELECT count(*) FROM credit_ledger`)
	f.run(t, j.ID)
	again := f.upload(t, f.D1.Ctx, bulk.KindCredit, "customer_id,allocation\n"+gid(f.C3)+",1000\n")
	again = f.run(t, again.ID)
	wantCounts(t, again, bulk.StatusCompleted, 1, 0, 1, 0)
	if n := f.count(t, `SELECT count(*) FROM credit_ledger`); n != ledger {
		t.Fatalf("the replays moved credit %d times", n-ledger)
	}
	down := f.run(t, f.upload(t, f.D1.Ctx, bulk.KindCredit, "customer_id,allocation\n"+gid(f.C3)+",400\n").ID)
	wantRows(t, f.rows(t, f.D1.Ctx, down.ID, ""), []outcome{{2, bulk.RowDone, "", "reversed 600.00: from 1000.00 to 400.00"}})
	if got := f.allocation(t, f.C3); got != "400.00" {
		t.Fatalf("C3 has %s after the reversal", got)
	}
}

func TestOverspendActions_ChangeOnlyTheAction(t *testing.T) {
	f := newFixture(t)
	_, err := f.guard.SetBudget(f.D1.Ctx, guard.BudgetInput{CustomerID: f.C3.Account.ID, Type: models.BudgetOneTime, Amount: dec("800"),
		Thresholds: []int{30, 90}})
	must(t, "budget", err)
	_, err = f.guard.SetBudget(f.D1.Ctx, guard.BudgetInput{CustomerID: f.C7.Account.ID, Type: models.BudgetMonthly, Amount: dec("50"),
		OverspendAction: models.OverspendFreeze})
	must(t, "budget", err)
	file := "customer_id,overspend_action\n" +
		gid(f.C3) + ",freeze_account_and_resources\n" + // 2
		gid(f.C6) + ",NONE\n" + // 3: no budget
		gid(f.C8) + ",\n" + // 4
		gid(f.C7) + ",FREEZE_ACCOUNT\n" // 5: already
	j := f.run(t, f.upload(t, f.D1.Ctx, bulk.KindOverspendActions, file).ID)
	wantCounts(t, j, bulk.StatusCompleted, 2, 2, 2, 0)
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, ""), []outcome{
		{2, bulk.RowDone, "", "overspend action FREEZE_ACCOUNT_AND_RESOURCES (was NONE)"},
		{3, bulk.RowRejected, apperr.PreconditionFailed, "has no budget"},
		{4, bulk.RowRejected, apperr.Validation, "overspend action is empty"},
		{5, bulk.RowDone, "", "already FREEZE_ACCOUNT"},
	})
	b := f.budget(t, f.C3)
	if b.Type != models.BudgetOneTime || !b.Amount.Equal(dec("800")) || fmt.Sprint([]int(b.Thresholds)) != "[30 90]" ||
		b.OverspendAction != models.OverspendFreezeWithResources {
		t.Fatalf("budget %+v", b)
	}
}

func TestUpload_Refusals(t *testing.T) {
	f := newFixture(t)
	onlyBad := "customer_id,allocation\n" + gid(f.C5) + ",10\n" + gid(f.C6) + ",x\n"
	_, err := f.svc.Upload(f.D1.Ctx, f.D1.Account.ID, bulk.KindCredit, strings.NewReader(onlyBad))
	wantCode(t, "no valid row", err, apperr.Validation)
	var fr *bulk.FileRejected
	if !errors.As(err, &fr) || len(fr.Rows) != 2 || fr.Rows[0].Line != 2 || fr.Rows[0].Code != apperr.NotFound || fr.Rows[1].Line != 3 ||
		!strings.Contains(err.Error(), "row 3: \"x\" is not an amount") {
		t.Fatalf("refusal %v %+v", err, fr)
	}
	if n := f.count(t, `SELECT count(*) FROM bulk_jobs`); n != 0 {
		t.Fatalf("%d jobs stored", n)
	}
	viewer := f.AddUser(t, f.D1.Account, models.RoleViewer)
	finance := f.AddUser(t, f.D1.Account, models.RoleFinance)
	good := "customer_id,allocation\n" + gid(f.C3) + ",10\n"
	for _, c := range []struct {
		name    string
		by      context.Context
		partner int64
		kind    bulk.Kind
		file    string
		code    apperr.Code
	}{
		{"unknown kind", f.D1.Ctx, f.D1.Account.ID, "LIMITS", good, apperr.Validation},
		{"wrong header", f.D1.Ctx, f.D1.Account.ID, bulk.KindCredit, "customer,credit\n1,2\n", apperr.Validation},
		{"budgets header in a credit file", f.D1.Ctx, f.D1.Account.ID, bulk.KindCredit, bulk.Template(bulk.KindBudgets), apperr.Validation},
		{"template only", f.D1.Ctx, f.D1.Account.ID, bulk.KindCredit, bulk.Template(bulk.KindCredit), apperr.Validation},
		{"too large", f.D1.Ctx, f.D1.Account.ID, bulk.KindCredit, good + strings.Repeat("#"+strings.Repeat("x", 1000)+"\n", bulk.MaxBytes/1000+10), apperr.Validation},
		{"partner outside scope", f.R1.Ctx, f.D1.Account.ID, bulk.KindBudgets, good, apperr.NotFound},
		{"another partner", f.D2.Ctx, f.D1.Account.ID, bulk.KindCredit, good, apperr.NotFound},
		{"viewer", viewer.Ctx, f.D1.Account.ID, bulk.KindCredit, good, apperr.Forbidden},
		{"a customer is no partner", f.D1.Ctx, f.C3.Account.ID, bulk.KindCredit, good, apperr.Validation},
		{"credit of a reseller's customers", f.D1.Ctx, f.R1.Account.ID, bulk.KindCredit, good, apperr.Forbidden},
	} {
		_, err := f.svc.Upload(c.by, c.partner, c.kind, strings.NewReader(c.file))
		wantCode(t, c.name, err, c.code)
	}
	many := &strings.Builder{}
	many.WriteString("customer_id,allocation\n")
	for i := 0; i <= bulk.MaxRows; i++ {
		many.WriteString(strconv.Itoa(i+1) + ",1\n")
	}
	_, err = f.svc.Upload(f.D1.Ctx, f.D1.Account.ID, bulk.KindCredit, strings.NewReader(many.String()))
	wantCode(t, "too many rows", err, apperr.Validation)
	// A FINANCE user may.
	j := f.upload(t, finance.Ctx, bulk.KindCredit, good)
	if j.CreatedBy == nil || *j.CreatedBy != finance.User.ID {
		t.Fatalf("created by %v", j.CreatedBy)
	}
}

// Only those who see the partner see its jobs; outside, NOT_FOUND.
func TestJobs_Scope(t *testing.T) {
	f := newFixture(t)
	j := f.upload(t, f.D1.Ctx, bulk.KindBudgets, "customer_id,type,amount\n"+gid(f.C3)+",MONTHLY,100\n"+gid(f.C5)+",MONTHLY,100\n")
	for name, by := range map[string]context.Context{"D1": f.D1.Ctx, "platform": f.Platform.Ctx} {
		got, err := f.svc.Job(by, j.ID)
		must(t, name, err)
		if got.ID != j.ID || got.PartnerID != f.D1.Account.ID || got.Kind != bulk.KindBudgets {
			t.Fatalf("%s reads %+v", name, got)
		}
		if len(f.rows(t, by, j.ID, "")) != 2 {
			t.Fatalf("%s: rows", name)
		}
	}
	for name, by := range map[string]context.Context{"D2": f.D2.Ctx, "R1": f.R1.Ctx, "C3": f.C3.Ctx} {
		_, err := f.svc.Job(by, j.ID)
		wantCode(t, name+" job", err, apperr.NotFound)
		_, err = f.svc.Rows(by, j.ID, "", 10, 0)
		wantCode(t, name+" rows", err, apperr.NotFound)
		_, err = f.svc.Jobs(by, f.D1.Account.ID, 10, 0)
		wantCode(t, name+" jobs", err, apperr.NotFound)
	}
	_, err := f.svc.Job(f.D1.Ctx, j.ID+1000)
	wantCode(t, "unknown job", err, apperr.NotFound)

	second := f.upload(t, f.D1.Ctx, bulk.KindCredit, "customer_id,allocation\n"+gid(f.C3)+",1\n")
	page, err := f.svc.Jobs(f.D1.Ctx, f.D1.Account.ID, 1, 0)
	must(t, "jobs", err)
	if len(page.Items) != 1 || page.Items[0].ID != second.ID || !page.More || page.Total != 2 {
		t.Fatalf("first page %+v", page)
	}
	page, err = f.svc.Jobs(f.D1.Ctx, f.D1.Account.ID, 1, second.ID)
	must(t, "jobs", err)
	if len(page.Items) != 1 || page.Items[0].ID != j.ID || page.More {
		t.Fatalf("second page %+v", page)
	}
	rows, err := f.svc.Rows(f.D1.Ctx, j.ID, "", 1, 0)
	must(t, "rows", err)
	next, err := f.svc.Rows(f.D1.Ctx, j.ID, "", 1, rows.Items[0].ID)
	must(t, "rows", err)
	if rows.Items[0].Line != 2 || !rows.More || rows.Total != 2 || len(next.Items) != 1 || next.Items[0].Line != 3 || next.More {
		t.Fatalf("row pages %+v %+v", rows.Items[0], next.Items)
	}
	_, err = f.svc.Rows(f.D1.Ctx, j.ID, "SKIPPED", 10, 0)
	wantCode(t, "unknown status", err, apperr.Validation)
}

// Runs as the uploading user as it is now: rows of a customer the user no
// longer may change fail with the service's refusal.
func TestRun_ActsAsTheUploader(t *testing.T) {
	f := newFixture(t)
	j := f.upload(t, f.D1.Ctx, bulk.KindBudgets, "customer_id,type,amount\n"+gid(f.C3)+",MONTHLY,100\n"+gid(f.C6)+",MONTHLY,100\n")
	// C6 moves under R1 before the job runs: no longer D1's direct customer.
	must(t, "move", f.Store.InTx(f.Platform.Ctx, func(tx *store.Tx) error {
		c, err := accounts.Lock(tx, f.C6.Account.ID)
		if err != nil {
			return err
		}
		return accounts.Move(tx, c, f.R1.Account, models.KindCustomer)
	}))
	j = f.run(t, j.ID)
	wantCounts(t, j, bulk.StatusCompleted, 2, 0, 1, 1)
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, ""), []outcome{
		{2, bulk.RowDone, "", "budget set"},
		{3, bulk.RowFailed, apperr.NotFound, "no longer a direct customer"},
	})
	// The uploader's roles are read when the job runs.
	finance := f.AddUser(t, f.D1.Account, models.RoleFinance)
	j = f.upload(t, finance.Ctx, bulk.KindBudgets, "customer_id,type,amount\n"+gid(f.C7)+",MONTHLY,100\n")
	must(t, "demote", f.Store.DB.Exec(`UPDATE users SET roles = '{VIEWER}' WHERE id = ?`, finance.User.ID).Error)
	j = f.run(t, j.ID)
	wantRows(t, f.rows(t, f.D1.Ctx, j.ID, ""), []outcome{{2, bulk.RowFailed, apperr.Forbidden, "finance"}})
	if f.budget(t, f.C7) != nil {
		t.Fatal("a demoted uploader's row was applied")
	}
}

// Several runs of one job at once share the rows and apply each once.
func TestRun_ConcurrentRunsApplyEachRowOnce(t *testing.T) {
	f := newFixture(t)
	var file strings.Builder
	file.WriteString("customer_id,type,amount\n")
	n := 12
	for i := 0; i < n; i++ {
		c := f.Add(t, f.D1.Account.ID, models.KindCustomer, fmt.Sprintf("Many %02d", i))
		fmt.Fprintf(&file, "%s,MONTHLY,%d\n", gid(c), 100+i)
	}
	j := f.upload(t, f.D1.Ctx, bulk.KindBudgets, file.String())
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Run(context.Background(), j.ID)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, "run", err)
	}
	j, err := f.svc.Job(f.D1.Ctx, j.ID)
	must(t, "job", err)
	wantCounts(t, j, bulk.StatusCompleted, n, 0, n, 0)
	if got := f.count(t, `SELECT count(*) FROM audit_log WHERE action = 'budget.set'`); got != int64(n) {
		t.Fatalf("%d budgets set for %d rows", got, n)
	}
	if got := f.count(t, `SELECT count(*) FROM outbox WHERE event_type = 'bulk.completed'`); got != 1 {
		t.Fatalf("%d completion events", got)
	}
}

// The worker: the upload's event enqueues one run task per job, and the
// task's handler runs the job.
func TestWorker_EnqueuesAndRuns(t *testing.T) {
	f := newFixture(t)
	j := f.upload(t, f.D1.Ctx, bulk.KindCredit, "customer_id,allocation\n"+gid(f.C3)+",250\n")
	url, _ := storetest.RedisDB(t)
	opt, err := asynq.ParseRedisURI(url)
	must(t, "redis", err)
	client := asynq.NewClient(opt)
	t.Cleanup(func() { _ = client.Close() })
	insp := asynq.NewInspector(opt)
	t.Cleanup(func() { _ = insp.Close() })
	w := workers.NewBulk(f.svc, client, nil)
	reg := workers.NewRegistry()
	w.Register(reg)
	consumers := reg.Consumers(bulk.EventQueued)
	if len(consumers) != 1 {
		t.Fatalf("%d consumers of %s", len(consumers), bulk.EventQueued)
	}
	ev := workers.OutboxPayload{ID: 1, EventType: bulk.EventQueued, Payload: []byte(fmt.Sprintf(`{"jobId":%d}`, j.ID))}
	for range 2 {
		must(t, "consume", consumers[0](context.Background(), ev))
	}
	tasks, err := insp.ListPendingTasks(workers.QueueBulk)
	must(t, "pending", err)
	if len(tasks) != 1 || tasks[0].Type != workers.TypeRunBulk || !bytes.Equal(tasks[0].Payload, []byte(strconv.FormatInt(j.ID, 10))) {
		t.Fatalf("tasks %+v", tasks)
	}
	mux := asynq.NewServeMux()
	w.Handle(mux)
	must(t, "run task", mux.ProcessTask(context.Background(), asynq.NewTask(tasks[0].Type, tasks[0].Payload)))
	j, err = f.svc.Job(f.D1.Ctx, j.ID)
	must(t, "job", err)
	wantCounts(t, j, bulk.StatusCompleted, 1, 0, 1, 0)
	if got := f.allocation(t, f.C3); got != "250.00" {
		t.Fatalf("C3 has %s", got)
	}
}

func TestTemplates_ParseToNothing(t *testing.T) {
	for _, k := range bulk.Kinds() {
		rows, rejected, err := bulk.Parse(k, strings.NewReader(bulk.Template(k)))
		if err != nil || len(rows)+len(rejected) != 0 {
			t.Fatalf("%s template: %v %v %v", k, rows, rejected, err)
		}
	}
	if bulk.Template("LIMITS") != "" {
		t.Fatal("a template for an unknown kind")
	}
}

// FuzzParse: any input of any kind is refused as a whole with VALIDATION
// or yields rows that hold the rules — never a panic.
func FuzzParse(f *testing.F) {
	for _, k := range bulk.Kinds() {
		f.Add(0, []byte(bulk.Template(k)))
	}
	f.Add(0, []byte("customer_id,type,amount,thresholds,overspend_action\n1,MONTHLY,5,50;80,NONE\n2,ONE_TIME,1.5\n3,x,-1,,\n"))
	f.Add(1, []byte("customer_id,allocation\n1,5\n\"2\",\"3.5\"\n3,-1\n1,4\n"))
	f.Add(2, []byte("\xef\xbb\xbfcustomer_id,overspend_action\r\n# x\r\nQWNjb3VudDo1,freeze_account\r\n"))
	f.Fuzz(func(t *testing.T, k int, data []byte) {
		kinds := bulk.Kinds()
		kind := kinds[(k%len(kinds)+len(kinds))%len(kinds)]
		rows, rejected, err := bulk.Parse(kind, bytes.NewReader(data))
		if err != nil {
			if apperr.CodeOf(err) != apperr.Validation {
				t.Fatalf("non-validation error %v", err)
			}
			return
		}
		if len(rows)+len(rejected) > bulk.MaxRows {
			t.Fatalf("%d rows", len(rows)+len(rejected))
		}
		seen := map[int64]bool{}
		for _, r := range rows {
			if r.CustomerID <= 0 || seen[r.CustomerID] || r.Line < 2 || r.Status != bulk.RowPending {
				t.Fatalf("bad row %+v", r)
			}
			seen[r.CustomerID] = true
			switch kind {
			case bulk.KindBudgets:
				if !r.BudgetType.IsValid() || r.Amount == nil || !r.Amount.IsPositive() || (r.OverspendAction != "" && !r.OverspendAction.IsValid()) {
					t.Fatalf("bad budget row %+v", r)
				}
			case bulk.KindCredit:
				if r.Amount == nil || r.Amount.IsNegative() || r.Amount.Exponent() < -6 {
					t.Fatalf("bad credit row %+v", r)
				}
			case bulk.KindOverspendActions:
				if !r.OverspendAction.IsValid() {
					t.Fatalf("bad action row %+v", r)
				}
			}
		}
		for _, r := range rejected {
			if r.Reason == "" || r.Line < 2 || r.Code != apperr.Validation {
				t.Fatalf("bad rejection %+v", r)
			}
		}
	})
}
