package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

const migrationFields = `id status rejectedRows { row accountId reason } stepDueAt reason
	counts { total pending migrated failed }
	items { totalCount edges { node { account { id name } row creditToAllocate status reason effectiveAt history { action status note } } } }
	history { actor action status note }
	dataTransferAcknowledgement { by version locale }`

type migrationView struct {
	ID           string
	Status       string
	StepDueAt    *time.Time
	Reason       *string
	RejectedRows []struct {
		Row       int
		AccountID *string
		Reason    string
	}
	Counts struct{ Total, Pending, Migrated, Failed int }
	Items  struct {
		TotalCount int
		Edges      []struct {
			Node struct {
				Account          struct{ ID, Name string }
				Row              int
				CreditToAllocate string
				Status           string
				Reason           *string
				EffectiveAt      *time.Time
				History          []struct{ Action, Status string }
			}
		}
	}
	History []struct {
		Actor, Action, Status string
		Note                  *string
	}
	DataTransferAcknowledgement *struct{ By, Version, Locale string }
}

func acct(id int64) string { return ids.Encode("Account", id) }

// migrationFixture funds the tree: D2 (limit 1,000) gave C5 100; S1 and D1
// have 1,000 each; R1 got 30 of D1's and R2 gave C2 10 of its 40. The
// customers have budgets and are active (a new customer starts frozen).
func migrationFixture(t *testing.T, api *testkit.API) {
	t.Helper()
	tr := api.Tree
	activate(t, api, tr.D2, tr.C5)
	activate(t, api, tr.R2, tr.C2)
	activate(t, api, tr.R1, tr.C1)
	cs := credit.New(tr.Store, testkit.Shanghai)
	d := decimal.RequireFromString
	for _, step := range []struct {
		ctx  context.Context
		f    func(context.Context, int64, decimal.Decimal) (*models.Account, error)
		id   int64
		amnt string
	}{
		{tr.Platform.Ctx, cs.SetLimit, tr.D2.Account.ID, "1000"},
		{tr.Platform.Ctx, cs.SetLimit, tr.S1.Account.ID, "1000"},
		{tr.Platform.Ctx, cs.SetLimit, tr.D1.Account.ID, "1000"},
		{tr.D2.Ctx, cs.Allocate, tr.C5.Account.ID, "100"},
		{tr.D1.Ctx, cs.Allocate, tr.R1.Account.ID, "30"},
		{tr.D1.Ctx, cs.Allocate, tr.R2.Account.ID, "40"},
		{tr.R2.Ctx, cs.Allocate, tr.C2.Account.ID, "10"},
	} {
		if _, err := step.f(step.ctx, step.id, d(step.amnt)); err != nil {
			t.Fatal(err)
		}
	}
}

