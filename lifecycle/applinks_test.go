package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

type fixture struct {
	*testkit.Tree
	clock *storetest.Clock
	svc   *lifecycle.Service
	// P2 and P3 are more personal accounts (P1 is the tree's).
	P2, P3 testkit.Party
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	clk := storetest.NewClock(time.Date(2026, 11, 10, 2, 0, 0, 0, time.UTC))
	st := testkit.NewStore(t, store.Options{Clock: clk})
	tr := testkit.NewTreeOn(t, st)
	f := &fixture{Tree: tr, clock: clk, svc: lifecycle.New(st, lifecycle.Options{PublicURL: "https://partner.test/", Location: testkit.Shanghai})}
	f.P2 = tr.Add(t, tr.Platform.Account.ID, models.KindPersonal, "Personal Two")
	f.P3 = tr.Add(t, tr.Platform.Account.ID, models.KindPersonal, "Personal Three")
	// The tree's parent history starts now; what follows happens later.
	clk.Advance(time.Minute)
	return f
}

func ptr[T any](v T) *T { return &v }

// wantCode fails unless err carries code.
func wantCode(t *testing.T, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: %s (%v), want %s", what, got, err, code)
	}
}

// link creates a link of partner as by, valid for ttl.
func (f *fixture) link(t *testing.T, by testkit.Party, partner int64, kind lifecycle.LinkKind, ttl time.Duration, limit *int) (*lifecycle.ApplicationLink, string) {
	t.Helper()
	l, token, err := f.svc.CreateApplicationLink(by.Ctx, partner, kind, f.clock.Now().Add(ttl), limit)
	if err != nil {
		t.Fatalf("create link: %v", err)
	}
	return l, token
}

// apply applies as by through token and expects success.
func (f *fixture) apply(t *testing.T, by testkit.Party, token string) *lifecycle.LinkApplication {
	t.Helper()
	app, err := f.svc.ApplyWithLink(by.Ctx, token)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return app
}

func (f *fixture) linkStatus(t *testing.T, id int64) *lifecycle.ApplicationLink {
	t.Helper()
	l, err := f.svc.ApplicationLink(f.Platform.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func (f *fixture) account(t *testing.T, id int64) *models.Account {
	t.Helper()
	var a models.Account
	if err := f.Store.DB.Raw(`SELECT * FROM accounts WHERE id = ?`, id).Scan(&a).Error; err != nil || a.ID == 0 {
		t.Fatalf("load account %d: %v", id, err)
	}
	return &a
}

func (f *fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if err := f.Store.DB.Exec(q, args...).Error; err != nil {
		t.Fatal(err)
	}
}

// outbox counts the outbox rows of eventType whose payload field key is id.
func (f *fixture) outbox(t *testing.T, eventType, key string, id int64) int64 {
	t.Helper()
	var n int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = ? AND (payload->>?)::bigint = ?`, eventType, key, id).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// A link is created by a partner's ADMIN or OPERATOR (or one above it) for a
// partner in scope; RESELLER links are a distributor's; the expiry is in the
// future and within 90 days; a usage limit is at least 1. The token is
// shown once and only its SHA-256 is stored.
func TestCreateApplicationLink_Validates(t *testing.T) {
	f := newFixture(t)
	now := f.clock.Now()
	viewer := f.AddUser(t, f.R1.Account, models.RoleViewer)
	operator := f.AddUser(t, f.R1.Account, models.RoleOperator)
	r1, d1 := f.R1.Account.ID, f.D1.Account.ID
	for _, c := range []struct {
		name    string
		by      testkit.Party
		partner int64
		kind    lifecycle.LinkKind
		expires time.Time
		limit   *int
		code    apperr.Code
	}{
		{"another partner", f.D2, r1, lifecycle.LinkCustomer, now.Add(time.Hour), nil, apperr.NotFound},
		{"a customer of the partner", f.C1, r1, lifecycle.LinkCustomer, now.Add(time.Hour), nil, apperr.NotFound},
		{"a viewer", viewer, r1, lifecycle.LinkCustomer, now.Add(time.Hour), nil, apperr.Forbidden},
		{"not a partner", f.Platform, f.P1.Account.ID, lifecycle.LinkCustomer, now.Add(time.Hour), nil, apperr.Validation},
		{"a reseller's reseller link", f.R1, r1, lifecycle.LinkReseller, now.Add(time.Hour), nil, apperr.Validation},
		{"a single-tier reseller's reseller link", f.S1, f.S1.Account.ID, lifecycle.LinkReseller, now.Add(time.Hour), nil, apperr.Validation},
		{"an unknown kind", f.R1, r1, "PARTNER", now.Add(time.Hour), nil, apperr.Validation},
		{"expires now", f.R1, r1, lifecycle.LinkCustomer, now, nil, apperr.Validation},
		{"expired", f.R1, r1, lifecycle.LinkCustomer, now.Add(-time.Minute), nil, apperr.Validation},
		{"beyond 90 days", f.R1, r1, lifecycle.LinkCustomer, now.Add(lifecycle.MaxLinkTTL + time.Second), nil, apperr.Validation},
		{"a usage limit of 0", f.R1, r1, lifecycle.LinkCustomer, now.Add(time.Hour), ptr(0), apperr.Validation},
		{"a negative usage limit", f.R1, r1, lifecycle.LinkCustomer, now.Add(time.Hour), ptr(-3), apperr.Validation},
	} {
		_, token, err := f.svc.CreateApplicationLink(c.by.Ctx, c.partner, c.kind, c.expires, c.limit)
		wantCode(t, c.name, err, c.code)
		if token != "" {
			t.Fatalf("%s: a token came with the refusal", c.name)
		}
	}
	var links int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM application_links`).Scan(&links).Error; err != nil || links != 0 {
		t.Fatalf("%d links after refusals (%v)", links, err)
	}

	l, token, err := f.svc.CreateApplicationLink(f.D1.Ctx, d1, lifecycle.LinkReseller, now.Add(lifecycle.MaxLinkTTL), ptr(1))
	if err != nil {
		t.Fatal(err)
	}
	if l.PartnerID != d1 || l.Kind != lifecycle.LinkReseller || l.Status != lifecycle.LinkUnused || l.Uses != 0 || *l.UsageLimit != 1 ||
		l.CreatedBy == nil || *l.CreatedBy != f.D1.User.ID || !l.ExpiresAt.Equal(now.Add(lifecycle.MaxLinkTTL)) {
		t.Fatalf("link %+v", l)
	}
	if !strings.HasPrefix(token, "al_") || len(token) != 3+43 {
		t.Fatalf("token %q", token)
	}
	sum := sha256.Sum256([]byte(token))
	var stored int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM application_links WHERE id = ? AND token_hash = ?`, l.ID, sum[:]).Scan(&stored).Error; err != nil || stored != 1 {
		t.Fatalf("the link does not keep the token's SHA-256 (%v)", err)
	}
	if got := f.svc.ApplicationLinkURL(token); got != "https://partner.test/application-links/apply?token="+token {
		t.Fatalf("link URL %s", got)
	}
	// The partner's operator, and a distributor for its second-level reseller.
	if _, _, err := f.svc.CreateApplicationLink(operator.Ctx, r1, lifecycle.LinkCustomer, now.Add(time.Hour), nil); err != nil {
		t.Fatalf("operator: %v", err)
	}
	if _, _, err := f.svc.CreateApplicationLink(f.D1.Ctx, r1, lifecycle.LinkCustomer, now.Add(time.Hour), nil); err != nil {
		t.Fatalf("distributor for its reseller: %v", err)
	}
	var audits int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM audit_log WHERE action = 'applink.create'`).Scan(&audits).Error; err != nil || audits != 3 {
		t.Fatalf("%d applink.create audit entries (%v)", audits, err)
	}
}

