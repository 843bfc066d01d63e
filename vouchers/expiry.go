package vouchers

import (
	"context"
	"fmt"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// expiryBatch is how many vouchers one transaction of Tick handles.
const expiryBatch = 500

// TickResult counts what one Tick did.
type TickResult struct {
	Expired, Reminded, PoolsExpired int
}

// Tick carries out what time brings (the scheduler runs it every minute;
// running it twice, or concurrently, does each thing once): vouchers past
// their expiry become EXPIRED, give their unused amount back to the
// issuer's pool and their customer is told; customers are reminded once of
// a live voucher expiring within ReminderBefore; pools whose quota expired
// are marked and their partners (and the partners' resellers holding quota)
// told.
func (s *Service) Tick(ctx context.Context) (TickResult, error) {
	var res TickResult
	for {
		n, err := s.expireSome(ctx)
		res.Expired += n
		if err != nil {
			return res, err
		}
		if n < expiryBatch {
			break
		}
	}
	for {
		n, err := s.remindSome(ctx)
		res.Reminded += n
		if err != nil {
			return res, err
		}
		if n < expiryBatch {
			break
		}
	}
	n, err := s.expirePools(ctx)
	res.PoolsExpired = n
	if res != (TickResult{}) {
		s.opts.Log.InfoContext(ctx, "vouchers tick", "expired", res.Expired, "reminded", res.Reminded, "pools_expired", res.PoolsExpired)
	}
	return res, err
}

// named is a voucher with its template's name, for the customer's message.
type named struct {
	Voucher
	Name string
}

// expireSome expires up to expiryBatch due vouchers of one issuer in one
// transaction (so it locks one pool), skipping those another run holds.
func (s *Service) expireSome(ctx context.Context) (int, error) {
	n := 0
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var due []*named
		if err := tx.DB.Raw(`SELECT v.*, t.name FROM vouchers v JOIN voucher_templates t ON t.id = v.template_id
			WHERE v.issuer_id = (SELECT issuer_id FROM vouchers WHERE status IN ('ISSUED','PARTIALLY_USED') AND expires_at <= ?
				ORDER BY expires_at LIMIT 1 FOR UPDATE SKIP LOCKED)
			AND v.status IN ('ISSUED','PARTIALLY_USED') AND v.expires_at <= ?
			ORDER BY v.id LIMIT ? FOR UPDATE OF v SKIP LOCKED`, tx.Now(), tx.Now(), expiryBatch).Scan(&due).Error; err != nil {
			return fmt.Errorf("find expired vouchers: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		list := make([]*Voucher, len(due))
		unused := make([]decimal.Decimal, len(due))
		for i, d := range due {
			list[i], unused[i] = &d.Voucher, d.Remaining
		}
		if err := closeVouchers(tx, list, StatusExpired, "expired"); err != nil {
			return err
		}
		evs := make([]store.Event, len(due))
		for i, d := range due {
			evs[i] = notify.VoucherExpired{VoucherID: d.ID, CustomerID: d.CustomerID, IssuerID: d.IssuerID, Name: d.Name,
				Unused: models.FormatDecimal(unused[i]), ExpiredAt: d.ExpiresAt.UTC().Format(time.RFC3339)}
		}
		n = len(due)
		return tx.Emit(evs...)
	})
	return n, err
}

// remindSome reminds the customers of up to expiryBatch live vouchers that
// expire within ReminderBefore and were not reminded yet.
func (s *Service) remindSome(ctx context.Context) (int, error) {
	n := 0
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		now := tx.Now()
		var due []*named
		if err := tx.DB.Raw(`SELECT v.*, t.name FROM vouchers v JOIN voucher_templates t ON t.id = v.template_id
			WHERE v.status IN ('ISSUED','PARTIALLY_USED') AND v.expires_at > ? AND v.expires_at <= ? AND v.reminded_at IS NULL
			ORDER BY v.expires_at, v.id LIMIT ? FOR UPDATE OF v SKIP LOCKED`, now, now.Add(s.opts.ReminderBefore), expiryBatch).Scan(&due).Error; err != nil {
			return fmt.Errorf("find expiring vouchers: %w", err)
		}
		if len(due) == 0 {
			return nil
		}
		ids := make([]int64, len(due))
		evs := make([]store.Event, len(due))
		for i, d := range due {
			ids[i] = d.ID
			evs[i] = notify.VoucherExpiring{VoucherID: d.ID, CustomerID: d.CustomerID, IssuerID: d.IssuerID, Name: d.Name,
				Remaining: models.FormatDecimal(d.Remaining), ExpiresAt: d.ExpiresAt.UTC().Format(time.RFC3339),
				DaysLeft: int(d.ExpiresAt.Sub(now) / (24 * time.Hour))}
		}
		if err := tx.DB.Exec(`UPDATE vouchers SET reminded_at = ? WHERE id = ANY(?::bigint[])`, now, store.Int64Array(ids)).Error; err != nil {
			return fmt.Errorf("mark vouchers reminded: %w", err)
		}
		n = len(due)
		return tx.Emit(evs...)
	})
	return n, err
}

// expirePools marks the tier-1 pools whose quota expired and tells their
// partners, and the second-level resellers holding quota under them.
func (s *Service) expirePools(ctx context.Context) (int, error) {
	n := 0
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		now := tx.Now()
		var due []poolRow
		if err := tx.DB.Raw(`SELECT * FROM voucher_pools WHERE expired_at IS NULL AND expires_at <= ?
			ORDER BY partner_id FOR UPDATE SKIP LOCKED`, now).Scan(&due).Error; err != nil {
			return fmt.Errorf("find expired voucher pools: %w", err)
		}
		var evs []store.Event
		for _, p := range due {
			if err := tx.DB.Exec(`UPDATE voucher_pools SET expired_at = ?, updated_at = ? WHERE partner_id = ?`, now, now, p.PartnerID).Error; err != nil {
				return fmt.Errorf("expire voucher pool: %w", err)
			}
			at := p.ExpiresAt.UTC().Format(time.RFC3339)
			evs = append(evs, notify.VoucherQuotaExpired{PartnerID: p.PartnerID, ExpiredAt: at, Unused: models.FormatDecimal(p.remaining())})
			var resellers []poolRow
			if err := tx.DB.Raw(`SELECT r.* FROM voucher_pools r JOIN accounts a ON a.id = r.partner_id
				WHERE a.parent_id = ? AND r.quota > 0 ORDER BY r.partner_id`, p.PartnerID).Scan(&resellers).Error; err != nil {
				return fmt.Errorf("find resellers' voucher pools: %w", err)
			}
			for _, r := range resellers {
				evs = append(evs, notify.VoucherQuotaExpired{PartnerID: r.PartnerID, ExpiredAt: at, Unused: models.FormatDecimal(r.remaining())})
			}
			if err := tx.Audit("voucher.quota_expired", p.PartnerID, nil, map[string]any{"expiresAt": at,
				"unused": models.FormatDecimal(p.remaining()), "resellers": len(resellers)}); err != nil {
				return err
			}
		}
		n = len(due)
		return tx.Emit(evs...)
	})
	return n, err
}
