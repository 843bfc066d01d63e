// Package demo loads a small, realistic Partner Center so a new user can
// explore the API at once: a distributor with two second-level resellers, a
// single-tier reseller, customers under each, a personal account, and users.
// It builds everything through the domain services, as users would.
package demo

import (
	"context"
	"fmt"

	"partnerd/accounts"
	"partnerd/models"
)

// AdminEmail is the demo platform admin.
const AdminEmail = "admin@platform.example"

// Summary tells what Load made.
type Summary struct {
	// Loaded is false when the database already held a tree (nothing was added).
	Loaded   bool
	Accounts int
	Users    int
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
	{kind: models.KindDistributor, name: "Aurora Cloud Distribution", email: "ops@aurora.example", phone: "+8613800000001",
		users: []user{
			{"admin@aurora.example", []models.Role{models.RoleAdmin}, "en-US"},
			{"finance@aurora.example", []models.Role{models.RoleFinance}, "zh-CN"},
			{"ops@aurora.example", []models.Role{models.RoleOperator}, "en-US"},
		},
		children: []node{
			{kind: models.KindReseller, name: "Beacon Systems", email: "hello@beacon.example", phone: "+8613800000002",
				users: []user{{"admin@beacon.example", []models.Role{models.RoleAdmin}, "en-US"}},
				children: []node{
					{kind: models.KindCustomer, name: "Harbor Logistics", email: "it@harbor.example", tags: []accounts.Tag{{Key: "costCenter", Value: "CC-100"}, {Key: "env", Value: "prod"}}},
					{kind: models.KindCustomer, name: "Kite Analytics", email: "it@kite.example"},
				}},
			{kind: models.KindReseller, name: "Cobalt Solutions", email: "team@cobalt.example", phone: "+8613800000003",
				users: []user{{"admin@cobalt.example", []models.Role{models.RoleAdmin}, "zh-CN"}},
				children: []node{
					{kind: models.KindCustomer, name: "Lumen Retail", email: "it@lumen.example"},
					{kind: models.KindCustomer, name: "Meridian Health", email: "it@meridian.example", tags: []accounts.Tag{{Key: "env", Value: "prod"}}},
				}},
			{kind: models.KindCustomer, name: "Nimbus Games", email: "it@nimbus.example", phone: "+8613800000004",
				users: []user{{"owner@nimbus.example", []models.Role{models.RoleAdmin}, "en-US"}}},
		}},
	{kind: models.KindReseller, name: "Delta Direct", email: "sales@delta.example", currency: "USD",
		users: []user{{"admin@delta.example", []models.Role{models.RoleAdmin}, "en-US"}},
		children: []node{
			{kind: models.KindCustomer, name: "Orion Media", email: "it@orion.example", currency: "USD"},
			{kind: models.KindCustomer, name: "Pioneer Labs", email: "it@pioneer.example", currency: "USD"},
		}},
	{kind: models.KindPersonal, name: "Quinn Personal", email: "quinn@personal.example",
		users: []user{{"quinn@personal.example", []models.Role{models.RoleAdmin}, "en-US"}}},
}

// Load creates the demo tree under the platform when the tree is empty, as
// the system principal. The platform must exist (bootstrap).
func Load(ctx context.Context, svc *accounts.Service) (Summary, error) {
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
	for _, n := range tree {
		if err := create(ctx, svc, plat.ID, n, &sum); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func create(ctx context.Context, svc *accounts.Service, parentID int64, n node, sum *Summary) error {
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
	for _, u := range n.users {
		if _, err := svc.CreateUser(ctx, accounts.CreateUserInput{AccountID: a.ID, Email: u.email, Roles: u.roles, Locale: u.locale}); err != nil {
			return fmt.Errorf("demo user %q: %w", u.email, err)
		}
		sum.Users++
	}
	for _, c := range n.children {
		if err := create(ctx, svc, a.ID, c, sum); err != nil {
			return err
		}
	}
	return nil
}