// Applying: only a personal account's own ADMIN; an unknown or revoked token
// is NOT_FOUND; an expired or used-up link, and an account bound elsewhere,
// frozen or in arrears, PRECONDITION_FAILED; a second pending application to
// the same partner a CONFLICT. Each application counts a use; refusals
// count none.
func TestApplyWithLink_Refusals(t *testing.T) {
	f := newFixture(t)
	r1 := f.R1.Account.ID
	l, token := f.link(t, f.R1, r1, lifecycle.LinkCustomer, 7*24*time.Hour, ptr(2))
	viewer := f.AddUser(t, f.P1.Account, models.RoleViewer)

	for _, c := range []struct {
		name  string
		ctx   context.Context
		token string
		code  apperr.Code
	}{
		{"the link's partner", f.R1.Ctx, token, apperr.Forbidden},
		{"another distributor", f.D2.Ctx, token, apperr.Forbidden},
		{"the platform", f.Platform.Ctx, token, apperr.Forbidden},
		{"the system", accounts.SystemContext(context.Background()), token, apperr.Forbidden},
		{"a viewer of the personal account", viewer.Ctx, token, apperr.Forbidden},
		{"no principal", context.Background(), token, apperr.Unauthenticated},
		{"an unknown token", f.P1.Ctx, "al_" + strings.Repeat("A", 43), apperr.NotFound},
		{"an invitation's token", f.P1.Ctx, "inv_" + strings.Repeat("A", 43), apperr.NotFound},
		{"a customer (bound to a partner)", f.C1.Ctx, token, apperr.PreconditionFailed},
	} {
		_, err := f.svc.ApplyWithLink(c.ctx, c.token)
		wantCode(t, c.name, err, c.code)
	}
	// The invitation's refusals: frozen, in arrears.
	for name, q := range map[string]string{
		"frozen":     `UPDATE accounts SET status = 'FROZEN', frozen_at = now(), frozen_reason = 'MANUAL' WHERE id = ?`,
		"in arrears": `UPDATE credit_balances SET in_arrears = true WHERE account_id = ?`,
	} {
		f.exec(t, q, f.P1.Account.ID)
		_, err := f.svc.ApplyWithLink(f.P1.Ctx, token)
		wantCode(t, name, err, apperr.PreconditionFailed)
		f.exec(t, `UPDATE accounts SET status = 'ACTIVE', frozen_at = NULL, frozen_reason = NULL WHERE id = ?`, f.P1.Account.ID)
		f.exec(t, `UPDATE credit_balances SET in_arrears = false WHERE account_id = ?`, f.P1.Account.ID)
	}
	if got := f.linkStatus(t, l.ID); got.Uses != 0 || got.Status != lifecycle.LinkUnused {
		t.Fatalf("after refusals: %+v", got)
	}

	app := f.apply(t, f.P1, token)
	if app.Status != lifecycle.ApplicationPending || app.PartnerID != r1 || app.ApplicantID != f.P1.Account.ID || app.LinkID != l.ID ||
		app.Kind != lifecycle.LinkCustomer || app.AppliedBy == nil || *app.AppliedBy != f.P1.User.ID {
		t.Fatalf("application %+v", app)
	}
	_, err := f.svc.ApplyWithLink(f.P1.Ctx, token)
	wantCode(t, "a second pending application", err, apperr.Conflict)
	// Through another link of the same partner, too.
	_, token2 := f.link(t, f.R1, r1, lifecycle.LinkCustomer, time.Hour, nil)
	_, err = f.svc.ApplyWithLink(f.P1.Ctx, token2)
	wantCode(t, "a second pending application through another link", err, apperr.Conflict)
	if got := f.linkStatus(t, l.ID); got.Uses != 1 || got.Status != lifecycle.LinkUsed || *got.Remaining() != 1 {
		t.Fatalf("after one application: %+v", got)
	}
	f.apply(t, f.P2, token)
	_, err = f.svc.ApplyWithLink(f.P3.Ctx, token)
	wantCode(t, "a used-up link", err, apperr.PreconditionFailed)
	if got := f.linkStatus(t, l.ID); got.Uses != 2 || got.Status != lifecycle.LinkUsed || *got.Remaining() != 0 {
		t.Fatalf("used up: %+v", got)
	}
	// The partner's operators are told of each application, with its link.
	if n := f.outbox(t, notify.EventAppLinkApplied, "partnerId", r1); n != 2 {
		t.Fatalf("%d applink.applied events for R1", n)
	}
	var url string
	if err := f.Store.DB.Raw(`SELECT payload->>'url' FROM outbox WHERE event_type = ? AND (payload->>'applicationId')::bigint = ?`,
		notify.EventAppLinkApplied, app.ID).Scan(&url).Error; err != nil || url != "https://partner.test/link-applications/"+app.GlobalID() {
		t.Fatalf("application URL %q (%v)", url, err)
	}

	// Expiry, with the clock.
	l3, token3 := f.link(t, f.S1, f.S1.Account.ID, lifecycle.LinkCustomer, time.Hour, nil)
	f.clock.Advance(time.Hour)
	_, err = f.svc.ApplyWithLink(f.P3.Ctx, token3)
	wantCode(t, "an expired link", err, apperr.PreconditionFailed)
	if got := f.linkStatus(t, l3.ID); got.Status != lifecycle.LinkExpired || got.Uses != 0 {
		t.Fatalf("expired: %+v", got)
	}
	// A used-up link stays USED past its expiry.
	f.clock.Advance(7 * 24 * time.Hour)
	if got := f.linkStatus(t, l.ID); got.Status != lifecycle.LinkUsed {
		t.Fatalf("used up and past its expiry: %+v", got)
	}
}

