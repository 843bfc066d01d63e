package server

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"partnerd/apperr"
)

// RateLimit bounds how often one caller may call the API: each bearer
// token (by its hash, so a flood of bad tokens is bounded too), or each
// client address for requests without a token. The counters live in Redis
// (GCRA, go-redis/redis_rate), so every API replica shares them.
type RateLimit struct {
	// Rate is how many requests a caller may make per Period, sustained;
	// 0 turns limiting off.
	Rate int
	// Period is the window of Rate (default one second).
	Period time.Duration
	// Burst is how many requests a caller may send at once (default:
	// twice Rate).
	Burst int
}

// rateLimited answers 429 with RATE_LIMITED to callers over their rate.
// Probes (/healthz, /readyz) and /metrics are never limited. When Redis
// cannot answer, the request goes through and the failure is logged: the
// limiter protects the service, it must not take it down.
func rateLimited(rdb redis.UniversalClient, rl RateLimit, log *slog.Logger, next http.Handler) http.Handler {
	if rl.Rate <= 0 || rdb == nil {
		return next
	}
	if rl.Burst <= 0 {
		rl.Burst = 2 * rl.Rate
	}
	if rl.Period <= 0 {
		rl.Period = time.Second
	}
	limiter := redis_rate.NewLimiter(rdb)
	limit := redis_rate.Limit{Rate: rl.Rate, Burst: rl.Burst, Period: rl.Period}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz", "/readyz", "/metrics":
			next.ServeHTTP(w, r)
			return
		}
		res, err := limiter.Allow(r.Context(), "partnerd:ratelimit:"+callerKey(r), limit)
		if err != nil {
			log.WarnContext(r.Context(), "rate limiter unavailable; request let through", "err", err)
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("RateLimit-Limit", strconv.Itoa(rl.Burst))
		h.Set("RateLimit-Remaining", strconv.Itoa(res.Remaining))
		if res.Allowed == 0 {
			retry := int(math.Ceil(res.RetryAfter.Seconds()))
			if retry < 1 {
				retry = 1
			}
			h.Set("Retry-After", strconv.Itoa(retry))
			writeError(w, http.StatusTooManyRequests, apperr.RateLimited,
				fmt.Sprintf("too many requests: at most %d per %s (bursts of %d); retry after %d s", rl.Rate, rl.Period, rl.Burst, retry))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// callerKey names the caller of r for the limiter: "t:" and the SHA-256 of
// its bearer token (never the token itself), else "a:" and its address.
func callerKey(r *http.Request) string {
	if tok, ok := bearer(r.Header.Get("Authorization")); ok {
		sum := sha256.Sum256([]byte(tok))
		return "t:" + hex.EncodeToString(sum[:16])
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return "a:" + host
}

// corsHeaders are the request headers browsers may send cross-origin.
const corsHeaders = "Authorization, Content-Type, Accept, X-Request-Id"

// withCORS lets pages of the allowed origins call the API from a browser:
// their preflights are answered, and their responses carry
// Access-Control-Allow-Origin. Other origins get neither, so a browser
// neither sends them a preflighted request (any request with a bearer
// token or a JSON body) nor lets their page read an answer. Credentials
// (cookies) are never allowed: the API authenticates with bearer tokens
// only, so a cross-site form post reaches it unauthenticated.
func withCORS(allowed []string, next http.Handler) http.Handler {
	set := make(map[string]bool, len(allowed))
	for _, o := range allowed {
		set[strings.TrimRight(o, "/")] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin == "" {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		ok := set[origin]
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !ok {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Allow-Methods", "GET, POST")
			h.Set("Access-Control-Allow-Headers", corsHeaders)
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if ok {
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Retry-After, RateLimit-Limit, RateLimit-Remaining, X-Request-Id")
		}
		next.ServeHTTP(w, r)
	})
}
