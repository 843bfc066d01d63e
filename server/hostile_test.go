package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"

	gqlintrospection "github.com/99designs/gqlgen/graphql/introspection"

	"partnerd/server"
	"partnerd/testkit"
)

// hostileRequest is one request of the hostile corpus, built once and sent
// as often as needed.
type hostileRequest struct {
	method      string
	query       string // the URL query of a GET
	contentType string
	body        []byte
	chunked     bool // hide the length: the body goes out chunked
	token       string
}

// hostileCase is a request and how the server must refuse it: the HTTP
// status, the extensions.code of the first error and, for the query
// limits, its extensions.reason.
type hostileCase struct {
	name   string
	req    hostileRequest
	status int
	code   string
	reason string
}

type hostileResult struct {
	status int
	body   []byte
	resp   testkit.Response
}

// reason is the extensions.reason of the first error, if any.
func (r *hostileResult) reason() any {
	if len(r.resp.Errors) == 0 {
		return nil
	}
	return r.resp.Errors[0].Extensions["reason"]
}

func sendHostile(tb testing.TB, a *testkit.API, h hostileRequest) hostileResult {
	tb.Helper()
	u := a.Server.URL + "/graphql"
	if h.query != "" {
		u += "?" + h.query
	}
	var body io.Reader
	if h.body != nil {
		body = bytes.NewReader(h.body)
		if h.chunked {
			body = io.MultiReader(body)
		}
	}
	req, err := http.NewRequestWithContext(context.Background(), h.method, u, body)
	if err != nil {
		tb.Fatal(err)
	}
	if h.contentType != "" {
		req.Header.Set("Content-Type", h.contentType)
	}
	if h.token != "" {
		req.Header.Set("Authorization", "Bearer "+h.token)
	}
	resp, err := a.Server.Client().Do(req)
	if err != nil {
		tb.Fatalf("%s /graphql: %v", h.method, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("read the answer: %v", err)
	}
	out := hostileResult{status: resp.StatusCode, body: raw}
	if err := json.Unmarshal(raw, &out.resp); err != nil {
		tb.Fatalf("answer %d is not JSON: %.200s", resp.StatusCode, raw)
	}
	return out
}

func gqlBody(query string, vars map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return b
}

// repeated joins n strings made by f, separated by spaces.
func repeated(n int, f func(i int) string) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(f(i))
		b.WriteByte(' ')
	}
	return b.String()
}

