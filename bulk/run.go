package bulk

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// Run applies the pending rows of job id, one at a time, each through the
// domain service that owns its rule and as the uploading user — with that
// user's scope and roles as they are now, so a user who lost the finance
// role has the rest refused — then ends the job COMPLETED once no row is
// pending. Each row becomes DONE, with a note of what changed, or FAILED
// with the code and message of the service's refusal (the customer is no
// longer the partner's, credit is short, ...); the job's counts follow.
//
// A run stopped at any point (a killed worker, a cancelled context) resumes
// where it stopped and never applies a row twice, and several runs at once
// share the work. A row is locked (FOR UPDATE SKIP LOCKED) in a transaction
// that stays open while the service applies the row in a transaction of
// its own, under the request ID "bulk:<job>:<row>", and that then writes
// the row's result. The service's audit entry for the customer carries
// that request ID and commits with the change, so the one window — the
// change committed, the result not — is closed on the next attempt: a row
// whose customer has an audit entry under its request ID is taken as DONE
// without applying it again. (No HTTP caller can forge it: request IDs of
// requests have no colon.) An internal error leaves the row pending for
// the task's retry, up to maxAttempts, then FAILS it. A job not found, or
// COMPLETED, is left alone.
func (s *Service) Run(ctx context.Context, id int64) (*Job, error) {
	ctx = accounts.SystemContext(ctx)
	j, err := s.load(s.st.DB.WithContext(ctx), id)
	if err != nil || j == nil || j.Status == StatusCompleted {
		return j, err
	}
	if j.Status == StatusQueued {
		if err := s.st.DB.WithContext(ctx).Exec(`UPDATE bulk_jobs SET status = 'RUNNING', started_at = ? WHERE id = ? AND status = 'QUEUED'`,
			s.st.Now(), id).Error; err != nil {
			return nil, fmt.Errorf("start bulk job %d: %w", id, err)
		}
	}
	actx, err := s.uploader(ctx, j)
	if err != nil {
		return nil, err
	}
	applied, failed := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		st, err := s.applyNext(ctx, actx, j)
		if err != nil {
			return nil, fmt.Errorf("run bulk job %d: %w", id, err)
		}
		if st == "" {
			break
		}
		if st == RowDone {
			applied++
		} else {
			failed++
		}
	}
	out, err := s.finish(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("finish bulk job %d: %w", id, err)
	}
	if applied+failed > 0 {
		s.opts.Log.Info("bulk job ran", "job", id, "kind", j.Kind, "done", applied, "failed", failed, "status", out.Status)
	}
	return out, nil
}

// errRetry marks an internal error that left a row pending for a later run.
var errRetry = errors.New("row left pending for a retry")

// applyNext applies (or fails) the next pending row of job j nobody else
// is working on and returns its new status; "" when there is none. An
// internal error is returned after the row's attempt is recorded.
func (s *Service) applyNext(ctx, actx context.Context, j *Job) (RowStatus, error) {
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-s.slots }()
	var out RowStatus
	var retry error
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		out, retry = "", nil
		var r Row
		if err := tx.DB.Raw(`SELECT `+rowColumns+` FROM bulk_rows WHERE job_id = ? AND status = 'PENDING'
			ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED`, j.ID).Scan(&r).Error; err != nil {
			return fmt.Errorf("next row: %w", err)
		}
		if r.ID == 0 {
			return nil
		}
		rid := requestID(j.ID, r.ID)
		done, err := applied(tx, r.CustomerID, rid)
		if err != nil {
			return err
		}
		if done {
			out = RowDone
			return settle(tx, j.ID, &r, RowDone, "", "applied (the job was interrupted before recording it)")
		}
		note, err := s.apply(store.WithRequestID(actx, rid), tx, j, &r)
		if err == nil {
			out = RowDone
			return settle(tx, j.ID, &r, RowDone, "", note)
		}
		if e, ok := apperr.As(err); ok && e.Code != apperr.Internal {
			out = RowFailed
			return settle(tx, j.ID, &r, RowFailed, e.Code, e.Message)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The service may have committed before failing (a connection lost
		// at its commit): its audit entry tells.
		if done, aerr := applied(tx, r.CustomerID, rid); aerr == nil && done {
			out = RowDone
			return settle(tx, j.ID, &r, RowDone, "", "applied")
		}
		s.opts.Log.Error("bulk row not applied", "job", j.ID, "row", r.ID, "line", r.Line, "attempt", r.Attempts+1, "err", err)
		if r.Attempts+1 >= maxAttempts {
			out, r.Attempts = RowFailed, r.Attempts+1
			return settle(tx, j.ID, &r, RowFailed, apperr.Internal, "the change could not be applied (an internal error): upload this row again later")
		}
		retry = fmt.Errorf("row %d (line %d): %w: %w", r.ID, r.Line, errRetry, err)
		return tx.DB.Exec(`UPDATE bulk_rows SET attempts = attempts + 1 WHERE id = ?`, r.ID).Error
	})
	if err != nil {
		return "", err
	}
	return out, retry
}

