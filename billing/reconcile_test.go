package billing_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/billing"
	"partnerd/models"
	"partnerd/spend"
)

// TestReconciliation checks, for a random month of records (replayable with
// RECONCILE_SEED), with records arriving late after their bills were issued,
// that for every partner and month:
//
//	Σ records = Σ partner bill lines of that month (in its bill and as
//	adjustments in later ones) = Σ customer bill lines before rating
//	(for the partner's own customers).
func TestReconciliation(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("RECONCILE_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	t.Logf("RECONCILE_SEED=%d", seed)
	r := rand.New(rand.NewPCG(seed, 1))
	f := newFixture(t, "2026-08-20 10:00")
	customers := []int64{f.C1.Account.ID, f.C2.Account.ID, f.C3.Account.ID, f.C4.Account.ID, f.C5.Account.ID}
	for i := 0; i < 5; i++ {
		parent := []int64{f.R1.Account.ID, f.D1.Account.ID, f.S1.Account.ID}[i%3]
		customers = append(customers, f.Add(t, parent, models.KindCustomer, fmt.Sprintf("Random %d", i)).Account.ID)
	}
	products := []string{"ecs", "obs", "rds", "cdn"}
	batch := func(n int, m string) {
		start := bj(m + "-01 00:00")
		end := month(m[:7]).End(beijing)
		recs := make([]spend.Record, n)
		for i := range recs {
			list := decimal.New(r.Int64N(100_000_000), -6)
			f.seq++
			recs[i] = spend.Record{ExternalID: fmt.Sprintf("r-%d", f.seq), CustomerID: customers[r.IntN(len(customers))],
				ProductCode: products[r.IntN(len(products))], BillingMode: models.PayPerUse,
				UsageAt: start.Add(time.Duration(r.Int64N(int64(end.Sub(start))))),
				List:    list, Actual: list.Mul(decimal.New(int64(50+r.IntN(51)), -2)).Truncate(6)}
		}
		res, err := f.spend.IngestRecords(f.Platform.Ctx, recs)
		if err != nil || res.Accepted != n {
			t.Fatalf("ingest: %+v %v", res, err)
		}
	}
	sched := billing.DefaultSchedule()
	tick := func(at string) {
		f.clk.Set(bj(at))
		if _, err := f.svc.Tick(context.Background(), sched); err != nil {
			t.Fatal(err)
		}
	}
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.D1.Ctx, f.D1.Account.ID, "", dec("-7.5"), month("2026-09")))
	must[*billing.RatingRule](t)(f.svc.CreateRatingRule(f.S1.Ctx, f.S1.Account.ID, "ecs", dec("12.25"), month("2026-09")))

	f.clk.Set(bj("2026-09-30 23:59"))
	batch(300, "2026-09")
	tick("2026-10-01 02:00")
	batch(20, "2026-09") // before the issue: in September's bill
	tick("2026-10-05 00:00")
	batch(15, "2026-09") // late
	f.clk.Set(bj("2026-10-31 23:59"))
	batch(200, "2026-10")
	tick("2026-11-01 02:00")
	batch(10, "2026-09") // late, before October's issue: in October's adjustments
	tick("2026-11-05 00:00")
	batch(7, "2026-09")
	batch(9, "2026-10")
	tick("2026-12-01 02:00")
	tick("2026-12-05 00:00")

	partners := []int64{f.D1.Account.ID, f.R1.Account.ID, f.R2.Account.ID, f.S1.Account.ID, f.D2.Account.ID}
	for _, p := range partners {
		for _, m := range []string{"2026-09", "2026-10", "2026-11"} {
			if _, err := f.svc.GenerateCustomerBills(f.Platform.Ctx, p, month(m)); err != nil {
				t.Fatal(err)
			}
		}
	}
	type sums struct{ List, Actual decimal.Decimal }
	q := func(sql string, args ...any) sums {
		var s struct{ L, A *decimal.Decimal }
		if err := f.Store.DB.Raw(sql, args...).Scan(&s).Error; err != nil {
			t.Fatal(err)
		}
		out := sums{decimal.Zero, decimal.Zero}
		if s.L != nil {
			out.List = *s.L
		}
		if s.A != nil {
			out.Actual = *s.A
		}
		return out
	}
	for _, p := range partners {
		for _, m := range []int{202609, 202610} {
			recs := q(`SELECT sum(list_amount) AS l, sum(actual_amount) AS a FROM expenditures e JOIN accounts o ON o.id = e.owner_id
				WHERE e.month = ? AND (o.id = ? OR o.parent_id = ?)`, m, p, p)
			lines := q(`SELECT sum(l.list) AS l, sum(l.actual) AS a FROM partner_bill_lines l JOIN partner_bills b ON b.id = l.bill_id
				WHERE b.partner_id = ? AND l.for_month = ?`, p, m)
			if !recs.List.Equal(lines.List) || !recs.Actual.Equal(lines.Actual) {
				t.Fatalf("partner %d, %d: records %v, bill lines %v", p, m, recs, lines)
			}
			own := q(`SELECT sum(list_amount) AS l FROM expenditures WHERE month = ? AND owner_id = ?`, m, p)
			rated := q(`SELECT sum(l.list) AS l FROM customer_bill_lines l JOIN customer_bills b ON b.id = l.bill_id
				WHERE b.partner_id = ? AND l.for_month = ?`, p, m)
			if !own.List.Equal(rated.List) {
				t.Fatalf("partner %d, %d: own records %v, customer bill lines %v", p, m, own.List, rated.List)
			}
		}
		// Each bill's totals are the sums of its lines; each customer bill's
		// total the sum of its rounded lines.
		var bad int
		f.Store.DB.Raw(`SELECT count(*) FROM partner_bills b LEFT JOIN (SELECT bill_id, sum(list) l, sum(actual) a FROM partner_bill_lines GROUP BY bill_id) s
			ON s.bill_id = b.id WHERE b.partner_id = ? AND (b.list_total <> coalesce(s.l, 0) OR b.actual_total <> coalesce(s.a, 0))`, p).Scan(&bad)
		f.Store.DB.Raw(`SELECT ? + count(*) FROM customer_bills b JOIN (SELECT bill_id, sum(amount) t, sum(list) l FROM customer_bill_lines GROUP BY bill_id) s
			ON s.bill_id = b.id WHERE b.partner_id = ? AND (b.total <> s.t OR b.list_total <> s.l)`, bad, p).Scan(&bad)
		if bad != 0 {
			t.Fatalf("partner %d: %d bills whose totals are not the sums of their lines", p, bad)
		}
	}
	var adjustments int
	f.Store.DB.Raw(`SELECT count(*) FROM partner_bill_lines l JOIN partner_bills b ON b.id = l.bill_id WHERE l.for_month <> b.month`).Scan(&adjustments)
	if adjustments == 0 {
		t.Fatal("no adjustment lines: the late records were not late")
	}
	var drafts int
	f.Store.DB.Raw(`SELECT count(*) FROM partner_bills WHERE status = 'DRAFT'`).Scan(&drafts)
	if drafts != 0 {
		t.Fatalf("%d bills left DRAFT after the issue days", drafts)
	}
}
