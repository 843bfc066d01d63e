package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/testkit"
)

// GraphQL shapes of the vouchers tests.
type (
	voucherPoolView struct {
		Quota, AllocatedDown, Issued, Redeemed, Remaining string
		ExpiresAt                                         *string
		Expired                                           bool
		ApprovalThreshold                                 *string
		Ledger                                            struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					Kind, Amount string
					Counterparty *struct{ ID string }
					Voucher      *struct{ ID string }
					Issuance     *struct{ ID string }
				}
			}
		}
	}
	voucherView struct {
		ID, FaceValue, Used, Remaining, Returned, Status, EffectiveAt, ExpiresAt string
		CloseReason                                                              *string
		Template                                                                 struct {
			Name    string
			Partner *struct{ ID string }
		}
		Issuer      *struct{ ID string }
		Customer    struct{ Name string }
		Redemptions struct {
			TotalCount int
			Edges      []struct {
				Node struct{ Amount, ExternalID string }
			}
		}
	}
	issuanceView struct {
		ID, Status, FaceTotal string
		DecidedBy, Reason     *string
		CustomerIds           []string
		Results               []struct {
			CustomerID, Code string
			Customer         *struct{ Name string }
			Voucher          *struct{ ID, Status string }
			Message          *string
		}
	}
)

const (
	voucherPoolQ = `query($p: ID!) { voucherPool(partnerId: $p) { quota allocatedDown issued redeemed remaining expiresAt expired approvalThreshold
		ledger { totalCount edges { node { kind amount counterparty { id } voucher { id } issuance { id } } } } } }`
	voucherFields = `id faceValue used remaining returned status effectiveAt expiresAt closeReason template { name partner { id } }
		issuer { id } customer { name } redemptions { totalCount edges { node { amount externalId } } }`
	vouchersQ     = `query($c: ID, $p: ID, $s: VoucherStatus) { vouchers(customerId: $c, partnerId: $p, status: $s) { totalCount edges { node { ` + voucherFields + ` } } } }`
	issuanceQ     = `id status faceTotal decidedBy reason customerIds results { customerId code customer { name } voucher { id status } message }`
	issueVouchers = `mutation($t: ID!, $c: [ID!]!) { issueVouchers(templateId: $t, customerIds: $c) { ` + issuanceQ + ` } }`
	createTplQ    = `mutation($p: ID!, $in: VoucherTemplateInput!) { createVoucherTemplate(partnerId: $p, input: $in) { id status productCodes validDays perCustomerLimit } }`
)

func voucherPool(t *testing.T, api *testkit.API, token string, partner testkit.Party) voucherPoolView {
	t.Helper()
	var out struct{ VoucherPool voucherPoolView }
	api.MustDo(t, token, voucherPoolQ, map[string]any{"p": accountID(partner)}, &out)
	return out.VoucherPool
}

func customerVouchers(t *testing.T, api *testkit.API, token string, customer testkit.Party) []voucherView {
	t.Helper()
	var out struct {
		Vouchers struct {
			TotalCount int
			Edges      []struct{ Node voucherView }
		}
	}
	api.MustDo(t, token, vouchersQ, map[string]any{"c": accountID(customer)}, &out)
	list := make([]voucherView, len(out.Vouchers.Edges))
	for i, e := range out.Vouchers.Edges {
		list[i] = e.Node
	}
	if out.Vouchers.TotalCount != len(list) {
		t.Fatalf("totalCount %d for %d vouchers", out.Vouchers.TotalCount, len(list))
	}
	return list
}

func wantVoucherCode(t *testing.T, r *testkit.Response, code, what string) {
	t.Helper()
	if r.Code() != code {
		t.Fatalf("%s: want %s, got %q %+v", what, code, r.Code(), r.Errors)
	}
}

