package server

import (
	"context"
	"net/http"
	"strings"
	"time"
)

// withDeadline bounds a request by d: whatever it waits on (PostgreSQL,
// Redis) gives up when the deadline passes, and the caller gets a retryable
// error instead of a hung connection. WebSocket upgrades (subscriptions
// live as long as their connection) go through unbounded. d <= 0: off.
func withDeadline(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			next.ServeHTTP(w, r)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
