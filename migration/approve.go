package migration

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// Submit sends a DRAFT batch of the caller's (the receiver's) for approval:
// to the receiver's distributor when the receiver is a second-level
// reseller, else to the source. Every customer must still meet the
// preconditions and, for a second-level receiver, its allocatable credit
// must cover the batch (PRECONDITION_FAILED, naming the customers and
// reasons, nothing changed). From here each customer is held by the batch:
// a batch racing for the same customer gets CONFLICT.
func (s *Service) Submit(ctx context.Context, id int64) (*Migration, error) {
	return s.transition(ctx, id, func(tx *store.Tx, sc accounts.Scope, m *Migration) (string, string, error) {
		if err := s.requireReceiver(sc, m); err != nil {
			return "", "", err
		}
		if m.Status != StatusDraft {
			return "", "", apperr.Conflictf("the batch was already submitted (it is %s)", strings.ToLower(string(m.Status)))
		}
		var list []struct {
			AccountID int64
		}
		if err := tx.DB.Raw(`SELECT account_id FROM migration_items WHERE migration_id = ? ORDER BY account_id`, m.ID).Scan(&list).Error; err != nil {
			return "", "", fmt.Errorf("items of migration %d: %w", m.ID, err)
		}
		if len(list) == 0 {
			return "", "", apperr.Preconditionf("the batch has no customers: add rows first")
		}
		ids := make([]int64, len(list))
		for i, r := range list {
			ids[i] = r.AccountID
		}
		// Lock the customers (in id order) so an unbinding or another
		// submission of one of them waits for this one.
		if err := tx.DB.Exec(`SELECT 1 FROM accounts WHERE id = ANY(?::bigint[]) ORDER BY id FOR UPDATE`, store.Int64Array(ids)).Error; err != nil {
			return "", "", fmt.Errorf("lock customers: %w", err)
		}
		failed, err := Check(tx, s.opts.Location, m.SourceID, m.ID, ids)
		if err != nil {
			return "", "", err
		}
		if len(failed) > 0 {
			return "", "", apperr.Preconditionf("%d of the batch's customers do not meet the conditions of a migration: %s; remove them or fix them first",
				len(failed), describe(failed))
		}
		receiver, err := accounts.Lock(tx, m.ReceiverID)
		if err != nil {
			return "", "", err
		}
		c, err := s.counts(tx, m.ID)
		if err != nil {
			return "", "", err
		}
		if why, err := checkReceiverCredit(tx, receiver, c.Credit); err != nil || why != "" {
			if err != nil {
				return "", "", err
			}
			return "", "", apperr.Preconditionf("%s", why)
		}
		err = tx.DB.Exec(`UPDATE migration_items SET open = true WHERE migration_id = ?`, m.ID).Error
		if store.PgConstraint(err) == "migration_items_one_open" {
			return "", "", apperr.Conflictf("a customer of this batch was just submitted in another migration: submit again to see which")
		}
		if err != nil {
			return "", "", fmt.Errorf("hold the customers of migration %d: %w", m.ID, err)
		}
		m.Status = StatusPendingSourceApproval
		if m.DistributorID != nil {
			m.Status = StatusPendingDistributorApproval
		}
		return "SUBMITTED", "", nil
	})
}