// A revoked link's token is unknown; revoking twice is a CONFLICT; another
// partner cannot revoke it. Applications already made stay pending.
func TestRevokeApplicationLink(t *testing.T) {
	f := newFixture(t)
	l, token := f.link(t, f.R1, f.R1.Account.ID, lifecycle.LinkCustomer, 24*time.Hour, nil)
	app := f.apply(t, f.P1, token)
	_, err := f.svc.RevokeApplicationLink(f.D2.Ctx, l.ID)
	wantCode(t, "another partner revokes", err, apperr.NotFound)
	_, err = f.svc.RevokeApplicationLink(f.AddUser(t, f.R1.Account, models.RoleFinance).Ctx, l.ID)
	wantCode(t, "finance revokes", err, apperr.Forbidden)
	got, err := f.svc.RevokeApplicationLink(f.R1.Ctx, l.ID)
	if err != nil || got.Status != lifecycle.LinkRevoked || got.RevokedAt == nil {
		t.Fatalf("revoke: %+v, %v", got, err)
	}
	_, err = f.svc.RevokeApplicationLink(f.D1.Ctx, l.ID)
	wantCode(t, "revoking twice", err, apperr.Conflict)
	_, err = f.svc.ApplyWithLink(f.P2.Ctx, token)
	wantCode(t, "applying through a revoked link", err, apperr.NotFound)
	_, err = f.svc.PreviewApplicationLink(f.P2.Ctx, token)
	wantCode(t, "previewing a revoked link", err, apperr.NotFound)
	if a, err := f.svc.LinkApplication(f.R1.Ctx, app.ID); err != nil || a.Status != lifecycle.ApplicationPending {
		t.Fatalf("the application made before the revocation: %+v, %v", a, err)
	}
}

