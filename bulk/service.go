// Package bulk applies bulk changes from CSV (issue 14 point 6): a partner
// uploads budgets, credit allocations or overspend actions for many of its
// direct customers in one file. The file is judged row by row at the
// upload — with the CSV rules of the migration template (migration.ReadRows)
// — and its valid rows are applied by one background job, each through the
// domain service that owns the rule (guard.SetBudget, credit.Allocate and
// Reverse), as the uploading user, with a result per row and the job's
// progress.
package bulk

import (
	"log/slog"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/apperr"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
)

// Kind is what a file changes (BulkChangeKind of the schema).
type Kind string

// The kinds of bulk change.
const (
	// KindBudgets sets each customer's whole budget, as guard.SetBudget does.
	KindBudgets Kind = "BUDGETS"
	// KindCredit sets each customer's allocated credit to the amount given:
	// the difference is allocated or reversed.
	KindCredit Kind = "CREDIT"
	// KindOverspendActions changes only the overspend action of each
	// customer's existing budget.
	KindOverspendActions Kind = "OVERSPEND_ACTIONS"
)

// Kinds lists the kinds of bulk change.
func Kinds() []Kind { return []Kind{KindBudgets, KindCredit, KindOverspendActions} }

// IsValid reports whether k is a known kind.
func (k Kind) IsValid() bool { return k == KindBudgets || k == KindCredit || k == KindOverspendActions }

// Status is a job's status (BulkJobStatus).
type Status string

// The job statuses. A job is stored only with rows to apply, so it starts
// QUEUED; it is RUNNING from its first run until every row is DONE or
// FAILED, then COMPLETED (its counts say how it went).
const (
	StatusQueued    Status = "QUEUED"
	StatusRunning   Status = "RUNNING"
	StatusCompleted Status = "COMPLETED"
)

// RowStatus is one row's status (BulkRowStatus).
type RowStatus string

// The row statuses.
const (
	// RowPending waits for the job.
	RowPending RowStatus = "PENDING"
	// RowDone was applied (Message notes what changed).
	RowDone RowStatus = "DONE"
	// RowFailed was refused when the job applied it (Code and Message).
	RowFailed RowStatus = "FAILED"
	// RowRejected was refused at the upload (Code and Message).
	RowRejected RowStatus = "REJECTED"
)

// IsValid reports whether s is a known row status.
func (s RowStatus) IsValid() bool {
	return s == RowPending || s == RowDone || s == RowFailed || s == RowRejected
}

// TypeJob is the Node type name of jobs.
const TypeJob = "BulkJob"

// Job is one uploaded file and its application.
type Job struct {
	ID        int64
	PartnerID int64
	Kind      Kind
	Status    Status
	// CreatedBy is the uploading user, as whom the rows are applied (nil:
	// the system).
	CreatedBy *int64
	// Valid rows are applied by the job; Rejected were refused at the
	// upload. Done and Failed count the valid rows applied so far.
	Valid      int `gorm:"column:valid_count"`
	Rejected   int `gorm:"column:rejected_count"`
	Done       int `gorm:"column:done_count"`
	Failed     int `gorm:"column:failed_count"`
	CreatedAt  time.Time
	StartedAt  *time.Time
	FinishedAt *time.Time
}

// IsNode marks Job as a Node.
func (Job) IsNode() {}

// GlobalID is the job's Node ID.
func (j *Job) GlobalID() string { return ids.Encode(TypeJob, j.ID) }

// Pending is how many valid rows are still to apply.
func (j *Job) Pending() int { return j.Valid - j.Done - j.Failed }

// Row is one row of a file: its number as a spreadsheet shows it (the
// header is row 1), the customer, the values its kind reads, and its fate.
type Row struct {
	ID    int64
	JobID int64
	Line  int
	// CustomerID is the customer the row changes; 0 for a REJECTED row.
	CustomerID int64
	// CustomerRef is the customer's ID as the file wrote it.
	CustomerRef string
	// BUDGETS: the budget's type and amount; CREDIT: Amount is the
	// allocation to reach.
	BudgetType models.BudgetType
	Amount     *decimal.Decimal
	// Thresholds of a BUDGETS row; nil for the defaults.
	Thresholds models.Int32s
	// OverspendAction of a BUDGETS row ("" for NONE) or of an
	// OVERSPEND_ACTIONS row.
	OverspendAction models.OverspendAction
	Status          RowStatus
	// Code and Message: why a row was REJECTED or FAILED (Code is an
	// apperr code); for a DONE row Message notes what changed.
	Code       apperr.Code
	Message    string
	Attempts   int
	FinishedAt *time.Time
}

// RowError is a row refused at the upload: its number, the customer ID as
// written, and why (Code is VALIDATION, NOT_FOUND or PRECONDITION_FAILED).
type RowError struct {
	Line        int
	CustomerRef string
	Code        apperr.Code
	Reason      string
}

// FileRejected is the error of an upload without one valid row: a
// VALIDATION error whose message names the first rejected rows; Rows holds
// them all.
type FileRejected struct {
	Err  *apperr.Error
	Rows []RowError
}

// Error implements error.
func (e *FileRejected) Error() string { return e.Err.Error() }

// Unwrap gives the VALIDATION error, so apperr.CodeOf and the presenter see it.
func (e *FileRejected) Unwrap() error { return e.Err }

// MaxPage bounds a page of Jobs or Rows.
const MaxPage = 500

// maxAttempts bounds how often a row is tried after an internal error
// before it is FAILED, so one row cannot hold its job back forever.
const maxAttempts = 3

// Options configure the service.
type Options struct {
	// PublicURL is where users reach the product; the completion
	// notification links to the job under it.
	PublicURL string
	// Log receives the jobs' progress.
	Log *slog.Logger
	// Parallel bounds how many rows this process applies at once across
	// jobs (default 2): applying a row holds two connections (see Run).
	Parallel int
}

// Service holds bulk changes.
type Service struct {
	st     *store.Store
	guard  *guard.Service
	credit *credit.Service
	opts   Options
	slots  chan struct{}
}

// New returns the bulk change service on st, applying rows with the guard
// and credit services.
func New(st *store.Store, g *guard.Service, c *credit.Service, o Options) *Service {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Parallel <= 0 {
		o.Parallel = 2
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	return &Service{st: st, guard: g, credit: c, opts: o, slots: make(chan struct{}, o.Parallel)}
}

// url is the link to job id in the Partner Center.
func (s *Service) url(id int64) string {
	return s.opts.PublicURL + "/bulk-changes/" + ids.Encode(TypeJob, id)
}

const jobColumns = `id, partner_id, kind, status, created_by, valid_count, rejected_count, done_count, failed_count,
	created_at, started_at, finished_at`

const rowColumns = `id, job_id, line, coalesce(customer_id, 0) AS customer_id, customer_ref, coalesce(budget_type, '') AS budget_type,
	amount, thresholds, coalesce(overspend_action, '') AS overspend_action, status, code, message, attempts, finished_at`
