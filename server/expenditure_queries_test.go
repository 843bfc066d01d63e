package server_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/server"
	"partnerd/store"
	"partnerd/testkit"
)

// recordVia ingests records through recordExpenditures as the platform;
// every one must be accepted.
func recordVia(t *testing.T, api *testkit.API, recs ...map[string]any) {
	t.Helper()
	var out struct{ RecordExpenditures struct{ Accepted int } }
	api.MustDo(t, api.Platform.Token, `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted } }`,
		map[string]any{"r": recs}, &out)
	if out.RecordExpenditures.Accepted != len(recs) {
		t.Fatalf("accepted %d of %d", out.RecordExpenditures.Accepted, len(recs))
	}
}

func expRec(ext string, customer testkit.Party, product, usage, list, actual string) map[string]any {
	return map[string]any{"externalId": ext, "customerId": acct(customer.Account.ID), "productCode": product,
		"billingMode": "PAY_PER_USE", "usageAt": usage, "listAmount": list, "actualAmount": actual}
}

const summaryQuery = `query($g: ExpenditureGroupBy!, $p: MonthRange, $partner: ID, $customer: ID, $product: String, $tag: TagInput) {
	expenditureSummary(groupBy: $g, period: $p, partnerId: $partner, customerId: $customer, productCode: $product, tag: $tag) {
		groupBy from to list actual records asOf
		rows { customer { id name } customerId productCode day month list actual records }
	} }`

type summaryView struct {
	ExpenditureSummary struct {
		GroupBy, From, To, List, Actual string
		Records                         int
		AsOf                            *string
		Rows                            []struct {
			Customer                            *struct{ ID, Name string }
			CustomerID, ProductCode, Day, Month *string
			List, Actual                        string
			Records                             int
		}
	}
}

const recordsQuery = `query($f: ExpenditureFilter, $first: Int, $after: String) {
	expenditures(filter: $f, first: $first, after: $after) {
		totalCount pageInfo { hasNextPage endCursor }
		edges { cursor node { id externalId customer { name } customerId owner { name } productCode region billingMode
			usageAt month listAmount actualAmount receivedAt adjustment tags { key value } } }
	} }`

type recordNode struct {
	ID, ExternalID, CustomerID, ProductCode, Region, BillingMode, UsageAt, Month, ListAmount, ActualAmount, ReceivedAt string
	Customer                                                                                                           *struct{ Name string }
	Owner                                                                                                              *struct{ Name string }
	Adjustment                                                                                                         bool
	Tags                                                                                                               []struct{ Key, Value string }
}

type recordsView struct {
	Expenditures struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage bool
			EndCursor   *string
		}
		Edges []struct {
			Cursor string
			Node   recordNode
		}
	}
}

