package demo_test

import (
	"context"
	"testing"

	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/credit"
	"partnerd/demo"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/notify"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/store/storetest"
	"partnerd/testkit"
	"partnerd/vouchers"
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
	d := demo.Services{Accounts: svc, Credit: credit.New(st, testkit.Shanghai), Spend: spend.New(st, testkit.Shanghai), Notify: ns,
		Guard: guard.New(st, guard.Options{Location: testkit.Shanghai}), Groups: groups.New(st),
		Lifecycle: lifecycle.New(st, lifecycle.Options{PublicURL: "http://localhost:8080", Location: testkit.Shanghai}),
		Migration: migration.New(st, migration.Options{Location: testkit.Shanghai}),
		Billing:   billing.New(st, svc, billing.Options{Location: testkit.Shanghai}),
		Vouchers:  vouchers.New(st, vouchers.Options{Location: testkit.Shanghai})}
	sum, err := demo.Load(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	if !sum.Loaded || sum.Accounts < 10 || sum.Expenditures == 0 || sum.InboxMessages == 0 || sum.Bills == 0 {
		t.Fatalf("summary %+v", sum)
	}
	// Budgets: one exceeded, a frozen customer awaiting its budget, and the
	// heavy spender suspended for arrears.
	var states []struct {
		Name, Status string
		Reason       *string
		Exceeded     bool
	}
	if err := st.DB.Raw(`SELECT a.name, a.status, a.frozen_reason AS reason,
			coalesce(g.budget_amount <= g.month_list, false) AS exceeded
		FROM accounts a JOIN purchase_guards g ON g.customer_id = a.id WHERE a.kind = 'CUSTOMER' ORDER BY a.id`).Scan(&states).Error; err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, s := range states {
		v := s.Status
		if s.Reason != nil {
			v += "/" + *s.Reason
		}
		if s.Exceeded {
			v += "/exceeded"
		}
		got[s.Name] = v
	}
	for name, want := range map[string]string{"Kite Analytics": "ACTIVE/exceeded", "Pioneer Labs": "FROZEN/NEW_CUSTOMER",
		"Nimbus Games": "FROZEN/ARREARS", "Harbor Logistics": "ACTIVE"} {
		if got[name] != want {
			t.Errorf("%s: %s, want %s", name, got[name], want)
		}
	}
	// Last month's bills are issued, Aurora's customers rated, and Aurora
	// applied for the payout of its incentive.
	var billing struct{ Issued, Drafts, Rated, Applied int64 }
	if err := st.DB.Raw(`SELECT (SELECT count(*) FROM partner_bills WHERE status = 'ISSUED') AS issued,
			(SELECT count(*) FROM partner_bills WHERE status = 'DRAFT') AS drafts,
			(SELECT count(*) FROM customer_bills WHERE status = 'ISSUED') AS rated,
			(SELECT count(*) FROM incentives i JOIN accounts a ON a.id = i.partner_id
				WHERE i.status = 'APPLIED' AND a.name = 'Aurora Cloud Distribution' AND i.amount > 0) AS applied`).Scan(&billing).Error; err != nil {
		t.Fatal(err)
	}
	if billing.Issued == 0 || billing.Drafts != 0 || billing.Rated == 0 || billing.Applied != 1 {
		t.Errorf("demo bills: %+v", billing)
	}
	var pending int64
	if err := st.DB.Raw(`SELECT count(*) FROM invitations WHERE status = 'PENDING'`).Scan(&pending).Error; err != nil || pending != 1 {
		t.Errorf("demo pending invitations: %d (%v)", pending, err)
	}
	var waiting []string
	if err := st.DB.Raw(`SELECT m.status || ':' || s.name || '->' || r.name FROM migrations m JOIN accounts s ON s.id = m.source_id
		JOIN accounts r ON r.id = m.receiver_id`).Scan(&waiting).Error; err != nil || len(waiting) != 1 ||
		waiting[0] != "PENDING_SOURCE_APPROVAL:Cobalt Solutions->Delta Direct" {
		t.Errorf("demo migrations: %v (%v)", waiting, err)
	}
	var members int64
	if err := st.DB.Raw(`SELECT count(*) FROM customer_group_members`).Scan(&members).Error; err != nil || members != 2 {
		t.Errorf("demo group members: %d (%v)", members, err)
	}
	// Vouchers: Aurora's pool, three templates, three vouchers paying part
	// of the fresh usage, Beacon's loyalty issue waiting for Aurora.
	var v struct {
		Pools, Templates, Vouchers, Pending, Redemptions int64
		Paid                                             string
	}
	if err := st.DB.Raw(`SELECT (SELECT count(*) FROM voucher_pools WHERE quota > 0) AS pools,
			(SELECT count(*) FROM voucher_templates) AS templates,
			(SELECT count(*) FROM vouchers WHERE status = 'PARTIALLY_USED') AS vouchers,
			(SELECT count(*) FROM voucher_issuances WHERE status = 'PENDING_APPROVAL') AS pending,
			(SELECT count(*) FROM voucher_redemptions) AS redemptions,
			(SELECT sum(amount)::text FROM voucher_redemptions) AS paid`).Scan(&v).Error; err != nil {
		t.Fatal(err)
	}
	if v.Pools != 2 || v.Templates != 3 || v.Vouchers != 3 || v.Pending != 1 || v.Redemptions != 3 || v.Paid != "270.650000" {
		t.Errorf("demo vouchers: %+v", v)
	}
	if sum.Budgets != 6 {
		t.Errorf("%d budgets", sum.Budgets)
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
