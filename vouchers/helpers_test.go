package vouchers_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/models"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
	"partnerd/vouchers"
)

var beijing = testkit.Shanghai

type fixture struct {
	*testkit.Tree
	st      *store.Store
	clk     *storetest.Clock
	svc     *vouchers.Service
	spend   *spend.Service
	credit  *credit.Service
	finance context.Context // a platform FINANCE user
	seq     int
}

// newFixture builds the standard tree with the store clock at start (a
// Beijing-time wall clock, "2006-01-02 15:04").
func newFixture(t testing.TB, start string) *fixture {
	t.Helper()
	clk := storetest.NewClock(bj(start))
	st := testkit.NewStore(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	f := &fixture{Tree: tr, st: st, clk: clk, svc: vouchers.New(st, vouchers.Options{Location: beijing, Log: quiet}),
		spend: spend.New(st, beijing).WithLogger(quiet), credit: credit.New(st, beijing)}
	f.finance = tr.AddUser(t, tr.Platform.Account, models.RoleFinance).Ctx
	clk.Advance(time.Minute) // the parent history needs time to pass
	return f
}

// bj parses a Beijing wall-clock time "2006-01-02 15:04".
func bj(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, beijing)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

func dec(s string) decimal.Decimal { return decimal.RequireFromString(s) }

func ptr[T any](v T) *T { return &v }

// template is a valid template input: face value face, all products and
// billing modes, valid for 30 days, one per customer.
func template(face string) vouchers.TemplateInput {
	return vouchers.TemplateInput{Name: "Welcome " + face, FaceValue: dec(face), ProductScope: vouchers.ScopeAll,
		BillingModes: vouchers.ModesAll, ValidDays: ptr(30), PerCustomerLimit: 1, Reason: "new customer"}
}

// grant gives partner amount of quota expiring in 90 days.
func (f *fixture) grant(t testing.TB, partner int64, amount string) {
	t.Helper()
	if _, err := f.svc.Grant(f.finance, partner, dec(amount), f.clk.Now().Add(90*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

// ingest records one expenditure of customer; it returns the result.
func (f *fixture) ingest(t testing.TB, customer int64, product string, mode models.BillingMode, at time.Time, list, actual string) *spend.Result {
	t.Helper()
	f.seq++
	return f.ingestID(t, fmt.Sprintf("rec-%d", f.seq), customer, product, mode, at, list, actual)
}

func (f *fixture) ingestID(t testing.TB, id string, customer int64, product string, mode models.BillingMode, at time.Time, list, actual string) *spend.Result {
	t.Helper()
	res, err := f.spend.IngestRecords(f.Platform.Ctx, []spend.Record{{ExternalID: id, CustomerID: customer,
		ProductCode: product, BillingMode: mode, UsageAt: at, List: dec(list), Actual: dec(actual)}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// pool returns partner's pool as the platform sees it.
func (f *fixture) pool(t testing.TB, partner int64) *vouchers.Pool {
	t.Helper()
	p, err := f.svc.Pool(f.Platform.Ctx, partner)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// voucher returns voucher id as the platform sees it.
func (f *fixture) voucher(t testing.TB, id int64) *vouchers.Voucher {
	t.Helper()
	v, err := f.svc.Voucher(f.Platform.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkPool checks pool partner's figures (quota, allocated, issued) and
// that its ledger and vouchers agree with them: the last ledger row left
// these balances, issued = Σ face value − Σ returned of its vouchers, and
// allocated + issued ≤ quota.
func (f *fixture) checkPool(t testing.TB, partner int64, quota, allocated, issued string) {
	t.Helper()
	var row struct{ Quota, Allocated, Issued, VFace, VReturned, LQuota, LAllocated, LIssued decimal.Decimal }
	err := f.st.DB.Raw(`SELECT p.quota, p.allocated, p.issued,
			(SELECT coalesce(sum(face_value), 0) FROM vouchers WHERE issuer_id = p.partner_id) AS v_face,
			(SELECT coalesce(sum(returned), 0) FROM vouchers WHERE issuer_id = p.partner_id) AS v_returned,
			l.quota_after AS l_quota, l.allocated_after AS l_allocated, l.issued_after AS l_issued
		FROM voucher_pools p LEFT JOIN LATERAL (SELECT * FROM voucher_pool_ledger WHERE partner_id = p.partner_id ORDER BY id DESC LIMIT 1) l ON true
		WHERE p.partner_id = ?`, partner).Scan(&row).Error
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%s/%s/%s", row.Quota, row.Allocated, row.Issued)
	if want := fmt.Sprintf("%s/%s/%s", dec(quota), dec(allocated), dec(issued)); got != want {
		t.Fatalf("pool %d: quota/allocated/issued %s, want %s", partner, got, want)
	}
	if l := fmt.Sprintf("%s/%s/%s", row.LQuota, row.LAllocated, row.LIssued); l != got {
		t.Fatalf("pool %d: the last ledger row left %s, the pool holds %s", partner, l, got)
	}
	if !row.VFace.Sub(row.VReturned).Equal(row.Issued) {
		t.Fatalf("pool %d: issued %s, but its vouchers' face value %s less returned %s", partner, row.Issued, row.VFace, row.VReturned)
	}
	if row.Allocated.Add(row.Issued).GreaterThan(row.Quota) {
		t.Fatalf("pool %d: allocated + issued above quota", partner)
	}
}

func wantCode(t testing.TB, err error, code apperr.Code) {
	t.Helper()
	if apperr.CodeOf(err) != code {
		t.Fatalf("want %s, got %v", code, err)
	}
}

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Short names of the service's results, for must.
type (
	poolT        = vouchers.Pool
	tickT        = vouchers.TickResult
	templateT    = vouchers.Template
	issuanceT    = vouchers.Issuance
	voucherT     = vouchers.Voucher
	ledgerPage   = store.Page[*vouchers.LedgerEntry]
	issuancePage = store.Page[*vouchers.Issuance]
	voucherPage  = store.Page[*vouchers.Voucher]
	templatePage = store.Page[*vouchers.Template]
)

func issuanceFilter(partner int64, status string) vouchers.IssuanceFilter {
	s := vouchers.IssuanceStatus(status)
	return vouchers.IssuanceFilter{PartnerID: partner, Status: &s}
}

// issuer is who issues: a context and the partner it acts for.
type issuer struct {
	ctx context.Context
	id  int64
}

type (
	creditView     = credit.View
	redemptionPage = store.Page[*vouchers.Redemption]
)