// Expenditure summaries and records end to end through GraphQL: Beijing
// days and months, each grouping, paging with totalCount, node(id), the
// scope (a partner sees its subtree's records, a former customer's records
// of its own era with the customer itself hidden), and bad input.
func TestExpenditureQueries_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	if _, err := tr.Accounts.SetTags(tr.Platform.Ctx, tr.C2.Account.ID, []accounts.Tag{{Key: "env", Value: "prod"}}); err != nil {
		t.Fatal(err)
	}
	recordVia(t, api,
		expRec("nov-1", tr.C1, "ecs", "2026-10-31T16:30:00Z", "10.50", "9"),
		expRec("oct-31", tr.C1, "rds", "2026-10-31T15:59:59Z", "4", "4"),
		expRec("c2", tr.C2, "ecs", "2026-10-02T00:00:00Z", "20", "15.123456"),
		expRec("c3", tr.C3, "oss", "2026-10-03T00:00:00Z", "1", "1"),
		expRec("c4", tr.C4, "ecs", "2026-10-04T00:00:00Z", "1000", "1000"),
	)
	octNov := map[string]any{"from": "2026-10", "to": "2026-11"}

	var days summaryView
	api.MustDo(t, tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "p": octNov}, &days)
	s := days.ExpenditureSummary
	var got []string
	for _, r := range s.Rows {
		got = append(got, fmt.Sprintf("%s %s %s %d", *r.Day, *r.Month, r.List, r.Records))
		if r.Customer != nil || r.CustomerID != nil || r.ProductCode != nil {
			t.Errorf("a DAY row with another key: %+v", r)
		}
	}
	if strings.Join(got, "|") != "2026-10-02 2026-10 20.00 1|2026-10-03 2026-10 1.00 1|2026-10-31 2026-10 4.00 1|2026-11-01 2026-11 10.50 1" ||
		s.List != "35.50" || s.Actual != "29.123456" || s.Records != 4 || s.AsOf == nil || s.From != "2026-10" || s.To != "2026-11" {
		t.Fatalf("D1 by day: %+v", s)
	}

	var byCustomer summaryView
	api.MustDo(t, tr.D1.Token, summaryQuery, map[string]any{"g": "CUSTOMER", "p": octNov}, &byCustomer)
	got = nil
	for _, r := range byCustomer.ExpenditureSummary.Rows {
		got = append(got, fmt.Sprintf("%s %s %s", r.Customer.Name, r.Actual, *r.CustomerID))
	}
	if strings.Join(got, "|") != fmt.Sprintf("Customer Two 15.123456 %s|Customer One 13.00 %s|Customer Three 1.00 %s",
		acct(tr.C2.Account.ID), acct(tr.C1.Account.ID), acct(tr.C3.Account.ID)) {
		t.Errorf("D1 by customer: %q", got)
	}
	var tagged summaryView
	api.MustDo(t, tr.D1.Token, summaryQuery, map[string]any{"g": "PRODUCT", "p": octNov, "tag": map[string]any{"key": "env", "value": "prod"}}, &tagged)
	if r := tagged.ExpenditureSummary.Rows; len(r) != 1 || *r[0].ProductCode != "ecs" || r[0].List != "20.00" || r[0].Month != nil {
		t.Errorf("D1 by product, env=prod: %+v", r)
	}
	var months summaryView
	api.MustDo(t, tr.Platform.Token, summaryQuery, map[string]any{"g": "MONTH", "p": octNov, "partner": acct(tr.R1.Account.ID)}, &months)
	if r := months.ExpenditureSummary.Rows; len(r) != 2 || *r[0].Month != "2026-10" || r[0].List != "4.00" || *r[1].Month != "2026-11" || r[1].List != "10.50" {
		t.Errorf("R1's months as the platform: %+v", r)
	}

	// Pages of two, with totalCount, until the end.
	var ids []string
	var after *string
	for pages := 0; ; pages++ {
		var page recordsView
		api.MustDo(t, tr.D1.Token, recordsQuery, map[string]any{"f": map[string]any{"period": octNov}, "first": 2, "after": after}, &page)
		e := page.Expenditures
		if e.TotalCount != 4 {
			t.Errorf("totalCount %d", e.TotalCount)
		}
		for _, edge := range e.Edges {
			ids = append(ids, edge.Node.ExternalID)
		}
		if !e.PageInfo.HasNextPage {
			break
		}
		after = e.PageInfo.EndCursor
		if pages > 3 {
			t.Fatal("paging does not end")
		}
	}
	if strings.Join(ids, ",") != "c2,c3,oct-31,nov-1" {
		t.Errorf("D1's records in usage order: %q", ids)
	}

	var one recordsView
	api.MustDo(t, tr.R1.Token, recordsQuery, map[string]any{"f": map[string]any{"period": octNov, "productCode": "ecs"}}, &one)
	if len(one.Expenditures.Edges) != 1 {
		t.Fatalf("R1's ecs records: %+v", one)
	}
	n := one.Expenditures.Edges[0].Node
	if n.ExternalID != "nov-1" || n.Customer == nil || n.Customer.Name != "Customer One" || n.Owner == nil || n.Owner.Name != "Reseller One" ||
		n.Month != "2026-11" || n.UsageAt != "2026-10-31T16:30:00Z" || n.ListAmount != "10.50" || n.ActualAmount != "9.00" ||
		n.BillingMode != "PAY_PER_USE" || n.Adjustment || len(n.Tags) != 0 || n.CustomerID != acct(tr.C1.Account.ID) {
		t.Errorf("the record as R1: %+v", n)
	}
	// node(id) for those who may see it, NOT_FOUND for the others.
	nodeQ := `query($id: ID!) { node(id: $id) { id ... on Expenditure { externalId listAmount } } }`
	var nd struct {
		Node struct{ ID, ExternalID, ListAmount string }
	}
	api.MustDo(t, tr.C1.Token, nodeQ, map[string]any{"id": n.ID}, &nd)
	if nd.Node.ID != n.ID || nd.Node.ExternalID != "nov-1" {
		t.Errorf("node as C1: %+v", nd)
	}
	for _, p := range []testkit.Party{tr.R2, tr.S1, tr.C2} {
		if r := api.Do(t, p.Token, nodeQ, map[string]any{"id": n.ID}); r.Code() != "NOT_FOUND" {
			t.Errorf("node as %s: %q %s", p.Account.Name, r.Code(), r.Data)
		}
	}

	// C1 moves to S1: D1 keeps its era's records, but no longer sees the customer.
	err := tr.Store.InTx(context.Background(), func(tx *store.Tx) error {
		c, err := accounts.Lock(tx, tr.C1.Account.ID)
		if err != nil {
			return err
		}
		return accounts.Move(tx, c, tr.S1.Account, models.KindCustomer)
	})
	if err != nil {
		t.Fatal(err)
	}
	var former recordsView
	api.MustDo(t, tr.D1.Token, recordsQuery, map[string]any{"f": map[string]any{"period": octNov, "customerId": acct(tr.C1.Account.ID)}}, &former)
	if e := former.Expenditures.Edges; len(e) != 2 || e[0].Node.Customer != nil || e[0].Node.CustomerID != acct(tr.C1.Account.ID) || e[0].Node.Owner.Name != "Reseller One" {
		t.Errorf("D1 for its former customer: %+v", former)
	}
	api.MustDo(t, tr.D1.Token, summaryQuery, map[string]any{"g": "CUSTOMER", "p": octNov}, &byCustomer)
	for _, r := range byCustomer.ExpenditureSummary.Rows {
		if *r.CustomerID == acct(tr.C1.Account.ID) && r.Customer != nil {
			t.Errorf("D1 sees its former customer's account: %+v", r)
		}
	}

	for _, c := range []struct {
		name, token, query string
		vars               map[string]any
		code               string
	}{
		{"from after to", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "p": map[string]any{"from": "2026-11", "to": "2026-10"}}, "VALIDATION"},
		{"25 months", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "p": map[string]any{"from": "2024-10", "to": "2026-10"}}, "VALIDATION"},
		{"a malformed month", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "p": map[string]any{"from": "2026-13", "to": "2026-12"}}, "VALIDATION"},
		{"an unknown grouping", tr.D1.Token, summaryQuery, map[string]any{"g": "WEEK"}, "VALIDATION"},
		{"a malformed partnerId", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "partner": "nope"}, "VALIDATION"},
		{"another distributor", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "partner": acct(tr.D2.Account.ID)}, "NOT_FOUND"},
		{"another's customer", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "customer": acct(tr.C4.Account.ID)}, "NOT_FOUND"},
		{"a customer as partner", tr.D1.Token, summaryQuery, map[string]any{"g": "DAY", "partner": acct(tr.C3.Account.ID)}, "VALIDATION"},
		{"a page of 501", tr.D1.Token, recordsQuery, map[string]any{"first": 501}, "VALIDATION"},
		{"a made-up cursor", tr.D1.Token, recordsQuery, map[string]any{"after": "bm9wZQ"}, "VALIDATION"},
		{"unauthenticated", "", summaryQuery, map[string]any{"g": "DAY"}, "UNAUTHENTICATED"},
	} {
		if r := api.Do(t, c.token, c.query, c.vars); r.Code() != c.code {
			t.Errorf("%s: %q %+v", c.name, r.Code(), r.Errors)
		}
	}
}

