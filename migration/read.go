package migration

import (
	"context"
	"fmt"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// visible reports whether the caller may see m: the receiver's users, and
// once it is submitted the source's, the receiver's distributor's and the
// platform's. Nobody else learns the batch exists.
func visible(p *accounts.Principal, m *Migration) bool {
	if p.AccountID == m.ReceiverID || p.System {
		return true
	}
	if m.Status == StatusDraft {
		return false
	}
	return p.IsPlatform() || p.AccountID == m.SourceID || (m.DistributorID != nil && p.AccountID == *m.DistributorID)
}

// lock locks batch id for a change by the caller, else NOT_FOUND.
func (s *Service) lock(tx *store.Tx, id int64) (*Migration, accounts.Scope, error) {
	sc, err := accounts.ScopeOf(tx.Context())
	if err != nil {
		return nil, sc, err
	}
	var m Migration
	if err := tx.DB.Raw(`SELECT `+migrationColumns+` FROM migrations WHERE id = ? FOR UPDATE`, id).Scan(&m).Error; err != nil {
		return nil, sc, fmt.Errorf("lock migration %d: %w", id, err)
	}
	if m.ID == 0 || !visible(sc.Principal(), &m) {
		return nil, sc, accounts.NotFound("migration")
	}
	return &m, sc, nil
}

// Get returns batch id if the caller may see it, else NOT_FOUND.
func (s *Service) Get(ctx context.Context, id int64) (*Migration, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var m Migration
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT `+migrationColumns+` FROM migrations WHERE id = ?`, id).Scan(&m).Error; err != nil {
		return nil, fmt.Errorf("load migration %d: %w", id, err)
	}
	if m.ID == 0 || !visible(sc.Principal(), &m) {
		return nil, accounts.NotFound("migration")
	}
	return &m, nil
}

// List returns, newest first, up to first batches that concern the caller's
// account before beforeID (0: from the newest): those it receives, gives
// away or — as the receiver's distributor — oversees (both from submission
// on); for the platform, every submitted batch. role narrows the list to the
// batches the account receives, gives away, or must approve now; status to
// one status.
func (s *Service) List(ctx context.Context, status Status, role Role, first int, beforeID int64) ([]*Migration, bool, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, false, err
	}
	p := sc.Principal()
	me := p.AccountID
	var where string
	var args []any
	switch role {
	case RoleReceiver:
		where, args = "receiver_id = ?", []any{me}
	case RoleSource:
		where, args = "source_id = ? AND status <> 'DRAFT'", []any{me}
	case RoleApprover:
		switch {
		case p.Can(accounts.PermReview):
			where = "status = 'PENDING_INTERNAL_REVIEW'"
		default:
			where, args = `((status = 'PENDING_DISTRIBUTOR_APPROVAL' AND distributor_id = ?) OR (status = 'PENDING_SOURCE_APPROVAL' AND source_id = ?))`,
				[]any{me, me}
		}
	case "":
		if p.IsPlatform() {
			where = "status <> 'DRAFT'"
		} else {
			where = `id IN (SELECT id FROM migrations WHERE receiver_id = ?
				UNION ALL SELECT id FROM migrations WHERE source_id = ? AND status <> 'DRAFT'
				UNION ALL SELECT id FROM migrations WHERE distributor_id = ? AND status <> 'DRAFT')`
			args = []any{me, me, me}
		}
	default:
		return nil, false, apperr.Invalid("role", "unknown role %q", role)
	}
	if status != "" {
		where += " AND status = ?"
		args = append(args, status)
	}
	if beforeID > 0 {
		where += " AND id < ?"
		args = append(args, beforeID)
	}
	var list []*Migration
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT `+migrationColumns+` FROM migrations WHERE `+where+` ORDER BY id DESC LIMIT ?`,
		append(args, first+1)...).Scan(&list).Error; err != nil {
		return nil, false, fmt.Errorf("list migrations: %w", err)
	}
	more := len(list) > first
	if more {
		list = list[:first]
	}
	return list, more, nil
}

// Items returns up to first items of batch m (already shown to the caller)
// after afterID, in row order of their import, and how many it has.
func (s *Service) Items(ctx context.Context, m *Migration, first int, afterID int64) ([]*Item, bool, int64, error) {
	db := s.st.DB.WithContext(ctx)
	var list []*Item
	if err := db.Raw(`SELECT `+itemColumns+` FROM migration_items WHERE migration_id = ? AND id > ? ORDER BY id LIMIT ?`,
		m.ID, afterID, first+1).Scan(&list).Error; err != nil {
		return nil, false, 0, fmt.Errorf("items of migration %d: %w", m.ID, err)
	}
	var n int64
	if err := db.Raw(`SELECT count(*) FROM migration_items WHERE migration_id = ?`, m.ID).Scan(&n).Error; err != nil {
		return nil, false, 0, fmt.Errorf("count items of migration %d: %w", m.ID, err)
	}
	more := len(list) > first
	if more {
		list = list[:first]
	}
	return list, more, n, nil
}

// History returns the history of batch m (already shown to the caller), or
// of its customer account when account is not 0, oldest first.
func (s *Service) History(ctx context.Context, m *Migration, account int64) ([]*Event, error) {
	var list []*Event
	q := `SELECT id, migration_id, account_id, at, actor, actor_user_id, action, status, note FROM migration_events
		WHERE migration_id = ? AND account_id IS NULL ORDER BY id`
	args := []any{m.ID}
	if account != 0 {
		q = `SELECT id, migration_id, account_id, at, actor, actor_user_id, action, status, note FROM migration_events
			WHERE migration_id = ? AND account_id = ? ORDER BY id`
		args = append(args, account)
	}
	if err := s.st.DB.WithContext(ctx).Raw(q, args...).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("history of migration %d: %w", m.ID, err)
	}
	if m.StatementAt != nil {
		return list, nil
	}
	return s.redactActors(ctx, m, list)
}

