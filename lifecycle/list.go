package lifecycle

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
)

// Invitations lists, newest first (keyset on id), the invitations sent by
// the caller's partner account, or addressed to the caller's own account
// (personal, or the customer it became); the platform sees all. status
// filters (EXPIRED: pending past expiry). total counts the filtered list.
func (s *Service) Invitations(ctx context.Context, status string, first int, beforeID int64) (page []*Invitation, more bool, total int64, err error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, false, 0, err
	}
	if err := accounts.ValidatePage(first); err != nil {
		return nil, false, 0, err
	}
	p := sc.Principal()
	db := s.st.DB.WithContext(ctx).Table("invitations")
	switch {
	case p.IsPlatform():
	case p.AccountKind.IsPartner():
		db = db.Where("partner_id = ?", p.AccountID)
	default:
		db = db.Where("account_id = ?", p.AccountID)
	}
	now := s.st.Now()
	switch status {
	case "":
	case InvitationExpired:
		db = db.Where("status = 'PENDING' AND expires_at <= ?", now)
	case InvitationPending:
		db = db.Where("status = 'PENDING' AND expires_at > ?", now)
	case InvitationAccepted, InvitationDeclined, InvitationRevoked:
		db = db.Where("status = ?", status)
	default:
		return nil, false, 0, apperr.Invalid("status", "unknown invitation status %q", status)
	}
	if err := db.Session(&gorm.Session{}).Count(&total).Error; err != nil {
		return nil, false, 0, fmt.Errorf("count invitations: %w", err)
	}
	q := db.Select("id, partner_id, account_id, email, status, created_at, expires_at, decided_at").Order("id DESC").Limit(first + 1)
	if beforeID > 0 {
		q = q.Where("id < ?", beforeID)
	}
	if err := q.Find(&page).Error; err != nil {
		return nil, false, 0, fmt.Errorf("list invitations: %w", err)
	}
	for _, inv := range page {
		inv.Status = effective(inv, now)
	}
	if len(page) > first {
		return page[:first], true, total, nil
	}
	return page, false, total, nil
}

// Invitation returns one invitation the caller may see (as Invitations
// decides), else NOT_FOUND.
func (s *Service) Invitation(ctx context.Context, id int64) (*Invitation, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var inv Invitation
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT id, partner_id, account_id, email, status, created_at, expires_at, decided_at
		FROM invitations WHERE id = ?`, id).Scan(&inv).Error; err != nil {
		return nil, fmt.Errorf("load invitation %d: %w", id, err)
	}
	p := sc.Principal()
	if inv.ID == 0 || !(p.IsPlatform() || p.AccountID == inv.PartnerID || p.AccountID == inv.AccountID) {
		return nil, accounts.NotFound("invitation")
	}
	inv.Status = effective(&inv, s.st.Now())
	return &inv, nil
}

// Partner returns the inviting partner of inv for a caller who may see the
// invitation: the invited account's users see who invited them (the
// partner is otherwise outside their scope).
func (s *Service) Partner(ctx context.Context, inv *Invitation) (*models.Account, error) {
	if _, err := s.Invitation(ctx, inv.ID); err != nil {
		return nil, err
	}
	var a models.Account
	if err := s.st.DB.WithContext(ctx).Take(&a, inv.PartnerID).Error; err != nil {
		return nil, fmt.Errorf("load partner %d: %w", inv.PartnerID, err)
	}
	return &a, nil
}
