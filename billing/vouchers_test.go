package billing_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"html"
	"slices"
	"strings"
	"testing"
	"time"

	"partnerd/billing"
	"partnerd/billing/invoice"
	"partnerd/vouchers"
)

// TestVouchersOnBills follows what vouchers paid from the records to the
// bills: the partner bill lines' voucher (a distributor's bill holding its
// reseller's line too), the bills' voucher totals, the customer bills'
// VOUCHER lines (rounded half-even, capped by the rated amount), the
// invoice and the CSV exports, and a late record whose voucher part lands
// in the next bill's adjustment line.
func TestVouchersOnBills(t *testing.T) {
	f := newFixture(t, "2026-08-20 10:00")
	ctx := f.Platform.Ctx
	d1, r1, c1, c3 := f.D1.Account.ID, f.R1.Account.ID, f.C1.Account.ID, f.C3.Account.ID
	vs := vouchers.New(f.Store, vouchers.Options{Location: beijing})

	// D1 issues C3 a voucher of 50, R1 (from quota D1 passed down) C1 one
	// of 20, both on September 1st at 09:00, valid 60 days.
	f.clk.Set(bj("2026-09-01 09:00"))
	must[*vouchers.Pool](t)(vs.Grant(f.finance, d1, dec("1000"), f.clk.Now().Add(90*24*time.Hour)))
	must[*vouchers.Pool](t)(vs.Allocate(f.D1.Ctx, r1, dec("100")))
	issue := func(as *partyCtx, face string, customer int64) {
		t.Helper()
		days := 60
		tpl := must[*vouchers.Template](t)(vs.CreateTemplate(as.ctx, as.id, vouchers.TemplateInput{Name: "Welcome " + face,
			FaceValue: dec(face), ProductScope: vouchers.ScopeAll, BillingModes: vouchers.ModesAll, ValidDays: &days,
			PerCustomerLimit: 1, Reason: "new customer"}))
		is := must[*vouchers.Issuance](t)(vs.Issue(as.ctx, tpl.ID, []int64{customer}))
		if len(is.Results) != 1 || is.Results[0].Code != vouchers.IssueOK {
			t.Fatalf("issue: %+v", is.Results)
		}
	}
	issue(&partyCtx{f.D1.Ctx, d1}, "50", c3)
	issue(&partyCtx{f.R1.Ctx, r1}, "20", c1)

	f.clk.Set(bj("2026-09-10 09:00"))
	f.ingest(t, c3, "ecs", "2026-09-01 08:00", "7", "7")              // before the voucher took effect: paid by C3
	f.ingest(t, c3, "ecs", "2026-09-03 10:00", "40", "32")            // the voucher pays 32 (18 left)
	f.ingest(t, c3, "obs", "2026-09-04 10:00", "10.005", "10.005")    // and 10.005 (7.995 left)
	f.ingest(t, c1, "ecs", "2026-09-06 10:00", "30", "27")            // R1's voucher pays its 20
	f.ingest(t, f.C5.Account.ID, "ecs", "2026-09-07 10:00", "9", "9") // no voucher, another tree

	f.clk.Set(bj("2026-10-02 09:00"))
	for range 2 { // regenerating a draft gives the same vouchers
		must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-09")))
	}
	sep := f.bill(t, d1, "2026-09")
	sameVoucherLines(t, f.voucherLines(t, sep), map[string]string{
		"202609/" + id(f.C3) + "/ecs": "47/39/32",
		"202609/" + id(f.C3) + "/obs": "10.005/10.005/10.005",
		"202609/" + id(f.C1) + "/ecs": "30/27/20", // R1's line, on its distributor's bill too
	})
	if sep.VoucherTotal.String() != "62.005" || sep.ActualTotal.String() != "76.005" {
		t.Fatalf("D1's September bill: voucher %s, actual %s", sep.VoucherTotal, sep.ActualTotal)
	}
	if r := f.bill(t, r1, "2026-09"); r.VoucherTotal.String() != "20" {
		t.Fatalf("R1's September voucher total %s", r.VoucherTotal)
	}
	if s := f.bill(t, f.S1.Account.ID, "2026-09"); !s.VoucherTotal.IsZero() {
		t.Fatalf("S1's September voucher total %s", s.VoucherTotal)
	}

	// The partner bill CSV: voucher is the last column.
	var out bytes.Buffer
	if err := f.svc.WriteBillCSV(ctx, sep, &out); err != nil {
		t.Fatal(err)
	}
	rows := must[[][]string](t)(csv.NewReader(&out).ReadAll())
	if h := rows[0]; len(h) != 15 || h[13] != "actual" || h[14] != "voucher" {
		t.Fatalf("bill CSV header: %v", h)
	}
	var cells []string
	for _, r := range rows[1:] {
		cells = append(cells, r[10]+":"+r[13]+":"+r[14])
	}
	slices.Sort(cells)
	if want := "[ecs:27:20 ecs:39:32 obs:10.005:10.005]"; fmt.Sprint(cells) != want {
		t.Fatalf("bill CSV rows (product:actual:voucher): %v, want %s", cells, want)
	}

	// Customer bills: ecs at −50% is rated below what the voucher paid, so
	// the deduction stops at the rated amount; obs at +10% deducts the
	// voucher rounded half-even (10.005 → 10.00).
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "ecs", dec("-50"), month("2026-09")))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "obs", dec("10"), month("2026-09")))
	for range 2 { // rating a draft again gives the same lines
		must[int](t)(f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-09")))
	}
	b3 := f.customerBill(t, d1, c3, "2026-09")
	f.sameCustomerLines(t, b3, []string{
		"202609 USAGE ecs 47 -50 23.50",
		"202609 VOUCHER ecs 0 0 -23.50",
		"202609 USAGE obs 10.005 10 11.01", // 11.0055
		"202609 VOUCHER obs 0 0 -10.00",
	})
	if b3.Total.StringFixed(2) != "1.01" || b3.ListTotal.String() != "57.005" {
		t.Fatalf("C3's September bill: total %s, list %s", b3.Total, b3.ListTotal)
	}
	// R1 rates its customer at list price: 30.00 less the voucher's 20.00.
	must[int](t)(f.svc.GenerateCustomerBills(f.R1.Ctx, r1, month("2026-09")))
	b1 := f.customerBill(t, r1, c1, "2026-09")
	f.sameCustomerLines(t, b1, []string{"202609 USAGE ecs 30 0 30.00", "202609 VOUCHER ecs 0 0 -20.00"})
	if b1.Total.StringFixed(2) != "10.00" {
		t.Fatalf("C1's September bill: total %s", b1.Total)
	}

	// The invoice shows the deductions, in both renderers.
	inv := must[*invoice.Invoice](t)(f.svc.Invoice(f.C3.Ctx, b3.ID, invoice.LocaleEnUS))
	if len(inv.Lines) != 4 || inv.Lines[1].Kind != invoice.KindVoucher || inv.Lines[1].Amount.StringFixed(2) != "-23.50" ||
		inv.Total.StringFixed(2) != "1.01" {
		t.Fatalf("invoice: %+v", inv)
	}
	var page bytes.Buffer
	if err := invoice.HTML(&page, *inv); err != nil {
		t.Fatal(err)
	}
	text := html.UnescapeString(page.String())
	for _, w := range []string{"<td>Voucher</td>", `<td class="num">-23.50</td>`, `<td class="num">-10.00</td>`, "CNY 1.01", "A voucher line deducts"} {
		if !strings.Contains(text, w) {
			t.Errorf("invoice HTML lacks %q", w)
		}
	}
	if err := invoice.PDF(&bytes.Buffer{}, *inv); err != nil {
		t.Fatal(err)
	}

	// The customer bills CSV: kind is the last column, after the usage line.
	exp := must[*billing.CustomerBillsExport](t)(f.svc.PrepareCustomerBillsExport(f.D1.Ctx, billing.CustomerBillFilter{CustomerID: c3}))
	out.Reset()
	if err := exp.WriteCSV(f.D1.Ctx, &out); err != nil {
		t.Fatal(err)
	}
	rows = must[[][]string](t)(csv.NewReader(&out).ReadAll())
	var kinds []string
	for _, r := range rows {
		kinds = append(kinds, r[9]+" "+r[len(r)-1]+" "+r[12])
	}
	if want := "[product_code kind amount ecs USAGE 23.50 ecs VOUCHER -23.50 obs USAGE 11.01 obs VOUCHER -10.00]"; fmt.Sprint(kinds) != want {
		t.Fatalf("customer bills CSV: %v, want %s", kinds, want)
	}

	// September is issued. A late September record is still paid by the
	// voucher (2.5 of the 7.995 left), then an October one takes the rest.
	must[*billing.PartnerBill](t)(f.svc.IssuePartnerBill(f.finance, sep.ID))
	f.clk.Set(bj("2026-10-06 09:00"))
	f.ingest(t, c3, "obs", "2026-09-20 10:00", "3", "2.5")
	f.ingest(t, c3, "obs", "2026-10-05 10:00", "10", "10") // 5.495 of it
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-09")))
	if b := f.bill(t, d1, "2026-09"); !b.VoucherTotal.Equal(sep.VoucherTotal) {
		t.Fatalf("the issued bill's voucher total changed: %s", b.VoucherTotal)
	}
	f.clk.Set(bj("2026-11-01 03:00"))
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-10")))
	oct := f.bill(t, d1, "2026-10")
	sameVoucherLines(t, f.voucherLines(t, oct), map[string]string{
		"202610/" + id(f.C3) + "/obs": "10/10/5.495",
		"202609/" + id(f.C3) + "/obs": "3/2.5/2.5",
	})
	if oct.VoucherTotal.String() != "7.995" || oct.AdjustmentActual.String() != "2.5" {
		t.Fatalf("D1's October bill: %+v", oct)
	}
	adj := must[map[int64][]*billing.Adjustment](t)(f.svc.Adjustments(ctx, []int64{oct.ID}))[oct.ID]
	if len(adj) != 1 || adj[0].ForMonth != 202609 || adj[0].Voucher.String() != "2.5" {
		t.Fatalf("adjustments: %+v", adj)
	}
	must[int](t)(f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-10")))
	b3 = f.customerBill(t, d1, c3, "2026-10")
	f.sameCustomerLines(t, b3, []string{
		"202610 USAGE obs 10 10 11.00",
		"202610 VOUCHER obs 0 0 -5.50", // 5.495 → 5.50, half-even
		"202609 USAGE obs 3 10 3.30",
		"202609 VOUCHER obs 0 0 -2.50",
	})
	if b3.Total.StringFixed(2) != "6.30" {
		t.Fatalf("C3's October bill: total %s", b3.Total)
	}
	inv = must[*invoice.Invoice](t)(f.svc.Invoice(f.C3.Ctx, b3.ID, invoice.LocaleZhCN))
	if l := inv.Lines[3]; l.Kind != invoice.KindVoucher || l.ForMonth != "2026-09" {
		t.Fatalf("the adjustment's voucher line: %+v", l)
	}
	page.Reset()
	if err := invoice.HTML(&page, *inv); err != nil {
		t.Fatal(err)
	}
	if text := page.String(); !strings.Contains(text, "<td>代金券</td>") || !strings.Contains(text, "-2.50") {
		t.Fatal("the Chinese invoice lacks its voucher lines")
	}

	// Every bill's voucher total is the sum of its lines'.
	var bad int
	f.Store.DB.Raw(`SELECT count(*) FROM partner_bills b LEFT JOIN (SELECT bill_id, sum(voucher) v FROM partner_bill_lines GROUP BY bill_id) s
		ON s.bill_id = b.id WHERE b.voucher_total <> coalesce(s.v, 0)`).Scan(&bad)
	if bad != 0 {
		t.Fatalf("%d bills whose voucher total is not the sum of their lines'", bad)
	}
}

// partyCtx is a partner and a context acting for it.
type partyCtx struct {
	ctx context.Context
	id  int64
}

// voucherLines returns the lines of bill b keyed "forMonth/customer/product"
// as "list/actual/voucher".
func (f *fixture) voucherLines(t *testing.T, b *billing.PartnerBill) map[string]string {
	t.Helper()
	ls := must[map[int64][]*billing.Line](t)(f.svc.Lines(f.Platform.Ctx, []int64{b.ID}, billing.LineFilter{}))
	out := map[string]string{}
	for _, l := range ls[b.ID] {
		out[fmt.Sprintf("%d/%d/%s", l.ForMonth, l.CustomerID, l.ProductCode)] = l.List.String() + "/" + l.Actual.String() + "/" + l.Voucher.String()
	}
	return out
}

func sameVoucherLines(t *testing.T, got, want map[string]string) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("lines (list/actual/voucher): got %v, want %v", got, want)
	}
}