// getExport downloads an export with the token (none when "").
func getExport(t *testing.T, api *testkit.API, token string, params url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, api.Server.URL+"/v1/expenditures/export?"+params.Encode(), nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := api.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func exportError(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct {
		Errors []struct {
			Message    string
			Extensions struct{ Code string }
		}
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("an error as %q", ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Errors) != 1 {
		t.Fatalf("error body: %v %+v", err, body)
	}
	return body.Errors[0].Extensions.Code
}

// GET /v1/expenditures/export: CSV downloads of records and summaries with
// the caller's scope, and bad requests refused before any CSV.
func TestExpenditureExport_CSV(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	recordVia(t, api,
		expRec("c1", tr.C1, "=1+1", "2026-10-31T16:30:00Z", "10.50", "9"),
		expRec("c2", tr.C2, "ecs", "2026-10-02T00:00:00Z", "20", "15.123456"),
		expRec("c4", tr.C4, "ecs", "2026-10-04T00:00:00Z", "1000", "1000"),
	)
	resp := getExport(t, api, tr.D1.Token, url.Values{"from": {"2026-10"}, "to": {"2026-11"}})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/csv; charset=utf-8" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="expenditures-records-2026-10_2026-11.csv"` {
		t.Fatalf("records: %d %v", resp.StatusCode, resp.Header)
	}
	body, _ := io.ReadAll(resp.Body)
	rows, err := csv.NewReader(bytes.NewReader(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))).ReadAll()
	if err != nil || len(rows) != 3 || rows[0][1] != "external_id" {
		t.Fatalf("D1's records: %v %q", err, rows)
	}
	// Owner by owner (C1's R1 before C2's R2), each in usage order.
	if rows[1][1] != "c1" || rows[1][6] != "'=1+1" || rows[1][11] != "10.50" || rows[1][10] != "2026-11" || rows[2][1] != "c2" || rows[2][12] != "15.123456" {
		t.Errorf("D1's records: %q", rows)
	}

	resp = getExport(t, api, tr.D1.Token, url.Values{"kind": {"summary"}, "groupBy": {"CUSTOMER"}, "from": {"2026-10"}, "to": {"2026-11"}})
	body, _ = io.ReadAll(resp.Body)
	want := "\xef\xbb\xbfcustomer_id,customer_name,list_amount,actual_amount,records,as_of\r\n" +
		acct(tr.C2.Account.ID) + ",Customer Two,20.00,15.123456,1,"
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), want) || strings.Count(string(body), "\r\n") != 3 ||
		resp.Header.Get("Content-Disposition") != `attachment; filename="expenditures-summary-customer-2026-10_2026-11.csv"` {
		t.Errorf("D1's customer summary: %d %q", resp.StatusCode, body)
	}
	resp = getExport(t, api, tr.C1.Token, url.Values{"kind": {"summary"}, "groupBy": {"month"}, "from": {"2026-10"}, "to": {"2026-11"}})
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "\xef\xbb\xbfmonth,list_amount,actual_amount,records,as_of\r\n2026-11,10.50,9.00,1,") {
		t.Errorf("C1's months: %d %q", resp.StatusCode, body)
	}

	// HEAD answers the headers of the download without running it.
	head, _ := http.NewRequest(http.MethodHead, api.Server.URL+"/v1/expenditures/export?from=2026-10&to=2026-11", nil)
	head.Header.Set("Authorization", "Bearer "+tr.D1.Token)
	hr, err := api.Server.Client().Do(head)
	if err != nil {
		t.Fatal(err)
	}
	hb, _ := io.ReadAll(hr.Body)
	hr.Body.Close()
	if hr.StatusCode != 200 || len(hb) != 0 || hr.Header.Get("Content-Disposition") != `attachment; filename="expenditures-records-2026-10_2026-11.csv"` {
		t.Errorf("HEAD: %d %v %q", hr.StatusCode, hr.Header, hb)
	}

	for _, c := range []struct {
		name   string
		token  string
		params url.Values
		status int
		code   string
	}{
		{"no token", "", url.Values{}, 401, "UNAUTHENTICATED"},
		{"a bad token", "pd_nope", url.Values{}, 401, "UNAUTHENTICATED"},
		{"an unknown kind", tr.D1.Token, url.Values{"kind": {"pdf"}}, 400, "VALIDATION"},
		{"an unknown parameter", tr.D1.Token, url.Values{"customer": {acct(tr.C1.Account.ID)}}, 400, "VALIDATION"},
		{"a repeated parameter", tr.D1.Token, url.Values{"productCode": {"a", "b"}}, 400, "VALIDATION"},
		{"from without to", tr.D1.Token, url.Values{"from": {"2026-10"}}, 400, "VALIDATION"},
		{"a malformed month", tr.D1.Token, url.Values{"from": {"2026-1"}, "to": {"2026-10"}}, 400, "VALIDATION"},
		{"from after to", tr.D1.Token, url.Values{"from": {"2026-11"}, "to": {"2026-10"}}, 400, "VALIDATION"},
		{"25 months", tr.D1.Token, url.Values{"from": {"2024-10"}, "to": {"2026-10"}}, 400, "VALIDATION"},
		{"a summary without groupBy", tr.D1.Token, url.Values{"kind": {"summary"}}, 400, "VALIDATION"},
		{"records with groupBy", tr.D1.Token, url.Values{"groupBy": {"DAY"}}, 400, "VALIDATION"},
		{"an unknown groupBy", tr.D1.Token, url.Values{"kind": {"summary"}, "groupBy": {"WEEK"}}, 400, "VALIDATION"},
		{"a tag without =", tr.D1.Token, url.Values{"tag": {"env"}}, 400, "VALIDATION"},
		{"a malformed tag key", tr.D1.Token, url.Values{"tag": {"a b=c"}}, 400, "VALIDATION"},
		{"a malformed partnerId", tr.D1.Token, url.Values{"partnerId": {"x"}}, 400, "VALIDATION"},
		{"another distributor", tr.D1.Token, url.Values{"partnerId": {acct(tr.D2.Account.ID)}}, 404, "NOT_FOUND"},
		{"another's customer", tr.D1.Token, url.Values{"customerId": {acct(tr.C4.Account.ID)}}, 404, "NOT_FOUND"},
		{"a customer for another", tr.C1.Token, url.Values{"customerId": {acct(tr.C2.Account.ID)}}, 404, "NOT_FOUND"},
	} {
		resp := getExport(t, api, c.token, c.params)
		if resp.StatusCode != c.status {
			t.Errorf("%s: status %d, want %d", c.name, resp.StatusCode, c.status)
			continue
		}
		if code := exportError(t, resp); code != c.code {
			t.Errorf("%s: %s, want %s", c.name, code, c.code)
		}
		if resp.Header.Get("Content-Disposition") != "" {
			t.Errorf("%s: an error with a Content-Disposition", c.name)
		}
	}
}

