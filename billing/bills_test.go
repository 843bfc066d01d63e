package billing_test

import (
	"context"
	"strconv"
	"sync"
	"testing"

	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/testkit"
)

// september loads the standard tree with September 2026 records (and two at
// the month's Beijing-time edges) and moves the clock to October 2nd.
func september(t *testing.T) *fixture {
	f := newFixture(t, "2026-08-20 10:00")
	f.clk.Set(bj("2026-10-01 00:30"))
	f.ingest(t, f.C1.Account.ID, "ecs", "2026-09-03 10:00", "100.00", "80.00")
	f.ingest(t, f.C1.Account.ID, "ecs", "2026-09-04 10:00", "50.50", "40.40")
	f.ingest(t, f.C1.Account.ID, "obs", "2026-09-05 10:00", "10", "9")
	f.ingest(t, f.C3.Account.ID, "ecs", "2026-09-01 00:00", "7.123456", "7.123456") // first instant of September in Beijing
	f.ingest(t, f.C3.Account.ID, "ecs", "2026-08-31 23:59", "1000", "1000")         // still August in Beijing
	f.ingest(t, f.C3.Account.ID, "ecs", "2026-10-01 00:00", "2000", "2000")         // already October
	f.ingest(t, f.C4.Account.ID, "rds", "2026-09-30 23:59", "30", "27")
	f.ingest(t, f.C5.Account.ID, "ecs", "2026-09-15 12:00", "5", "5")
	f.clk.Set(bj("2026-10-02 09:00"))
	return f
}

