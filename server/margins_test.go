package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/testkit"
)

// The margin report through GraphQL and its CSV: R1 pays 10 for C1's
// records and charges it 11 (+10%), a margin of 1 (9.09%); another
// distributor sees nothing.
func TestMarginReport_ThroughGraphQLAndExport(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	prev := models.MonthOf(time.Now(), testkit.Shanghai).Prev()
	sp := spend.New(tr.Store, testkit.Shanghai)
	if res, err := sp.IngestRecords(tr.Platform.Ctx, []spend.Record{{ExternalID: "margin-1", CustomerID: tr.C1.Account.ID, ProductCode: "ecs",
		BillingMode: models.PayPerUse, UsageAt: prev.Start(testkit.Shanghai).Add(36 * time.Hour),
		List: decimal.RequireFromString("12"), Actual: decimal.RequireFromString("10")}}); err != nil || res.Accepted != 1 {
		t.Fatalf("ingest: %+v %v", res, err)
	}
	month := prev.String()
	r1 := ids.Encode("Account", tr.R1.Account.ID)
	api.MustDo(t, tr.Platform.Token, `mutation($m: Month!) { generatePartnerBills(month: $m) }`, map[string]any{"m": month}, nil)
	const reportQ = `query($p: ID, $m: Month!) { marginReport(partnerId: $p, month: $m) { totalCount
		totals { cost netCost revenue margin marginPercent stale }
		edges { node { customer { name } month cost vouchers netCost revenue margin marginPercent billStatus stale } } } }`
	if r := api.Do(t, tr.R1.Token, reportQ, map[string]any{"m": month}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("before the customer bills: %s", r.Code())
	}
	api.MustDo(t, tr.R1.Token, `mutation($m: Month!, $p: ID!) { createRatingRule(partnerId: $p, productCode: null, percent: "10", effectiveMonth: $m) { id } }`,
		map[string]any{"m": month, "p": r1}, nil)
	api.MustDo(t, tr.R1.Token, `mutation($m: Month!) { generateCustomerBills(month: $m) }`, map[string]any{"m": month}, nil)
	type row struct {
		Customer                                *struct{ Name string }
		Month, Cost, Vouchers, NetCost, Revenue string
		Margin                                  string
		MarginPercent, BillStatus               *string
		Stale                                   bool
	}
	var rep struct {
		MarginReport struct {
			TotalCount int
			Totals     row
			Edges      []struct{ Node row }
		}
	}
	api.MustDo(t, tr.R1.Token, reportQ, map[string]any{"m": month}, &rep)
	m := rep.MarginReport
	if m.TotalCount != 1 || len(m.Edges) != 1 {
		t.Fatalf("report: %+v", m)
	}
	n := m.Edges[0].Node
	if n.Customer == nil || n.Customer.Name != "Customer One" || n.Month != month || n.Cost != "10.00" || n.Revenue != "13.20" ||
		n.Margin != "3.20" || n.MarginPercent == nil || *n.MarginPercent != "24.24" || n.BillStatus == nil || *n.BillStatus != "DRAFT" || n.Stale {
		t.Fatalf("C1's row: %+v", n)
	}
	if tot := m.Totals; tot.Customer != nil || tot.Margin != "3.20" || tot.Revenue != "13.20" {
		t.Fatalf("totals: %+v", tot)
	}
	if r := api.Do(t, tr.D2.Token, reportQ, map[string]any{"p": r1, "m": month}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor: %s", r.Code())
	}
	auth := func(p testkit.Party) map[string]string {
		return map[string]string{"Authorization": "Bearer " + p.Token}
	}
	res := get(t, api, "/v1/margins/export?month="+month, auth(tr.R1))
	if res.status != http.StatusOK || !strings.HasPrefix(res.body, "customer_id,customer_name,month,bill_status,cost,vouchers,net_cost,revenue,margin,margin_percent") ||
		!strings.Contains(res.body, "Customer One,"+month+",DRAFT,10") {
		t.Fatalf("export: %d\n%s", res.status, res.body)
	}
	for q, want := range map[string]int{"": http.StatusBadRequest, "month=" + month + "&x=1": http.StatusBadRequest,
		"month=" + month + "&partnerId=" + r1: http.StatusOK} {
		if r := get(t, api, "/v1/margins/export?"+q, auth(tr.R1)); r.status != want {
			t.Fatalf("export ?%s: %d, want %d: %s", q, r.status, want, r.body)
		}
	}
	if r := get(t, api, "/v1/margins/export?month="+month+"&partnerId="+r1, auth(tr.D2)); r.status != http.StatusNotFound {
		t.Fatalf("another distributor's export: %d", r.status)
	}
}