// customerBill returns partner's bill of customer for month m.
func (f *fixture) customerBill(t *testing.T, partner, customer int64, m string) *billing.CustomerBill {
	t.Helper()
	mo := month(m)
	bills, _ := items[*billing.CustomerBill](t)(f.svc.CustomerBills(f.Platform.Ctx,
		billing.CustomerBillFilter{PartnerID: partner, CustomerID: customer, Month: &mo}, 10, 0))
	if len(bills) != 1 {
		t.Fatalf("customer bills of %d from %d in %s: %+v", customer, partner, m, bills)
	}
	return bills[0]
}

// sameCustomerLines checks bill b's lines, in order, as "forMonth kind
// product list percent amount".
func (f *fixture) sameCustomerLines(t *testing.T, b *billing.CustomerBill, want []string) {
	t.Helper()
	var got []string
	for _, l := range must[map[int64][]*billing.CustomerLine](t)(f.svc.CustomerLines(f.Platform.Ctx, []int64{b.ID}))[b.ID] {
		got = append(got, fmt.Sprintf("%d %s %s %s %s %s", l.ForMonth, l.Kind, l.ProductCode, l.List, l.Percent, l.Amount.StringFixed(2)))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("customer bill %d lines:\n%s\nwant:\n%s", b.ID, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