// redactActors replaces, until the source has approved, the actor of every
// event done by a user outside the caller's scope (its label names the user
// and its email) with the party the user acts for, as Accounts redacts the
// parties themselves.
func (s *Service) redactActors(ctx context.Context, m *Migration, list []*Event) ([]*Event, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var users []int64
	for _, e := range list {
		if e.ActorUserID != nil {
			users = append(users, *e.ActorUserID)
		}
	}
	if len(users) == 0 || sc.All() {
		return list, nil
	}
	var rows []struct {
		UserID    int64
		AccountID int64
		Path      string
	}
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT u.id AS user_id, a.id AS account_id, a.path FROM users u JOIN accounts a ON a.id = u.account_id
		WHERE u.id = ANY(?::bigint[])`, store.Int64Array(users)).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("actors of migration %d: %w", m.ID, err)
	}
	hidden := map[int64]string{}
	for _, r := range rows {
		if r.AccountID == m.ReceiverID || sc.Contains(r.Path) {
			continue
		}
		switch {
		case r.AccountID == m.SourceID:
			hidden[r.UserID] = "the source partner"
		case m.DistributorID != nil && r.AccountID == *m.DistributorID:
			hidden[r.UserID] = "the receiver's distributor"
		default:
			hidden[r.UserID] = "another party"
		}
	}
	for i, e := range list {
		if e.ActorUserID == nil {
			continue
		}
		if label, ok := hidden[*e.ActorUserID]; ok {
			c := *e
			c.Actor, c.ActorUserID = label, nil
			list[i] = &c
		}
	}
	return list, nil
}

// Account returns account id of batch m's items or parties for a caller
// who sees m (see Accounts).
func (s *Service) Account(ctx context.Context, m *Migration, id int64) (*models.Account, error) {
	found, err := s.Accounts(ctx, m, []int64{id})
	if err != nil {
		return nil, err
	}
	if found[id] == nil {
		return nil, accounts.NotFound("account")
	}
	return found[id], nil
}

// Accounts returns the accounts ids of batch m's items or parties for a
// caller who sees m, in one query (the parties of a batch see its customers
// and each other).
//
// Until the source has approved, acknowledging the Sub-Customer Data Transfer
// Statement, a caller sees an account outside its scope (the source, its
// customers, the receiver's distributor) only redacted (models.Account.Redact:
// ID, kind, status, currency and creation time; its ID for a name).
// The receiver alone is shown whole to every party: it asked. Without this,
// any partner could read any other tenant's customers by naming them in a
// draft of its own.
func (s *Service) Accounts(ctx context.Context, m *Migration, ids []int64) (map[int64]*models.Account, error) {
	fresh, err := s.Get(ctx, m.ID)
	if err != nil {
		return nil, err
	}
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	var list []*models.Account
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT * FROM accounts WHERE id = ANY(?::bigint[])`, store.Int64Array(ids)).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("load accounts of migration %d: %w", m.ID, err)
	}
	consented := fresh.StatementAt != nil
	out := make(map[int64]*models.Account, len(list))
	for _, a := range list {
		if !consented && a.ID != fresh.ReceiverID && !sc.ContainsAccount(a) {
			a = a.Redact(accounts.GlobalID(a.ID))
		}
		out[a.ID] = a
	}
	return out, nil
}

// InMigration reports which of the given customers are held by a submitted
// batch not yet over: one query.
func (s *Service) InMigration(ctx context.Context, ids []int64) (map[int64]bool, error) {
	var held []int64
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT account_id FROM migration_items WHERE open AND account_id = ANY(?::bigint[])`,
		store.Int64Array(ids)).Scan(&held).Error; err != nil {
		return nil, fmt.Errorf("open migrations: %w", err)
	}
	out := make(map[int64]bool, len(held))
	for _, id := range held {
		out[id] = true
	}
	return out, nil
}

// Held reports, inside tx, whether customer id is held by a submitted batch
// not yet over (for the lifecycle's unbinding check).
func Held(tx *store.Tx, id int64) (bool, error) {
	var held bool
	if err := tx.DB.Raw(`SELECT EXISTS (SELECT 1 FROM migration_items WHERE open AND account_id = ?)`, id).Scan(&held).Error; err != nil {
		return false, fmt.Errorf("open migrations of %d: %w", id, err)
	}
	return held, nil
}

// Counts returns batch m's customers by status (m already shown to the
// caller).
func (s *Service) Counts(ctx context.Context, m *Migration) (Counts, error) {
	return countItems(s.st.DB.WithContext(ctx), m.ID)
}

// AcknowledgedBy names who acknowledged the data transfer statement of
// batch m (already shown to the caller): the user's email, or "system".
func (s *Service) AcknowledgedBy(ctx context.Context, m *Migration) (string, error) {
	if m.StatementBy == nil {
		return "system", nil
	}
	var email string
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT email FROM users WHERE id = ?`, *m.StatementBy).Scan(&email).Error; err != nil {
		return "", fmt.Errorf("acknowledging user: %w", err)
	}
	return email, nil
}
