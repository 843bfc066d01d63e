// Package lifecycle moves accounts in and out of a partner's tree
// (DOMAIN.md §1): invitations that make a PERSONAL account a partner's
// CUSTOMER.
package lifecycle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// InvitationTTL is how long an invitation can be accepted.
const InvitationTTL = 7 * 24 * time.Hour

// tokenPrefix starts every invitation token.
const tokenPrefix = "inv_"

// Invitation statuses; EXPIRED is a PENDING invitation past its expiry.
const (
	InvitationPending  = "PENDING"
	InvitationAccepted = "ACCEPTED"
	InvitationDeclined = "DECLINED"
	InvitationRevoked  = "REVOKED"
	InvitationExpired  = "EXPIRED"
)

// Invitation is a partner's invitation of a PERSONAL account.
type Invitation struct {
	ID        int64
	PartnerID int64
	AccountID int64
	Email     string
	Status    string
	CreatedAt time.Time
	ExpiresAt time.Time
	DecidedAt *time.Time
}

// IsNode marks Invitation as a Node.
func (Invitation) IsNode() {}

// Options configure the service.
type Options struct {
	// PublicURL is where users reach the product; invitation links start
	// with it.
	PublicURL string
	// Location is the billing time zone (for the guard rows of a new
	// customer).
	Location *time.Location
}

// Service offers invitations.
type Service struct {
	st   *store.Store
	opts Options
}

