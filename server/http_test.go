package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/hibiken/asynq"

	"partnerd/server"
	"partnerd/testkit"
)

type httpResult struct {
	status int
	header http.Header
	body   string
}

// get requests path without following redirects.
func get(t *testing.T, a *testkit.API, path string, header map[string]string) httpResult {
	t.Helper()
	return send(t, a, http.MethodGet, path, "", nil, header)
}

func send(t *testing.T, a *testkit.API, method, path, contentType string, body io.Reader, header map[string]string) httpResult {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, a.Server.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	c := *a.Server.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return httpResult{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func TestHTTP_Health(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	if r := get(t, a, "/healthz", nil); r.status != 200 {
		t.Fatalf("/healthz: %d %s", r.status, r.body)
	}
	r := get(t, a, "/readyz", nil)
	if r.status != 200 {
		t.Fatalf("/readyz: %d %s", r.status, r.body)
	}
	var status map[string]string
	if err := json.Unmarshal([]byte(r.body), &status); err != nil {
		t.Fatalf("/readyz body %q: %v", r.body, err)
	}
	if len(status) != 2 || status["postgres"] != "ok" || status["redis"] != "ok" {
		t.Fatalf("/readyz = %v", status)
	}
}

func TestHTTP_Metrics(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	a.MustDo(t, a.D1.Token, `query WhoAmI { me { id } }`, nil, nil)
	a.Do(t, "", `query Anonymous { me { id } }`, nil)
	// A queue with a task, so the queue gauge has something to report.
	qopt, err := asynq.ParseRedisURI(a.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(qopt)
	defer client.Close()
	if _, err := client.Enqueue(asynq.NewTask("test:noop", nil)); err != nil {
		t.Fatal(err)
	}

	r := get(t, a, "/metrics", nil)
	if r.status != 200 {
		t.Fatalf("/metrics: %d", r.status)
	}
	for _, want := range []string{
		`partnerd_graphql_requests_total{code="OK",operation="WhoAmI"} 1`,
		`partnerd_graphql_requests_total{code="UNAUTHENTICATED",operation="Anonymous"} 1`,
		`partnerd_graphql_request_duration_seconds_count{operation="WhoAmI"} 1`,
		"partnerd_outbox_backlog ",
		"partnerd_outbox_oldest_age_seconds ",
		`partnerd_queue_tasks{queue="default",state="pending"} 1`,
		`partnerd_deliveries_open{channel="EMAIL",status="PENDING"} 0`,
		`partnerd_deliveries_open{channel="SMS",status="SENDING"} 0`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// The fixture's account creations are waiting in the outbox (no relay runs here).
	var backlog int64
	if err := a.Store.DB.Raw("SELECT count(*) FROM outbox WHERE dispatched_at IS NULL").Scan(&backlog).Error; err != nil {
		t.Fatal(err)
	}
	if backlog == 0 || !regexp.MustCompile(`(?m)^partnerd_outbox_backlog [1-9]`).MatchString(r.body) {
		t.Errorf("backlog %d, metrics report %s", backlog, regexp.MustCompile(`(?m)^partnerd_outbox_backlog .*$`).FindString(r.body))
	}
}

func TestHTTP_Playground(t *testing.T) {
	off := testkit.NewAPI(t, server.Options{})
	if r := get(t, off, "/", nil); r.status != 404 || strings.Contains(strings.ToLower(r.body), "graphiql") {
		t.Errorf("GET / with the playground off: %d", r.status)
	}
	on := testkit.NewAPIOn(t, off.Tree, server.Options{Playground: true}, off)
	r := get(t, on, "/", nil)
	if r.status != 200 || !strings.Contains(strings.ToLower(r.body), "graphiql") || !strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("GET / with the playground on: %d %s", r.status, r.header.Get("Content-Type"))
	}
	if r := get(t, on, "/nothing-here", nil); r.status != 404 {
		t.Errorf("GET /nothing-here: %d", r.status)
	}
}

func TestHTTP_Monitoring(t *testing.T) {
	off := testkit.NewAPI(t, server.Options{})
	if r := get(t, off, "/monitoring/", nil); r.status != 404 {
		t.Errorf("/monitoring/ with monitoring off: %d", r.status)
	}
	a := testkit.NewAPIOn(t, off.Tree, server.Options{Monitoring: true}, off)

	if r := get(t, a, "/monitoring/", nil); r.status != 401 {
		t.Errorf("no token: %d", r.status)
	}
	if r := get(t, a, "/monitoring/?token=pd_bogus", nil); r.status != 401 || r.header.Get("Set-Cookie") != "" {
		t.Errorf("bad token: %d, cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
	r := get(t, a, "/monitoring/?token="+url.QueryEscape(a.D1.Token), nil)
	if r.status != 403 || r.header.Get("Set-Cookie") != "" {
		t.Errorf("partner admin token: %d, cookie %q; want 403 and no cookie", r.status, r.header.Get("Set-Cookie"))
	}
	if r := get(t, a, "/monitoring/", map[string]string{"Cookie": "partnerd_monitoring=" + a.D1.Token}); r.status != 403 {
		t.Errorf("partner admin cookie: %d", r.status)
	}
	if r := get(t, a, "/monitoring/", map[string]string{"Authorization": "Bearer " + a.D1.Token}); r.status != 403 {
		t.Errorf("partner admin bearer: %d", r.status)
	}

	r = get(t, a, "/monitoring/?token="+url.QueryEscape(a.Platform.Token), nil)
	if r.status != 303 {
		t.Fatalf("platform token: %d, want 303", r.status)
	}
	if loc := r.header.Get("Location"); strings.Contains(loc, "token") || !strings.HasPrefix(loc, "/monitoring/") {
		t.Errorf("redirect to %q: the token must leave the URL", loc)
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == "partnerd_monitoring" {
			cookie = c
		}
	}
	if cookie == nil || cookie.Value != a.Platform.Token || !cookie.HttpOnly || cookie.Path != "/monitoring" || cookie.SameSite != http.SameSiteStrictMode {
		t.Fatalf("cookie %+v", cookie)
	}
	r = get(t, a, "/monitoring/", map[string]string{"Cookie": cookie.Name + "=" + cookie.Value})
	if r.status != 200 {
		t.Fatalf("with the cookie: %d", r.status)
	}
	if r := get(t, a, "/monitoring/", map[string]string{"Authorization": "Bearer " + a.Platform.Token}); r.status != 200 {
		t.Errorf("platform bearer: %d", r.status)
	}
	// A platform user who is not ADMIN is refused too.
	viewer := a.AddUser(t, a.Platform.Account, "VIEWER")
	if r := get(t, a, "/monitoring/?token="+url.QueryEscape(viewer.Token), nil); r.status != 403 || r.header.Get("Set-Cookie") != "" {
		t.Errorf("platform viewer: %d, cookie %q", r.status, r.header.Get("Set-Cookie"))
	}
}

func TestHTTP_RequestID(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	body := strings.NewReader(`{"query":"{ me { id } }"}`)
	r := send(t, a, http.MethodPost, "/graphql", "application/json", body, map[string]string{"X-Request-ID": "abc-123.X_y"})
	if got := r.header.Get("X-Request-ID"); got != "abc-123.X_y" {
		t.Errorf("well-formed id echoed as %q", got)
	}
	generated := regexp.MustCompile(`^[0-9a-f]{16}$`)
	seen := map[string]bool{}
	for _, bad := range []string{"", "has space", "semi;colon", strings.Repeat("a", 65), "ünïcode", "a\tb"} {
		r := get(t, a, "/healthz", map[string]string{"X-Request-ID": bad})
		got := r.header.Get("X-Request-ID")
		if got == bad || !generated.MatchString(got) || seen[got] {
			t.Errorf("X-Request-ID %q answered with %q, want a fresh generated id", bad, got)
		}
		seen[got] = true
	}
	if got := get(t, a, "/healthz", map[string]string{"X-Request-ID": strings.Repeat("a", 64)}).header.Get("X-Request-ID"); got != strings.Repeat("a", 64) {
		t.Errorf("64-character id answered with %q", got)
	}

	// The request id is what the audit log records.
	in := `{"query":"mutation($i: CreateAccountInput!) { createAccount(input: $i) { id } }","variables":{"i":{"kind":"CUSTOMER","parentId":"` + accountID(a.R1) + `","name":"Traced"}}}`
	r = send(t, a, http.MethodPost, "/graphql", "application/json", strings.NewReader(in),
		map[string]string{"X-Request-ID": "trace-me-1", "Authorization": "Bearer " + a.D1.Token})
	if r.status != 200 || strings.Contains(r.body, `"errors"`) {
		t.Fatalf("createAccount: %d %s", r.status, r.body)
	}
	var n int64
	if err := a.Store.DB.Raw("SELECT count(*) FROM audit_log WHERE action = 'account.create' AND request_id = 'trace-me-1'").Scan(&n).Error; err != nil || n != 1 {
		t.Fatalf("audit rows with the request id: %d, %v", n, err)
	}
}

func multipartBody(t *testing.T, fileSize int) (*bytes.Buffer, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	_ = w.WriteField("operations", `{"query":"{ me { id } }","variables":{"file":null}}`)
	_ = w.WriteField("map", `{"0":["variables.file"]}`)
	fw, err := w.CreateFormFile("0", "big.csv")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(bytes.Repeat([]byte("x"), fileSize))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return &b, w.FormDataContentType()
}

func TestHTTP_UploadCap(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{Limits: server.Limits{BodyBytes: 4096, UploadBytes: 16 << 10}})
	body, ct := multipartBody(t, 32<<10)
	r := a.Raw(t, a.D1.Token, ct, body.Bytes())
	if r.Status != 413 || r.Code() != "VALIDATION" {
		t.Fatalf("multipart of 32 KiB over a 16 KiB cap: %d %q", r.Status, r.Code())
	}
	// A multipart body under UploadBytes is not held to the JSON cap.
	body, ct = multipartBody(t, 8<<10)
	r = a.Raw(t, a.D1.Token, ct, body.Bytes())
	if r.Status != 200 || len(r.Errors) > 0 {
		t.Fatalf("multipart of 8 KiB under a 16 KiB upload cap: %d %+v", r.Status, r.Errors)
	}
}

func TestHTTP_BodyCapWithoutContentLength(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{Limits: server.Limits{BodyBytes: 4096}})
	pad := strings.Repeat("x", 10<<10)
	// io.MultiReader hides the length: the request goes out chunked.
	body := io.MultiReader(strings.NewReader(`{"query":"{ me { id } }","variables":{"pad":"`+pad), strings.NewReader(`"}}`))
	r := send(t, a, http.MethodPost, "/graphql", "application/json", body, map[string]string{"Authorization": "Bearer " + a.D1.Token})
	var resp testkit.Response
	_ = json.Unmarshal([]byte(r.body), &resp)
	if r.status != 413 || resp.Code() != "VALIDATION" {
		t.Fatalf("chunked 10 KB body: %d %s, want 413 VALIDATION", r.status, r.body)
	}
}
