package server_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/testkit"
)

type decision struct {
	Allowed bool
	Reason  *string
}

func (d decision) String() string {
	if d.Reason == nil {
		return "ALLOWED"
	}
	return *d.Reason
}

// postPurchase calls POST /v1/purchase-authorizations.
func postPurchase(t *testing.T, api *testkit.API, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, api.Server.URL+"/v1/purchase-authorizations", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// The guard end to end: budgets, freezes and the purchase guard through
// GraphQL and HTTP, an overspending ingestion frozen in the background with
// the partner and the customer told, scope isolation and the denial metrics.
func TestGuard_EndToEnd(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix})
	c3 := ids.Encode("Account", tr.C3.Account.ID)

	api.MustDo(t, tr.Platform.Token, `mutation($id: ID!) { setCreditLimit(accountId: $id, amount: "10000.00") { id } }`,
		map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID)}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: "5000.00") { id } }`, map[string]any{"id": c3}, nil)

	authorize := func(token string, mode models.BillingMode, amount string) decision {
		var out struct{ AuthorizePurchase decision }
		api.MustDo(t, token, `mutation($id: ID!, $m: BillingMode!, $a: Decimal!) { authorizePurchase(customerId: $id, billingMode: $m, listAmount: $a) { allowed reason } }`,
			map[string]any{"id": c3, "m": mode, "a": amount}, &out)
		return out.AuthorizePurchase
	}
	if d := authorize(tr.Platform.Token, models.PayPerUse, "1"); d.String() != "ACCOUNT_FROZEN" {
		t.Fatalf("new customer: %s", d)
	}
	// Unfreezing without a budget is refused; with one it works.
	if r := api.Do(t, tr.D1.Token, `mutation($id: ID!) { unfreezeAccount(accountId: $id) { status } }`, map[string]any{"id": c3}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("unfreeze without budget: %s", r.Code())
	}
	var set struct {
		SetBudget struct {
			Status       string
			FrozenReason string
			Budget       struct {
				Type            string
				Amount          string
				Thresholds      []int
				OverspendAction string
				Spent           string
				UsedPercent     string
				Exceeded        bool
			}
		}
	}
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { setBudget(input: {customerId: $id, type: MONTHLY, amount: "1000.00", thresholds: [100, 50], overspendAction: FREEZE_ACCOUNT_AND_RESOURCES}) {
		status frozenReason budget { type amount thresholds overspendAction spent usedPercent exceeded } } }`, map[string]any{"id": c3}, &set)
	b := set.SetBudget.Budget
	if set.SetBudget.Status != "FROZEN" || set.SetBudget.FrozenReason != "NEW_CUSTOMER" || b.Amount != "1000.00" || len(b.Thresholds) != 2 || b.Thresholds[0] != 50 ||
		b.Spent != "0.00" || b.UsedPercent != "0.00" || b.Exceeded || b.OverspendAction != "FREEZE_ACCOUNT_AND_RESOURCES" {
		t.Fatalf("setBudget: %+v", set.SetBudget)
	}
	if r := api.Do(t, tr.D1.Token, `mutation($id: ID!) { setBudget(input: {customerId: $id, type: MONTHLY, amount: "10", thresholds: [50, 50]}) { id } }`,
		map[string]any{"id": c3}); r.Code() != "VALIDATION" {
		t.Fatalf("duplicate thresholds: %s", r.Code())
	}
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { unfreezeAccount(accountId: $id) { status } }`, map[string]any{"id": c3}, nil)
	var res struct{ RegisterResource struct{ ID, Status string } }
	api.MustDo(t, tr.Platform.Token, `mutation($id: ID!) { registerResource(customerId: $id, productCode: "ecs", externalId: "i-abc") { id status } }`,
		map[string]any{"id": c3}, &res)
	if res.RegisterResource.Status != "RUNNING" {
		t.Fatalf("resource: %+v", res)
	}

	// The HTTP purchase guard and its refusals.
	code, body := postPurchase(t, api, tr.Platform.Token, `{"customerId":"`+c3+`","billingMode":"SUBSCRIPTION","listAmount":"999.99"}`)
	if code != 200 || !strings.Contains(body, `"allowed":true`) {
		t.Fatalf("HTTP allowed: %d %s", code, body)
	}
	code, body = postPurchase(t, api, tr.Platform.Token, `{"customerId":"`+c3+`","billingMode":"SUBSCRIPTION","listAmount":1000.01}`)
	if code != 200 || !strings.Contains(body, `"reason":"BUDGET_EXCEEDED"`) {
		t.Fatalf("HTTP over budget: %d %s", code, body)
	}
	for _, bad := range []string{`{"customerId":"` + c3 + `","billingMode":"BARTER","listAmount":"1"}`, `{"customerId":"` + c3 + `","billingMode":"SUBSCRIPTION","listAmount":"-1"}`,
		`{"customerId":"` + c3 + `","billingMode":"SUBSCRIPTION","listAmount":"1e3"}`, `not json`} {
		if code, body := postPurchase(t, api, tr.Platform.Token, bad); code != 400 || !strings.Contains(body, "VALIDATION") {
			t.Fatalf("%s: %d %s", bad, code, body)
		}
	}
	if code, body := postPurchase(t, api, tr.D2.Token, `{"customerId":"`+c3+`","billingMode":"PAY_PER_USE","listAmount":"1"}`); code != 404 || !strings.Contains(body, "NOT_FOUND") {
		t.Fatalf("another distributor: %d %s", code, body)
	}
	if r := api.Do(t, tr.D2.Token, `query($id: ID!) { account(id: $id) { budget { amount } } }`, map[string]any{"id": c3}); r.Code() != "" {
		var out struct{ Account *struct{} }
		r.Decode(t, &out)
		if out.Account != nil {
			t.Fatal("another distributor sees the account")
		}
	}

	// An ingestion crosses the budget: the workers freeze C3 with its resources within seconds.
	recs := []map[string]any{{"externalId": "x-1", "customerId": c3, "productCode": "ecs", "billingMode": "PAY_PER_USE",
		"usageAt": time.Now().UTC().Add(-time.Minute).Format(time.RFC3339), "listAmount": "1000.00", "actualAmount": "800.00"}}
	api.MustDo(t, tr.Platform.Token, `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted } }`, map[string]any{"r": recs}, nil)
	crossed := time.Now()
	var acct struct {
		Account struct {
			Status, FrozenReason string
			ReleaseAt            *time.Time
			Budget               struct {
				Exceeded    bool
				UsedPercent string
			}
			Resources struct {
				TotalCount int
				Edges      []struct{ Node struct{ Status string } }
			}
		}
	}
	for {
		api.MustDo(t, tr.D1.Token, `query($id: ID!) { account(id: $id) { status frozenReason releaseAt budget { exceeded usedPercent } resources { totalCount edges { node { status } } } } }`,
			map[string]any{"id": c3}, &acct)
		if acct.Account.Status == "FROZEN_WITH_RESOURCES" || time.Since(crossed) > 15*time.Second {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	a := acct.Account
	if a.Status != "FROZEN_WITH_RESOURCES" || a.FrozenReason != "OVERSPEND" || a.ReleaseAt == nil || !a.Budget.Exceeded || a.Budget.UsedPercent != "100.00" ||
		a.Resources.TotalCount != 1 || a.Resources.Edges[0].Node.Status != "STOPPED" {
		t.Fatalf("after crossing: %+v", a)
	}
	t.Logf("overspend frozen %v after the crossing commit", time.Since(crossed).Round(time.Millisecond))
	if d := authorize(tr.C3.Token, models.PayPerUse, "1"); d.String() != "ACCOUNT_FROZEN" {
		t.Fatalf("frozen: %s", d)
	}
	// The partner and the customer are told of the thresholds and the freeze.
	w.WaitDeliveries(t, tr, notify.EventAccountFrozen, 4, 20*time.Second)   // C3 admin, D1 admin: in-site, email (no phones)
	w.WaitDeliveries(t, tr, notify.EventBudgetThreshold, 8, 20*time.Second) // 50 and 100, both sides, in-site and email

	// Metrics count the denials by reason.
	resp, err := http.Get(api.Server.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`partnerd_purchase_denials_total{reason="ACCOUNT_FROZEN"} 2`, `partnerd_purchase_denials_total{reason="BUDGET_EXCEEDED"} 1`,
		`partnerd_purchase_authorizations_total{decision="ALLOWED"} 1`} {
		if !bytes.Contains(m, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// clearBudget through GraphQL.
	var cleared struct {
		ClearBudget struct{ Budget *json.RawMessage }
	}
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { clearBudget(customerId: $id) { budget { amount } } }`, map[string]any{"id": c3}, &cleared)
	if cleared.ClearBudget.Budget != nil {
		t.Fatalf("budget after clear: %s", *cleared.ClearBudget.Budget)
	}
}

