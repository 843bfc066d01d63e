// Package models holds partnerd's data: the gorm entities (one file per table
// group), the enums of the GraphQL schema, and the Decimal, Month and Time
// scalars. It holds data, not behaviour.
package models

import (
	"database/sql/driver"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// AccountKind is the kind of an account in the reseller tree (DOMAIN.md §1).
type AccountKind string

// The account kinds.
const (
	KindPlatform    AccountKind = "PLATFORM"
	KindDistributor AccountKind = "DISTRIBUTOR"
	KindReseller    AccountKind = "RESELLER"
	KindCustomer    AccountKind = "CUSTOMER"
	KindPersonal    AccountKind = "PERSONAL"
)

// AllAccountKinds lists every kind.
var AllAccountKinds = []AccountKind{KindPlatform, KindDistributor, KindReseller, KindCustomer, KindPersonal}

// IsValid reports whether k is a known kind.
func (k AccountKind) IsValid() bool {
	for _, x := range AllAccountKinds {
		if x == k {
			return true
		}
	}
	return false
}

// IsPartner reports whether the kind is a partner (DISTRIBUTOR or RESELLER).
func (k AccountKind) IsPartner() bool { return k == KindDistributor || k == KindReseller }

// AccountStatus is whether an account may buy and run resources (DOMAIN.md §4).
type AccountStatus string

// The account statuses.
const (
	StatusActive              AccountStatus = "ACTIVE"
	StatusFrozen              AccountStatus = "FROZEN"
	StatusFrozenWithResources AccountStatus = "FROZEN_WITH_RESOURCES"
)

// IsValid reports whether s is a known status.
func (s AccountStatus) IsValid() bool {
	return s == StatusActive || s == StatusFrozen || s == StatusFrozenWithResources
}

// FrozenReason says why an account is frozen.
type FrozenReason string

// The freeze reasons.
const (
	FrozenManual      FrozenReason = "MANUAL"
	FrozenOverspend   FrozenReason = "OVERSPEND"
	FrozenArrears     FrozenReason = "ARREARS"
	FrozenNewCustomer FrozenReason = "NEW_CUSTOMER"
)

// Account is one party of the reseller tree. Path is the materialized path of
// ids from the root ("/1/7/42/"), so a subtree is one indexed prefix lookup.
type Account struct {
	ID           int64 `gorm:"primaryKey"`
	Kind         AccountKind
	ParentID     *int64
	Path         string
	Depth        int
	Name         string
	Email        *string
	Phone        *string
	Currency     string
	Status       AccountStatus
	FrozenAt     *time.Time
	FrozenReason *FrozenReason
	// ReleaseAt: when a FROZEN_WITH_RESOURCES account's resources are
	// released unless it is unfrozen first.
	ReleaseAt *time.Time
	// DataDeletedAt: when the account's data was deleted at its release.
	DataDeletedAt *time.Time
	Tags          Tags
	// PurchaseBanned: the partner banned new prepaid purchases (issue 14).
	PurchaseBanned bool
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// Redacted marks a copy shown to a caller outside the account's scope,
	// which must learn nothing but its ID and kind (see Redact). Never
	// stored.
	Redacted bool `gorm:"-" json:"-"`
}

// Redact returns what a caller outside a's scope may see of it: its ID,
// kind and status (a migration's row reasons say as much), its creation
// time, and its ID for a name; no contact, tags, parent or path.
func (a *Account) Redact(label string) *Account {
	return &Account{ID: a.ID, Kind: a.Kind, Status: a.Status, Currency: a.Currency, Name: label,
		CreatedAt: a.CreatedAt, UpdatedAt: a.CreatedAt, Redacted: true}
}

// TableName is the accounts table.
func (Account) TableName() string { return "accounts" }

// Tier is the depth below PLATFORM: 1 for distributors and single-tier
// resellers, 2 for second-level resellers and the customers of tier-1
// partners.
func (a *Account) Tier() int { return a.Depth }

// ParentHistory records who owned an account over which interval; usage is
// attributed to the owner at its usage time (DOMAIN.md §4).
type ParentHistory struct {
	ID        int64 `gorm:"primaryKey"`
	AccountID int64
	ParentID  int64
	ValidFrom time.Time
	ValidTo   *time.Time
}

// TableName is the account_parent_history table.
func (ParentHistory) TableName() string { return "account_parent_history" }

// Tags are an account's cost-allocation labels, key=value.
type Tags map[string]string

// Value stores tags as jsonb.
func (t Tags) Value() (driver.Value, error) {
	if t == nil {
		return "{}", nil
	}
	b, err := json.Marshal(map[string]string(t))
	return string(b), err
}

// Scan reads tags from jsonb.
func (t *Tags) Scan(src any) error {
	var b []byte
	switch v := src.(type) {
	case nil:
		*t = Tags{}
		return nil
	case []byte:
		b = v
	case string:
		b = []byte(v)
	default:
		return fmt.Errorf("tags: cannot scan %T", src)
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("tags: %w", err)
	}
	*t = m
	return nil
}

// Role is a user's role (DOMAIN.md §2).
type Role string

// The roles.
const (
	RoleAdmin    Role = "ADMIN"
	RoleFinance  Role = "FINANCE"
	RoleOperator Role = "OPERATOR"
	RoleViewer   Role = "VIEWER"
	RoleReviewer Role = "REVIEWER"
)

// IsValid reports whether r is a known role.
func (r Role) IsValid() bool {
	switch r {
	case RoleAdmin, RoleFinance, RoleOperator, RoleViewer, RoleReviewer:
		return true
	}
	return false
}

// Roles is a set of roles, stored as a PostgreSQL text[].
type Roles []Role

// Has reports whether the set holds r.
func (rs Roles) Has(r Role) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

// Value writes the PostgreSQL array literal.
func (rs Roles) Value() (driver.Value, error) {
	parts := make([]string, len(rs))
	for i, r := range rs {
		if !r.IsValid() {
			return nil, fmt.Errorf("roles: invalid role %q", r)
		}
		parts[i] = string(r)
	}
	return "{" + strings.Join(parts, ",") + "}", nil
}

// Scan reads a PostgreSQL array literal of role names.
func (rs *Roles) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*rs = nil
		return nil
	case []byte:
		s = string(v)
	case string:
		s = v
	default:
		return fmt.Errorf("roles: cannot scan %T", src)
	}
	s = strings.Trim(s, "{}")
	out := Roles{}
	if s != "" {
		for _, p := range strings.Split(s, ",") {
			out = append(out, Role(strings.Trim(p, `"`)))
		}
	}
	*rs = out
	return nil
}

// Locale is a user's language for notifications.
type Locale string

// The supported locales.
const (
	LocaleEnUS Locale = "en-US"
	LocaleZhCN Locale = "zh-CN"
)

// User belongs to one account and acts with its roles.
type User struct {
	ID        int64 `gorm:"primaryKey"`
	AccountID int64
	Email     string
	Phone     *string
	Name      string
	Roles     Roles `gorm:"type:text[]"`
	Locale    Locale
	CreatedAt time.Time
}

// TableName is the users table.
func (User) TableName() string { return "users" }

// APIToken is an opaque bearer token, stored only as its SHA-256 hash.
type APIToken struct {
	ID         int64 `gorm:"primaryKey"`
	UserID     int64
	Hash       []byte
	Name       string
	ExpiresAt  *time.Time
	RevokedAt  *time.Time
	CreatedAt  time.Time
	CreatedBy  *int64
	LastUsedAt *time.Time
}

// TableName is the api_tokens table.
func (APIToken) TableName() string { return "api_tokens" }
