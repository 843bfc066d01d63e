// Package server is partnerd's HTTP face: the GraphQL handler with its limits
// and transports, authentication, health, metrics, GraphiQL and the task-queue
// dashboard.
package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/99designs/gqlgen/graphql/playground"
	coderws "github.com/coder/websocket"
	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/vektah/gqlparser/v2/ast"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/billing"
	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/expenditures"
	"partnerd/forecast"
	"partnerd/graph"
	"partnerd/groups"
	"partnerd/guard"
	"partnerd/lifecycle"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/resolvers"
	"partnerd/spend"
	"partnerd/store"
	"partnerd/vouchers"
)

// Deps are what the HTTP server serves from.
type Deps struct {
	// Drain, when set, turns /readyz red once the process starts shutting
	// down.
	Drain    *Drain
	Store    *store.Store
	Accounts *accounts.Service
	Credit   *credit.Service
	Spend    *spend.Service
	Hub      *notify.Hub
	Notify   *notify.Service
	Guard    *guard.Service
	Groups   *groups.Service
	// Lifecycle holds invitations.
	Lifecycle *lifecycle.Service
	// Migration holds sub-customer migrations.
	Migration *migration.Service
	// Expenditures answers expenditure queries and exports.
	Expenditures *expenditures.Service
	// Billing holds partner and customer bills, rating rules, incentives.
	Billing *billing.Service
	// Vouchers holds voucher pools, templates, vouchers and redemptions.
	Vouchers *vouchers.Service
	// Forecasts projects customers' month-end spend.
	Forecasts *forecast.Service
	// BulkChanges applies CSV uploads of changes in the background.
	BulkChanges *bulk.Service
	// PublicURL is where users reach the product; download links in the
	// API start with it.
	PublicURL string
	Redis     redis.UniversalClient
	// Queue is the asynq Redis connection, for the dashboard and queue metrics.
	Queue    asynq.RedisConnOpt
	Registry *prometheus.Registry
	Log      *slog.Logger
}

// Options configure the server.
type Options struct {
	Limits Limits
	// Playground serves GraphiQL at / (PLAYGROUND=false turns it off).
	Playground bool
	// Monitoring serves the asynq dashboard at /monitoring/ for platform admins.
	Monitoring bool
	// KeepAlive is the WebSocket keep-alive interval (default 15s).
	KeepAlive time.Duration
	// RateLimit bounds each caller's requests (off when Rate is 0).
	RateLimit RateLimit
	// CORSOrigins are the origins (scheme://host[:port]) whose pages may
	// call the API from a browser; none by default.
	CORSOrigins []string
	// RequestTimeout bounds a GraphQL request or a purchase authorization,
	// whatever it waits on (0: unbounded). Streams (subscriptions, uploads
	// of records, exports) are bounded per statement instead.
	RequestTimeout time.Duration
	// NoCompiledTree runs every query through gqlgen's execution, also the
	// account trees that resolvers.AnswerTree answers directly otherwise
	// (the tests compare both ways).
	NoCompiledTree bool
}

// New builds the HTTP handler of the API.
func New(d Deps, opts Options) http.Handler {
	opts.Limits.defaults()
	if opts.KeepAlive == 0 {
		opts.KeepAlive = 15 * time.Second
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	m := newMetrics(d.Registry, d.Store, d.Queue, d.Notify)
	gql := newGraphQL(d, opts, m)

	mux := http.NewServeMux()
	mux.Handle("/graphql", withRawAnswers(gql))
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", readiness(d))
	if d.Spend != nil {
		mux.Handle("POST "+streamingIngestPath, ExpendituresHandler(d.Spend, d.Log))
	}
	if d.Guard != nil {
		mux.Handle("POST "+purchaseAuthorizationsPath, PurchaseHandler(d.Guard, d.Log))
		if d.Registry != nil {
			if err := d.Guard.RegisterMetrics(d.Registry); err != nil {
				d.Log.Error("register purchase metrics", "err", err)
			}
		}
	}
	mux.HandleFunc("GET "+migrationTemplatePath, migrationTemplate)
	if d.Expenditures != nil {
		mux.Handle("GET "+expenditureExportPath, ExportHandler(d.Expenditures, d.Log))
	}
	if d.Billing != nil {
		billingRoutes(mux, d.Billing, d.Log)
	}
	if d.Vouchers != nil {
		vouchersRoutes(mux, d.Vouchers, d.Log)
	}
	if d.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	}
	if opts.Monitoring && d.Queue != nil {
		mux.Handle("/monitoring/", platformAdminOnly(d.Accounts, monitoringHandler(d.Queue)))
	}
	if opts.Playground {
		mux.Handle("GET /{$}", playground.Handler("partnerd", "/graphql"))
	}
	var h http.Handler = mux
	h = authenticate(d.Accounts, d.Log, h)
	h = withDeadline(opts.RequestTimeout, h)
	h = rateLimited(d.Redis, opts.RateLimit, d.Log, h)
	h = withCORS(opts.CORSOrigins, h)
	h = limitBody(opts.Limits, h)
	h = requestID(h)
	h = m.instrumentHTTP(h)
	return h
}

