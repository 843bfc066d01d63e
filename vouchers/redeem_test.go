package vouchers_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/vouchers"
)

// issueOne issues one voucher of a new template in to customer as partner
// and returns it.
func (f *fixture) issueOne(t testing.TB, as *issuer, in vouchers.TemplateInput, customer int64) *vouchers.Voucher {
	t.Helper()
	tpl := must[*templateT](t)(f.svc.CreateTemplate(as.ctx, as.id, in))
	is := must[*issuanceT](t)(f.svc.Issue(as.ctx, tpl.ID, []int64{customer}))
	if is.Results[0].Code != vouchers.IssueOK {
		t.Fatalf("issue: %+v", is.Results)
	}
	return f.voucher(t, is.Results[0].VoucherID)
}

func TestRedemptionPaysExactlyOnce(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	r1, c1 := f.R1.Account.ID, f.C1.Account.ID
	f.grant(t, f.D1.Account.ID, "10000")
	must[*poolT](t)(f.svc.Allocate(f.D1.Ctx, r1, dec("5000")))
	as := &issuer{f.R1.Ctx, r1}

	// A: 50 for ecs, pay-per-use, fixed dates until the end of the year.
	a := template("50")
	a.ProductScope, a.ProductCodes, a.BillingModes, a.ValidDays, a.ValidUntil = vouchers.ScopeOnly, []string{"ecs"}, vouchers.ModesPayPerUse, nil, ptr(bj("2027-01-01 00:00"))
	va := f.issueOne(t, as, a, c1)
	// B: 30 for everything, 5 days from issue (the 10th counts): it expires first.
	b := template("30")
	b.ValidDays = ptr(5)
	vb := f.issueOne(t, as, b, c1)
	if !vb.ExpiresAt.Equal(bj("2026-11-15 00:00")) {
		t.Fatalf("5 days from the 10th expire at %s", vb.ExpiresAt.In(beijing))
	}
	// C: 100 for everything but ecs, prepaid only.
	c := template("100")
	c.ProductScope, c.ProductCodes, c.BillingModes = vouchers.ScopeExcept, []string{"ecs"}, vouchers.ModesPrepaid
	vc := f.issueOne(t, as, c, c1)
	f.checkPool(t, r1, "5000", "0", "180")

	now := f.clk.Now()
	// ecs, pay-per-use, 40: B (earliest expiry) pays 30, then A 10.
	f.ingestID(t, "r-1", c1, "ecs", models.PayPerUse, now, "50", "40")
	// rds subscription, 120: B is used up, A does not apply, C pays 100.
	f.ingestID(t, "r-2", c1, "rds", models.Subscription, now, "150", "120")
	// ecs, 0.123456: A pays it all.
	f.ingestID(t, "r-3", c1, "ecs", models.PayPerUse, now, "0.2", "0.123456")
	// Usage before the vouchers took effect: nothing paid.
	f.ingestID(t, "r-4", c1, "ecs", models.PayPerUse, now.Add(-time.Hour), "5", "5")
	// A replay of r-1 is a duplicate: it redeems nothing.
	if res := f.ingestID(t, "r-1", c1, "ecs", models.PayPerUse, now, "50", "40"); res.Duplicates != 1 {
		t.Fatalf("replay: %+v", res)
	}

	want := map[int64][2]string{va.ID: {"39.876544", "PARTIALLY_USED"}, vb.ID: {"0", "USED"}, vc.ID: {"0", "USED"}}
	for id, w := range want {
		v := f.voucher(t, id)
		if v.Remaining.String() != w[0] || string(v.Status) != w[1] {
			t.Fatalf("voucher %d: %s %s, want %v", id, v.Remaining, v.Status, w)
		}
	}
	var paid []struct {
		ExternalID string
		VoucherID  int64
		Amount     decimal.Decimal
	}
	f.st.DB.Raw(`SELECT e.external_id, r.voucher_id, r.amount FROM voucher_redemptions r JOIN expenditures e ON e.id = r.expenditure_id ORDER BY r.id`).Scan(&paid)
	got := ""
	for _, p := range paid {
		got += p.ExternalID + ":" + name(p.VoucherID, va, vb, vc) + ":" + p.Amount.String() + " "
	}
	if got != "r-1:B:30 r-1:A:10 r-2:C:100 r-3:A:0.123456 " {
		t.Fatalf("redemptions: %s", got)
	}

	// The totals: actual 165.123456, of which vouchers paid 140.123456.
	var tot struct{ Actual, Voucher decimal.Decimal }
	f.st.DB.Raw(`SELECT actual_total AS actual, voucher_total AS voucher FROM spend_totals WHERE customer_id = ?`, c1).Scan(&tot)
	if tot.Actual.String() != "165.123456" || tot.Voucher.String() != "140.123456" {
		t.Fatalf("spend totals: %+v", tot)
	}
	var owner decimal.Decimal
	f.st.DB.Raw(`SELECT voucher_total FROM owner_spend_totals WHERE owner_id = ?`, r1).Scan(&owner)
	if owner.String() != "140.123456" {
		t.Fatalf("owner's voucher total %s", owner)
	}
	// Credit counts what is left after vouchers; budgets stay at list price.
	cv := must[creditView](t)(f.credit.View(f.Platform.Ctx, c1))
	if cv.Consumed.String() != "25" || cv.Available.String() != "-25" {
		t.Fatalf("credit: consumed %s, available %s", cv.Consumed, cv.Available)
	}
	var guard struct{ MonthList, MonthActual decimal.Decimal }
	f.st.DB.Raw(`SELECT month_list, month_actual FROM purchase_guards WHERE customer_id = ?`, c1).Scan(&guard)
	if guard.MonthList.String() != "205.2" || guard.MonthActual.String() != "25" {
		t.Fatalf("purchase guard: %+v", guard)
	}

	// The pool: what its vouchers paid.
	if p := f.pool(t, r1); p.Redeemed.String() != "140.123456" || p.Issued.String() != "180" || p.Remaining.String() != "4820" {
		t.Fatalf("pool: %+v", p)
	}
	// Redemptions by voucher and by customer, through the scope.
	page := must[*redemptionPage](t)(f.svc.Redemptions(f.C1.Ctx, vouchers.RedemptionFilter{VoucherID: va.ID}, 10, 0))
	if page.Total != 2 || page.Items[0].ExternalID != "r-3" {
		t.Fatalf("redemptions of A: %+v", page.Items)
	}
	nov := models.Month{Year: 2026, Month: time.November}
	page = must[*redemptionPage](t)(f.svc.Redemptions(f.R1.Ctx, vouchers.RedemptionFilter{CustomerID: c1, From: &nov, To: &nov}, 10, 0))
	if page.Total != 4 {
		t.Fatalf("redemptions of C1 in November: %d", page.Total)
	}
	_, err := f.svc.Redemptions(f.R2.Ctx, vouchers.RedemptionFilter{VoucherID: va.ID}, 10, 0)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Redemptions(f.R2.Ctx, vouchers.RedemptionFilter{CustomerID: c1}, 10, 0)
	wantCode(t, err, apperr.NotFound)

	// A used voucher cannot be cancelled; a partly used one gives back what is left.
	_, err = f.svc.Cancel(f.R1.Ctx, vb.ID, "mistake")
	wantCode(t, err, apperr.PreconditionFailed)
	_, err = f.svc.Cancel(f.C1.Ctx, va.ID, "mine")
	wantCode(t, err, apperr.Forbidden)
	cancelled := must[*voucherT](t)(f.svc.Cancel(f.R1.Ctx, va.ID, "customer churned"))
	if cancelled.Status != vouchers.StatusCancelled || cancelled.Returned.String() != "39.876544" {
		t.Fatalf("cancelled: %+v", cancelled)
	}
	f.checkPool(t, r1, "5000", "0", "140.123456")
	// What it paid stays paid: used 10.123456, and the pool's redeemed is unchanged.
	if cancelled.Used().String() != "10.123456" || f.pool(t, r1).Redeemed.String() != "140.123456" {
		t.Fatalf("used %s, pool redeemed %s", cancelled.Used(), f.pool(t, r1).Redeemed)
	}
	// Nothing pays any more.
	f.ingestID(t, "r-5", c1, "ecs", models.PayPerUse, now, "1", "1")
	var n int
	f.st.DB.Raw(`SELECT count(*) FROM voucher_redemptions`).Scan(&n)
	if n != 4 {
		t.Fatalf("%d redemptions after the cancellation", n)
	}
}

