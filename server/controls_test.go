package server_test

import (
	"strings"
	"testing"

	"partnerd/ids"
	"partnerd/server"
	"partnerd/testkit"
)

// Purchase controls through GraphQL: a ban refuses prepaid purchases only,
// a batch freeze answers per account, and the control history keeps who,
// what and why — for the partner, not for another one.
func TestPurchaseControls_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	c3 := ids.Encode("Account", tr.C3.Account.ID)
	api.MustDo(t, tr.Platform.Token, `mutation($id: ID!) { setCreditLimit(accountId: $id, amount: "10000.00") { id } }`,
		map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID)}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: "5000.00") { id } }`, map[string]any{"id": c3}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { setBudget(input: {customerId: $id, type: MONTHLY, amount: "1000.00"}) { id } }`, map[string]any{"id": c3}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { unfreezeAccount(accountId: $id) { status } }`, map[string]any{"id": c3}, nil)

	const banQ = `mutation($id: ID!, $b: Boolean!, $r: String!) { setPurchaseBan(customerId: $id, banned: $b, reason: $r) { purchaseBanned } }`
	if r := api.Do(t, tr.D2.Token, banQ, map[string]any{"id": c3, "b": true, "r": "x"}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor banning: %s", r.Code())
	}
	if r := api.Do(t, tr.D1.Token, banQ, map[string]any{"id": c3, "b": true, "r": ""}); r.Code() != "VALIDATION" {
		t.Fatalf("a ban without a reason: %s", r.Code())
	}
	var ban struct{ SetPurchaseBan struct{ PurchaseBanned bool } }
	api.MustDo(t, tr.D1.Token, banQ, map[string]any{"id": c3, "b": true, "r": "Unpaid invoice"}, &ban)
	if !ban.SetPurchaseBan.PurchaseBanned {
		t.Fatalf("ban: %+v", ban)
	}
	for mode, want := range map[string]string{"SUBSCRIPTION": "PURCHASE_BANNED", "PAY_PER_USE": "ALLOWED"} {
		var out struct{ AuthorizePurchase decision }
		api.MustDo(t, tr.Platform.Token, `mutation($id: ID!, $m: BillingMode!) { authorizePurchase(customerId: $id, billingMode: $m, listAmount: "1") { allowed reason } }`,
			map[string]any{"id": c3, "m": mode}, &out)
		if out.AuthorizePurchase.String() != want {
			t.Errorf("%s while banned: %s", mode, out.AuthorizePurchase)
		}
	}

	var batch struct {
		FreezeAccounts []struct {
			AccountID     string
			Account       *struct{ Status string }
			Code, Message *string
		}
	}
	c5 := ids.Encode("Account", tr.C5.Account.ID)
	api.MustDo(t, tr.D1.Token, `mutation($ids: [ID!]!) { freezeAccounts(accountIds: $ids, mode: ACCOUNT, reason: "Audit") { accountId account { status } code message } }`,
		map[string]any{"ids": []string{c3, c5, c3}}, &batch)
	got := []string{}
	for _, r := range batch.FreezeAccounts {
		v := "nil"
		if r.Code != nil {
			v = *r.Code
		}
		if r.Account != nil {
			v = r.Account.Status
		}
		got = append(got, r.AccountID+"="+v)
	}
	if want := []string{c3 + "=FROZEN", c5 + "=NOT_FOUND", c3 + "=VALIDATION"}; strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("batch: %v, want %v", got, want)
	}
	if r := api.Do(t, tr.D1.Token, `mutation { freezeAccounts(accountIds: ["nonsense"], mode: ACCOUNT, reason: "x") { code } }`, nil); r.Code() != "VALIDATION" {
		t.Fatalf("a malformed ID: %s", r.Code())
	}

	const historyQ = `query($id: ID!) { node(id: $id) { ... on Account { purchaseBanned controlHistory(first: 10) { totalCount edges { node { control oldValue newValue reason actor } } } } } }`
	var h struct {
		Node struct {
			PurchaseBanned bool
			ControlHistory struct {
				TotalCount int
				Edges      []struct {
					Node struct{ Control, OldValue, NewValue, Reason, Actor string }
				}
			}
		}
	}
	api.MustDo(t, tr.D1.Token, historyQ, map[string]any{"id": c3}, &h)
	var lines []string
	for _, e := range h.Node.ControlHistory.Edges {
		lines = append(lines, e.Node.Control+":"+e.Node.OldValue+"->"+e.Node.NewValue+":"+e.Node.Reason)
	}
	want := "STATUS:ACTIVE->FROZEN (MANUAL):Audit|PURCHASE_BAN:false->true:Unpaid invoice|STATUS:FROZEN (NEW_CUSTOMER)->ACTIVE:"
	if !h.Node.PurchaseBanned || strings.Join(lines, "|") != want || h.Node.ControlHistory.TotalCount != 3 {
		t.Fatalf("history: %v (%d)", lines, h.Node.ControlHistory.TotalCount)
	}
	if r := api.Do(t, tr.D2.Token, historyQ, map[string]any{"id": c3}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor's read: %s", r.Code())
	}
}