// requestID is the request ID a row is applied under.
func requestID(job, row int64) string {
	return "bulk:" + strconv.FormatInt(job, 10) + ":" + strconv.FormatInt(row, 10)
}

// applied reports whether a change to customer was committed under request
// ID rid: every change a row makes is audited on its customer.
func applied(tx *store.Tx, customer int64, rid string) (bool, error) {
	var ok bool
	if err := tx.DB.Raw(`SELECT EXISTS (SELECT 1 FROM audit_log WHERE account_id = ? AND request_id = ?)`, customer, rid).
		Scan(&ok).Error; err != nil {
		return false, fmt.Errorf("audit of %s: %w", rid, err)
	}
	return ok, nil
}

// settle writes row r's result and counts it on its job.
func settle(tx *store.Tx, jobID int64, r *Row, st RowStatus, code apperr.Code, msg string) error {
	if err := tx.DB.Exec(`UPDATE bulk_rows SET status = ?, code = ?, message = ?, attempts = ?, finished_at = ? WHERE id = ?`,
		st, string(code), msg, r.Attempts, tx.Now(), r.ID).Error; err != nil {
		return fmt.Errorf("result of bulk row %d: %w", r.ID, err)
	}
	col := "done_count"
	if st == RowFailed {
		col = "failed_count"
	}
	if err := tx.DB.Exec(`UPDATE bulk_jobs SET `+col+` = `+col+` + 1 WHERE id = ?`, jobID).Error; err != nil {
		return fmt.Errorf("progress of bulk job %d: %w", jobID, err)
	}
	return nil
}

// apply makes row r's change with the domain service, in a transaction of
// the service's own, as the principal in ctx, and returns a note of what
// changed. The customer must still be a direct customer of the job's
// partner (checked in tx, which only reads).
func (s *Service) apply(ctx context.Context, tx *store.Tx, j *Job, r *Row) (string, error) {
	var parent int64
	if err := tx.DB.Raw(`SELECT coalesce(parent_id, 0) FROM accounts WHERE id = ?`, r.CustomerID).Scan(&parent).Error; err != nil {
		return "", fmt.Errorf("parent of %d: %w", r.CustomerID, err)
	}
	if parent != j.PartnerID {
		return "", apperr.NotFoundf("the customer is no longer a direct customer of the partner")
	}
	id := r.CustomerID
	switch j.Kind {
	case KindBudgets:
		in := guard.BudgetInput{CustomerID: id, Type: r.BudgetType, Amount: *r.Amount, OverspendAction: r.OverspendAction}
		if r.Thresholds != nil {
			in.Thresholds = []int(r.Thresholds)
		}
		if _, err := s.guard.SetBudget(ctx, in); err != nil {
			return "", err
		}
		return fmt.Sprintf("budget set: %s %s", r.BudgetType, models.FormatDecimal(*r.Amount)), nil
	case KindCredit:
		v, err := s.credit.View(ctx, id)
		if err != nil {
			return "", err
		}
		target := *r.Amount
		delta := target.Sub(v.Limit)
		switch delta.Sign() {
		case 0:
			return fmt.Sprintf("the allocation is already %s: nothing to change", models.FormatDecimal(target)), nil
		case 1:
			if _, err := s.credit.Allocate(ctx, id, delta); err != nil {
				return "", err
			}
			return fmt.Sprintf("allocated %s: from %s to %s", models.FormatDecimal(delta), models.FormatDecimal(v.Limit), models.FormatDecimal(target)), nil
		default:
			if _, err := s.credit.Reverse(ctx, id, delta.Neg()); err != nil {
				return "", err
			}
			return fmt.Sprintf("reversed %s: from %s to %s", models.FormatDecimal(delta.Neg()), models.FormatDecimal(v.Limit), models.FormatDecimal(target)), nil
		}
	case KindOverspendActions:
		views, err := s.guard.BudgetViews(ctx, []int64{id})
		if err != nil {
			return "", err
		}
		b := views[id]
		if b == nil {
			return "", apperr.Preconditionf("the customer has no budget: set one first (a BUDGETS file)")
		}
		if b.OverspendAction == r.OverspendAction {
			return fmt.Sprintf("the overspend action is already %s: nothing to change", r.OverspendAction), nil
		}
		if _, err := s.guard.SetBudget(ctx, guard.BudgetInput{CustomerID: id, Type: b.Type, Amount: b.Amount,
			Thresholds: []int(b.Thresholds), OverspendAction: r.OverspendAction}); err != nil {
			return "", err
		}
		return fmt.Sprintf("overspend action %s (was %s)", r.OverspendAction, b.OverspendAction), nil
	}
	return "", fmt.Errorf("bulk job %d: unknown kind %q", j.ID, j.Kind)
}

