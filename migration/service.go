package migration

import (
	"log/slog"
	"strings"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/store"
)

// Status is a batch's status (MigrationStatus of the schema).
type Status string

// The batch statuses.
const (
	StatusDraft                      Status = "DRAFT"
	StatusPendingDistributorApproval Status = "PENDING_DISTRIBUTOR_APPROVAL"
	StatusPendingSourceApproval      Status = "PENDING_SOURCE_APPROVAL"
	StatusPendingInternalReview      Status = "PENDING_INTERNAL_REVIEW"
	StatusExecuting                  Status = "EXECUTING"
	StatusCompleted                  Status = "COMPLETED"
	StatusPartiallyCompleted         Status = "PARTIALLY_COMPLETED"
	StatusRejected                   Status = "REJECTED"
	StatusCancelled                  Status = "CANCELLED"
	StatusExpired                    Status = "EXPIRED"
)

// Pending reports whether the batch waits for an approval.
func (s Status) Pending() bool { return strings.HasPrefix(string(s), "PENDING_") }

// Ended reports whether the batch is over.
func (s Status) Ended() bool {
	switch s {
	case StatusCompleted, StatusPartiallyCompleted, StatusRejected, StatusCancelled, StatusExpired:
		return true
	}
	return false
}

// ItemStatus is one customer's status in a batch (MigrationItemStatus).
type ItemStatus string

// The item statuses.
const (
	ItemPending   ItemStatus = "PENDING"
	ItemMigrated  ItemStatus = "MIGRATED"
	ItemFailed    ItemStatus = "FAILED"
	ItemRejected  ItemStatus = "REJECTED"
	ItemCancelled ItemStatus = "CANCELLED"
)

// Migration is a batch: customers of Source moving under Receiver.
type Migration struct {
	ID            int64
	ReceiverID    int64
	SourceID      int64
	DistributorID *int64
	Status        Status
	RejectedRows  RowErrors
	Reason        string
	CreatedAt     time.Time
	UpdatedAt     time.Time
	StepDueAt     *time.Time
	// The source's acknowledgement of the data transfer statement.
	StatementVersion *string
	StatementLocale  *string
	StatementBy      *int64
	StatementAt      *time.Time
	FinishedAt       *time.Time
}

// IsNode marks Migration as a Node.
func (Migration) IsNode() {}

// GlobalID is the batch's Node ID.
func (m *Migration) GlobalID() string { return ids.Encode(TypeMigration, m.ID) }

// TypeMigration is the Node type name of batches.
const TypeMigration = "Migration"

// Item is one customer of a batch.
type Item struct {
	ID          int64
	MigrationID int64
	AccountID   int64
	RowNumber   int
	Credit      decimal.Decimal
	Status      ItemStatus
	Reason      string
	EffectiveAt *time.Time
	// Batch is the item's batch, when a reader loaded it (not stored).
	Batch *Migration `gorm:"-"`
	// Account is the customer, when a reader loaded it (not stored).
	Account *models.Account `gorm:"-"`
}

// Event is one line of the history of a batch (AccountID nil) or of one of
// its customers.
type Event struct {
	ID          int64
	MigrationID int64
	AccountID   *int64
	At          time.Time
	Actor       string
	ActorUserID *int64
	Action      string
	// Status is the batch's status after the action.
	Status Status
	Note   *string
}

// Role filters the batches listed by Migrations: those the caller's account
// receives, gives away (SOURCE), or must approve now (APPROVER).
type Role string

// The roles of Migrations.
const (
	RoleReceiver Role = "RECEIVER"
	RoleSource   Role = "SOURCE"
	RoleApprover Role = "APPROVER"
)

// Options configure the service.
type Options struct {
	// Location is the billing time zone.
	Location *time.Location
	// TTL is how long an approval step may stay pending
	// (MIGRATION_APPROVAL_TTL; 14 days when zero).
	TTL time.Duration
	// PublicURL is where users reach the product; links in notifications
	// start with it.
	PublicURL string
	// Log receives the execution's progress.
	Log *slog.Logger
}

// DefaultTTL is the approval TTL when none is configured (DOMAIN.md §6).
const DefaultTTL = 14 * 24 * time.Hour

// Service holds migration batches.
type Service struct {
	st   *store.Store
	opts Options
}

// New returns the migration service on st.
func New(st *store.Store, o Options) *Service {
	if o.Location == nil {
		o.Location = time.UTC
	}
	if o.TTL <= 0 {
		o.TTL = DefaultTTL
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	o.PublicURL = strings.TrimRight(o.PublicURL, "/")
	return &Service{st: st, opts: o}
}

// url is the link to batch id in the Partner Center.
func (s *Service) url(id int64) string {
	return s.opts.PublicURL + "/migrations/" + ids.Encode(TypeMigration, id)
}

const migrationColumns = `id, receiver_id, source_id, distributor_id, status, rejected_rows, reason, created_at, updated_at, step_due_at,
	statement_version, statement_locale, statement_by, statement_at, finished_at`

const itemColumns = `id, migration_id, account_id, row_number, credit, status, reason, effective_at`

// secondLevel reports whether a is a second-level reseller (a reseller
// under a distributor).
func secondLevel(a *models.Account) bool { return a.Kind == models.KindReseller && a.Depth >= 2 }
