package server_test

import (
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/server"
	"partnerd/testkit"
)

// Application links through GraphQL: a distributor creates a link, a
// personal account previews it and applies, the distributor sees the
// application with the applicant and approves it; the account is then the
// distributor's customer. Another distributor sees none of it.
func TestApplicationLinks_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	d1 := ids.Encode("Account", tr.D1.Account.ID)
	var created struct {
		CreateApplicationLink struct {
			Token, URL string
			Link       struct{ ID, Status string }
		}
	}
	const createQ = `mutation($p: ID!, $e: Time!, $n: Int) { createApplicationLink(partnerId: $p, kind: CUSTOMER, expiresAt: $e, usageLimit: $n) { token url link { id status } } }`
	expires := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	if r := api.Do(t, tr.D1.Token, createQ, map[string]any{"p": d1, "e": expires, "n": 0}); r.Code() != "VALIDATION" {
		t.Fatalf("a usage limit of 0: %s", r.Code())
	}
	if r := api.Do(t, tr.D2.Token, createQ, map[string]any{"p": d1, "e": expires, "n": 2}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor's link: %s", r.Code())
	}
	api.MustDo(t, tr.D1.Token, createQ, map[string]any{"p": d1, "e": expires, "n": 2}, &created)
	c := created.CreateApplicationLink
	if c.Token == "" || c.Link.Status != "UNUSED" || c.URL == "" {
		t.Fatalf("created: %+v", c)
	}
	var preview struct {
		ApplicationLinkPreview struct{ PartnerName, Kind, Status string }
	}
	api.MustDo(t, tr.P1.Token, `query($t: String!) { applicationLinkPreview(token: $t) { partnerName kind status } }`, map[string]any{"t": c.Token}, &preview)
	if preview.ApplicationLinkPreview.PartnerName != "Distributor One" || preview.ApplicationLinkPreview.Kind != "CUSTOMER" {
		t.Fatalf("preview: %+v", preview)
	}
	if r := api.Do(t, tr.C1.Token, `mutation($t: String!) { applyWithLink(token: $t) { id } }`, map[string]any{"t": c.Token}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("a customer (bound elsewhere) applying: %s", r.Code())
	}
	if r := api.Do(t, tr.R2.Token, `mutation($t: String!) { applyWithLink(token: $t) { id } }`, map[string]any{"t": c.Token}); r.Code() != "FORBIDDEN" {
		t.Fatalf("a partner applying: %s", r.Code())
	}
	var applied struct{ ApplyWithLink struct{ ID, Status string } }
	api.MustDo(t, tr.P1.Token, `mutation($t: String!) { applyWithLink(token: $t) { id status } }`, map[string]any{"t": c.Token}, &applied)
	if applied.ApplyWithLink.Status != "PENDING" {
		t.Fatalf("applied: %+v", applied)
	}
	var pending struct {
		LinkApplications struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					ID        string
					Applicant struct{ Name string }
					Link      *struct{ Uses int }
				}
			}
		}
	}
	api.MustDo(t, tr.D1.Token, `query($p: ID) { linkApplications(partnerId: $p, status: PENDING) { totalCount edges { node { id applicant { name } link { uses } } } } }`,
		map[string]any{"p": d1}, &pending)
	if pending.LinkApplications.TotalCount != 1 || pending.LinkApplications.Edges[0].Node.Applicant.Name != "Personal One" ||
		pending.LinkApplications.Edges[0].Node.Link == nil || pending.LinkApplications.Edges[0].Node.Link.Uses != 1 {
		t.Fatalf("pending: %+v", pending)
	}
	if r := api.Do(t, tr.D2.Token, `mutation($id: ID!) { approveLinkApplication(id: $id) { id } }`, map[string]any{"id": applied.ApplyWithLink.ID}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor approving: %s", r.Code())
	}
	var approved struct {
		ApproveLinkApplication struct {
			Status    string
			Applicant struct{ Kind, Status string }
		}
	}
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { approveLinkApplication(id: $id) { status applicant { kind status } } }`,
		map[string]any{"id": applied.ApplyWithLink.ID}, &approved)
	if a := approved.ApproveLinkApplication; a.Status != "APPROVED" || a.Applicant.Kind != "CUSTOMER" || a.Applicant.Status != "FROZEN" {
		t.Fatalf("approved: %+v", a)
	}
	var links struct {
		ApplicationLinks struct {
			Edges []struct {
				Node struct {
					Status    string
					Remaining *int
				}
			}
		}
	}
	api.MustDo(t, tr.D1.Token, `query($p: ID!) { applicationLinks(partnerId: $p) { edges { node { status remaining } } } }`, map[string]any{"p": d1}, &links)
	if e := links.ApplicationLinks.Edges; len(e) != 1 || e[0].Node.Status != "USED" || e[0].Node.Remaining == nil || *e[0].Node.Remaining != 1 {
		t.Fatalf("links: %+v", links)
	}
}
