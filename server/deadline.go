package server

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// withDeadline bounds a GraphQL request or a purchase check by d, from its
// authentication on: whatever it waits on (PostgreSQL, Redis) gives up when
// the deadline passes, and the caller gets a retryable error instead of a
// hung connection. WebSocket upgrades (subscriptions live as long as their
// connection) and the streaming routes (record uploads, exports: bounded per
// statement) go through unbounded. d <= 0: off.
func withDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		bounded := r.URL.Path == "/graphql" || r.URL.Path == purchaseAuthorizationsPath
		if !bounded || strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
