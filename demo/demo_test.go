package demo_test

import (
	"context"
	"testing"

	"partnerd/accounts"
	"partnerd/credit"
	"partnerd/demo"
	"partnerd/notify"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// The demo loads a tree with credit, a month of spend and inbox messages; the
// distributor admin's token opens an inbox that is not empty.
func TestLoad_TreeCreditSpendAndInbox(t *testing.T) {
	ctx := context.Background()
	st := storetest.New(t, store.Options{})
	svc := accounts.New(st)
	if _, err := svc.Bootstrap(ctx, demo.AdminEmail, "Demo"); err != nil {
		t.Fatal(err)
	}
	ns, err := notify.New(st, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := demo.Services{Accounts: svc, Credit: credit.New(st, testkit.Shanghai), Spend: spend.New(st, testkit.Shanghai), Notify: ns}
	sum, err := demo.Load(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Loaded || sum.Accounts < 10 || sum.Expenditures == 0 || sum.InboxMessages == 0 {
		t.Fatalf("summary %+v", sum)
	}
	token, err := demo.PartnerToken(ctx, svc, 0)
	if err != nil {
		t.Fatal(err)
	}
	p, err := svc.Authenticate(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	page, err := ns.Inbox(accounts.WithPrincipal(ctx, p), false, 50, 0)
	if err != nil || page.Total == 0 {
		t.Fatalf("the distributor admin's inbox: %+v, %v", page, err)
	}
	again, err := demo.Load(ctx, d)
	if err != nil || again.Loaded {
		t.Fatalf("second load: %+v, %v", again, err)
	}
}
