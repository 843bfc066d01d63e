package bulk

import (
	"context"
	"fmt"

	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/store"
)

// Job returns job id if the caller sees its partner (the partner's users,
// those of the partners above it and the platform's), else NOT_FOUND.
func (s *Service) Job(ctx context.Context, id int64) (*Job, error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	q, args := sc.SQL("a.path")
	var j Job
	if err := s.st.DB.WithContext(ctx).Raw(`SELECT b.* FROM bulk_jobs b JOIN accounts a ON a.id = b.partner_id
		WHERE b.id = ? AND `+q, append([]any{id}, args...)...).Scan(&j).Error; err != nil {
		return nil, fmt.Errorf("load bulk job %d: %w", id, err)
	}
	if j.ID == 0 {
		return nil, accounts.NotFound("bulk job")
	}
	return &j, nil
}

// Jobs returns a page of partner partnerID's jobs, newest first
// (NOT_FOUND when the caller does not see the partner).
func (s *Service) Jobs(ctx context.Context, partnerID int64, first int, afterID int64) (*store.Page[*Job], error) {
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	db := s.st.DB.WithContext(ctx)
	if _, err := accounts.GetInScope(db, sc, partnerID); err != nil {
		return nil, err
	}
	return store.PageOf[*Job](db, "bulk_jobs b", "b.partner_id = ?", []any{partnerID}, "-b.id", "b.id DESC", first, MaxPage, afterID)
}

// Rows returns a page of job jobID's rows in file order, only those of
// status unless it is "" (NOT_FOUND when the caller does not see the job).
func (s *Service) Rows(ctx context.Context, jobID int64, status RowStatus, first int, afterID int64) (*store.Page[*Row], error) {
	if status != "" && !status.IsValid() {
		return nil, apperr.Invalid("status", "unknown row status %q", status)
	}
	if _, err := s.Job(ctx, jobID); err != nil {
		return nil, err
	}
	where, args := "b.job_id = ?", []any{jobID}
	if status != "" {
		where, args = where+" AND b.status = ?", append(args, string(status))
	}
	return store.PageOf[*Row](s.st.DB.WithContext(ctx), "(SELECT "+rowColumns+" FROM bulk_rows) b", where, args, "b.id", "b.id", first, MaxPage, afterID)
}

// load reads job id, nil when there is none (no scope: the worker's).
func (s *Service) load(db *gorm.DB, id int64) (*Job, error) {
	var j Job
	if err := db.Raw(`SELECT `+jobColumns+` FROM bulk_jobs WHERE id = ?`, id).Scan(&j).Error; err != nil {
		return nil, fmt.Errorf("load bulk job %d: %w", id, err)
	}
	if j.ID == 0 {
		return nil, nil
	}
	return &j, nil
}