// uploader is ctx acting as job j's uploading user as it is now (its
// account, path and roles), or as the system for a job the system made.
func (s *Service) uploader(ctx context.Context, j *Job) (context.Context, error) {
	if j.CreatedBy == nil {
		return accounts.SystemContext(ctx), nil
	}
	var u struct {
		UserID    int64
		Email     string
		Roles     models.Roles
		Locale    models.Locale
		AccountID int64
		Kind      models.AccountKind
		Path      string
	}
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT u.id AS user_id, u.email, u.roles, u.locale, a.id AS account_id, a.kind, a.path
		FROM users u JOIN accounts a ON a.id = u.account_id WHERE u.id = ?`, *j.CreatedBy).Scan(&u).Error; err != nil {
		return nil, fmt.Errorf("uploader of bulk job %d: %w", j.ID, err)
	}
	if u.UserID == 0 {
		return nil, fmt.Errorf("uploader %d of bulk job %d not found", *j.CreatedBy, j.ID)
	}
	return accounts.WithPrincipal(ctx, &accounts.Principal{UserID: u.UserID, Email: u.Email, AccountID: u.AccountID,
		AccountKind: u.Kind, AccountPath: u.Path, Roles: u.Roles, Locale: u.Locale}), nil
}

// finish ends job id when it is RUNNING and no row is left pending (one
// still locked by another run is pending: that run finishes), and returns
// the job as it stands.
func (s *Service) finish(ctx context.Context, id int64) (*Job, error) {
	var out *Job
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var j Job
		if err := tx.DB.Raw(`SELECT `+jobColumns+` FROM bulk_jobs WHERE id = ? FOR UPDATE`, id).Scan(&j).Error; err != nil {
			return fmt.Errorf("lock bulk job: %w", err)
		}
		out = &j
		if j.Status != StatusRunning {
			return nil
		}
		var pending bool
		if err := tx.DB.Raw(`SELECT EXISTS (SELECT 1 FROM bulk_rows WHERE job_id = ? AND status = 'PENDING')`, id).
			Scan(&pending).Error; err != nil {
			return fmt.Errorf("pending rows: %w", err)
		}
		if pending {
			return nil
		}
		now := tx.Now()
		if err := tx.DB.Exec(`UPDATE bulk_jobs SET status = 'COMPLETED', finished_at = ? WHERE id = ?`, now, id).Error; err != nil {
			return fmt.Errorf("complete bulk job: %w", err)
		}
		j.Status, j.FinishedAt = StatusCompleted, &now
		if err := tx.Audit("bulk.complete", j.PartnerID, map[string]any{"jobId": id, "status": StatusRunning},
			map[string]any{"jobId": id, "status": StatusCompleted, "done": j.Done, "failed": j.Failed}); err != nil {
			return err
		}
		return tx.Emit(notify.BulkChangeCompleted{JobID: id, PartnerID: j.PartnerID, Kind: string(j.Kind), Applied: j.Done,
			Failed: j.Failed, Rejected: j.Rejected, URL: s.url(id)})
	})
	return out, err
}

// Open lists the jobs not yet COMPLETED (for the scheduler's sweep, which
// makes sure each has a task).
func (s *Service) Open(ctx context.Context) ([]int64, error) {
	var list []int64
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT id FROM bulk_jobs WHERE status <> 'COMPLETED' ORDER BY id`).Scan(&list).Error; err != nil {
		return nil, fmt.Errorf("open bulk jobs: %w", err)
	}
	return list, nil
}
