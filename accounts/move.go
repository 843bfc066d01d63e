package accounts

import (
	"fmt"

	"partnerd/models"
	"partnerd/store"
)

// Lock locks account id FOR UPDATE in tx without a scope check — for the
// system's own work (background enforcement, an invitation or unbinding
// whose parties were checked before) — and returns nil when there is none.
func Lock(tx *store.Tx, id int64) (*models.Account, error) {
	var a models.Account
	if err := tx.DB.Raw(`SELECT * FROM accounts WHERE id = ? FOR UPDATE`, id).Scan(&a).Error; err != nil {
		return nil, fmt.Errorf("lock account %d: %w", id, err)
	}
	if a.ID == 0 {
		return nil, nil
	}
	return &a, nil
}

// Move puts account a (locked by the caller) under parent as kind, at the
// store's now: its path and depth (and its subtree's) follow the new parent,
// and its parent history is closed and reopened, so usage before now stays
// with the former owner (DOMAIN.md §1, §6). The database checks that kind
// may sit under parent's kind. Status, credit and audit are the caller's.
func Move(tx *store.Tx, a *models.Account, parent *models.Account, kind models.AccountKind) error {
	now := tx.Now()
	oldPath, newPath := a.Path, fmt.Sprintf("%s%d/", parent.Path, a.ID)
	if err := tx.DB.Exec(`UPDATE accounts SET kind = ?, parent_id = ?, updated_at = ? WHERE id = ?`, kind, parent.ID, now, a.ID).Error; err != nil {
		return fmt.Errorf("move account %d under %d: %w", a.ID, parent.ID, err)
	}
	if err := tx.DB.Exec(`UPDATE accounts SET path = ? || substr(path, ?), depth = depth + ? WHERE path LIKE ?`,
		newPath, len(oldPath)+1, parent.Depth+1-a.Depth, SubtreeLike(oldPath)).Error; err != nil {
		return fmt.Errorf("move the subtree of %d: %w", a.ID, err)
	}
	if err := tx.DB.Exec(`UPDATE account_parent_history SET valid_to = ? WHERE account_id = ? AND valid_to IS NULL`, now, a.ID).Error; err != nil {
		return fmt.Errorf("close parent history of %d: %w", a.ID, err)
	}
	if err := tx.DB.Create(&models.ParentHistory{AccountID: a.ID, ParentID: parent.ID, ValidFrom: now}).Error; err != nil {
		return fmt.Errorf("parent history of %d: %w", a.ID, err)
	}
	a.Kind, a.ParentID, a.Path, a.Depth, a.UpdatedAt = kind, &parent.ID, newPath, parent.Depth+1, now
	return nil
}