// Approve is the approval of the step whose turn it is, by its party: the
// receiver's distributor, then the source — which must acknowledge the
// Sub-Customer Data Transfer Statement (ack; PRECONDITION_FAILED without
// it) — then a platform REVIEWER, whose approval starts the execution. A
// party whose step was already approved gets CONFLICT (two approvals at
// once: one wins); anyone else who sees the batch FORBIDDEN.
func (s *Service) Approve(ctx context.Context, id int64, ack bool) (*Migration, error) {
	return s.transition(ctx, id, func(tx *store.Tx, sc accounts.Scope, m *Migration) (string, string, error) {
		if err := s.requireTurn(sc, m, "approve"); err != nil {
			return "", "", err
		}
		switch m.Status {
		case StatusPendingDistributorApproval:
			m.Status = StatusPendingSourceApproval
		case StatusPendingSourceApproval:
			if !ack {
				return "", "", apperr.Preconditionf("approving as the source requires acknowledging the Sub-Customer Data Transfer Statement (acknowledgeDataTransferStatement: true)")
			}
			p := sc.Principal()
			st := StatementFor(p.Locale)
			now := tx.Now()
			m.StatementVersion, m.StatementLocale, m.StatementAt = &st.Version, &st.Locale, &now
			if p.UserID != 0 {
				m.StatementBy = &p.UserID
			}
			if err := tx.DB.Exec(`UPDATE migrations SET statement_version = ?, statement_locale = ?, statement_by = ?, statement_at = ? WHERE id = ?`,
				st.Version, st.Locale, m.StatementBy, now, m.ID).Error; err != nil {
				return "", "", fmt.Errorf("store the statement's acknowledgement: %w", err)
			}
			if err := s.history(tx, m.ID, nil, "STATEMENT_ACKNOWLEDGED", m.Status, "Sub-Customer Data Transfer Statement "+st.Version+" ("+st.Locale+")"); err != nil {
				return "", "", err
			}
			m.Status = StatusPendingInternalReview
		case StatusPendingInternalReview:
			m.Status = StatusExecuting
		}
		return "APPROVED", "", nil
	})
}

// Reject ends a pending batch, by the party whose turn it is, with a reason.
func (s *Service) Reject(ctx context.Context, id int64, reason string) (*Migration, error) {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, apperr.Invalid("reason", "say why the migration is rejected")
	}
	if len([]rune(reason)) > 500 {
		return nil, apperr.Invalid("reason", "at most 500 characters")
	}
	return s.transition(ctx, id, func(tx *store.Tx, sc accounts.Scope, m *Migration) (string, string, error) {
		if err := s.requireTurn(sc, m, "reject"); err != nil {
			return "", "", err
		}
		if err := s.end(tx, m, StatusRejected, ItemRejected, reason); err != nil {
			return "", "", err
		}
		return "REJECTED", reason, nil
	})
}

// Cancel ends a batch of the caller's (the receiver's) before its final
// approval.
func (s *Service) Cancel(ctx context.Context, id int64) (*Migration, error) {
	return s.transition(ctx, id, func(tx *store.Tx, sc accounts.Scope, m *Migration) (string, string, error) {
		if err := s.requireReceiver(sc, m); err != nil {
			return "", "", err
		}
		if m.Status != StatusDraft && !m.Status.Pending() {
			return "", "", apperr.Conflictf("the batch is %s: it can no longer be cancelled", strings.ToLower(string(m.Status)))
		}
		if err := s.end(tx, m, StatusCancelled, ItemCancelled, "cancelled by the receiver"); err != nil {
			return "", "", err
		}
		return "CANCELLED", "", nil
	})
}

// SweepExpired ends the batches whose pending step is past its due time
// (EXPIRED; for the scheduler, safe to run twice at once) and returns how
// many it ended.
func (s *Service) SweepExpired(ctx context.Context) (int, error) {
	n := 0
	for {
		var batch int
		err := s.st.InTx(ctx, func(tx *store.Tx) error {
			var list []*Migration
			if err := tx.DB.Raw(`SELECT `+migrationColumns+` FROM migrations WHERE status LIKE 'PENDING%' AND step_due_at <= ?
				ORDER BY step_due_at LIMIT 100 FOR UPDATE SKIP LOCKED`, tx.Now()).Scan(&list).Error; err != nil {
				return fmt.Errorf("find expired migrations: %w", err)
			}
			for _, m := range list {
				prev := m.Status
				note := fmt.Sprintf("no answer to %s within %s", strings.ToLower(string(prev)), s.opts.TTL)
				if err := s.end(tx, m, StatusExpired, ItemCancelled, "the batch expired: "+note); err != nil {
					return err
				}
				if err := s.finishTransition(tx, m, prev, "EXPIRED", note); err != nil {
					return err
				}
			}
			batch = len(list)
			return nil
		})
		n += batch
		if err != nil || batch < 100 {
			return n, err
		}
	}
}

