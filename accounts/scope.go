package accounts

import (
	"context"
	"strings"

	"gorm.io/gorm"

	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
)

// TypeAccount is the type name inside an account's global ID.
const TypeAccount = "Account"

// GlobalID is the global (Node) ID of account id.
func GlobalID(id int64) string { return ids.Encode(TypeAccount, id) }

// Scope is the part of the tree a principal may see: the platform sees
// everything, a partner its subtree, a customer or personal account itself
// (DOMAIN.md §1). Every read filters by it and every write checks its target
// against it; an account outside it is NOT_FOUND, never FORBIDDEN.
type Scope struct {
	principal *Principal
	all       bool
	path      string
}

// ScopeOf resolves the scope of the principal in ctx. Without a principal it
// fails with UNAUTHENTICATED.
func ScopeOf(ctx context.Context) (Scope, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return Scope{}, ErrUnauthenticated
	}
	if p.IsPlatform() {
		return Scope{principal: p, all: true}, nil
	}
	return Scope{principal: p, path: p.AccountPath}, nil
}

// Principal is the principal the scope belongs to.
func (s Scope) Principal() *Principal { return s.principal }

// All reports whether the whole tree is in scope.
func (s Scope) All() bool { return s.all }

// Root is the materialized path of the scope's root ("" for the whole tree).
func (s Scope) Root() string { return s.path }

// Contains reports whether the account with the given path is in scope.
func (s Scope) Contains(path string) bool {
	return s.all || strings.HasPrefix(path, s.path)
}

// ContainsAccount reports whether a is in scope.
func (s Scope) ContainsAccount(a *models.Account) bool { return a != nil && s.Contains(a.Path) }

// Filter restricts a query to accounts in scope; pathColumn is the column
// holding the account's materialized path (e.g. "accounts.path").
func (s Scope) Filter(db *gorm.DB, pathColumn string) *gorm.DB {
	if s.all {
		return db
	}
	return db.Where(pathColumn+" LIKE ?", likePrefix(s.path))
}

// SQL returns a WHERE fragment and its argument restricting pathColumn to the
// scope, for hand-written SQL ("TRUE" for the whole tree).
func (s Scope) SQL(pathColumn string) (string, []any) {
	if s.all {
		return "TRUE", nil
	}
	return pathColumn + " LIKE ?", []any{likePrefix(s.path)}
}

// NotFound is the answer for any account outside the scope, and for any that
// does not exist: the two are indistinguishable to the caller.
func NotFound(what string) error { return apperr.NotFoundf("%s not found", what) }

// SubtreeLike is the LIKE pattern (backslash escapes) matching the
// materialized paths of the account with path and all its descendants.
func SubtreeLike(path string) string { return likePrefix(path) }

func likePrefix(path string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(path) + "%"
}
