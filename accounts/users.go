package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// TokenPrefix starts every API token, so a leaked token is recognisable.
const TokenPrefix = "pd_"

// MaxTokenTTL bounds the lifetime of a token that has an expiry.
const MaxTokenTTL = 5 * 365 * 24 * time.Hour

// CreateUserInput describes a new user.
type CreateUserInput struct {
	AccountID int64
	Email     string
	Phone     *string
	Name      string
	Roles     []models.Role
	Locale    string
}

// CreateUser adds a user to an account in the caller's scope (ADMIN). The
// email is unique across the product; REVIEWER is for platform users only.
func (s *Service) CreateUser(ctx context.Context, in CreateUserInput) (*models.User, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var u *models.User
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		acct, err := GetInScope(tx.DB, sc, in.AccountID)
		if err != nil {
			return err
		}
		if err := sc.Require(PermManageUsers); err != nil {
			return err
		}
		u, err = newUser(acct, in)
		if err != nil {
			return err
		}
		return insertUser(tx, u)
	})
	return u, err
}

func newUser(acct *models.Account, in CreateUserInput) (*models.User, error) {
	email, err := ValidateEmail("email", in.Email)
	if err != nil {
		return nil, err
	}
	roles, err := ValidateRoles(in.Roles, acct.Kind)
	if err != nil {
		return nil, err
	}
	loc, err := ValidateLocale(in.Locale)
	if err != nil {
		return nil, err
	}
	u := &models.User{AccountID: acct.ID, Email: email, Name: strings.TrimSpace(in.Name), Roles: roles, Locale: loc}
	if len(u.Name) > 200 {
		return nil, apperr.Invalid("name", "name must be at most 200 characters")
	}
	if in.Phone != nil && *in.Phone != "" {
		p, err := ValidatePhone("phone", *in.Phone)
		if err != nil {
			return nil, err
		}
		u.Phone = &p
	}
	return u, nil
}

func insertUser(tx *store.Tx, u *models.User) error {
	u.CreatedAt = tx.Now()
	if err := tx.DB.Create(u).Error; err != nil {
		if store.PgCode(err) == "23505" {
			return apperr.Conflictf("a user with email %q already exists", u.Email)
		}
		return fmt.Errorf("insert user: %w", err)
	}
	return tx.Audit("user.create", u.AccountID, nil, map[string]any{"userId": u.ID, "email": u.Email, "roles": u.Roles, "locale": u.Locale})
}

// GetUser returns a user whose account is in the caller's scope.
func (s *Service) GetUser(ctx context.Context, id int64) (*models.User, error) {
	m, err := s.GetUsers(ctx, []int64{id})
	if err != nil {
		return nil, err
	}
	u, ok := m[id]
	if !ok {
		return nil, NotFound("user")
	}
	return u, nil
}

// GetUsers loads users by id whose accounts are in the caller's scope, in one
// query.
func (s *Service) GetUsers(ctx context.Context, ids []int64) (map[int64]*models.User, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	var list []*models.User
	err = s.st.DB.WithContext(ctx).Raw(`SELECT u.* FROM users u JOIN accounts a ON a.id = u.account_id
		WHERE u.id = ANY(?::bigint[]) AND `+q, append([]any{store.Int64Array(ids)}, args...)...).Scan(&list).Error
	if err != nil {
		return nil, fmt.Errorf("load users: %w", err)
	}
	out := make(map[int64]*models.User, len(list))
	for _, u := range list {
		out[u.ID] = u
	}
	return out, nil
}

// UsersPage lists an account's users (keyset on id) with their total count.
func (s *Service) UsersPage(ctx context.Context, accountID int64, first int, afterID int64) ([]*models.User, bool, error) {
	if err := ValidatePage(first); err != nil {
		return nil, false, err
	}
	if _, err := s.Get(ctx, accountID); err != nil {
		return nil, false, err
	}
	var list []*models.User
	if err := s.st.DB.WithContext(ctx).Where("account_id = ? AND id > ?", accountID, afterID).Order("id").Limit(first + 1).Find(&list).Error; err != nil {
		return nil, false, fmt.Errorf("list users: %w", err)
	}
	more := len(list) > first
	if more {
		list = list[:first]
	}
	return list, more, nil
}