// transition locks batch id (visible to the caller, else NOT_FOUND), runs fn,
// which checks the caller's right, moves m.Status and returns the action and
// a note, then records the step: status, due time, history, audit,
// notifications and the live update.
func (s *Service) transition(ctx context.Context, id int64, fn func(tx *store.Tx, sc accounts.Scope, m *Migration) (string, string, error)) (*Migration, error) {
	var out *Migration
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		m, sc, err := s.lock(tx, id)
		if err != nil {
			return err
		}
		prev := m.Status
		action, note, err := fn(tx, sc, m)
		if err != nil {
			return err
		}
		out = m
		return s.finishTransition(tx, m, prev, action, note)
	})
	return out, err
}

// finishTransition writes m's new status (and the due time of a pending
// step), its history and audit, and emits its notifications: the change to
// the parties, the approval request to the party whose turn it now is, and
// the start of the execution.
func (s *Service) finishTransition(tx *store.Tx, m *Migration, prev Status, action, note string) error {
	now := tx.Now()
	m.UpdatedAt, m.StepDueAt = now, nil
	if m.Status.Pending() {
		due := now.Add(s.opts.TTL)
		m.StepDueAt = &due
	}
	if err := tx.DB.Exec(`UPDATE migrations SET status = ?, updated_at = ?, step_due_at = ?, reason = ?, finished_at = ? WHERE id = ?`,
		m.Status, now, m.StepDueAt, m.Reason, m.FinishedAt, m.ID).Error; err != nil {
		return fmt.Errorf("update migration %d: %w", m.ID, err)
	}
	if err := s.history(tx, m.ID, nil, action, m.Status, note); err != nil {
		return err
	}
	if err := tx.Audit("migration."+strings.ToLower(action), m.ReceiverID, map[string]any{"status": prev},
		map[string]any{"migrationId": m.ID, "status": m.Status, "note": note}); err != nil {
		return err
	}
	sourceTold := prev != StatusDraft && prev != StatusPendingDistributorApproval || m.Status == StatusPendingSourceApproval
	c, err := s.counts(tx, m.ID)
	if err != nil {
		return err
	}
	evs := []store.Event{s.changed(m, action, note, sourceTold, c)}
	if m.Status.Pending() {
		evs = append(evs, notify.MigrationApprovalRequested{MigrationID: m.ID, ApproverID: s.turn(m), ReceiverID: m.ReceiverID,
			SourceID: m.SourceID, Status: string(m.Status), Customers: c.Items, Credit: models.FormatDecimal(c.Credit),
			DueAt: m.StepDueAt.UTC().Format(time.RFC3339), URL: s.url(m.ID), SourceAcknowledged: m.StatementAt != nil})
	}
	if m.Status == StatusExecuting {
		evs = append(evs, Execute{MigrationID: m.ID})
	}
	return tx.Emit(evs...)
}

// end closes a batch before its execution: status, and every item with the
// item status and reason; the customers are free again.
func (s *Service) end(tx *store.Tx, m *Migration, st Status, item ItemStatus, reason string) error {
	if err := tx.DB.Exec(`UPDATE migration_items SET status = ?, reason = ?, open = false WHERE migration_id = ? AND status = 'PENDING'`,
		item, reason, m.ID).Error; err != nil {
		return fmt.Errorf("end the items of migration %d: %w", m.ID, err)
	}
	now := tx.Now()
	m.Status, m.FinishedAt = st, &now
	if st == StatusRejected {
		m.Reason = reason
	}
	return nil
}

// turn is the account whose approval the batch waits for (0: the platform).
func (s *Service) turn(m *Migration) int64 {
	switch m.Status {
	case StatusPendingDistributorApproval:
		return *m.DistributorID
	case StatusPendingSourceApproval:
		return m.SourceID
	}
	return 0
}

