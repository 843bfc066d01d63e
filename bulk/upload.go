package bulk

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// Upload judges a file of kind for the partner partnerID and stores it as a
// job: the caller must see the partner (NOT_FOUND) and hold the finance
// permission (ADMIN or FINANCE); a CREDIT file is uploaded by the partner's
// own users or the platform's, as only a customer's own partner moves its
// credit (FORBIDDEN). The file is judged by Parse (a refusal of the whole
// file is VALIDATION), then each valid row's customer: one that is not the
// partner's or does not exist is NOT_FOUND; a customer of one of its
// resellers, or a child that is not a customer, is VALIDATION (a bulk
// change acts on the partner's direct customers); for OVERSPEND_ACTIONS, a
// customer without a budget is PRECONDITION_FAILED. A file without one
// valid row is refused (*FileRejected, VALIDATION); otherwise the job is
// stored QUEUED with its valid rows PENDING and the others REJECTED, with
// their row numbers and reasons, and its run is asked for in the same
// transaction. The rows are applied as the caller (see Run).
func (s *Service) Upload(ctx context.Context, partnerID int64, kind Kind, r io.Reader) (*Job, error) {
	if !kind.IsValid() {
		return nil, apperr.Invalid("kind", "unknown kind %q: one of BUDGETS, CREDIT, OVERSPEND_ACTIONS", kind)
	}
	sc, err := accounts.ScopeOf(ctx)
	if err != nil {
		return nil, err
	}
	partner, err := accounts.GetInScope(s.st.DB.WithContext(ctx), sc, partnerID)
	if err != nil {
		return nil, err
	}
	if err := sc.Require(accounts.PermFinance); err != nil {
		return nil, err
	}
	if !partner.Kind.IsPartner() {
		return nil, apperr.Invalid("partnerId", "bulk changes are made by a partner for its customers, not by a %s", partner.Kind)
	}
	p := sc.Principal()
	if kind == KindCredit && !p.IsPlatform() && p.AccountID != partner.ID {
		return nil, apperr.Forbiddenf("only the customers' own partner allocates or reverses their credit")
	}
	if r == nil {
		return nil, apperr.Invalid("file", "give the filled-in template as file")
	}
	parsed, syntax, err := Parse(kind, r)
	if err != nil {
		return nil, err
	}
	if len(parsed)+len(syntax) == 0 {
		return nil, apperr.Invalid("file", "the file has no rows: fill in the template, one customer per row")
	}
	var out *Job
	err = s.st.InTx(ctx, func(tx *store.Tx) error {
		rows, rejected, err := s.judge(tx, partner, kind, parsed, syntax)
		if err != nil {
			return err
		}
		if len(rows) == 0 {
			return fileRejected(rejected)
		}
		j := &Job{PartnerID: partner.ID, Kind: kind, Status: StatusQueued, Valid: len(rows), Rejected: len(rejected), CreatedAt: tx.Now()}
		if !p.System && p.UserID != 0 {
			j.CreatedBy = &p.UserID
		}
		if err := tx.DB.Raw(`INSERT INTO bulk_jobs (partner_id, kind, status, created_by, valid_count, rejected_count, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`, j.PartnerID, j.Kind, j.Status, j.CreatedBy, j.Valid, j.Rejected, j.CreatedAt).
			Scan(&j.ID).Error; err != nil {
			return fmt.Errorf("create bulk job: %w", err)
		}
		if err := insertRows(tx, j.ID, rows, rejected); err != nil {
			return err
		}
		if err := tx.Audit("bulk.upload", partner.ID, nil, map[string]any{"jobId": j.ID, "kind": kind,
			"rows": j.Valid, "rejectedRows": j.Rejected}); err != nil {
			return err
		}
		out = j
		return tx.Emit(Queued{JobID: j.ID})
	})
	return out, err
}