// The holder of a token sees whose link it is before applying.
func TestPreviewApplicationLink(t *testing.T) {
	f := newFixture(t)
	_, token := f.link(t, f.D1, f.D1.Account.ID, lifecycle.LinkReseller, 24*time.Hour, ptr(1))
	p, err := f.svc.PreviewApplicationLink(f.P1.Ctx, token)
	if err != nil || p.PartnerName != "Distributor One" || p.PartnerKind != models.KindDistributor || p.Kind != lifecycle.LinkReseller || p.Status != lifecycle.LinkUnused {
		t.Fatalf("preview %+v, %v", p, err)
	}
	_, err = f.svc.PreviewApplicationLink(f.P1.Ctx, "al_nope")
	wantCode(t, "an unknown token", err, apperr.NotFound)
	_, err = f.svc.PreviewApplicationLink(context.Background(), token)
	wantCode(t, "no principal", err, apperr.Unauthenticated)
}

// Approval makes the applicant the partner's CUSTOMER exactly as an accepted
// invitation does: moved under it with its parent history, FROZEN as a new
// customer, its purchase guard following; the applicant's other pending
// applications are withdrawn; both sides are told.
func TestDecideApplication_ApproveMakesCustomer(t *testing.T) {
	f := newFixture(t)
	r1, p1 := f.R1.Account.ID, f.P1.Account.ID
	_, token := f.link(t, f.R1, r1, lifecycle.LinkCustomer, 24*time.Hour, nil)
	_, tokenS1 := f.link(t, f.S1, f.S1.Account.ID, lifecycle.LinkCustomer, 24*time.Hour, nil)
	app := f.apply(t, f.P1, token)
	other := f.apply(t, f.P1, tokenS1)

	_, err := f.svc.DecideApplication(f.D2.Ctx, app.ID, true, "")
	wantCode(t, "another partner approves", err, apperr.NotFound)
	_, err = f.svc.DecideApplication(f.S1.Ctx, app.ID, true, "")
	wantCode(t, "the applicant's other partner approves", err, apperr.NotFound)
	_, err = f.svc.DecideApplication(f.P1.Ctx, app.ID, true, "")
	wantCode(t, "the applicant approves its own", err, apperr.Forbidden)
	_, err = f.svc.DecideApplication(f.AddUser(t, f.R1.Account, models.RoleViewer).Ctx, app.ID, true, "")
	wantCode(t, "a viewer approves", err, apperr.Forbidden)
	_, err = f.svc.DecideApplication(f.R1.Ctx, 1<<40, true, "")
	wantCode(t, "an unknown application", err, apperr.NotFound)

	f.clock.Advance(time.Hour)
	got, err := f.svc.DecideApplication(f.AddUser(t, f.R1.Account, models.RoleOperator).Ctx, app.ID, true, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != lifecycle.ApplicationApproved || got.DecidedAt == nil || !got.DecidedAt.Equal(f.clock.Now()) || got.DecidedBy == nil {
		t.Fatalf("approved: %+v", got)
	}
	a := f.account(t, p1)
	if a.Kind != models.KindCustomer || a.ParentID == nil || *a.ParentID != r1 || a.Path != fmt.Sprintf("%s%d/", f.R1.Account.Path, p1) ||
		a.Status != models.StatusFrozen || a.FrozenReason == nil || *a.FrozenReason != models.FrozenNewCustomer {
		t.Fatalf("the approved account: %+v", a)
	}
	var open int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM account_parent_history WHERE account_id = ? AND valid_to IS NULL AND parent_id = ? AND valid_from = ?`,
		p1, r1, f.clock.Now()).Scan(&open).Error; err != nil || open != 1 {
		t.Fatalf("parent history: %d open rows under R1 (%v)", open, err)
	}
	var g struct {
		Kind, Status, FrozenReason string
	}
	if err := f.Store.DB.Raw(`SELECT kind, status, frozen_reason FROM purchase_guards WHERE customer_id = ?`, p1).Scan(&g).Error; err != nil ||
		g.Kind != "CUSTOMER" || g.Status != "FROZEN" || g.FrozenReason != "NEW_CUSTOMER" {
		t.Fatalf("purchase guard %+v (%v)", g, err)
	}
	d, err := guard.New(f.Store, guard.Options{Location: testkit.Shanghai}).Authorize(f.R1.Ctx, p1, models.Subscription, decimal.NewFromInt(1))
	if err != nil || d.Allowed || d.Reason != guard.ReasonAccountFrozen {
		t.Fatalf("the new customer buys: %+v, %v", d, err)
	}
	// The other pending application is withdrawn; the approved one cannot be decided again.
	if o, err := f.svc.LinkApplication(f.S1.Ctx, other.ID); err != nil || o.Status != lifecycle.ApplicationWithdrawn || o.Reason == "" {
		t.Fatalf("the other application: %+v, %v", o, err)
	}
	_, err = f.svc.DecideApplication(f.R1.Ctx, app.ID, false, "changed our mind")
	wantCode(t, "deciding twice", err, apperr.Conflict)
	_, err = f.svc.DecideApplication(f.S1.Ctx, other.ID, true, "")
	wantCode(t, "approving a withdrawn application", err, apperr.Conflict)

	if n := f.outbox(t, notify.EventAppLinkDecided, "applicantId", p1); n != 1 {
		t.Fatalf("%d applink.decided events", n)
	}
	var changed int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM outbox WHERE event_type = 'account.changed' AND payload->>'change' = 'associated'`).Scan(&changed).Error; err != nil || changed != 1 {
		t.Fatalf("%d account.changed (associated) events (%v)", changed, err)
	}
	var audits []string
	if err := f.Store.DB.Raw(`SELECT action FROM audit_log WHERE account_id = ? AND action LIKE 'applink.%' ORDER BY id`, p1).Scan(&audits).Error; err != nil ||
		strings.Join(audits, " ") != "applink.apply applink.apply applink.approve applink.withdraw" {
		t.Fatalf("audit of the applicant: %v (%v)", audits, err)
	}

	// The catalogue tells R1's operators (its admin) of the applications and
	// the applicant's users of the decision, in-site.
	ns, err := notify.New(f.Store, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ns.NotifyNow(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		eventType string
		account   int64
		user      int64
	}{
		{notify.EventAppLinkApplied, r1, f.R1.User.ID},
		{notify.EventAppLinkDecided, p1, f.P1.User.ID},
	} {
		var n int64
		if err := f.Store.DB.Raw(`SELECT count(*) FROM deliveries WHERE event_type = ? AND account_id = ? AND user_id = ? AND channel = 'IN_SITE'`,
			c.eventType, c.account, c.user).Scan(&n).Error; err != nil || n != 1 {
			t.Fatalf("%s: %d in-site deliveries to user %d (%v)", c.eventType, n, c.user, err)
		}
	}
}

// A rejection needs a reason, which the applicant reads; the account stays
// personal and may apply again (a new use); the applicant may withdraw.
func TestDecideApplication_RejectAndWithdraw(t *testing.T) {
	f := newFixture(t)
	l, token := f.link(t, f.R1, f.R1.Account.ID, lifecycle.LinkCustomer, 24*time.Hour, nil)
	app := f.apply(t, f.P1, token)
	for name, reason := range map[string]string{"no reason": "", "blank": "  \n ", "too long": strings.Repeat("理", 501)} {
		_, err := f.svc.DecideApplication(f.R1.Ctx, app.ID, false, reason)
		wantCode(t, name, err, apperr.Validation)
	}
	got, err := f.svc.DecideApplication(f.D1.Ctx, app.ID, false, " Outside our region. ")
	if err != nil || got.Status != lifecycle.ApplicationRejected || got.Reason != "Outside our region." {
		t.Fatalf("rejected: %+v, %v", got, err)
	}
	if a := f.account(t, f.P1.Account.ID); a.Kind != models.KindPersonal || a.Status != models.StatusActive {
		t.Fatalf("the rejected account: %+v", a)
	}
	var payload struct {
		Approved bool
		Reason   string
	}
	if err := f.Store.DB.Raw(`SELECT (payload->>'approved')::boolean AS approved, payload->>'reason' AS reason FROM outbox WHERE event_type = ?`,
		notify.EventAppLinkDecided).Scan(&payload).Error; err != nil || payload.Approved || payload.Reason != "Outside our region." {
		t.Fatalf("applink.decided %+v (%v)", payload, err)
	}
	// The applicant reads its own applications, the reason with them.
	mine, err := f.svc.LinkApplications(f.P1.Ctx, lifecycle.ApplicationFilter{ApplicantID: f.P1.Account.ID, Status: lifecycle.ApplicationRejected}, 10, 0)
	if err != nil || mine.Total != 1 || mine.Items[0].Reason != "Outside our region." {
		t.Fatalf("the applicant's rejected applications: %+v, %v", mine, err)
	}
	if partner, err := f.svc.ApplicationPartner(f.P1.Ctx, mine.Items[0]); err != nil || partner.ID != f.R1.Account.ID {
		t.Fatalf("the applicant sees the partner: %+v, %v", partner, err)
	}
	if _, err := f.svc.ApplicationPartner(f.P2.Ctx, mine.Items[0]); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("another personal account sees the partner: %v", err)
	}

	again := f.apply(t, f.P1, token)
	if got := f.linkStatus(t, l.ID); got.Uses != 2 {
		t.Fatalf("%d uses after applying again", got.Uses)
	}
	_, err = f.svc.WithdrawApplication(f.R1.Ctx, again.ID)
	wantCode(t, "the partner withdraws", err, apperr.Forbidden)
	_, err = f.svc.WithdrawApplication(f.P2.Ctx, again.ID)
	wantCode(t, "another account withdraws", err, apperr.NotFound)
	_, err = f.svc.WithdrawApplication(f.AddUser(t, f.P1.Account, models.RoleViewer).Ctx, again.ID)
	wantCode(t, "a viewer of the applicant withdraws", err, apperr.Forbidden)
	w, err := f.svc.WithdrawApplication(f.P1.Ctx, again.ID)
	if err != nil || w.Status != lifecycle.ApplicationWithdrawn {
		t.Fatalf("withdraw: %+v, %v", w, err)
	}
	_, err = f.svc.WithdrawApplication(f.P1.Ctx, again.ID)
	wantCode(t, "withdrawing twice", err, apperr.Conflict)
	_, err = f.svc.DecideApplication(f.R1.Ctx, again.ID, true, "")
	wantCode(t, "approving a withdrawn application", err, apperr.Conflict)
}

