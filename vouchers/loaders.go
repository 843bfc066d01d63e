package vouchers

import (
	"context"
	"fmt"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/store"
)

// Batched reads for the API's loaders: one query for many keys, so a page
// of vouchers, issues or ledger entries does not read its parts one by one.

// VouchersByID loads the vouchers of idList the caller sees, as Voucher
// does (visibleSQL; the others are absent).
func (s *Service) VouchersByID(ctx context.Context, idList []int64) (map[int64]*Voucher, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := visibleSQL(sc)
	var list []*Voucher
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT b.* FROM `+fromVouchers+` WHERE b.id = ANY(?::bigint[]) AND `+q,
		append([]any{store.Int64Array(idList)}, args...)...).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load vouchers: %w", err)
	}
	out := make(map[int64]*Voucher, len(list))
	for _, v := range list {
		out[v.ID] = v
	}
	return out, nil
}

// IssuancesByID loads issues by id through the caller's scope, as Issuance
// does (an issue whose partner the caller does not see is absent).
func (s *Service) IssuancesByID(ctx context.Context, idList []int64) (map[int64]*Issuance, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	var list []*Issuance
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT b.* FROM voucher_issuances b JOIN accounts a ON a.id = b.partner_id WHERE b.id = ANY(?::bigint[]) AND `+q,
		append([]any{store.Int64Array(idList)}, args...)...).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load voucher issuances: %w", err)
	}
	out := make(map[int64]*Issuance, len(list))
	for _, is := range list {
		out[is.ID] = is
	}
	return out, nil
}

// RedemptionPages returns for each voucher of voucherIDs the page of its
// redemptions that Redemptions gives for it (newest first, up to first
// after the redemption afterID of that voucher — a cursor of another
// voucher gives an empty page), with their records' external IDs, in two
// queries for all of them. Unscoped: callers reach the vouchers through
// Voucher or Vouchers, which apply the scope.
func (s *Service) RedemptionPages(ctx context.Context, voucherIDs []int64, first int, afterID int64) (map[int64]*store.Page[*Redemption], error) {
	if first < 0 || first > MaxPage {
		return nil, apperr.Invalid("first", "first must be between 0 and %d", MaxPage)
	}
	db := s.st.DB.WithContext(ctx)
	var rows []*Redemption
	// The record is looked up in its month's partition only (the redemption
	// carries the month).
	err := db.Raw(`SELECT x.* FROM unnest(?::bigint[]) AS v(id) CROSS JOIN LATERAL (
			SELECT r.*, e.external_id FROM voucher_redemptions r JOIN expenditures e ON e.id = r.expenditure_id AND e.month = r.month
			WHERE r.voucher_id = v.id
			AND (?::bigint = 0 OR r.id < (SELECT a.id FROM voucher_redemptions a WHERE a.id = ?::bigint AND a.voucher_id = v.id))
			ORDER BY r.id DESC LIMIT ?) x`,
		store.Int64Array(voucherIDs), afterID, afterID, first+1).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("list voucher redemptions: %w", err)
	}
	var counts []struct {
		VoucherID int64
		N         int
	}
	if err := db.Raw(`SELECT voucher_id, count(*) AS n FROM voucher_redemptions WHERE voucher_id = ANY(?::bigint[]) GROUP BY voucher_id`,
		store.Int64Array(voucherIDs)).Scan(&counts).Error; err != nil {
		return nil, fmt.Errorf("count voucher redemptions: %w", err)
	}
	out := make(map[int64]*store.Page[*Redemption], len(voucherIDs))
	for _, id := range voucherIDs {
		out[id] = &store.Page[*Redemption]{Items: []*Redemption{}}
	}
	for _, r := range rows {
		p := out[r.VoucherID]
		if len(p.Items) == first {
			p.More = true
			continue
		}
		p.Items = append(p.Items, r)
	}
	for _, c := range counts {
		out[c.VoucherID].Total = c.N
	}
	return out, nil
}