// A 50,000-record export streams: chunked, without a Content-Length, its
// lines read one by one as they arrive; every record is in it once and the
// amounts add up exactly.
func TestExpenditureExport_StreamsALargeExport(t *testing.T) {
	if testing.Short() {
		t.Skip("ingests 50,000 records")
	}
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	const n = 50_000
	var body bytes.Buffer
	var list decimal.Decimal
	customers := []testkit.Party{tr.C1, tr.C2, tr.C3}
	for i := range n {
		l := decimal.New(int64(i%9973+1), -3)
		list = list.Add(l)
		fmt.Fprintf(&body, `{"externalId":"big-%d","customerId":%q,"productCode":"ecs","billingMode":"PAY_PER_USE","usageAt":"2026-10-%02dT%02d:%02d:00Z","listAmount":"%s","actualAmount":"%s"}`+"\n",
			i, acct(customers[i%3].Account.ID), i%30+1, i%24, i%60, l, l)
	}
	req, _ := http.NewRequest(http.MethodPost, api.Server.URL+"/v1/expenditures", &body)
	req.Header.Set("Authorization", "Bearer "+tr.Platform.Token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := api.Server.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), fmt.Sprintf(`"accepted":%d`, n)) {
		t.Fatalf("ingest: %d %s", resp.StatusCode, raw)
	}

	resp = getExport(t, api, tr.D1.Token, url.Values{"from": {"2026-10"}, "to": {"2026-10"}})
	if resp.StatusCode != 200 || resp.ContentLength != -1 || len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" {
		t.Fatalf("export: %d, length %d, transfer encoding %v", resp.StatusCode, resp.ContentLength, resp.TransferEncoding)
	}
	r := csv.NewReader(bufio.NewReader(resp.Body))
	header, err := r.Read()
	if err != nil || header[0] != "\xef\xbb\xbfid" {
		t.Fatalf("header %q %v", header, err)
	}
	seen := make(map[string]bool, n)
	var sum decimal.Decimal
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seen[rec[1]] {
			t.Fatalf("%s twice", rec[1])
		}
		seen[rec[1]] = true
		sum = sum.Add(decimal.RequireFromString(rec[11]))
	}
	if len(seen) != n || !sum.Equal(list) {
		t.Errorf("%d records adding up to %s, want %d adding up to %s", len(seen), sum, n, list)
	}
}

