package vouchers_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/lifecycle"
	"partnerd/models"
	"partnerd/vouchers"
)

func TestTemplateRules(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1 := f.D1.Account.ID
	bad := map[string]func(*vouchers.TemplateInput){
		"no name":        func(in *vouchers.TemplateInput) { in.Name = "  " },
		"zero face":      func(in *vouchers.TemplateInput) { in.FaceValue = decimal.Zero },
		"7 decimals":     func(in *vouchers.TemplateInput) { in.FaceValue = dec("1.0000001") },
		"unknown scope":  func(in *vouchers.TemplateInput) { in.ProductScope = "SOME" },
		"ONLY no codes":  func(in *vouchers.TemplateInput) { in.ProductScope = vouchers.ScopeOnly },
		"ALL with codes": func(in *vouchers.TemplateInput) { in.ProductCodes = []string{"ecs"} },
		"empty code": func(in *vouchers.TemplateInput) {
			in.ProductScope, in.ProductCodes = vouchers.ScopeExcept, []string{" "}
		},
		"unknown modes":   func(in *vouchers.TemplateInput) { in.BillingModes = "POSTPAID" },
		"both validities": func(in *vouchers.TemplateInput) { in.ValidUntil = ptr(bj("2027-01-01 00:00")) },
		"no validity":     func(in *vouchers.TemplateInput) { in.ValidDays = nil },
		"zero days":       func(in *vouchers.TemplateInput) { in.ValidDays = ptr(0) },
		"past until":      func(in *vouchers.TemplateInput) { in.ValidDays, in.ValidUntil = nil, ptr(bj("2026-11-01 00:00")) },
		"from after until": func(in *vouchers.TemplateInput) {
			in.ValidDays, in.ValidUntil, in.ValidFrom = nil, ptr(bj("2026-12-01 00:00")), ptr(bj("2026-12-02 00:00"))
		},
		"from with days": func(in *vouchers.TemplateInput) { in.ValidFrom = ptr(bj("2026-12-01 00:00")) },
		"limit too high": func(in *vouchers.TemplateInput) { in.PerCustomerLimit = 1001 },
		"no reason":      func(in *vouchers.TemplateInput) { in.Reason = "" },
	}
	for name, mutate := range bad {
		in := template("10")
		mutate(&in)
		_, err := f.svc.CreateTemplate(f.D1.Ctx, d1, in)
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: want VALIDATION, got %v", name, err)
		}
	}
	var n int
	f.st.DB.Raw(`SELECT count(*) FROM voucher_templates`).Scan(&n)
	if n != 0 {
		t.Fatalf("%d templates stored from bad input", n)
	}
	// Codes are trimmed, unique and sorted; customers cannot define templates.
	in := template("10")
	in.ProductScope, in.ProductCodes = vouchers.ScopeOnly, []string{" rds", "ecs", "rds"}
	tpl := must[*templateT](t)(f.svc.CreateTemplate(f.D1.Ctx, d1, in))
	if strings.Join(tpl.ProductCodes, ",") != "ecs,rds" {
		t.Fatalf("codes %v", tpl.ProductCodes)
	}
	_, err := f.svc.CreateTemplate(f.C3.Ctx, f.C3.Account.ID, template("10"))
	wantCode(t, err, apperr.Validation)
	_, err = f.svc.CreateTemplate(f.D2.Ctx, d1, template("10"))
	wantCode(t, err, apperr.NotFound)
	viewer := f.AddUser(t, f.D1.Account, models.RoleViewer).Ctx
	_, err = f.svc.CreateTemplate(viewer, d1, template("10"))
	wantCode(t, err, apperr.Forbidden)
	// An unused template changes; a used one only retires.
	tpl = must[*templateT](t)(f.svc.UpdateTemplate(f.D1.Ctx, tpl.ID, template("20")))
	if !tpl.FaceValue.Equal(dec("20")) || tpl.ProductScope != vouchers.ScopeAll {
		t.Fatalf("updated: %+v", tpl)
	}
	f.grant(t, d1, "100")
	must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{f.C3.Account.ID}))
	_, err = f.svc.UpdateTemplate(f.D1.Ctx, tpl.ID, template("5"))
	wantCode(t, err, apperr.PreconditionFailed)
	tpl = must[*templateT](t)(f.svc.RetireTemplate(f.D1.Ctx, tpl.ID))
	if tpl.Status != vouchers.TemplateRetired || tpl.RetiredAt == nil {
		t.Fatalf("retired: %+v", tpl)
	}
	must[*templateT](t)(f.svc.RetireTemplate(f.D1.Ctx, tpl.ID))
	_, err = f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{f.C3.Account.ID})
	wantCode(t, err, apperr.PreconditionFailed)
	page := must[*templatePage](t)(f.svc.Templates(f.D1.Ctx, d1, false, 10, 0))
	if page.Total != 0 {
		t.Fatalf("active templates: %d", page.Total)
	}
	page = must[*templatePage](t)(f.svc.Templates(f.D1.Ctx, d1, true, 10, 0))
	if page.Total != 1 {
		t.Fatalf("all templates: %d", page.Total)
	}
	// A fixed validity that has ended refuses the issue.
	in = template("10")
	in.ValidDays, in.ValidUntil = nil, ptr(f.clk.Now().Add(time.Hour))
	tpl = must[*templateT](t)(f.svc.CreateTemplate(f.D1.Ctx, d1, in))
	f.clk.Advance(2 * time.Hour)
	_, err = f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{f.C3.Account.ID})
	wantCode(t, err, apperr.PreconditionFailed)
}

