package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/testkit"
)

func accountID(p testkit.Party) string { return ids.Encode("Account", p.Account.ID) }

// rows counts what a refused request must not have changed.
type rows struct{ accounts, users, tokens, audit, outbox int64 }

func snapshot(t *testing.T, a *testkit.API) rows {
	t.Helper()
	var r rows
	for q, dst := range map[string]*int64{
		"SELECT count(*) FROM accounts":   &r.accounts,
		"SELECT count(*) FROM users":      &r.users,
		"SELECT count(*) FROM api_tokens": &r.tokens,
		"SELECT count(*) FROM audit_log":  &r.audit,
		"SELECT count(*) FROM outbox":     &r.outbox,
	} {
		if err := a.Store.DB.Raw(q).Scan(dst).Error; err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return r
}

// wantError checks the first error's code and that it carries a message a
// person can act on (never the INTERNAL mask).
func wantError(t *testing.T, what string, r *testkit.Response, code string) {
	t.Helper()
	if r.Code() != code {
		t.Errorf("%s: code %q (status %d, errors %+v, data %s), want %s", what, r.Code(), r.Status, r.Errors, r.Data, code)
		return
	}
	if msg := r.Errors[0].Message; msg == "" || msg == "internal error" {
		t.Errorf("%s: message %q", what, msg)
	}
}

const createAccount = `mutation($input: CreateAccountInput!) { createAccount(input: $input) { id kind name } }`

func TestErrors_MalformedAndForeignIDs(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	q := `query($id: ID!) { account(id: $id) { id name } }`
	for id, code := range map[string]string{
		"!!!":                                  "VALIDATION",
		"QWNjb3VudDo=":                         "VALIDATION", // "Account:" padded: not our encoding, no key
		"":                                     "VALIDATION",
		ids.Encode("Account", 0):               "VALIDATION",
		ids.Encode("User", a.D1.User.ID):       "NOT_FOUND", // a real object of another type
		ids.Encode("AuditEntry", 1):            "NOT_FOUND",
		ids.Encode("Account", a.C5.Account.ID): "NOT_FOUND", // D2's customer, outside D1's subtree
		ids.Encode("Account", 1<<40):           "NOT_FOUND",
	} {
		r := a.Do(t, a.D1.Token, q, map[string]any{"id": id})
		wantError(t, fmt.Sprintf("account(%q)", id), r, code)
		if string(r.Data) != `{"account":null}` {
			t.Errorf("account(%q): data %s, want account null", id, r.Data)
		}
	}
	// NOT_FOUND says the same for an account outside the scope as for none at all.
	outside := a.Do(t, a.D1.Token, q, map[string]any{"id": accountID(a.C5)})
	missing := a.Do(t, a.D1.Token, q, map[string]any{"id": ids.Encode("Account", 1<<40)})
	if outside.Errors[0].Message != missing.Errors[0].Message {
		t.Errorf("out of scope %q, missing %q: the messages tell them apart", outside.Errors[0].Message, missing.Errors[0].Message)
	}
	// The parent of an account in scope is simply absent above the partner.
	var d struct {
		Account struct{ Parent *struct{ ID string } }
	}
	a.MustDo(t, a.D1.Token, `query($id: ID!) { account(id: $id) { parent { id } } }`, map[string]any{"id": accountID(a.D1)}, &d)
	if d.Account.Parent != nil {
		t.Errorf("D1 sees its parent %v", d.Account.Parent)
	}
	// node(id) follows the same rules.
	wantError(t, "node(garbage)", a.Do(t, a.D1.Token, `{ node(id: "!!!") { id } }`, nil), "VALIDATION")
	wantError(t, "node(other subtree)", a.Do(t, a.D1.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": accountID(a.C5)}), "NOT_FOUND")
	wantError(t, "node(unknown type)", a.Do(t, a.D1.Token, `query($id: ID!) { node(id: $id) { id } }`, map[string]any{"id": ids.Encode("Widget", 1)}), "NOT_FOUND")
}

func TestErrors_CreateAccountRefusals(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	input := func(kind models.AccountKind, parent testkit.Party, mut func(map[string]any)) map[string]any {
		in := map[string]any{"kind": string(kind), "parentId": accountID(parent), "name": "New account"}
		if mut != nil {
			mut(in)
		}
		return map[string]any{"input": in}
	}
	set := func(k string, v any) func(map[string]any) { return func(m map[string]any) { m[k] = v } }
	for name, c := range map[string]struct {
		token string
		vars  map[string]any
		code  string
	}{
		"CUSTOMER under PLATFORM":       {a.Platform.Token, input(models.KindCustomer, a.Platform, nil), "VALIDATION"},
		"DISTRIBUTOR under D1":          {a.Platform.Token, input(models.KindDistributor, a.D1, nil), "VALIDATION"},
		"DISTRIBUTOR under D1 by D1":    {a.D1.Token, input(models.KindDistributor, a.D1, nil), "VALIDATION"},
		"RESELLER under R1":             {a.Platform.Token, input(models.KindReseller, a.R1, nil), "VALIDATION"},
		"CUSTOMER under C1":             {a.Platform.Token, input(models.KindCustomer, a.C1, nil), "VALIDATION"},
		"PERSONAL under D1":             {a.Platform.Token, input(models.KindPersonal, a.D1, nil), "VALIDATION"},
		"kind PLATFORM":                 {a.Platform.Token, input(models.KindPlatform, a.Platform, nil), "VALIDATION"},
		"empty name":                    {a.D1.Token, input(models.KindCustomer, a.R1, set("name", "")), "VALIDATION"},
		"blank name":                    {a.D1.Token, input(models.KindCustomer, a.R1, set("name", " \t ")), "VALIDATION"},
		"name of 201 characters":        {a.D1.Token, input(models.KindCustomer, a.R1, set("name", strings.Repeat("x", 201))), "VALIDATION"},
		"invalid email":                 {a.D1.Token, input(models.KindCustomer, a.R1, set("email", "no-at-sign")), "VALIDATION"},
		"phone 12345":                   {a.D1.Token, input(models.KindCustomer, a.R1, set("phone", "12345")), "VALIDATION"},
		"currency XYZ":                  {a.D1.Token, input(models.KindCustomer, a.R1, set("currency", "XYZ")), "VALIDATION"},
		"currency cny":                  {a.D1.Token, input(models.KindCustomer, a.R1, set("currency", "cny")), "VALIDATION"},
		"bad tag key":                   {a.D1.Token, input(models.KindCustomer, a.R1, set("tags", []map[string]any{{"key": "a b", "value": "v"}})), "VALIDATION"},
		"unknown kind in variables":     {a.D1.Token, input("GOD", a.R1, nil), "VALIDATION"},
		"parent ID of another type":     {a.D1.Token, input(models.KindCustomer, a.R1, set("parentId", ids.Encode("User", a.R1.User.ID))), "NOT_FOUND"},
		"malformed parent ID":           {a.D1.Token, input(models.KindCustomer, a.R1, set("parentId", "!!!")), "VALIDATION"},
		"parent in another subtree":     {a.D1.Token, input(models.KindCustomer, a.D2, nil), "NOT_FOUND"},
		"no token":                      {"", input(models.KindCustomer, a.R1, nil), "UNAUTHENTICATED"},
		"customer creating a sibling":   {a.C1.Token, input(models.KindCustomer, a.R1, nil), "NOT_FOUND"},
		"missing required input fields": {a.D1.Token, map[string]any{"input": map[string]any{"kind": "CUSTOMER"}}, "VALIDATION"},
	} {
		before := snapshot(t, a)
		r := a.Do(t, c.token, createAccount, c.vars)
		wantError(t, name, r, c.code)
		if string(r.Data) != "null" && len(r.Data) != 0 {
			t.Errorf("%s: data %s, want null", name, r.Data)
		}
		if after := snapshot(t, a); after != before {
			t.Errorf("%s: a refused request changed the database: %+v -> %+v", name, before, after)
		}
	}

	// An unknown enum written in the document is refused before execution.
	before := snapshot(t, a)
	r := a.Do(t, a.Platform.Token, fmt.Sprintf(`mutation { createAccount(input: {kind: GOD, parentId: %q, name: "x"}) { id } }`, accountID(a.D1)), nil)
	wantError(t, "enum literal GOD", r, "VALIDATION")
	if after := snapshot(t, a); after != before {
		t.Errorf("enum literal: %+v -> %+v", before, after)
	}

	// The same input, corrected, goes through: the refusals were about the input.
	var ok struct{ CreateAccount struct{ Kind, Name string } }
	a.MustDo(t, a.D1.Token, createAccount, input(models.KindCustomer, a.R1, set("currency", "USD")), &ok)
	if ok.CreateAccount.Kind != "CUSTOMER" {
		t.Fatalf("created %+v", ok)
	}
}

func TestErrors_Authentication(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	me := `{ me { id } }`

	r := a.Do(t, "", me, nil)
	wantError(t, "me without a token", r, "UNAUTHENTICATED")
	if r.Status != 200 {
		t.Errorf("me without a token: status %d, want 200 (the request itself is fine)", r.Status)
	}
	// Introspection needs no token.
	a.MustDo(t, "", `{ __type(name: "Account") { name } }`, nil, nil)

	for _, bad := range []string{"pd_not-a-token", "garbage", a.D1.Token + "x"} {
		r := a.Do(t, bad, me, nil)
		if r.Status != 401 || r.Code() != "UNAUTHENTICATED" {
			t.Errorf("token %q: status %d code %q, want 401 UNAUTHENTICATED", bad, r.Status, r.Code())
		}
	}

	// A revoked token stops working at once.
	var tok struct {
		CreateAPIToken struct{ ID, Token string } `json:"createApiToken"`
	}
	uid := ids.Encode("User", a.R1.User.ID)
	a.MustDo(t, a.D1.Token, `mutation($u: ID!) { createApiToken(userId: $u) { id token } }`, map[string]any{"u": uid}, &tok)
	a.MustDo(t, tok.CreateAPIToken.Token, me, nil, nil)
	a.MustDo(t, a.D1.Token, `mutation($id: ID!) { revokeApiToken(id: $id) }`, map[string]any{"id": tok.CreateAPIToken.ID}, nil)
	if r := a.Do(t, tok.CreateAPIToken.Token, me, nil); r.Status != 401 || r.Code() != "UNAUTHENTICATED" {
		t.Errorf("revoked token: status %d code %q, want 401 UNAUTHENTICATED", r.Status, r.Code())
	}

	// An expired token too.
	var exp struct {
		CreateAPIToken struct {
			ID, Token string
			ExpiresAt *string
		} `json:"createApiToken"`
	}
	a.MustDo(t, a.D1.Token, `mutation($u: ID!) { createApiToken(userId: $u, ttlHours: 1) { id token expiresAt } }`, map[string]any{"u": uid}, &exp)
	if exp.CreateAPIToken.ExpiresAt == nil {
		t.Fatal("a token with ttlHours has no expiresAt")
	}
	a.MustDo(t, exp.CreateAPIToken.Token, me, nil, nil)
	key, err := ids.Decode(exp.CreateAPIToken.ID, "ApiToken")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Store.DB.Exec("UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = ?", key).Error; err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // past the second an accepted token is trusted without a query
	if r := a.Do(t, exp.CreateAPIToken.Token, me, nil); r.Status != 401 || r.Code() != "UNAUTHENTICATED" {
		t.Errorf("expired token: status %d code %q, want 401 UNAUTHENTICATED", r.Status, r.Code())
	}

	before := snapshot(t, a)
	for name, ttl := range map[string]int{"ttlHours 0": 0, "ttlHours -5": -5, "ttlHours beyond five years": 5*365*24 + 1} {
		r := a.Do(t, a.D1.Token, `mutation($u: ID!, $h: Int) { createApiToken(userId: $u, ttlHours: $h) { id } }`, map[string]any{"u": uid, "h": ttl})
		wantError(t, name, r, "VALIDATION")
	}
	r = a.Do(t, a.D1.Token, `mutation($u: ID!) { createApiToken(userId: $u) { id } }`, map[string]any{"u": ids.Encode("User", a.C5.User.ID)})
	wantError(t, "token for a user outside the scope", r, "NOT_FOUND")
	if after := snapshot(t, a); after != before {
		t.Errorf("refused token requests changed the database: %+v -> %+v", before, after)
	}
}

func TestErrors_ViewerIsForbiddenInScopeNotFoundOutside(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	viewer := a.AddUser(t, a.D1.Account, models.RoleViewer)
	before := snapshot(t, a)
	in := map[string]any{"input": map[string]any{"kind": "CUSTOMER", "parentId": accountID(a.R1), "name": "By a viewer"}}
	wantError(t, "viewer in its scope", a.Do(t, viewer.Token, createAccount, in), "FORBIDDEN")
	in = map[string]any{"input": map[string]any{"kind": "CUSTOMER", "parentId": accountID(a.D2), "name": "By a viewer"}}
	wantError(t, "viewer outside its scope", a.Do(t, viewer.Token, createAccount, in), "NOT_FOUND")
	wantError(t, "viewer updating", a.Do(t, viewer.Token, `mutation($id: ID!) { updateAccount(id: $id, input: {name: "x"}) { id } }`,
		map[string]any{"id": accountID(a.C1)}), "FORBIDDEN")
	wantError(t, "viewer tagging outside", a.Do(t, viewer.Token, `mutation($id: ID!) { setAccountTags(accountId: $id, tags: []) { id } }`,
		map[string]any{"id": accountID(a.C5)}), "NOT_FOUND")
	wantError(t, "viewer reading the audit log", a.Do(t, viewer.Token, `query($id: ID!) { auditLog(accountId: $id) { edges { cursor } } }`,
		map[string]any{"id": accountID(a.D1)}), "FORBIDDEN")
	if after := snapshot(t, a); after != before {
		t.Errorf("a viewer changed the database: %+v -> %+v", before, after)
	}
	// The viewer still reads what is in scope.
	a.MustDo(t, viewer.Token, `query($id: ID!) { account(id: $id) { name } }`, map[string]any{"id": accountID(a.C1)}, nil)
}

// nest builds a query of exactly depth levels of data fields: me, parents, id.
func nest(depth int) string {
	return "{ me { " + strings.Repeat("parent { ", depth-2) + "id" + strings.Repeat(" }", depth-2) + " } }"
}

func TestErrors_QueryLimits(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	a.MustDo(t, a.D1.Token, nest(12), nil, nil)
	r := a.Do(t, a.D1.Token, nest(13), nil)
	wantError(t, "13 levels", r, "VALIDATION")
	if r.Errors[0].Extensions["reason"] != "DEPTH_LIMIT_EXCEEDED" {
		t.Errorf("13 levels: extensions %v", r.Errors[0].Extensions)
	}
	children := "{ me { " + strings.Repeat("children(first: 1) { edges { node { ", 13) + "id" + strings.Repeat(" } } }", 13) + " } }"
	wantError(t, "13 levels of children", a.Do(t, a.D1.Token, children, nil), "VALIDATION")
	// Fragments count where they are spread, and a fragment cannot hide depth.
	frag := `query { me { ...Deep } } fragment Deep on Account { ` + strings.Repeat("parent { ", 12) + "id" + strings.Repeat(" }", 12) + ` }`
	wantError(t, "depth through a fragment", a.Do(t, a.D1.Token, frag, nil), "VALIDATION")

	r = a.Do(t, a.D1.Token, `{ me { children(first: 500) { edges { node { children(first: 500) { edges { node { id } } } } } } } }`, nil)
	wantError(t, "complexity", r, "VALIDATION")
	if r.Errors[0].Extensions["reason"] != "COMPLEXITY_LIMIT_EXCEEDED" {
		t.Errorf("complexity: extensions %v", r.Errors[0].Extensions)
	}
	// The default page size counts too: 50 × 50 × 50 children.
	r = a.Do(t, a.D1.Token, `{ me { children { edges { node { children { edges { node { children { edges { node { id } } } } } } } } } } }`, nil)
	wantError(t, "complexity with default pages", r, "VALIDATION")

	wantError(t, "syntax error", a.Do(t, a.D1.Token, `{ me { id `, nil), "VALIDATION")
	wantError(t, "unknown field", a.Do(t, a.D1.Token, `{ me { password } }`, nil), "VALIDATION")
	wantError(t, "empty query", a.Do(t, a.D1.Token, ``, nil), "VALIDATION")
	wantError(t, "unknown operation name", a.Raw(t, a.D1.Token, "application/json", []byte(`{"query":"query A { me { id } }","operationName":"B"}`)), "VALIDATION")
	wantError(t, "body not JSON", a.Raw(t, a.D1.Token, "application/json", []byte(`{"query":`)), "VALIDATION")

	for _, first := range []int{-1, 10000, 501} {
		r := a.Do(t, a.D1.Token, `query($n: Int) { me { children(first: $n) { edges { cursor } } } }`, map[string]any{"n": first})
		wantError(t, fmt.Sprintf("children(first: %d)", first), r, "VALIDATION")
		r = a.Do(t, a.D1.Token, `query($n: Int, $id: ID!) { auditLog(accountId: $id, first: $n) { edges { cursor } } }`, map[string]any{"n": first, "id": accountID(a.D1)})
		wantError(t, fmt.Sprintf("auditLog(first: %d)", first), r, "VALIDATION")
		r = a.Do(t, a.D1.Token, `query($n: Int) { me { users(first: $n) { edges { cursor } } } }`, map[string]any{"n": first})
		wantError(t, fmt.Sprintf("users(first: %d)", first), r, "VALIDATION")
	}
	for _, after := range []string{"!!!", "Yzow", "eDox", ids.Encode("Account", 1), "Yzot"} { // c:0, x:1, an ID, c:-
		r := a.Do(t, a.D1.Token, `query($a: String) { me { children(first: 2, after: $a) { edges { cursor } } } }`, map[string]any{"a": after})
		wantError(t, fmt.Sprintf("after %q", after), r, "VALIDATION")
	}
	// A real cursor pages.
	var page struct {
		Me struct {
			Children struct {
				Edges    []struct{ Cursor string }
				PageInfo struct {
					HasNextPage bool
					EndCursor   string
				}
			}
		}
	}
	a.MustDo(t, a.D1.Token, `{ me { children(first: 2) { edges { cursor } pageInfo { hasNextPage endCursor } } } }`, nil, &page)
	if len(page.Me.Children.Edges) != 2 || !page.Me.Children.PageInfo.HasNextPage {
		t.Fatalf("first page %+v", page)
	}
	a.MustDo(t, a.D1.Token, `query($a: String) { me { children(first: 2, after: $a) { edges { cursor } pageInfo { hasNextPage endCursor } } } }`,
		map[string]any{"a": page.Me.Children.PageInfo.EndCursor}, &page)
	if len(page.Me.Children.Edges) != 1 || page.Me.Children.PageInfo.HasNextPage {
		t.Fatalf("second page %+v", page)
	}
}

func TestErrors_ParserTokenLimit(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{Limits: server.Limits{ParserTokens: 200}})
	a.MustDo(t, a.D1.Token, `{ me { id name } }`, nil, nil)
	long := "{ me { " + strings.Repeat("name ", 300) + "} }"
	wantError(t, "300 tokens", a.Do(t, a.D1.Token, long, nil), "VALIDATION")
}

func TestErrors_BodyCap(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{Limits: server.Limits{BodyBytes: 4096}})
	body := fmt.Appendf(nil, `{"query":"{ me { id } }","variables":{"pad":%q}}`, strings.Repeat("x", 10<<10))
	r := a.Raw(t, a.D1.Token, "application/json", body)
	if r.Status != 413 || r.Code() != "VALIDATION" {
		t.Fatalf("10 KB body: status %d code %q, want 413 VALIDATION", r.Status, r.Code())
	}
	// Under the cap all is well.
	a.MustDo(t, a.D1.Token, `{ me { id } }`, map[string]any{"pad": strings.Repeat("x", 2000)}, nil)
}

func TestErrors_CreateUser(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	q := `mutation($a: ID!, $e: String!, $r: [Role!]!) { createUser(accountId: $a, email: $e, roles: $r) }`
	before := snapshot(t, a)
	for name, c := range map[string]struct {
		vars map[string]any
		code string
	}{
		"duplicate email":          {map[string]any{"a": accountID(a.R1), "e": a.C1.User.Email, "r": []string{"VIEWER"}}, "CONFLICT"},
		"duplicate email in caps":  {map[string]any{"a": accountID(a.R1), "e": strings.ToUpper(a.C1.User.Email), "r": []string{"VIEWER"}}, "CONFLICT"},
		"REVIEWER outside":         {map[string]any{"a": accountID(a.R1), "e": "rev@r1.example", "r": []string{"REVIEWER"}}, "VALIDATION"},
		"unknown role in variable": {map[string]any{"a": accountID(a.R1), "e": "god@r1.example", "r": []string{"GOD"}}, "VALIDATION"},
		"no role":                  {map[string]any{"a": accountID(a.R1), "e": "none@r1.example", "r": []string{}}, "VALIDATION"},
		"bad email":                {map[string]any{"a": accountID(a.R1), "e": "nobody", "r": []string{"VIEWER"}}, "VALIDATION"},
		"account outside":          {map[string]any{"a": accountID(a.C5), "e": "x@c5.example", "r": []string{"VIEWER"}}, "NOT_FOUND"},
	} {
		wantError(t, name, a.Do(t, a.D1.Token, q, c.vars), c.code)
	}
	wantError(t, "bad phone", a.Do(t, a.D1.Token, `mutation($a: ID!) { createUser(accountId: $a, email: "p@r1.example", phone: "12345", roles: [VIEWER]) }`,
		map[string]any{"a": accountID(a.R1)}), "VALIDATION")
	wantError(t, "bad locale", a.Do(t, a.D1.Token, `mutation($a: ID!) { createUser(accountId: $a, email: "l@r1.example", roles: [VIEWER], locale: "fr-FR") }`,
		map[string]any{"a": accountID(a.R1)}), "VALIDATION")
	wantError(t, "unknown role literal", a.Do(t, a.D1.Token, `mutation($a: ID!) { createUser(accountId: $a, email: "g@r1.example", roles: [GOD]) }`,
		map[string]any{"a": accountID(a.R1)}), "VALIDATION")
	if after := snapshot(t, a); after != before {
		t.Errorf("refused createUser changed the database: %+v -> %+v", before, after)
	}
	a.MustDo(t, a.Platform.Token, q, map[string]any{"a": accountID(a.Platform), "e": "rev@platform.test", "r": []string{"REVIEWER"}}, nil)
}

func TestErrors_TagsAndUpdate(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	tags := make([]map[string]any, 51)
	for i := range tags {
		tags[i] = map[string]any{"key": fmt.Sprintf("k%d", i), "value": "v"}
	}
	before := snapshot(t, a)
	q := `mutation($id: ID!, $t: [TagInput!]!) { setAccountTags(accountId: $id, tags: $t) { id } }`
	for name, tt := range map[string][]map[string]any{
		"51 tags":       tags,
		"bad key":       {{"key": "a b", "value": "v"}},
		"duplicate key": {{"key": "a", "value": "1"}, {"key": "a", "value": "2"}},
	} {
		wantError(t, name, a.Do(t, a.D1.Token, q, map[string]any{"id": accountID(a.C1), "t": tt}), "VALIDATION")
	}
	u := `mutation($id: ID!, $in: UpdateAccountInput!) { updateAccount(id: $id, input: $in) { id } }`
	for name, in := range map[string]map[string]any{
		"blank name":  {"name": "  "},
		"bad email":   {"email": "x@"},
		"phone 12345": {"phone": "12345"},
	} {
		wantError(t, name, a.Do(t, a.D1.Token, u, map[string]any{"id": accountID(a.C1), "in": in}), "VALIDATION")
	}
	wantError(t, "update outside", a.Do(t, a.D1.Token, u, map[string]any{"id": accountID(a.C5), "in": map[string]any{"name": "x"}}), "NOT_FOUND")
	if after := snapshot(t, a); after != before {
		t.Errorf("refused changes changed the database: %+v -> %+v", before, after)
	}
}