// hostileCorpus is the corpus of issue 11 point 7 against the fixture of a,
// sent as a platform admin unless a case says otherwise, with the server's
// default Limits.
func hostileCorpus(tb testing.TB, a *testkit.API) []hostileCase {
	tb.Helper()
	admin := a.Platform.Token
	post := func(query string, vars map[string]any) hostileRequest {
		return hostileRequest{method: http.MethodPost, contentType: "application/json", body: gqlBody(query, vars), token: admin}
	}
	raw := func(body string) hostileRequest {
		return hostileRequest{method: http.MethodPost, contentType: "application/json", body: []byte(body), token: admin}
	}
	c1, d1 := accountID(a.C1), accountID(a.D1)
	const (
		unprocessable = http.StatusUnprocessableEntity
		val           = "VALIDATION"
	)
	var cs []hostileCase
	add := func(name string, r hostileRequest, status int, reason string) {
		cs = append(cs, hostileCase{name: name, req: r, status: status, code: val, reason: reason})
	}

	// Nesting: 50 levels of children, directly and through 50 fragments.
	add("depth/children_50", post("{ me { "+strings.Repeat("children(first: 1) { edges { node { ", 50)+"id"+strings.Repeat(" } } }", 50)+" } }", nil),
		200, "DEPTH_LIMIT_EXCEEDED")
	var nested strings.Builder
	nested.WriteString("query { me { ...F0 } }")
	for i := range 50 {
		fmt.Fprintf(&nested, " fragment F%d on Account { children(first: 1) { edges { node { ...F%d } } } }", i, i+1)
	}
	nested.WriteString(" fragment F50 on Account { id }")
	add("depth/fragments_50", post(nested.String(), nil), 200, "DEPTH_LIMIT_EXCEEDED")

	// Aliases: 1,000 of a cheap field, of an expensive list field, of a
	// root field by ID; and 5,000 repeats of one field (no alias: gqlgen's
	// validation compares every pair, seconds of CPU before the limit).
	add("aliases/1000_me", post("{ "+repeated(1000, func(i int) string { return fmt.Sprintf("a%d: me { id }", i) })+"}", nil),
		200, "ALIAS_LIMIT_EXCEEDED")
	add("aliases/1000_children", post("{ me { "+repeated(1000, func(i int) string { return fmt.Sprintf("a%d: children { edges { node { id } } }", i) })+"} }", nil),
		200, "ALIAS_LIMIT_EXCEEDED")
	add("aliases/1000_account", post("query($id: ID!) { "+repeated(1000, func(i int) string { return fmt.Sprintf("a%d: account(id: $id) { id name }", i) })+"}", map[string]any{"id": c1}),
		200, "ALIAS_LIMIT_EXCEEDED")
	add("aliases/101_me", post("{ "+repeated(101, func(i int) string { return fmt.Sprintf("a%d: me { id }", i) })+"}", nil), 200, "ALIAS_LIMIT_EXCEEDED")
	add("fields/5000_repeats", post("{ me { "+strings.Repeat("id ", 5000)+"} }", nil), 200, "FIELD_LIMIT_EXCEEDED")

	// Fragments: cycles, and 40 fragments each spreading the next twice
	// (2^40 fields once spread; gqlgen's complexity walk spreads them all).
	add("fragments/cycle", post(`query { me { ...A } } fragment A on Account { parent { ...B } } fragment B on Account { parent { ...A } }`, nil),
		unprocessable, "GRAPHQL_VALIDATION_FAILED")
	add("fragments/self", post(`query { me { ...A } } fragment A on Account { id ...A }`, nil), unprocessable, "GRAPHQL_VALIDATION_FAILED")
	var bomb strings.Builder
	bomb.WriteString("query { me { ...F0 } }")
	for i := range 40 {
		fmt.Fprintf(&bomb, " fragment F%d on Account { ...F%d ... on Account { ...F%d } }", i, i+1, i+1)
	}
	bomb.WriteString(" fragment F40 on Account { id }")
	add("fragments/fanout_2^40", post(bomb.String(), nil), 200, "FIELD_LIMIT_EXCEEDED")

	// Directives: 1,000 on one field, known and unknown.
	add("directives/1000_include", post("{ me { id "+strings.Repeat("@include(if: true) ", 1000)+"} }", nil), 200, "DIRECTIVE_LIMIT_EXCEEDED")
	add("directives/1000_skip", post("{ me { id "+strings.Repeat("@skip(if: false) ", 1000)+"} }", nil), 200, "DIRECTIVE_LIMIT_EXCEEDED")
	add("directives/1000_unknown", post("{ me { id "+repeated(1000, func(i int) string { return fmt.Sprintf("@d%d", i) })+"} }", nil), 200, "DIRECTIVE_LIMIT_EXCEEDED")
	add("directives/unknown", post("{ me { id @evil } }", nil), unprocessable, "GRAPHQL_VALIDATION_FAILED")

	// Huge lists and variables, against mutations that would change data.
	freeze := `mutation($ids: [ID!]!) { freezeAccounts(accountIds: $ids, mode: ACCOUNT, reason: "hostile") { accountId code } }`
	ids := func(n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = c1
		}
		return s
	}
	add("lists/ids_inline_100k", post(`mutation { freezeAccounts(accountIds: [`+strings.Repeat("1, ", 100000)+`], mode: ACCOUNT, reason: "hostile") { accountId } }`, nil),
		unprocessable, "GRAPHQL_PARSE_FAILED")
	add("lists/ids_variable_100k", post(freeze, map[string]any{"ids": ids(100000)}), http.StatusRequestEntityTooLarge, "")
	add("lists/ids_variable_900KB", post(freeze, map[string]any{"ids": ids((900 << 10) / (len(c1) + 3))}), 200, "LIST_LIMIT_EXCEEDED")
	add("lists/string_variable_900KB", post(`mutation($id: ID!, $r: String!) { setPurchaseBan(customerId: $id, banned: true, reason: $r) { id } }`,
		map[string]any{"id": c1, "r": strings.Repeat("x", 900<<10)}), 200, "")
	add("lists/name_variable_900KB", post(`mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n}) { id } }`,
		map[string]any{"id": c1, "n": strings.Repeat("x", 900<<10)}), 200, "")

	// Bodies over BodyBytes, with and without a Content-Length.
	big := gqlBody("{ me { id } }", map[string]any{"pad": strings.Repeat("x", 2<<20)})
	add("body/2MiB", hostileRequest{method: http.MethodPost, contentType: "application/json", body: big, token: admin}, http.StatusRequestEntityTooLarge, "")
	add("body/2MiB_chunked", hostileRequest{method: http.MethodPost, contentType: "application/json", body: big, chunked: true, token: admin}, http.StatusRequestEntityTooLarge, "")

	// Invalid UTF-8: encoding/json would turn it into U+FFFD and the
	// rename below would store it.
	add("utf8/query", raw("{\"query\":\"{ me { id \xff\xfe } }\"}"), http.StatusBadRequest, "")
	add("utf8/query_comment", raw("{\"query\":\"{ me { id } } # \xff\xfe\"}"), http.StatusBadRequest, "")
	add("utf8/variables", raw(`{"query":"mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n}) { id } }","variables":{"id":"`+c1+"\",\"n\":\"bad \xff\xfe name\"}}"),
		http.StatusBadRequest, "")
	add("utf8/get", hostileRequest{method: http.MethodGet, query: "query=" + url.QueryEscape("{ me { id } }") + "&variables=" + url.QueryEscape("{\"x\":\"\xff\"}"), token: admin},
		http.StatusBadRequest, "")

	// Batches, and bodies that are not one JSON object.
	add("batch/2", raw(`[{"query":"{ me { id } }"},{"query":"{ me { name } }"}]`), http.StatusBadRequest, "")
	add("batch/1000_mutations", raw("["+strings.TrimSuffix(strings.Repeat(`{"query":"mutation { setPurchaseBan(customerId: \"`+c1+`\", banned: true, reason: \"batch\") { id } }"},`, 1000), ",")+"]"),
		http.StatusBadRequest, "")
	add("batch/not_json", raw(`{"query":"{ me { id } }"`+strings.Repeat(" ", 1000)), http.StatusBadRequest, "")
	add("batch/wrong_type", raw(`{"query": 5, "variables": {"pad": "`+strings.Repeat("<", 500<<10)+`"}}`), http.StatusBadRequest, "")

	// Introspection: nested past IntrospectionDepth, and aliased __schema
	// fields (each walks the whole schema), with and without a token.
	add("introspection/deep_fields", post("{ __schema { types { "+strings.Repeat("fields { type { ", 10)+"name"+strings.Repeat(" } }", 10)+" } } }", nil),
		200, "DEPTH_LIMIT_EXCEEDED")
	add("introspection/deep_oftype", post("{ __schema { types { fields { type { "+strings.Repeat("ofType { ", 30)+"name"+strings.Repeat(" }", 30)+" } } } } }", nil),
		200, "DEPTH_LIMIT_EXCEEDED")
	schemas := "{ " + repeated(1000, func(i int) string { return fmt.Sprintf("s%d: __schema { types { name fields { name } } }", i) }) + "}"
	add("introspection/1000_schemas", post(schemas, nil), 200, "INTROSPECTION_LIMIT_EXCEEDED")
	anon := post(schemas, nil)
	anon.token = ""
	add("introspection/1000_schemas_anonymous", anon, 200, "INTROSPECTION_LIMIT_EXCEEDED")
	add("introspection/2_schemas", post("{ a: __schema { types { name } } b: __schema { types { name } } }", nil), 200, "INTROSPECTION_LIMIT_EXCEEDED")

	// Uploads over UploadBytes (20 MiB), declared and chunked, of a
	// mutation that would start a bulk change.
	var up bytes.Buffer
	mw := multipart.NewWriter(&up)
	_ = mw.WriteField("operations", `{"query":"mutation($p: ID!, $f: Upload) { uploadBulkChanges(partnerId: $p, kind: BUDGETS, file: $f) { id } }","variables":{"p":"`+d1+`","f":null}}`)
	_ = mw.WriteField("map", `{"0":["variables.f"]}`)
	fw, err := mw.CreateFormFile("0", "budgets.csv")
	if err != nil {
		tb.Fatal(err)
	}
	_, _ = fw.Write(bytes.Repeat([]byte("x"), 21<<20))
	_ = mw.Close()
	add("upload/21MiB", hostileRequest{method: http.MethodPost, contentType: mw.FormDataContentType(), body: up.Bytes(), token: admin}, http.StatusRequestEntityTooLarge, "")
	add("upload/21MiB_chunked", hostileRequest{method: http.MethodPost, contentType: mw.FormDataContentType(), body: up.Bytes(), chunked: true, token: admin}, http.StatusLengthRequired, "")
	add("upload/malformed", hostileRequest{method: http.MethodPost, contentType: "multipart/form-data; boundary=b", token: admin,
		body: []byte("--b\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{}\r\n--b--\r\n")}, unprocessable, "")

	// Tokens and operations.
	add("tokens/100k", post("{ me { "+strings.Repeat("id ", 100000)+"} }", nil), unprocessable, "GRAPHQL_PARSE_FAILED")
	add("operations/1000_unnamed", post(repeated(1000, func(i int) string { return fmt.Sprintf("query Q%d { me { id } }", i) }), nil), 200, "OPERATION_NAME_REQUIRED")

	// Transport: a mutation through GET, other methods and content types.
	ban := `mutation { setPurchaseBan(customerId: "` + c1 + `", banned: true, reason: "via GET") { id } }`
	add("transport/mutation_get", hostileRequest{method: http.MethodGet, query: "query=" + url.QueryEscape(ban), token: admin}, http.StatusMethodNotAllowed, "")
	add("transport/text_plain", hostileRequest{method: http.MethodPost, contentType: "text/plain", body: gqlBody(ban, nil), token: admin}, http.StatusUnsupportedMediaType, "")
	add("transport/form", hostileRequest{method: http.MethodPost, contentType: "application/x-www-form-urlencoded", body: []byte("query=" + url.QueryEscape(ban)), token: admin},
		http.StatusUnsupportedMediaType, "")
	add("transport/put", hostileRequest{method: http.MethodPut, contentType: "application/json", body: gqlBody(ban, nil), token: admin}, http.StatusMethodNotAllowed, "")
	return cs
}

