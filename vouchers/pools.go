package vouchers

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// poolRow is a voucher_pools row.
type poolRow struct {
	PartnerID         int64
	Quota             decimal.Decimal
	Allocated         decimal.Decimal
	Issued            decimal.Decimal
	ExpiresAt         *time.Time
	ExpiredAt         *time.Time
	ApprovalThreshold *decimal.Decimal
	LowAlerted        bool
}

func (p *poolRow) remaining() decimal.Decimal { return p.Quota.Sub(p.Allocated).Sub(p.Issued) }

// lockPool locks partnerID's pool row, creating an empty one first when it
// has none. Lock a distributor's pool before its resellers'.
func lockPool(tx *store.Tx, partnerID int64) (*poolRow, error) {
	if err := tx.DB.Exec(`INSERT INTO voucher_pools (partner_id, updated_at) VALUES (?, ?) ON CONFLICT (partner_id) DO NOTHING`,
		partnerID, tx.Now()).Error; err != nil {
		return nil, fmt.Errorf("create voucher pool: %w", err)
	}
	var p poolRow
	if err := tx.DB.Raw(`SELECT * FROM voucher_pools WHERE partner_id = ? FOR UPDATE`, partnerID).Scan(&p).Error; err != nil {
		return nil, fmt.Errorf("lock voucher pool: %w", err)
	}
	return &p, nil
}

// savePool writes p's balances and tells its partner, once, when its
// remaining quota fell below 10% of the quota (cleared when back above).
func savePool(tx *store.Tx, p *poolRow, expiresAt *time.Time) error {
	low := p.Quota.IsPositive() && p.remaining().LessThan(p.Quota.Mul(lowQuotaShare))
	alert := low && !p.LowAlerted
	p.LowAlerted = low
	if err := tx.DB.Exec(`UPDATE voucher_pools SET quota = ?, allocated = ?, issued = ?, low_alerted = ?, updated_at = ? WHERE partner_id = ?`,
		p.Quota, p.Allocated, p.Issued, p.LowAlerted, tx.Now(), p.PartnerID).Error; err != nil {
		if store.PgConstraint(err) == "voucher_pools_within_quota" {
			return apperr.Preconditionf("the voucher quota is exhausted")
		}
		return fmt.Errorf("update voucher pool: %w", err)
	}
	if !alert {
		return nil
	}
	ev := notify.VoucherQuotaLow{PartnerID: p.PartnerID, Quota: models.FormatDecimal(p.Quota), Remaining: models.FormatDecimal(p.remaining())}
	if expiresAt != nil {
		ev.ExpiresAt = expiresAt.UTC().Format(time.RFC3339)
	}
	return tx.Emit(ev)
}

