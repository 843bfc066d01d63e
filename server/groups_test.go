package server_test

import (
	"testing"

	"partnerd/ids"
	"partnerd/server"
	"partnerd/testkit"
)

// Billing groups and shared units through GraphQL: create, read from the
// accounts and the partner, node(id), member changes, delete; another
// partner sees nothing.
func TestGroups_EndToEnd(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	c1 := ids.Encode("Account", tr.C1.Account.ID)
	var extra struct{ CreateAccount struct{ ID string } }
	api.MustDo(t, tr.R1.Token, `mutation($p: ID!) { createAccount(input: {kind: CUSTOMER, parentId: $p, name: "C1 b"}) { id } }`,
		map[string]any{"p": ids.Encode("Account", tr.R1.Account.ID)}, &extra)
	c1b := extra.CreateAccount.ID

	var g struct {
		CreateCustomerGroup struct {
			ID            string
			Name          string
			Administrator struct{ ID string }
			Members       []struct{ ID string }
		}
	}
	api.MustDo(t, tr.R1.Token, `mutation($a: ID!, $m: [ID!]!) { createCustomerGroup(name: "East", administratorId: $a, memberIds: $m) { id name administrator { id } members { id } } }`,
		map[string]any{"a": c1, "m": []string{c1b}}, &g)
	if g.CreateCustomerGroup.Administrator.ID != c1 || len(g.CreateCustomerGroup.Members) != 2 {
		t.Fatalf("group %+v", g)
	}
	gid := g.CreateCustomerGroup.ID
	var u struct{ CreateSharingUnit struct{ ID string } }
	api.MustDo(t, tr.R1.Token, `mutation($m: [ID!]!) { createSharingUnit(name: "Plan", memberIds: $m) { id } }`, map[string]any{"m": []string{c1b}}, &u)

	var acct struct {
		Account struct {
			GroupRole     string
			CustomerGroup struct{ Name string }
			SharingUnit   *struct{ ID string }
			Parent        struct {
				CustomerGroups struct{ TotalCount int }
				SharingUnits   struct {
					Edges []struct {
						Node struct{ Members []struct{ ID string } }
					}
				}
			}
		}
	}
	api.MustDo(t, tr.D1.Token, `query($id: ID!) { account(id: $id) { groupRole customerGroup { name } sharingUnit { id }
		parent { customerGroups { totalCount } sharingUnits { edges { node { members { id } } } } } } }`, map[string]any{"id": c1}, &acct)
	a := acct.Account
	if a.GroupRole != "ADMINISTRATOR" || a.CustomerGroup.Name != "East" || a.SharingUnit != nil || a.Parent.CustomerGroups.TotalCount != 1 ||
		len(a.Parent.SharingUnits.Edges) != 1 || a.Parent.SharingUnits.Edges[0].Node.Members[0].ID != c1b {
		t.Fatalf("account %+v", a)
	}
	var n struct{ Node struct{ Name string } }
	api.MustDo(t, tr.R1.Token, `query($id: ID!) { node(id: $id) { ... on CustomerGroup { name } } }`, map[string]any{"id": gid}, &n)
	if n.Node.Name != "East" {
		t.Fatalf("node %+v", n)
	}
	if r := api.Do(t, tr.D2.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": gid}); r.Code() != "NOT_FOUND" {
		t.Fatalf("D2 reads R1's group: %s", r.Code())
	}
	if r := api.Do(t, tr.R1.Token, `mutation($g: ID!, $a: ID!) { removeGroupMember(groupId: $g, accountId: $a) { id } }`,
		map[string]any{"g": gid, "a": c1}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("removing the administrator: %s", r.Code())
	}
	var del struct{ DeleteCustomerGroup bool }
	api.MustDo(t, tr.R1.Token, `mutation($g: ID!) { deleteCustomerGroup(id: $g) }`, map[string]any{"g": gid}, &del)
	var after struct{ Account struct{ GroupRole string } }
	api.MustDo(t, tr.C1.Token, `query($id: ID!) { account(id: $id) { groupRole } }`, map[string]any{"id": c1}, &after)
	if !del.DeleteCustomerGroup || after.Account.GroupRole != "NONE" {
		t.Fatalf("after delete: %v %+v", del, after)
	}
}