// CountUsers counts an account's users.
func (s *Service) CountUsers(ctx context.Context, accountID int64) (int, error) {
	var n int64
	err := s.st.DB.WithContext(ctx).Model(&models.User{}).Where("account_id = ?", accountID).Count(&n).Error
	return int(n), err
}

// CreateToken makes a new API token for a user: an admin of the user's
// account scope, or the user itself, may. The token is returned once; only
// its SHA-256 is stored. ttl 0 means no expiry.
func (s *Service) CreateToken(ctx context.Context, userID int64, ttl time.Duration) (string, *models.APIToken, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return "", nil, err
	}
	var token string
	var rec *models.APIToken
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		u, err := userInScope(tx.DB, sc, userID)
		if err != nil {
			return err
		}
		if p := sc.Principal(); p.UserID != u.ID {
			if err := sc.Require(PermManageUsers); err != nil {
				return err
			}
		}
		if ttl < 0 || ttl > MaxTokenTTL {
			return apperr.Invalid("ttlHours", "a token's lifetime must be between 1 hour and %d hours", int(MaxTokenTTL.Hours()))
		}
		token, rec, err = insertToken(tx, u, ttl)
		return err
	})
	return token, rec, err
}

func insertToken(tx *store.Tx, u *models.User, ttl time.Duration) (string, *models.APIToken, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", nil, fmt.Errorf("token entropy: %w", err)
	}
	token := TokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
	sum := sha256.Sum256([]byte(token))
	now := tx.Now()
	rec := &models.APIToken{UserID: u.ID, Hash: sum[:], CreatedAt: now}
	if ttl > 0 {
		exp := now.Add(ttl)
		rec.ExpiresAt = &exp
	}
	if a := store.ActorFrom(tx.Context()); a.UserID != 0 {
		rec.CreatedBy = &a.UserID
	}
	if err := tx.DB.Create(rec).Error; err != nil {
		return "", nil, fmt.Errorf("insert token: %w", err)
	}
	if err := tx.Audit("token.create", u.AccountID, nil, map[string]any{"tokenId": rec.ID, "userId": u.ID, "expiresAt": rec.ExpiresAt}); err != nil {
		return "", nil, err
	}
	return token, rec, nil
}

// RevokeToken revokes a token: the user itself or an admin of its scope.
// Revoking twice is harmless.
func (s *Service) RevokeToken(ctx context.Context, tokenID int64) (*models.APIToken, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var rec models.APIToken
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		if err := tx.DB.Raw("SELECT * FROM api_tokens WHERE id = ? FOR UPDATE", tokenID).Scan(&rec).Error; err != nil {
			return fmt.Errorf("load token: %w", err)
		}
		if rec.ID == 0 {
			return NotFound("token")
		}
		u, err := userInScope(tx.DB, sc, rec.UserID)
		if err != nil {
			return NotFound("token")
		}
		if sc.Principal().UserID != u.ID {
			if err := sc.Require(PermManageUsers); err != nil {
				return err
			}
		}
		if rec.RevokedAt != nil {
			return nil
		}
		now := tx.Now()
		rec.RevokedAt = &now
		if err := tx.DB.Model(&rec).Update("revoked_at", now).Error; err != nil {
			return fmt.Errorf("revoke token: %w", err)
		}
		return tx.Audit("token.revoke", u.AccountID, nil, map[string]any{"tokenId": rec.ID, "userId": u.ID})
	})
	if err != nil {
		return nil, err
	}
	s.tokens.forget(rec.ID)
	return &rec, nil
}

func userInScope(db *gorm.DB, sc Scope, userID int64) (*models.User, error) {
	q, args := sc.SQL("a.path")
	var u models.User
	err := db.Raw(`SELECT u.* FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = ? AND `+q,
		append([]any{userID}, args...)...).Scan(&u).Error
	if err != nil {
		return nil, fmt.Errorf("load user: %w", err)
	}
	if u.ID == 0 {
		return nil, NotFound("user")
	}
	return &u, nil
}

// ErrBadToken is the answer for an unknown, revoked or expired token; the
// three are not told apart.
var ErrBadToken = apperr.New(apperr.Unauthenticated, "the token is invalid, revoked or expired")

