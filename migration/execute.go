package migration

import (
	"context"
	"fmt"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
	"partnerd/vouchers"
)

// ExecuteResult is what one run of ExecuteBatch did.
type ExecuteResult struct {
	Migrated, Failed int
	// Finished is true when the batch ended in this run.
	Finished bool
}

// ExecuteBatch runs an EXECUTING batch to its end: customer by customer, each
// in its own transaction, so a run stopped at any point (a killed worker, a
// cancelled context) resumes where it stopped and never migrates a customer
// twice. Several runs at once share the work (SKIP LOCKED). Each customer is
// checked again (Check); one that fails is FAILED with its reason and the
// others go on. A migrated customer's allocation returns to the source, the
// batch's credit is allocated from the receiver, and it moves under the
// receiver effective now — usage before stays billed to the source — keeping
// its budget. When no customer is left the batch is COMPLETED, or
// PARTIALLY_COMPLETED if some failed. A batch not EXECUTING is left alone.
func (s *Service) ExecuteBatch(ctx context.Context, id int64) (ExecuteResult, error) {
	var res ExecuteResult
	ctx = accounts.SystemContext(ctx)
	var m Migration
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT `+migrationColumns+` FROM migrations WHERE id = ?`, id).Scan(&m).Error; err != nil {
		return res, fmt.Errorf("load migration %d: %w", id, err)
	}
	for m.Status == StatusExecuting {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var done, migrated bool
		err := s.st.InTx(ctx, func(tx *store.Tx) error {
			var err error
			done, migrated, err = s.executeNext(tx, &m)
			return err
		})
		if err != nil {
			return res, fmt.Errorf("execute migration %d: %w", id, err)
		}
		if done {
			break
		}
		if migrated {
			res.Migrated++
		} else {
			res.Failed++
		}
	}
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		res.Finished, err = s.finish(tx, id)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("finish migration %d: %w", id, err)
	}
	if res.Finished {
		s.opts.Log.Info("migration executed", "migration", id, "migrated", res.Migrated, "failed", res.Failed)
	}
	return res, nil
}

// executeNext migrates (or fails) the next pending customer of batch m
// nobody else is working on; done is true when there is none. An EXECUTING
// batch only ends once no item is pending, and its parties do not change,
// so m needs no reload.
func (s *Service) executeNext(tx *store.Tx, m *Migration) (done, migrated bool, err error) {
	var it Item
	if err := tx.DB.Raw(`SELECT `+itemColumns+` FROM migration_items WHERE migration_id = ? AND status = 'PENDING'
		ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, m.ID).Scan(&it).Error; err != nil {
		return false, false, fmt.Errorf("next item: %w", err)
	}
	if it.ID == 0 {
		return true, false, nil
	}
	why, err := s.migrate(tx, m, &it)
	if err != nil {
		return false, false, err
	}
	if why == "" {
		return false, true, nil
	}
	if err := tx.DB.Exec(`UPDATE migration_items SET status = 'FAILED', reason = ?, open = false WHERE id = ?`, why, it.ID).Error; err != nil {
		return false, false, fmt.Errorf("fail item %d: %w", it.ID, err)
	}
	if err := s.history(tx, m.ID, &it.AccountID, "FAILED", m.Status, why); err != nil {
		return false, false, err
	}
	return false, false, tx.Emit(Updated{MigrationID: m.ID})
}

// migrate moves one customer, or returns why it cannot.
func (s *Service) migrate(tx *store.Tx, m *Migration, it *Item) (string, error) {
	c, err := accounts.Lock(tx, it.AccountID)
	if err != nil {
		return "", err
	}
	receiver, err := accounts.Lock(tx, m.ReceiverID)
	if err != nil {
		return "", err
	}
	failed, err := Check(tx, s.opts.Location, m.SourceID, m.ID, []int64{it.AccountID})
	if err != nil {
		return "", err
	}
	if why := failed[it.AccountID]; why != "" {
		return why, nil
	}
	if !receiver.Kind.IsPartner() {
		return "the receiver is no longer a partner", nil
	}
	ref := "migration " + globalID(m.ID)
	before := map[string]any{"parentId": c.ParentID, "path": c.Path}
	err = credit.Transfer(tx, c.ID, m.SourceID, receiver.ID, it.Credit, ref, s.opts.Location, func() error {
		// The customer's vouchers stay with the partner that issued them.
		if err := vouchers.CancelForCustomer(tx, c.ID, ref); err != nil {
			return err
		}
		return accounts.Move(tx, c, receiver, models.KindCustomer)
	})
	if apperr.CodeOf(err) == apperr.PreconditionFailed {
		// Nothing changed yet: the receiver cannot fund this customer.
		return err.Error(), nil
	}
	if err != nil {
		return "", err
	}
	now := tx.Now()
	if err := tx.DB.Exec(`UPDATE migration_items SET status = 'MIGRATED', reason = '', open = false, effective_at = ? WHERE id = ?`,
		now, it.ID).Error; err != nil {
		return "", fmt.Errorf("complete item %d: %w", it.ID, err)
	}
	if err := s.history(tx, m.ID, &c.ID, "MIGRATED", m.Status, ""); err != nil {
		return "", err
	}
	if err := tx.Audit("migration.customer_migrated", c.ID, before, map[string]any{"parentId": receiver.ID, "path": c.Path,
		"migrationId": m.ID, "credit": models.FormatDecimal(it.Credit)}); err != nil {
		return "", err
	}
	return "", tx.Emit(notify.MigrationCustomerMigrated{MigrationID: m.ID, CustomerID: c.ID, SourceID: m.SourceID, ReceiverID: receiver.ID,
		Credit: models.FormatDecimal(it.Credit), EffectiveAt: now.UTC().Format(time.RFC3339)},
		accounts.AccountChanged{AccountID: c.ID, Change: "migration"})
}

// finish ends batch id when it is EXECUTING and no customer is left
// pending (one still locked by another run is pending: that run finishes).
func (s *Service) finish(tx *store.Tx, id int64) (bool, error) {
	var m Migration
	if err := tx.DB.Raw(`SELECT `+migrationColumns+` FROM migrations WHERE id = ? FOR UPDATE`, id).Scan(&m).Error; err != nil {
		return false, fmt.Errorf("lock migration: %w", err)
	}
	if m.Status != StatusExecuting {
		return false, nil
	}
	c, err := s.counts(tx, id)
	if err != nil {
		return false, err
	}
	if c.Pending > 0 {
		return false, nil
	}
	now := tx.Now()
	m.Status, m.FinishedAt = StatusCompleted, &now
	action, note := "COMPLETED", fmt.Sprintf("%d customers migrated", c.Migrated)
	if c.Failed > 0 {
		m.Status = StatusPartiallyCompleted
		note = fmt.Sprintf("%d customers migrated, %d failed", c.Migrated, c.Failed)
	}
	return true, s.finishTransition(tx, &m, StatusExecuting, action, note)
}

// Executing lists the batches being executed (for the scheduler's sweep,
// which makes sure each has a task).
func (s *Service) Executing(ctx context.Context) ([]int64, error) {
	var list []int64
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT id FROM migrations WHERE status = 'EXECUTING' ORDER BY id`).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("executing migrations: %w", err)
	}
	return list, nil
}
