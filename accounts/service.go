package accounts

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"gorm.io/gorm"

	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Service offers the operations on the tree, users and tokens. Every method
// resolves the caller's scope once and goes through it.
type Service struct {
	st     *store.Store
	tokens *tokenCache
}

// New returns the accounts service on st.
func New(st *store.Store) *Service { return &Service{st: st, tokens: newTokenCache()} }

// Store is the store the service works on.
func (s *Service) Store() *store.Store { return s.st }

// Tag is one cost-allocation label.
type Tag struct {
	Key   string
	Value string
}

// SortedTags returns tags ordered by key.
func SortedTags(t models.Tags) []Tag {
	out := make([]Tag, 0, len(t))
	for k, v := range t {
		out = append(out, Tag{Key: k, Value: v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// Get returns the account with the given id if it is in the caller's scope,
// else NOT_FOUND.
func (s *Service) Get(ctx context.Context, id int64) (*models.Account, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	return GetInScope(s.st.DB.WithContext(ctx), sc, id)
}

// GetInScope loads one account through scope sc (NOT_FOUND outside it).
func GetInScope(db *gorm.DB, sc Scope, id int64) (*models.Account, error) {
	var a models.Account
	err := sc.Filter(db.Where("id = ?", id), "path").Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, NotFound("account")
	}
	if err != nil {
		return nil, fmt.Errorf("load account %d: %w", id, err)
	}
	return &a, nil
}

// LockInScope loads one account FOR UPDATE in tx through scope sc
// (NOT_FOUND outside it). Lock ancestors before descendants: with paths,
// order by path length.
func LockInScope(tx *store.Tx, sc Scope, id int64) (*models.Account, error) {
	return lockInScope(tx, sc, id, "FOR UPDATE")
}

// HoldInScope is LockInScope with the weaker FOR NO KEY UPDATE: it holds the
// account against every change of its row (a move, an unbinding, a freeze)
// until the transaction ends, yet lets other transactions insert rows that
// reference it (an audit entry, an expenditure), which FOR UPDATE would
// block, so it takes no part in their lock order.
func HoldInScope(tx *store.Tx, sc Scope, id int64) (*models.Account, error) {
	return lockInScope(tx, sc, id, "FOR NO KEY UPDATE")
}

func lockInScope(tx *store.Tx, sc Scope, id int64, mode string) (*models.Account, error) {
	var a models.Account
	q, args := sc.SQL("path")
	err := tx.DB.Raw("SELECT * FROM accounts WHERE id = ? AND "+q+" "+mode, append([]any{id}, args...)...).Scan(&a).Error
	if err != nil {
		return nil, fmt.Errorf("lock account %d: %w", id, err)
	}
	if a.ID == 0 {
		return nil, NotFound("account")
	}
	return &a, nil
}

// GetMany loads the accounts with the given ids that are in the caller's
// scope, in one query; missing and out-of-scope ids are absent from the map.
func (s *Service) GetMany(ctx context.Context, ids []int64) (map[int64]*models.Account, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var list []*models.Account
	if err := sc.Filter(s.st.DB.WithContext(ctx).Where("id = ANY(?)", store.Int64Array(ids)), "path").Find(&list).Error; err != nil {
		return nil, fmt.Errorf("load accounts: %w", err)
	}
	out := make(map[int64]*models.Account, len(list))
	for _, a := range list {
		out[a.ID] = a
	}
	return out, nil
}

// Me returns the caller's own account.
func (s *Service) Me(ctx context.Context) (*models.Account, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok {
		return nil, ErrUnauthenticated
	}
	if p.System {
		return s.Platform(ctx)
	}
	return s.Get(ctx, p.AccountID)
}

// Platform returns the PLATFORM account (NOT_FOUND before bootstrap).
func (s *Service) Platform(ctx context.Context) (*models.Account, error) {
	var a models.Account
	err := s.st.DB.WithContext(ctx).Where("kind = ?", models.KindPlatform).Take(&a).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, apperr.NotFoundf("the platform account does not exist yet: run partnerd bootstrap")
	}
	if err != nil {
		return nil, fmt.Errorf("load platform: %w", err)
	}
	return &a, nil
}

// CreateInput describes a new account.
type CreateInput struct {
	Kind     models.AccountKind
	ParentID int64
	Name     string
	Email    *string
	Phone    *string
	Currency string
	Tags     []Tag
}

// Create adds an account under a parent in the caller's scope, following the
// parent rules of DOMAIN.md §1 (the database enforces them too). There is
// exactly one PLATFORM account, made by bootstrap. A new CUSTOMER starts
// FROZEN with reason NEW_CUSTOMER: it cannot buy until its partner sets a
// budget and unfreezes it.
func (s *Service) Create(ctx context.Context, in CreateInput) (*models.Account, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var acct *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		parent, err := GetInScope(tx.DB, sc, in.ParentID)
		if err != nil {
			return err
		}
		if err := sc.Require(PermManageCustomers); err != nil {
			return err
		}
		a, err := newAccount(in)
		if err != nil {
			return err
		}
		acct = a
		if !CanBeChildOf(in.Kind, parent.Kind) {
			return apperr.Invalid("parentId", "an account of kind %s cannot be created under a %s; allowed parents: %s",
				in.Kind, parent.Kind, kindList(allowedParents[in.Kind]))
		}
		now := tx.Now()
		acct.ParentID = &parent.ID
		acct.CreatedAt, acct.UpdatedAt = now, now
		if in.Kind == models.KindCustomer {
			r := models.FrozenNewCustomer
			acct.Status, acct.FrozenAt, acct.FrozenReason = models.StatusFrozen, &now, &r
		}
		err = tx.DB.Raw(`INSERT INTO accounts (kind, parent_id, path, depth, name, email, phone, currency, status, frozen_at, frozen_reason, tags, created_at, updated_at)
			VALUES (?, ?, '', 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`,
			acct.Kind, acct.ParentID, acct.Name, acct.Email, acct.Phone, acct.Currency, acct.Status, acct.FrozenAt, acct.FrozenReason, acct.Tags, now, now).
			Scan(acct).Error
		if err != nil {
			return fmt.Errorf("insert account: %w", err)
		}
		if err := tx.DB.Create(&models.ParentHistory{AccountID: acct.ID, ParentID: parent.ID, ValidFrom: now}).Error; err != nil {
			return fmt.Errorf("parent history: %w", err)
		}
		if err := tx.Audit("account.create", acct.ID, nil, accountSummary(acct)); err != nil {
			return err
		}
		return tx.Emit(AccountChanged{AccountID: acct.ID, Change: "created"})
	})
	if err != nil {
		return nil, err
	}
	return acct, nil
}