// Approval checks the refusals again: an applicant that fell into arrears
// is not moved and its application stays pending for the partner to
// reject; one that joined another partner through an invitation meanwhile
// had its pending applications withdrawn by the acceptance.
func TestDecideApplication_RechecksRefusals(t *testing.T) {
	f := newFixture(t)
	p1 := f.P1.Account.ID
	_, token := f.link(t, f.R1, f.R1.Account.ID, lifecycle.LinkCustomer, 24*time.Hour, nil)
	app := f.apply(t, f.P1, token)

	f.exec(t, `UPDATE credit_balances SET in_arrears = true WHERE account_id = ?`, p1)
	_, err := f.svc.DecideApplication(f.R1.Ctx, app.ID, true, "")
	wantCode(t, "approving an account in arrears", err, apperr.PreconditionFailed)
	f.exec(t, `UPDATE credit_balances SET in_arrears = false WHERE account_id = ?`, p1)

	// P1 accepts S1's invitation: it is bound elsewhere.
	if _, err := f.svc.Invite(f.S1.Ctx, f.P1.User.Email); err != nil {
		t.Fatal(err)
	}
	var inv struct{ Token string }
	if err := f.Store.DB.Raw(`SELECT payload->>'token' AS token FROM outbox WHERE event_type = ? ORDER BY id DESC LIMIT 1`,
		notify.EventInvitationSent).Scan(&inv).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Accept(f.P1.Ctx, inv.Token); err != nil {
		t.Fatal(err)
	}
	_, err = f.svc.DecideApplication(f.R1.Ctx, app.ID, true, "")
	wantCode(t, "approving an account bound elsewhere", err, apperr.Conflict)
	if a := f.account(t, p1); a.Kind != models.KindCustomer || *a.ParentID != f.S1.Account.ID {
		t.Fatalf("the account moved: %+v", a)
	}
	if got, err := f.svc.LinkApplication(f.R1.Ctx, app.ID); err != nil || got.Status != lifecycle.ApplicationWithdrawn || got.Reason == "" {
		t.Fatalf("after the invitation was accepted: %+v, %v", got, err)
	}
	// As a customer now, it cannot apply again.
	_, token2 := f.link(t, f.D2, f.D2.Account.ID, lifecycle.LinkCustomer, 24*time.Hour, nil)
	_, err = f.svc.ApplyWithLink(f.P1.Ctx, token2)
	wantCode(t, "a customer applies", err, apperr.PreconditionFailed)
}