func name(id int64, a, b, c *vouchers.Voucher) string {
	switch id {
	case a.ID:
		return "A"
	case b.ID:
		return "B"
	case c.ID:
		return "C"
	}
	return "?"
}

func TestExpiryAtBeijingMonthEdge(t *testing.T) {
	// Issued on 29 November (Beijing) for 2 days: valid until 1 December
	// 00:00 Beijing, which is 30 November 16:00 UTC.
	f := newFixture(t, "2026-11-29 10:00")
	d1, c3 := f.D1.Account.ID, f.C3.Account.ID
	f.grant(t, d1, "1000")
	in := template("80")
	in.ValidDays = ptr(2)
	v := f.issueOne(t, &issuer{f.D1.Ctx, d1}, in, c3)
	edge := bj("2026-12-01 00:00")
	if !v.ExpiresAt.Equal(edge) || edge.Format(time.RFC3339) != "2026-11-30T16:00:00Z" {
		t.Fatalf("expires at %s", v.ExpiresAt)
	}
	// The reminder is due at once (under 7 days left), and only once.
	res := must[tickT](t)(f.svc.Tick(f.Platform.Ctx))
	if res.Reminded != 1 || res.Expired != 0 {
		t.Fatalf("first tick: %+v", res)
	}
	if res := must[tickT](t)(f.svc.Tick(f.Platform.Ctx)); res.Reminded != 0 {
		t.Fatalf("reminded twice: %+v", res)
	}
	// The last instant of November (Beijing) is paid; December's first is not.
	f.clk.Set(edge.Add(time.Minute))
	f.ingestID(t, "nov", c3, "ecs", models.PayPerUse, edge.Add(-time.Microsecond), "10", "10")
	f.ingestID(t, "dec", c3, "ecs", models.PayPerUse, edge, "10", "10")
	var months []struct {
		Month   int
		Voucher decimal.Decimal
	}
	f.st.DB.Raw(`SELECT month, voucher_total AS voucher FROM spend_totals WHERE customer_id = ? ORDER BY month`, c3).Scan(&months)
	if len(months) != 2 || months[0].Month != 202611 || months[0].Voucher.String() != "10" || !months[1].Voucher.IsZero() {
		t.Fatalf("months: %+v", months)
	}
	// The scheduler expires it (past its time), gives back 70, tells the customer; twice is once.
	res = must[tickT](t)(f.svc.Tick(f.Platform.Ctx))
	if res.Expired != 1 {
		t.Fatalf("expiry tick: %+v", res)
	}
	if res := must[tickT](t)(f.svc.Tick(f.Platform.Ctx)); res.Expired != 0 {
		t.Fatalf("expired twice: %+v", res)
	}
	v = f.voucher(t, v.ID)
	if v.Status != vouchers.StatusExpired || v.Returned.String() != "70" {
		t.Fatalf("expired voucher: %+v", v)
	}
	f.checkPool(t, d1, "1000", "0", "10")
	var told []string
	f.st.DB.Raw(`SELECT event_type FROM outbox WHERE event_type LIKE 'voucher.expir%' AND account_id = ? ORDER BY id`, c3).Scan(&told)
	if len(told) != 2 || told[0] != "voucher.expiring" || told[1] != "voucher.expired" {
		t.Fatalf("customer told: %v", told)
	}
}

