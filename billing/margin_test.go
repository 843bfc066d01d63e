package billing_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"strings"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/vouchers"
)

// marginLine is a margin row as "customer status cost vouchers net revenue
// margin percent stale" (percent "-" when nil).
func marginLine(r *billing.MarginRow) string {
	p := "-"
	if r.MarginPercent != nil {
		p = r.MarginPercent.StringFixed(2)
	}
	return fmt.Sprintf("%d %s %s %s %s %s %s %s %t", r.CustomerID, r.BillStatus, r.Cost, r.Vouchers, r.NetCost,
		r.Revenue.StringFixed(2), r.Margin, p, r.Stale)
}

func (f *fixture) margins(t *testing.T, ctx context.Context, partner int64, m string) []string {
	t.Helper()
	p := must[*billing.Page[*billing.MarginRow]](t)(f.svc.Margins(ctx, partner, month(m), billing.MaxPage, 0))
	if p.More || p.Total != len(p.Items) {
		t.Fatalf("margins page: more %t, total %d, %d items", p.More, p.Total, len(p.Items))
	}
	var out []string
	for _, r := range p.Items {
		if r.PartnerID != partner || r.Month != month(m).Key() {
			t.Fatalf("margin row of %d/%d", r.PartnerID, r.Month)
		}
		out = append(out, marginLine(r))
	}
	return out
}