// activate gives customers of partner a budget and unfreezes them.
func activate(t *testing.T, api *testkit.API, partner testkit.Party, customers ...testkit.Party) {
	t.Helper()
	for _, c := range customers {
		if _, err := api.Guard.SetBudget(partner.Ctx, guard.BudgetInput{CustomerID: c.Account.ID, Type: models.BudgetMonthly,
			Amount: decimal.RequireFromString("1000")}); err != nil {
			t.Fatal(err)
		}
		if _, err := api.Guard.Unfreeze(partner.Ctx, c.Account.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func getMigration(t *testing.T, api *testkit.API, token, id string) migrationView {
	t.Helper()
	var out struct{ Migration migrationView }
	api.MustDo(t, token, `query($id: ID!) { migration(id: $id) { `+migrationFields+` } }`, map[string]any{"id": id}, &out)
	return out.Migration
}

// A tier-1 receiver takes customers of another distributor, end to end
// through GraphQL and a multipart upload: rows judged with spreadsheet row
// numbers, the draft private to the receiver, submission, the source's
// approval only with the statement acknowledged (and once: a concurrent
// second approval gets CONFLICT), the platform review, the execution by the
// workers with live updates, notifications on every channel, and the money
// and tree afterwards.
func TestMigration_TierOneReceiver(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	migrationFixture(t, api)
	c6 := tr.Add(t, tr.D2.Account.ID, models.KindCustomer, "Customer Six")
	c7 := tr.Add(t, tr.D2.Account.ID, models.KindCustomer, "Customer Seven") // frozen (as a new customer): rejected
	activate(t, api, tr.D2, c6)
	phone := "+8613800000001"
	d2ops := tr.AddUserWith(t, accounts.CreateUserInput{AccountID: tr.D2.Account.ID, Phone: &phone, Roles: []models.Role{models.RoleOperator}})
	reviewer := tr.AddUser(t, tr.Platform.Account, models.RoleReviewer)

	csv := "\xef\xbb\xbfcustomer_account_id,credit_to_allocate\r\n" +
		acct(tr.C5.Account.ID) + ",50.00\r\n" + // 2
		acct(c6.Account.ID) + ",\"1,000.00\"\r\n" + // 3: quoted comma
		acct(tr.C1.Account.ID) + ",10\r\n" + // 4: another partner's customer
		"999999,5\r\n" + // 5: unknown
		acct(tr.C5.Account.ID) + ",1\r\n" + // 6: duplicate
		acct(c7.Account.ID) + ",5\r\n" + // 7: frozen
		acct(c6.Account.ID) + ",-3\r\n" + // 8: negative
		acct(c6.Account.ID) + ",1.1234567\r\n" + // 9: 7 decimals
		fmt.Sprint(c6.Account.ID) + ",20\r\n" + // 10: a plain account number
		"\r\n" + // 11: blank
		acct(c6.Account.ID) + "\r\n" // 12: one column
	r := api.Upload(t, tr.S1.Token, `mutation($s: ID!, $f: Upload) { createMigration(sourceId: $s, file: $f) { `+migrationFields+` } }`,
		map[string]any{"s": acct(tr.D2.Account.ID)}, "f", "batch.csv", []byte(csv))
	if len(r.Errors) > 0 {
		t.Fatalf("upload: %+v", r.Errors)
	}
	var created struct{ CreateMigration migrationView }
	r.Decode(t, &created)
	m := created.CreateMigration
	if m.Status != "DRAFT" || m.Items.TotalCount != 2 || m.Items.Edges[0].Node.Row != 2 || m.Items.Edges[1].Node.Row != 10 ||
		m.Items.Edges[1].Node.CreditToAllocate != "20.00" {
		t.Fatalf("created: %+v", m)
	}
	var rows []int
	reasons := map[int]string{}
	for _, e := range m.RejectedRows {
		rows = append(rows, e.Row)
		reasons[e.Row] = e.Reason
	}
	if fmt.Sprint(rows) != "[3 4 5 6 7 8 9 12]" {
		t.Fatalf("rejected rows %v: %+v", rows, m.RejectedRows)
	}
	for row, want := range map[int]string{3: "not an amount", 4: "not a customer of the source", 5: "not a customer of the source",
		6: "already appears in row 2", 7: "frozen", 8: "negative", 9: "not an amount", 12: "expected 2 columns"} {
		if !strings.Contains(reasons[row], want) {
			t.Errorf("row %d: %q, want %q", row, reasons[row], want)
		}
	}
	id := m.ID

	// The draft is the receiver's own.
	for _, p := range []testkit.Party{tr.D2, tr.Platform, tr.D1} {
		if r := api.Do(t, p.Token, `query($id: ID!) { migration(id: $id) { id } }`, map[string]any{"id": id}); r.Code() != "NOT_FOUND" {
			t.Fatalf("%s sees the draft: %s %s", p.Account.Name, r.Code(), r.Data)
		}
	}
	var sub struct{ SubmitMigration migrationView }
	api.MustDo(t, tr.S1.Token, `mutation($id: ID!) { submitMigration(id: $id) { `+migrationFields+` } }`, map[string]any{"id": id}, &sub)
	if sub.SubmitMigration.Status != "PENDING_SOURCE_APPROVAL" || sub.SubmitMigration.StepDueAt == nil {
		t.Fatalf("submitted: %+v", sub.SubmitMigration)
	}
	var held struct {
		Account struct{ InMigration, InUnbinding bool }
	}
	api.MustDo(t, tr.D2.Token, `query($id: ID!) { account(id: $id) { inMigration inUnbinding } }`, map[string]any{"id": acct(tr.C5.Account.ID)}, &held)
	if !held.Account.InMigration {
		t.Fatal("inMigration is false after submission")
	}
	// Held by the batch: the source cannot start its unbinding.
	if r := api.Do(t, tr.D2.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id } }`, map[string]any{"c": acct(tr.C5.Account.ID)}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("unbinding a customer in migration: %s", r.Code())
	}
	if r := api.Do(t, tr.D1.Token, `query($id: ID!) { migration(id: $id) { id } }`, map[string]any{"id": id}); r.Code() != "NOT_FOUND" {
		t.Fatalf("a partner not party to it: %s", r.Code())
	}
	approve := `mutation($id: ID!, $ack: Boolean) { approveMigration(id: $id, acknowledgeDataTransferStatement: $ack) { status } }`
	for _, c := range []struct {
		p    testkit.Party
		ack  bool
		code string
	}{{tr.D2, false, "PRECONDITION_FAILED"}, {tr.S1, true, "FORBIDDEN"}, {reviewer, true, "FORBIDDEN"}} {
		if r := api.Do(t, c.p.Token, approve, map[string]any{"id": id, "ack": c.ack}); r.Code() != c.code {
			t.Fatalf("approval by %s (ack %v): %s, want %s", c.p.User.Email, c.ack, r.Code(), c.code)
		}
	}
	var st struct {
		DataTransferStatement struct{ Version, Locale, Title, Text string }
	}
	api.MustDo(t, tr.D2.Token, `{ dataTransferStatement(locale: "zh-CN") { version locale title text } }`, nil, &st)
	if st.DataTransferStatement.Version != migration.StatementVersion || st.DataTransferStatement.Title != "子客户数据转移声明" {
		t.Fatalf("statement: %+v", st)
	}

	// Two users of the source approve at once: one wins.
	codes := make([]string, 2)
	var wg sync.WaitGroup
	for i, p := range []testkit.Party{tr.D2, d2ops} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = api.Do(t, p.Token, approve, map[string]any{"id": id, "ack": true}).Code()
		}()
	}
	wg.Wait()
	if !(codes[0] == "" && codes[1] == "CONFLICT" || codes[0] == "CONFLICT" && codes[1] == "") {
		t.Fatalf("concurrent approvals: %q", codes)
	}
	m = getMigration(t, api, tr.S1.Token, id)
	if m.Status != "PENDING_INTERNAL_REVIEW" || m.DataTransferAcknowledgement == nil || m.DataTransferAcknowledgement.Version != migration.StatementVersion {
		t.Fatalf("after the source's approval: %+v", m)
	}

	// The receiver follows the batch live; the workers execute it.
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix})
	// The relay publishes the approvals' updates when it starts: let it,
	// so the subscription sees only what the review causes.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		n, _, err := api.Store.OutboxBacklog(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d outbox rows still wait for the relay", n)
		}
	}
	ws, err := dialWS(t, api, tr.S1.Token)
	if err != nil {
		t.Fatal(err)
	}
	ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { migrationUpdated(id: $id) { status counts { migrated } } }`, "variables": map[string]any{"id": id}}})
	waitSubscribers(t, api, notify.MigrationTopic(mustKey(t, id)))
	api.MustDo(t, reviewer.Token, approve, map[string]any{"id": id}, nil)
	var seen []string
	for !strings.Contains(strings.Join(seen, " "), "COMPLETED") {
		msg, err := ws.read(20 * time.Second)
		if err != nil {
			t.Fatalf("live updates so far %v: %v", seen, err)
		}
		u := msg["payload"].(map[string]any)["data"].(map[string]any)["migrationUpdated"].(map[string]any)
		seen = append(seen, fmt.Sprint(u["status"], "/", u["counts"].(map[string]any)["migrated"]))
	}
	if seen[0] != "EXECUTING/0" {
		t.Fatalf("live updates: %v", seen)
	}

	m = getMigration(t, api, tr.S1.Token, id)
	if m.Status != "COMPLETED" || m.Counts.Migrated != 2 || m.Counts.Failed != 0 {
		t.Fatalf("executed: %+v", m)
	}
	for _, e := range m.Items.Edges {
		if e.Node.Status != "MIGRATED" || e.Node.EffectiveAt == nil || len(e.Node.History) != 2 || e.Node.History[1].Action != "MIGRATED" {
			t.Fatalf("item: %+v", e.Node)
		}
	}
	var actions []string
	for _, h := range m.History {
		actions = append(actions, h.Action+":"+h.Status)
	}
	if want := "CREATED:DRAFT SUBMITTED:PENDING_SOURCE_APPROVAL STATEMENT_ACKNOWLEDGED:PENDING_SOURCE_APPROVAL APPROVED:PENDING_INTERNAL_REVIEW APPROVED:EXECUTING COMPLETED:COMPLETED"; strings.Join(actions, " ") != want {
		t.Fatalf("history %v", actions)
	}
	// The customers are the receiver's now, with the batch's credit; the
	// source's allocation came back.
	var after struct {
		Account struct {
			Parent      struct{ ID string }
			InMigration bool
			Credit      struct{ Limit string }
		}
	}
	api.MustDo(t, tr.S1.Token, `query($id: ID!) { account(id: $id) { parent { id } inMigration credit { limit } } }`, map[string]any{"id": acct(tr.C5.Account.ID)}, &after)
	if after.Account.Parent.ID != acct(tr.S1.Account.ID) || after.Account.InMigration || after.Account.Credit.Limit != "50.00" {
		t.Fatalf("C5 after: %+v", after)
	}
	if r := api.Do(t, tr.D2.Token, `query($id: ID!) { account(id: $id) { id } }`, map[string]any{"id": acct(tr.C5.Account.ID)}); r.Code() != "NOT_FOUND" && string(r.Data) != `{"account":null}` {
		t.Fatalf("the source still reads C5: %s", r.Data)
	}
	var bal struct{ D2, S1 string }
	if err := tr.Store.DB.Raw(`SELECT (SELECT allocated::text FROM credit_balances WHERE account_id = ?) AS d2,
		(SELECT allocated::text FROM credit_balances WHERE account_id = ?) AS s1`, tr.D2.Account.ID, tr.S1.Account.ID).Scan(&bal).Error; err != nil {
		t.Fatal(err)
	}
	if bal.D2 != "0.000000" || bal.S1 != "70.000000" {
		t.Fatalf("balances after: %+v", bal)
	}
	// The source still sees the batch and its customers on it.
	var src struct{ Migration migrationView }
	api.MustDo(t, tr.D2.Token, `query($id: ID!) { migration(id: $id) { `+migrationFields+` } }`, map[string]any{"id": id}, &src)
	if src.Migration.Items.Edges[0].Node.Account.Name != "Customer Five" {
		t.Fatalf("the source's view: %+v", src.Migration.Items)
	}

	// Every party was told on every channel: the source's operator (with a
	// phone) was asked for its approval by in-site message, email and SMS.
	w.WaitDeliveries(t, tr, notify.EventMigrationCustomerMigrated, 4, 30*time.Second) // C5 and C6 admins, in-site and email
	var got []string
	if err := tr.Store.DB.Raw(`SELECT event_type || ':' || channel FROM deliveries WHERE user_id = ? ORDER BY 1`, d2ops.User.ID).Scan(&got).Error; err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"migration.approval_requested:EMAIL", "migration.approval_requested:IN_SITE", "migration.approval_requested:SMS",
		"migration.changed:IN_SITE"} {
		if !strings.Contains(strings.Join(got, " "), want) {
			t.Fatalf("the source's operator got %v, missing %s", got, want)
		}
	}
	var asked int64
	if err := tr.Store.DB.Raw(`SELECT count(*) FROM deliveries WHERE user_id = ? AND event_type = 'migration.approval_requested'`, reviewer.User.ID).Scan(&asked).Error; err != nil || asked == 0 {
		t.Fatalf("the platform reviewer was not asked: %d %v", asked, err)
	}
}

