// Package demo loads a small, realistic Partner Center so a new user can
// explore the API at once: a distributor with two second-level resellers, a
// single-tier reseller, customers under each, a personal account, and users.
// It builds everything through the domain services, as users would.
package demo

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/credit"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/spend"
	"partnerd/vouchers"
)

// Services are the domain services the demo data is built through.
type Services struct {
	Accounts *accounts.Service
	Credit   *credit.Service
	Spend    *spend.Service
	Guard    *guard.Service
	// Groups, when set, makes a billing group of two of Beacon's customers.
	Groups *groups.Service
	// Lifecycle, when set, leaves Beacon's invitation of Quinn Personal
	// pending.
	Lifecycle *lifecycle.Service
	// Migration, when set, leaves a migration batch waiting for the
	// source's approval.
	Migration *migration.Service
	// Billing, when set, issues last month's bills and applies for a
	// payout of the distributor's incentive.
	Billing *billing.Service
	// Vouchers, when set, grants the distributor a voucher quota, passes
	// part of it to a reseller, and issues vouchers that pay for some of
	// the demo's spend.
	Vouchers *vouchers.Service
	// Notify, when set, writes the in-site messages the demo's changes owe
	// at once (the workers send the emails and SMS).
	Notify *notify.Service
}

// AdminEmail is the demo platform admin.
const AdminEmail = "admin@platform.example"

// Summary tells what Load made.
type Summary struct {
	// Loaded is false when the database already held a tree (nothing was added).
	Loaded       bool
	Accounts     int
	Users        int
	Expenditures int
	// Bills counts the partner bills issued for last month.
	Bills int
	// Budgets is how many customers got a budget (and were unfrozen).
	Budgets int
	// InboxMessages is how many in-site messages the changes left.
	InboxMessages int
}

// Empty reports whether the tree holds nothing but (at most) the platform.
func Empty(ctx context.Context, svc *accounts.Service) (bool, error) {
	var n int64
	err := svc.Store().DB.WithContext(ctx).Model(&models.Account{}).Where("kind <> ?", models.KindPlatform).Count(&n).Error
	if err != nil {
		return false, fmt.Errorf("count accounts: %w", err)
	}
	return n == 0, nil
}

type node struct {
	// credit is the limit (tier-1) or the allocation from the parent.
	credit   string
	kind     models.AccountKind
	name     string
	email    string
	phone    string
	currency string
	tags     []accounts.Tag
	users    []user
	children []node
}

type user struct {
	email  string
	roles  []models.Role
	locale string
}

var tree = []node{
	{credit: "500000", kind: models.KindDistributor, name: "Aurora Cloud Distribution", email: "ops@aurora.example", phone: "+8613800000001",
		users: []user{
			{"admin@aurora.example", []models.Role{models.RoleAdmin}, "en-US"},
			{"finance@aurora.example", []models.Role{models.RoleFinance}, "zh-CN"},
			{"ops@aurora.example", []models.Role{models.RoleOperator}, "en-US"},
		},
		children: []node{
			{credit: "120000", kind: models.KindReseller, name: "Beacon Systems", email: "hello@beacon.example", phone: "+8613800000002",
				users: []user{{"admin@beacon.example", []models.Role{models.RoleAdmin}, "en-US"}},
				children: []node{
					{credit: "30000", kind: models.KindCustomer, name: "Harbor Logistics", email: "it@harbor.example", tags: []accounts.Tag{{Key: "costCenter", Value: "CC-100"}, {Key: "env", Value: "prod"}}},
					{credit: "8000", kind: models.KindCustomer, name: "Kite Analytics", email: "it@kite.example"},
				}},
			{credit: "80000", kind: models.KindReseller, name: "Cobalt Solutions", email: "team@cobalt.example", phone: "+8613800000003",
				users: []user{{"admin@cobalt.example", []models.Role{models.RoleAdmin}, "zh-CN"}},
				children: []node{
					{credit: "20000", kind: models.KindCustomer, name: "Lumen Retail", email: "it@lumen.example"},
					{credit: "25000", kind: models.KindCustomer, name: "Meridian Health", email: "it@meridian.example", tags: []accounts.Tag{{Key: "env", Value: "prod"}}},
				}},
			{credit: "1500", kind: models.KindCustomer, name: "Nimbus Games", email: "it@nimbus.example", phone: "+8613800000004",
				users: []user{{"owner@nimbus.example", []models.Role{models.RoleAdmin}, "en-US"}}},
		}},
	{credit: "60000", kind: models.KindReseller, name: "Delta Direct", email: "sales@delta.example", currency: "USD",
		users: []user{{"admin@delta.example", []models.Role{models.RoleAdmin}, "en-US"}},
		children: []node{
			{credit: "12000", kind: models.KindCustomer, name: "Orion Media", email: "it@orion.example", currency: "USD"},
			{credit: "9000", kind: models.KindCustomer, name: "Pioneer Labs", email: "it@pioneer.example", currency: "USD"},
		}},
	{kind: models.KindPersonal, name: "Quinn Personal", email: "quinn@personal.example",
		users: []user{{"quinn@personal.example", []models.Role{models.RoleAdmin}, "en-US"}}},
}

