package lifecycle

import (
	"context"
	"fmt"
	"strings"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/migration"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
	"partnerd/vouchers"
)

// UnbindingTTL is how long an unbinding waits for the other side.
const UnbindingTTL = 7 * 24 * time.Hour

// Unbinding statuses.
const (
	UnbindingPending   = "PENDING"
	UnbindingCompleted = "COMPLETED"
	UnbindingRejected  = "REJECTED"
	UnbindingLapsed    = "LAPSED"
)

// The sides of an unbinding.
const (
	SidePartner  = "PARTNER"
	SideCustomer = "CUSTOMER"
)

// Unbinding is a customer leaving its partner.
type Unbinding struct {
	ID          int64
	CustomerID  int64
	PartnerID   int64
	RequestedBy string
	Status      string
	Reason      string
	CreatedAt   time.Time
	ExpiresAt   time.Time
	EffectiveAt *time.Time
}

// IsNode marks Unbinding as a Node.
func (Unbinding) IsNode() {}

const unbindingColumns = `id, customer_id, partner_id, requested_by, status, reason, created_at, expires_at, effective_at`

// RequestUnbinding starts the unbinding of a customer, by its partner (ADMIN
// or OPERATOR of the customer's own partner) or by the customer itself
// (ADMIN or OPERATOR); the other side confirms or rejects within
// UnbindingTTL. Outside the caller's scope: NOT_FOUND; a user of a partner
// above the customer's own: FORBIDDEN. Refused while the customer is already
// unbinding (CONFLICT), in a billing group or shared unit, or frozen with its
// resources (PRECONDITION_FAILED).
func (s *Service) RequestUnbinding(ctx context.Context, customerID int64) (*Unbinding, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *Unbinding
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		c, err := accounts.LockInScope(tx, sc, customerID)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		if c.Kind != models.KindCustomer {
			return apperr.Invalid("customerId", "only a customer can leave its partner, not a %s", c.Kind)
		}
		side, err := sideOf(sc.Principal(), c.ID, *c.ParentID)
		if err != nil {
			return err
		}
		if err := unbindable(tx, c); err != nil {
			return err
		}
		now := tx.Now()
		u := &Unbinding{CustomerID: c.ID, PartnerID: *c.ParentID, RequestedBy: side, Status: UnbindingPending, CreatedAt: now, ExpiresAt: now.Add(UnbindingTTL)}
		var requester any
		if p := sc.Principal(); !p.System {
			requester = p.UserID
		}
		err = tx.DB.Raw(`INSERT INTO unbindings (customer_id, partner_id, requested_by, requester, created_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, u.CustomerID, u.PartnerID, side, requester, now, u.ExpiresAt).Scan(&u.ID).Error
		if store.PgConstraint(err) == "unbindings_one_pending" {
			return apperr.Conflictf("the customer is already in an unbinding process")
		}
		if err != nil {
			return fmt.Errorf("request unbinding: %w", err)
		}
		out = u
		if err := tx.Audit("unbinding.request", c.ID, nil, map[string]any{"unbindingId": u.ID, "requestedBy": side}); err != nil {
			return err
		}
		return tx.Emit(changed(u), accounts.AccountChanged{AccountID: c.ID, Change: "unbinding"})
	})
	return out, err
}

// ConfirmUnbinding is the other side agreeing: the customer becomes a
// PERSONAL account under the platform, effective now. Its allocated credit
// returns to the partner (a RELEASE ledger row), its budget is removed, a
// freeze (account only) ends — a personal account pays for itself — and the
// parent history records the effective time, so usage before it stays
// billed to the partner.
func (s *Service) ConfirmUnbinding(ctx context.Context, id int64) (*Unbinding, error) {
	return s.decideUnbinding(ctx, id, func(tx *store.Tx, u *Unbinding, c *models.Account, by int64) error {
		if err := unbindable(tx, c); err != nil {
			return err
		}
		now := tx.Now()
		if err := credit.ReleaseAllocation(tx, c.ID, fmt.Sprintf("unbinding %d", u.ID), s.opts.Location); err != nil {
			return err
		}
		if err := vouchers.CancelForCustomer(tx, c.ID, fmt.Sprintf("unbinding %d", u.ID)); err != nil {
			return err
		}
		if err := tx.DB.Exec(`DELETE FROM budgets WHERE customer_id = ?`, c.ID).Error; err != nil {
			return fmt.Errorf("remove budget: %w", err)
		}
		var plat models.Account
		if err := tx.DB.Raw(`SELECT * FROM accounts WHERE kind = 'PLATFORM'`).Scan(&plat).Error; err != nil || plat.ID == 0 {
			return fmt.Errorf("load platform: %v", err)
		}
		before := map[string]any{"kind": c.Kind, "parentId": c.ParentID, "status": c.Status}
		if err := accounts.Move(tx, c, &plat, models.KindPersonal); err != nil {
			return err
		}
		if err := tx.DB.Exec(`UPDATE accounts SET status = 'ACTIVE', frozen_at = NULL, frozen_reason = NULL, release_at = NULL WHERE id = ?`,
			c.ID).Error; err != nil {
			return fmt.Errorf("end the freeze of %d: %w", c.ID, err)
		}
		if err := tx.DB.Exec(`UPDATE unbindings SET status = 'COMPLETED', decided_at = ?, decided_by = ?, effective_at = ? WHERE id = ?`,
			now, nullable(by), now, u.ID).Error; err != nil {
			return fmt.Errorf("complete unbinding: %w", err)
		}
		u.Status, u.EffectiveAt = UnbindingCompleted, &now
		if err := tx.Audit("unbinding.complete", c.ID, before, map[string]any{"kind": models.KindPersonal, "parentId": plat.ID,
			"status": models.StatusActive, "unbindingId": u.ID}); err != nil {
			return err
		}
		return guard.Sync(tx, s.opts.Location, c.ID)
	})
}

// RejectUnbinding is the other side refusing, with an optional reason.
func (s *Service) RejectUnbinding(ctx context.Context, id int64, reason string) (*Unbinding, error) {
	reason = strings.TrimSpace(reason)
	if len([]rune(reason)) > 500 {
		return nil, apperr.Invalid("reason", "at most 500 characters")
	}
	return s.decideUnbinding(ctx, id, func(tx *store.Tx, u *Unbinding, c *models.Account, by int64) error {
		if err := tx.DB.Exec(`UPDATE unbindings SET status = 'REJECTED', reason = ?, decided_at = ?, decided_by = ? WHERE id = ?`,
			reason, tx.Now(), nullable(by), u.ID).Error; err != nil {
			return fmt.Errorf("reject unbinding: %w", err)
		}
		u.Status, u.Reason = UnbindingRejected, reason
		return tx.Audit("unbinding.reject", c.ID, nil, map[string]any{"unbindingId": u.ID, "reason": reason})
	})
}

// decideUnbinding runs fn on a pending unbinding for the side that did not
// request it, then notifies both sides.
func (s *Service) decideUnbinding(ctx context.Context, id int64, fn func(tx *store.Tx, u *Unbinding, c *models.Account, by int64) error) (*Unbinding, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var out *Unbinding
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		u, err := s.lockUnbinding(tx, sc, id)
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermManageCustomers); err != nil {
			return err
		}
		side, err := sideOf(sc.Principal(), u.CustomerID, u.PartnerID)
		if err != nil {
			return err
		}
		if side == u.RequestedBy && !sc.Principal().System {
			return apperr.Forbiddenf("the unbinding was requested by the %s side: the other side answers it", strings.ToLower(side))
		}
		switch st := effectiveUnbinding(u, tx.Now()); st {
		case UnbindingPending:
		case UnbindingLapsed:
			return apperr.Preconditionf("the unbinding lapsed at %s", u.ExpiresAt.UTC().Format(time.RFC3339))
		default:
			return apperr.Conflictf("the unbinding is already %s", strings.ToLower(st))
		}
		c, err := lockAccount(tx, u.CustomerID)
		if err != nil {
			return err
		}
		var by int64
		if p := sc.Principal(); !p.System {
			by = p.UserID
		}
		if err := fn(tx, u, c, by); err != nil {
			return err
		}
		out = u
		return tx.Emit(changed(u), accounts.AccountChanged{AccountID: c.ID, Change: "unbinding"})
	})
	return out, err
}

// SweepUnbindings marks the pending unbindings past their expiry LAPSED and
// tells both sides (for the scheduler); it returns how many lapsed.
func (s *Service) SweepUnbindings(ctx context.Context) (int, error) {
	n := 0
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var list []*Unbinding
		if err := tx.DB.Raw(`SELECT `+unbindingColumns+` FROM unbindings WHERE status = 'PENDING' AND expires_at <= ?
			ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED`, tx.Now()).Scan(&list).Error; err != nil {
			return fmt.Errorf("find lapsed unbindings: %w", err)
		}
		evs := make([]store.Event, 0, len(list))
		for _, u := range list {
			if err := tx.DB.Exec(`UPDATE unbindings SET status = 'LAPSED', decided_at = ? WHERE id = ?`, tx.Now(), u.ID).Error; err != nil {
				return fmt.Errorf("lapse unbinding %d: %w", u.ID, err)
			}
			u.Status = UnbindingLapsed
			if err := tx.Audit("unbinding.lapse", u.CustomerID, nil, map[string]any{"unbindingId": u.ID}); err != nil {
				return err
			}
			evs = append(evs, changed(u))
		}
		n = len(list)
		return tx.Emit(evs...)
	})
	return n, err
}

// Unbinding returns an unbinding its customer's or partner's users (or an
// ancestor's, or the platform's) may see, else NOT_FOUND. Both parties keep
// seeing it after the customer has left.
func (s *Service) Unbinding(ctx context.Context, id int64) (*Unbinding, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var u Unbinding
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT `+unbindingColumns+` FROM unbindings WHERE id = ?`, id).Scan(&u).Error; err != nil {
		return nil, fmt.Errorf("load unbinding %d: %w", id, err)
	}
	if u.ID == 0 || !s.party(ctx, sc, &u) {
		return nil, accounts.NotFound("unbinding")
	}
	u.Status = effectiveUnbinding(&u, s.st.Now())
	return &u, nil
}