// requireTurn lets through the party whose turn it is: the distributor's
// or the source's ADMIN or OPERATOR, or a platform REVIEWER for the
// internal review. A party whose step is behind the batch gets CONFLICT (its
// step was approved, perhaps at the same moment by a colleague); anyone else
// FORBIDDEN.
func (s *Service) requireTurn(sc accounts.Scope, m *Migration, verb string) error {
	p := sc.Principal()
	if !m.Status.Pending() {
		if m.Status == StatusDraft {
			return apperr.Preconditionf("the batch is a draft: the receiver submits it first")
		}
		return apperr.Conflictf("the batch is already %s", strings.ToLower(string(m.Status)))
	}
	mine := func(st Status) bool {
		switch st {
		case StatusPendingDistributorApproval:
			return m.DistributorID != nil && p.AccountID == *m.DistributorID && !p.System
		case StatusPendingSourceApproval:
			return p.AccountID == m.SourceID && !p.System
		case StatusPendingInternalReview:
			return p.Can(accounts.PermReview)
		}
		return false
	}
	if mine(m.Status) {
		if m.Status == StatusPendingInternalReview {
			return nil
		}
		return sc.Require(accounts.PermOperate)
	}
	steps := []Status{StatusPendingDistributorApproval, StatusPendingSourceApproval, StatusPendingInternalReview}
	for _, st := range steps {
		if st == m.Status {
			break
		}
		if mine(st) {
			return apperr.Conflictf("your step was already approved: the batch is now %s", strings.ToLower(string(m.Status)))
		}
	}
	who := map[Status]string{StatusPendingDistributorApproval: "the receiver's distributor", StatusPendingSourceApproval: "the source partner",
		StatusPendingInternalReview: "the platform's internal review"}[m.Status]
	return apperr.Forbiddenf("only %s may %s the batch now (it is %s)", who, verb, strings.ToLower(string(m.Status)))
}

// requireReceiver lets through the receiver's ADMIN and OPERATOR users.
func (s *Service) requireReceiver(sc accounts.Scope, m *Migration) error {
	if p := sc.Principal(); p.System || p.AccountID != m.ReceiverID {
		return apperr.Forbiddenf("only the receiving partner edits, submits or cancels its batch")
	}
	return sc.Require(accounts.PermOperate)
}

// Counts are a batch's customers by status, and the credit they ask for.
type Counts struct {
	Items, Migrated, Failed, Pending int
	Credit                           decimal.Decimal
}

func (s *Service) counts(tx *store.Tx, id int64) (Counts, error) {
	return countItems(tx.DB, id)
}

func countItems(db *gorm.DB, id int64) (Counts, error) {
	var c Counts
	err := db.Raw(`SELECT count(*) AS items, coalesce(sum(credit), 0) AS credit, count(*) FILTER (WHERE status = 'MIGRATED') AS migrated,
		count(*) FILTER (WHERE status = 'FAILED') AS failed, count(*) FILTER (WHERE status = 'PENDING') AS pending
		FROM migration_items WHERE migration_id = ?`, id).Scan(&c).Error
	if err != nil {
		return c, fmt.Errorf("count items of migration %d: %w", id, err)
	}
	return c, nil
}

func (s *Service) changed(m *Migration, action, reason string, sourceTold bool, c Counts) notify.MigrationChanged {
	e := notify.MigrationChanged{MigrationID: m.ID, ReceiverID: m.ReceiverID, SourceID: m.SourceID, Status: string(m.Status),
		Action: action, Reason: reason, SourceTold: sourceTold, Customers: c.Items, Migrated: c.Migrated, Failed: c.Failed, URL: s.url(m.ID),
		SourceAcknowledged: m.StatementAt != nil}
	if m.DistributorID != nil {
		e.DistributorID = *m.DistributorID
	}
	return e
}

// describe lists up to five failing customers and their reasons.
func describe(failed map[int64]string) string {
	keys := make([]int64, 0, len(failed))
	for id := range failed {
		keys = append(keys, id)
	}
	slices.Sort(keys)
	var parts []string
	for i, id := range keys {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more", len(keys)-5))
			break
		}
		parts = append(parts, fmt.Sprintf("%s: %s", ids.Encode("Account", id), failed[id]))
	}
	return strings.Join(parts, "; ")
}