// Load creates the demo tree under the platform when the tree is empty, as
// the system principal: accounts and users, credit limits and allocations,
// budgets (one exceeded, see demoBudgets; Pioneer Labs stays frozen as a new
// customer), and the last 30 days of expenditures of every customer (Nimbus
// Games ends up in arrears, suspended), and the inbox messages all of that notifies (credit
// allocations to the partners and customers, the arrears). The platform must
// exist (bootstrap).
func Load(ctx context.Context, d Services) (Summary, error) {
	svc := d.Accounts
	ctx = accounts.SystemContext(ctx)
	empty, err := Empty(ctx, svc)
	if err != nil || !empty {
		return Summary{}, err
	}
	plat, err := svc.Platform(ctx)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Loaded: true}
	var customers []*models.Account
	for _, n := range tree {
		if err := create(ctx, d, plat.ID, n, &sum, &customers); err != nil {
			return sum, err
		}
	}
	if err := budgets(ctx, d, customers, &sum); err != nil {
		return sum, err
	}
	if d.Lifecycle != nil {
		if err := invite(ctx, d, "admin@beacon.example", "quinn@personal.example"); err != nil {
			return sum, err
		}
	}
	if d.Migration != nil {
		if err := migrate(ctx, d, customers); err != nil {
			return sum, err
		}
	}
	if d.Groups != nil {
		byName := map[string]int64{}
		for _, c := range customers {
			byName[c.Name] = c.ID
		}
		if _, err := d.Groups.Create(ctx, groups.KindGroup, "Beacon key accounts", byName["Harbor Logistics"], []int64{byName["Kite Analytics"]}); err != nil {
			return sum, fmt.Errorf("demo billing group: %w", err)
		}
	}
	res, err := d.Spend.Ingest(ctx, spend.SliceSource(expenditures(customers, d.Accounts.Store().Now(), "demo")))
	if err != nil {
		return sum, fmt.Errorf("demo expenditures: %w", err)
	}
	sum.Expenditures = res.Accepted
	if d.Billing != nil {
		if err := bills(ctx, d, customers, &sum); err != nil {
			return sum, err
		}
	}
	if d.Vouchers != nil {
		if err := demoVouchers(ctx, d, customers, &sum); err != nil {
			return sum, err
		}
	}
	if d.Guard != nil {
		// What the workers would do on the ingestion's events, done here so
		// the demo is in its final state without them.
		for _, c := range customers {
			if err := d.Guard.Evaluate(ctx, c.ID); err != nil {
				return sum, fmt.Errorf("demo budget of %q: %w", c.Name, err)
			}
			if err := d.Guard.ReconcileArrears(ctx, c.ID); err != nil {
				return sum, fmt.Errorf("demo arrears of %q: %w", c.Name, err)
			}
		}
	}
	if d.Notify != nil {
		if sum.InboxMessages, err = d.Notify.NotifyNow(ctx); err != nil {
			return sum, fmt.Errorf("demo notifications: %w", err)
		}
	}
	return sum, nil
}

// demoBudgets are the demo customers' budgets: Kite Analytics' small one is
// exceeded by its spend (prepaid purchases refused, no action), Harbor
// Logistics would be frozen with its resources past its budget, Orion Media
// has a one-time budget. Pioneer Labs gets none and stays FROZEN as a new
// customer awaiting its budget.
var demoBudgets = map[string]guard.BudgetInput{
	"Harbor Logistics": {Type: models.BudgetMonthly, Amount: decimal.RequireFromString("50000"), OverspendAction: models.OverspendFreezeWithResources},
	"Kite Analytics":   {Type: models.BudgetMonthly, Amount: decimal.RequireFromString("100"), Thresholds: []int{50, 80, 100}},
	"Lumen Retail":     {Type: models.BudgetMonthly, Amount: decimal.RequireFromString("20000"), OverspendAction: models.OverspendFreeze},
	"Meridian Health":  {Type: models.BudgetMonthly, Amount: decimal.RequireFromString("30000")},
	"Nimbus Games":     {Type: models.BudgetMonthly, Amount: decimal.RequireFromString("80000"), OverspendAction: models.OverspendFreeze},
	"Orion Media":      {Type: models.BudgetOneTime, Amount: decimal.RequireFromString("40000")},
}

