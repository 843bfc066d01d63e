package accounts

import (
	"context"
	"fmt"

	"partnerd/models"
)

// AuditPage lists the audit entries about an account in the caller's scope,
// newest first (keyset on id; beforeID 0 starts at the newest). With
// descendants, entries about every account of its subtree are included.
// Reading the audit log needs ADMIN (DOMAIN.md §2: entries are visible to the
// scope above the account acted on, which includes the account's own admins).
func (s *Service) AuditPage(ctx context.Context, accountID int64, descendants bool, first int, beforeID int64) ([]*models.AuditEntry, bool, error) {
	sc, err := ScopeOf(ctx)
	if err != nil {
		return nil, false, err
	}
	if err := ValidatePage(first); err != nil {
		return nil, false, err
	}
	acct, err := s.Get(ctx, accountID)
	if err != nil {
		return nil, false, err
	}
	if err := sc.Require(PermAudit); err != nil {
		return nil, false, err
	}
	if beforeID <= 0 {
		beforeID = 1<<63 - 1
	}
	var list []*models.AuditEntry
	if descendants {
		err = s.st.DB.WithContext(ctx).Raw(`SELECT l.* FROM audit_log l JOIN accounts a ON a.id = l.account_id
			WHERE a.path LIKE ? AND l.id < ? ORDER BY l.id DESC LIMIT ?`, likePrefix(acct.Path), beforeID, first+1).Scan(&list).Error
	} else {
		err = s.st.DB.WithContext(ctx).Where("account_id = ? AND id < ?", accountID, beforeID).Order("id DESC").Limit(first + 1).Find(&list).Error
	}
	if err != nil {
		return nil, false, fmt.Errorf("audit log: %w", err)
	}
	more := len(list) > first
	if more {
		list = list[:first]
	}
	return list, more, nil
}