// A second-level receiver: its distributor approves first; the receiver's
// allocatable credit must cover the batch; the source rejects with a reason
// and the customer is free again; another batch is cancelled by the
// receiver (not by the source); a third expires on the test clock, once.
func TestMigration_SecondLevelReceiver(t *testing.T) {
	clk := storetest.NewClock(time.Now().UTC())
	tr := testkit.NewTreeOn(t, testkit.NewStore(t, store.Options{Clock: clk}))
	api := testkit.NewAPIOn(t, tr, server.Options{})
	migrationFixture(t, api)
	create := `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id status rejectedRows { row reason } } }`
	var c struct {
		CreateMigration struct {
			ID, Status   string
			RejectedRows []struct {
				Row    int
				Reason string
			}
		}
	}
	// R1 (30 allocatable) asks 40 for C2: refused at submission.
	api.MustDo(t, tr.R1.Token, create, map[string]any{"s": acct(tr.R2.Account.ID), "rows": []map[string]any{
		{"accountId": acct(tr.C2.Account.ID), "creditToAllocate": "40"}, {"accountId": "not-an-id", "creditToAllocate": "1"}}}, &c)
	if len(c.CreateMigration.RejectedRows) != 1 || c.CreateMigration.RejectedRows[0].Row != 2 {
		t.Fatalf("rows: %+v", c)
	}
	id := c.CreateMigration.ID
	submit := `mutation($id: ID!) { submitMigration(id: $id) { status } }`
	if r := api.Do(t, tr.R1.Token, submit, map[string]any{"id": id}); r.Code() != "PRECONDITION_FAILED" || !strings.Contains(r.Errors[0].Message, "can allocate 30.00") {
		t.Fatalf("over the receiver's credit: %s %+v", r.Code(), r.Errors)
	}
	api.MustDo(t, tr.R1.Token, `mutation($id: ID!, $c: ID!) { removeMigrationItem(id: $id, accountId: $c) { id } }`,
		map[string]any{"id": id, "c": acct(tr.C2.Account.ID)}, nil)
	api.MustDo(t, tr.R1.Token, `mutation($id: ID!, $rows: [MigrationRowInput!]) { addMigrationRows(id: $id, rows: $rows) { id } }`,
		map[string]any{"id": id, "rows": []map[string]any{{"accountId": acct(tr.C2.Account.ID), "creditToAllocate": "25"}}}, nil)
	var s struct{ SubmitMigration struct{ Status string } }
	api.MustDo(t, tr.R1.Token, submit, map[string]any{"id": id}, &s)
	if s.SubmitMigration.Status != "PENDING_DISTRIBUTOR_APPROVAL" {
		t.Fatalf("submitted: %+v", s)
	}
	if r := api.Do(t, tr.R1.Token, `mutation($id: ID!, $rows: [MigrationRowInput!]) { addMigrationRows(id: $id, rows: $rows) { id } }`,
		map[string]any{"id": id, "rows": []map[string]any{{"accountId": acct(tr.C2.Account.ID), "creditToAllocate": "1"}}}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("editing a submitted batch: %s", r.Code())
	}
	approve := `mutation($id: ID!) { approveMigration(id: $id, acknowledgeDataTransferStatement: true) { status distributor { id } } }`
	if r := api.Do(t, tr.R2.Token, approve, map[string]any{"id": id}); r.Code() != "FORBIDDEN" {
		t.Fatalf("the source before the distributor: %s", r.Code())
	}
	var a struct {
		ApproveMigration struct {
			Status      string
			Distributor struct{ ID string }
		}
	}
	api.MustDo(t, tr.D1.Token, approve, map[string]any{"id": id}, &a)
	if a.ApproveMigration.Status != "PENDING_SOURCE_APPROVAL" || a.ApproveMigration.Distributor.ID != acct(tr.D1.Account.ID) {
		t.Fatalf("distributor approved: %+v", a)
	}
	if r := api.Do(t, tr.D1.Token, approve, map[string]any{"id": id}); r.Code() != "CONFLICT" {
		t.Fatalf("the distributor again: %s", r.Code())
	}
	// Listings by role.
	list := func(p testkit.Party, role string) int {
		var l struct{ Migrations []struct{ ID string } }
		api.MustDo(t, p.Token, `query($r: MigrationRole) { migrations(role: $r) { id } }`, map[string]any{"r": role}, &l)
		return len(l.Migrations)
	}
	if list(tr.R2, "APPROVER") != 1 || list(tr.D1, "APPROVER") != 0 || list(tr.R1, "RECEIVER") != 1 || list(tr.R2, "SOURCE") != 1 || list(tr.S1, "RECEIVER") != 0 {
		t.Fatal("migrations by role")
	}
	if r := api.Do(t, tr.R2.Token, `mutation($id: ID!) { rejectMigration(id: $id, reason: "  ") { status } }`, map[string]any{"id": id}); r.Code() != "VALIDATION" {
		t.Fatalf("rejection without a reason: %s", r.Code())
	}
	var rej struct {
		RejectMigration struct {
			Status string
			Reason string
			Items  struct {
				Edges []struct{ Node struct{ Status string } }
			}
		}
	}
	api.MustDo(t, tr.R2.Token, `mutation($id: ID!) { rejectMigration(id: $id, reason: "contract not settled") { status reason items { edges { node { status } } } } }`,
		map[string]any{"id": id}, &rej)
	if rej.RejectMigration.Status != "REJECTED" || rej.RejectMigration.Reason != "contract not settled" || rej.RejectMigration.Items.Edges[0].Node.Status != "REJECTED" {
		t.Fatalf("rejected: %+v", rej)
	}
	if r := api.Do(t, tr.R1.Token, `mutation($id: ID!) { cancelMigration(id: $id) { status } }`, map[string]any{"id": id}); r.Code() != "CONFLICT" {
		t.Fatalf("cancelling a rejected batch: %s", r.Code())
	}

	// C2 is free again: a new batch, cancelled by the receiver, not the source.
	api.MustDo(t, tr.R1.Token, create, map[string]any{"s": acct(tr.R2.Account.ID), "rows": []map[string]any{
		{"accountId": acct(tr.C2.Account.ID), "creditToAllocate": "5"}}}, &c)
	id2 := c.CreateMigration.ID
	api.MustDo(t, tr.R1.Token, submit, map[string]any{"id": id2}, nil)
	if r := api.Do(t, tr.R2.Token, `mutation($id: ID!) { cancelMigration(id: $id) { status } }`, map[string]any{"id": id2}); r.Code() != "FORBIDDEN" {
		t.Fatalf("the source cancels: %s", r.Code())
	}
	var cn struct{ CancelMigration struct{ Status string } }
	api.MustDo(t, tr.R1.Token, `mutation($id: ID!) { cancelMigration(id: $id) { status } }`, map[string]any{"id": id2}, &cn)
	if cn.CancelMigration.Status != "CANCELLED" {
		t.Fatalf("cancelled: %+v", cn)
	}

	// A third one expires after MIGRATION_APPROVAL_TTL; the sweep is safe twice.
	api.MustDo(t, tr.R1.Token, create, map[string]any{"s": acct(tr.R2.Account.ID), "rows": []map[string]any{
		{"accountId": acct(tr.C2.Account.ID), "creditToAllocate": "5"}}}, &c)
	id3 := c.CreateMigration.ID
	api.MustDo(t, tr.R1.Token, submit, map[string]any{"id": id3}, nil)
	clk.Advance(migration.DefaultTTL - time.Minute)
	if n, err := api.Migration.SweepExpired(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep before the TTL: %d %v", n, err)
	}
	clk.Advance(2 * time.Minute)
	if n, err := api.Migration.SweepExpired(context.Background()); err != nil || n != 1 {
		t.Fatalf("sweep after the TTL: %d %v", n, err)
	}
	if n, err := api.Migration.SweepExpired(context.Background()); err != nil || n != 0 {
		t.Fatalf("second sweep: %d %v", n, err)
	}
	m := getMigration(t, api, tr.R1.Token, id3)
	if m.Status != "EXPIRED" || m.Items.Edges[0].Node.Status != "CANCELLED" || !strings.Contains(*m.Items.Edges[0].Node.Reason, "expired") {
		t.Fatalf("expired: %+v", m)
	}
	if r := api.Do(t, tr.D1.Token, approve, map[string]any{"id": id3}); r.Code() != "CONFLICT" {
		t.Fatalf("approving an expired batch: %s", r.Code())
	}
}