// A freeze with resources is released at its time by the queue's wake-up
// (asynq ProcessAt), without waiting for the minute's sweep.
func TestGuard_ReleaseWakeUp(t *testing.T) {
	tr := testkit.NewTree(t)
	g := guard.New(tr.Store, guard.Options{Location: testkit.Shanghai, Retention: 1500 * time.Millisecond})
	testkit.StartWorkers(t, tr, testkit.WorkerOptions{Guard: g})
	c := tr.C3.Account.ID
	if _, err := g.SetBudget(tr.D1.Ctx, guard.BudgetInput{CustomerID: c, Type: models.BudgetMonthly, Amount: decimal.NewFromInt(100)}); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Unfreeze(tr.D1.Ctx, c); err != nil {
		t.Fatal(err)
	}
	if _, err := g.RegisterResource(tr.Platform.Ctx, c, "ecs", "i-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := g.Freeze(tr.D1.Ctx, c, models.FreezeAccountAndResources); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var status string
		if err := tr.Store.DB.Raw(`SELECT status FROM resources WHERE customer_id = ?`, c).Scan(&status).Error; err != nil {
			t.Fatal(err)
		}
		if status == "RELEASED" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("resource still %s 10s after a 1.5s retention", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var deleted bool
	if err := tr.Store.DB.Raw(`SELECT data_deleted_at IS NOT NULL FROM accounts WHERE id = ?`, c).Scan(&deleted).Error; err != nil || !deleted {
		t.Fatalf("data not marked deleted (%v)", err)
	}
}
