package accounts_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// count runs a SELECT count(*) ... and returns its value.
func count(t *testing.T, st *store.Store, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := st.DB.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func wantCode(t *testing.T, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: got %v (code %q), want %s", what, err, got, code)
	}
}

func ptr[T any](v T) *T { return &v }

// TestCreate_ParentRules creates every kind under every kind of parent as the
// platform: allowed exactly where DOMAIN.md §1 allows it.
func TestCreate_ParentRules(t *testing.T) {
	tr := testkit.NewTree(t)
	parents := map[models.AccountKind]testkit.Party{
		models.KindPlatform:    tr.Platform,
		models.KindDistributor: tr.D1,
		models.KindReseller:    tr.R1,
		models.KindCustomer:    tr.C1,
		models.KindPersonal:    tr.P1,
	}
	// DOMAIN.md §1, written out here rather than read from the code under test.
	allowed := map[[2]models.AccountKind]bool{
		{models.KindDistributor, models.KindPlatform}:    true,
		{models.KindReseller, models.KindPlatform}:       true,
		{models.KindReseller, models.KindDistributor}:    true,
		{models.KindCustomer, models.KindDistributor}:    true,
		{models.KindCustomer, models.KindReseller}:       true,
		{models.KindPersonal, models.KindPlatform}:       true,
		{models.KindPlatform, models.KindPlatform}:       false,
		{models.KindPlatform, models.KindDistributor}:    false,
		{models.KindDistributor, models.KindDistributor}: false,
	}
	for _, child := range models.AllAccountKinds {
		for _, pk := range models.AllAccountKinds {
			parent := parents[pk].Account
			t.Run(string(child)+"_under_"+string(pk), func(t *testing.T) {
				before := count(t, tr.Store, "SELECT count(*) FROM accounts")
				a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: child, ParentID: parent.ID, Name: "New " + string(child)})
				if !allowed[[2]models.AccountKind{child, pk}] {
					wantCode(t, "create", err, apperr.Validation)
					e, _ := apperr.As(err)
					wantField := "parentId"
					if child == models.KindPlatform {
						wantField = "kind"
					}
					if e.Field != wantField {
						t.Errorf("field = %q, want %q", e.Field, wantField)
					}
					if after := count(t, tr.Store, "SELECT count(*) FROM accounts"); after != before {
						t.Fatalf("a refused create changed the accounts: %d -> %d", before, after)
					}
					return
				}
				if err != nil {
					t.Fatalf("create: %v", err)
				}
				got, err := tr.Accounts.Get(tr.Platform.Ctx, a.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.Kind != child || got.ParentID == nil || *got.ParentID != parent.ID {
					t.Fatalf("created %+v, want a %s under %d", got, child, parent.ID)
				}
				if want := parent.Path + strconv.FormatInt(a.ID, 10) + "/"; got.Path != want || got.Depth != parent.Depth+1 {
					t.Fatalf("path %q depth %d, want %q depth %d", got.Path, got.Depth, want, parent.Depth+1)
				}
				if n := count(t, tr.Store, "SELECT count(*) FROM account_parent_history WHERE account_id = ? AND parent_id = ? AND valid_to IS NULL", a.ID, parent.ID); n != 1 {
					t.Fatalf("open parent history rows = %d, want 1", n)
				}
			})
		}
	}
}

func TestCreate_UnknownKindIsValidation(t *testing.T) {
	tr := testkit.NewTree(t)
	_, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: "GOD", ParentID: tr.Platform.Account.ID, Name: "x"})
	wantCode(t, "create GOD", err, apperr.Validation)
}

func TestCreate_NewCustomerIsFrozen(t *testing.T) {
	tr := testkit.NewTree(t)
	for _, p := range []testkit.Party{tr.C1, tr.C2, tr.C3, tr.C4, tr.C5} {
		a, err := tr.Accounts.Get(tr.Platform.Ctx, p.Account.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Status != models.StatusFrozen || a.FrozenAt == nil || a.FrozenReason == nil || *a.FrozenReason != models.FrozenNewCustomer {
			t.Errorf("%s: status %s frozenAt %v reason %v, want FROZEN since creation for NEW_CUSTOMER", a.Name, a.Status, a.FrozenAt, a.FrozenReason)
		}
	}
	for _, p := range []testkit.Party{tr.D1, tr.R1, tr.S1, tr.P1} {
		if p.Account.Status != models.StatusActive || p.Account.FrozenAt != nil || p.Account.FrozenReason != nil {
			t.Errorf("%s: status %s, want ACTIVE", p.Account.Name, p.Account.Status)
		}
	}
}

func TestCreate_PathAndTier(t *testing.T) {
	tr := testkit.NewTree(t)
	path := func(as ...testkit.Party) string {
		var b strings.Builder
		b.WriteString("/")
		for _, a := range as {
			fmt.Fprintf(&b, "%d/", a.Account.ID)
		}
		return b.String()
	}
	for _, c := range []struct {
		party testkit.Party
		path  string
		tier  int
	}{
		{tr.Platform, path(tr.Platform), 0},
		{tr.D1, path(tr.Platform, tr.D1), 1},
		{tr.S1, path(tr.Platform, tr.S1), 1},
		{tr.P1, path(tr.Platform, tr.P1), 1},
		{tr.R1, path(tr.Platform, tr.D1, tr.R1), 2},
		{tr.C3, path(tr.Platform, tr.D1, tr.C3), 2},
		{tr.C4, path(tr.Platform, tr.S1, tr.C4), 2},
		{tr.C1, path(tr.Platform, tr.D1, tr.R1, tr.C1), 3},
	} {
		a, err := tr.Accounts.Get(tr.Platform.Ctx, c.party.Account.ID)
		if err != nil {
			t.Fatal(err)
		}
		if a.Path != c.path || a.Tier() != c.tier {
			t.Errorf("%s: path %q tier %d, want %q tier %d", a.Name, a.Path, a.Tier(), c.path, c.tier)
		}
	}
}

func TestCreate_ValidatesFields(t *testing.T) {
	tr := testkit.NewTree(t)
	before := count(t, tr.Store, "SELECT count(*) FROM accounts")
	for name, in := range map[string]accounts.CreateInput{
		"empty name":      {Name: ""},
		"blank name":      {Name: "   "},
		"long name":       {Name: strings.Repeat("n", 201)},
		"bad email":       {Name: "x", Email: ptr("not-an-email")},
		"email with name": {Name: "x", Email: ptr("Bob <bob@example.com>")},
		"short phone":     {Name: "x", Phone: ptr("12345")},
		"phone no plus":   {Name: "x", Phone: ptr("8613800138000")},
		"unknown cur":     {Name: "x", Currency: "XYZ"},
		"lowercase cur":   {Name: "x", Currency: "cny"},
		"bad tag key":     {Name: "x", Tags: []accounts.Tag{{Key: "has space", Value: "v"}}},
	} {
		in.Kind, in.ParentID = models.KindReseller, tr.D1.Account.ID
		_, err := tr.Accounts.Create(tr.Platform.Ctx, in)
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: %v, want VALIDATION", name, err)
		}
	}
	if after := count(t, tr.Store, "SELECT count(*) FROM accounts"); after != before {
		t.Fatalf("refused creates changed the accounts: %d -> %d", before, after)
	}
	a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindReseller, ParentID: tr.D1.Account.ID,
		Name: "  Trimmed  ", Email: ptr("ops@trimmed.example"), Phone: ptr("+8613800138000"), Currency: "USD"})
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Trimmed" || a.Currency != "USD" || *a.Email != "ops@trimmed.example" || *a.Phone != "+8613800138000" {
		t.Fatalf("created %+v", a)
	}
	b, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindReseller, ParentID: tr.D1.Account.ID, Name: "Default currency"})
	if err != nil || b.Currency != "CNY" {
		t.Fatalf("default currency: %+v, %v", b, err)
	}
}