func TestPartnerBillsOfAMonth(t *testing.T) {
	f := september(t)
	ctx := f.Platform.Ctx

	n, err := f.svc.GeneratePartnerBills(ctx, month("2026-09"))
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 { // D1, R1, R2, S1, D2 and... every partner existing in September
		t.Logf("bills generated: %d", n)
	}
	d1 := f.bill(t, f.D1.Account.ID, "2026-09")
	if d1.Status != billing.StatusDraft || d1.SettlesWithID != f.Platform.Account.ID {
		t.Fatalf("D1 bill: %+v", d1)
	}
	// D1 settles for its whole subtree: C1 through R1, and C3 directly.
	want := map[string][2]string{
		"202609/" + id(f.C1) + "/ecs": {"150.5", "120.4"},
		"202609/" + id(f.C1) + "/obs": {"10", "9"},
		"202609/" + id(f.C3) + "/ecs": {"7.123456", "7.123456"},
	}
	sameLines(t, f.lines(t, d1), want)
	if d1.ListTotal.String() != "167.623456" || d1.ActualTotal.String() != "136.523456" || d1.Records != 4 {
		t.Fatalf("D1 totals: %s %s %d", d1.ListTotal, d1.ActualTotal, d1.Records)
	}
	r1 := f.bill(t, f.R1.Account.ID, "2026-09")
	if r1.SettlesWithID != f.D1.Account.ID || r1.ActualTotal.String() != "129.4" {
		t.Fatalf("R1 bill: %+v", r1)
	}
	s1 := f.bill(t, f.S1.Account.ID, "2026-09")
	if s1.ActualTotal.String() != "27" || s1.SettlesWithID != f.Platform.Account.ID {
		t.Fatalf("S1 bill: %+v", s1)
	}
	if r2 := f.bill(t, f.R2.Account.ID, "2026-09"); !r2.ActualTotal.IsZero() || r2.Records != 0 {
		t.Fatalf("R2's empty bill: %+v", r2)
	}

	// Regenerating gives the same bills.
	if _, err := f.svc.GeneratePartnerBills(ctx, month("2026-09")); err != nil {
		t.Fatal(err)
	}
	again := f.bill(t, f.D1.Account.ID, "2026-09")
	if again.ID != d1.ID || !again.ActualTotal.Equal(d1.ActualTotal) {
		t.Fatalf("regenerated: %+v vs %+v", again, d1)
	}
	sameLines(t, f.lines(t, again), want)

	// partnerBills: D1's own first, then its resellers'.
	list, err := f.svc.PartnerBills(f.D1.Ctx, f.D1.Account.ID, month("2026-09"))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 || list[0].PartnerID != f.D1.Account.ID {
		t.Fatalf("D1's bills: %+v", list)
	}
	// R1 sees its own bill, not its distributor's; C1 sees none.
	if list, err := f.svc.PartnerBills(f.R1.Ctx, f.R1.Account.ID, month("2026-09")); err != nil || len(list) != 1 {
		t.Fatalf("R1's bills: %v %v", list, err)
	}
	_, err = f.svc.PartnerBills(f.R1.Ctx, f.D1.Account.ID, month("2026-09"))
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.PartnerBill(f.R1.Ctx, d1.ID)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.PartnerBill(f.C1.Ctx, r1.ID)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.PartnerBills(f.D2.Ctx, f.D1.Account.ID, month("2026-09"))
	wantCode(t, err, apperr.NotFound)

	// Bad input changes nothing.
	_, err = f.svc.GeneratePartnerBills(f.D1.Ctx, month("2026-09"))
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.GeneratePartnerBills(ctx, month("2026-10"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.GeneratePartnerBills(ctx, month("2027-01"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.PartnerBills(ctx, f.D1.Account.ID, month("2027-01"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.PartnerBills(ctx, f.C1.Account.ID, month("2026-09"))
	wantCode(t, err, apperr.Validation)
}

func TestIssuedBillsNeverChangeAndLateRecordsAdjustTheNext(t *testing.T) {
	f := september(t)
	ctx := f.Platform.Ctx
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-09")))
	d1 := f.bill(t, f.D1.Account.ID, "2026-09")
	r1 := f.bill(t, f.R1.Account.ID, "2026-09")

	// Who issues: the party the bill settles with.
	_, err := f.svc.IssuePartnerBill(f.R1.Ctx, r1.ID)
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.IssuePartnerBill(f.D1.Ctx, d1.ID)
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.IssuePartnerBill(f.D2.Ctx, r1.ID)
	wantCode(t, err, apperr.NotFound)
	if _, err := f.svc.IssuePartnerBill(f.D1.Ctx, r1.ID); err != nil {
		t.Fatal(err)
	}
	// A record arriving before D1's bill is issued is in it.
	f.ingest(t, f.C3.Account.ID, "ecs", "2026-09-20 08:00", "1", "1")
	issued, err := f.svc.IssuePartnerBill(f.finance, d1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if issued.Status != billing.StatusIssued || issued.ActualTotal.String() != "137.523456" || issued.Records != 5 {
		t.Fatalf("issued: %+v", issued)
	}
	_, err = f.svc.IssuePartnerBill(f.finance, d1.ID)
	wantCode(t, err, apperr.Conflict)
	if n := f.outbox(t, "billing.bill_issued"); n != 2 {
		t.Fatalf("bill issued events: %d", n)
	}

	// The database refuses to change an issued bill.
	if err := f.Store.DB.Exec(`UPDATE partner_bill_lines SET actual = 0 WHERE bill_id = ?`, d1.ID).Error; err == nil {
		t.Fatal("an issued bill's line changed")
	}
	if err := f.Store.DB.Exec(`UPDATE partner_bills SET actual_total = 0 WHERE id = ?`, d1.ID).Error; err == nil {
		t.Fatal("an issued bill changed")
	}

	// Late September records: regenerating September changes nothing issued...
	f.ingest(t, f.C1.Account.ID, "ecs", "2026-09-29 10:00", "20", "16")
	f.ingest(t, f.C3.Account.ID, "cdn", "2026-09-10 10:00", "3", "2.5")
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-09")))
	if b := f.bill(t, f.D1.Account.ID, "2026-09"); !b.ActualTotal.Equal(issued.ActualTotal) {
		t.Fatalf("issued bill changed: %s", b.ActualTotal)
	}
	var adjusted []bool
	f.Store.DB.Raw(`SELECT adjustment FROM expenditures WHERE external_id IN ('rec-10', 'rec-11') ORDER BY external_id`).Scan(&adjusted)
	if len(adjusted) != 2 || !adjusted[0] || !adjusted[1] {
		t.Fatalf("late records not marked as adjustments: %v", adjusted)
	}
	// ...and October's bill carries them as adjustment lines naming September.
	f.clk.Set(bj("2026-11-01 03:00"))
	f.ingest(t, f.C3.Account.ID, "ecs", "2026-10-10 10:00", "4", "4")
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-10")))
	oct := f.bill(t, f.D1.Account.ID, "2026-10")
	sameLines(t, f.lines(t, oct), map[string][2]string{
		"202610/" + id(f.C3) + "/ecs": {"2004", "2004"},
		"202609/" + id(f.C1) + "/ecs": {"20", "16"},
		"202609/" + id(f.C3) + "/cdn": {"3", "2.5"},
	})
	if oct.AdjustmentActual.String() != "18.5" || oct.ActualTotal.String() != "2022.5" || oct.Records != 2 {
		t.Fatalf("October: %+v", oct)
	}
	adj := must[map[int64][]*billing.Adjustment](t)(f.svc.Adjustments(ctx, []int64{oct.ID}))[oct.ID]
	if len(adj) != 1 || adj[0].ForMonth != 202609 || adj[0].Records != 2 {
		t.Fatalf("adjustments: %+v", adj)
	}
	// R1's October bill (its September bill was issued too) has C1's.
	sameLines(t, f.lines(t, f.bill(t, f.R1.Account.ID, "2026-10")), map[string][2]string{"202609/" + id(f.C1) + "/ecs": {"20", "16"}})
	// Idempotent again.
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-10")))
	if again := f.bill(t, f.D1.Account.ID, "2026-10"); again.ID != oct.ID || !again.ActualTotal.Equal(oct.ActualTotal) {
		t.Fatalf("October regenerated: %+v", again)
	}

	// Once October is issued, only what arrives after goes to November.
	must[*billing.PartnerBill](t)(f.svc.IssuePartnerBill(f.finance, oct.ID))
	f.ingest(t, f.C3.Account.ID, "ecs", "2026-09-11 10:00", "0.5", "0.5")
	f.clk.Set(bj("2026-12-01 03:00"))
	must[int](t)(f.svc.GeneratePartnerBills(ctx, month("2026-11")))
	sameLines(t, f.lines(t, f.bill(t, f.D1.Account.ID, "2026-11")), map[string][2]string{"202609/" + id(f.C3) + "/ecs": {"0.5", "0.5"}})
}

func TestScheduledBillRun(t *testing.T) {
	f := september(t)
	sched := billing.DefaultSchedule()
	f.clk.Set(bj("2026-10-01 01:59"))
	res := must[billing.TickResult](t)(f.svc.Tick(context.Background(), sched))
	if res.Generated != 0 || f.count(t, "partner_bills") != 0 {
		t.Fatalf("generated before 02:00: %+v", res)
	}
	f.clk.Set(bj("2026-10-01 02:00"))
	res = must[billing.TickResult](t)(f.svc.Tick(context.Background(), sched))
	if res.Generated == 0 || res.Month.String() != "2026-09" {
		t.Fatalf("not generated at 02:00: %+v", res)
	}
	bills := f.count(t, "partner_bills")
	f.clk.Set(bj("2026-10-02 05:00"))
	if res := must[billing.TickResult](t)(f.svc.Tick(context.Background(), sched)); res.Generated != 0 || res.Issued != 0 {
		t.Fatalf("ran again: %+v", res)
	}
	// A record that arrives before the 5th is in the issued bill.
	f.ingest(t, f.C5.Account.ID, "ecs", "2026-09-30 10:00", "1", "1")
	f.clk.Set(bj("2026-10-05 00:00"))
	// Two schedulers' ticks at once issue each bill once.
	var wg sync.WaitGroup
	results := make([]billing.TickResult, 2)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = must[billing.TickResult](t)(f.svc.Tick(context.Background(), sched))
		}()
	}
	wg.Wait()
	if results[0].Issued+results[1].Issued != bills {
		t.Fatalf("issued %d+%d of %d bills", results[0].Issued, results[1].Issued, bills)
	}
	if n := f.outbox(t, "billing.bill_issued"); n != bills {
		t.Fatalf("bill issued events: %d of %d", n, bills)
	}
	if d2 := f.bill(t, f.D2.Account.ID, "2026-09"); d2.Status != billing.StatusIssued || d2.ActualTotal.String() != "6" {
		t.Fatalf("D2: %+v", d2)
	}
	f.clk.Set(bj("2026-10-06 00:00"))
	if res := must[billing.TickResult](t)(f.svc.Tick(context.Background(), sched)); res.Issued != 0 {
		t.Fatalf("issued again: %+v", res)
	}
}

func TestBillsConnection(t *testing.T) {
	f := september(t)
	must[int](t)(f.svc.GeneratePartnerBills(f.Platform.Ctx, month("2026-09")))
	first, err := f.svc.Bills(f.Platform.Ctx, billing.BillFilter{}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	all, more := first.Items, first.More
	if len(all) != 2 || !more {
		t.Fatalf("page 1: %v %v %v", all, more, err)
	}
	second, err := f.svc.Bills(f.Platform.Ctx, billing.BillFilter{}, 50, all[1].ID)
	if err != nil {
		t.Fatal(err)
	}
	rest, more := second.Items, second.More
	if more {
		t.Fatal(more)
	}
	total := first.Total
	if len(all)+len(rest) != total || second.Total != total {
		t.Fatalf("pages %d+%d of %d", len(all), len(rest), total)
	}
	// D1 sees its own and its resellers' bills only.
	minePage, err := f.svc.Bills(f.D1.Ctx, billing.BillFilter{}, 50, 0)
	if err != nil || len(minePage.Items) != 3 {
		t.Fatalf("D1's bills: %v %v", minePage, err)
	}
	// A cursor naming a bill outside the caller's scope gives an empty page,
	// as an unknown one does: it tells nothing about that bill.
	foreign := f.bill(t, f.D2.Account.ID, "2026-09")
	for _, after := range []int64{foreign.ID, 1 << 40} {
		if page, err := f.svc.Bills(f.D1.Ctx, billing.BillFilter{}, 50, after); err != nil || len(page.Items) != 0 || page.More {
			t.Fatalf("page after %d: %v %v", after, page, err)
		}
	}
	issued := billing.StatusIssued
	none, err := f.svc.Bills(f.D1.Ctx, billing.BillFilter{Status: &issued}, 50, 0)
	if err != nil || len(none.Items) != 0 {
		t.Fatalf("issued: %v %v", none, err)
	}
}

func sameLines(t *testing.T, got, want map[string][2]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("lines: got %v, want %v", got, want)
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok || !dec(g[0]).Equal(dec(w[0])) || !dec(g[1]).Equal(dec(w[1])) {
			t.Fatalf("line %s: got %v, want %v (all: %v)", k, g, w, got)
		}
	}
}

func id(p testkit.Party) string { return strconv.FormatInt(p.Account.ID, 10) }

func (f *fixture) outbox(t *testing.T, eventType string) int {
	t.Helper()
	var n int
	if err := f.Store.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = ?`, eventType).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

func (f *fixture) count(t *testing.T, table string) int {
	t.Helper()
	var n int
	if err := f.Store.DB.Raw(`SELECT count(*) FROM ` + table).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}
