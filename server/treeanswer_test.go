package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/testkit"
)

// compiledAnswers reads partnerd_graphql_compiled_answers_total.
func compiledAnswers(t *testing.T, a *testkit.API) float64 {
	t.Helper()
	mfs, err := a.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "partnerd_graphql_compiled_answers_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no partnerd_graphql_compiled_answers_total")
	return 0
}

// Tree queries answered by resolvers.AnswerTree give, byte for byte, the
// answer of gqlgen's own execution; queries it cannot answer plainly (an
// account outside the scope, invalid arguments, other fields) fall through
// to gqlgen and are answered (and refused) as before.
func TestAnswerTree_SameBytesAsGqlgen(t *testing.T) {
	compiled := testkit.NewAPI(t, server.Options{})
	tr := compiled.Tree
	plain := testkit.NewAPIOn(t, tr, server.Options{NoCompiledTree: true}, compiled)

	// A distributor with awkward names, contacts, kinds, statuses and tags.
	email, phone := "ops+x@example.test", "+8613800000000"
	root, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindDistributor, ParentID: tr.Platform.Account.ID,
		Name: "Dist \"quoted\" <b>&amp; \\ back\tslash 分销商 😀", Email: &email, Phone: &phone, Tags: []accounts.Tag{{Key: "region", Value: "east"}}})
	if err != nil {
		t.Fatal(err)
	}
	var resellers []*models.Account
	for i := range 4 {
		r, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindReseller, ParentID: root.ID,
			Name: fmt.Sprintf("Reseller %d\u2028\x01 ünïcode", i), Tags: []accounts.Tag{{Key: "tier", Value: fmt.Sprint(i % 2)}}})
		if err != nil {
			t.Fatal(err)
		}
		resellers = append(resellers, r)
		for j := range i * 2 {
			in := accounts.CreateInput{Kind: models.KindCustomer, ParentID: r.ID, Name: fmt.Sprintf("Customer %d.%d", i, j)}
			if j%3 == 0 {
				in.Email = &email
			}
			if _, err := tr.Accounts.Create(tr.Platform.Ctx, in); err != nil {
				t.Fatal(err)
			}
		}
	}
	for j := range 3 {
		if _, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: root.ID, Name: fmt.Sprintf("Direct customer %d", j)}); err != nil {
			t.Fatal(err)
		}
	}
	rootID, r1ID := ids.Encode("Account", root.ID), ids.Encode("Account", resellers[1].ID)
	cursorOf := func(id int64) string { return base64.RawURLEncoding.EncodeToString([]byte("c:" + fmt.Sprint(id))) }

	type query struct {
		name     string
		token    string
		query    string
		vars     map[string]any
		compiled bool // AnswerTree answers it (else gqlgen does)
		code     string
		contains string // a part of the answer, that the test has data
	}
	platform, d1 := tr.Platform.Token, tr.D1.Token
	queries := []query{
		{name: "three levels as the benchmark", token: platform, compiled: true, contains: `{"node":{"id":"`, vars: map[string]any{"id": rootID},
			query: `query($id: ID!, $after: String){ account(id: $id) { id name children(first: 10, after: $after) { edges { node { id name
				children(first: 10) { edges { node { id name children(first: 10) { edges { node { id name } } } } } } } } } } }`},
		{name: "every plain field, counts, page info, typenames", token: platform, compiled: true, vars: map[string]any{"id": rootID},
			query: `query Q($id: ID!) { __typename account(id: $id) { __typename id kind name email phone currency status tier
				children(first: 2) { __typename totalCount pageInfo { __typename hasNextPage endCursor } edges { __typename cursor node {
					id kind status tier email children { totalCount pageInfo { hasNextPage endCursor } edges { cursor node { name phone } } } } } } } }`},
		{name: "aliases, fragments, merged fields, directives", token: platform, compiled: true,
			vars: map[string]any{"id": rootID, "yes": true, "no": false},
			query: `query($id: ID!, $yes: Boolean!, $no: Boolean!) { top: account(id: $id) { ...F ... on Node { id } name @include(if: $yes) email @skip(if: $yes)
				first: children(first: 1) { edges { node { ...F } } }
				rest: children(first: 50, after: "` + cursorOf(resellers[0].ID) + `") { n: totalCount edges { c: cursor node { ... on Account { nm: name } tier @include(if: $no) } } }
			} }
			fragment F on Account { id name kind children(first: 3) { edges { node { name } } p: pageInfo { more: hasNextPage end: endCursor } } }`},
		{name: "filters", token: platform, compiled: true, vars: map[string]any{"id": rootID, "tag": map[string]any{"key": "tier", "value": "1"}},
			query: `query($id: ID!, $tag: TagInput) { account(id: $id) {
				resellers: children(kind: RESELLER) { totalCount edges { node { name } } }
				customers: children(kind: CUSTOMER, status: FROZEN) { totalCount edges { node { name status } } }
				active: children(status: ACTIVE) { totalCount edges { node { name } } }
				searched: children(search: "SELLER 2") { totalCount edges { node { name } } }
				tagged: children(tag: $tag) { totalCount edges { node { name children(search: "customer 1.") { totalCount edges { node { name } } } } } }
				none: children(search: "%_\\") { totalCount pageInfo { hasNextPage endCursor } edges { node { name } } }
				zero: children(first: 0) { totalCount pageInfo { hasNextPage endCursor } edges { cursor } }
			} }`},
		{name: "two roots, a leaf", token: platform, compiled: true, vars: map[string]any{"a": rootID, "b": r1ID, "c": ids.Encode("Account", tr.C1.Account.ID)},
			query: `query($a: ID!, $b: ID!, $c: ID!) { a: account(id: $a) { name } b: account(id: $b) { name children { edges { node { name } } } } c: account(id: $c) { children { totalCount pageInfo { hasNextPage endCursor } edges { cursor } } } }`},
		{name: "the distributor's own subtree", token: d1, compiled: true, vars: map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID)},
			query: `query($id: ID!) { account(id: $id) { name children { totalCount edges { node { name kind children { totalCount edges { node { name kind } } } } } } } }`},
		{name: "page after a cursor, given as a variable", token: platform, compiled: true,
			vars:  map[string]any{"id": rootID, "after": cursorOf(resellers[1].ID), "first": 2},
			query: `query($id: ID!, $after: String, $first: Int) { account(id: $id) { children(first: $first, after: $after) { pageInfo { hasNextPage endCursor } edges { cursor node { name } } } } }`},

		// Fall through to gqlgen.
		{name: "outside the caller's subtree", token: d1, vars: map[string]any{"id": rootID}, code: "NOT_FOUND",
			query: `query($id: ID!) { account(id: $id) { name children { edges { node { name } } } } }`},
		{name: "not an account id", token: platform, vars: map[string]any{"id": ids.Encode("User", 1)}, code: "NOT_FOUND",
			query: `query($id: ID!) { account(id: $id) { name } }`},
		{name: "invalid cursor", token: platform, vars: map[string]any{"id": rootID}, code: "VALIDATION",
			query: `query($id: ID!) { account(id: $id) { children(after: "nope") { edges { node { name } } } } }`},
		{name: "page too large", token: platform, vars: map[string]any{"id": rootID}, code: "VALIDATION",
			query: `query($id: ID!) { account(id: $id) { children(first: 501) { edges { node { name } } } } }`},
		{name: "tag without key", token: platform, vars: map[string]any{"id": rootID}, code: "VALIDATION",
			query: `query($id: ID!) { account(id: $id) { children(tag: {key: "", value: "x"}) { edges { node { name } } } } }`},
		{name: "search too long", token: platform, vars: map[string]any{"id": rootID, "s": strings.Repeat("x", 201)}, code: "VALIDATION",
			query: `query($id: ID!, $s: String) { account(id: $id) { children(search: $s) { edges { node { name } } } } }`},
		{name: "other fields", token: platform, vars: map[string]any{"id": rootID},
			query: `query($id: ID!) { account(id: $id) { name createdAt children { edges { node { name parent { name } tags { key value } } } } } }`},
		{name: "other roots", token: platform, vars: map[string]any{"id": rootID},
			query: `query($id: ID!) { me { id } account(id: $id) { name } }`},
		{name: "not authenticated", token: "", vars: map[string]any{"id": rootID}, code: "UNAUTHENTICATED",
			query: `query($id: ID!) { account(id: $id) { name } }`},
	}
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			before := compiledAnswers(t, compiled)
			got := compiled.Do(t, q.token, q.query, q.vars)
			n := compiledAnswers(t, compiled) - before
			want := plain.Do(t, q.token, q.query, q.vars)
			if q.compiled != (n == 1) {
				t.Fatalf("compiled answers: %v, want compiled %v", n, q.compiled)
			}
			if got.Status != want.Status || !bytes.Equal(got.Data, want.Data) {
				t.Fatalf("answers differ:\ncompiled %d %s\ngqlgen   %d %s", got.Status, got.Data, want.Status, want.Data)
			}
			ge, _ := json.Marshal(got.Errors)
			we, _ := json.Marshal(want.Errors)
			if !bytes.Equal(ge, we) {
				t.Fatalf("errors differ:\ncompiled %s\ngqlgen   %s", ge, we)
			}
			if got.Code() != q.code {
				t.Fatalf("code %q, want %q: %s", got.Code(), q.code, ge)
			}
			if q.contains != "" && !bytes.Contains(got.Data, []byte(q.contains)) {
				t.Fatalf("the answer lacks %s: %s", q.contains, got.Data)
			}
		})
	}
}

