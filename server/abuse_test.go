package server_test

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/server"
	"partnerd/testkit"
)

// A caller over its rate gets 429 with RATE_LIMITED and Retry-After, and
// its request changes nothing; other tokens keep their own budget, bad
// tokens are counted too, and probes are never limited.
func TestRateLimit(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{RateLimit: server.RateLimit{Rate: 1, Period: time.Hour, Burst: 3}})
	d1 := ids.Encode("Account", a.D1.Account.ID)
	setLimit := func(token, amount string) httpResult {
		body, _ := json.Marshal(map[string]any{"query": `mutation($id: ID!, $a: Decimal!) { setCreditLimit(accountId: $id, amount: $a) { id } }`,
			"variables": map[string]any{"id": d1, "a": amount}})
		return send(t, a, "POST", "/graphql", "application/json", strings.NewReader(string(body)), map[string]string{"Authorization": "Bearer " + token})
	}
	for i := range 3 {
		r := setLimit(a.Platform.Token, "100.00")
		if r.status != 200 || strings.Contains(r.body, "errors") {
			t.Fatalf("request %d within the burst: %d %s", i+1, r.status, r.body)
		}
		if r.header.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: RateLimit-Remaining %q", i+1, r.header.Get("RateLimit-Remaining"))
		}
	}
	r := setLimit(a.Platform.Token, "999.00")
	if r.status != 429 || !strings.Contains(r.body, `"code":"RATE_LIMITED"`) {
		t.Fatalf("over the rate: %d %s", r.status, r.body)
	}
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	var unchanged bool
	if err := a.Store.DB.Raw("SELECT credit_limit = 100 FROM credit_balances WHERE account_id = ?", a.D1.Account.ID).Scan(&unchanged).Error; err != nil {
		t.Fatal(err)
	}
	if !unchanged {
		t.Fatal("the refused mutation changed the limit")
	}

	// Another token has its own budget.
	if r := get(t, a, "/graphql?query="+url.QueryEscape("{ me { id } }"), map[string]string{"Authorization": "Bearer " + a.D1.Token}); r.status != 200 {
		t.Fatalf("another token: %d %s", r.status, r.body)
	}
	// A flood of bad tokens is limited like good ones (by the token's hash).
	codes := map[int]int{}
	for range 5 {
		codes[get(t, a, "/graphql?query="+url.QueryEscape("{ me { id } }"), map[string]string{"Authorization": "Bearer pat_guess"}).status]++
	}
	if codes[401] != 3 || codes[429] != 2 {
		t.Fatalf("bad tokens: %v, want 3×401 then 2×429", codes)
	}
	// Probes and metrics are never limited.
	for range 10 {
		if r := get(t, a, "/healthz", nil); r.status != 200 {
			t.Fatalf("/healthz: %d", r.status)
		}
	}
}

// Pages of allowed origins get their preflights answered and may read
// answers; other origins get 403 on a preflight and no CORS headers.
func TestCORS(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{CORSOrigins: []string{"https://partners.example.com"}})
	preflight := func(origin string) httpResult {
		return send(t, a, "OPTIONS", "/graphql", "", nil, map[string]string{"Origin": origin,
			"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"})
	}
	r := preflight("https://partners.example.com")
	if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "https://partners.example.com" ||
		!strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") || r.header.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("allowed preflight: %d %v", r.status, r.header)
	}
	r = preflight("https://evil.example.net")
	if r.status != 403 || r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin's preflight: %d %v", r.status, r.header)
	}
	q := "/graphql?query=" + url.QueryEscape("{ me { id } }")
	r = get(t, a, q, map[string]string{"Origin": "https://partners.example.com", "Authorization": "Bearer " + a.D1.Token})
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "https://partners.example.com" || !strings.Contains(r.header.Get("Vary"), "Origin") {
		t.Fatalf("allowed origin's request: %d %v", r.status, r.header)
	}
	r = get(t, a, q, map[string]string{"Origin": "https://evil.example.net", "Authorization": "Bearer " + a.D1.Token})
	if r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("other origin may read the answer: %v", r.header)
	}
}

// No state changes through a request a browser sends cross-site without a
// preflight: a form post or a text/plain body is not GraphQL here, and
// without the Authorization header (which only a preflighted request can
// carry cross-origin) a multipart upload is unauthenticated. A mutation
// over GET is refused.
func TestCSRF(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	d1 := ids.Encode("Account", a.D1.Account.ID)
	mutation := `mutation { setCreditLimit(accountId: "` + d1 + `", amount: "777.00") { id } }`
	body, _ := json.Marshal(map[string]any{"query": mutation})
	for _, r := range []httpResult{
		send(t, a, "POST", "/graphql", "application/x-www-form-urlencoded", strings.NewReader("query="+url.QueryEscape(mutation)), nil),
		send(t, a, "POST", "/graphql", "text/plain", strings.NewReader(string(body)), nil),
		send(t, a, "POST", "/graphql", "text/plain", strings.NewReader(string(body)), map[string]string{"Authorization": "Bearer " + a.Platform.Token}),
		send(t, a, "POST", "/graphql", "multipart/form-data; boundary=b", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"operations\"\r\n\r\n"+string(body)+"\r\n--b\r\nContent-Disposition: form-data; name=\"map\"\r\n\r\n{}\r\n--b--\r\n"), nil),
		get(t, a, "/graphql?query="+url.QueryEscape(mutation), map[string]string{"Authorization": "Bearer " + a.Platform.Token}),
	} {
		if r.status == 200 && !strings.Contains(r.body, `"errors"`) {
			t.Fatalf("a simple request was served: %d %s", r.status, r.body)
		}
	}
	var n int64
	if err := a.Store.DB.Raw("SELECT count(*) FROM credit_balances WHERE credit_limit = 777").Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("a simple cross-site request changed a credit limit")
	}
}
