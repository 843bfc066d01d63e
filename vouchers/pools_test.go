package vouchers_test

import (
	"testing"
	"time"

	"partnerd/apperr"
	"partnerd/models"
)

func TestPoolsMoveDownTheTree(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1, r1, r2 := f.D1.Account.ID, f.R1.Account.ID, f.R2.Account.ID
	exp := f.clk.Now().Add(60 * 24 * time.Hour)

	// Only the platform grants, only to tier-1 partners, amounts > 0, expiry ahead.
	_, err := f.svc.Grant(f.D1.Ctx, d1, dec("1000"), exp)
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.Grant(f.finance, r1, dec("1000"), exp)
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.Grant(f.finance, f.C1.Account.ID, dec("1000"), exp)
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.Grant(f.finance, d1, dec("-1"), exp)
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.Grant(f.finance, d1, dec("0.0000001"), exp)
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.Grant(f.finance, d1, dec("10"), f.clk.Now())
	wantCode(t, err, apperr.Validation)
	// Nothing granted: nothing to allocate.
	_, err = f.svc.Allocate(f.D1.Ctx, r1, dec("1"))
	wantCode(t, err, apperr.PreconditionFailed)

	p := must[*poolT](t)(f.svc.Grant(f.finance, d1, dec("1000"), exp))
	if !p.Quota.Equal(dec("1000")) || !p.Remaining.Equal(dec("1000")) || p.ExpiresAt == nil || !p.ExpiresAt.Equal(exp) {
		t.Fatalf("pool after grant: %+v", p)
	}
	rp := must[*poolT](t)(f.svc.Allocate(f.D1.Ctx, r1, dec("300")))
	if !rp.Quota.Equal(dec("300")) || rp.ExpiresAt == nil || !rp.ExpiresAt.Equal(exp) {
		t.Fatalf("reseller pool: %+v", rp)
	}
	must[*poolT](t)(f.svc.Allocate(f.D1.Ctx, r2, dec("700")))
	_, err = f.svc.Allocate(f.D1.Ctx, r2, dec("0.01"))
	wantCode(t, err, apperr.PreconditionFailed)
	// Reclaim: only the unused part, only by the distributor or the platform.
	_, err = f.svc.Reclaim(f.R1.Ctx, r1, dec("10"))
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.Reclaim(f.D1.Ctx, r1, dec("300.01"))
	wantCode(t, err, apperr.PreconditionFailed)
	must[*poolT](t)(f.svc.Reclaim(f.D1.Ctx, r1, dec("100")))
	must[*poolT](t)(f.svc.Reclaim(f.Platform.Ctx, r2, dec("200")))
	// The allocation goes to second-level resellers only.
	_, err = f.svc.Allocate(f.D1.Ctx, f.C3.Account.ID, dec("1"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.Allocate(f.D1.Ctx, f.S1.Account.ID, dec("1"))
	wantCode(t, err, apperr.NotFound) // outside D1's subtree
	// Another distributor sees nothing of D1's.
	_, err = f.svc.Pool(f.D2.Ctx, d1)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Allocate(f.D2.Ctx, r1, dec("1"))
	wantCode(t, err, apperr.NotFound)

	// A reseller without quota of its own still shows its distributor's expiry.
	if p := f.pool(t, f.Add(t, d1, models.KindReseller, "Reseller Three").Account.ID); p.ExpiresAt == nil || !p.ExpiresAt.Equal(exp) || !p.Quota.IsZero() {
		t.Fatalf("a reseller without a pool: %+v", p)
	}
	f.checkPool(t, d1, "1000", "700", "0")
	f.checkPool(t, r1, "200", "0", "0")
	f.checkPool(t, r2, "500", "0", "0")
	page := must[*ledgerPage](t)(f.svc.Ledger(f.D1.Ctx, d1, 10, 0))
	kinds := ""
	for _, e := range page.Items {
		kinds += e.Kind + " "
	}
	if kinds != "RECLAIM RECLAIM ALLOCATE ALLOCATE GRANT " || page.Total != 5 {
		t.Fatalf("distributor's ledger: %q (%d)", kinds, page.Total)
	}
	// The reseller sees its own pool, not its sibling's.
	if _, err := f.svc.Pool(f.R1.Ctx, r1); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.Pool(f.R1.Ctx, r2)
	wantCode(t, err, apperr.NotFound)

	// The ledger is append-only.
	if err := f.st.DB.Exec(`UPDATE voucher_pool_ledger SET amount = 0`).Error; err == nil {
		t.Fatal("the ledger was updated")
	}

	// At its expiry the quota is gone for the distributor and its resellers.
	f.clk.Set(exp)
	res := must[tickT](t)(f.svc.Tick(f.Platform.Ctx))
	if res.PoolsExpired != 1 {
		t.Fatalf("tick: %+v", res)
	}
	if again := must[tickT](t)(f.svc.Tick(f.Platform.Ctx)); again.PoolsExpired != 0 {
		t.Fatalf("second tick expired again: %+v", again)
	}
	if p := f.pool(t, r1); !p.Expired || !p.Remaining.IsZero() {
		t.Fatalf("reseller's pool after expiry: %+v", p)
	}
	_, err = f.svc.Allocate(f.D1.Ctx, r1, dec("1"))
	wantCode(t, err, apperr.PreconditionFailed)
	var told []string
	f.st.DB.Raw(`SELECT event_type || ':' || (payload->>'partnerId') FROM outbox WHERE event_type = 'voucher.quota_expired' ORDER BY id`).Scan(&told)
	if len(told) != 3 {
		t.Fatalf("quota expiry told %v; want the distributor and its two resellers", told)
	}
	// A new grant re-opens the pool.
	must[*poolT](t)(f.svc.Grant(f.finance, d1, dec("1"), exp.Add(24*time.Hour)))
	if p := f.pool(t, r1); p.Expired || !p.Remaining.Equal(dec("200")) {
		t.Fatalf("reseller's pool after a new grant: %+v", p)
	}
}

func TestApprovalThreshold(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1, r1 := f.D1.Account.ID, f.R1.Account.ID
	f.grant(t, d1, "1000")
	must[*poolT](t)(f.svc.Allocate(f.D1.Ctx, r1, dec("500")))
	_, err := f.svc.SetApprovalThreshold(f.R1.Ctx, r1, ptr(dec("150")))
	wantCode(t, err, apperr.Forbidden)
	must[*poolT](t)(f.svc.SetApprovalThreshold(f.D1.Ctx, r1, ptr(dec("150"))))

	tpl := must[*templateT](t)(f.svc.CreateTemplate(f.R1.Ctx, r1, template("100")))
	c1 := f.C1.Account.ID
	c1b := f.Add(t, r1, models.KindCustomer, "Customer One B").Account.ID

	// 100 ≤ 150: issued at once.
	is := must[*issuanceT](t)(f.svc.Issue(f.R1.Ctx, tpl.ID, []int64{c1}))
	if is.Status != "COMPLETED" || is.Results.Issued() != 1 {
		t.Fatalf("small issue: %+v", is)
	}
	// 200 > 150: waits, reserves nothing, and the distributor is asked.
	// C3 is D1's own customer, outside R1's scope.
	is = must[*issuanceT](t)(f.svc.Issue(f.R1.Ctx, tpl.ID, []int64{c1b, c1, f.C3.Account.ID}))
	if is.Status != "PENDING_APPROVAL" || len(is.Results) != 0 {
		t.Fatalf("big issue: %+v", is)
	}
	f.checkPool(t, r1, "500", "0", "100")
	var asked int
	f.st.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = 'voucher.issuance_requested' AND account_id = ?`, r1).Scan(&asked)
	if asked != 1 {
		t.Fatalf("%d approval requests", asked)
	}
	// The reseller cannot approve itself; another distributor cannot see it.
	_, err = f.svc.Approve(f.R1.Ctx, is.ID)
	wantCode(t, err, apperr.Forbidden)
	_, err = f.svc.Approve(f.D2.Ctx, is.ID)
	wantCode(t, err, apperr.NotFound)
	pending := must[*issuancePage](t)(f.svc.Issuances(f.D1.Ctx, issuanceFilter(d1, "PENDING_APPROVAL"), 10, 0))
	if pending.Total != 1 || pending.Items[0].ID != is.ID {
		t.Fatalf("the distributor's pending list: %+v", pending)
	}
	// A template in use waits on nothing more to change: it is in use.
	_, err = f.svc.UpdateTemplate(f.R1.Ctx, tpl.ID, template("50"))
	wantCode(t, err, apperr.PreconditionFailed)

	done := must[*issuanceT](t)(f.svc.Approve(f.D1.Ctx, is.ID))
	// Decided now, in R1's subtree: C3 is not found, whoever approves.
	if done.Status != "COMPLETED" || done.Results.Issued() != 1 || done.Results[1].Code != "OVER_CUSTOMER_LIMIT" || done.Results[2].Code != "NOT_FOUND" {
		t.Fatalf("approved issue: %+v", done)
	}
	_, err = f.svc.Approve(f.D1.Ctx, is.ID)
	wantCode(t, err, apperr.PreconditionFailed)
	f.checkPool(t, r1, "500", "0", "200")

	c1c := f.Add(t, r1, models.KindCustomer, "Customer One C").Account.ID
	is = must[*issuanceT](t)(f.svc.Issue(f.R1.Ctx, tpl.ID, []int64{c1c, f.C2.Account.ID}))
	_, err = f.svc.Reject(f.D1.Ctx, is.ID, " ")
	wantCode(t, err, apperr.Validation)
	rej := must[*issuanceT](t)(f.svc.Reject(f.D1.Ctx, is.ID, "Too generous for this quarter."))
	if rej.Status != "REJECTED" || rej.Reason == nil || *rej.Reason != "Too generous for this quarter." {
		t.Fatalf("rejected issue: %+v", rej)
	}
	f.checkPool(t, r1, "500", "0", "200")
	var decided []bool
	f.st.DB.Raw(`SELECT (payload->>'approved')::bool FROM outbox WHERE event_type = 'voucher.issuance_decided' ORDER BY id`).Scan(&decided)
	if len(decided) != 2 || !decided[0] || decided[1] {
		t.Fatalf("decisions told: %v", decided)
	}
	// The distributor's own issue from the reseller's template needs no
	// approval; customers are looked for in the reseller's subtree.
	is = must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c1c, f.C3.Account.ID}))
	if is.Status != "COMPLETED" || is.Results[0].Code != "ISSUED" || is.Results[1].Code != "NOT_FOUND" {
		t.Fatalf("distributor's issue: %+v", is)
	}
}