// dbFingerprint digests every table of the test's database (api_tokens'
// last_used_at aside: authenticating a request may touch it).
func dbFingerprint(t *testing.T, a *testkit.API) map[string]string {
	t.Helper()
	var tables []string
	if err := a.Store.DB.Raw(`SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`).Scan(&tables).Error; err != nil {
		t.Fatal(err)
	}
	out := make(map[string]string, len(tables))
	for _, tbl := range tables {
		var sum string
		q := fmt.Sprintf(`SELECT md5(coalesce(string_agg(x, ',' ORDER BY x), '')) FROM (SELECT (to_jsonb(t) - 'last_used_at')::text AS x FROM %q t) s`, tbl)
		if err := a.Store.DB.Raw(q).Scan(&sum).Error; err != nil {
			t.Fatalf("%s: %v", tbl, err)
		}
		out[tbl] = sum
	}
	return out
}

// accountControls are what the corpus's mutations aim at (C1's name,
// status and purchase ban).
type accountControls struct {
	Name           string
	Status         string
	PurchaseBanned bool
}

func controls(t *testing.T, a *testkit.API) accountControls {
	t.Helper()
	var c accountControls
	if err := a.Store.DB.Raw("SELECT name, status, purchase_banned FROM accounts WHERE id = ?", a.C1.Account.ID).Scan(&c).Error; err != nil {
		t.Fatal(err)
	}
	return c
}