// budgets sets the demo budgets, unfreezes the customers that have one and
// registers a few resources (with Guard set).
func budgets(ctx context.Context, d Services, customers []*models.Account, sum *Summary) error {
	if d.Guard == nil {
		return nil
	}
	for _, c := range customers {
		in, ok := demoBudgets[c.Name]
		if !ok {
			continue
		}
		in.CustomerID = c.ID
		if _, err := d.Guard.SetBudget(ctx, in); err != nil {
			return fmt.Errorf("demo budget of %q: %w", c.Name, err)
		}
		if _, err := d.Guard.Unfreeze(ctx, c.ID); err != nil {
			return fmt.Errorf("demo unfreeze of %q: %w", c.Name, err)
		}
		sum.Budgets++
		for i := 1; i <= 2; i++ {
			if _, err := d.Guard.RegisterResource(ctx, c.ID, "ecs.g7.large", fmt.Sprintf("i-demo-%d-%d", c.ID, i)); err != nil {
				return fmt.Errorf("demo resource of %q: %w", c.Name, err)
			}
		}
	}
	return nil
}

// actAs returns ctx acting as the demo user of email.
func actAs(ctx context.Context, d Services, email string) (context.Context, error) {
	var p accounts.Principal
	err := d.Accounts.Store().DB.WithContext(ctx).Raw(`SELECT u.id AS user_id, u.email, u.roles, u.locale, a.id AS account_id,
			a.kind AS account_kind, a.path AS account_path
		FROM users u JOIN accounts a ON a.id = u.account_id WHERE lower(u.email) = lower(?)`, email).Scan(&p).Error
	if err != nil || p.UserID == 0 {
		return nil, fmt.Errorf("the demo user %s: %v", email, err)
	}
	return accounts.WithPrincipal(ctx, &p), nil
}

// invite has the partner user byEmail invite the personal account of email.
func invite(ctx context.Context, d Services, byEmail, email string) error {
	as, err := actAs(ctx, d, byEmail)
	if err != nil {
		return fmt.Errorf("demo invitation: %w", err)
	}
	if _, err := d.Lifecycle.Invite(as, email); err != nil {
		return fmt.Errorf("demo invitation of %s: %w", email, err)
	}
	return nil
}

// migrate leaves Delta Direct's batch taking Meridian Health (with 25,000
// of credit) from Cobalt Solutions submitted, awaiting Cobalt's approval.
func migrate(ctx context.Context, d Services, customers []*models.Account) error {
	as, err := actAs(ctx, d, "admin@delta.example")
	if err != nil {
		return fmt.Errorf("demo migration: %w", err)
	}
	var meridian *models.Account
	for _, c := range customers {
		if c.Name == "Meridian Health" {
			meridian = c
		}
	}
	if meridian == nil || meridian.ParentID == nil {
		return fmt.Errorf("demo migration: Meridian Health is missing")
	}
	m, err := d.Migration.Create(as, *meridian.ParentID, []migration.Row{{Line: 2, AccountID: meridian.ID, Credit: decimal.RequireFromString("25000")}}, nil)
	if err != nil {
		return fmt.Errorf("demo migration: %w", err)
	}
	if _, err := d.Migration.Submit(as, m.ID); err != nil {
		return fmt.Errorf("demo migration: submit: %w", err)
	}
	return nil
}

// bills gives last month a full month of usage, generates and issues its
// partner bills under an incentive policy, rates Aurora's customer bills
// (5% off list) and has Aurora's finance user apply for the payout of its
// incentive.
func bills(ctx context.Context, d Services, customers []*models.Account, sum *Summary) error {
	loc := d.Billing.Location()
	prev := models.MonthOf(d.Accounts.Store().Now(), loc).Prev()
	res, err := d.Spend.Ingest(ctx, spend.SliceSource(expenditures(customers, prev.End(loc).Add(-time.Hour), "demo-prev")))
	if err != nil {
		return fmt.Errorf("demo expenditures of %s: %w", prev, err)
	}
	sum.Expenditures += res.Accepted
	dec := decimal.RequireFromString
	if _, err := d.Billing.CreatePolicy(ctx, "Partner incentive FY2026", prev, billing.Tiers{
		{Threshold: dec("0"), Percent: dec("1")}, {Threshold: dec("100000"), Percent: dec("2")}, {Threshold: dec("500000"), Percent: dec("3")}}); err != nil {
		return fmt.Errorf("demo incentive policy: %w", err)
	}
	if _, err := d.Billing.GeneratePartnerBills(ctx, prev); err != nil {
		return fmt.Errorf("demo partner bills: %w", err)
	}
	if sum.Bills, err = d.Billing.IssueMonth(ctx, prev); err != nil {
		return fmt.Errorf("demo partner bills: %w", err)
	}
	as, err := actAs(ctx, d, "finance@aurora.example")
	if err != nil {
		return fmt.Errorf("demo bills: %w", err)
	}
	p, _ := accounts.PrincipalFrom(as)
	aurora := p.AccountID
	if _, err := d.Billing.CreateRatingRule(as, aurora, "", dec("-5"), prev); err != nil {
		return fmt.Errorf("demo rating rule: %w", err)
	}
	if _, err := d.Billing.GenerateCustomerBills(as, aurora, prev); err != nil {
		return fmt.Errorf("demo customer bills: %w", err)
	}
	incs, err := d.Billing.Incentives(as, billing.IncentiveFilter{}, 1, 0)
	if err != nil || len(incs.Items) == 0 {
		return fmt.Errorf("demo incentive of Aurora: %v", err)
	}
	if _, err := d.Billing.ApplyForPayout(as, incs.Items[0].ID); err != nil {
		return fmt.Errorf("demo payout application: %w", err)
	}
	return nil
}