// UpdateInput changes an account's display name and contact details; nil
// fields stay as they are, an empty email or phone clears it.
type UpdateInput struct {
	Name  *string
	Email *string
	Phone *string
}

// Update changes an account's name and contact details (ADMIN or OPERATOR in
// scope; a customer's own admin may edit its own contact details too).
func (s *Service) Update(ctx context.Context, id int64, in UpdateInput) (*models.Account, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := LockInScope(tx, sc, id)
		if err != nil {
			return err
		}
		if err := sc.Require(PermManageCustomers); err != nil {
			return err
		}
		before := accountSummary(a)
		if in.Name != nil {
			if a.Name, err = ValidateName("name", *in.Name); err != nil {
				return err
			}
		}
		if in.Email != nil {
			a.Email = nil
			if *in.Email != "" {
				e, err := ValidateEmail("email", *in.Email)
				if err != nil {
					return err
				}
				a.Email = &e
			}
		}
		if in.Phone != nil {
			a.Phone = nil
			if *in.Phone != "" {
				p, err := ValidatePhone("phone", *in.Phone)
				if err != nil {
					return err
				}
				a.Phone = &p
			}
		}
		a.UpdatedAt = tx.Now()
		if err := tx.DB.Model(a).Select("name", "email", "phone", "updated_at").Updates(a).Error; err != nil {
			return fmt.Errorf("update account: %w", err)
		}
		if err := tx.Audit("account.update", a.ID, before, accountSummary(a)); err != nil {
			return err
		}
		out = a
		return tx.Emit(AccountChanged{AccountID: a.ID, Change: "updated"})
	})
	return out, err
}

// SetTags replaces an account's cost-allocation tags.
func (s *Service) SetTags(ctx context.Context, id int64, tags []Tag) (*models.Account, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	valid, verr := ValidateTags("tags", tags)
	var out *models.Account
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := LockInScope(tx, sc, id)
		if err != nil {
			return err
		}
		if err := sc.Require(PermManageCustomers); err != nil {
			return err
		}
		if verr != nil {
			return verr
		}
		before := map[string]any{"tags": a.Tags}
		a.Tags, a.UpdatedAt = valid, tx.Now()
		if err := tx.DB.Model(a).Select("tags", "updated_at").Updates(a).Error; err != nil {
			return fmt.Errorf("set tags: %w", err)
		}
		if err := tx.Audit("account.tags", a.ID, before, map[string]any{"tags": a.Tags}); err != nil {
			return err
		}
		out = a
		return tx.Emit(AccountChanged{AccountID: a.ID, Change: "tags"})
	})
	return out, err
}

func accountSummary(a *models.Account) map[string]any {
	m := map[string]any{"kind": a.Kind, "name": a.Name, "currency": a.Currency, "status": a.Status}
	if a.ParentID != nil {
		m["parentId"] = *a.ParentID
	}
	if a.Email != nil {
		m["email"] = *a.Email
	}
	if a.Phone != nil {
		m["phone"] = *a.Phone
	}
	if len(a.Tags) > 0 {
		m["tags"] = a.Tags
	}
	return m
}

func kindList(ks []models.AccountKind) string {
	s := make([]string, len(ks))
	for i, k := range ks {
		s[i] = string(k)
	}
	return strings.Join(s, ", ")
}

// newAccount checks the fields of a new account (not its place in the tree).
func newAccount(in CreateInput) (*models.Account, error) {
	if !in.Kind.IsValid() {
		return nil, apperr.Invalid("kind", "unknown account kind %q", in.Kind)
	}
	if in.Kind == models.KindPlatform {
		return nil, apperr.Invalid("kind", "there is exactly one PLATFORM account and it already exists; create DISTRIBUTOR, RESELLER, CUSTOMER or PERSONAL accounts")
	}
	name, err := ValidateName("name", in.Name)
	if err != nil {
		return nil, err
	}
	acct := &models.Account{Kind: in.Kind, Name: name, Status: models.StatusActive}
	if in.Email != nil && *in.Email != "" {
		e, err := ValidateEmail("email", *in.Email)
		if err != nil {
			return nil, err
		}
		acct.Email = &e
	}
	if in.Phone != nil && *in.Phone != "" {
		p, err := ValidatePhone("phone", *in.Phone)
		if err != nil {
			return nil, err
		}
		acct.Phone = &p
	}
	if acct.Currency, err = ValidateCurrency("currency", in.Currency); err != nil {
		return nil, err
	}
	if acct.Tags, err = ValidateTags("tags", in.Tags); err != nil {
		return nil, err
	}
	return acct, nil
}
