package groups

import (
	"context"
	"fmt"
	"time"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/store"
)

// Get returns a group or unit whose partner is in the caller's scope (else
// NOT_FOUND), with its members.
func (s *Service) Get(ctx context.Context, kind Kind, id int64) (*Set, error) {
	sets, err := s.load(ctx, kind, `s.id = ?`, []any{id}, 1)
	if err != nil {
		return nil, err
	}
	if len(sets) == 0 {
		return nil, accounts.NotFound(kind.tables().what)
	}
	return sets[0], nil
}

// Page lists the groups or units of a partner in the caller's scope, oldest
// first (keyset on id), and how many there are.
func (s *Service) Page(ctx context.Context, kind Kind, partnerID int64, first int, afterID int64) ([]*Set, bool, int64, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, false, 0, err
	}
	if err := accounts.ValidatePage(first); err != nil {
		return nil, false, 0, err
	}
	if _, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, partnerID); err != nil {
		return nil, false, 0, err
	}
	var total int64
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT count(*) FROM `+kind.tables().sets+` WHERE partner_id = ?`, partnerID).Scan(&total).Error; err != nil {
		return nil, false, 0, fmt.Errorf("count %ss: %w", kind.tables().what, err)
	}
	sets, err := s.load(ctx, kind, `s.partner_id = ? AND s.id > ?`, []any{partnerID, afterID}, first+1)
	if err != nil {
		return nil, false, 0, err
	}
	if len(sets) > first {
		return sets[:first], true, total, nil
	}
	return sets, false, total, nil
}

// load reads sets matching where (in the caller's scope, by id) with their
// members: two queries.
func (s *Service) load(ctx context.Context, kind Kind, where string, args []any, limit int) ([]*Set, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	t := kind.tables()
	q, sargs := sc.SQL("p.path")
	admin := "0"
	if kind == KindGroup {
		admin = "s.administrator_id"
	}
	var rows []struct {
		ID              int64
		PartnerID       int64
		Name            string
		AdministratorID int64
		CreatedAt       time.Time
	}
	all := append(append(append([]any{}, args...), sargs...), limit)
	err = s.st.DB.WithContext(ctx).Raw(`SELECT s.id, s.partner_id, s.name, `+admin+` AS administrator_id, s.created_at
		FROM `+t.sets+` s JOIN accounts p ON p.id = s.partner_id WHERE `+where+` AND `+q+` ORDER BY s.id LIMIT ?`, all...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load %ss: %w", t.what, err)
	}
	out := make([]*Set, 0, len(rows))
	byID := map[int64]*Set{}
	ids := make([]int64, 0, len(rows))
	for _, r := range rows {
		set := &Set{ID: r.ID, Kind: kind, PartnerID: r.PartnerID, Name: r.Name, AdministratorID: r.AdministratorID, CreatedAt: r.CreatedAt, MemberIDs: []int64{}}
		out = append(out, set)
		byID[r.ID] = set
		ids = append(ids, r.ID)
	}
	if len(ids) == 0 {
		return out, nil
	}
	var members []struct{ SetID, AccountID int64 }
	err = s.st.DB.WithContext(ctx).Raw(`SELECT `+t.fk+` AS set_id, account_id FROM `+t.members+` WHERE `+t.fk+` = ANY(?::bigint[]) ORDER BY account_id`,
		store.Int64Array(ids)).Scan(&members).Error
	if err != nil {
		return nil, fmt.Errorf("load members: %w", err)
	}
	for _, m := range members {
		byID[m.SetID].MemberIDs = append(byID[m.SetID].MemberIDs, m.AccountID)
	}
	return out, nil
}

// Memberships returns where each of the given accounts in the caller's
// scope belongs (accounts in none get the zero Membership with role NONE):
// one query, for the loaders of Account.groupRole and friends.
func (s *Service) Memberships(ctx context.Context, ids []int64) (map[int64]Membership, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	var rows []struct {
		ID      int64
		GroupID *int64
		Role    *string
		UnitID  *int64
	}
	err = s.st.DB.WithContext(ctx).Raw(`SELECT a.id, g.group_id, g.role, u.unit_id FROM accounts a
		LEFT JOIN customer_group_members g ON g.account_id = a.id
		LEFT JOIN sharing_unit_members u ON u.account_id = a.id
		WHERE a.id = ANY(?::bigint[]) AND `+q, append([]any{store.Int64Array(ids)}, args...)...).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("load memberships: %w", err)
	}
	out := make(map[int64]Membership, len(rows))
	for _, r := range rows {
		m := Membership{Role: models.GroupNone}
		if r.GroupID != nil {
			m.GroupID, m.Role = *r.GroupID, models.GroupRole(*r.Role)
		}
		if r.UnitID != nil {
			m.UnitID = *r.UnitID
		}
		out[r.ID] = m
	}
	return out, nil
}
