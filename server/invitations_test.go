package server_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/testkit"
)

var tokenInLink = regexp.MustCompile(`/invitations/accept\?token=(inv_[A-Za-z0-9_-]+)`)

// Invitations end to end: a reseller invites a personal account by its
// user's email, the email reaches the SMTP server with the link and token,
// a user of that account accepts, and the account is the reseller's FROZEN
// customer; the refusals around it change nothing.
func TestInvitations_EndToEnd(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	w := testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix})
	owner := tr.AddUserWith(t, accounts.CreateUserInput{AccountID: tr.P1.Account.ID, Email: "owner@personal.test", Roles: []models.Role{models.RoleAdmin}})
	p1 := ids.Encode("Account", tr.P1.Account.ID)

	// Bad input: unknown email, a partner's email, a customer inviting, the platform inviting.
	for name, c := range map[string]struct {
		token, email, code string
	}{
		"unknown email":      {tr.R1.Token, "nobody@nowhere.test", "VALIDATION"},
		"not personal":       {tr.R1.Token, tr.C2.User.Email, "VALIDATION"},
		"a customer invites": {tr.C1.Token, "owner@personal.test", "FORBIDDEN"},
		"the platform":       {tr.Platform.Token, "owner@personal.test", "FORBIDDEN"},
	} {
		r := api.Do(t, c.token, `mutation($e: String!) { inviteCustomer(email: $e) { id } }`, map[string]any{"e": c.email})
		if r.Code() != c.code {
			t.Fatalf("%s: %s, want %s", name, r.Code(), c.code)
		}
	}

	var inv struct {
		InviteCustomer struct {
			ID, Email, Status string
			Partner           struct{ Name string }
			ExpiresAt         time.Time
		}
	}
	api.MustDo(t, tr.R1.Token, `mutation($e: String!) { inviteCustomer(email: $e) { id email status partner { name } expiresAt } }`,
		map[string]any{"e": "Owner@Personal.test"}, &inv)
	if inv.InviteCustomer.Status != "PENDING" || inv.InviteCustomer.Partner.Name != "Reseller One" || time.Until(inv.InviteCustomer.ExpiresAt) < 6*24*time.Hour {
		t.Fatalf("invitation %+v", inv)
	}
	if r := api.Do(t, tr.R1.Token, `mutation($e: String!) { inviteCustomer(email: $e) { id } }`, map[string]any{"e": "owner@personal.test"}); r.Code() != "CONFLICT" {
		t.Fatalf("second pending invitation: %s", r.Code())
	}
	// The email carries the link with the token.
	var token string
	deadline := time.Now().Add(20 * time.Second)
	for token == "" && time.Now().Before(deadline) {
		for _, m := range w.SMTP.Messages() {
			if m.To[0] != "owner@personal.test" {
				continue
			}
			if !strings.Contains(m.TextBody, "https://partner.test/invitations/accept?token=") {
				t.Fatalf("no link to PUBLIC_URL in %s", m.TextBody)
			}
			if got := tokenInLink.FindStringSubmatch(m.TextBody); got != nil {
				token = got[1]
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if token == "" {
		t.Fatal("no invitation email with a token reached the personal account's user")
	}
	// The invitee sees it, with the inviting partner.
	var mine struct {
		Invitations struct {
			TotalCount int
			Edges      []struct {
				Node struct{ Partner struct{ Name string } }
			}
		}
	}
	api.MustDo(t, owner.Token, `{ invitations(status: PENDING) { totalCount edges { node { partner { name } } } } }`, nil, &mine)
	if mine.Invitations.TotalCount != 1 || mine.Invitations.Edges[0].Node.Partner.Name != "Reseller One" {
		t.Fatalf("the invitee's invitations: %+v", mine)
	}
	// Wrong account, unknown token.
	if r := api.Do(t, tr.C1.Token, `mutation($t: String!) { acceptInvitation(token: $t) { id } }`, map[string]any{"t": token}); r.Code() != "FORBIDDEN" {
		t.Fatalf("another account accepts: %s", r.Code())
	}
	if r := api.Do(t, owner.Token, `mutation { acceptInvitation(token: "inv_nope") { id } }`, nil); r.Code() != "NOT_FOUND" {
		t.Fatalf("unknown token: %s", r.Code())
	}

	var acc struct {
		AcceptInvitation struct {
			ID, Kind, Status, FrozenReason string
			Parent                         *struct{ ID string }
		}
	}
	api.MustDo(t, owner.Token, `mutation($t: String!) { acceptInvitation(token: $t) { id kind status frozenReason } }`, map[string]any{"t": token}, &acc)
	a := acc.AcceptInvitation
	if a.ID != p1 || a.Kind != "CUSTOMER" || a.Status != "FROZEN" || a.FrozenReason != "NEW_CUSTOMER" {
		t.Fatalf("accepted: %+v", a)
	}
	if r := api.Do(t, owner.Token, `mutation($t: String!) { acceptInvitation(token: $t) { id } }`, map[string]any{"t": token}); r.Code() != "CONFLICT" {
		t.Fatalf("accepting twice: %s", r.Code())
	}
	// The reseller now sees its new customer, and the parent history moved.
	var child struct {
		Account struct {
			Kind   string
			Parent struct{ Name string }
		}
	}
	api.MustDo(t, tr.R1.Token, `query($id: ID!) { account(id: $id) { kind parent { name } } }`, map[string]any{"id": p1}, &child)
	if child.Account.Kind != "CUSTOMER" || child.Account.Parent.Name != "Reseller One" {
		t.Fatalf("the reseller's view: %+v", child)
	}
	var open int64
	if err := tr.Store.DB.Raw(`SELECT count(*) FROM account_parent_history WHERE account_id = ? AND valid_to IS NULL AND parent_id = ?`,
		tr.P1.Account.ID, tr.R1.Account.ID).Scan(&open).Error; err != nil || open != 1 {
		t.Fatalf("parent history: %d open rows under R1 (%v)", open, err)
	}
	var list struct {
		Invitations struct {
			Edges []struct {
				Node struct {
					Status   string
					Customer *struct{ ID string }
				}
			}
		}
	}
	api.MustDo(t, tr.R1.Token, `{ invitations { edges { node { status customer { id } } } } }`, nil, &list)
	if len(list.Invitations.Edges) != 1 || list.Invitations.Edges[0].Node.Status != "ACCEPTED" || list.Invitations.Edges[0].Node.Customer.ID != p1 {
		t.Fatalf("the reseller's invitations: %+v", list)
	}
	w.WaitDeliveries(t, tr, notify.EventInvitationAnswered, 2, 20*time.Second) // R1's admin: in-site and email
	// Another partner sees none of it.
	var other struct{ Invitations struct{ TotalCount int } }
	api.MustDo(t, tr.D2.Token, `{ invitations { totalCount } }`, nil, &other)
	if other.Invitations.TotalCount != 0 {
		t.Fatalf("D2 sees %d invitations", other.Invitations.TotalCount)
	}
}

// Revoked, declined and expired invitations cannot be accepted.
func TestInvitations_RevokeDeclineExpire(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	owner := tr.AddUserWith(t, accounts.CreateUserInput{AccountID: tr.P1.Account.ID, Email: "owner@personal.test", Roles: []models.Role{models.RoleAdmin}})
	invite := func(by testkit.Party) (string, string) {
		t.Helper()
		var inv struct{ InviteCustomer struct{ ID string } }
		api.MustDo(t, by.Token, `mutation { inviteCustomer(email: "owner@personal.test") { id } }`, nil, &inv)
		var payload struct{ Token string }
		if err := tr.Store.DB.Raw(`SELECT payload->>'token' AS token FROM outbox WHERE event_type = 'invitation.sent' ORDER BY id DESC LIMIT 1`).Scan(&payload).Error; err != nil {
			t.Fatal(err)
		}
		return inv.InviteCustomer.ID, payload.Token
	}
	id, token := invite(tr.R1)
	if r := api.Do(t, tr.D2.Token, `mutation($id: ID!) { revokeInvitation(id: $id) { id } }`, map[string]any{"id": id}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another partner revokes: %s", r.Code())
	}
	var rev struct{ RevokeInvitation struct{ Status string } }
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { revokeInvitation(id: $id) { status } }`, map[string]any{"id": id}, &rev)
	if rev.RevokeInvitation.Status != "REVOKED" {
		t.Fatalf("revoked: %+v", rev)
	}
	if r := api.Do(t, owner.Token, `mutation($t: String!) { acceptInvitation(token: $t) { id } }`, map[string]any{"t": token}); r.Code() != "CONFLICT" {
		t.Fatalf("accepting a revoked invitation: %s", r.Code())
	}
	_, token = invite(tr.S1)
	var dec struct{ DeclineInvitation bool }
	api.MustDo(t, owner.Token, `mutation($t: String!) { declineInvitation(token: $t) }`, map[string]any{"t": token}, &dec)
	if r := api.Do(t, owner.Token, `mutation($t: String!) { acceptInvitation(token: $t) { id } }`, map[string]any{"t": token}); !dec.DeclineInvitation || r.Code() != "CONFLICT" {
		t.Fatalf("accepting a declined invitation: %s", r.Code())
	}
	_, token = invite(tr.D2)
	if err := tr.Store.DB.Exec(`UPDATE invitations SET expires_at = now() - interval '1 second' WHERE status = 'PENDING'`).Error; err != nil {
		t.Fatal(err)
	}
	if r := api.Do(t, owner.Token, `mutation($t: String!) { acceptInvitation(token: $t) { id } }`, map[string]any{"t": token}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("accepting an expired invitation: %s", r.Code())
	}
	var exp struct{ Invitations struct{ TotalCount int } }
	api.MustDo(t, owner.Token, `{ invitations(status: EXPIRED) { totalCount } }`, nil, &exp)
	if exp.Invitations.TotalCount != 1 {
		t.Fatalf("%d expired invitations", exp.Invitations.TotalCount)
	}
	var kind string
	if err := tr.Store.DB.Raw(`SELECT kind FROM accounts WHERE id = ?`, tr.P1.Account.ID).Scan(&kind).Error; err != nil || kind != "PERSONAL" {
		t.Fatalf("the account is %s after refusals", kind)
	}
	// A personal account frozen with its resources, or in arrears, cannot be invited.
	for name, q := range map[string]string{
		"frozen with resources": `UPDATE accounts SET status = 'FROZEN_WITH_RESOURCES', frozen_at = now(), frozen_reason = 'MANUAL' WHERE id = ?`,
		"in arrears":            `UPDATE credit_balances SET in_arrears = true WHERE account_id = ?`,
	} {
		if err := tr.Store.DB.Exec(q, tr.P1.Account.ID).Error; err != nil {
			t.Fatal(err)
		}
		if r := api.Do(t, tr.R1.Token, `mutation { inviteCustomer(email: "owner@personal.test") { id } }`, nil); r.Code() != "PRECONDITION_FAILED" {
			t.Fatalf("%s: %s", name, r.Code())
		}
		if err := tr.Store.DB.Exec(`UPDATE accounts SET status = 'ACTIVE', frozen_at = NULL, frozen_reason = NULL WHERE id = ?`, tr.P1.Account.ID).Error; err != nil {
			t.Fatal(err)
		}
		if err := tr.Store.DB.Exec(`UPDATE credit_balances SET in_arrears = false WHERE account_id = ?`, tr.P1.Account.ID).Error; err != nil {
			t.Fatal(err)
		}
	}
}
