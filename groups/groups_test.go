package groups_test

import (
	"slices"
	"testing"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/groups"
	"partnerd/models"
	"partnerd/testkit"
)

func wantCode(t *testing.T, what string, err error, code apperr.Code) {
	t.Helper()
	if got := apperr.CodeOf(err); got != code {
		t.Fatalf("%s: got %v (%s), want %s", what, err, got, code)
	}
}

func customer(t *testing.T, tr *testkit.Tree, parent int64, name string) int64 {
	t.Helper()
	a, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: parent, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	return a.ID
}

func count(t *testing.T, tr *testkit.Tree, q string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := tr.Store.DB.Raw(q, args...).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// Groups and units: siblings only, one of each per customer, the
// administrator stays, a unit keeps a member, scope and roles hold, and
// every change is audited and tells the member.
func TestGroupsAndUnits(t *testing.T) {
	tr := testkit.NewTree(t)
	svc := groups.New(tr.Store)
	r1 := tr.R1.Account.ID
	c1, c1b, c1c := tr.C1.Account.ID, customer(t, tr, r1, "C1 b"), customer(t, tr, r1, "C1 c")
	ctx := tr.R1.Ctx

	g, err := svc.Create(ctx, groups.KindGroup, " East ", c1, []int64{c1b})
	if err != nil {
		t.Fatal(err)
	}
	if g.Name != "East" || g.PartnerID != r1 || g.AdministratorID != c1 || !slices.Equal(g.MemberIDs, []int64{c1, c1b}) {
		t.Fatalf("group %+v", g)
	}
	m, err := svc.Memberships(ctx, []int64{c1, c1b, c1c})
	if err != nil {
		t.Fatal(err)
	}
	if m[c1].Role != models.GroupAdministrator || m[c1b].Role != models.GroupMember || m[c1c].Role != models.GroupNone || m[c1].GroupID != g.ID {
		t.Fatalf("memberships %+v", m)
	}

	snapshot := func() [3]int64 {
		return [3]int64{count(t, tr, `SELECT count(*) FROM customer_group_members`), count(t, tr, `SELECT count(*) FROM sharing_unit_members`),
			count(t, tr, `SELECT count(*) FROM audit_log`)}
	}
	before := snapshot()
	bad := []struct {
		name string
		err  error
		code apperr.Code
	}{}
	try := func(name string, code apperr.Code, f func() error) {
		bad = append(bad, struct {
			name string
			err  error
			code apperr.Code
		}{name, f(), code})
	}
	try("customer in two groups", apperr.Conflict, func() error { _, err := svc.Create(ctx, groups.KindGroup, "West", c1c, []int64{c1b}); return err })
	try("not siblings", apperr.Validation, func() error {
		_, err := svc.Create(tr.D1.Ctx, groups.KindGroup, "Mixed", c1c, []int64{tr.C2.Account.ID})
		return err
	})
	try("a reseller as member", apperr.Validation, func() error { _, err := svc.Create(tr.D1.Ctx, groups.KindUnit, "U", 0, []int64{r1}); return err })
	try("outside the subtree", apperr.NotFound, func() error {
		_, err := svc.Create(ctx, groups.KindUnit, "U", 0, []int64{tr.C2.Account.ID})
		return err
	})
	try("no name", apperr.Validation, func() error { _, err := svc.Create(ctx, groups.KindUnit, "  ", 0, []int64{c1c}); return err })
	try("no members", apperr.Validation, func() error { _, err := svc.Create(ctx, groups.KindUnit, "U", 0, nil); return err })
	try("no administrator", apperr.Validation, func() error { _, err := svc.Create(ctx, groups.KindGroup, "G", 0, []int64{c1c}); return err })
	try("remove the administrator", apperr.PreconditionFailed, func() error { _, err := svc.RemoveMember(ctx, groups.KindGroup, g.ID, c1); return err })
	try("remove a non-member", apperr.Validation, func() error { _, err := svc.RemoveMember(ctx, groups.KindGroup, g.ID, c1c); return err })
	try("another partner's group", apperr.NotFound, func() error { _, err := svc.AddMember(tr.D2.Ctx, groups.KindGroup, g.ID, tr.C5.Account.ID); return err })
	try("a customer manages its group", apperr.NotFound, func() error { return svc.Delete(tr.C1.Ctx, groups.KindGroup, g.ID) })
	viewer := tr.AddUser(t, tr.R1.Account, models.RoleViewer)
	try("a viewer", apperr.Forbidden, func() error { _, err := svc.AddMember(viewer.Ctx, groups.KindGroup, g.ID, c1c); return err })
	before[2] += 2 // the viewer's user and token
	for _, b := range bad {
		wantCode(t, b.name, b.err, b.code)
	}
	if after := snapshot(); after != before {
		t.Fatalf("refusals changed something: %v → %v", before, after)
	}

	// A unit beside the group; one unit per customer; the last member stays.
	u, err := svc.Create(ctx, groups.KindUnit, "Plan A", 0, []int64{c1, c1c})
	if err != nil {
		t.Fatal(err)
	}
	_, err = svc.Create(ctx, groups.KindUnit, "Plan B", 0, []int64{c1c})
	wantCode(t, "second unit", err, apperr.Conflict)
	if _, err := svc.RemoveMember(ctx, groups.KindUnit, u.ID, c1); err != nil {
		t.Fatal(err)
	}
	_, err = svc.RemoveMember(ctx, groups.KindUnit, u.ID, c1c)
	wantCode(t, "last member", err, apperr.PreconditionFailed)
	// The distributor above manages its resellers' groups too.
	if g, err = svc.AddMember(tr.D1.Ctx, groups.KindGroup, g.ID, c1c); err != nil || !slices.Equal(g.MemberIDs, []int64{c1, c1b, c1c}) {
		t.Fatalf("add: %+v %v", g, err)
	}
	if g, err = svc.RemoveMember(ctx, groups.KindGroup, g.ID, c1b); err != nil || len(g.MemberIDs) != 2 {
		t.Fatalf("remove: %+v %v", g, err)
	}
	page, more, total, err := svc.Page(tr.D1.Ctx, groups.KindGroup, r1, 10, 0)
	if err != nil || more || total != 1 || len(page) != 1 || len(page[0].MemberIDs) != 2 {
		t.Fatalf("page %+v %v %d %v", page, more, total, err)
	}
	if _, _, _, err := svc.Page(tr.D2.Ctx, groups.KindGroup, r1, 10, 0); apperr.CodeOf(err) != apperr.NotFound {
		t.Fatalf("another distributor lists R1's groups: %v", err)
	}
	if err := svc.Delete(ctx, groups.KindGroup, g.ID); err != nil {
		t.Fatal(err)
	}
	if n := count(t, tr, `SELECT count(*) FROM customer_group_members`); n != 0 {
		t.Fatalf("%d memberships left after delete", n)
	}
	// Each member concerned was told, and the changes audited.
	if n := count(t, tr, `SELECT count(*) FROM outbox WHERE event_type = 'group.changed'`); n != 2+2+1+1+1+2 {
		t.Fatalf("%d group events", n)
	}
	if n := count(t, tr, `SELECT count(*) FROM audit_log WHERE action LIKE 'customer_group.%' OR action LIKE 'sharing_unit.%'`); n != 6 {
		t.Fatalf("%d audit entries", n)
	}
}