// A distributor's RESELLER link makes an approved applicant its second-level
// reseller: ACTIVE, without a purchase guard (it buys nothing itself). An
// account with resources that are not released cannot become one.
func TestDecideApplication_ApproveMakesReseller(t *testing.T) {
	f := newFixture(t)
	d1, p1 := f.D1.Account.ID, f.P1.Account.ID
	_, token := f.link(t, f.D1, d1, lifecycle.LinkReseller, 24*time.Hour, nil)
	app := f.apply(t, f.P1, token)

	gs := guard.New(f.Store, guard.Options{Location: testkit.Shanghai})
	if _, err := gs.RegisterResource(f.Platform.Ctx, f.P2.Account.ID, "ecs", "i-1"); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.ApplyWithLink(f.P2.Ctx, token)
	wantCode(t, "an account with running resources applies as a reseller", err, apperr.PreconditionFailed)

	got, err := f.svc.DecideApplication(f.D1.Ctx, app.ID, true, "Welcome aboard")
	if err != nil || got.Status != lifecycle.ApplicationApproved || got.Reason != "Welcome aboard" {
		t.Fatalf("approve: %+v, %v", got, err)
	}
	a := f.account(t, p1)
	if a.Kind != models.KindReseller || *a.ParentID != d1 || a.Depth != 2 || a.Status != models.StatusActive {
		t.Fatalf("the new reseller: %+v", a)
	}
	var guards int64
	if err := f.Store.DB.Raw(`SELECT count(*) FROM purchase_guards WHERE customer_id = ?`, p1).Scan(&guards).Error; err != nil || guards != 0 {
		t.Fatalf("%d purchase guard rows of the reseller (%v)", guards, err)
	}
	_, err = gs.Authorize(f.D1.Ctx, p1, models.PayPerUse, decimal.NewFromInt(1))
	wantCode(t, "a reseller asks to buy", err, apperr.Validation)
	// The distributor now reaches it: its customers' link, for instance.
	if _, _, err := f.svc.CreateApplicationLink(f.D1.Ctx, p1, lifecycle.LinkCustomer, f.clock.Now().Add(time.Hour), nil); err != nil {
		t.Fatalf("a link of the new reseller: %v", err)
	}
}

