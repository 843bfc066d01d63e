package guard

import (
	"context"
	"fmt"
	"sort"
	"time"

	"partnerd/accounts"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// releaseBatch is how many due jobs one transaction takes.
const releaseBatch = 20

// Job is a scheduled step of a freeze with resources: a reminder or the
// release, due at DueAt.
type Job struct {
	ID    int64
	DueAt time.Time
}

// PendingJobs lists the jobs of account id that are not done, for the
// wake-ups of the queue (asynq ProcessAt). The jobs themselves live in the
// database: a lost wake-up only delays a job to the next sweep.
func (s *Service) PendingJobs(ctx context.Context, id int64) ([]Job, error) {
	var jobs []Job
	err := s.st.DB.WithContext(ctx).Raw(`SELECT id, due_at FROM freeze_jobs WHERE account_id = ? AND done_at IS NULL ORDER BY due_at`, id).
		Scan(&jobs).Error
	if err != nil {
		return nil, fmt.Errorf("pending freeze jobs of %d: %w", id, err)
	}
	return jobs, nil
}

// ProcessDue runs every freeze job that is due, a batch per transaction,
// each picked FOR UPDATE SKIP LOCKED so several workers share them without
// running one twice. A job acts only on the state it was made for: the
// account must still be FROZEN_WITH_RESOURCES with the same release time,
// else the job is marked STALE and does nothing (an unfreeze cancels them,
// but a wake-up may still be queued). A reminder whose release is already
// due is skipped. The release marks every resource RELEASED and the
// account's data deleted, irreversibly, and notifies. It returns how many
// jobs were run.
func (s *Service) ProcessDue(ctx context.Context) (int, error) {
	total := 0
	for {
		n, err := s.processBatch(ctx)
		total += n
		if err != nil || n < releaseBatch {
			return total, err
		}
	}
}

func (s *Service) processBatch(ctx context.Context) (int, error) {
	n := 0
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		n = 0
		now := tx.Now()
		var jobs []struct {
			ID        int64
			AccountID int64
			Kind      string
			ReleaseAt time.Time
		}
		err := tx.DB.Raw(`SELECT id, account_id, kind, release_at FROM freeze_jobs
			WHERE done_at IS NULL AND due_at <= ? ORDER BY due_at, id LIMIT ? FOR UPDATE SKIP LOCKED`, now, releaseBatch).Scan(&jobs).Error
		if err != nil {
			return fmt.Errorf("pick due freeze jobs: %w", err)
		}
		// Accounts in id order: two batches never wait for each other in a cycle.
		sort.SliceStable(jobs, func(a, b int) bool { return jobs[a].AccountID < jobs[b].AccountID })
		for _, j := range jobs {
			outcome, err := s.runJob(tx, j.AccountID, j.Kind, j.ReleaseAt, now)
			if err != nil {
				return fmt.Errorf("freeze job %d (%s of account %d): %w", j.ID, j.Kind, j.AccountID, err)
			}
			if err := tx.DB.Exec(`UPDATE freeze_jobs SET done_at = ?, outcome = ? WHERE id = ?`, now, outcome, j.ID).Error; err != nil {
				return fmt.Errorf("mark freeze job %d: %w", j.ID, err)
			}
		}
		n = len(jobs)
		return nil
	})
	return n, err
}

// runJob runs one job in tx and returns its outcome.
func (s *Service) runJob(tx *store.Tx, accountID int64, kind string, releaseAt, now time.Time) (string, error) {
	a, err := accounts.Lock(tx, accountID)
	if err != nil {
		return "", err
	}
	if a == nil || a.Status != models.StatusFrozenWithResources || a.ReleaseAt == nil || !a.ReleaseAt.Equal(releaseAt) || a.DataDeletedAt != nil {
		return "STALE", nil
	}
	var resources int
	if err := tx.DB.Raw(`SELECT count(*) FROM resources WHERE customer_id = ? AND status <> 'RELEASED'`, a.ID).Scan(&resources).Error; err != nil {
		return "", fmt.Errorf("count resources: %w", err)
	}
	at := releaseAt.UTC().Format(time.RFC3339)
	if kind != "RELEASE" {
		if !releaseAt.After(now) {
			return "STALE", nil
		}
		days := 3
		if kind == "REMIND_1D" {
			days = 1
		}
		return "DONE", tx.Emit(notify.ReleaseReminder{AccountID: a.ID, ReleaseAt: at, DaysLeft: days, Resources: resources})
	}
	if err := tx.DB.Exec(`UPDATE resources SET status = 'RELEASED', stopped_by_freeze = false, released_at = ?, updated_at = ?
		WHERE customer_id = ? AND status <> 'RELEASED'`, now, now, a.ID).Error; err != nil {
		return "", fmt.Errorf("release resources: %w", err)
	}
	if err := tx.DB.Exec(`UPDATE accounts SET data_deleted_at = ?, updated_at = ? WHERE id = ?`, now, now, a.ID).Error; err != nil {
		return "", fmt.Errorf("delete account data: %w", err)
	}
	if err := tx.Audit("account.release", a.ID, statusSummary(a), map[string]any{"resourcesReleased": resources, "dataDeletedAt": now.UTC()}); err != nil {
		return "", err
	}
	s.log.InfoContext(tx.Context(), "resources released", "account_id", a.ID, "resources", resources)
	return "DONE", tx.Emit(notify.ResourcesReleased{AccountID: a.ID, ReleasedAt: now.UTC().Format(time.RFC3339), Resources: resources})
}
