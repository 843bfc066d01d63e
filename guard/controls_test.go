package guard_test

import (
	"strconv"
	"strings"
	"testing"

	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/models"
)

// A purchase ban refuses new prepaid purchases only, keeps who changed it,
// when, the old and new value and the reason, and setting it again changes
// nothing.
func TestPurchaseBan_PrepaidOnly(t *testing.T) {
	f := newFixture(t)
	c := f.C1.Account.ID
	f.activate(t, "1000", models.BudgetMonthly, "500", "")
	authorize := func(mode models.BillingMode) guard.Decision {
		t.Helper()
		d, err := f.guard.Authorize(f.Platform.Ctx, c, mode, dec("10"))
		must(t, "authorize", err)
		return d
	}
	if d := authorize(models.Subscription); !d.Allowed {
		t.Fatalf("before the ban: %+v", d)
	}
	_, err := f.guard.SetPurchaseBan(f.R1.Ctx, c, true, " ")
	wantCode(t, "no reason", err, apperr.Validation)
	_, err = f.guard.SetPurchaseBan(f.D2.Ctx, c, true, "hostile")
	wantCode(t, "other distributor", err, apperr.NotFound)
	_, err = f.guard.SetPurchaseBan(f.C1.Ctx, c, true, "myself")
	wantCode(t, "itself", err, apperr.Forbidden)
	a, err := f.guard.SetPurchaseBan(f.R1.Ctx, c, true, "Overdue invoices")
	must(t, "ban", err)
	if !a.PurchaseBanned {
		t.Fatalf("after the ban: %+v", a)
	}
	for mode, want := range map[models.BillingMode]string{models.Subscription: guard.ReasonPurchaseBanned,
		models.ReservedInstance: guard.ReasonPurchaseBanned, models.PayPerUse: ""} {
		if d := authorize(mode); d.Reason != want || d.Allowed != (want == "") {
			t.Errorf("%s while banned: %+v", mode, d)
		}
	}
	must(t, "ban again", func() error { _, err := f.guard.SetPurchaseBan(f.R1.Ctx, c, true, "again"); return err }())
	must(t, "lift", func() error { _, err := f.guard.SetPurchaseBan(f.D1.Ctx, c, false, "Paid"); return err }())
	if d := authorize(models.Subscription); !d.Allowed {
		t.Fatalf("after the lift: %+v", d)
	}
	page, err := f.guard.ControlChanges(f.R1.Ctx, c, 10, 0)
	must(t, "history", err)
	var got []string
	for _, ch := range page.Items {
		got = append(got, string(ch.Control)+":"+ch.OldValue+"->"+ch.NewValue+":"+ch.Reason+":"+strings.SplitN(ch.Actor, " ", 2)[0])
	}
	// Newest first: the lift by D1, the ban by R1, the unfreeze of activate().
	want := []string{"PURCHASE_BAN:true->false:Paid:user:" + itoa(f.D1.User.ID), "PURCHASE_BAN:false->true:Overdue invoices:user:" + itoa(f.R1.User.ID),
		"STATUS:FROZEN (NEW_CUSTOMER)->ACTIVE::user:" + itoa(f.R1.User.ID)}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("history:\n got %v\nwant %v", got, want)
	}
	_, err = f.guard.ControlChanges(f.D2.Ctx, c, 10, 0)
	wantCode(t, "another partner's history", err, apperr.NotFound)
}

// A batch freeze judges each account on its own: valid ones are frozen
// with the reason, the others come back with their error and change nothing.
func TestFreezeAccounts_MixedBatch(t *testing.T) {
	f := newFixture(t)
	c1 := f.C1.Account.ID
	f.activate(t, "1000", models.BudgetMonthly, "500", "")
	res, err := f.guard.FreezeAccounts(f.D1.Ctx, []int64{c1, f.C5.Account.ID, f.R1.Account.ID, 987654321, c1, f.C3.Account.ID}, models.FreezeAccount, "Quarter-end review")
	must(t, "batch", err)
	var got []string
	for _, r := range res {
		v := string(r.Code)
		if r.Account != nil {
			v = string(r.Account.Status)
		}
		got = append(got, v)
	}
	// C1 frozen; C5 another distributor's; R1 not a customer; unknown; C1 twice; C3 frozen already as a new customer: taken over.
	if want := "FROZEN NOT_FOUND VALIDATION NOT_FOUND VALIDATION FROZEN"; strings.Join(got, " ") != want {
		t.Fatalf("results: %v, want %s", got, want)
	}
	if !strings.HasPrefix(res[4].Message, "DUPLICATE") {
		t.Fatalf("repeat: %+v", res[4])
	}
	if a := account(t, f.Store, c1); a.Status != models.StatusFrozen || a.FrozenReason == nil || *a.FrozenReason != models.FrozenManual {
		t.Fatalf("C1 after the batch: %+v", a)
	}
	if a := account(t, f.Store, f.C5.Account.ID); a.Status != models.StatusFrozen || *a.FrozenReason != models.FrozenNewCustomer {
		t.Fatalf("C5 changed: %+v", a)
	}
	page, err := f.guard.ControlChanges(f.D1.Ctx, c1, 1, 0)
	must(t, "history", err)
	if ch := page.Items[0]; ch.Control != guard.ControlStatus || ch.OldValue != "ACTIVE" || ch.NewValue != "FROZEN (MANUAL)" || ch.Reason != "Quarter-end review" {
		t.Fatalf("C1's last change: %+v", ch)
	}
	_, err = f.guard.FreezeAccounts(f.D1.Ctx, []int64{c1}, "SOMETIMES", "x")
	wantCode(t, "bad mode", err, apperr.Validation)
	_, err = f.guard.FreezeAccounts(f.D1.Ctx, nil, models.FreezeAccount, "x")
	wantCode(t, "no ids", err, apperr.Validation)
	_, err = f.guard.FreezeAccounts(f.D1.Ctx, []int64{c1}, models.FreezeAccount, "")
	wantCode(t, "no reason", err, apperr.Validation)

	// Unfreeze in a batch: C1 has a budget, C3 has none (PRECONDITION_FAILED).
	res, err = f.guard.UnfreezeAccounts(f.R1.Ctx, []int64{c1, f.C3.Account.ID}, "Review done")
	must(t, "unfreeze batch", err)
	if res[0].Account == nil || res[0].Account.Status != models.StatusActive || res[1].Code != apperr.NotFound {
		t.Fatalf("unfreeze results: %+v", res)
	}
	res, err = f.guard.UnfreezeAccounts(f.D1.Ctx, []int64{f.C3.Account.ID}, "Review done")
	must(t, "unfreeze C3", err)
	if res[0].Code != apperr.PreconditionFailed {
		t.Fatalf("C3 without a budget: %+v", res)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
