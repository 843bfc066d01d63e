package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ledongthuc/pdf"
	"github.com/shopspring/decimal"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/testkit"
)

// Billing end to end: last month's records, the bill run, the bills as each
// party sees them, issue, rating, a customer bill's invoice as PDF, and the
// CSV downloads — all through the API and its scope.
func TestBilling_ThroughGraphQLAndDownloads(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	id := func(p testkit.Party) string { return ids.Encode("Account", p.Account.ID) }
	prev := models.MonthOf(time.Now(), testkit.Shanghai).Prev()
	usage := prev.Start(testkit.Shanghai).Add(36 * time.Hour)
	sp := spend.New(tr.Store, testkit.Shanghai)
	d := func(s string) spend.Record {
		return spend.Record{List: decimal.RequireFromString(s), Actual: decimal.RequireFromString(s), BillingMode: models.PayPerUse, UsageAt: usage}
	}
	recs := []spend.Record{d("100.25"), d("20"), d("7.5")}
	for i, c := range []testkit.Party{tr.C3, tr.C3, tr.C1} {
		recs[i].ExternalID, recs[i].CustomerID, recs[i].ProductCode = "bill-e2e-"+string(rune('a'+i)), c.Account.ID, []string{"ecs", "obs", "ecs"}[i]
	}
	if res, err := sp.IngestRecords(tr.Platform.Ctx, recs); err != nil || res.Accepted != 3 {
		t.Fatalf("ingest: %+v %v", res, err)
	}
	month := prev.String()

	if r := api.Do(t, tr.D1.Token, `mutation($m: Month!) { generatePartnerBills(month: $m) }`, map[string]any{"m": month}); r.Code() != "FORBIDDEN" {
		t.Fatalf("partner generating: %q", r.Code())
	}
	if r := api.Do(t, tr.Platform.Token, `mutation { generatePartnerBills(month: "2999-01") }`, nil); r.Code() != "VALIDATION" {
		t.Fatalf("future month: %q", r.Code())
	}
	var gen struct{ GeneratePartnerBills int }
	api.MustDo(t, tr.Platform.Token, `mutation($m: Month!) { generatePartnerBills(month: $m) }`, map[string]any{"m": month}, &gen)
	if gen.GeneratePartnerBills == 0 {
		t.Fatal("no bills generated")
	}

	const billsQ = `query($p: ID!, $m: Month!) { partnerBills(partnerId: $p, month: $m) {
		id status month listTotal actualTotal records csvUrl partner { id } settlesWith { id }
		lines { customer { name } productCode list actual forMonth adjustment owner { id } records } } }`
	var bills struct {
		PartnerBills []struct {
			ID, Status, Month, ListTotal, ActualTotal, CsvURL string
			Records                                           int
			Partner                                           struct{ ID string }
			SettlesWith                                       *struct{ ID string }
			Lines                                             []struct {
				Customer                            struct{ Name string }
				ProductCode, List, Actual, ForMonth string
				Adjustment                          bool
				Owner                               struct{ ID string }
			}
		}
	}
	api.MustDo(t, tr.D1.Token, billsQ, map[string]any{"p": id(tr.D1), "m": month}, &bills)
	own := bills.PartnerBills[0]
	if own.Partner.ID != id(tr.D1) || own.SettlesWith != nil || own.ActualTotal != "127.75" || len(own.Lines) != 3 ||
		own.Status != "DRAFT" || own.Month != month || len(bills.PartnerBills) != 2 { // R2 came after the month and has no records of it
		t.Fatalf("D1's bills: %+v", bills)
	}
	if r := api.Do(t, tr.R1.Token, billsQ, map[string]any{"p": id(tr.D1), "m": month}); r.Code() != "NOT_FOUND" {
		t.Fatalf("R1 reading D1's bills: %q", r.Code())
	}
	if r := api.Do(t, tr.C3.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": own.ID}); r.Code() != "NOT_FOUND" {
		t.Fatalf("customer reading a partner bill: %q", r.Code())
	}

	// Issue, rate and render.
	var issued struct{ IssuePartnerBill struct{ Status string } }
	api.MustDo(t, tr.Platform.Token, `mutation($id: ID!) { issuePartnerBill(id: $id) { status } }`, map[string]any{"id": own.ID}, &issued)
	if issued.IssuePartnerBill.Status != "ISSUED" {
		t.Fatalf("issued: %+v", issued)
	}
	if r := api.Do(t, tr.Platform.Token, `mutation($id: ID!) { issuePartnerBill(id: $id) { status } }`, map[string]any{"id": own.ID}); r.Code() != "CONFLICT" {
		t.Fatalf("issued twice: %q", r.Code())
	}
	if r := api.Do(t, tr.D1.Token, `mutation($p: ID!) { createRatingRule(partnerId: $p, percent: "1000.5", effectiveMonth: "2030-01") { id } }`,
		map[string]any{"p": id(tr.D1)}); r.Code() != "VALIDATION" {
		t.Fatalf("percent out of range: %q", r.Code())
	}
	api.MustDo(t, tr.D1.Token, `mutation($p: ID!, $m: Month!) { createRatingRule(partnerId: $p, productCode: "ecs", percent: "-10", effectiveMonth: $m) { id productCode } }`,
		map[string]any{"p": id(tr.D1), "m": month}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($m: Month!) { generateCustomerBills(month: $m) }`, map[string]any{"m": month}, nil)
	var cbs struct {
		CustomerBills struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					ID, Number, Status, Total, InvoicePdfUrl string
					Lines                                    []struct{ ProductCode, Percent, Amount string }
					Partner                                  *struct{ ID string }
					Customer                                 *struct{ Name string }
				}
			}
		}
	}
	api.MustDo(t, tr.C3.Token, `{ customerBills { totalCount edges { node { id number status total invoicePdfUrl lines { productCode percent amount } partner { id } customer { name } } } } }`, nil, &cbs)
	if cbs.CustomerBills.TotalCount != 1 {
		t.Fatalf("C3's bills: %+v", cbs)
	}
	cb := cbs.CustomerBills.Edges[0].Node
	if cb.Partner != nil || cb.Customer == nil || cb.Customer.Name != "Customer Three" { // a customer does not see its partner
		t.Fatalf("C3's bill's parties: %+v %+v", cb.Partner, cb.Customer)
	}
	if cb.Total != "110.22" || cb.Status != "ISSUED" { // 100.25 × 0.9 = 90.225 → 90.22, + 20.00
		t.Fatalf("C3's bill: %+v", cb)
	}

	get := func(token, path string) (int, string, []byte) {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, api.Server.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := api.Server.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Type"), body
	}
	path := strings.TrimPrefix(cb.InvoicePdfUrl, "https://partner.test")
	if code, _, _ := get("", path); code != http.StatusUnauthorized {
		t.Fatalf("anonymous invoice: %d", code)
	}
	if code, _, _ := get(tr.C1.Token, path); code != http.StatusNotFound {
		t.Fatalf("another customer's invoice: %d", code)
	}
	code, ctype, body := get(tr.C3.Token, path+"?locale=zh-CN")
	if code != http.StatusOK || ctype != "application/pdf" {
		t.Fatalf("invoice: %d %s %s", code, ctype, body)
	}
	rd, err := pdf.NewReader(strings.NewReader(string(body)), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	text, err := rd.GetPlainText()
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(text)
	if !strings.Contains(string(raw), "110.22") || !strings.Contains(string(raw), "90.22") {
		t.Fatalf("the invoice's text lacks its amounts: %q", raw)
	}
	if code, _, _ := get(tr.C3.Token, path+"?locale=fr-FR"); code != http.StatusBadRequest {
		t.Fatalf("unknown locale: %d", code)
	}

	code, ctype, body = get(tr.D1.Token, strings.TrimPrefix(own.CsvURL, "https://partner.test"))
	if code != http.StatusOK || !strings.HasPrefix(ctype, "text/csv") || strings.Count(string(body), "\n") != 4 || !strings.Contains(string(body), "100.25") {
		t.Fatalf("bill CSV: %d %s\n%s", code, ctype, body)
	}
	if code, _, _ := get(tr.R1.Token, strings.TrimPrefix(own.CsvURL, "https://partner.test")); code != http.StatusNotFound {
		t.Fatalf("R1 downloading D1's bill: %d", code)
	}
	code, _, body = get(tr.D1.Token, "/v1/customer-bills/export?month="+month)
	if code != http.StatusOK || !strings.Contains(string(body), cb.Number) || !strings.Contains(string(body), "90.22") {
		t.Fatalf("customer bills CSV: %d\n%s", code, body)
	}
	if code, _, _ := get(tr.D1.Token, "/v1/customer-bills/export?month=13-2026"); code != http.StatusBadRequest {
		t.Fatalf("bad month: %d", code)
	}
}