func newGraphQL(d Deps, opts Options, m *metrics) http.Handler {
	res := &resolvers.Resolver{Accounts: d.Accounts, Credit: d.Credit, Spend: d.Spend, Live: d.Hub, Notify: d.Notify, Guard: d.Guard, Groups: d.Groups, Lifecycle: d.Lifecycle, Batches: d.Migration,
		ExpenditureQueries: d.Expenditures, Billing: d.Billing, VoucherService: d.Vouchers, Forecasts: d.Forecasts, BulkChanges: d.BulkChanges, PublicURL: strings.TrimRight(d.PublicURL, "/")}
	cfg := graph.Config{Resolvers: res}
	setComplexity(&cfg)
	srv := handler.New(graph.NewExecutableSchema(cfg))
	srv.AddTransport(transport.Websocket{
		KeepAlivePingInterval: opts.KeepAlive,
		// Subscribers authenticate in connection_init, never with cookies, so any origin may connect.
		Implementation: transport.CoderWebsocketImplementation{AcceptOptions: coderws.AcceptOptions{
			InsecureSkipVerify: true,
			Subprotocols:       []string{"graphql-transport-ws", "graphql-ws"},
		}},
		InitTimeout: 10 * time.Second,
		InitFunc:    websocketInit(d.Accounts),
	})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(transport.MultipartForm{MaxUploadSize: opts.Limits.UploadBytes, MaxMemory: 8 << 20})
	cache := lru.New[*ast.QueryDocument](1000)
	srv.SetQueryCache(cache)
	srv.SetParserTokenLimit(opts.Limits.ParserTokens)
	srv.Use(extension.Introspection{})
	srv.Use(extension.AutomaticPersistedQuery{Cache: lru.New[string](200)})
	srv.Use(operationLimits{limits: opts.Limits, cache: cache})
	srv.Use(extension.FixedComplexityLimit(opts.Limits.Complexity))
	srv.AroundFields(redactedFields)
	srv.SetErrorPresenter(errorPresenter(d.Log))
	srv.SetRecoverFunc(recoverFunc(d.Log))
	srv.AroundResponses(func(ctx context.Context, next graphql.ResponseHandler) *graphql.Response {
		// Fresh loaders per response: batching within one result, no stale cache across a subscription's events.
		ctx = res.WithLoaders(ctx)
		start := time.Now()
		if !opts.NoCompiledTree {
			if resp, ok := res.AnswerTree(ctx); ok {
				m.compiled.Inc()
				m.observeGraphQL(ctx, resp, time.Since(start))
				if takeRaw(ctx, resp.Data) {
					return &graphql.Response{Data: json.RawMessage("null")}
				}
				return resp
			}
		}
		resp := next(ctx)
		m.observeGraphQL(ctx, resp, time.Since(start))
		return resp
	})
	return guardRequests(opts.Limits, srv)
}

