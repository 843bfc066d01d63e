package testkit

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"partnerd/billing"
	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/expenditures"
	"partnerd/forecast"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/notify"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/store/storetest"
	"partnerd/vouchers"
)

// API is a running HTTP server of the product on a test's own database and
// Redis database.
type API struct {
	*Tree
	Server   *httptest.Server
	Redis    redis.UniversalClient
	RedisURL string
	Prefix   string
	Hub      *notify.Hub
	Notify   *notify.Service
	Guard    *guard.Service
	// Migration is the API's migration service (PUBLIC_URL https://partner.test).
	Migration *migration.Service
	// Expenditures is the API's expenditure query service (Beijing time).
	Expenditures *expenditures.Service
	// Billing is the API's billing service (PUBLIC_URL https://partner.test).
	Billing *billing.Service
	// Vouchers is the API's vouchers service.
	Vouchers *vouchers.Service
	Registry *prometheus.Registry
}

// NewAPI starts the API on the standard fixture tree.
func NewAPI(t testing.TB, opts server.Options) *API {
	t.Helper()
	return NewAPIOn(t, NewTree(t), opts)
}

// NewAPIOn starts an API on an existing tree (several servers can share one
// tree, database and Redis: pass the same redisURL and prefix).
func NewAPIOn(t testing.TB, tr *Tree, opts server.Options, shared ...*API) *API {
	t.Helper()
	var kit APIOptions
	if len(shared) > 0 {
		kit.Shared = shared[0]
	}
	return NewAPIWith(t, tr, opts, kit)
}

// APIOptions tune NewAPIWith beyond the server's own options; the zero
// value is NewAPIOn's behaviour.
type APIOptions struct {
	// Shared, when set, makes the new server share that API's Redis
	// database and key prefix (as NewAPIOn's shared argument does).
	Shared *API
	// LogWriter receives everything the API and its services log, as text,
	// from debug level up (so a test can scan a run's logs); nil discards
	// the log.
	LogWriter io.Writer
}

// NewAPIWith starts an API on an existing tree with the options of kit.
func NewAPIWith(t testing.TB, tr *Tree, opts server.Options, kit APIOptions) *API {
	t.Helper()
	var redisURL, prefix string
	if kit.Shared != nil {
		redisURL, prefix = kit.Shared.RedisURL, kit.Shared.Prefix
	} else {
		redisURL, prefix = storetest.RedisDB(t)
	}
	ropt, err := redis.ParseURL(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(ropt)
	t.Cleanup(func() { _ = rdb.Close() })
	qopt, err := asynq.ParseRedisURI(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	log := NewLogger(kit.LogWriter)
	hub := notify.NewHub(rdb, prefix, log)
	t.Cleanup(func() { _ = hub.Close() })
	reg := prometheus.NewRegistry()
	ns, err := notify.New(tr.Store, notify.Options{Hub: hub, Log: log, WebhookGuard: LoopbackGuard()})
	if err != nil {
		t.Fatal(err)
	}
	gs := guard.New(tr.Store, guard.Options{Location: Shanghai, Log: log})
	ms := migration.New(tr.Store, migration.Options{Location: Shanghai, PublicURL: "https://partner.test", Log: log})
	es := expenditures.New(tr.Store, Shanghai)
	bs := billing.New(tr.Store, tr.Accounts, billing.Options{Location: Shanghai, PublicURL: "https://partner.test", Log: log})
	vs := vouchers.New(tr.Store, vouchers.Options{Location: Shanghai, Log: log})
	fs := forecast.New(tr.Store, forecast.Options{Location: Shanghai, Log: log})
	cs := credit.New(tr.Store, Shanghai)
	bk := bulk.New(tr.Store, gs, cs, bulk.Options{PublicURL: "https://partner.test", Log: log})
	h := server.New(server.Deps{Store: tr.Store, Accounts: tr.Accounts, Credit: cs, Spend: spend.New(tr.Store, Shanghai),
		Hub: hub, Notify: ns, Guard: gs, Groups: groups.New(tr.Store),
		Lifecycle: lifecycle.New(tr.Store, lifecycle.Options{PublicURL: "https://partner.test", Location: Shanghai}), Migration: ms, Expenditures: es,
		Billing: bs, Vouchers: vs, Forecasts: fs, BulkChanges: bk, PublicURL: "https://partner.test", Redis: rdb, Queue: qopt, Registry: reg, Log: log}, opts)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &API{Tree: tr, Server: srv, Redis: rdb, RedisURL: redisURL, Prefix: prefix, Hub: hub, Notify: ns, Guard: gs, Migration: ms, Expenditures: es, Billing: bs, Vouchers: vs, Registry: reg}
}

// NewLogger is the logger of the test servers: text to w from debug level
// up, or nothing at all (the default) when w is nil.
func NewLogger(w io.Writer) *slog.Logger {
	if w == nil {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// Response is a GraphQL response.
type Response struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Path       []any          `json:"path"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
	// Status is the HTTP status.
	Status int `json:"-"`
}

// Code is the extensions.code of the first error, or "".
func (r *Response) Code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// Decode unmarshals data into v.
func (r *Response) Decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Data, v); err != nil {
		t.Fatalf("decode %s: %v", r.Data, err)
	}
}

// Do posts a GraphQL request with the token (none when "").
func (a *API) Do(t testing.TB, token, query string, vars map[string]any) *Response {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return a.Raw(t, token, "application/json", body)
}

// Raw posts a raw body to /graphql.
func (a *API) Raw(t testing.TB, token, contentType string, body []byte) *Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, a.Server.URL+"/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.Server.Client().Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out Response
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("response %d is not JSON: %s", resp.StatusCode, raw)
	}
	out.Status = resp.StatusCode
	return &out
}

// MustDo posts a request that must succeed and decodes its data into v.
func (a *API) MustDo(t testing.TB, token, query string, vars map[string]any, v any) {
	t.Helper()
	r := a.Do(t, token, query, vars)
	if len(r.Errors) > 0 {
		t.Fatalf("unexpected errors: %+v", r.Errors)
	}
	if v != nil {
		r.Decode(t, v)
	}
}

// Upload posts a GraphQL multipart request (the GraphQL multipart request
// spec): the file content goes in variable fileVar, named filename.
func (a *API) Upload(t testing.TB, token, query string, vars map[string]any, fileVar, filename string, content []byte) *Response {
	t.Helper()
	if vars == nil {
		vars = map[string]any{}
	}
	vars[fileVar] = nil
	ops, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0": ["variables.`+fileVar+`"]}`)
	fw, err := mw.CreateFormFile("0", filename)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = fw.Write(content)
	_ = mw.Close()
	return a.Raw(t, token, mw.FormDataContentType(), body.Bytes())
}
