package migration

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
)

// Create makes a DRAFT batch moving customers of source under the caller's
// own partner account (the receiver; ADMIN or OPERATOR). rows are the valid
// rows of an upload and rejected its invalid ones; each row is judged again
// by the preconditions (Check), and a row that fails joins rejectedRows with
// its reason. A source that is not a partner: NOT_FOUND.
func (s *Service) Create(ctx context.Context, sourceID int64, rows []Row, rejected []RowError) (*Migration, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermOperate); err != nil {
		return nil, err
	}
	p := sc.Principal()
	if p.System || !p.AccountKind.IsPartner() {
		return nil, apperr.Forbiddenf("a migration is created by the receiving partner's users")
	}
	if len(rows)+len(rejected) == 0 {
		return nil, apperr.Invalid("rows", "give the customers to migrate: rows, or the filled-in template as file")
	}
	var out *Migration
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		receiver, err := accounts.Lock(tx, p.AccountID)
		if err != nil {
			return err
		}
		if receiver == nil {
			return accounts.NotFound("account")
		}
		var source models.Account
		if err := tx.DB.Raw(`SELECT * FROM accounts WHERE id = ?`, sourceID).Scan(&source).Error; err != nil {
			return fmt.Errorf("load source %d: %w", sourceID, err)
		}
		if source.ID == 0 || !source.Kind.IsPartner() {
			return apperr.NotFoundf("source partner not found")
		}
		if source.ID == receiver.ID {
			return apperr.Invalid("sourceId", "the source is your own account: a migration moves customers from another partner to yours")
		}
		m := &Migration{ReceiverID: receiver.ID, SourceID: source.ID, Status: StatusDraft, CreatedAt: tx.Now(), UpdatedAt: tx.Now()}
		if secondLevel(receiver) {
			m.DistributorID = receiver.ParentID
		}
		var by any
		if p.UserID != 0 {
			by = p.UserID
		}
		if err := tx.DB.Raw(`INSERT INTO migrations (receiver_id, source_id, distributor_id, created_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?) RETURNING id`, m.ReceiverID, m.SourceID, m.DistributorID, by, m.CreatedAt, m.UpdatedAt).
			Scan(&m.ID).Error; err != nil {
			return fmt.Errorf("create migration: %w", err)
		}
		added, err := s.addRows(tx, m, rows, rejected)
		if err != nil {
			return err
		}
		if err := s.history(tx, m.ID, nil, "CREATED", m.Status, fmt.Sprintf("%d customers imported, %d rows rejected", added, len(m.RejectedRows))); err != nil {
			return err
		}
		out = m
		return tx.Audit("migration.create", receiver.ID, nil, map[string]any{"migrationId": m.ID, "sourceId": m.SourceID,
			"customers": added, "rejectedRows": len(m.RejectedRows)})
	})
	return out, err
}

// AddRows adds rows to a DRAFT batch of the caller's (the receiver's), judged
// as at creation; rows naming a customer already in the batch are rejected.
func (s *Service) AddRows(ctx context.Context, id int64, rows []Row, rejected []RowError) (*Migration, error) {
	if len(rows)+len(rejected) == 0 {
		return nil, apperr.Invalid("rows", "give the customers to add: rows, or the filled-in template as file")
	}
	return s.editDraft(ctx, id, func(tx *store.Tx, m *Migration) error {
		added, err := s.addRows(tx, m, rows, rejected)
		if err != nil {
			return err
		}
		return s.history(tx, m.ID, nil, "ROWS_ADDED", m.Status, fmt.Sprintf("%d customers imported, %d rows rejected", added, len(rejected)))
	})
}

// RemoveItem takes a customer out of a DRAFT batch of the caller's.
func (s *Service) RemoveItem(ctx context.Context, id, accountID int64) (*Migration, error) {
	return s.editDraft(ctx, id, func(tx *store.Tx, m *Migration) error {
		res := tx.DB.Exec(`DELETE FROM migration_items WHERE migration_id = ? AND account_id = ?`, m.ID, accountID)
		if res.Error != nil {
			return fmt.Errorf("remove migration item: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return apperr.Invalid("accountId", "the customer is not in this batch")
		}
		return s.history(tx, m.ID, &accountID, "REMOVED", m.Status, "")
	})
}

// editDraft runs fn on a DRAFT batch the caller receives, locked.
func (s *Service) editDraft(ctx context.Context, id int64, fn func(tx *store.Tx, m *Migration) error) (*Migration, error) {
	var out *Migration
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		m, sc, err := s.lock(tx, id)
		if err != nil {
			return err
		}
		if err := s.requireReceiver(sc, m); err != nil {
			return err
		}
		if m.Status != StatusDraft {
			return apperr.Preconditionf("the batch is %s: only a draft can be edited", strings.ToLower(string(m.Status)))
		}
		if err := fn(tx, m); err != nil {
			return err
		}
		if err := tx.DB.Exec(`UPDATE migrations SET updated_at = ? WHERE id = ?`, tx.Now(), m.ID).Error; err != nil {
			return fmt.Errorf("update migration %d: %w", m.ID, err)
		}
		m.UpdatedAt = tx.Now()
		out = m
		return tx.Emit(Updated{MigrationID: m.ID})
	})
	return out, err
}