// judge checks the customers of the parsed rows of a file for partner, in
// one query (two for OVERSPEND_ACTIONS), and returns the rows that pass and
// every rejected row, syntax's included, in row order. It leaves its
// arguments alone: InTx may run it again.
func (s *Service) judge(tx *store.Tx, partner *models.Account, kind Kind, parsed []*Row, syntax []RowError) ([]*Row, []RowError, error) {
	rejected := slices.Clone(syntax)
	keys := make([]int64, len(parsed))
	for i, r := range parsed {
		keys[i] = r.CustomerID
	}
	var found []struct {
		ID         int64
		Kind       models.AccountKind
		ParentID   *int64
		Path       string
		Name       string
		ParentName string
	}
	if err := tx.DB.Raw(`SELECT a.id, a.kind, a.parent_id, a.path, a.name, coalesce(p.name, '') AS parent_name
		FROM accounts a LEFT JOIN accounts p ON p.id = a.parent_id
		WHERE a.id = ANY(?::bigint[]) AND a.path LIKE ? AND a.id <> ?`,
		store.Int64Array(keys), accounts.SubtreeLike(partner.Path), partner.ID).Scan(&found).Error; err != nil {
		return nil, nil, fmt.Errorf("customers of bulk change: %w", err)
	}
	type customer = struct {
		kind       models.AccountKind
		direct     bool
		name       string
		parentName string
	}
	under := make(map[int64]customer, len(found))
	for _, a := range found {
		under[a.ID] = customer{a.Kind, a.ParentID != nil && *a.ParentID == partner.ID, a.Name, a.ParentName}
	}
	budgeted := map[int64]bool{}
	if kind == KindOverspendActions {
		var have []int64
		if err := tx.DB.Raw(`SELECT customer_id FROM budgets WHERE customer_id = ANY(?::bigint[])`, store.Int64Array(keys)).
			Scan(&have).Error; err != nil {
			return nil, nil, fmt.Errorf("budgets of bulk change: %w", err)
		}
		for _, id := range have {
			budgeted[id] = true
		}
	}
	reject := func(r *Row, code apperr.Code, format string, args ...any) {
		rejected = append(rejected, RowError{Line: r.Line, CustomerRef: r.CustomerRef, Code: code, Reason: fmt.Sprintf(format, args...)})
	}
	var rows []*Row
	for _, r := range parsed {
		c, ok := under[r.CustomerID]
		switch {
		case !ok:
			// Nonexistent and outside the partner's subtree read the same.
			reject(r, apperr.NotFound, "no customer of %s has this ID", partner.Name)
		case !c.direct:
			reject(r, apperr.Validation, "%s is a customer of %s, not a direct customer of %s: upload it from %s",
				c.name, c.parentName, partner.Name, c.parentName)
		case c.kind != models.KindCustomer:
			reject(r, apperr.Validation, "%s is a %s, not a customer: bulk changes apply to customers", c.name, strings.ToLower(string(c.kind)))
		case kind == KindOverspendActions && !budgeted[r.CustomerID]:
			reject(r, apperr.PreconditionFailed, "%s has no budget: set one first (a BUDGETS file)", c.name)
		default:
			rows = append(rows, r)
		}
	}
	slices.SortStableFunc(rejected, func(a, b RowError) int { return a.Line - b.Line })
	return rows, rejected, nil
}

// rowRecord is a row as inserted.
type rowRecord struct {
	JobID           int64
	Line            int
	CustomerID      *int64
	CustomerRef     string
	BudgetType      *string
	Amount          *decimal.Decimal
	Thresholds      *string
	OverspendAction *string
	Status          RowStatus
	Code            string
	Message         string
}

// insertRows inserts a job's rows in row order, a thousand per statement.
func insertRows(tx *store.Tx, jobID int64, rows []*Row, rejected []RowError) error {
	recs := make([]rowRecord, 0, len(rows)+len(rejected))
	for _, r := range rows {
		rec := rowRecord{JobID: jobID, Line: r.Line, CustomerID: &r.CustomerID, CustomerRef: r.CustomerRef, Amount: r.Amount,
			BudgetType: text(string(r.BudgetType)), OverspendAction: text(string(r.OverspendAction)), Status: RowPending}
		if r.Thresholds != nil {
			v, _ := r.Thresholds.Value()
			rec.Thresholds = text(v.(string))
		}
		recs = append(recs, rec)
	}
	for _, e := range rejected {
		recs = append(recs, rowRecord{JobID: jobID, Line: e.Line, CustomerRef: e.CustomerRef, Status: RowRejected,
			Code: string(e.Code), Message: e.Reason})
	}
	slices.SortStableFunc(recs, func(a, b rowRecord) int { return a.Line - b.Line })
	for chunk := range slices.Chunk(recs, 1000) {
		if err := tx.DB.Table("bulk_rows").Create(&chunk).Error; err != nil {
			return fmt.Errorf("insert rows of bulk job %d: %w", jobID, err)
		}
	}
	return nil
}

func text(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// fileRejected is the refusal of a file without a valid row: its message
// names the first few rejected rows.
func fileRejected(rejected []RowError) error {
	var b strings.Builder
	b.WriteString("the file has no row that can be applied")
	for i, e := range rejected {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(rejected)-i)
			break
		}
		fmt.Fprintf(&b, "; row %d: %s", e.Line, e.Reason)
	}
	return &FileRejected{Err: apperr.Invalid("file", "%s", b.String()), Rows: rejected}
}