func heapAlloc() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHostileGraphQL sends the hostile corpus (issue 11, point 7): every
// request is refused with its status and code, nothing changes in the
// database, the heap stays bounded, and the server answers normally
// afterwards. How fast each refusal is, BenchmarkHostileGraphQL tells.
func TestHostileGraphQL(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	corpus := hostileCorpus(t, a)
	before, controlsBefore := dbFingerprint(t, a), controls(t, a)
	heap := heapAlloc()

	for _, c := range corpus {
		t.Run(c.name, func(t *testing.T) {
			r := sendHostile(t, a, c.req)
			t.Logf("%d %s %v: %s", r.status, r.resp.Code(), r.reason(), r.body)
			if r.status != c.status || r.resp.Code() != c.code {
				t.Fatalf("status %d, code %q; want %d %s: %.300s", r.status, r.resp.Code(), c.status, c.code, r.body)
			}
			if c.reason != "" && r.reason() != c.reason {
				t.Errorf("reason %v, want %s", r.reason(), c.reason)
			}
			if msg := r.resp.Errors[0].Message; msg == "" || msg == "internal error" || len(msg) > 200 {
				t.Errorf("message %q: a person must be able to act on it, and it must not echo the request", msg)
			}
			// One short refusal: no echo of the request, no error per repeat.
			if len(r.resp.Errors) != 1 || len(r.body) > 1024 {
				t.Errorf("%d errors in %d bytes: %.300s", len(r.resp.Errors), len(r.body), r.body)
			}
			if d := strings.TrimSpace(string(r.resp.Data)); d != "" && d != "null" {
				t.Errorf("data %s", d)
			}
		})
	}

	// The corpus is built before the first measure, so what remains is what
	// the server kept: a bound, generous, on what refusals may leave behind.
	grown := int64(heapAlloc()) - int64(heap)
	t.Logf("the heap grew by %d KiB over the corpus", grown>>10)
	if grown > 256<<20 {
		t.Errorf("the heap grew by %d MiB over the corpus", grown>>20)
	}
	after := dbFingerprint(t, a)
	for tbl, sum := range before {
		if after[tbl] != sum {
			t.Errorf("table %s changed", tbl)
		}
	}
	if c1 := controls(t, a); c1 != controlsBefore {
		t.Errorf("C1's controls changed: %+v -> %+v", controlsBefore, c1)
	}

	// The server is healthy: probes, a query by POST and by GET, and the
	// full introspection query tools send, which the limits must let by.
	if r := get(t, a, "/healthz", nil); r.status != 200 || r.body != "ok\n" {
		t.Fatalf("/healthz: %d %q", r.status, r.body)
	}
	var me struct{ Me struct{ ID, Name string } }
	a.MustDo(t, a.Platform.Token, `{ me { id name } }`, nil, &me)
	if me.Me.ID != accountID(a.Platform) || me.Me.Name != a.Platform.Account.Name {
		t.Errorf("me: %+v", me)
	}
	if r := get(t, a, "/graphql?query="+url.QueryEscape("{ me { id } }"), map[string]string{"Authorization": "Bearer " + a.D1.Token}); r.status != 200 || !strings.Contains(r.body, accountID(a.D1)) {
		t.Errorf("GET query: %d %s", r.status, r.body)
	}
	var schema struct {
		Schema struct{ Types []struct{ Name string } } `json:"__schema"`
	}
	a.MustDo(t, "", gqlintrospection.Query, nil, &schema)
	if len(schema.Schema.Types) < 50 {
		t.Errorf("introspection: %d types", len(schema.Schema.Types))
	}
	// Just under the limits is served.
	a.MustDo(t, a.Platform.Token, "{ "+repeated(100, func(i int) string { return fmt.Sprintf("a%d: me { id }", i) })+"}", nil, nil)
	a.MustDo(t, a.Platform.Token, "{ me { "+strings.Repeat("id ", 499)+"} }", nil, nil)
}

// BenchmarkHostileGraphQL times each refusal of the corpus against one
// server (go test ./server/ -run '^$' -bench HostileGraphQL -benchtime 20x);
// the goal is under 50 ms each.
func BenchmarkHostileGraphQL(b *testing.B) {
	a := testkit.NewAPI(b, server.Options{})
	for _, c := range hostileCorpus(b, a) {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if r := sendHostile(b, a, c.req); r.status != c.status {
					b.Fatalf("status %d, want %d: %.300s", r.status, c.status, r.body)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/op")
		})
	}
}
