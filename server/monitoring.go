package server

import (
	"net/http"
	"time"

	"github.com/hibiken/asynq"
	"github.com/hibiken/asynqmon"

	"partnerd/accounts"
	"partnerd/models"
)

const monitoringCookie = "partnerd_monitoring"

func monitoringHandler(q asynq.RedisConnOpt) http.Handler {
	return asynqmon.New(asynqmon.Options{RootPath: "/monitoring", RedisConnOpt: q, ReadOnly: false})
}

// platformAdminOnly lets only platform ADMIN users reach the dashboard. A
// browser opens /monitoring/?token=TOKEN once; the token then travels in an
// HttpOnly cookie scoped to /monitoring.
func platformAdminOnly(svc *accounts.Service, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := accounts.PrincipalFrom(r.Context())
		if !ok {
			tok := r.URL.Query().Get("token")
			fromQuery := tok != ""
			if !fromQuery {
				if c, err := r.Cookie(monitoringCookie); err == nil {
					tok = c.Value
				}
			}
			if tok != "" {
				if pp, err := svc.Authenticate(r.Context(), tok); err == nil {
					p, ok = pp, true
					// Only a token that may open the dashboard is kept in a cookie; any other is refused below.
					if fromQuery && isPlatformAdmin(pp) {
						http.SetCookie(w, &http.Cookie{Name: monitoringCookie, Value: tok, Path: "/monitoring", HttpOnly: true,
							SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, Expires: time.Now().Add(12 * time.Hour)})
						u := *r.URL
						q := u.Query()
						q.Del("token")
						u.RawQuery = q.Encode()
						http.Redirect(w, r, u.String(), http.StatusSeeOther)
						return
					}
				}
			}
		}
		if !ok {
			http.Error(w, "authentication required: open /monitoring/?token=<platform admin token>", http.StatusUnauthorized)
			return
		}
		if !isPlatformAdmin(p) {
			http.Error(w, "the task-queue dashboard is for platform admins", http.StatusForbidden)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isPlatformAdmin(p *accounts.Principal) bool {
	return p.AccountKind == models.KindPlatform && p.Has(models.RoleAdmin)
}