func TestIssueResultsPerCustomer(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1, c3 := f.D1.Account.ID, f.C3.Account.ID
	in := template("40")
	in.PerCustomerLimit = 2
	tpl := must[*templateT](t)(f.svc.CreateTemplate(f.D1.Ctx, d1, in))
	// No quota yet.
	_, err := f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c3})
	wantCode(t, err, apperr.PreconditionFailed)
	f.grant(t, d1, "200")
	_, err = f.svc.Issue(f.D1.Ctx, tpl.ID, nil)
	wantCode(t, err, apperr.Validation)
	c := f.Add(t, d1, models.KindCustomer, "Another").Account.ID
	is := must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c3, c3, f.C1.Account.ID, f.C5.Account.ID, 987654321, f.R1.Account.ID, c, c}))
	codes := func(is *vouchers.Issuance) string {
		got := ""
		for _, r := range is.Results {
			got += string(r.Code) + " "
		}
		return got
	}
	if got, want := codes(is), "ISSUED DUPLICATE NOT_IN_SCOPE NOT_FOUND NOT_FOUND NOT_IN_SCOPE ISSUED DUPLICATE "; got != want {
		t.Fatalf("results:\n got %s\nwant %s", got, want)
	}
	f.checkPool(t, d1, "200", "0", "80")
	must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c3}))
	third := f.Add(t, d1, models.KindCustomer, "Third").Account.ID
	is = must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c3, c, third}))
	if got, want := codes(is), "OVER_CUSTOMER_LIMIT ISSUED ISSUED "; got != want {
		t.Fatalf("results: %s, want %s", got, want)
	}
	is = must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{f.Add(t, d1, models.KindCustomer, "Fourth").Account.ID}))
	if got, want := codes(is), "QUOTA_EXHAUSTED "; got != want {
		t.Fatalf("results: %s, want %s", got, want)
	}
	f.checkPool(t, d1, "200", "0", "200")
	// A cancelled voucher does not count against the limit, and gives its amount back.
	list := must[*voucherPage](t)(f.svc.Vouchers(f.D1.Ctx, vouchers.Filter{CustomerID: c3}, 10, 0))
	if list.Total != 2 {
		t.Fatalf("C3 holds %d vouchers", list.Total)
	}
	must[*voucherT](t)(f.svc.Cancel(f.D1.Ctx, list.Items[0].ID, "issued twice"))
	is = must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, []int64{c3}))
	if is.Results[0].Code != vouchers.IssueOK {
		t.Fatalf("after a cancellation: %+v", is.Results)
	}
	f.checkPool(t, d1, "200", "0", "200")
	st := vouchers.StatusCancelled
	if l := must[*voucherPage](t)(f.svc.Vouchers(f.C3.Ctx, vouchers.Filter{CustomerID: c3, Status: &st}, 10, 0)); l.Total != 1 {
		t.Fatalf("C3 sees %d cancelled vouchers", l.Total)
	}
	if l := must[*voucherPage](t)(f.svc.Vouchers(f.D1.Ctx, vouchers.Filter{IssuerID: d1}, 2, 0)); l.Total != 6 || !l.More {
		t.Fatalf("D1's issued vouchers: %d, more %v", l.Total, l.More)
	}
	// Isolation: another partner sees nothing, a customer sees only itself.
	_, err = f.svc.Vouchers(f.D2.Ctx, vouchers.Filter{CustomerID: c3}, 10, 0)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Vouchers(f.C3.Ctx, vouchers.Filter{CustomerID: c}, 10, 0)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Voucher(f.D2.Ctx, list.Items[0].ID)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Cancel(f.D2.Ctx, list.Items[1].ID, "hostile")
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Issue(f.D2.Ctx, tpl.ID, []int64{f.C5.Account.ID})
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Template(f.R1.Ctx, tpl.ID)
	wantCode(t, err, apperr.NotFound)
	_, err = f.svc.Vouchers(f.D1.Ctx, vouchers.Filter{CustomerID: c3, IssuerID: d1}, 10, 0)
	wantCode(t, err, apperr.Validation)
}