// setComplexity makes list fields cost their page size times their children.
func setComplexity(cfg *graph.Config) {
	page := func(first *int, def int) int {
		if first == nil || *first < 1 {
			return def
		}
		return *first
	}
	cfg.Complexity.Account.Children = func(child int, _ *models.AccountKind, _ *models.AccountStatus, _ *string, _ *graph.TagInput, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Account.Users = func(child int, first *int, _ *string) int { return 1 + child*page(first, 50) }
	cfg.Complexity.Query.AuditLog = func(child int, _ string, _ *bool, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Query.Expenditures = func(child int, _ *graph.ExpenditureFilter, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Query.Vouchers = func(child int, _, _ *string, _ *vouchers.Status, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Query.VoucherRedemptions = func(child int, _, _ *string, _ *expenditures.Period, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Query.VoucherTemplates = func(child int, _ string, _ *bool, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Query.VoucherIssuances = func(child int, _ string, _ *vouchers.IssuanceStatus, first *int, _ *string) int {
		return 1 + child*page(first, 50)
	}
	cfg.Complexity.Voucher.Redemptions = func(child int, first *int, _ *string) int { return 1 + child*page(first, 50) }
	cfg.Complexity.VoucherPool.Ledger = func(child int, first *int, _ *string) int { return 1 + child*page(first, 50) }
}

// migrationTemplatePath is the download of the migration CSV template.
const migrationTemplatePath = "/v1/migrations/template.csv"

// migrationTemplate serves the migration CSV template as a download (to any
// authenticated caller: it holds no data).
func migrationTemplate(w http.ResponseWriter, r *http.Request) {
	if _, ok := accounts.PrincipalFrom(r.Context()); !ok {
		writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, accounts.ErrUnauthenticated.Message)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="migration-template.csv"`)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write([]byte("\xef\xbb\xbf" + migration.Template))
}

// streamingIngestPath is the REST route of bulk expenditure ingestion.
const streamingIngestPath = "/v1/expenditures"

var requestIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// requestID gives every request an id (the caller's X-Request-ID when it is
// well-formed), returned in the response header and recorded in audit and logs.
func requestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-ID")
		if !requestIDPattern.MatchString(id) {
			b := make([]byte, 8)
			_, _ = rand.Read(b)
			id = hex.EncodeToString(b)
		}
		w.Header().Set("X-Request-ID", id)
		next.ServeHTTP(w, r.WithContext(store.WithRequestID(r.Context(), id)))
	})
}

// limitBody caps request bodies: JSON at BodyBytes, multipart at UploadBytes.
func limitBody(l Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == streamingIngestPath {
			// Bulk ingestion streams millions of records in one request by design.
			next.ServeHTTP(w, r)
			return
		}
		limit := l.BodyBytes
		multipart := strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/")
		if multipart {
			limit = l.UploadBytes
		}
		if r.ContentLength > limit {
			writeError(w, http.StatusRequestEntityTooLarge, apperr.Validation, "the request body is larger than "+byteSize(limit))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, limit)
		}
		if r.ContentLength < 0 && r.Body != nil && !multipart {
			// A JSON body of unknown length (chunked) is read here, so going over the cap is a 413 like a declared length.
			b, err := io.ReadAll(r.Body)
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, http.StatusRequestEntityTooLarge, apperr.Validation, "the request body is larger than "+byteSize(limit))
				return
			}
			if err != nil {
				writeError(w, http.StatusBadRequest, apperr.Validation, "the request body could not be read")
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		}
		next.ServeHTTP(w, r)
	})
}

// authenticate puts the principal of a bearer token in the context. A
// request without a token goes on unauthenticated (introspection works, data
// fields answer UNAUTHENTICATED); a bad token is refused with 401.
func authenticate(svc *accounts.Service, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearer(r.Header.Get("Authorization"))
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		p, err := svc.Authenticate(r.Context(), tok)
		if err != nil {
			if apperr.CodeOf(err) != apperr.Unauthenticated {
				log.ErrorContext(r.Context(), "authenticate", "err", err, "request_id", store.RequestID(r.Context()))
				writeUnavailable(w, "the service is unavailable for a moment; send the request again")
				return
			}
			writeError(w, http.StatusUnauthorized, apperr.Unauthenticated, err.(*apperr.Error).Message)
			return
		}
		next.ServeHTTP(w, r.WithContext(accounts.WithPrincipal(r.Context(), p)))
	})
}

func bearer(h string) (string, bool) {
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}

// websocketInit authenticates a WebSocket from the connection_init payload
// {"Authorization": "Bearer <token>"}.
func websocketInit(svc *accounts.Service) transport.WebsocketInitFunc {
	return func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
		h := payload.Authorization()
		if h == "" {
			if s, ok := payload["Authorization"].(string); ok {
				h = s
			}
		}
		tok, ok := bearer(h)
		if !ok {
			if _, has := accounts.PrincipalFrom(ctx); has {
				return ctx, nil, nil
			}
			return ctx, nil, accounts.ErrUnauthenticated
		}
		p, err := svc.Authenticate(ctx, tok)
		if err != nil {
			return ctx, nil, err
		}
		return accounts.WithPrincipal(ctx, p), nil, nil
	}
}

// Drain marks a process as shutting down, for its readiness probe: from
// Start on, GET /readyz answers 503 {"shutdown":"draining"} so that load
// balancers stop sending it requests while it still serves those that
// come. The zero value is not draining.
type Drain struct{ on atomic.Bool }

// Start turns readiness red for good.
func (d *Drain) Start() { d.on.Store(true) }

// Draining reports whether Start was called (false for a nil Drain).
func (d *Drain) Draining() bool { return d != nil && d.on.Load() }

func readiness(d Deps) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status := map[string]string{"postgres": "ok", "redis": "ok"}
		code := http.StatusOK
		if d.Drain.Draining() {
			status["shutdown"], code = "draining", http.StatusServiceUnavailable
		}
		if err := d.Store.Ping(ctx); err != nil {
			status["postgres"], code = "down", http.StatusServiceUnavailable
		}
		if err := d.Redis.Ping(ctx).Err(); err != nil {
			status["redis"], code = "down", http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(status)
	}
}

// Probes is the HTTP handler of a process without the API (a worker or a
// scheduler): GET /healthz (200 while it runs), GET /readyz (200 only while
// PostgreSQL and Redis answer, as the API's) and, with a registry, GET
// /metrics. Deps needs Store and Redis.
func Probes(d Deps) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", healthz)
	mux.HandleFunc("GET /readyz", readiness(d))
	if d.Registry != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(d.Registry, promhttp.HandlerOpts{}))
	}
	return mux
}

// healthz is the liveness probe of every role: 200 while the process runs.
func healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

// writeUnavailable answers 503 with Retry-After and an INTERNAL error marked
// retryable: a dependency is down or slow, and the same request may succeed
// in a moment.
func writeUnavailable(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Retry-After", "1")
	w.WriteHeader(http.StatusServiceUnavailable)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": msg, "extensions": map[string]any{"code": string(apperr.Internal), "retryable": true}}},
	})
}

// writeError answers with a GraphQL-shaped error body.
func writeError(w http.ResponseWriter, status int, code apperr.Code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]any{{"message": msg, "extensions": map[string]any{"code": string(code)}}},
	})
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