func TestCreate_Permissions(t *testing.T) {
	tr := testkit.NewTree(t)
	viewer := tr.AddUser(t, tr.D1.Account, models.RoleViewer)
	operator := tr.AddUser(t, tr.D1.Account, models.RoleOperator)
	in := accounts.CreateInput{Kind: models.KindCustomer, ParentID: tr.R1.Account.ID, Name: "By viewer"}
	_, err := tr.Accounts.Create(viewer.Ctx, in)
	wantCode(t, "viewer in scope", err, apperr.Forbidden)
	in.ParentID = tr.D2.Account.ID
	_, err = tr.Accounts.Create(viewer.Ctx, in)
	wantCode(t, "viewer out of scope", err, apperr.NotFound)
	_, err = tr.Accounts.Create(operator.Ctx, in)
	wantCode(t, "operator out of scope", err, apperr.NotFound)
	_, err = tr.Accounts.Create(context.Background(), in)
	wantCode(t, "no principal", err, apperr.Unauthenticated)
	in.ParentID = tr.R1.Account.ID
	if _, err := tr.Accounts.Create(operator.Ctx, in); err != nil {
		t.Fatalf("operator in scope: %v", err)
	}
}

func TestDatabase_RefusesAWrongParentEvenThroughRawSQL(t *testing.T) {
	tr := testkit.NewTree(t)
	before := count(t, tr.Store, "SELECT count(*) FROM accounts")
	err := tr.Store.DB.Exec(`INSERT INTO accounts (kind, parent_id, path, depth, name) VALUES ('CUSTOMER', ?, '', 0, 'Raw customer')`,
		tr.Platform.Account.ID).Error
	if err == nil {
		t.Fatal("the database took a CUSTOMER under the PLATFORM")
	}
	if store.PgCode(err) != "23514" || store.PgConstraint(err) != "accounts_parent_kind" {
		t.Fatalf("insert: %v (code %s, constraint %s), want check_violation on accounts_parent_kind", err, store.PgCode(err), store.PgConstraint(err))
	}
	err = tr.Store.DB.Exec(`UPDATE accounts SET parent_id = ? WHERE id = ?`, tr.C5.Account.ID, tr.C1.Account.ID).Error
	if store.PgConstraint(err) != "accounts_parent_kind" {
		t.Fatalf("moving a customer under a customer: %v, want accounts_parent_kind", err)
	}
	if after := count(t, tr.Store, "SELECT count(*) FROM accounts"); after != before {
		t.Fatalf("accounts %d -> %d", before, after)
	}
	// path and depth are derived by the trigger, never taken from the writer.
	var row struct {
		Path  string
		Depth int
	}
	if err := tr.Store.DB.Raw(`INSERT INTO accounts (kind, parent_id, path, depth, name) VALUES ('CUSTOMER', ?, '/forged/', 9, 'Raw ok') RETURNING path, depth`,
		tr.R2.Account.ID).Scan(&row).Error; err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(row.Path, tr.R2.Account.Path) || row.Depth != tr.R2.Account.Depth+1 {
		t.Fatalf("raw insert got path %q depth %d, want under %q at depth %d", row.Path, row.Depth, tr.R2.Account.Path, tr.R2.Account.Depth+1)
	}
}

func TestDatabase_OnePlatformOnly(t *testing.T) {
	tr := testkit.NewTree(t)
	err := tr.Store.DB.Exec(`INSERT INTO accounts (kind, path, depth, name) VALUES ('PLATFORM', '', 0, 'Second platform')`).Error
	if store.PgCode(err) != "23505" || store.PgConstraint(err) != "accounts_one_platform" {
		t.Fatalf("second platform: %v, want a unique violation of accounts_one_platform", err)
	}
	if n := count(t, tr.Store, "SELECT count(*) FROM accounts WHERE kind = 'PLATFORM'"); n != 1 {
		t.Fatalf("%d platforms", n)
	}
}

