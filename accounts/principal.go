// Package accounts holds the reseller tree and its parent rules, users, roles
// and API tokens, and the one scope check of the product: ScopeOf decides what
// a principal may see, and everything else asks it (DOMAIN.md §1–2).
package accounts

import (
	"context"
	"fmt"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Principal is who is calling: a user of an account with roles, or the system
// (workers, the command line), which acts as the platform.
type Principal struct {
	UserID      int64
	Email       string
	AccountID   int64
	AccountKind models.AccountKind
	AccountPath string
	Roles       models.Roles
	Locale      models.Locale
	// System is true for workers and the command line.
	System bool
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p; changes made with it are audited as p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	label := "system"
	if !p.System {
		label = fmt.Sprintf("user:%d %s", p.UserID, p.Email)
	}
	ctx = store.WithActor(ctx, store.Actor{UserID: p.UserID, AccountID: p.AccountID, Label: label})
	return context.WithValue(ctx, principalKey{}, p)
}

// SystemContext returns ctx acting as the system principal: the whole tree in
// scope and every permission. Workers and the command line use it.
func SystemContext(ctx context.Context) context.Context {
	return WithPrincipal(ctx, &Principal{System: true, AccountKind: models.KindPlatform})
}

// PrincipalFrom returns the principal in ctx.
func PrincipalFrom(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(*Principal)
	return p, ok
}

// IsPlatform reports whether the principal acts for the platform.
func (p *Principal) IsPlatform() bool { return p.System || p.AccountKind == models.KindPlatform }

// Has reports whether the principal holds role r (the system holds all).
func (p *Principal) Has(r models.Role) bool { return p.System || p.Roles.Has(r) }

// ErrUnauthenticated is returned when a call needs a principal and has none.
var ErrUnauthenticated = apperr.New(apperr.Unauthenticated, "authentication required: send Authorization: Bearer <token>")