// Authenticate turns a bearer token into its principal. A token it
// accepted is trusted for a second (tokenCacheTTL) without a query: its
// revocation through RevokeToken takes effect at once in this process and
// within that second in the others.
func (s *Service) Authenticate(ctx context.Context, token string) (*Principal, error) {
	if !strings.HasPrefix(token, TokenPrefix) || len(token) > 100 {
		return nil, ErrBadToken
	}
	sum := sha256.Sum256([]byte(token))
	now := s.st.Now()
	if p, ok := s.tokens.get(sum, now); ok {
		return p, nil
	}
	var row struct {
		TokenID    int64
		ExpiresAt  *time.Time
		RevokedAt  *time.Time
		LastUsedAt *time.Time
		UserID     int64
		Email      string
		Roles      models.Roles
		Locale     models.Locale
		AccountID  int64
		Kind       models.AccountKind
		Path       string
	}
	err := s.st.DB.WithContext(ctx).Raw(`SELECT t.id AS token_id, t.expires_at, t.revoked_at, t.last_used_at,
			u.id AS user_id, u.email, u.roles, u.locale, a.id AS account_id, a.kind, a.path
		FROM api_tokens t JOIN users u ON u.id = t.user_id JOIN accounts a ON a.id = u.account_id
		WHERE t.hash = ?`, sum[:]).Scan(&row).Error
	if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	if row.TokenID == 0 || row.RevokedAt != nil || (row.ExpiresAt != nil && !now.Before(*row.ExpiresAt)) {
		return nil, ErrBadToken
	}
	if row.LastUsedAt == nil || now.Sub(*row.LastUsedAt) > 5*time.Minute {
		// Coarse on purpose: one write per token per five minutes, not per request.
		_ = s.st.DB.WithContext(ctx).Exec("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", now, row.TokenID).Error
	}
	p := &Principal{UserID: row.UserID, Email: row.Email, AccountID: row.AccountID, AccountKind: row.Kind,
		AccountPath: row.Path, Roles: row.Roles, Locale: row.Locale}
	s.tokens.put(sum, tokenEntry{p: *p, tokenID: row.TokenID, expiresAt: row.ExpiresAt, until: now.Add(tokenCacheTTL)})
	return p, nil
}

// Bootstrap creates the PLATFORM account and a platform user with ADMIN and
// REVIEWER if they do not exist, and returns a new token for that user. Safe
// to run again: it returns another token.
func (s *Service) Bootstrap(ctx context.Context, email, name string) (string, error) {
	email, err := ValidateEmail("--email", email)
	if err != nil {
		return "", err
	}
	if name == "" {
		name = "Platform"
	}
	if name, err = ValidateName("--name", name); err != nil {
		return "", err
	}
	ctx = SystemContext(ctx)
	var token string
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		// Serializes concurrent bootstraps.
		if err := tx.DB.Exec("SELECT pg_advisory_xact_lock(4242)").Error; err != nil {
			return err
		}
		var plat models.Account
		if err := tx.DB.Where("kind = ?", models.KindPlatform).Limit(1).Find(&plat).Error; err != nil {
			return fmt.Errorf("load platform: %w", err)
		}
		if plat.ID == 0 {
			now := tx.Now()
			err := tx.DB.Raw(`INSERT INTO accounts (kind, path, depth, name, email, currency, status, created_at, updated_at)
				VALUES ('PLATFORM', '', 0, ?, ?, 'CNY', 'ACTIVE', ?, ?) RETURNING *`, name, email, now, now).Scan(&plat).Error
			if err != nil {
				return fmt.Errorf("create platform: %w", err)
			}
			if err := tx.Audit("account.create", plat.ID, nil, accountSummary(&plat)); err != nil {
				return err
			}
		}
		var u models.User
		if err := tx.DB.Where("lower(email) = lower(?)", email).Limit(1).Find(&u).Error; err != nil {
			return fmt.Errorf("load user: %w", err)
		}
		if u.ID == 0 {
			nu, err := newUser(&plat, CreateUserInput{Email: email, Name: "Platform admin", Roles: []models.Role{models.RoleAdmin, models.RoleReviewer}})
			if err != nil {
				return err
			}
			if err := insertUser(tx, nu); err != nil {
				return err
			}
			u = *nu
		} else if u.AccountID != plat.ID {
			return apperr.Conflictf("%s is a user of another account, not of the platform", email)
		}
		var err error
		token, _, err = insertToken(tx, &u, 0)
		return err
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return "", fmt.Errorf("bootstrap: %w", err)
	}
	return token, err
}