// The voucher flow through the API: the platform grants D1 quota, D1
// allocates to R1, R1 defines a template and issues it with per-customer
// results, a record of C1 is paid by the voucher, the lists, redemptions and
// pool show it, R1 cancels it, and the CSV export lists it; other parties
// get NOT_FOUND, the customer FORBIDDEN, bad input VALIDATION that changes
// nothing.
func TestVouchers_ThroughGraphQLAndExport(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	finance := tr.AddUser(t, tr.Platform.Account, models.RoleFinance)
	expires := time.Now().Add(90 * 24 * time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)

	// The platform grants, D1 allocates.
	const grantQ = `mutation($p: ID!, $a: Decimal!, $e: Time!) { grantVoucherQuota(partnerId: $p, amount: $a, expiresAt: $e) { quota remaining expiresAt } }`
	wantVoucherCode(t, api.Do(t, tr.D1.Token, grantQ, map[string]any{"p": accountID(tr.D1), "a": "1000", "e": expires}), "FORBIDDEN", "D1 granting itself")
	wantVoucherCode(t, api.Do(t, finance.Token, grantQ, map[string]any{"p": accountID(tr.R1), "a": "1000", "e": expires}), "VALIDATION", "grant to a second-level reseller")
	var granted struct {
		GrantVoucherQuota struct{ Quota, Remaining, ExpiresAt string }
	}
	api.MustDo(t, finance.Token, grantQ, map[string]any{"p": accountID(tr.D1), "a": "1000", "e": expires}, &granted)
	if g := granted.GrantVoucherQuota; g.Quota != "1000.00" || g.Remaining != "1000.00" || g.ExpiresAt != expires {
		t.Fatalf("granted: %+v", g)
	}
	const allocateQ = `mutation($r: ID!, $a: Decimal!) { allocateVoucherQuota(resellerId: $r, amount: $a) { quota remaining expiresAt } }`
	wantVoucherCode(t, api.Do(t, tr.D1.Token, allocateQ, map[string]any{"r": accountID(tr.R1), "a": "1000.01"}), "PRECONDITION_FAILED", "allocating more than D1 has")
	wantVoucherCode(t, api.Do(t, tr.R1.Token, allocateQ, map[string]any{"r": accountID(tr.R1), "a": "10"}), "FORBIDDEN", "R1 allocating to itself")
	var allocated struct {
		AllocateVoucherQuota struct{ Quota, Remaining, ExpiresAt string }
	}
	api.MustDo(t, tr.D1.Token, allocateQ, map[string]any{"r": accountID(tr.R1), "a": "300"}, &allocated)
	if a := allocated.AllocateVoucherQuota; a.Quota != "300.00" || a.Remaining != "300.00" || a.ExpiresAt != expires {
		t.Fatalf("R1's pool after the allocation: %+v (its quota expires with D1's grant)", a)
	}

	// R1 defines a template.
	tplIn := map[string]any{"name": "Welcome 50", "faceValue": "50", "validDays": 30, "reason": "new customers"}
	var tpl struct {
		CreateVoucherTemplate struct {
			ID, Status       string
			ProductCodes     []string
			ValidDays        *int
			PerCustomerLimit int
		}
	}
	api.MustDo(t, tr.R1.Token, createTplQ, map[string]any{"p": accountID(tr.R1), "in": tplIn}, &tpl)
	if c := tpl.CreateVoucherTemplate; c.Status != "ACTIVE" || len(c.ProductCodes) != 0 || c.ValidDays == nil || *c.ValidDays != 30 || c.PerCustomerLimit != 1 {
		t.Fatalf("template: %+v", c)
	}
	tplID := tpl.CreateVoucherTemplate.ID

	// Bad input is VALIDATION and changes nothing.
	bad := map[string]any{"name": "Bad", "faceValue": "50", "validDays": 0, "reason": "r"}
	wantVoucherCode(t, api.Do(t, tr.R1.Token, createTplQ, map[string]any{"p": accountID(tr.R1), "in": bad}), "VALIDATION", "validDays 0")
	wantVoucherCode(t, api.Do(t, finance.Token, grantQ, map[string]any{"p": accountID(tr.D1), "a": "-1", "e": expires}), "VALIDATION", "grant of -1")
	wantVoucherCode(t, api.Do(t, tr.D1.Token, allocateQ, map[string]any{"r": accountID(tr.R1), "a": "-1"}), "VALIDATION", "allocation of -1")
	wantVoucherCode(t, api.Do(t, tr.R1.Token, vouchersQ, map[string]any{"c": accountID(tr.C1), "p": accountID(tr.R1)}), "VALIDATION", "both customerId and partnerId")
	wantVoucherCode(t, api.Do(t, tr.R1.Token, vouchersQ, map[string]any{}), "VALIDATION", "neither customerId nor partnerId")
	wantVoucherCode(t, api.Do(t, tr.R1.Token, issueVouchers, map[string]any{"t": tplID, "c": []string{accountID(tr.C1), "not an id!"}}), "VALIDATION", "a malformed customer ID")
	var tpls struct{ VoucherTemplates struct{ TotalCount int } }
	api.MustDo(t, tr.R1.Token, `query($p: ID!) { voucherTemplates(partnerId: $p, includeRetired: true) { totalCount } }`, map[string]any{"p": accountID(tr.R1)}, &tpls)
	if tpls.VoucherTemplates.TotalCount != 1 {
		t.Fatalf("templates after the refused one: %d", tpls.VoucherTemplates.TotalCount)
	}
	if p := voucherPool(t, api, tr.D1.Token, tr.D1); p.Quota != "1000.00" || p.AllocatedDown != "300.00" || p.Remaining != "700.00" ||
		p.Ledger.TotalCount != 2 || p.Ledger.Edges[0].Node.Kind != "ALLOCATE" || p.Ledger.Edges[0].Node.Counterparty == nil ||
		p.Ledger.Edges[0].Node.Counterparty.ID != accountID(tr.R1) || p.Ledger.Edges[1].Node.Kind != "GRANT" {
		t.Fatalf("D1's pool after the refusals: %+v", p)
	}
	if len(customerVouchers(t, api, tr.R1.Token, tr.C1)) != 0 {
		t.Fatal("a refused issue issued vouchers")
	}

	// R1 issues: per-customer results, nothing about accounts it does not see.
	unknown := ids.Encode("Account", 1<<40)
	var issued struct{ IssueVouchers issuanceView }
	api.MustDo(t, tr.R1.Token, issueVouchers, map[string]any{"t": tplID,
		"c": []string{accountID(tr.C1), accountID(tr.C1), accountID(tr.C3), unknown, accountID(tr.R1)}}, &issued)
	is := issued.IssueVouchers
	codes := []string{}
	for _, r := range is.Results {
		codes = append(codes, r.Code)
	}
	if is.Status != "COMPLETED" || is.FaceTotal != "250.00" || strings.Join(codes, " ") != "ISSUED DUPLICATE NOT_FOUND NOT_FOUND NOT_IN_SCOPE" ||
		len(is.CustomerIds) != 5 || is.CustomerIds[2] != accountID(tr.C3) {
		t.Fatalf("issue: %+v", is)
	}
	res := is.Results
	if res[0].Customer == nil || res[0].Customer.Name != "Customer One" || res[0].Voucher == nil || res[0].Voucher.Status != "ISSUED" || res[0].Message != nil {
		t.Fatalf("C1's result: %+v", res[0])
	}
	if res[2].Customer != nil || res[2].CustomerID != accountID(tr.C3) || res[2].Voucher != nil || res[2].Message == nil {
		t.Fatalf("C3 (outside R1's scope) must be a bare NOT_FOUND: %+v", res[2])
	}
	if res[3].Customer != nil || res[3].CustomerID != unknown || res[1].Voucher != nil || res[4].Voucher != nil {
		t.Fatalf("results: %+v", res)
	}
	voucherID := res[0].Voucher.ID
	if p := voucherPool(t, api, tr.R1.Token, tr.R1); p.Issued != "50.00" || p.Remaining != "250.00" {
		t.Fatalf("R1's pool after the issue: %+v", p)
	}

	// A record of C1 after the voucher took effect: the voucher pays it.
	vs := customerVouchers(t, api, tr.R1.Token, tr.C1)
	if len(vs) != 1 || vs[0].ID != voucherID || vs[0].Status != "ISSUED" {
		t.Fatalf("C1's vouchers: %+v", vs)
	}
	effective, err := time.Parse(time.RFC3339Nano, vs[0].EffectiveAt)
	if err != nil {
		t.Fatal(err)
	}
	usage := effective.Add(time.Second)
	var ingest struct{ RecordExpenditures struct{ Accepted int } }
	api.MustDo(t, tr.Platform.Token, `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted } }`, map[string]any{"r": []map[string]any{{
		"externalId": "voucher-e2e-1", "customerId": accountID(tr.C1), "productCode": "ecs", "billingMode": "PAY_PER_USE",
		"usageAt": usage.Format(time.RFC3339Nano), "listAmount": "30", "actualAmount": "20"}}}, &ingest)
	if ingest.RecordExpenditures.Accepted != 1 {
		t.Fatalf("ingest: %+v", ingest)
	}
	vs = customerVouchers(t, api, tr.R1.Token, tr.C1)
	if v := vs[0]; v.Status != "PARTIALLY_USED" || v.Used != "20.00" || v.Remaining != "30.00" || v.FaceValue != "50.00" ||
		v.Template.Name != "Welcome 50" || v.Issuer == nil || v.Issuer.ID != accountID(tr.R1) || v.Customer.Name != "Customer One" ||
		v.Redemptions.TotalCount != 1 || v.Redemptions.Edges[0].Node.Amount != "20.00" || v.Redemptions.Edges[0].Node.ExternalID != "voucher-e2e-1" {
		t.Fatalf("C1's voucher after the record: %+v", v)
	}
	// The customer sees its voucher, not its partner.
	own := customerVouchers(t, api, tr.C1.Token, tr.C1)
	if len(own) != 1 || own[0].ID != voucherID || own[0].Issuer != nil || own[0].Template.Partner != nil || own[0].Remaining != "30.00" {
		t.Fatalf("C1's own view: %+v", own)
	}
	var reds struct {
		VoucherRedemptions struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					ExternalID, ProductCode, Amount, Month, UsageAt string
					Voucher                                         struct{ ID string }
					Customer                                        struct{ Name string }
				}
			}
		}
	}
	month := models.MonthOf(usage, testkit.Shanghai).String()
	api.MustDo(t, tr.R1.Token, `query($v: ID, $p: MonthRange) { voucherRedemptions(voucherId: $v, period: $p) { totalCount edges { node {
		externalId productCode amount month usageAt voucher { id } customer { name } } } } }`,
		map[string]any{"v": voucherID, "p": map[string]any{"from": month, "to": month}}, &reds)
	if r := reds.VoucherRedemptions; r.TotalCount != 1 || r.Edges[0].Node.ExternalID != "voucher-e2e-1" || r.Edges[0].Node.Amount != "20.00" ||
		r.Edges[0].Node.Month != month || r.Edges[0].Node.Voucher.ID != voucherID || r.Edges[0].Node.Customer.Name != "Customer One" || r.Edges[0].Node.ProductCode != "ecs" {
		t.Fatalf("redemptions: %+v", r)
	}
	api.MustDo(t, tr.C1.Token, `query($c: ID) { voucherRedemptions(customerId: $c) { totalCount } }`, map[string]any{"c": accountID(tr.C1)}, &reds)
	if reds.VoucherRedemptions.TotalCount != 1 {
		t.Fatalf("C1's redemptions: %+v", reds)
	}
	if p := voucherPool(t, api, tr.R1.Token, tr.R1); p.Quota != "300.00" || p.Issued != "50.00" || p.Redeemed != "20.00" || p.Remaining != "250.00" ||
		p.Expired || p.ExpiresAt == nil || *p.ExpiresAt != expires || p.ApprovalThreshold != nil || p.Ledger.TotalCount != 2 ||
		p.Ledger.Edges[0].Node.Kind != "ISSUE" || p.Ledger.Edges[0].Node.Issuance == nil || p.Ledger.Edges[0].Node.Issuance.ID != is.ID ||
		p.Ledger.Edges[1].Node.Kind != "ALLOCATED" || p.Ledger.Edges[1].Node.Counterparty != nil { // R1 does not see D1
		t.Fatalf("R1's pool after the record: %+v", p)
	}
	var node struct{ Node struct{ Typename, ID string } }
	api.MustDo(t, tr.C1.Token, `query($id: ID!) { node(id: $id) { typename: __typename id } }`, map[string]any{"id": voucherID}, &node)
	if node.Node.Typename != "Voucher" || node.Node.ID != voucherID {
		t.Fatalf("node: %+v", node)
	}
	for _, id := range []string{tplID, is.ID} {
		api.MustDo(t, tr.D1.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": id}, &node)
		if node.Node.ID != id {
			t.Fatalf("node %s: %+v", id, node)
		}
	}

	// Other parties: NOT_FOUND; the customer: FORBIDDEN.
	const cancelQ = `mutation($id: ID!, $r: String!) { cancelVoucher(id: $id, reason: $r) { status remaining returned closeReason } }`
	wantVoucherCode(t, api.Do(t, tr.D2.Token, voucherPoolQ, map[string]any{"p": accountID(tr.D1)}), "NOT_FOUND", "D2 reading D1's pool")
	wantVoucherCode(t, api.Do(t, tr.D2.Token, vouchersQ, map[string]any{"c": accountID(tr.C1)}), "NOT_FOUND", "D2 reading C1's vouchers")
	wantVoucherCode(t, api.Do(t, tr.D2.Token, cancelQ, map[string]any{"id": voucherID, "r": "mine now"}), "NOT_FOUND", "D2 cancelling C1's voucher")
	wantVoucherCode(t, api.Do(t, tr.D2.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": voucherID}), "NOT_FOUND", "D2 reading C1's voucher")
	wantVoucherCode(t, api.Do(t, tr.R2.Token, vouchersQ, map[string]any{"p": accountID(tr.R1)}), "NOT_FOUND", "R2 reading R1's vouchers")
	wantVoucherCode(t, api.Do(t, tr.C1.Token, cancelQ, map[string]any{"id": voucherID, "r": "no thanks"}), "FORBIDDEN", "C1 cancelling its voucher")
	wantVoucherCode(t, api.Do(t, tr.C1.Token, voucherPoolQ, map[string]any{"p": accountID(tr.R1)}), "NOT_FOUND", "C1 reading its partner's pool")
	auth := func(p testkit.Party) map[string]string {
		return map[string]string{"Authorization": "Bearer " + p.Token}
	}
	if r := get(t, api, "/v1/vouchers/export?customerId="+accountID(tr.C1), auth(tr.D2)); r.status != http.StatusNotFound {
		t.Fatalf("D2 exporting C1's vouchers: %d %s", r.status, r.body)
	}

	// R1 cancels: the unused 30 goes back to its pool.
	var cancelled struct {
		CancelVoucher struct {
			Status, Remaining, Returned string
			CloseReason                 *string
		}
	}
	wantVoucherCode(t, api.Do(t, tr.R1.Token, cancelQ, map[string]any{"id": voucherID, "r": " "}), "VALIDATION", "cancel without a reason")
	api.MustDo(t, tr.R1.Token, cancelQ, map[string]any{"id": voucherID, "r": "customer asked"}, &cancelled)
	if c := cancelled.CancelVoucher; c.Status != "CANCELLED" || c.Remaining != "0.00" || c.Returned != "30.00" || c.CloseReason == nil || *c.CloseReason != "customer asked" {
		t.Fatalf("cancelled: %+v", c)
	}
	wantVoucherCode(t, api.Do(t, tr.R1.Token, cancelQ, map[string]any{"id": voucherID, "r": "again"}), "PRECONDITION_FAILED", "cancelling twice")
	if p := voucherPool(t, api, tr.R1.Token, tr.R1); p.Issued != "20.00" || p.Remaining != "280.00" || p.Ledger.Edges[0].Node.Kind != "RETURN" ||
		p.Ledger.Edges[0].Node.Amount != "30.00" || p.Ledger.Edges[0].Node.Voucher == nil || p.Ledger.Edges[0].Node.Voucher.ID != voucherID {
		t.Fatalf("R1's pool after the cancellation: %+v", p)
	}

	// The export.
	const header = "voucher_id,template_id,template,issuer_id,customer_id,customer_name,status,face_value,used,remaining,returned," +
		"product_scope,product_codes,billing_modes,effective_at,expires_at,issued_at,closed_at,close_reason"
	for _, q := range []string{"customerId=" + accountID(tr.C1), "partnerId=" + accountID(tr.R1) + "&status=CANCELLED"} {
		r := get(t, api, "/v1/vouchers/export?"+q, auth(tr.R1))
		lines := strings.Split(strings.TrimRight(r.body, "\r\n"), "\n")
		if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/csv") || len(lines) != 2 ||
			strings.TrimRight(lines[0], "\r") != header {
			t.Fatalf("export ?%s: %d %v\n%s", q, r.status, r.header, r.body)
		}
		row := strings.Split(strings.TrimRight(lines[1], "\r"), ",")
		if row[0] != voucherID || row[1] != tplID || row[2] != "Welcome 50" || row[3] != accountID(tr.R1) || row[4] != accountID(tr.C1) ||
			row[6] != "CANCELLED" || row[10] != "30" || row[18] != "customer asked" {
			t.Fatalf("export row: %q", row)
		}
		if cd := r.header.Get("Content-Disposition"); !strings.Contains(cd, `filename="vouchers-`) || !strings.HasSuffix(cd, `.csv"`) {
			t.Fatalf("Content-Disposition: %q", cd)
		}
	}
	if r := get(t, api, "/v1/vouchers/export?partnerId="+accountID(tr.R1)+"&status=ISSUED", auth(tr.R1)); r.status != http.StatusOK ||
		strings.Count(strings.TrimRight(r.body, "\r\n"), "\n") != 0 {
		t.Fatalf("export of no live vouchers: %d\n%s", r.status, r.body)
	}
	for q, want := range map[string]int{
		"customerId=" + accountID(tr.C1) + "&partnerId=" + accountID(tr.R1): http.StatusBadRequest,
		"customerId=" + accountID(tr.C1) + "&month=2026-01":                 http.StatusBadRequest,
		"customerId=" + accountID(tr.C1) + "&status=SPENT":                  http.StatusBadRequest,
		"":                               http.StatusBadRequest,
		"customerId=" + accountID(tr.C5): http.StatusNotFound,
	} {
		if r := get(t, api, "/v1/vouchers/export?"+q, auth(tr.R1)); r.status != want {
			t.Fatalf("export ?%s: %d, want %d: %s", q, r.status, want, r.body)
		}
	}
	if r := get(t, api, "/v1/vouchers/export?customerId="+accountID(tr.C1), nil); r.status != http.StatusUnauthorized {
		t.Fatalf("anonymous export: %d", r.status)
	}

}

// A second-level reseller's issue above the threshold its distributor set
// waits for the distributor, reserves nothing, and is carried out on
// approval or refused with a reason.
func TestVouchers_ApprovalThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	finance := tr.AddUser(t, tr.Platform.Account, models.RoleFinance)
	c6 := tr.Add(t, tr.R1.Account.ID, models.KindCustomer, "Customer Six")
	expires := time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339)
	api.MustDo(t, finance.Token, `mutation($p: ID!, $e: Time!) { grantVoucherQuota(partnerId: $p, amount: "1000", expiresAt: $e) { quota } }`,
		map[string]any{"p": accountID(tr.D1), "e": expires}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($r: ID!) { allocateVoucherQuota(resellerId: $r, amount: "500") { quota } }`, map[string]any{"r": accountID(tr.R1)}, nil)

	const thresholdQ = `mutation($r: ID!, $x: Decimal) { setVoucherApprovalThreshold(resellerId: $r, threshold: $x) { approvalThreshold } }`
	wantVoucherCode(t, api.Do(t, tr.R1.Token, thresholdQ, map[string]any{"r": accountID(tr.R1), "x": "1000"}), "FORBIDDEN", "R1 setting its own threshold")
	wantVoucherCode(t, api.Do(t, tr.D1.Token, thresholdQ, map[string]any{"r": accountID(tr.R1), "x": "-5"}), "VALIDATION", "a negative threshold")
	var th struct {
		SetVoucherApprovalThreshold struct{ ApprovalThreshold *string }
	}
	api.MustDo(t, tr.D1.Token, thresholdQ, map[string]any{"r": accountID(tr.R1), "x": "100"}, &th)
	if th.SetVoucherApprovalThreshold.ApprovalThreshold == nil || *th.SetVoucherApprovalThreshold.ApprovalThreshold != "100.00" {
		t.Fatalf("threshold: %+v", th)
	}

	var tpl struct{ CreateVoucherTemplate struct{ ID string } }
	api.MustDo(t, tr.R1.Token, createTplQ, map[string]any{"p": accountID(tr.R1), "in": map[string]any{"name": "Spring 80", "faceValue": "80",
		"productScope": "ONLY", "productCodes": []string{" rds", "ecs", "ecs"}, "billingModes": "PAY_PER_USE",
		"validUntil": time.Now().Add(30 * 24 * time.Hour).UTC().Format(time.RFC3339), "reason": "spring campaign"}}, &tpl)
	tplID := tpl.CreateVoucherTemplate.ID
	customers := []string{accountID(tr.C1), accountID(c6)}

	// 2 × 80 > 100: pending, nothing reserved.
	var pending struct{ IssueVouchers issuanceView }
	api.MustDo(t, tr.R1.Token, issueVouchers, map[string]any{"t": tplID, "c": customers}, &pending)
	if p := pending.IssueVouchers; p.Status != "PENDING_APPROVAL" || p.FaceTotal != "160.00" || len(p.Results) != 0 || p.DecidedBy != nil {
		t.Fatalf("pending issue: %+v", p)
	}
	if p := voucherPool(t, api, tr.R1.Token, tr.R1); p.Issued != "0.00" || p.Remaining != "500.00" || p.ApprovalThreshold == nil {
		t.Fatalf("a pending issue reserved quota: %+v", p)
	}
	var list struct {
		VoucherIssuances struct {
			TotalCount int
			Edges      []struct{ Node struct{ ID, Status string } }
		}
	}
	api.MustDo(t, tr.D1.Token, `query($p: ID!) { voucherIssuances(partnerId: $p, status: PENDING_APPROVAL) { totalCount edges { node { id status } } } }`,
		map[string]any{"p": accountID(tr.D1)}, &list)
	if list.VoucherIssuances.TotalCount != 1 || list.VoucherIssuances.Edges[0].Node.ID != pending.IssueVouchers.ID {
		t.Fatalf("D1's pending issues: %+v", list)
	}

	const approveQ = `mutation($id: ID!) { approveVoucherIssuance(id: $id) { ` + issuanceQ + ` } }`
	wantVoucherCode(t, api.Do(t, tr.R1.Token, approveQ, map[string]any{"id": pending.IssueVouchers.ID}), "FORBIDDEN", "R1 approving its own issue")
	wantVoucherCode(t, api.Do(t, tr.R2.Token, approveQ, map[string]any{"id": pending.IssueVouchers.ID}), "NOT_FOUND", "R2 approving R1's issue")
	var approved struct{ ApproveVoucherIssuance issuanceView }
	api.MustDo(t, tr.D1.Token, approveQ, map[string]any{"id": pending.IssueVouchers.ID}, &approved)
	a := approved.ApproveVoucherIssuance
	if a.Status != "COMPLETED" || a.DecidedBy == nil || len(a.Results) != 2 || a.Results[0].Code != "ISSUED" || a.Results[1].Code != "ISSUED" ||
		a.Results[1].Customer == nil || a.Results[1].Customer.Name != "Customer Six" {
		t.Fatalf("approved: %+v", a)
	}
	wantVoucherCode(t, api.Do(t, tr.D1.Token, approveQ, map[string]any{"id": pending.IssueVouchers.ID}), "PRECONDITION_FAILED", "approving twice")
	if p := voucherPool(t, api, tr.R1.Token, tr.R1); p.Issued != "160.00" || p.Remaining != "340.00" {
		t.Fatalf("R1's pool after the approval: %+v", p)
	}
	vs := customerVouchers(t, api, tr.C1.Token, tr.C1)
	if len(vs) != 1 || vs[0].Status != "ISSUED" || vs[0].FaceValue != "80.00" {
		t.Fatalf("C1's vouchers: %+v", vs)
	}
	var codes struct {
		Node struct {
			ProductScope, BillingModes string
			ProductCodes               []string
		}
	}
	api.MustDo(t, tr.C1.Token, `query($id: ID!) { node(id: $id) { ... on Voucher { productScope billingModes productCodes } } }`, map[string]any{"id": vs[0].ID}, &codes)
	if codes.Node.ProductScope != "ONLY" || codes.Node.BillingModes != "PAY_PER_USE" || strings.Join(codes.Node.ProductCodes, ",") != "ecs,rds" {
		t.Fatalf("the voucher's terms: %+v", codes.Node)
	}

	// Another pending issue, rejected with a reason: nothing changes.
	api.MustDo(t, tr.R1.Token, issueVouchers, map[string]any{"t": tplID, "c": customers}, &pending)
	const rejectQ = `mutation($id: ID!, $r: String!) { rejectVoucherIssuance(id: $id, reason: $r) { ` + issuanceQ + ` } }`
	wantVoucherCode(t, api.Do(t, tr.D1.Token, rejectQ, map[string]any{"id": pending.IssueVouchers.ID, "r": ""}), "VALIDATION", "rejecting without a reason")
	var rejected struct{ RejectVoucherIssuance issuanceView }
	api.MustDo(t, tr.D1.Token, rejectQ, map[string]any{"id": pending.IssueVouchers.ID, "r": "over budget"}, &rejected)
	if r := rejected.RejectVoucherIssuance; r.Status != "REJECTED" || r.Reason == nil || *r.Reason != "over budget" || len(r.Results) != 0 {
		t.Fatalf("rejected: %+v", r)
	}
	wantVoucherCode(t, api.Do(t, tr.D1.Token, approveQ, map[string]any{"id": pending.IssueVouchers.ID}), "PRECONDITION_FAILED", "approving a rejected issue")
	if p := voucherPool(t, api, tr.R1.Token, tr.R1); p.Issued != "160.00" {
		t.Fatalf("R1's pool after the rejection: %+v", p)
	}
	// Unused quota comes back; issued quota does not.
	const reclaimQ = `mutation($r: ID!, $a: Decimal!) { reclaimVoucherQuota(resellerId: $r, amount: $a) { quota remaining } }`
	wantVoucherCode(t, api.Do(t, tr.D1.Token, reclaimQ, map[string]any{"r": accountID(tr.R1), "a": "340.01"}), "PRECONDITION_FAILED", "reclaiming issued quota")
	var reclaimed struct {
		ReclaimVoucherQuota struct{ Quota, Remaining string }
	}
	api.MustDo(t, tr.D1.Token, reclaimQ, map[string]any{"r": accountID(tr.R1), "a": "340"}, &reclaimed)
	if r := reclaimed.ReclaimVoucherQuota; r.Quota != "160.00" || r.Remaining != "0.00" {
		t.Fatalf("reclaimed: %+v", r)
	}
	if p := voucherPool(t, api, tr.D1.Token, tr.D1); p.AllocatedDown != "160.00" || p.Remaining != "840.00" {
		t.Fatalf("D1's pool after the reclaim: %+v", p)
	}
}

// A voucher's nested redemptions page like voucherRedemptions: newest
// first, keyset cursors, totalCount; the vouchers of a page load theirs
// together.
func TestVouchers_RedemptionPages(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	finance := tr.AddUser(t, tr.Platform.Account, models.RoleFinance)
	expires := time.Now().Add(90 * 24 * time.Hour).UTC().Format(time.RFC3339)
	api.MustDo(t, finance.Token, `mutation($p: ID!, $e: Time!) { grantVoucherQuota(partnerId: $p, amount: "1000", expiresAt: $e) { quota } }`,
		map[string]any{"p": accountID(tr.D1), "e": expires}, nil)
	var tpl struct{ CreateVoucherTemplate struct{ ID string } }
	api.MustDo(t, tr.D1.Token, createTplQ, map[string]any{"p": accountID(tr.D1), "in": map[string]any{"name": "Ten", "faceValue": "10",
		"validDays": 7, "perCustomerLimit": 2, "reason": "loyalty"}}, &tpl)
	for i := 0; i < 2; i++ {
		api.MustDo(t, tr.D1.Token, issueVouchers, map[string]any{"t": tpl.CreateVoucherTemplate.ID, "c": []string{accountID(tr.C3)}}, nil)
	}
	vs := customerVouchers(t, api, tr.D1.Token, tr.C3)
	if len(vs) != 2 {
		t.Fatalf("C3's vouchers: %+v", vs)
	}
	effective, err := time.Parse(time.RFC3339Nano, vs[0].EffectiveAt)
	if err != nil {
		t.Fatal(err)
	}
	// 4 + 4 + 4 + 4 + 2: the first voucher (earliest expiry, then the
	// oldest) pays 4, 4 and 2 of the third record, the second the rest.
	var recs []map[string]any
	for i, amount := range []string{"4", "4", "4", "4", "2"} {
		recs = append(recs, map[string]any{"externalId": "page-" + string(rune('a'+i)), "customerId": accountID(tr.C3), "productCode": "ecs",
			"billingMode": "PAY_PER_USE", "usageAt": effective.Add(time.Duration(i+1) * time.Second).Format(time.RFC3339Nano),
			"listAmount": amount, "actualAmount": amount})
	}
	api.MustDo(t, tr.Platform.Token, `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted } }`, map[string]any{"r": recs}, nil)

	type page struct {
		TotalCount int
		PageInfo   struct {
			HasNextPage bool
			EndCursor   *string
		}
		Edges []struct {
			Node struct{ ExternalID, Amount string }
		}
	}
	names := func(p page) string {
		out := []string{}
		for _, e := range p.Edges {
			out = append(out, e.Node.ExternalID+":"+e.Node.Amount)
		}
		return strings.Join(out, " ")
	}
	var first struct {
		Vouchers struct {
			Edges []struct {
				Node struct {
					ID, Status, Remaining string
					Redemptions           page
				}
			}
		}
	}
	api.MustDo(t, tr.D1.Token, `query($c: ID) { vouchers(customerId: $c) { edges { node { id status remaining
		redemptions(first: 2) { totalCount pageInfo { hasNextPage endCursor } edges { node { externalId amount } } } } } } }`,
		map[string]any{"c": accountID(tr.C3)}, &first)
	newer, older := first.Vouchers.Edges[0].Node, first.Vouchers.Edges[1].Node // newest first
	if older.Status != "USED" || older.Remaining != "0.00" || newer.Status != "PARTIALLY_USED" || newer.Remaining != "2.00" {
		t.Fatalf("vouchers: %+v", first)
	}
	if p := older.Redemptions; p.TotalCount != 3 || !p.PageInfo.HasNextPage || names(p) != "page-c:2.00 page-b:4.00" {
		t.Fatalf("the older voucher's first page: %+v", p)
	}
	if p := newer.Redemptions; p.TotalCount != 3 || !p.PageInfo.HasNextPage || names(p) != "page-e:2.00 page-d:4.00" {
		t.Fatalf("the newer voucher's first page: %+v", p)
	}
	const nextQ = `query($id: ID!, $after: String) { node(id: $id) { ... on Voucher {
		redemptions(first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { externalId amount } } } } } }`
	var next struct{ Node struct{ Redemptions page } }
	api.MustDo(t, tr.D1.Token, nextQ, map[string]any{"id": older.ID, "after": *older.Redemptions.PageInfo.EndCursor}, &next)
	if p := next.Node.Redemptions; p.PageInfo.HasNextPage || names(p) != "page-a:4.00" {
		t.Fatalf("the older voucher's second page: %+v", p)
	}
	// A cursor of another voucher's redemption gives an empty page.
	api.MustDo(t, tr.D1.Token, nextQ, map[string]any{"id": older.ID, "after": *newer.Redemptions.PageInfo.EndCursor}, &next)
	if p := next.Node.Redemptions; p.PageInfo.HasNextPage || len(p.Edges) != 0 || p.TotalCount != 3 {
		t.Fatalf("another voucher's cursor: %+v", p)
	}
	// voucherRedemptions pages the same way.
	var top struct{ VoucherRedemptions page }
	api.MustDo(t, tr.D1.Token, `query($v: ID, $after: String) { voucherRedemptions(voucherId: $v, first: 2, after: $after) {
		totalCount pageInfo { hasNextPage endCursor } edges { node { externalId amount } } } }`,
		map[string]any{"v": older.ID, "after": *older.Redemptions.PageInfo.EndCursor}, &top)
	if names(top.VoucherRedemptions) != "page-a:4.00" || top.VoucherRedemptions.TotalCount != 3 {
		t.Fatalf("voucherRedemptions' second page: %+v", top)
	}
	wantVoucherCode(t, api.Do(t, tr.D1.Token, nextQ, map[string]any{"id": older.ID, "after": "nonsense"}), "VALIDATION", "a bad cursor")
	wantVoucherCode(t, api.Do(t, tr.D1.Token, `query($id: ID!) { node(id: $id) { ... on Voucher { redemptions(first: 501) { totalCount } } } }`,
		map[string]any{"id": older.ID}), "VALIDATION", "a page of 501")
}