// Two receivers race to submit batches holding the same customer: exactly
// one wins, whatever the interleaving.
func TestMigration_RacingBatches(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	migrationFixture(t, api)
	create := `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id } }`
	var idsOf [2]string
	for i, p := range []testkit.Party{tr.S1, tr.D1} {
		var c struct{ CreateMigration struct{ ID string } }
		api.MustDo(t, p.Token, create, map[string]any{"s": acct(tr.D2.Account.ID), "rows": []map[string]any{
			{"accountId": acct(tr.C5.Account.ID), "creditToAllocate": "1"}}}, &c)
		idsOf[i] = c.CreateMigration.ID
	}
	codes := make([]string, 2)
	var wg sync.WaitGroup
	for i, p := range []testkit.Party{tr.S1, tr.D1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = api.Do(t, p.Token, `mutation($id: ID!) { submitMigration(id: $id) { status } }`, map[string]any{"id": idsOf[i]}).Code()
		}()
	}
	wg.Wait()
	won := 0
	for _, c := range codes {
		switch c {
		case "":
			won++
		case "CONFLICT", "PRECONDITION_FAILED":
		default:
			t.Fatalf("codes %q", codes)
		}
	}
	if won != 1 {
		t.Fatalf("%d batches hold C5: %q", won, codes)
	}
}