// Link status transitions: UNUSED, USED after an application, EXPIRED past
// the expiry when never used up, REVOKED; pages are newest first with their
// status; a link's applications are its history; scope holds throughout.
func TestApplicationLinks_PagesStatusAndHistory(t *testing.T) {
	f := newFixture(t)
	r1 := f.R1.Account.ID
	unused, _ := f.link(t, f.R1, r1, lifecycle.LinkCustomer, time.Hour, nil)
	used, token := f.link(t, f.R1, r1, lifecycle.LinkCustomer, 2*time.Hour, ptr(5))
	revoked, _ := f.link(t, f.R1, r1, lifecycle.LinkCustomer, 2*time.Hour, nil)
	if _, err := f.svc.RevokeApplicationLink(f.R1.Ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	a1 := f.apply(t, f.P1, token)
	a2 := f.apply(t, f.P2, token)
	if _, err := f.svc.DecideApplication(f.R1.Ctx, a1.ID, true, ""); err != nil {
		t.Fatal(err)
	}

	statuses := func(by testkit.Party) map[int64]lifecycle.LinkStatus {
		t.Helper()
		out := map[int64]lifecycle.LinkStatus{}
		var after int64
		for {
			page, err := f.svc.ApplicationLinks(by.Ctx, r1, 2, after)
			if err != nil {
				t.Fatal(err)
			}
			if page.Total != 3 {
				t.Fatalf("total %d", page.Total)
			}
			for i, l := range page.Items {
				if i > 0 && l.ID >= page.Items[i-1].ID {
					t.Fatalf("not newest first: %d after %d", l.ID, page.Items[i-1].ID)
				}
				out[l.ID] = l.Status
			}
			if !page.More {
				return out
			}
			after = page.Items[len(page.Items)-1].ID
		}
	}
	want := map[int64]lifecycle.LinkStatus{unused.ID: lifecycle.LinkUnused, used.ID: lifecycle.LinkUsed, revoked.ID: lifecycle.LinkRevoked}
	for _, by := range []testkit.Party{f.R1, f.D1, f.Platform} {
		if got := statuses(by); len(got) != 3 || got[unused.ID] != want[unused.ID] || got[used.ID] != want[used.ID] || got[revoked.ID] != want[revoked.ID] {
			t.Fatalf("statuses seen by %s: %v", by.Account.Name, got)
		}
	}
	f.clock.Advance(3 * time.Hour)
	got := statuses(f.R1)
	if got[unused.ID] != lifecycle.LinkExpired || got[used.ID] != lifecycle.LinkExpired || got[revoked.ID] != lifecycle.LinkRevoked {
		t.Fatalf("statuses past the expiries: %v", got)
	}
	for name, by := range map[string]testkit.Party{"another distributor": f.D2, "a customer": f.C1, "the applicant": f.P2} {
		_, err := f.svc.ApplicationLinks(by.Ctx, r1, 10, 0)
		wantCode(t, name+" lists the links", err, apperr.NotFound)
		_, err = f.svc.ApplicationLink(by.Ctx, used.ID)
		wantCode(t, name+" reads a link", err, apperr.NotFound)
		_, err = f.svc.LinkApplications(by.Ctx, lifecycle.ApplicationFilter{LinkID: used.ID}, 10, 0)
		wantCode(t, name+" reads a link's history", err, apperr.NotFound)
	}
	_, err := f.svc.ApplicationLinks(f.R1.Ctx, r1, accounts.MaxPageSize+1, 0)
	wantCode(t, "a page too large", err, apperr.Validation)

	// The link's history: its applications, newest first.
	hist, err := f.svc.LinkApplications(f.R1.Ctx, lifecycle.ApplicationFilter{LinkID: used.ID}, 10, 0)
	if err != nil || hist.Total != 2 || hist.Items[0].ID != a2.ID || hist.Items[0].Status != lifecycle.ApplicationPending ||
		hist.Items[1].ID != a1.ID || hist.Items[1].Status != lifecycle.ApplicationApproved {
		t.Fatalf("history %+v, %v", hist, err)
	}
	pending, err := f.svc.LinkApplications(f.D1.Ctx, lifecycle.ApplicationFilter{PartnerID: r1, Status: lifecycle.ApplicationPending}, 10, 0)
	if err != nil || pending.Total != 1 || pending.Items[0].ID != a2.ID {
		t.Fatalf("pending applications to R1 seen by D1: %+v, %v", pending, err)
	}
	page, err := f.svc.LinkApplications(f.R1.Ctx, lifecycle.ApplicationFilter{PartnerID: r1}, 1, a2.ID)
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != a1.ID || page.More {
		t.Fatalf("second page: %+v, %v", page, err)
	}
	for name, flt := range map[string]lifecycle.ApplicationFilter{
		"no selector":    {},
		"two selectors":  {PartnerID: r1, LinkID: used.ID},
		"unknown status": {PartnerID: r1, Status: "LOST"},
	} {
		_, err := f.svc.LinkApplications(f.R1.Ctx, flt, 10, 0)
		wantCode(t, name, err, apperr.Validation)
	}
	_, err = f.svc.LinkApplications(f.D2.Ctx, lifecycle.ApplicationFilter{PartnerID: r1}, 10, 0)
	wantCode(t, "another distributor lists R1's applications", err, apperr.NotFound)
	_, err = f.svc.LinkApplications(f.D2.Ctx, lifecycle.ApplicationFilter{ApplicantID: f.P2.Account.ID}, 10, 0)
	wantCode(t, "another distributor lists P2's applications", err, apperr.NotFound)
	_, err = f.svc.LinkApplication(f.D2.Ctx, a2.ID)
	wantCode(t, "another distributor reads an application", err, apperr.NotFound)
	_, err = f.svc.LinkApplication(f.P1.Ctx, a2.ID)
	wantCode(t, "another applicant reads an application", err, apperr.NotFound)

	// P2 applied to S1 as well and was rejected there; once P2 is R1's
	// customer, R1 sees P2's application to itself, not the one to S1.
	_, tokenS1 := f.link(t, f.S1, f.S1.Account.ID, lifecycle.LinkCustomer, time.Hour, nil)
	toS1 := f.apply(t, f.P2, tokenS1)
	if _, err := f.svc.DecideApplication(f.S1.Ctx, toS1.ID, false, "Not now."); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.DecideApplication(f.R1.Ctx, a2.ID, true, ""); err != nil {
		t.Fatal(err)
	}
	seen, err := f.svc.LinkApplications(f.R1.Ctx, lifecycle.ApplicationFilter{ApplicantID: f.P2.Account.ID}, 10, 0)
	if err != nil || seen.Total != 1 || seen.Items[0].ID != a2.ID {
		t.Fatalf("R1's view of P2's applications: %+v, %v", seen, err)
	}
	own, err := f.svc.LinkApplications(f.P2.Ctx, lifecycle.ApplicationFilter{ApplicantID: f.P2.Account.ID}, 10, 0)
	if err != nil || own.Total != 2 {
		t.Fatalf("P2's own applications: %+v, %v", own, err)
	}
}

// Concurrent applications never exceed a link's usage limit, and of two
// partners approving the same applicant at once exactly one gets it.
func TestApplicationLinks_Concurrency(t *testing.T) {
	f := newFixture(t)
	l, token := f.link(t, f.R1, f.R1.Account.ID, lifecycle.LinkCustomer, time.Hour, ptr(3))
	applicants := make([]testkit.Party, 8)
	for i := range applicants {
		applicants[i] = f.Add(t, f.Platform.Account.ID, models.KindPersonal, fmt.Sprintf("Applicant %d", i))
	}
	errs := make(chan error, len(applicants))
	for _, p := range applicants {
		go func() {
			_, err := f.svc.ApplyWithLink(p.Ctx, token)
			errs <- err
		}()
	}
	ok := 0
	for range applicants {
		switch err := <-errs; apperr.CodeOf(err) {
		case "":
			ok++
		case apperr.PreconditionFailed:
		default:
			t.Fatalf("apply: %v", err)
		}
	}
	if got := f.linkStatus(t, l.ID); ok != 3 || got.Uses != 3 {
		t.Fatalf("%d applications went through, the link counts %d uses; its limit is 3", ok, got.Uses)
	}

	_, tokenS1 := f.link(t, f.S1, f.S1.Account.ID, lifecycle.LinkCustomer, time.Hour, nil)
	_, tokenD2 := f.link(t, f.D2, f.D2.Account.ID, lifecycle.LinkCustomer, time.Hour, nil)
	for round := range 5 {
		p := f.Add(t, f.Platform.Account.ID, models.KindPersonal, fmt.Sprintf("Contested %d", round))
		f.clock.Advance(time.Second)
		toS1, toD2 := f.apply(t, p, tokenS1), f.apply(t, p, tokenD2)
		type result struct {
			partner int64
			err     error
		}
		res := make(chan result, 2)
		for _, c := range []struct {
			by  testkit.Party
			app int64
		}{{f.S1, toS1.ID}, {f.D2, toD2.ID}} {
			go func() {
				_, err := f.svc.DecideApplication(c.by.Ctx, c.app, true, "")
				res <- result{c.by.Account.ID, err}
			}()
		}
		var winner int64
		for range 2 {
			r := <-res
			switch apperr.CodeOf(r.err) {
			case "":
				if winner != 0 {
					t.Fatal("both partners got the applicant")
				}
				winner = r.partner
			case apperr.Conflict, apperr.PreconditionFailed:
			default:
				t.Fatalf("approve: %v", r.err)
			}
		}
		if a := f.account(t, p.Account.ID); winner == 0 || a.Kind != models.KindCustomer || *a.ParentID != winner {
			t.Fatalf("round %d: winner %d, account %+v", round, winner, a)
		}
	}
}
