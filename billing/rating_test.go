package billing_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/models"
)

func TestRatingRulesAndCustomerBills(t *testing.T) {
	f := newFixture(t, "2026-08-20 10:00")
	f.clk.Set(bj("2026-10-01 00:30"))
	c3, c6 := f.C3.Account.ID, f.Add(t, f.D1.Account.ID, models.KindCustomer, "深圳星河科技有限公司").Account.ID
	f.ingest(t, c3, "ecs", "2026-09-03 10:00", "100.005", "90")
	f.ingest(t, c3, "obs", "2026-09-03 10:00", "0.125", "0.1")
	f.ingest(t, c3, "cdn", "2026-09-03 10:00", "10", "10")
	f.ingest(t, c6, "ecs", "2026-09-03 10:00", "33.33", "30")
	f.ingest(t, f.C1.Account.ID, "ecs", "2026-09-03 10:00", "999", "999") // R1's customer: not D1's to rate
	f.clk.Set(bj("2026-10-02 09:00"))
	d1 := f.D1.Account.ID

	// Rules: a 10% default discount, a 5% markup on ecs; obs at list price.
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "", dec("-10"), month("2026-09")))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "ecs", dec("5"), month("2026-01")))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "obs", dec("0"), month("2026-09")))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "cdn", dec("20"), month("2026-10"))) // not yet in force
	_, err := f.svc.CreateRatingRule(f.D1.Ctx, d1, "ecs", dec("7"), month("2026-01"))
	wantCode(t, err, apperr.Conflict)
	_, err = f.svc.CreateRatingRule(f.D1.Ctx, d1, "ecs", dec("1000.01"), month("2026-11"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.CreateRatingRule(f.D1.Ctx, d1, "ecs", dec("-100.5"), month("2026-11"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.CreateRatingRule(f.R1.Ctx, d1, "ecs", dec("1"), month("2026-11"))
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.CreateRatingRule(f.D1.Ctx, c3, "ecs", dec("1"), month("2026-11"))
	wantCode(t, err, apperr.Validation)
	if rules := must[[]*billing.RatingRule](t)(f.svc.RatingRules(f.D1.Ctx, d1)); len(rules) != 4 || rules[0].ProductCode != "" {
		t.Fatalf("rules: %+v", rules)
	}

	// No partner bill yet.
	_, err = f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-09"))
	wantCode(t, err, apperr.PreconditionFailed)
	must[int](t)(f.svc.GeneratePartnerBills(f.Platform.Ctx, month("2026-09")))
	if n := must[int](t)(f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-09"))); n != 2 {
		t.Fatalf("customer bills: %d", n)
	}
	bills, _ := items[*billing.CustomerBill](t)(f.svc.CustomerBills(f.D1.Ctx, billing.CustomerBillFilter{PartnerID: d1}, 50, 0))
	if len(bills) != 2 {
		t.Fatalf("bills: %+v", bills)
	}
	byCustomer := map[int64]*billing.CustomerBill{}
	for _, b := range bills {
		byCustomer[b.CustomerID] = b
	}
	b3 := byCustomer[c3]
	lines := must[map[int64][]*billing.CustomerLine](t)(f.svc.CustomerLines(f.D1.Ctx, []int64{b3.ID}))[b3.ID]
	got := map[string]string{}
	for _, l := range lines {
		got[l.ProductCode] = l.Percent.String() + " " + l.Amount.StringFixed(2)
	}
	// ecs 100.005 × 1.05 = 105.00525 → 105.01; obs 0.125 → 0.12 (half-even);
	// cdn 10 × 0.9 = 9.00 (the 20% rule starts in October).
	want := map[string]string{"ecs": "5 105.01", "obs": "0 0.12", "cdn": "-10 9.00"}
	for k, w := range want {
		if got[k] != w {
			t.Fatalf("line %s: got %q, want %q (all %v)", k, got[k], w, got)
		}
	}
	if b3.Total.StringFixed(2) != "114.13" || b3.ListTotal.String() != "110.13" || b3.Status != billing.StatusDraft {
		t.Fatalf("C3's bill: %+v", b3)
	}
	if b6 := byCustomer[c6]; b6.Total.StringFixed(2) != "35.00" { // 33.33 × 1.05 = 34.9965
		t.Fatalf("C6's bill: %+v", b6)
	}

	// The customer sees its own bill; another partner's customer does not.
	if _, err := f.svc.CustomerBill(f.C3.Ctx, b3.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.CustomerBill(f.C1.Ctx, b3.ID)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.CustomerBill(f.R1.Ctx, b3.ID)
	wantCode(t, err, apperr.NotFound)
	own, _ := items[*billing.CustomerBill](t)(f.svc.CustomerBills(f.C3.Ctx, billing.CustomerBillFilter{}, 50, 0))
	if len(own) != 1 || own[0].ID != b3.ID {
		t.Fatalf("C3's own bills: %+v", own)
	}

	// Rated again from the issued partner bill: the same ids, ISSUED, final.
	pb := f.bill(t, d1, "2026-09")
	must[*billing.PartnerBill](t)(f.svc.IssuePartnerBill(f.finance, pb.ID))
	must[int](t)(f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-09")))
	issued := must[*billing.CustomerBill](t)(f.svc.CustomerBill(f.D1.Ctx, b3.ID))
	if issued.Status != billing.StatusIssued || !issued.Total.Equal(b3.Total) {
		t.Fatalf("issued customer bill: %+v", issued)
	}
	_, err = f.svc.CreateRatingRule(f.D1.Ctx, d1, "obs", dec("50"), month("2026-09"))
	wantCode(t, err, apperr.PreconditionFailed)
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, d1, "obs", dec("50"), month("2026-12")))
	must[int](t)(f.svc.GenerateCustomerBills(f.D1.Ctx, d1, month("2026-09")))
	if again := must[*billing.CustomerBill](t)(f.svc.CustomerBill(f.D1.Ctx, b3.ID)); !again.Total.Equal(b3.Total) {
		t.Fatalf("issued customer bill changed: %s", again.Total)
	}
}

// TestRoundHalfEven checks the database's rounding of customer bill lines
// against shopspring's banker's rounding.
func TestRoundHalfEven(t *testing.T) {
	f := newFixture(t, "2026-08-20 10:00")
	r := rand.New(rand.NewPCG(9, 9))
	vals := []string{"0.125", "0.135", "-0.125", "-0.135", "2.5", "0.005", "0.015", "1.004999", "105.00525", "-2.675"}
	for i := 0; i < 300; i++ {
		vals = append(vals, decimal.New(r.Int64N(2_000_000_000)-1_000_000_000, -int32(r.IntN(7))).String())
	}
	for _, v := range vals {
		var got string
		if err := f.Store.DB.Raw(`SELECT round_half_even(?::numeric, 2)::text`, v).Scan(&got).Error; err != nil {
			t.Fatal(err)
		}
		if want := dec(v).RoundBank(2); !dec(got).Equal(want) {
			t.Fatalf("round_half_even(%s) = %s, want %s", v, got, want)
		}
	}
}

func TestIncentivesAndPayouts(t *testing.T) {
	f := september(t)
	ctx := f.Platform.Ctx
	reviewer := f.AddUser(t, f.Platform.Account, models.RoleReviewer).Ctx
	tiers := billing.Tiers{{Threshold: dec("0"), Percent: dec("1")}, {Threshold: dec("100"), Percent: dec("2.5")}}
	_, err := f.svc.CreatePolicy(f.D1.Ctx, "FY26", month("2026-01"), tiers)
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.CreatePolicy(ctx, "bad", month("2026-01"), billing.Tiers{{Threshold: dec("100"), Percent: dec("1")}, {Threshold: dec("50"), Percent: dec("2")}})
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.CreatePolicy(ctx, "bad", month("2026-01"), billing.Tiers{{Threshold: dec("0"), Percent: dec("101")}})
	wantCode(t, err, apperr.Validation)
	must[*billing.Policy](t)(f.svc.CreatePolicy(ctx, "FY26", month("2026-01"), tiers))
	_, err = f.svc.CreatePolicy(ctx, "again", month("2026-01"), tiers)
	wantCode(t, err, apperr.Conflict)

	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-09")))
	d1 := f.bill(t, f.D1.Account.ID, "2026-09")
	incs := must[map[int64]*billing.Incentive](t)(f.svc.IncentivesOfBills(ctx, []int64{d1.ID, f.bill(t, f.R1.Account.ID, "2026-09").ID}))
	inc := incs[d1.ID]
	if inc == nil || len(incs) != 1 { // second-level resellers settle with their distributor: no platform incentive
		t.Fatalf("incentives: %+v", incs)
	}
	// 136.523456 reaches the 100 tier: 2.5% = 3.4130864 → 3.41.
	if inc.Status != billing.IncentivePending || inc.Amount.StringFixed(2) != "3.41" || inc.Percent.String() != "2.5" {
		t.Fatalf("incentive: %+v", inc)
	}
	_, err = f.svc.ApplyForPayout(f.D1.Ctx, inc.ID)
	wantCode(t, err, apperr.PreconditionFailed)
	must[*billing.PartnerBill](t)(f.svc.IssuePartnerBill(f.finance, d1.ID))
	_, err = f.svc.ApplyForPayout(f.R1.Ctx, inc.ID)
	wantCode(t, err, apperr.NotFound)
	viewer := f.AddUser(t, f.D1.Account, models.RoleViewer).Ctx
	_, err = f.svc.ApplyForPayout(viewer, inc.ID)
	wantCode(t, err, apperr.Forbidden)
	applied := must[*billing.Incentive](t)(f.svc.ApplyForPayout(f.D1.Ctx, inc.ID))
	if applied.Status != billing.IncentiveApplied {
		t.Fatalf("applied: %+v", applied)
	}
	_, err = f.svc.ApplyForPayout(f.D1.Ctx, inc.ID)
	wantCode(t, err, apperr.Conflict)
	_, err = f.svc.ApprovePayout(f.finance, inc.ID) // platform FINANCE is not a REVIEWER
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.RejectPayout(reviewer, inc.ID, "  ")
	wantCode(t, err, apperr.Validation)
	must[*billing.Incentive](t)(f.svc.RejectPayout(reviewer, inc.ID, "missing bank details"))
	must[*billing.Incentive](t)(f.svc.ApplyForPayout(f.D1.Ctx, inc.ID))
	done := must[*billing.Incentive](t)(f.svc.ApprovePayout(reviewer, inc.ID))
	if done.Status != billing.IncentiveApproved {
		t.Fatalf("approved: %+v", done)
	}
	_, err = f.svc.RejectPayout(reviewer, inc.ID, "too late")
	wantCode(t, err, apperr.Conflict)
	hist := must[map[int64][]*billing.IncentiveEvent](t)(f.svc.IncentiveHistory(ctx, []int64{inc.ID}))[inc.ID]
	var steps []string
	for _, e := range hist {
		steps = append(steps, string(e.Status))
	}
	if fmt.Sprint(steps) != "[EARNED APPLIED REJECTED APPLIED APPROVED]" {
		t.Fatalf("history: %v", steps)
	}
	if f.outbox(t, "billing.payout_applied") != 2 || f.outbox(t, "billing.payout_decided") != 2 {
		t.Fatal("payout notifications missing")
	}
	// Lists: the reviewer's queue, the partner's own.
	approved := billing.IncentiveApproved
	queue, _ := items[*billing.Incentive](t)(f.svc.Incentives(reviewer, billing.IncentiveFilter{Status: &approved}, 50, 0))
	if all, _ := items[*billing.Incentive](t)(f.svc.Incentives(reviewer, billing.IncentiveFilter{}, 50, 0)); len(all) != 3 { // D1, S1, D2
		t.Fatalf("all incentives: %d", len(all))
	}
	if mine, _ := items[*billing.Incentive](t)(f.svc.Incentives(f.D1.Ctx, billing.IncentiveFilter{}, 50, 0)); len(mine) != 1 {
		t.Fatalf("D1's incentives: %d", len(mine))
	}
	if len(queue) != 1 {
		t.Fatalf("reviewer's list: %+v", queue)
	}
	_, err = f.svc.Incentives(f.D2.Ctx, billing.IncentiveFilter{PartnerID: f.D1.Account.ID}, 50, 0)
	wantCode(t, err, apperr.NotFound)
	// A policy may not start in an issued month.
	_, err = f.svc.CreatePolicy(ctx, "late", month("2026-09"), tiers)
	wantCode(t, err, apperr.PreconditionFailed)
}

// items is a page's items, failing the test on err.
func items[T any](t *testing.T) func(*billing.Page[T], error) ([]T, bool) {
	return func(p *billing.Page[T], err error) ([]T, bool) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return p.Items, p.More
	}
}
