package spend_test

import (
	"fmt"
	"testing"
	"time"

	"partnerd/models"
	"partnerd/spend"
	"partnerd/vouchers"
)

// TestBothPathsRedeemVouchersAlike ingests the same records for two
// customers holding the same vouchers, one request on the direct path (in
// batches of 2) and one on the staged path: both redeem the same amounts,
// and a replay of either redeems nothing.
func TestBothPathsRedeemVouchersAlike(t *testing.T) {
	now := ts("2026-11-10T02:00:00Z")
	f := newFixture(t, now)
	d1 := f.D1.Account.ID
	vs := vouchers.New(f.Store, vouchers.Options{Location: beijing})
	finance := f.AddUser(t, f.Platform.Account, models.RoleFinance).Ctx
	if _, err := vs.Grant(finance, d1, dec("1000"), now.Add(30*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	days := 10
	tpl, err := vs.CreateTemplate(f.D1.Ctx, d1, vouchers.TemplateInput{Name: "Ten", FaceValue: dec("10"), ProductScope: vouchers.ScopeAll,
		BillingModes: vouchers.ModesAll, ValidDays: &days, PerCustomerLimit: 1, Reason: "test"})
	if err != nil {
		t.Fatal(err)
	}
	direct, staged := f.C3.Account.ID, f.Add(t, d1, models.KindCustomer, "Staged").Account.ID
	if _, err := vs.Issue(f.D1.Ctx, tpl.ID, []int64{direct, staged}); err != nil {
		t.Fatal(err)
	}
	f.Clock.Set(now.Add(time.Hour))
	records := func(prefix string, customer int64) []spend.Record {
		var out []spend.Record
		for i, actual := range []string{"3.5", "0", "4.25", "1.000001", "5"} {
			r := rec(fmt.Sprintf("%s-%d", prefix, i), customer, now.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), "6", actual)
			out = append(out, r)
		}
		// A record before the vouchers took effect pays itself.
		return append(out, rec(prefix+"-early", customer, now.Add(-time.Hour).Format(time.RFC3339), "6", "6"))
	}
	ds, _ := f.service()
	spend.SetBatchSize(ds, 2)
	ss, _ := f.service()
	spend.ForceStaged(ss)
	for _, c := range []struct {
		svc      *spend.Service
		prefix   string
		customer int64
	}{{ds, "d", direct}, {ss, "s", staged}} {
		for round := 0; round < 2; round++ { // the second round is a replay
			res, err := c.svc.Ingest(f.Platform.Ctx, spend.SliceSource(records(c.prefix, c.customer)))
			if err != nil {
				t.Fatal(err)
			}
			if round == 1 && res.Duplicates != 6 {
				t.Fatalf("replay on %s: %+v", c.prefix, res)
			}
		}
		var got struct {
			Paid, Voucher, Remaining string
			N                        int64
		}
		f.Store.DB.Raw(`SELECT (SELECT sum(amount)::text FROM voucher_redemptions WHERE customer_id = ?) AS paid,
				(SELECT voucher_total::text FROM spend_totals WHERE customer_id = ?) AS voucher,
				(SELECT remaining::text || ' ' || status FROM vouchers WHERE customer_id = ?) AS remaining,
				(SELECT count(*) FROM voucher_redemptions WHERE customer_id = ?) AS n`, c.customer, c.customer, c.customer, c.customer).Scan(&got)
		// 3.5 + 4.25 + 1.000001 = 8.750001, then 1.249999 of the 5.
		if got.Paid != "10.000000" || got.Voucher != "10.000000" || got.Remaining != "0.000000 USED" || got.N != 4 {
			t.Fatalf("%s path: %+v", c.prefix, got)
		}
	}
}

// BenchmarkIngestNDJSONWithVouchers is BenchmarkIngestNDJSON with every
// customer holding a live voucher large enough to pay every record: the
// worst case of redemption, one redemption row per record.
func BenchmarkIngestNDJSONWithVouchers(b *testing.B) {
	f := newFixture(b, ts("2026-02-25T00:00:00Z"))
	customers := []int64{f.C3.Account.ID, f.C5.Account.ID}
	vs := vouchers.New(f.Store, vouchers.Options{Location: beijing})
	finance := f.AddUser(b, f.Platform.Account, models.RoleFinance).Ctx
	days := 90
	for i, p := range []struct {
		partner  int64
		customer int64
	}{{f.D1.Account.ID, customers[0]}, {f.D2.Account.ID, customers[1]}} {
		if _, err := vs.Grant(finance, p.partner, dec("1000000000"), ts("2026-12-31T00:00:00Z")); err != nil {
			b.Fatal(err)
		}
		tpl, err := vs.CreateTemplate(finance, p.partner, vouchers.TemplateInput{Name: fmt.Sprintf("Bench %d", i), FaceValue: dec("100000000"),
			ProductScope: vouchers.ScopeAll, BillingModes: vouchers.ModesAll, ValidDays: &days, PerCustomerLimit: 1, Reason: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := vs.Issue(finance, tpl.ID, []int64{p.customer}); err != nil {
			b.Fatal(err)
		}
	}
	f.Clock.Set(ts("2026-03-25T00:00:00Z"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err := f.Spend.Ingest(f.Platform.Ctx, spend.NewNDJSONSource(ndjsonBody(i*benchBatch, benchBatch, customers)))
		if err != nil {
			b.Fatal(err)
		}
		if res.Accepted != benchBatch {
			b.Fatalf("accepted %d of %d", res.Accepted, benchBatch)
		}
	}
	b.StopTimer()
	var n int
	f.Store.DB.Raw(`SELECT count(*) FROM voucher_redemptions`).Scan(&n)
	if n != b.N*benchBatch {
		b.Fatalf("%d redemptions for %d records", n, b.N*benchBatch)
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "records/s")
}