func TestScope_PartnerSeesItsSubtreeOnly(t *testing.T) {
	tr := testkit.NewTree(t)
	_, missing := tr.Accounts.Get(tr.Platform.Ctx, 1<<40)
	wantCode(t, "missing id", missing, apperr.NotFound)
	check := func(who testkit.Party, visible, hidden []testkit.Party) {
		t.Helper()
		for _, p := range visible {
			if a, err := tr.Accounts.Get(who.Ctx, p.Account.ID); err != nil || a.ID != p.Account.ID {
				t.Errorf("%s cannot see %s: %v", who.Account.Name, p.Account.Name, err)
			}
		}
		for _, p := range hidden {
			_, err := tr.Accounts.Get(who.Ctx, p.Account.ID)
			if apperr.CodeOf(err) != apperr.NotFound {
				t.Errorf("%s gets %s: %v, want NOT_FOUND", who.Account.Name, p.Account.Name, err)
			} else if err.Error() != missing.Error() {
				t.Errorf("%s gets %s: %q differs from a missing account's %q", who.Account.Name, p.Account.Name, err, missing)
			}
		}
		ids := []int64{}
		for _, p := range append(append([]testkit.Party{}, visible...), hidden...) {
			ids = append(ids, p.Account.ID)
		}
		m, err := tr.Accounts.GetMany(who.Ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != len(visible) {
			t.Errorf("%s: GetMany returned %d accounts, want %d", who.Account.Name, len(m), len(visible))
		}
		for _, p := range hidden {
			if _, ok := m[p.Account.ID]; ok {
				t.Errorf("%s: GetMany returned %s", who.Account.Name, p.Account.Name)
			}
		}
	}
	all := []testkit.Party{tr.Platform, tr.D1, tr.R1, tr.R2, tr.C1, tr.C2, tr.C3, tr.S1, tr.C4, tr.D2, tr.C5, tr.P1}
	check(tr.D1, []testkit.Party{tr.D1, tr.R1, tr.R2, tr.C1, tr.C2, tr.C3}, []testkit.Party{tr.Platform, tr.D2, tr.C5, tr.S1, tr.C4, tr.P1})
	check(tr.R1, []testkit.Party{tr.R1, tr.C1}, []testkit.Party{tr.D1, tr.R2, tr.C2, tr.C3, tr.Platform})
	check(tr.C1, []testkit.Party{tr.C1}, []testkit.Party{tr.R1, tr.D1, tr.C2, tr.Platform})
	check(tr.P1, []testkit.Party{tr.P1}, []testkit.Party{tr.Platform, tr.D1})
	check(tr.Platform, all, nil)

	me, err := tr.Accounts.Me(tr.C1.Ctx)
	if err != nil || me.ID != tr.C1.Account.ID {
		t.Fatalf("Me as C1 = %v, %v", me, err)
	}
	_, err = tr.Accounts.Get(context.Background(), tr.C1.Account.ID)
	wantCode(t, "no principal", err, apperr.Unauthenticated)
}

func TestChildrenPages_KeysetAndFilters(t *testing.T) {
	tr := testkit.NewTree(t)
	dx := tr.Add(t, tr.Platform.Account.ID, models.KindDistributor, "Distributor X")
	kids := []struct {
		kind models.AccountKind
		name string
	}{
		{models.KindReseller, "Alpha Reseller"},
		{models.KindCustomer, "Beta 100% Customer"},
		{models.KindCustomer, "Gamma_Under"},
		{models.KindCustomer, "GammaXUnder"},
		{models.KindReseller, "delta RESELLER"},
		{models.KindCustomer, "Epsilon 100 Customer"},
		{models.KindCustomer, `Zeta\Back`},
	}
	ids := make([]int64, len(kids))
	for i, k := range kids {
		a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: k.kind, ParentID: dx.Account.ID, Name: k.name})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = a.ID
	}
	pid := dx.Account.ID
	page := func(ctx context.Context, f accounts.ChildFilter, first int, after int64) *accounts.Page {
		t.Helper()
		m, err := tr.Accounts.ChildrenPages(ctx, []int64{pid}, f, first, after)
		if err != nil {
			t.Fatal(err)
		}
		return m[pid]
	}
	idsOf := func(p *accounts.Page) []int64 {
		out := []int64{}
		for _, a := range p.Accounts {
			out = append(out, a.ID)
		}
		return out
	}
	eq := func(what string, got, want []int64) {
		t.Helper()
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: %v, want %v", what, got, want)
		}
	}

	var after int64
	var seen []int64
	for i, want := range []struct {
		n    int
		next bool
	}{{3, true}, {3, true}, {1, false}} {
		p := page(tr.Platform.Ctx, accounts.ChildFilter{}, 3, after)
		if len(p.Accounts) != want.n || p.HasNext != want.next {
			t.Fatalf("page %d: %d accounts hasNext %v, want %d %v", i+1, len(p.Accounts), p.HasNext, want.n, want.next)
		}
		seen = append(seen, idsOf(p)...)
		after = p.Accounts[len(p.Accounts)-1].ID
	}
	eq("all pages", seen, ids)
	if p := page(tr.Platform.Ctx, accounts.ChildFilter{}, 7, 0); len(p.Accounts) != 7 || p.HasNext {
		t.Errorf("exactly 7 of 7: %d hasNext %v", len(p.Accounts), p.HasNext)
	}
	if p := page(tr.Platform.Ctx, accounts.ChildFilter{}, 3, ids[6]); len(p.Accounts) != 0 || p.HasNext {
		t.Errorf("after the last: %d hasNext %v", len(p.Accounts), p.HasNext)
	}

	for name, c := range map[string]struct {
		f    accounts.ChildFilter
		want []int64
	}{
		"kind reseller":        {accounts.ChildFilter{Kind: models.KindReseller}, []int64{ids[0], ids[4]}},
		"status frozen":        {accounts.ChildFilter{Status: models.StatusFrozen}, []int64{ids[1], ids[2], ids[3], ids[5], ids[6]}},
		"status active":        {accounts.ChildFilter{Status: models.StatusActive}, []int64{ids[0], ids[4]}},
		"search case":          {accounts.ChildFilter{Search: "reseller"}, []int64{ids[0], ids[4]}},
		"search % literal":     {accounts.ChildFilter{Search: "%"}, []int64{ids[1]}},
		"search 100% literal":  {accounts.ChildFilter{Search: "100%"}, []int64{ids[1]}},
		"search _ literal":     {accounts.ChildFilter{Search: "_"}, []int64{ids[2]}},
		"search a_u literal":   {accounts.ChildFilter{Search: "a_u"}, []int64{ids[2]}},
		"search \\ literal":    {accounts.ChildFilter{Search: `\`}, []int64{ids[6]}},
		"search 100":           {accounts.ChildFilter{Search: "100"}, []int64{ids[1], ids[5]}},
		"kind+search":          {accounts.ChildFilter{Kind: models.KindCustomer, Search: "gamma"}, []int64{ids[2], ids[3]}},
		"kind+status disjoint": {accounts.ChildFilter{Kind: models.KindReseller, Status: models.StatusFrozen}, []int64{}},
		"no match":             {accounts.ChildFilter{Search: "nothing"}, []int64{}},
	} {
		eq(name, idsOf(page(tr.Platform.Ctx, c.f, 50, 0)), c.want)
		n, err := tr.Accounts.CountChildren(tr.Platform.Ctx, []int64{pid}, c.f)
		if err != nil {
			t.Fatal(err)
		}
		if n[pid] != len(c.want) {
			t.Errorf("%s: CountChildren = %d, want %d", name, n[pid], len(c.want))
		}
		if k := accounts.ChildFilterFromKey(c.f.Key()); k != c.f {
			t.Errorf("%s: filter key does not round-trip: %+v", name, k)
		}
	}
	// A filtered listing pages too.
	p := page(tr.Platform.Ctx, accounts.ChildFilter{Status: models.StatusFrozen}, 2, 0)
	eq("frozen page 1", idsOf(p), []int64{ids[1], ids[2]})
	if !p.HasNext {
		t.Error("frozen page 1 has no next")
	}
	p = page(tr.Platform.Ctx, accounts.ChildFilter{Status: models.StatusFrozen}, 2, ids[2])
	eq("frozen page 2", idsOf(p), []int64{ids[3], ids[5]})

	// Several parents in one call, each paged on its own.
	m, err := tr.Accounts.ChildrenPages(tr.Platform.Ctx, []int64{pid, tr.D1.Account.ID, tr.C1.Account.ID}, accounts.ChildFilter{}, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	eq("dx of three", idsOf(m[pid]), ids[:2])
	eq("d1 of three", idsOf(m[tr.D1.Account.ID]), []int64{tr.R1.Account.ID, tr.R2.Account.ID})
	if !m[pid].HasNext || !m[tr.D1.Account.ID].HasNext || m[tr.C1.Account.ID] == nil || len(m[tr.C1.Account.ID].Accounts) != 0 || m[tr.C1.Account.ID].HasNext {
		t.Errorf("batched pages: %+v %+v %+v", m[pid], m[tr.D1.Account.ID], m[tr.C1.Account.ID])
	}
	counts, err := tr.Accounts.CountChildren(tr.Platform.Ctx, []int64{pid, tr.D1.Account.ID, tr.C1.Account.ID}, accounts.ChildFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if counts[pid] != 7 || counts[tr.D1.Account.ID] != 3 || counts[tr.C1.Account.ID] != 0 {
		t.Errorf("CountChildren = %v", counts)
	}

	// The scope applies to the listing itself.
	m, err = tr.Accounts.ChildrenPages(tr.D1.Ctx, []int64{tr.D2.Account.ID, tr.D1.Account.ID, tr.Platform.Account.ID}, accounts.ChildFilter{}, 50, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(m[tr.D2.Account.ID].Accounts) != 0 || len(m[tr.Platform.Account.ID].Accounts) != 1 || len(m[tr.D1.Account.ID].Accounts) != 3 {
		t.Errorf("D1 lists D2's children %d, the platform's %d (only D1 itself), its own %d",
			len(m[tr.D2.Account.ID].Accounts), len(m[tr.Platform.Account.ID].Accounts), len(m[tr.D1.Account.ID].Accounts))
	}
	counts, err = tr.Accounts.CountChildren(tr.D1.Ctx, []int64{tr.D2.Account.ID}, accounts.ChildFilter{})
	if err != nil || counts[tr.D2.Account.ID] != 0 {
		t.Errorf("D1 counts D2's children: %v, %v", counts, err)
	}

	for _, first := range []int{-1, accounts.MaxPageSize + 1} {
		_, err := tr.Accounts.ChildrenPages(tr.Platform.Ctx, []int64{pid}, accounts.ChildFilter{}, first, 0)
		wantCode(t, fmt.Sprintf("first=%d", first), err, apperr.Validation)
	}
}

func TestBootstrap_TwiceGivesTwoTokensOnePlatformOneUser(t *testing.T) {
	st := testkit.NewStore(t, store.Options{})
	svc := accounts.New(st)
	ctx := context.Background()
	t1, err := svc.Bootstrap(ctx, "root@platform.test", "The Platform")
	if err != nil {
		t.Fatal(err)
	}
	t2, err := svc.Bootstrap(ctx, "root@platform.test", "Another Name")
	if err != nil {
		t.Fatal(err)
	}
	if t1 == t2 || !strings.HasPrefix(t1, accounts.TokenPrefix) {
		t.Fatalf("tokens %q and %q", t1, t2)
	}
	if n := count(t, st, "SELECT count(*) FROM accounts"); n != 1 {
		t.Fatalf("%d accounts, want 1", n)
	}
	if n := count(t, st, "SELECT count(*) FROM users"); n != 1 {
		t.Fatalf("%d users, want 1", n)
	}
	if n := count(t, st, "SELECT count(*) FROM api_tokens"); n != 2 {
		t.Fatalf("%d tokens, want 2", n)
	}
	var hashes int64
	if err := st.DB.Raw("SELECT count(*) FROM api_tokens WHERE hash = sha256(convert_to(?, 'UTF8'))", t1).Scan(&hashes).Error; err != nil || hashes != 1 {
		t.Fatalf("token 1 is not stored as its SHA-256 (%d rows, %v)", hashes, err)
	}
	if n := count(t, st, "SELECT count(*) FROM api_tokens WHERE position(convert_to(?, 'UTF8') in hash) > 0", t1); n != 0 {
		t.Fatal("the token itself is stored")
	}
	p1, err := svc.Authenticate(ctx, t1)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := svc.Authenticate(ctx, t2)
	if err != nil {
		t.Fatal(err)
	}
	if p1.UserID != p2.UserID || p1.AccountKind != models.KindPlatform || !p1.Has(models.RoleAdmin) || !p1.Can(accounts.PermReview) {
		t.Fatalf("principals %+v %+v", p1, p2)
	}
	plat, err := svc.Platform(ctx)
	if err != nil || plat.Name != "The Platform" || plat.Path != "/"+strconv.FormatInt(plat.ID, 10)+"/" || plat.Depth != 0 {
		t.Fatalf("platform %+v, %v", plat, err)
	}

	_, err = svc.Bootstrap(ctx, "not an email", "")
	wantCode(t, "bad email", err, apperr.Validation)
}

func TestBootstrap_RefusesAnotherAccountsUser(t *testing.T) {
	tr := testkit.NewTree(t)
	_, err := tr.Accounts.Bootstrap(context.Background(), tr.D1.User.Email, "")
	wantCode(t, "bootstrap as D1's user", err, apperr.Conflict)
	if n := count(t, tr.Store, "SELECT count(*) FROM api_tokens WHERE user_id = ?", tr.D1.User.ID); n != 1 {
		t.Fatalf("D1's user has %d tokens, want 1", n)
	}
}

func TestAuthenticate_RefusesRevokedExpiredAndUnknownTokens(t *testing.T) {
	start := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	clk := storetest.NewClock(start)
	tr := testkit.NewTreeOn(t, testkit.NewStore(t, store.Options{Clock: clk}))
	ctx := context.Background()

	tok, rec, err := tr.Accounts.CreateToken(tr.D1.Ctx, tr.D1.User.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ExpiresAt == nil || !rec.ExpiresAt.Equal(start.Add(time.Hour)) {
		t.Fatalf("expiresAt %v, want %v", rec.ExpiresAt, start.Add(time.Hour))
	}
	p, err := tr.Accounts.Authenticate(ctx, tok)
	if err != nil || p.UserID != tr.D1.User.ID || p.AccountID != tr.D1.Account.ID || p.AccountPath != tr.D1.Account.Path {
		t.Fatalf("fresh token: %+v, %v", p, err)
	}
	clk.Set(start.Add(time.Hour - time.Second))
	if _, err := tr.Accounts.Authenticate(ctx, tok); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clk.Set(start.Add(time.Hour))
	_, err = tr.Accounts.Authenticate(ctx, tok)
	wantCode(t, "at expiry", err, apperr.Unauthenticated)
	clk.Set(start.Add(48 * time.Hour))
	_, err = tr.Accounts.Authenticate(ctx, tok)
	wantCode(t, "long after expiry", err, apperr.Unauthenticated)
	// The fixture's tokens do not expire.
	if _, err := tr.Accounts.Authenticate(ctx, tr.D1.Token); err != nil {
		t.Fatalf("token without expiry: %v", err)
	}

	tok2, rec2, err := tr.Accounts.CreateToken(tr.D1.Ctx, tr.R1.User.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.Authenticate(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.RevokeToken(tr.D1.Ctx, rec2.ID); err != nil {
		t.Fatal(err)
	}
	_, err = tr.Accounts.Authenticate(ctx, tok2)
	wantCode(t, "revoked", err, apperr.Unauthenticated)
	if _, err := tr.Accounts.RevokeToken(tr.D1.Ctx, rec2.ID); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	_, err = tr.Accounts.RevokeToken(tr.D2.Ctx, rec2.ID)
	wantCode(t, "revoke out of scope", err, apperr.NotFound)

	for _, bad := range []string{"", "pd_", "pd_nope", "nope", tr.D1.Token + "x", "pd_" + strings.Repeat("a", 200)} {
		_, err := tr.Accounts.Authenticate(ctx, bad)
		wantCode(t, fmt.Sprintf("token %.20q", bad), err, apperr.Unauthenticated)
	}
}

func TestCreateToken_Rules(t *testing.T) {
	tr := testkit.NewTree(t)
	viewer := tr.AddUser(t, tr.D1.Account, models.RoleViewer)
	if _, _, err := tr.Accounts.CreateToken(viewer.Ctx, viewer.User.ID, 0); err != nil {
		t.Fatalf("a user makes its own token: %v", err)
	}
	_, _, err := tr.Accounts.CreateToken(viewer.Ctx, tr.D1.User.ID, 0)
	wantCode(t, "viewer for another user", err, apperr.Forbidden)
	_, _, err = tr.Accounts.CreateToken(tr.D1.Ctx, tr.D2.User.ID, 0)
	wantCode(t, "out of scope", err, apperr.NotFound)
	_, _, err = tr.Accounts.CreateToken(tr.D1.Ctx, tr.R1.User.ID, -time.Hour)
	wantCode(t, "negative ttl", err, apperr.Validation)
}

func TestCreateUser_Rules(t *testing.T) {
	tr := testkit.NewTree(t)
	before := count(t, tr.Store, "SELECT count(*) FROM users")
	_, err := tr.Accounts.CreateUser(tr.D1.Ctx, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Email: strings.ToUpper(tr.C1.User.Email), Roles: []models.Role{models.RoleViewer}})
	wantCode(t, "duplicate email (any case)", err, apperr.Conflict)
	_, err = tr.Accounts.CreateUser(tr.D1.Ctx, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Email: "rev@r1.example", Roles: []models.Role{models.RoleReviewer}})
	wantCode(t, "REVIEWER outside the platform", err, apperr.Validation)
	_, err = tr.Accounts.CreateUser(tr.D1.Ctx, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Email: "x@r1.example", Roles: []models.Role{"GOD"}})
	wantCode(t, "unknown role", err, apperr.Validation)
	_, err = tr.Accounts.CreateUser(tr.D1.Ctx, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Email: "x@r1.example"})
	wantCode(t, "no role", err, apperr.Validation)
	_, err = tr.Accounts.CreateUser(tr.D1.Ctx, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Email: "x@r1.example", Roles: []models.Role{models.RoleViewer}, Locale: "fr-FR"})
	wantCode(t, "unknown locale", err, apperr.Validation)
	_, err = tr.Accounts.CreateUser(tr.D1.Ctx, accounts.CreateUserInput{AccountID: tr.D2.Account.ID, Email: "x@d2.example", Roles: []models.Role{models.RoleViewer}})
	wantCode(t, "out of scope", err, apperr.NotFound)
	operator := tr.AddUser(t, tr.D1.Account, models.RoleOperator)
	before++ // the operator
	_, err = tr.Accounts.CreateUser(operator.Ctx, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Email: "x@r1.example", Roles: []models.Role{models.RoleViewer}})
	wantCode(t, "operator", err, apperr.Forbidden)
	if after := count(t, tr.Store, "SELECT count(*) FROM users"); after != before {
		t.Fatalf("users %d -> %d", before, after)
	}
	u, err := tr.Accounts.CreateUser(tr.Platform.Ctx, accounts.CreateUserInput{AccountID: tr.Platform.Account.ID, Email: "rev@platform.test",
		Roles: []models.Role{models.RoleReviewer, models.RoleReviewer, models.RoleViewer}, Locale: "zh-CN"})
	if err != nil {
		t.Fatalf("REVIEWER on the platform: %v", err)
	}
	if len(u.Roles) != 2 || u.Locale != models.LocaleZhCN {
		t.Fatalf("user %+v", u)
	}
}

func TestAudit_EveryCreateIsRecorded(t *testing.T) {
	tr := testkit.NewTree(t)
	root := tr.Platform.Ctx
	p, _ := accounts.PrincipalFrom(root)
	for _, party := range []testkit.Party{tr.D1, tr.R1, tr.R2, tr.C1, tr.C2, tr.C3, tr.S1, tr.C4, tr.D2, tr.C5, tr.P1} {
		a := party.Account
		var list []models.AuditEntry
		if err := tr.Store.DB.Where("account_id = ? AND action = 'account.create'", a.ID).Find(&list).Error; err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 {
			t.Errorf("%s: %d account.create entries, want 1", a.Name, len(list))
			continue
		}
		e := list[0]
		if e.Before != nil || e.ActorUserID == nil || *e.ActorUserID != p.UserID || e.Actor != fmt.Sprintf("user:%d %s", p.UserID, p.Email) {
			t.Errorf("%s: entry %+v", a.Name, e)
		}
		var after map[string]any
		if err := json.Unmarshal(e.After, &after); err != nil {
			t.Fatalf("%s: after %s: %v", a.Name, e.After, err)
		}
		if after["kind"] != string(a.Kind) || after["name"] != a.Name || after["currency"] != "CNY" || after["status"] != string(a.Status) ||
			after["parentId"] != float64(*a.ParentID) {
			t.Errorf("%s: after %s", a.Name, e.After)
		}
	}
	var boot []models.AuditEntry
	if err := tr.Store.DB.Where("account_id = ? AND action = 'account.create'", tr.Platform.Account.ID).Find(&boot).Error; err != nil {
		t.Fatal(err)
	}
	if len(boot) != 1 || boot[0].Actor != "system" || boot[0].ActorUserID != nil {
		t.Errorf("bootstrap's entry: %+v", boot)
	}
}

func TestAudit_IsAppendOnly(t *testing.T) {
	tr := testkit.NewTree(t)
	var e models.AuditEntry
	if err := tr.Store.DB.Where("account_id = ?", tr.C1.Account.ID).Order("id").First(&e).Error; err != nil {
		t.Fatal(err)
	}
	n := count(t, tr.Store, "SELECT count(*) FROM audit_log")
	if err := tr.Store.DB.Exec("UPDATE audit_log SET action = 'forged' WHERE id = ?", e.ID).Error; err == nil || store.PgCode(err) != "42501" {
		t.Fatalf("UPDATE audit_log: %v, want insufficient_privilege", err)
	}
	if err := tr.Store.DB.Exec("DELETE FROM audit_log WHERE id = ?", e.ID).Error; err == nil || store.PgCode(err) != "42501" {
		t.Fatalf("DELETE FROM audit_log: %v, want insufficient_privilege", err)
	}
	if err := tr.Store.DB.Exec("DELETE FROM audit_log").Error; err == nil {
		t.Fatal("DELETE FROM audit_log succeeded")
	}
	var again models.AuditEntry
	if err := tr.Store.DB.Where("id = ?", e.ID).First(&again).Error; err != nil || again.Action != e.Action {
		t.Fatalf("entry after the attempts: %+v, %v", again, err)
	}
	if m := count(t, tr.Store, "SELECT count(*) FROM audit_log"); m != n {
		t.Fatalf("audit_log %d -> %d rows", n, m)
	}
}

func TestAuditPage_ScopeDescendantsAndPaging(t *testing.T) {
	tr := testkit.NewTree(t)
	all, more, err := tr.Accounts.AuditPage(tr.D1.Ctx, tr.D1.Account.ID, true, accounts.MaxPageSize, 0)
	if err != nil || more {
		t.Fatalf("AuditPage: more=%v, %v", more, err)
	}
	byAccount := map[int64]int{}
	for i, e := range all {
		if e.AccountID != nil {
			byAccount[*e.AccountID]++
		}
		if i > 0 && all[i-1].ID <= e.ID {
			t.Fatalf("entries not newest first: %d then %d", all[i-1].ID, e.ID)
		}
	}
	for _, p := range []testkit.Party{tr.D1, tr.R1, tr.C1, tr.C3} {
		if byAccount[p.Account.ID] == 0 {
			t.Errorf("D1's audit with descendants has nothing about %s", p.Account.Name)
		}
	}
	for _, p := range []testkit.Party{tr.C5, tr.D2, tr.Platform, tr.S1, tr.P1} {
		if byAccount[p.Account.ID] != 0 {
			t.Errorf("D1's audit with descendants shows %d entries about %s", byAccount[p.Account.ID], p.Account.Name)
		}
	}
	// account.create, user.create and token.create for C1.
	if byAccount[tr.C1.Account.ID] != 3 {
		t.Errorf("C1 entries = %d, want 3", byAccount[tr.C1.Account.ID])
	}

	own, _, err := tr.Accounts.AuditPage(tr.D1.Ctx, tr.D1.Account.ID, false, accounts.MaxPageSize, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range own {
		if e.AccountID == nil || *e.AccountID != tr.D1.Account.ID {
			t.Fatalf("D1's own audit has an entry about %v", e.AccountID)
		}
	}
	if len(own) != 3 {
		t.Errorf("D1's own entries = %d, want 3", len(own))
	}

	// Keyset pages of 4 walk the same entries.
	var walked []int64
	var before int64
	for {
		page, more, err := tr.Accounts.AuditPage(tr.D1.Ctx, tr.D1.Account.ID, true, 4, before)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > 4 || (more && len(page) != 4) {
			t.Fatalf("page of %d, more=%v", len(page), more)
		}
		for _, e := range page {
			walked = append(walked, e.ID)
		}
		if !more {
			break
		}
		before = page[len(page)-1].ID
	}
	if len(walked) != len(all) {
		t.Fatalf("paged walk saw %d entries, one page %d", len(walked), len(all))
	}
	for i := range all {
		if walked[i] != all[i].ID {
			t.Fatalf("paged walk differs at %d", i)
		}
	}

	// C1's admin reads its own entries, not its parent's.
	if _, _, err := tr.Accounts.AuditPage(tr.C1.Ctx, tr.C1.Account.ID, true, 10, 0); err != nil {
		t.Fatalf("C1 reads its own audit: %v", err)
	}
	_, _, err = tr.Accounts.AuditPage(tr.C1.Ctx, tr.R1.Account.ID, false, 10, 0)
	wantCode(t, "C1 reads R1", err, apperr.NotFound)
	_, _, err = tr.Accounts.AuditPage(tr.D1.Ctx, tr.D2.Account.ID, true, 10, 0)
	wantCode(t, "D1 reads D2", err, apperr.NotFound)
	_, _, err = tr.Accounts.AuditPage(tr.D1.Ctx, tr.D1.Account.ID, true, accounts.MaxPageSize+1, 0)
	wantCode(t, "first too large", err, apperr.Validation)
}

func TestAuditPage_NeedsAdmin(t *testing.T) {
	tr := testkit.NewTree(t)
	for _, role := range []models.Role{models.RoleOperator, models.RoleFinance, models.RoleViewer} {
		u := tr.AddUser(t, tr.D1.Account, role)
		_, _, err := tr.Accounts.AuditPage(u.Ctx, tr.C1.Account.ID, false, 10, 0)
		wantCode(t, string(role)+" in scope", err, apperr.Forbidden)
		_, _, err = tr.Accounts.AuditPage(u.Ctx, tr.C5.Account.ID, false, 10, 0)
		wantCode(t, string(role)+" out of scope", err, apperr.NotFound)
	}
}

func TestUpdate_EmptyEmailClearsIt(t *testing.T) {
	tr := testkit.NewTree(t)
	id := tr.C3.Account.ID
	a, err := tr.Accounts.Update(tr.D1.Ctx, id, accounts.UpdateInput{Email: ptr("ops@c3.example"), Phone: ptr("+8613800138000")})
	if err != nil || a.Email == nil || *a.Email != "ops@c3.example" {
		t.Fatalf("set email: %+v, %v", a, err)
	}
	a, err = tr.Accounts.Update(tr.D1.Ctx, id, accounts.UpdateInput{Email: ptr("")})
	if err != nil {
		t.Fatal(err)
	}
	got, err := tr.Accounts.Get(tr.Platform.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*models.Account{a, got} {
		if x.Email != nil || x.Phone == nil || *x.Phone != "+8613800138000" || x.Name != "Customer Three" {
			t.Fatalf("after clearing the email: email %v phone %v name %q", x.Email, x.Phone, x.Name)
		}
	}
	var last models.AuditEntry
	if err := tr.Store.DB.Where("account_id = ? AND action = 'account.update'", id).Order("id DESC").First(&last).Error; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(last.Before), "ops@c3.example") || strings.Contains(string(last.After), "ops@c3.example") {
		t.Fatalf("audit before %s after %s", last.Before, last.After)
	}

	_, err = tr.Accounts.Update(tr.D1.Ctx, id, accounts.UpdateInput{Name: ptr("  ")})
	wantCode(t, "blank name", err, apperr.Validation)
	_, err = tr.Accounts.Update(tr.D1.Ctx, id, accounts.UpdateInput{Phone: ptr("12345")})
	wantCode(t, "bad phone", err, apperr.Validation)
	_, err = tr.Accounts.Update(tr.D2.Ctx, id, accounts.UpdateInput{Name: ptr("Stolen")})
	wantCode(t, "out of scope", err, apperr.NotFound)
	got2, _ := tr.Accounts.Get(tr.Platform.Ctx, id)
	if got2.Name != "Customer Three" || got2.Phone == nil || !got2.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("refused updates changed the account: %+v", got2)
	}
}

func TestSetTags_ValidationChangesNothing(t *testing.T) {
	tr := testkit.NewTree(t)
	id := tr.C1.Account.ID
	if _, err := tr.Accounts.SetTags(tr.R1.Ctx, id, []accounts.Tag{{Key: "team", Value: "a"}, {Key: "cost-center", Value: "42"}}); err != nil {
		t.Fatal(err)
	}
	before, err := tr.Accounts.Get(tr.Platform.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	audits := count(t, tr.Store, "SELECT count(*) FROM audit_log")
	outbox := count(t, tr.Store, "SELECT count(*) FROM outbox")

	many := make([]accounts.Tag, accounts.MaxTags+1)
	for i := range many {
		many[i] = accounts.Tag{Key: fmt.Sprintf("k%d", i), Value: "v"}
	}
	for name, tags := range map[string][]accounts.Tag{
		"51 tags":        many,
		"space in key":   {{Key: "bad key", Value: "v"}},
		"empty key":      {{Key: "", Value: "v"}},
		"long key":       {{Key: strings.Repeat("k", 65), Value: "v"}},
		"long value":     {{Key: "k", Value: strings.Repeat("v", accounts.MaxTagValueLen+1)}},
		"duplicate key":  {{Key: "team", Value: "a"}, {Key: "team", Value: "b"}},
		"bad and good":   {{Key: "fine", Value: "v"}, {Key: "no=equals", Value: "v"}},
		"invalid UTF-8":  {{Key: "k", Value: "\xff"}},
		"control in key": {{Key: "a\nb", Value: "v"}},
	} {
		_, err := tr.Accounts.SetTags(tr.R1.Ctx, id, tags)
		if apperr.CodeOf(err) != apperr.Validation {
			t.Errorf("%s: %v, want VALIDATION", name, err)
		}
	}
	after, err := tr.Accounts.Get(tr.Platform.Ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(after.Tags) != fmt.Sprint(before.Tags) || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("tags %v -> %v", before.Tags, after.Tags)
	}
	if a := count(t, tr.Store, "SELECT count(*) FROM audit_log"); a != audits {
		t.Fatalf("audit rows %d -> %d", audits, a)
	}
	if o := count(t, tr.Store, "SELECT count(*) FROM outbox"); o != outbox {
		t.Fatalf("outbox rows %d -> %d", outbox, o)
	}

	exactly := many[:accounts.MaxTags]
	a, err := tr.Accounts.SetTags(tr.R1.Ctx, id, exactly)
	if err != nil || len(a.Tags) != accounts.MaxTags {
		t.Fatalf("50 tags: %d, %v", len(a.Tags), err)
	}
	a, err = tr.Accounts.SetTags(tr.R1.Ctx, id, nil)
	if err != nil || len(a.Tags) != 0 {
		t.Fatalf("clearing tags: %v, %v", a.Tags, err)
	}
	viewer := tr.AddUser(t, tr.R1.Account, models.RoleViewer)
	_, err = tr.Accounts.SetTags(viewer.Ctx, id, nil)
	wantCode(t, "viewer", err, apperr.Forbidden)
	_, err = tr.Accounts.SetTags(tr.R2.Ctx, id, []accounts.Tag{{Key: "bad key"}})
	wantCode(t, "out of scope with bad tags", err, apperr.NotFound)
}

func TestSortedTags(t *testing.T) {
	got := accounts.SortedTags(models.Tags{"b": "2", "a": "1", "c": "3"})
	if fmt.Sprint(got) != "[{a 1} {b 2} {c 3}]" {
		t.Fatalf("SortedTags = %v", got)
	}
}

// An accepted token is trusted for a second without a query: a change made
// behind the service's back shows after that second, a revocation through
// the service at once.
func TestAuthenticate_CacheIsBoundedAndRevocationIsImmediate(t *testing.T) {
	clk := storetest.NewClock(time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC))
	tr := testkit.NewTreeOn(t, testkit.NewStore(t, store.Options{Clock: clk}))
	ctx := context.Background()
	tok, rec, err := tr.Accounts.CreateToken(tr.D1.Ctx, tr.D1.User.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.Authenticate(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := tr.Store.DB.Exec(`UPDATE api_tokens SET revoked_at = now() WHERE id = ?`, rec.ID).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.Authenticate(ctx, tok); err != nil {
		t.Fatalf("within the second: %v", err)
	}
	clk.Advance(time.Second)
	if _, err := tr.Accounts.Authenticate(ctx, tok); err == nil {
		t.Fatal("a token revoked in the database still works after the cache second")
	}
	tok2, rec2, err := tr.Accounts.CreateToken(tr.D1.Ctx, tr.D1.User.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.Authenticate(ctx, tok2); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.RevokeToken(tr.D1.Ctx, rec2.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Accounts.Authenticate(ctx, tok2); err == nil {
		t.Fatal("a token revoked through the service still works")
	}
}

// children(tag:) keeps the children tagged key=value, and counts them.
func TestChildren_TagFilter(t *testing.T) {
	tr := testkit.NewTree(t)
	for id, tags := range map[int64][]accounts.Tag{
		tr.C3.Account.ID: {{Key: "env", Value: "prod"}, {Key: "team", Value: "a"}},
		tr.R1.Account.ID: {{Key: "env", Value: "prod"}},
		tr.R2.Account.ID: {{Key: "env", Value: "test"}},
	} {
		if _, err := tr.Accounts.SetTags(tr.D1.Ctx, id, tags); err != nil {
			t.Fatal(err)
		}
	}
	f := accounts.ChildFilter{TagKey: "env", TagValue: "prod"}
	if back := accounts.ChildFilterFromKey(f.Key()); back != f {
		t.Fatalf("key round trip: %+v", back)
	}
	pages, err := tr.Accounts.ChildrenPages(tr.D1.Ctx, []int64{tr.D1.Account.ID}, f, 10, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, a := range pages[tr.D1.Account.ID].Accounts {
		got = append(got, a.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint([]int64{tr.R1.Account.ID, tr.C3.Account.ID}) {
		t.Fatalf("tagged env=prod: %v", got)
	}
	counts, err := tr.Accounts.CountChildren(tr.D1.Ctx, []int64{tr.D1.Account.ID}, accounts.ChildFilter{TagKey: "env", TagValue: "test"})
	if err != nil || counts[tr.D1.Account.ID] != 1 {
		t.Fatalf("count env=test: %v %v", counts, err)
	}
}

// Move re-roots an account and its subtree under a new parent and splits
// its parent history at the move.
func TestMove_SubtreeFollowsAndHistorySplits(t *testing.T) {
	tr := testkit.NewTree(t)
	err := tr.Store.InTx(context.Background(), func(tx *store.Tx) error {
		r1, err := accounts.Lock(tx, tr.R1.Account.ID)
		if err != nil {
			return err
		}
		return accounts.Move(tx, r1, tr.D2.Account, models.KindReseller)
	})
	if err != nil {
		t.Fatal(err)
	}
	var rows []struct {
		ID    int64
		Path  string
		Depth int
	}
	if err := tr.Store.DB.Raw(`SELECT id, path, depth FROM accounts WHERE id IN (?, ?) ORDER BY depth`, tr.R1.Account.ID, tr.C1.Account.ID).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	wantR1 := fmt.Sprintf("%s%d/", tr.D2.Account.Path, tr.R1.Account.ID)
	if len(rows) != 2 || rows[0].Path != wantR1 || rows[0].Depth != 2 ||
		rows[1].Path != fmt.Sprintf("%s%d/", wantR1, tr.C1.Account.ID) || rows[1].Depth != 3 {
		t.Fatalf("after the move: %+v", rows)
	}
	var open, closed int64
	tr.Store.DB.Raw(`SELECT count(*) FROM account_parent_history WHERE account_id = ? AND valid_to IS NULL AND parent_id = ?`, tr.R1.Account.ID, tr.D2.Account.ID).Scan(&open)
	tr.Store.DB.Raw(`SELECT count(*) FROM account_parent_history WHERE account_id = ? AND valid_to IS NOT NULL AND parent_id = ?`, tr.R1.Account.ID, tr.D1.Account.ID).Scan(&closed)
	if open != 1 || closed != 1 {
		t.Fatalf("history: %d open under D2, %d closed under D1", open, closed)
	}
	// D2's scope now holds C1; D1's no longer does.
	if _, err := tr.Accounts.Get(tr.D2.Ctx, tr.C1.Account.ID); err != nil {
		t.Fatalf("D2 reads C1: %v", err)
	}
	if _, err := tr.Accounts.Get(tr.D1.Ctx, tr.C1.Account.ID); err == nil {
		t.Fatal("D1 still reads C1")
	}
}