// Party returns account id (the customer or the partner of u) for a caller
// who may see u: the two parties see each other on it.
func (s *Service) Party(ctx context.Context, u *Unbinding, id int64) (*models.Account, error) {
	if _, err := s.Unbinding(ctx, u.ID); err != nil {
		return nil, err
	}
	var a models.Account
	if err := s.st.DB.WithContext(ctx).Take(&a, id).Error; err != nil {
		return nil, fmt.Errorf("load account %d: %w", id, err)
	}
	return &a, nil
}

// InUnbinding reports which of the given customers have an unbinding
// pending (and not lapsed): one query.
func (s *Service) InUnbinding(ctx context.Context, ids []int64) (map[int64]bool, error) {
	var pending []int64
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT customer_id FROM unbindings WHERE status = 'PENDING' AND expires_at > ?
		AND customer_id = ANY(?::bigint[])`, s.st.Now(), store.Int64Array(ids)).Scan(&pending).Error; err != nil {
		return nil, fmt.Errorf("pending unbindings: %w", err)
	}
	out := make(map[int64]bool, len(pending))
	for _, id := range pending {
		out[id] = true
	}
	return out, nil
}

// party reports whether the caller is a party of u or above one.
func (s *Service) party(ctx context.Context, sc accounts.Scope, u *Unbinding) bool {
	p := sc.Principal()
	if p.IsPlatform() || p.AccountID == u.CustomerID || p.AccountID == u.PartnerID {
		return true
	}
	_, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, u.PartnerID)
	return err == nil
}

func (s *Service) lockUnbinding(tx *store.Tx, sc accounts.Scope, id int64) (*Unbinding, error) {
	var u Unbinding
	if err := tx.DB.Raw(`SELECT `+unbindingColumns+` FROM unbindings WHERE id = ? FOR UPDATE`, id).Scan(&u).Error; err != nil {
		return nil, fmt.Errorf("lock unbinding %d: %w", id, err)
	}
	if u.ID == 0 || !s.party(tx.Context(), sc, &u) {
		return nil, accounts.NotFound("unbinding")
	}
	return &u, nil
}

// sideOf says which side of customer and partner the principal acts for:
// the partner's own users, or the customer's. The platform acts for the
// partner. Anyone else (a partner above the customer's own) is FORBIDDEN.
func sideOf(p *accounts.Principal, customerID, partnerID int64) (string, error) {
	switch {
	case p.AccountID == customerID:
		return SideCustomer, nil
	case p.AccountID == partnerID || p.IsPlatform():
		return SidePartner, nil
	}
	return "", apperr.Forbiddenf("an unbinding is requested and answered by the customer and its own partner")
}

// unbindable refuses a customer in a billing group or shared unit, frozen
// with its resources, or held by a submitted migration.
func unbindable(tx *store.Tx, c *models.Account) error {
	if c.Status == models.StatusFrozenWithResources {
		return apperr.Preconditionf("the customer is frozen with its resources: unfreeze it first")
	}
	var sets int64
	if err := tx.DB.Raw(`SELECT (SELECT count(*) FROM customer_group_members WHERE account_id = ?) + (SELECT count(*) FROM sharing_unit_members WHERE account_id = ?)`,
		c.ID, c.ID).Scan(&sets).Error; err != nil {
		return fmt.Errorf("memberships of %d: %w", c.ID, err)
	}
	if sets > 0 {
		return apperr.Preconditionf("the customer is in a billing group or a shared unit of its partner: remove it first")
	}
	held, err := migration.Held(tx, c.ID)
	if err != nil {
		return err
	}
	if held {
		return apperr.Preconditionf("the customer is in a migration to another partner: it must end first")
	}
	return nil
}

func effectiveUnbinding(u *Unbinding, now time.Time) string {
	if u.Status == UnbindingPending && !now.Before(u.ExpiresAt) {
		return UnbindingLapsed
	}
	return u.Status
}

func changed(u *Unbinding) notify.UnbindingChanged {
	return notify.UnbindingChanged{UnbindingID: u.ID, CustomerID: u.CustomerID, PartnerID: u.PartnerID, Status: u.Status,
		RequestedBy: u.RequestedBy, Reason: u.Reason}
}

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
