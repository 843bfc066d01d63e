package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/credit"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/lifecycle"
	"partnerd/models"
	"partnerd/server"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// Unbinding in both directions and by lapse, through GraphQL: requested by
// the partner and confirmed by the customer (the customer becomes PERSONAL,
// its credit returns, its budget goes, usage before stays with the
// partner); requested by the customer and rejected by the partner; left
// unanswered until it lapses on a test clock.
func TestUnbinding_EndToEnd(t *testing.T) {
	clk := storetest.NewClock(time.Now().UTC())
	tr := testkit.NewTreeOn(t, testkit.NewStore(t, store.Options{Clock: clk}))
	api := testkit.NewAPIOn(t, tr, server.Options{})
	ctx := context.Background()
	cs := credit.New(tr.Store, testkit.Shanghai)
	if _, err := cs.SetLimit(tr.Platform.Ctx, tr.D1.Account.ID, decimal.RequireFromString("1000")); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.Allocate(tr.D1.Ctx, tr.C3.Account.ID, decimal.RequireFromString("300")); err != nil {
		t.Fatal(err)
	}
	if _, err := api.Guard.SetBudget(tr.D1.Ctx, guard.BudgetInput{CustomerID: tr.C3.Account.ID, Type: models.BudgetMonthly, Amount: decimal.RequireFromString("100")}); err != nil {
		t.Fatal(err)
	}
	c3 := ids.Encode("Account", tr.C3.Account.ID)

	// A partner above the customer's own cannot start it; another partner does not see the customer.
	if r := api.Do(t, tr.D1.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id } }`, map[string]any{"c": ids.Encode("Account", tr.C2.Account.ID)}); r.Code() != "FORBIDDEN" {
		t.Fatalf("the distributor above R2 starts C2's unbinding: %s", r.Code())
	}
	if r := api.Do(t, tr.D2.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id } }`, map[string]any{"c": c3}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another partner: %s", r.Code())
	}

	var req struct {
		RequestUnbinding struct{ ID, Status, RequestedBy string }
	}
	api.MustDo(t, tr.D1.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id status requestedBy } }`, map[string]any{"c": c3}, &req)
	uid := req.RequestUnbinding.ID
	if req.RequestUnbinding.Status != "PENDING" || req.RequestUnbinding.RequestedBy != "PARTNER" {
		t.Fatalf("request: %+v", req)
	}
	if r := api.Do(t, tr.C3.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id } }`, map[string]any{"c": c3}); r.Code() != "CONFLICT" {
		t.Fatalf("already unbinding: %s", r.Code())
	}
	if r := api.Do(t, tr.D1.Token, `mutation($id: ID!) { confirmUnbinding(id: $id) { id } }`, map[string]any{"id": uid}); r.Code() != "FORBIDDEN" {
		t.Fatalf("the requesting side confirms: %s", r.Code())
	}
	var in struct{ Account struct{ InUnbinding bool } }
	api.MustDo(t, tr.D1.Token, `query($id: ID!) { account(id: $id) { inUnbinding } }`, map[string]any{"id": c3}, &in)
	if !in.Account.InUnbinding {
		t.Fatal("inUnbinding is false while pending")
	}
	clk.Advance(time.Minute)
	var done struct {
		ConfirmUnbinding struct {
			Status      string
			EffectiveAt *time.Time
			Customer    struct{ Kind, Status string }
			Partner     struct{ Name string }
		}
	}
	api.MustDo(t, tr.C3.Token, `mutation($id: ID!) { confirmUnbinding(id: $id) { status effectiveAt customer { kind status } partner { name } } }`,
		map[string]any{"id": uid}, &done)
	d := done.ConfirmUnbinding
	if d.Status != "COMPLETED" || d.EffectiveAt == nil || d.Customer.Kind != "PERSONAL" || d.Customer.Status != "ACTIVE" || d.Partner.Name != "Distributor One" {
		t.Fatalf("confirmed: %+v", d)
	}
	// Credit back with the partner (ledger RELEASE), budget gone, parent history split at the effective time.
	var bal struct{ Allocated, Limit string }
	if err := tr.Store.DB.Raw(`SELECT (SELECT allocated::text FROM credit_balances WHERE account_id = ?) AS allocated,
		(SELECT credit_limit::text FROM credit_balances WHERE account_id = ?) AS limit`, tr.D1.Account.ID, tr.C3.Account.ID).Scan(&bal).Error; err != nil {
		t.Fatal(err)
	}
	if bal.Allocated != "0.000000" || bal.Limit != "0.000000" {
		t.Fatalf("credit after unbinding: %+v", bal)
	}
	var n struct{ Ledger, Budgets, Open, Closed int64 }
	if err := tr.Store.DB.Raw(`SELECT (SELECT count(*) FROM credit_ledger WHERE kind = 'RELEASE' AND to_account_id = @c) AS ledger,
		(SELECT count(*) FROM budgets WHERE customer_id = @c) AS budgets,
		(SELECT count(*) FROM account_parent_history WHERE account_id = @c AND valid_to IS NULL AND parent_id = @p) AS open,
		(SELECT count(*) FROM account_parent_history WHERE account_id = @c AND valid_to = @at AND parent_id = @d) AS closed`,
		map[string]any{"c": tr.C3.Account.ID, "p": tr.Platform.Account.ID, "d": tr.D1.Account.ID, "at": *d.EffectiveAt}).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n.Ledger != 1 || n.Budgets != 0 || n.Open != 1 || n.Closed != 1 {
		t.Fatalf("after unbinding: %+v", n)
	}
	// The partner still sees the unbinding, but no longer the account.
	var seen struct{ Unbinding struct{ Status string } }
	api.MustDo(t, tr.D1.Token, `query($id: ID!) { unbinding(id: $id) { status } }`, map[string]any{"id": uid}, &seen)
	if seen.Unbinding.Status != "COMPLETED" {
		t.Fatalf("the partner's view: %+v", seen)
	}
	if r := api.Do(t, tr.D1.Token, `query($id: ID!) { account(id: $id) { id } }`, map[string]any{"id": c3}); r.Code() != "NOT_FOUND" && string(r.Data) != `{"account":null}` {
		t.Fatalf("the former partner still reads the account: %s %s", r.Code(), r.Data)
	}

	// Requested by the customer, rejected by the partner.
	c4 := ids.Encode("Account", tr.C4.Account.ID)
	var req2 struct {
		RequestUnbinding struct{ ID, RequestedBy string }
	}
	api.MustDo(t, tr.C4.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id requestedBy } }`, map[string]any{"c": c4}, &req2)
	if req2.RequestUnbinding.RequestedBy != "CUSTOMER" {
		t.Fatalf("customer's request: %+v", req2)
	}
	var rej struct {
		RejectUnbinding struct{ Status, Reason string }
	}
	api.MustDo(t, tr.S1.Token, `mutation($id: ID!) { rejectUnbinding(id: $id, reason: "contract runs to June") { status reason } }`,
		map[string]any{"id": req2.RequestUnbinding.ID}, &rej)
	if rej.RejectUnbinding.Status != "REJECTED" || rej.RejectUnbinding.Reason != "contract runs to June" {
		t.Fatalf("rejected: %+v", rej)
	}
	if r := api.Do(t, tr.C4.Token, `mutation($id: ID!) { confirmUnbinding(id: $id) { id } }`, map[string]any{"id": req2.RequestUnbinding.ID}); r.Code() != "FORBIDDEN" && r.Code() != "CONFLICT" {
		t.Fatalf("confirming a rejected unbinding: %s", r.Code())
	}

	// Left unanswered: it lapses after 7 days, and the sweep says so.
	c5 := ids.Encode("Account", tr.C5.Account.ID)
	var req3 struct{ RequestUnbinding struct{ ID string } }
	api.MustDo(t, tr.D2.Token, `mutation($c: ID!) { requestUnbinding(customerId: $c) { id } }`, map[string]any{"c": c5}, &req3)
	clk.Advance(lifecycle.UnbindingTTL)
	if r := api.Do(t, tr.C5.Token, `mutation($id: ID!) { confirmUnbinding(id: $id) { id } }`, map[string]any{"id": req3.RequestUnbinding.ID}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("confirming a lapsed unbinding: %s", r.Code())
	}
	ls := lifecycle.New(tr.Store, lifecycle.Options{Location: testkit.Shanghai})
	if n, err := ls.SweepUnbindings(ctx); err != nil || n != 1 {
		t.Fatalf("sweep: %d %v", n, err)
	}
	var lapsed struct {
		Unbinding struct{ Status string }
		Account   struct{ Kind string }
	}
	api.MustDo(t, tr.D2.Token, `query($id: ID!, $c: ID!) { unbinding(id: $id) { status } account(id: $c) { kind } }`,
		map[string]any{"id": req3.RequestUnbinding.ID, "c": c5}, &lapsed)
	if lapsed.Unbinding.Status != "LAPSED" || lapsed.Account.Kind != "CUSTOMER" {
		t.Fatalf("lapsed: %+v", lapsed)
	}
	var events int64
	if err := tr.Store.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = 'unbinding.changed'`).Scan(&events).Error; err != nil || events != 6 {
		t.Fatalf("%d unbinding events (%v), want 6", events, err)
	}
}