// TestQuotaConservedUnderConcurrency runs 100 concurrent issues and
// cancellations against one pool; the pool never holds more than its quota
// and its books balance at the end.
func TestQuotaConservedUnderConcurrency(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1, r1 := f.D1.Account.ID, f.R1.Account.ID
	f.grant(t, d1, "1000")
	must[*poolT](t)(f.svc.Allocate(f.D1.Ctx, r1, dec("600")))
	in := template("10.5")
	in.PerCustomerLimit = 1000
	tpl := must[*templateT](t)(f.svc.CreateTemplate(f.R1.Ctx, r1, in))
	custs := make([]int64, 10)
	for i := range custs {
		custs[i] = f.Add(t, r1, models.KindCustomer, fmt.Sprintf("Concurrent %d", i)).Account.ID
	}
	var mu sync.Mutex
	issued := map[int64]bool{}
	for i := 0; i < 2; i++ {
		first := must[*issuanceT](t)(f.svc.Issue(f.R1.Ctx, tpl.ID, custs))
		if first.Results.Issued() != 10 {
			t.Fatalf("issued %d", first.Results.Issued())
		}
		for _, r := range first.Results {
			issued[r.VoucherID] = true
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			if g%2 == 0 {
				pick := []int64{custs[rng.IntN(10)], custs[rng.IntN(10)], custs[rng.IntN(10)]}
				is, err := f.svc.Issue(f.R1.Ctx, tpl.ID, pick)
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				for _, r := range is.Results {
					if r.Code == vouchers.IssueOK {
						issued[r.VoucherID] = true
					}
				}
				mu.Unlock()
				return
			}
			mu.Lock()
			var id int64
			for v := range issued {
				id = v
				delete(issued, v)
				break
			}
			mu.Unlock()
			if id == 0 {
				return
			}
			if _, err := f.svc.Cancel(f.R1.Ctx, id, fmt.Sprintf("round %d", g)); err != nil {
				errs <- err
			}
		}(g)
	}
	// Meanwhile the distributor reclaims and re-allocates.
	for i := 0; i < 5; i++ {
		if _, err := f.svc.Reclaim(f.D1.Ctx, r1, dec("1")); err != nil && apperr.CodeOf(err) != apperr.PreconditionFailed {
			t.Fatal(err)
		}
		if _, err := f.svc.Allocate(f.D1.Ctx, r1, dec("1")); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var live int
	var face decimal.Decimal
	f.st.DB.Raw(`SELECT count(*) FROM vouchers WHERE status = 'ISSUED'`).Scan(&live)
	f.st.DB.Raw(`SELECT coalesce(sum(face_value), 0) FROM vouchers WHERE status = 'ISSUED'`).Scan(&face)
	p := f.pool(t, r1)
	if !p.Issued.Equal(face) || live != len(issued) {
		t.Fatalf("pool issued %s, live vouchers %d worth %s, the test holds %d", p.Issued, live, face, len(issued))
	}
	f.checkPool(t, r1, p.Quota.String(), "0", p.Issued.String())
	f.checkPool(t, d1, "1000", p.Quota.String(), "0")
	// The ledger replays to the balances.
	var sums struct{ Q, A, I decimal.Decimal }
	f.st.DB.Raw(`SELECT
			coalesce(sum(amount) FILTER (WHERE kind IN ('GRANT','ALLOCATED')), 0) - coalesce(sum(amount) FILTER (WHERE kind = 'RECLAIMED'), 0) AS q,
			coalesce(sum(amount) FILTER (WHERE kind = 'ALLOCATE'), 0) - coalesce(sum(amount) FILTER (WHERE kind = 'RECLAIM'), 0) AS a,
			coalesce(sum(amount) FILTER (WHERE kind = 'ISSUE'), 0) - coalesce(sum(amount) FILTER (WHERE kind = 'RETURN'), 0) AS i
		FROM voucher_pool_ledger WHERE partner_id = ?`, r1).Scan(&sums)
	if !sums.Q.Equal(p.Quota) || !sums.A.IsZero() || !sums.I.Equal(p.Issued) {
		t.Fatalf("ledger replays to %+v, pool %+v", sums, p)
	}
}

func TestCustomerLeavingLosesItsVouchers(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1, c3 := f.D1.Account.ID, f.C3.Account.ID
	f.grant(t, d1, "500")
	v := f.issueOne(t, &issuer{f.D1.Ctx, d1}, template("120"), c3)
	f.ingestID(t, "used", c3, "ecs", models.PayPerUse, f.clk.Now(), "20", "20")
	life := lifecycle.New(f.st, lifecycle.Options{Location: beijing})
	u := must[*lifecycle.Unbinding](t)(life.RequestUnbinding(f.D1.Ctx, c3))
	f.clk.Advance(time.Minute)
	must[*lifecycle.Unbinding](t)(life.ConfirmUnbinding(f.C3.Ctx, u.ID))
	v = f.voucher(t, v.ID)
	if v.Status != vouchers.StatusCancelled || v.Returned.String() != "100" || v.CloseReason == nil || !strings.HasPrefix(*v.CloseReason, "unbinding") {
		t.Fatalf("after the unbinding: %+v", v)
	}
	f.checkPool(t, d1, "500", "0", "20")
	// The issuer still sees the voucher it issued; the former customer too.
	if l := must[*voucherPage](t)(f.svc.Vouchers(f.D1.Ctx, vouchers.Filter{IssuerID: d1}, 10, 0)); l.Total != 1 {
		t.Fatalf("the issuer sees %d vouchers", l.Total)
	}
	p := must[*accounts.Principal](t)(f.Accounts.Authenticate(context.Background(), f.C3.Token)) // its path changed
	if l := must[*voucherPage](t)(f.svc.Vouchers(accounts.WithPrincipal(context.Background(), p), vouchers.Filter{CustomerID: c3}, 10, 0)); l.Total != 1 {
		t.Fatalf("the former customer sees %d vouchers", l.Total)
	}
	// Its later records are paid by nothing.
	f.ingestID(t, "later", c3, "ecs", models.PayPerUse, f.clk.Now(), "20", "20")
	var n int
	f.st.DB.Raw(`SELECT count(*) FROM voucher_redemptions`).Scan(&n)
	if n != 1 {
		t.Fatalf("%d redemptions", n)
	}
}

func TestTickIsSafeConcurrently(t *testing.T) {
	f := newFixture(t, "2026-11-10 10:00")
	d1 := f.D1.Account.ID
	f.grant(t, d1, "100000")
	in := template("1")
	in.ValidDays = ptr(1)
	tpl := must[*templateT](t)(f.svc.CreateTemplate(f.D1.Ctx, d1, in))
	var custs []int64
	for i := 0; i < 30; i++ {
		custs = append(custs, f.Add(t, d1, models.KindCustomer, fmt.Sprintf("Tick %d", i)).Account.ID)
	}
	must[*issuanceT](t)(f.svc.Issue(f.D1.Ctx, tpl.ID, custs))
	f.clk.Advance(48 * time.Hour)
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := vouchers.TickResult{}
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := f.svc.Tick(context.Background())
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total.Expired += res.Expired
			total.Reminded += res.Reminded
			mu.Unlock()
		}()
	}
	wg.Wait()
	if total.Expired != 30 {
		t.Fatalf("expired %d times", total.Expired)
	}
	var events int
	f.st.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = 'voucher.expired'`).Scan(&events)
	if events != 30 {
		t.Fatalf("%d expiry messages", events)
	}
	f.checkPool(t, d1, "100000", "0", "0")
}