// expenditures makes 30 days of usage for each customer: daily pay-per-use
// compute and storage, and a monthly database subscription; amounts vary by
// customer and day but are the same on every run.
func expenditures(customers []*models.Account, now time.Time, prefix string) []spend.Record {
	products := []struct {
		code  string
		mode  models.BillingMode
		base  int64 // cents per day
		every int   // days between records
	}{
		{"ecs.g7.large", models.PayPerUse, 4210, 1},
		{"oss.standard", models.PayPerUse, 385, 1},
		{"rds.mysql.ha", models.Subscription, 129900, 30},
	}
	var out []spend.Record
	for ci, c := range customers {
		for day := 29; day >= 0; day-- {
			for pi, p := range products {
				if day%p.every != 0 {
					continue
				}
				cents := p.base*int64(ci+1)/2 + int64((day*7+ci*13+pi*5)%97)*10
				if c.Name == "Nimbus Games" {
					cents *= 3 // a heavy spender that overruns its credit
				}
				list := decimal.New(cents, -2)
				out = append(out, spend.Record{
					ExternalID:  fmt.Sprintf("%s-%d-%s-%d", prefix, c.ID, p.code, day),
					CustomerID:  c.ID,
					ProductCode: p.code,
					Region:      "cn-hangzhou",
					BillingMode: p.mode,
					UsageAt:     now.Add(-time.Duration(day)*24*time.Hour - time.Hour),
					List:        list,
					Actual:      list.Mul(decimal.RequireFromString("0.85")).Round(2),
				})
			}
		}
	}
	return out
}

func create(ctx context.Context, d Services, parentID int64, n node, sum *Summary, customers *[]*models.Account) error {
	svc := d.Accounts
	in := accounts.CreateInput{Kind: n.kind, ParentID: parentID, Name: n.name, Currency: n.currency, Tags: n.tags}
	if n.email != "" {
		in.Email = &n.email
	}
	if n.phone != "" {
		in.Phone = &n.phone
	}
	a, err := svc.Create(ctx, in)
	if err != nil {
		return fmt.Errorf("demo account %q: %w", n.name, err)
	}
	sum.Accounts++
	if n.credit != "" {
		amount := decimal.RequireFromString(n.credit)
		if a.Depth == 1 {
			_, err = d.Credit.SetLimit(ctx, a.ID, amount)
		} else {
			_, err = d.Credit.Allocate(ctx, a.ID, amount)
		}
		if err != nil {
			return fmt.Errorf("demo credit of %q: %w", n.name, err)
		}
	}
	if a.Kind == models.KindCustomer {
		*customers = append(*customers, a)
	}
	for _, u := range n.users {
		if _, err := svc.CreateUser(ctx, accounts.CreateUserInput{AccountID: a.ID, Email: u.email, Roles: u.roles, Locale: u.locale}); err != nil {
			return fmt.Errorf("demo user %q: %w", u.email, err)
		}
		sum.Users++
	}
	for _, c := range n.children {
		if err := create(ctx, d, a.ID, c, sum, customers); err != nil {
			return err
		}
	}
	return nil
}

// PartnerAdminEmail is the demo distributor's admin, whose inbox holds the
// demo's notifications.
const PartnerAdminEmail = "admin@aurora.example"

// PartnerToken returns a new token for PartnerAdminEmail, valid for ttl.
func PartnerToken(ctx context.Context, svc *accounts.Service, ttl time.Duration) (string, error) {
	var id int64
	if err := svc.Store().DB.WithContext(ctx).Raw(`SELECT id FROM users WHERE lower(email) = ?`, PartnerAdminEmail).Scan(&id).Error; err != nil {
		return "", fmt.Errorf("find %s: %w", PartnerAdminEmail, err)
	}
	if id == 0 {
		return "", fmt.Errorf("no user %s: the demo data was not loaded", PartnerAdminEmail)
	}
	token, _, err := svc.CreateToken(accounts.SystemContext(ctx), id, ttl)
	if err != nil {
		return "", fmt.Errorf("token for %s: %w", PartnerAdminEmail, err)
	}
	return token, nil
}