func TestLowQuotaAlertOnce(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1 := f.D1.Account.ID
	f.grant(t, d1, "100")
	tpl := must[*templateT](t)(f.svc.CreateTemplate(f.D1.Ctx, d1, template("46")))
	c3 := f.C3.Account.ID
	c := f.Add(t, d1, models.KindCustomer, "Another").Account.ID
	must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c3})) // 54 left
	is := must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c, f.Add(t, d1, models.KindCustomer, "Third").Account.ID}))
	if is.Results[0].Code != vouchers.IssueOK || is.Results[1].Code != vouchers.IssueQuotaExhausted {
		t.Fatalf("results: %+v", is.Results)
	}
	count := func() int {
		var n int
		f.st.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = 'voucher.quota_low' AND account_id = ?`, d1).Scan(&n)
		return n
	}
	if count() != 1 { // 8 left < 10
		t.Fatalf("%d low-quota alerts", count())
	}
	f.grant(t, d1, "0.5") // still low: no second alert
	if count() != 1 {
		t.Fatalf("%d low-quota alerts after a small grant", count())
	}
	f.grant(t, d1, "100") // back above 10%
	f.clk.Advance(time.Minute)
	is = must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{f.Add(t, d1, models.KindCustomer, "Fourth").Account.ID,
		f.Add(t, d1, models.KindCustomer, "Fifth").Account.ID, f.Add(t, d1, models.KindCustomer, "Sixth").Account.ID}))
	if is.Results.Issued() != 2 || count() != 2 {
		t.Fatalf("issued %d, %d alerts", is.Results.Issued(), count())
	}
}