func sameMargins(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("margins:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestMargins follows a second-level reseller's margins: two customers
// rated by different rules (+10% on ecs, −5% by default), one of them paid
// partly by a voucher, a margin percentage on a tie, the distributor's own
// report without its reseller's customers, stale and missing customer
// bills, the scope and the roles, paging, the CSV export, and a late record
// in the next month's adjustment.
func TestMargins(t *testing.T) {
	f := newFixture(t, "2026-08-20 10:00")
	d1, r1, c1, c3 := f.D1.Account.ID, f.R1.Account.ID, f.C1.Account.ID, f.C3.Account.ID
	c6 := f.Add(t, r1, models.KindCustomer, "=Sum Trading").Account.ID
	vs := vouchers.New(f.Store, vouchers.Options{Location: beijing})

	// R1 issues C1 a voucher of 20 from the quota D1 passed down.
	f.clk.Set(bj("2026-09-01 09:00"))
	must[*vouchers.Pool](t)(vs.Grant(f.finance, d1, dec("1000"), f.clk.Now().Add(90*24*time.Hour)))
	must[*vouchers.Pool](t)(vs.Allocate(f.D1.Ctx, r1, dec("100")))
	days := 60
	tpl := must[*vouchers.Template](t)(vs.CreateTemplate(f.R1.Ctx, r1, vouchers.TemplateInput{Name: "Welcome", FaceValue: dec("20"),
		ProductScope: vouchers.ScopeAll, BillingModes: vouchers.ModesAll, ValidDays: &days, PerCustomerLimit: 1, Reason: "new customer"}))
	if is := must[*vouchers.Issuance](t)(vs.Issue(f.R1.Ctx, tpl.ID, []int64{c1})); is.Results[0].Code != vouchers.IssueOK {
		t.Fatalf("issue: %+v", is.Results)
	}

	f.clk.Set(bj("2026-09-10 09:00"))
	f.ingest(t, c1, "ecs", "2026-09-03 10:00", "100.005", "90") // the voucher pays 20 of it
	f.ingest(t, c6, "obs", "2026-09-04 10:00", "84.21", "79.98")
	f.ingest(t, c3, "ecs", "2026-09-05 10:00", "50", "45") // D1's own customer
	f.clk.Set(bj("2026-10-02 09:00"))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.R1.Ctx, r1, "", dec("-5"), month("2026-01")))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.R1.Ctx, r1, "ecs", dec("10"), month("2026-01")))

	// Nothing to compare before the partner bills, then before the
	// customer bills.
	_, err := f.svc.Margins(f.R1.Ctx, r1, month("2026-09"), 10, 0)
	wantCode(t, err, apperr.PreconditionFailed)
	must[int](t)(f.svc.GeneratePartnerBills(f.Platform.Ctx, month("2026-09")))
	_, err = f.svc.Margins(f.R1.Ctx, r1, month("2026-09"), 10, 0)
	wantCode(t, err, apperr.PreconditionFailed)
	_, err = f.svc.PrepareMarginExport(f.R1.Ctx, r1, month("2026-09"))
	wantCode(t, err, apperr.PreconditionFailed)
	// S1's bill holds no lines of its own customers: an empty report.
	if p := must[*billing.Page[*billing.MarginRow]](t)(f.svc.Margins(f.finance, f.S1.Account.ID, month("2026-09"), 10, 0)); len(p.Items) != 0 || p.Total != 0 {
		t.Fatalf("S1's margins: %+v", p)
	}
	must[int](t)(f.svc.GenerateCustomerBills(f.R1.Ctx, r1, month("2026-09")))
	must[int](t)(f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-09")))

	// C1: ecs 100.005 × 1.10 = 110.0055 → 110.01, less the voucher's 20.00:
	// 90.01 against 90 − 20; 20.01 / 90.01 = 22.2308…%.
	// C6: obs 84.21 × 0.95 = 79.9995 → 80.00 against 79.98; 0.02 / 80 =
	// 0.025% → 0.02 (half-even; half-up would give 0.03).
	want := []string{
		fmt.Sprintf("%d DRAFT 90 20 70 90.01 20.01 22.23 false", c1),
		fmt.Sprintf("%d DRAFT 79.98 0 79.98 80.00 0.02 0.02 false", c6),
	}
	sameMargins(t, f.margins(t, f.R1.Ctx, r1, "2026-09"), want)
	// Those above R1 see the same; partnerId 0 is the caller's own.
	sameMargins(t, f.margins(t, f.D1.Ctx, r1, "2026-09"), want)
	sameMargins(t, f.margins(t, f.finance, r1, "2026-09"), want)
	own := must[*billing.Page[*billing.MarginRow]](t)(f.svc.Margins(f.AddUser(t, f.R1.Account, models.RoleFinance).Ctx, 0, month("2026-09"), 10, 0))
	if len(own.Items) != 2 || own.Items[0].PartnerID != r1 || marginLine(own.Items[0]) != want[0] {
		t.Fatalf("R1 FINANCE's own margins: %+v", own.Items)
	}
	// D1's bill holds C1's and C6's lines too, but D1 reports its own
	// customer only: C3 at list price, 50.00 against 45.
	sameMargins(t, f.margins(t, f.D1.Ctx, d1, "2026-09"), []string{fmt.Sprintf("%d DRAFT 45 0 45 50.00 5 10.00 false", c3)})

	tot := must[*billing.MarginRow](t)(f.svc.MarginTotals(f.R1.Ctx, r1, month("2026-09")))
	// 20.03 / 170.01 = 11.7816…%.
	if got := marginLine(tot); got != "0  169.98 20 149.98 170.01 20.03 11.78 false" {
		t.Fatalf("totals: %s", got)
	}

	// Scope and roles: outside the scope NOT_FOUND (a customer included),
	// without finance FORBIDDEN, a customer as the partner VALIDATION.
	for _, c := range []struct {
		name string
		ctx  context.Context
		id   int64
		code apperr.Code
	}{
		{"another partner", f.R2.Ctx, r1, apperr.NotFound},
		{"the reseller on its distributor", f.R1.Ctx, d1, apperr.NotFound},
		{"the customer", f.C1.Ctx, r1, apperr.NotFound},
		{"a viewer", f.AddUser(t, f.R1.Account, models.RoleViewer).Ctx, r1, apperr.Forbidden},
		{"a platform viewer", f.AddUser(t, f.Platform.Account, models.RoleViewer).Ctx, r1, apperr.Forbidden},
		{"a customer as the partner", f.finance, c1, apperr.Validation},
		{"a customer's own", f.C1.Ctx, 0, apperr.Validation},
	} {
		_, err := f.svc.Margins(c.ctx, c.id, month("2026-09"), 10, 0)
		if apperr.CodeOf(err) != c.code {
			t.Errorf("%s: want %s, got %v", c.name, c.code, err)
		}
		_, err = f.svc.PrepareMarginExport(c.ctx, c.id, month("2026-09"))
		if apperr.CodeOf(err) != c.code {
			t.Errorf("%s (export): want %s, got %v", c.name, c.code, err)
		}
	}
	_, err = f.svc.Margins(f.R1.Ctx, r1, month("2027-01"), 10, 0)
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.Margins(f.R1.Ctx, r1, month("2026-09"), billing.MaxPage+1, 0)
	wantCode(t, err, apperr.Validation)

	// Paging by customer id.
	p := must[*billing.Page[*billing.MarginRow]](t)(f.svc.Margins(f.R1.Ctx, r1, month("2026-09"), 1, 0))
	if len(p.Items) != 1 || !p.More || p.Total != 2 || p.Items[0].CustomerID != c1 {
		t.Fatalf("first page: more %t, total %d, %+v", p.More, p.Total, p.Items)
	}
	p = must[*billing.Page[*billing.MarginRow]](t)(f.svc.Margins(f.R1.Ctx, r1, month("2026-09"), 1, p.Items[0].CustomerID))
	if len(p.Items) != 1 || p.More || p.Total != 2 || marginLine(p.Items[0]) != want[1] {
		t.Fatalf("second page: more %t, total %d, %+v", p.More, p.Total, p.Items)
	}
	if p = must[*billing.Page[*billing.MarginRow]](t)(f.svc.Margins(f.R1.Ctx, r1, month("2026-09"), 0, 0)); len(p.Items) != 0 || !p.More || p.Total != 2 {
		t.Fatalf("empty page: %+v", p)
	}

	// The CSV export.
	exp := must[*billing.MarginExport](t)(f.svc.PrepareMarginExport(f.D1.Ctx, r1, month("2026-09")))
	if exp.Filename() != fmt.Sprintf("margins-%d-2026-09.csv", r1) {
		t.Fatalf("filename %s", exp.Filename())
	}
	var out bytes.Buffer
	if err := exp.WriteCSV(f.D1.Ctx, &out); err != nil {
		t.Fatal(err)
	}
	rows := must[[][]string](t)(csv.NewReader(&out).ReadAll())
	wantCSV := [][]string{
		{"customer_id", "customer_name", "month", "bill_status", "cost", "vouchers", "net_cost", "revenue", "margin", "margin_percent", "stale"},
		{ids.Encode(accounts.TypeAccount, c1), "Customer One", "2026-09", "DRAFT", "90", "20", "70", "90.01", "20.01", "22.23", "false"},
		{ids.Encode(accounts.TypeAccount, c6), "'=Sum Trading", "2026-09", "DRAFT", "79.98", "0", "79.98", "80.00", "0.02", "0.02", "false"},
	}
	if fmt.Sprint(rows) != fmt.Sprint(wantCSV) {
		t.Fatalf("CSV:\n%v\nwant:\n%v", rows, wantCSV)
	}

	// A new customer's record and a bill run after the rating: the rated
	// bills are stale, the new customer has no bill (no revenue, no
	// percentage) until the customer bills are generated again.
	c7 := f.Add(t, r1, models.KindCustomer, "Customer Seven").Account.ID
	f.clk.Advance(time.Hour)
	f.ingest(t, c7, "ecs", "2026-09-29 10:00", "10", "8")
	must[int](t)(f.svc.GeneratePartnerBills(f.Platform.Ctx, month("2026-09")))
	stale := []string{
		fmt.Sprintf("%d DRAFT 90 20 70 90.01 20.01 22.23 true", c1),
		fmt.Sprintf("%d DRAFT 79.98 0 79.98 80.00 0.02 0.02 true", c6),
		fmt.Sprintf("%d  8 0 8 0.00 -8 - true", c7),
	}
	sameMargins(t, f.margins(t, f.R1.Ctx, r1, "2026-09"), stale)
	out.Reset()
	if err := must[*billing.MarginExport](t)(f.svc.PrepareMarginExport(f.R1.Ctx, r1, month("2026-09"))).WriteCSV(f.R1.Ctx, &out); err != nil {
		t.Fatal(err)
	}
	if last := must[[][]string](t)(csv.NewReader(&out).ReadAll())[3]; fmt.Sprint(last[3:]) != "[ 8 0 8 0.00 -8  true]" {
		t.Fatalf("CSV row of a customer without a bill: %v", last)
	}
	if tot := must[*billing.MarginRow](t)(f.svc.MarginTotals(f.R1.Ctx, r1, month("2026-09"))); !tot.Stale || tot.Margin.String() != "12.03" {
		t.Fatalf("stale totals: %s", marginLine(tot))
	}

	// Issued: the partner bill (regenerated as it is issued), then the
	// customer bills rated from it. C7: 10 × 1.10 = 11.00 against 8.
	must[*billing.PartnerBill](t)(f.svc.IssuePartnerBill(f.finance, f.bill(t, r1, "2026-09").ID))
	f.clk.Advance(time.Minute)
	must[int](t)(f.svc.GenerateCustomerBills(f.R1.Ctx, r1, month("2026-09")))
	sameMargins(t, f.margins(t, f.R1.Ctx, r1, "2026-09"), []string{
		fmt.Sprintf("%d ISSUED 90 20 70 90.01 20.01 22.23 false", c1),
		fmt.Sprintf("%d ISSUED 79.98 0 79.98 80.00 0.02 0.02 false", c6),
		fmt.Sprintf("%d ISSUED 8 0 8 11.00 3 27.27 false", c7),
	})

	// A late September record of C6 goes into October as an adjustment,
	// rated by the rule of September: 10 × 0.95 = 9.50; October's own
	// 200.5263 × 0.95 = 190.499985 → 190.50. 200.00 against 9 + 190.93:
	// 0.07 / 200 = 0.035% → 0.04 (half-even, to the even digit).
	f.clk.Set(bj("2026-10-06 09:00"))
	f.ingest(t, c6, "obs", "2026-09-20 10:00", "10", "9")
	f.ingest(t, c6, "obs", "2026-10-05 10:00", "200.5263", "190.93")
	f.clk.Set(bj("2026-11-01 03:00"))
	must[int](t)(f.svc.GeneratePartnerBills(f.Platform.Ctx, month("2026-10")))
	must[int](t)(f.svc.GenerateCustomerBills(f.R1.Ctx, r1, month("2026-10")))
	sameMargins(t, f.margins(t, f.R1.Ctx, r1, "2026-10"), []string{fmt.Sprintf("%d DRAFT 199.93 0 199.93 200.00 0.07 0.04 false", c6)})
	// September's report is final.
	if tot := must[*billing.MarginRow](t)(f.svc.MarginTotals(f.R1.Ctx, r1, month("2026-09"))); tot.Stale || tot.Margin.String() != "23.03" {
		t.Fatalf("September totals: %s", marginLine(tot))
	}
}