// The customers of a CUSTOMER summary load through the dataloader: the
// statements of the query do not grow with the number of customers.
func TestExpenditureSummary_CustomersLoadTogether(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	// The fewest of five runs: the token check is served from its
	// one-second cache at least once (and costs a statement otherwise),
	// even on a loaded machine where a run takes most of a second.
	statements := func() int64 {
		least := int64(-1)
		for range 5 {
			before := api.Store.CountStatements()
			var s summaryView
			api.MustDo(t, tr.D1.Token, summaryQuery, map[string]any{"g": "CUSTOMER", "p": map[string]any{"from": "2026-10", "to": "2026-10"}}, &s)
			if n := api.Store.CountStatements() - before; least < 0 || n < least {
				least = n
			}
		}
		return least
	}
	recordVia(t, api, expRec("a", tr.C1, "ecs", "2026-10-01T00:00:00Z", "1", "1"))
	one := statements()
	var recs []map[string]any
	for i := range 6 {
		c := tr.Add(t, tr.R2.Account.ID, models.KindCustomer, fmt.Sprintf("Extra %d", i))
		recs = append(recs, expRec(fmt.Sprintf("x%d", i), c, "ecs", "2026-10-01T00:00:00Z", "1", "1"))
	}
	recordVia(t, api, recs...)
	if seven := statements(); seven != one {
		t.Errorf("a summary of 1 customer took %d statements, of 7 customers %d", one, seven)
	}
}