// Through the GET transport, which writes the response itself (not the
// POST writer's swap), a compiled answer has the same bytes too.
func TestAnswerTree_GetTransport(t *testing.T) {
	compiled := testkit.NewAPI(t, server.Options{})
	plain := testkit.NewAPIOn(t, compiled.Tree, server.Options{NoCompiledTree: true}, compiled)
	q := `query($id: ID!) { account(id: $id) { name children { totalCount edges { cursor node { id name kind children { edges { node { name } } } } } } } }`
	vars := `{"id":"` + ids.Encode("Account", compiled.Tree.D1.Account.ID) + `"}`
	body := func(a *testkit.API) string {
		t.Helper()
		r := get(t, a, "/graphql?query="+url.QueryEscape(q)+"&variables="+url.QueryEscape(vars), map[string]string{"Authorization": "Bearer " + a.Tree.Platform.Token})
		if r.status != 200 {
			t.Fatalf("GET: %d %s", r.status, r.body)
		}
		return r.body
	}
	before := compiledAnswers(t, compiled)
	got, want := body(compiled), body(plain)
	if compiledAnswers(t, compiled)-before != 1 {
		t.Fatal("the GET query was not compiled")
	}
	if got != want || !strings.Contains(got, `"name":"Customer One"`) {
		t.Fatalf("answers differ:\ncompiled %s\ngqlgen   %s", got, want)
	}
}