// The template as a download, and uploads refused whole: a non-CSV file,
// a wrong header, a file over 5 MiB, rows and a file together — never a
// half-made batch.
func TestMigration_TemplateAndRefusedUploads(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	req, _ := http.NewRequest(http.MethodGet, api.Server.URL+"/v1/migrations/template.csv", nil)
	req.Header.Set("Authorization", "Bearer "+tr.S1.Token)
	resp, err := api.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") ||
		!strings.Contains(resp.Header.Get("Content-Disposition"), "attachment") || !strings.Contains(string(body), "customer_account_id,credit_to_allocate") {
		t.Fatalf("template download: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	var q struct{ MigrationTemplate string }
	api.MustDo(t, tr.S1.Token, `{ migrationTemplate }`, nil, &q)
	if "\xef\xbb\xbf"+q.MigrationTemplate != string(body) {
		t.Fatalf("query and download differ: %q", q.MigrationTemplate)
	}
	anon, _ := http.Get(api.Server.URL + "/v1/migrations/template.csv")
	anon.Body.Close()
	if anon.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous download: %d", anon.StatusCode)
	}

	upload := `mutation($s: ID!, $f: Upload) { createMigration(sourceId: $s, file: $f) { id } }`
	vars := func() map[string]any { return map[string]any{"s": acct(tr.D2.Account.ID)} }
	for name, content := range map[string][]byte{
		"binary":       {0x89, 'P', 'N', 'G', 0, 0, 1, 2},
		"header":       []byte("id,amount\n" + acct(tr.C5.Account.ID) + ",1\n"),
		"broken quote": []byte("customer_account_id,credit_to_allocate\n\"abc,1\n"),
		"too large":    []byte("customer_account_id,credit_to_allocate\n" + strings.Repeat("# padding line\n", migration.MaxBytes/15+1)),
		"empty":        {},
	} {
		r := api.Upload(t, tr.S1.Token, upload, vars(), "f", "x.csv", content)
		if r.Code() != "VALIDATION" {
			t.Errorf("%s: %s %+v", name, r.Code(), r.Errors)
		}
	}
	if r := api.Do(t, tr.S1.Token, upload, vars()); r.Code() != "VALIDATION" {
		t.Errorf("neither rows nor file: %s", r.Code())
	}
	if r := api.Upload(t, tr.S1.Token, `mutation($s: ID!, $f: Upload) { createMigration(sourceId: $s, file: $f, rows: []) { id } }`, vars(), "f", "x.csv",
		[]byte(migration.Template)); r.Code() != "VALIDATION" {
		t.Errorf("rows and a file: %s", r.Code())
	}
	if r := api.Do(t, tr.C4.Token, `mutation($s: ID!) { createMigration(sourceId: $s, rows: [{accountId: "1", creditToAllocate: "1"}]) { id } }`, vars()); r.Code() != "FORBIDDEN" {
		t.Errorf("a customer creates a batch: %s", r.Code())
	}
	if r := api.Do(t, tr.S1.Token, `mutation($s: ID!) { createMigration(sourceId: $s, rows: [{accountId: "1", creditToAllocate: "1"}]) { id } }`,
		map[string]any{"s": acct(tr.C5.Account.ID)}); r.Code() != "NOT_FOUND" {
		t.Errorf("a customer as source: %s", r.Code())
	}
	var n int64
	if err := tr.Store.DB.Raw(`SELECT count(*) FROM migrations`).Scan(&n).Error; err != nil || n != 0 {
		t.Fatalf("batches after refused uploads: %d %v", n, err)
	}
}

func mustKey(t *testing.T, id string) int64 {
	t.Helper()
	k, err := ids.Decode(id, migration.TypeMigration)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func waitSubscribers(t *testing.T, api *testkit.API, topic string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for api.Hub.Subscribers(topic) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription never registered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A batch's items read their customers (outside the receiver's scope before
// the move) in one query per page, not one per item.
func TestMigration_ItemsAreNotNPlusOne(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	migrationFixture(t, api)
	create := `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id } }`
	statements := func(n int) int64 {
		rows := []map[string]any{{"accountId": acct(tr.C5.Account.ID), "creditToAllocate": "1"}}
		for i := 1; i < n; i++ {
			c := tr.Add(t, tr.D2.Account.ID, models.KindCustomer, fmt.Sprintf("Page customer %d-%d", n, i))
			activate(t, api, tr.D2, c)
			rows = append(rows, map[string]any{"accountId": acct(c.Account.ID), "creditToAllocate": "1"})
		}
		var c struct{ CreateMigration struct{ ID string } }
		api.MustDo(t, tr.S1.Token, create, map[string]any{"s": acct(tr.D2.Account.ID), "rows": rows}, &c)
		before := tr.Store.CountStatements()
		var out struct {
			Migration struct {
				Items struct {
					Edges []struct {
						Node struct{ Account struct{ Name string } }
					}
				}
			}
		}
		api.MustDo(t, tr.S1.Token, `query($id: ID!) { migration(id: $id) { items { edges { node { account { name } } } } } }`,
			map[string]any{"id": c.CreateMigration.ID}, &out)
		// The receiver sees the source's customers redacted (their ID for a
		// name) until the source approves.
		if len(out.Migration.Items.Edges) != n || out.Migration.Items.Edges[0].Node.Account.Name != acct(tr.C5.Account.ID) {
			t.Fatalf("items: %+v", out)
		}
		return tr.Store.CountStatements() - before
	}
	if small, large := statements(2), statements(8); small != large {
		t.Fatalf("statements for 2 items: %d, for 8: %d", small, large)
	}
}

// Until the source approves (acknowledging the data transfer statement),
// the receiver learns nothing of the source's side beyond IDs: a draft is
// the receiver's own doing, so without this any partner could read any
// other tenant's customers by naming them in one. Afterwards the parties
// see each other's accounts whole.
func TestMigration_SourceSideRedactedUntilItApproves(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	migrationFixture(t, api)
	email, phone := "five@customer.test", "+8613800000005"
	if _, err := api.Accounts.Update(tr.Platform.Ctx, tr.C5.Account.ID, accounts.UpdateInput{Email: &email, Phone: &phone}); err != nil {
		t.Fatal(err)
	}
	var c struct{ CreateMigration struct{ ID string } }
	api.MustDo(t, tr.S1.Token, `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id } }`,
		map[string]any{"s": acct(tr.D2.Account.ID), "rows": []map[string]any{{"accountId": acct(tr.C5.Account.ID), "creditToAllocate": "5"}}}, &c)
	id := c.CreateMigration.ID
	view := `query($id: ID!) { migration(id: $id) { receiver { name } source { id name email phone tags { key } }
		items { edges { node { account { id kind name email phone status } } } } } }`
	type party struct {
		ID, Name, Status, Kind string
		Email, Phone           *string
		Tags                   []struct{ Key string }
	}
	var out struct {
		Migration struct {
			Receiver, Source party
			Items            struct {
				Edges []struct{ Node struct{ Account party } }
			}
		}
	}
	check := func(who testkit.Party, wantNames bool) {
		t.Helper()
		api.MustDo(t, who.Token, view, map[string]any{"id": id}, &out)
		src, cust := out.Migration.Source, out.Migration.Items.Edges[0].Node.Account
		if out.Migration.Receiver.Name != tr.S1.Account.Name {
			t.Fatalf("%s: receiver %+v", who.Account.Name, out.Migration.Receiver)
		}
		if wantNames {
			if src.Name != tr.D2.Account.Name || cust.Name != tr.C5.Account.Name || cust.Email == nil || *cust.Email != email {
				t.Fatalf("%s: source %+v, customer %+v; want them whole", who.Account.Name, src, cust)
			}
			return
		}
		if src.ID != acct(tr.D2.Account.ID) || src.Name != src.ID || src.Email != nil || src.Phone != nil || len(src.Tags) != 0 ||
			cust.ID != acct(tr.C5.Account.ID) || cust.Name != cust.ID || cust.Email != nil || cust.Phone != nil || cust.Kind != "CUSTOMER" {
			t.Fatalf("%s: source %+v, customer %+v; want them redacted", who.Account.Name, src, cust)
		}
	}
	check(tr.S1, false)
	// What loads by the account's ID is outside the receiver's scope.
	if r := api.Do(t, tr.S1.Token, `query($id: ID!) { migration(id: $id) { items { edges { node { account { credit { limit } } } } } } }`,
		map[string]any{"id": id}); r.Code() != "NOT_FOUND" {
		t.Fatalf("a redacted customer's credit: %s %s", r.Code(), r.Data)
	}

	api.MustDo(t, tr.S1.Token, `mutation($id: ID!) { submitMigration(id: $id) { status } }`, map[string]any{"id": id}, nil)
	check(tr.S1, false)
	check(tr.Platform, true) // the platform's scope holds everyone
	check(tr.D2, true)       // the source sees its own customers, and the receiver
	api.MustDo(t, tr.D2.Token, `mutation($id: ID!) { approveMigration(id: $id, acknowledgeDataTransferStatement: true) { status } }`,
		map[string]any{"id": id}, nil)
	check(tr.S1, true)

	// A source that rejects without approving stays redacted in the history
	// too: the receiver reads the party, not the user and its email.
	c6 := tr.Add(t, tr.D2.Account.ID, models.KindCustomer, "Customer Six")
	activate(t, api, tr.D2, c6)
	api.MustDo(t, tr.S1.Token, `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id } }`,
		map[string]any{"s": acct(tr.D2.Account.ID), "rows": []map[string]any{{"accountId": acct(c6.Account.ID), "creditToAllocate": "5"}}}, &c)
	id2 := c.CreateMigration.ID
	api.MustDo(t, tr.S1.Token, `mutation($id: ID!) { submitMigration(id: $id) { status } }`, map[string]any{"id": id2}, nil)
	api.MustDo(t, tr.D2.Token, `mutation($id: ID!) { rejectMigration(id: $id, reason: "not now") { status } }`, map[string]any{"id": id2}, nil)
	var h struct {
		Migration struct {
			History []struct{ Actor, Action string }
		}
	}
	for _, who := range []testkit.Party{tr.S1, tr.D2} {
		api.MustDo(t, who.Token, `query($id: ID!) { migration(id: $id) { history { actor action } } }`, map[string]any{"id": id2}, &h)
		last := h.Migration.History[len(h.Migration.History)-1]
		hidden := who.Account.ID == tr.S1.Account.ID
		if last.Action != "REJECTED" || strings.Contains(last.Actor, tr.D2.User.Email) == hidden || (hidden && last.Actor != "the source partner") {
			t.Fatalf("%s reads the rejection as %+v", who.Account.Name, last)
		}
	}

	// The notifications to the receiver's side named the source only once it
	// had approved.
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix})
	w.WaitDeliveries(t, tr, notify.EventMigrationChanged, 1, 30*time.Second)
	var msgs []struct {
		Subject, BodyText string
		Acknowledged      bool
	}
	if err := tr.Store.DB.Raw(`SELECT d.subject, d.body_text, (o.payload->>'sourceAcknowledged')::boolean IS TRUE AS acknowledged
		FROM deliveries d JOIN outbox o ON o.id = d.outbox_id
		WHERE d.account_id = ? AND d.event_type = ? AND d.channel = 'IN_SITE'`, tr.S1.Account.ID, notify.EventMigrationChanged).Scan(&msgs).Error; err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 2 {
		t.Fatalf("the receiver got %d migration messages, want one per step", len(msgs))
	}
	for _, m := range msgs {
		named := strings.Contains(m.Subject+m.BodyText, tr.D2.Account.Name)
		if named != m.Acknowledged {
			t.Errorf("a message to the receiver (source acknowledged: %v) names the source: %v\n%s\n%s", m.Acknowledged, named, m.Subject, m.BodyText)
		}
		if !named && !strings.Contains(m.Subject, acct(tr.D2.Account.ID)) {
			t.Errorf("a message to the receiver names the source neither by name nor by ID: %s", m.Subject)
		}
	}
}