// addRows judges rows against the preconditions and inserts those that pass
// as PENDING items (in one statement, with their history); the others, with
// rejected, join m.RejectedRows, written here.
// The batch never holds more than MaxRows customers.
func (s *Service) addRows(tx *store.Tx, m *Migration, rows []Row, rejected []RowError) (int, error) {
	var have []int64
	if err := tx.DB.Raw(`SELECT account_id FROM migration_items WHERE migration_id = ?`, m.ID).Scan(&have).Error; err != nil {
		return 0, fmt.Errorf("items of migration %d: %w", m.ID, err)
	}
	if len(have)+len(rows) > MaxRows {
		return 0, apperr.Invalid("rows", "a batch holds at most %d customers; this one has %d and %d more were given: start another batch",
			MaxRows, len(have), len(rows))
	}
	in := make(map[int64]bool, len(have))
	for _, id := range have {
		in[id] = true
	}
	keys := make([]int64, 0, len(rows))
	for _, r := range rows {
		keys = append(keys, r.AccountID)
	}
	failed, err := Check(tx, s.opts.Location, m.SourceID, m.ID, keys)
	if err != nil {
		return 0, err
	}
	var keep []Row
	for _, r := range rows {
		why := failed[r.AccountID]
		if in[r.AccountID] {
			why = "the customer is already in this batch"
		}
		if why != "" {
			rejected = append(rejected, RowError{Line: r.Line, AccountID: ids.Encode("Account", r.AccountID), Reason: why})
			continue
		}
		keep = append(keep, r)
	}
	slices.SortStableFunc(rejected, func(a, b RowError) int { return a.Line - b.Line })
	m.RejectedRows = append(m.RejectedRows, rejected...)
	if len(keep) > 0 {
		accts, lines, credits := make([]string, len(keep)), make([]string, len(keep)), make([]string, len(keep))
		for i, r := range keep {
			accts[i], lines[i], credits[i] = strconv.FormatInt(r.AccountID, 10), strconv.Itoa(r.Line), r.Credit.String()
		}
		actor := store.ActorFrom(tx.Context())
		if err := tx.DB.Exec(`WITH rows AS (
				SELECT unnest(?::bigint[]) AS account_id, unnest(?::int[]) AS row_number, unnest(?::numeric[]) AS credit),
			ins AS (INSERT INTO migration_items (migration_id, account_id, row_number, credit)
				SELECT ?, account_id, row_number, credit FROM rows RETURNING account_id, row_number)
			INSERT INTO migration_events (migration_id, account_id, at, actor, actor_user_id, action, status, note)
			SELECT ?, account_id, ?, ?, ?, 'ADDED', ?, 'row ' || row_number FROM ins`,
			"{"+strings.Join(accts, ",")+"}", "{"+strings.Join(lines, ",")+"}", "{"+strings.Join(credits, ",")+"}",
			m.ID, m.ID, tx.Now(), actor.Label, nullable(actor.UserID), m.Status).Error; err != nil {
			return 0, fmt.Errorf("add migration items: %w", err)
		}
	}
	if err := tx.DB.Exec(`UPDATE migrations SET rejected_rows = ? WHERE id = ?`, m.RejectedRows, m.ID).Error; err != nil {
		return 0, fmt.Errorf("rejected rows of migration %d: %w", m.ID, err)
	}
	return len(keep), nil
}

// history appends a line to the history of batch id (account nil) or of one
// of its customers; status is the batch's status after the action.
func (s *Service) history(tx *store.Tx, id int64, account *int64, action string, status Status, note string) error {
	actor := store.ActorFrom(tx.Context())
	var n any
	if note != "" {
		n = note
	}
	if err := tx.DB.Exec(`INSERT INTO migration_events (migration_id, account_id, at, actor, actor_user_id, action, status, note)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, id, account, tx.Now(), actor.Label, nullable(actor.UserID), action, status, n).Error; err != nil {
		return fmt.Errorf("migration history: %w", err)
	}
	return nil
}

func globalID(id int64) string { return ids.Encode(TypeMigration, id) }

func nullable(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