// New returns the lifecycle service on st.
func New(st *store.Store, o Options) *Service {
	if o.Location == nil {
		o.Location = time.UTC
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	return &Service{st: st, opts: o}
}

// Invite invites the PERSONAL account that uses email (a user's email, or
// the account's contact email) to become the caller's partner account's
// customer (ADMIN or OPERATOR of a DISTRIBUTOR or RESELLER). Its users get
// the invitation by email and in-site, with a link holding a token valid for
// InvitationTTL. An email of no personal account is VALIDATION; a personal
// account that is frozen or in arrears cannot be associated
// (PRECONDITION_FAILED); a second pending invitation of the same account by
// the same partner is a CONFLICT.
func (s *Service) Invite(ctx context.Context, email string) (*Invitation, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	p := sc.Principal()
	if !p.AccountKind.IsPartner() {
		return nil, apperr.Forbiddenf("customers are invited by a partner (a distributor or reseller)")
	}
	if err := sc.Require(accounts.PermManageCustomers); err != nil {
		return nil, err
	}
	email, err = accounts.ValidateEmail("email", email)
	if err != nil {
		return nil, err
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, err
	}
	var out *Invitation
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		var target struct {
			ID   int64
			Kind models.AccountKind
		}
		if err := tx.DB.Raw(`SELECT a.id, a.kind FROM accounts a
			WHERE a.id IN (SELECT account_id FROM users WHERE lower(email) = lower(?))
				OR (a.kind = 'PERSONAL' AND lower(a.email) = lower(?))
			ORDER BY (a.kind = 'PERSONAL') DESC, a.id LIMIT 1`, email, email).Scan(&target).Error; err != nil {
			return fmt.Errorf("find the invited account: %w", err)
		}
		switch {
		case target.ID == 0:
			return apperr.Invalid("email", "no personal account uses %s", email)
		case target.Kind != models.KindPersonal:
			return apperr.Invalid("email", "%s belongs to a %s account; only personal accounts can be invited", email, target.Kind)
		}
		a, err := lockAccount(tx, target.ID)
		if err != nil {
			return err
		}
		if err := associable(tx, a); err != nil {
			return err
		}
		now := tx.Now()
		inv := &Invitation{PartnerID: p.AccountID, AccountID: a.ID, Email: email, Status: InvitationPending, CreatedAt: now, ExpiresAt: now.Add(InvitationTTL)}
		err = tx.DB.Raw(`INSERT INTO invitations (partner_id, account_id, email, token_hash, invited_by, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, inv.PartnerID, inv.AccountID, email, hash, p.UserID, now, inv.ExpiresAt).Scan(&inv.ID).Error
		if store.PgConstraint(err) == "invitations_one_pending" {
			return apperr.Conflictf("this account already has a pending invitation from you")
		}
		if err != nil {
			return fmt.Errorf("create invitation: %w", err)
		}
		out = inv
		if err := tx.Audit("invitation.create", p.AccountID, nil, map[string]any{"invitationId": inv.ID, "email": email}); err != nil {
			return err
		}
		return tx.Emit(notify.InvitationSent{InvitationID: inv.ID, PartnerID: inv.PartnerID, AccountID: inv.AccountID, Token: token,
			AcceptURL: s.opts.PublicURL + "/invitations/accept?token=" + url.QueryEscape(token), ExpiresAt: inv.ExpiresAt.UTC().Format(time.RFC3339)})
	})
	return out, err
}

// Accept is a user of the invited PERSONAL account accepting with the
// token: the account becomes the partner's CUSTOMER (parent history
// appended, so usage before now stays with its former owner), FROZEN with
// reason NEW_CUSTOMER until the partner sets a budget and unfreezes it. An
// unknown token is NOT_FOUND, one already used, declined or revoked a
// CONFLICT, an expired one PRECONDITION_FAILED, one addressed to another
// account FORBIDDEN.
func (s *Service) Accept(ctx context.Context, token string) (*models.Account, error) {
	var out *models.Account
	err := s.answer(ctx, token, func(tx *store.Tx, inv *Invitation, a *models.Account, p *accounts.Principal) error {
		if err := associable(tx, a); err != nil {
			return err
		}
		var partner models.Account
		if err := tx.DB.Raw(`SELECT * FROM accounts WHERE id = ?`, inv.PartnerID).Scan(&partner).Error; err != nil {
			return fmt.Errorf("load partner: %w", err)
		}
		before := map[string]any{"kind": a.Kind, "parentId": a.ParentID, "status": a.Status}
		if err := s.associateCustomer(tx, a, &partner); err != nil {
			return err
		}
		// Its applications through other partners' links are moot now.
		if err := withdrawPending(tx, a.ID, "the applicant is no longer a personal account", tx.Now()); err != nil {
			return err
		}
		if err := s.decide(tx, inv, InvitationAccepted, p.UserID); err != nil {
			return err
		}
		if err := tx.Audit("invitation.accept", a.ID, before, map[string]any{"kind": models.KindCustomer, "parentId": partner.ID,
			"status": models.StatusFrozen, "frozenReason": models.FrozenNewCustomer, "invitationId": inv.ID}); err != nil {
			return err
		}
		if err := tx.Emit(notify.InvitationAnswered{InvitationID: inv.ID, PartnerID: inv.PartnerID, AccountID: a.ID, Accepted: true},
			accounts.AccountChanged{AccountID: a.ID, Change: "associated"}); err != nil {
			return err
		}
		var err error
		out, err = lockAccount(tx, a.ID)
		return err
	})
	return out, err
}

// Decline is a user of the invited account declining with the token (the
// same refusals as Accept).
func (s *Service) Decline(ctx context.Context, token string) error {
	return s.answer(ctx, token, func(tx *store.Tx, inv *Invitation, a *models.Account, p *accounts.Principal) error {
		if err := s.decide(tx, inv, InvitationDeclined, p.UserID); err != nil {
			return err
		}
		if err := tx.Audit("invitation.decline", a.ID, nil, map[string]any{"invitationId": inv.ID}); err != nil {
			return err
		}
		return tx.Emit(notify.InvitationAnswered{InvitationID: inv.ID, PartnerID: inv.PartnerID, AccountID: a.ID, Accepted: false})
	})
}

// Revoke withdraws a pending invitation (ADMIN or OPERATOR of the inviting
// partner or above it); an invitation outside the caller's scope is
// NOT_FOUND, one no longer pending a CONFLICT.
func (s *Service) Revoke(ctx context.Context, id int64) (*Invitation, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *Invitation
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		q, args := sc.SQL("p.path")
		var inv Invitation
		if err := tx.DB.Raw(`SELECT i.id, i.partner_id, i.account_id, i.email, i.status, i.created_at, i.expires_at, i.decided_at
			FROM invitations i JOIN accounts p ON p.id = i.partner_id WHERE i.id = ? AND `+q+` FOR UPDATE OF i`,
			append([]any{id}, args...)...).Scan(&inv).Error; err != nil {
			return fmt.Errorf("load invitation %d: %w", id, err)
		}
		if inv.ID == 0 {
			return accounts.NotFound("invitation")
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		if st := effective(&inv, tx.Now()); st != InvitationPending {
			return apperr.Conflictf("the invitation is %s, not pending", st)
		}
		if err := s.decide(tx, &inv, InvitationRevoked, sc.Principal().UserID); err != nil {
			return err
		}
		out = &inv
		return tx.Audit("invitation.revoke", inv.PartnerID, nil, map[string]any{"invitationId": inv.ID})
	})
	return out, err
}

// answer runs fn on the pending invitation of token, locked, with the
// invited account locked, for a user of that account.
func (s *Service) answer(ctx context.Context, token string, fn func(tx *store.Tx, inv *Invitation, a *models.Account, p *accounts.Principal) error) error {
	p, ok := accounts.PrincipalFrom(ctx)
	if !ok {
		return accounts.ErrUnauthenticated
	}
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 100 {
		return apperr.NotFoundf("no invitation has this token")
	}
	sum := sha256.Sum256([]byte(token))
	return s.st.InTx(ctx, func(tx *store.Tx) error {
		var inv Invitation
		if err := tx.DB.Raw(`SELECT id, partner_id, account_id, email, status, created_at, expires_at, decided_at
			FROM invitations WHERE token_hash = ? FOR UPDATE`, sum[:]).Scan(&inv).Error; err != nil {
			return fmt.Errorf("load invitation: %w", err)
		}
		if inv.ID == 0 {
			return apperr.NotFoundf("no invitation has this token")
		}
		if p.System || p.AccountID != inv.AccountID {
			return apperr.Forbiddenf("this invitation is addressed to another account: accept it as a user of the invited account")
		}
		switch st := effective(&inv, tx.Now()); st {
		case InvitationPending:
		case InvitationExpired:
			return apperr.Preconditionf("the invitation expired at %s; ask the partner for a new one", inv.ExpiresAt.UTC().Format(time.RFC3339))
		default:
			return apperr.Conflictf("the invitation was already %s", strings.ToLower(st))
		}
		a, err := lockAccount(tx, inv.AccountID)
		if err != nil {
			return err
		}
		if a.Kind != models.KindPersonal {
			return apperr.Preconditionf("the account is already a %s; only a personal account can accept", a.Kind)
		}
		return fn(tx, &inv, a, p)
	})
}

// decide records the end of a pending invitation.
func (s *Service) decide(tx *store.Tx, inv *Invitation, status string, by int64) error {
	now := tx.Now()
	var decider any
	if by != 0 {
		decider = by
	}
	if err := tx.DB.Exec(`UPDATE invitations SET status = ?, decided_at = ?, decided_by = ? WHERE id = ?`, status, now, decider, inv.ID).Error; err != nil {
		return fmt.Errorf("update invitation %d: %w", inv.ID, err)
	}
	inv.Status, inv.DecidedAt = status, &now
	return nil
}

// associable refuses a personal account that is frozen or in arrears.
func associable(tx *store.Tx, a *models.Account) error {
	if a.Status != models.StatusActive {
		return apperr.Preconditionf("the account is %s: a frozen account cannot be associated with a partner", a.Status)
	}
	var inArrears bool
	if err := tx.DB.Raw(`SELECT coalesce(bool_or(in_arrears), false) FROM credit_balances WHERE account_id = ?`, a.ID).Scan(&inArrears).Error; err != nil {
		return fmt.Errorf("arrears of %d: %w", a.ID, err)
	}
	if inArrears {
		return apperr.Preconditionf("the account has unpaid arrears: it cannot be associated with a partner")
	}
	return nil
}

// effective is an invitation's status as of now: PENDING past its expiry
// reads EXPIRED.
func effective(inv *Invitation, now time.Time) string {
	if inv.Status == InvitationPending && !now.Before(inv.ExpiresAt) {
		return InvitationExpired
	}
	return inv.Status
}

// lockAccount locks account id (accounts.Lock), NOT_FOUND when missing.
func lockAccount(tx *store.Tx, id int64) (*models.Account, error) {
	a, err := accounts.Lock(tx, id)
	if err == nil && a == nil {
		err = accounts.NotFound("account")
	}
	return a, err
}

// newToken returns a fresh invitation token and its SHA-256.
func newToken() (string, []byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, fmt.Errorf("invitation token: %w", err)
	}
	token := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	return token, sum[:], nil
}