// ledger appends a pool ledger row with the balances p was left with.
func ledger(tx *store.Tx, p *poolRow, kind string, amount decimal.Decimal, counterparty, voucherID, issuanceID *int64, reason string) error {
	actor := store.ActorFrom(tx.Context())
	err := tx.DB.Exec(`INSERT INTO voucher_pool_ledger (at, actor, partner_id, kind, counterparty_id, voucher_id, issuance_id, amount, reason,
			quota_after, allocated_after, issued_after, request_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tx.Now(), actor.Label, p.PartnerID, kind, counterparty, voucherID, issuanceID, amount, reason,
		p.Quota, p.Allocated, p.Issued, store.RequestID(tx.Context())).Error
	if err != nil {
		return fmt.Errorf("voucher pool ledger: %w", err)
	}
	return nil
}

// poolSummary is the audit summary of a pool.
func poolSummary(p *poolRow) map[string]any {
	return map[string]any{"quota": models.FormatDecimal(p.Quota), "allocated": models.FormatDecimal(p.Allocated),
		"issued": models.FormatDecimal(p.Issued)}
}

// positive refuses an amount that is not above zero.
func positive(field string, amount decimal.Decimal) error {
	if !amount.IsPositive() {
		return apperr.Invalid(field, "the amount must be greater than 0")
	}
	if amount.Exponent() < -6 {
		return apperr.Invalid(field, "amounts have at most 6 decimals")
	}
	return nil
}

// expiryOf returns when the quota of partner a expires: a tier-1 partner's
// own grant, a second-level reseller's distributor's.
func expiryOf(tx *store.Tx, a *models.Account, own *poolRow) (*time.Time, error) {
	if a.Depth <= 1 {
		return own.ExpiresAt, nil
	}
	var exp struct{ ExpiresAt *time.Time }
	if err := tx.DB.Raw(`SELECT expires_at FROM voucher_pools WHERE partner_id = ?`, a.ParentID).Scan(&exp).Error; err != nil {
		return nil, fmt.Errorf("load distributor's voucher pool: %w", err)
	}
	return exp.ExpiresAt, nil
}

// usable refuses to draw on a pool whose quota has expired or was never
// granted.
func usable(now time.Time, expiresAt *time.Time) error {
	if expiresAt == nil {
		return apperr.Preconditionf("no voucher quota was granted")
	}
	if !now.Before(*expiresAt) {
		return apperr.Preconditionf("the voucher quota expired at %s", expiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}

// partnerInScope loads partnerID through the caller's scope and requires a
// partner account.
func partnerInScope(tx *store.Tx, sc accounts.Scope, partnerID int64, field string) (*models.Account, error) {
	a, err := accounts.GetInScope(tx.DB, sc, partnerID)
	if err != nil {
		return nil, err
	}
	if !a.Kind.IsPartner() {
		return nil, apperr.Invalid(field, "voucher quotas belong to partners (distributors and resellers), not to a %s account", a.Kind)
	}
	return a, nil
}

// Grant adds amount to a tier-1 partner's voucher quota and sets the
// quota's expiry: the whole pool (and its resellers' pools) expires then.
// Only the platform's ADMIN or FINANCE may; expiresAt lies in the future.
// A grant re-opens an expired pool.
func (s *Service) Grant(ctx context.Context, partnerID int64, amount decimal.Decimal, expiresAt time.Time) (*Pool, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		a, err := partnerInScope(tx, sc, partnerID, "partnerId")
		if err != nil {
			return err
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if !sc.Principal().IsPlatform() {
			return apperr.Forbiddenf("only the platform grants voucher quota; distributors allocate theirs to their resellers")
		}
		if a.Depth != 1 {
			return apperr.Invalid("partnerId", "voucher quota is granted to tier-1 partners; a second-level reseller's comes from its distributor")
		}
		if err := positive("amount", amount); err != nil {
			return err
		}
		if !expiresAt.After(tx.Now()) {
			return apperr.Invalid("expiresAt", "the expiry must lie in the future")
		}
		p, err := lockPool(tx, a.ID)
		if err != nil {
			return err
		}
		before := poolSummary(p)
		p.Quota = p.Quota.Add(amount)
		if err := tx.DB.Exec(`UPDATE voucher_pools SET expires_at = ?, expired_at = NULL WHERE partner_id = ?`, expiresAt, a.ID).Error; err != nil {
			return fmt.Errorf("grant voucher quota: %w", err)
		}
		if err := savePool(tx, p, &expiresAt); err != nil {
			return err
		}
		if err := ledger(tx, p, "GRANT", amount, nil, nil, nil, "granted by the platform, expires "+expiresAt.UTC().Format(time.RFC3339)); err != nil {
			return err
		}
		after := poolSummary(p)
		after["expiresAt"] = expiresAt.UTC()
		return tx.Audit("voucher.quota_granted", a.ID, before, after)
	})
	if err != nil {
		return nil, err
	}
	return s.Pool(ctx, partnerID)
}

// Allocate moves amount of a distributor's unused voucher quota to one of
// its second-level resellers. The distributor (ADMIN or FINANCE) or the
// platform may; more than the distributor's remaining quota, or from an
// expired quota, is PRECONDITION_FAILED.
func (s *Service) Allocate(ctx context.Context, resellerID int64, amount decimal.Decimal) (*Pool, error) {
	return s.move(ctx, resellerID, amount, true)
}

// Reclaim takes back up to the unused part (quota − issued) of a
// second-level reseller's voucher quota into its distributor's pool.
func (s *Service) Reclaim(ctx context.Context, resellerID int64, amount decimal.Decimal) (*Pool, error) {
	return s.move(ctx, resellerID, amount, false)
}

func (s *Service) move(ctx context.Context, resellerID int64, amount decimal.Decimal, allocate bool) (*Pool, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		r, dist, err := s.resellerOf(tx, sc, resellerID)
		if err != nil {
			return err
		}
		if err := positive("amount", amount); err != nil {
			return err
		}
		dp, err := lockPool(tx, dist.ID)
		if err != nil {
			return err
		}
		rp, err := lockPool(tx, r.ID)
		if err != nil {
			return err
		}
		before := map[string]any{"distributor": poolSummary(dp), "reseller": poolSummary(rp)}
		action, dk, rk := "voucher.quota_allocated", "ALLOCATE", "ALLOCATED"
		if allocate {
			if err := usable(tx.Now(), dp.ExpiresAt); err != nil {
				return err
			}
			if amount.GreaterThan(dp.remaining()) {
				return apperr.Preconditionf("the distributor's remaining voucher quota is %s", models.FormatDecimal(dp.remaining()))
			}
			dp.Allocated = dp.Allocated.Add(amount)
			rp.Quota = rp.Quota.Add(amount)
		} else {
			action, dk, rk = "voucher.quota_reclaimed", "RECLAIM", "RECLAIMED"
			if amount.GreaterThan(rp.remaining()) {
				return apperr.Preconditionf("the reseller's unused voucher quota is %s: issued vouchers cannot be reclaimed", models.FormatDecimal(rp.remaining()))
			}
			dp.Allocated = dp.Allocated.Sub(amount)
			rp.Quota = rp.Quota.Sub(amount)
		}
		if err := savePool(tx, dp, dp.ExpiresAt); err != nil {
			return err
		}
		if err := savePool(tx, rp, dp.ExpiresAt); err != nil {
			return err
		}
		if err := ledger(tx, dp, dk, amount, &r.ID, nil, nil, ""); err != nil {
			return err
		}
		if err := ledger(tx, rp, rk, amount, &dist.ID, nil, nil, ""); err != nil {
			return err
		}
		return tx.Audit(action, r.ID, before, map[string]any{"distributor": poolSummary(dp), "reseller": poolSummary(rp),
			"amount": models.FormatDecimal(amount)})
	})
	if err != nil {
		return nil, err
	}
	return s.Pool(ctx, resellerID)
}

// resellerOf loads a second-level reseller and its distributor for a change
// of the reseller's pool by its distributor (ADMIN or FINANCE) or the
// platform.
func (s *Service) resellerOf(tx *store.Tx, sc accounts.Scope, resellerID int64) (r, dist *models.Account, err error) {
	r, err = partnerInScope(tx, sc, resellerID, "resellerId")
	if err != nil {
		return nil, nil, err
	}
	if err := sc.Require(accounts.PermFinance); err != nil {
		return nil, nil, err
	}
	if r.Kind != models.KindReseller || r.Depth != 2 || r.ParentID == nil {
		return nil, nil, apperr.Invalid("resellerId", "voucher quota moves from a distributor to its second-level resellers")
	}
	if p := sc.Principal(); !p.IsPlatform() && p.AccountID != *r.ParentID {
		return nil, nil, apperr.Forbiddenf("only the reseller's distributor (or the platform) manages its voucher quota")
	}
	dist, err = accounts.GetInScope(tx.DB, sc, *r.ParentID)
	if err != nil {
		return nil, nil, err
	}
	return r, dist, nil
}

// SetApprovalThreshold sets the face value above which a second-level
// reseller's issue of vouchers waits for its distributor's approval (nil:
// never). The distributor (ADMIN or FINANCE) or the platform may.
func (s *Service) SetApprovalThreshold(ctx context.Context, resellerID int64, threshold *decimal.Decimal) (*Pool, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		r, _, err := s.resellerOf(tx, sc, resellerID)
		if err != nil {
			return err
		}
		if threshold != nil && (threshold.IsNegative() || threshold.Exponent() < -6) {
			return apperr.Invalid("threshold", "the threshold is an amount of 0 or more with at most 6 decimals")
		}
		p, err := lockPool(tx, r.ID)
		if err != nil {
			return err
		}
		if err := tx.DB.Exec(`UPDATE voucher_pools SET approval_threshold = ?, updated_at = ? WHERE partner_id = ?`, threshold, tx.Now(), r.ID).Error; err != nil {
			return fmt.Errorf("set voucher approval threshold: %w", err)
		}
		return tx.Audit("voucher.approval_threshold_set", r.ID, map[string]any{"threshold": decimalOrNil(p.ApprovalThreshold)},
			map[string]any{"threshold": decimalOrNil(threshold)})
	})
	if err != nil {
		return nil, err
	}
	return s.Pool(ctx, resellerID)
}

func decimalOrNil(d *decimal.Decimal) any {
	if d == nil {
		return nil
	}
	return models.FormatDecimal(*d)
}

// Pool returns a partner's voucher pool (NOT_FOUND outside the caller's
// scope; a partner without one gets zeros).
func (s *Service) Pool(ctx context.Context, partnerID int64) (*Pool, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	a, err := accounts.GetInScope(db, sc, partnerID)
	if err != nil {
		return nil, err
	}
	if !a.Kind.IsPartner() {
		return nil, apperr.Invalid("partnerId", "voucher pools belong to partners, not to a %s account", a.Kind)
	}
	var row struct {
		Quota, Allocated, Issued decimal.Decimal
		ExpiresAt                *time.Time
		ApprovalThreshold        *decimal.Decimal
		ParentExpiresAt          *time.Time
		Redeemed                 decimal.Decimal
	}
	err = db.Raw(`SELECT coalesce(p.quota, 0) AS quota, coalesce(p.allocated, 0) AS allocated, coalesce(p.issued, 0) AS issued,
			p.expires_at, p.approval_threshold, pp.expires_at AS parent_expires_at,
			(SELECT coalesce(sum(v.face_value - v.remaining - v.returned), 0) FROM vouchers v WHERE v.issuer_id = a.id) AS redeemed
		FROM accounts a LEFT JOIN voucher_pools p ON p.partner_id = a.id LEFT JOIN voucher_pools pp ON pp.partner_id = a.parent_id
		WHERE a.id = ?`, a.ID).Scan(&row).Error
	if err != nil {
		return nil, fmt.Errorf("load voucher pool: %w", err)
	}
	out := &Pool{PartnerID: a.ID, Quota: row.Quota, AllocatedDown: row.Allocated, Issued: row.Issued, Redeemed: row.Redeemed,
		ApprovalThreshold: row.ApprovalThreshold, ExpiresAt: row.ExpiresAt}
	if a.Depth > 1 {
		out.ExpiresAt = row.ParentExpiresAt
	}
	out.Remaining = row.Quota.Sub(row.Allocated).Sub(row.Issued)
	if out.ExpiresAt != nil && !s.st.Now().Before(*out.ExpiresAt) {
		out.Expired, out.Remaining = true, decimal.Zero
	}
	return out, nil
}

// Ledger returns a page of a partner's pool ledger, newest first.
func (s *Service) Ledger(ctx context.Context, partnerID int64, first int, afterID int64) (*store.Page[*LedgerEntry], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, partnerID); err != nil {
		return nil, err
	}
	return store.PageOf[*LedgerEntry](db, "voucher_pool_ledger b", "b.partner_id = ?", []any{partnerID}, "-b.id", "b.id DESC", first, MaxPage, afterID)
}
