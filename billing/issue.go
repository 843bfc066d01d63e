package billing

import (
	"context"
	"fmt"
	"time"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/store"
)

// IssuePartnerBill issues DRAFT bill id after regenerating it, so it holds
// every record received until now; from then on it never changes. The
// party the bill settles with issues it — a platform ADMIN or FINANCE user
// for a tier-1 partner's bill, the distributor's for a second-level
// reseller's — and the platform may issue any. Issuing an ISSUED bill is a
// CONFLICT.
func (s *Service) IssuePartnerBill(ctx context.Context, id int64) (*PartnerBill, error) {
	var out *PartnerBill
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		// The month's run lock before the bill's row lock, in the order a
		// bill run takes them, so an issue and a run never deadlock.
		var month int
		if err := tx.DB.Raw(`SELECT month FROM partner_bills WHERE id = ?`, id).Scan(&month).Error; err != nil {
			return fmt.Errorf("read partner bill %d: %w", id, err)
		}
		if err := lockRun(tx, month); err != nil {
			return err
		}
		b, sc, err := s.lockBill(tx, id)
		if err != nil {
			return err
		}
		p := sc.Principal()
		if !p.System && !p.IsPlatform() && p.AccountID != b.SettlesWithID {
			return apperr.Forbiddenf("the bill is issued by the party it settles with")
		}
		if err := sc.Require(accounts.PermFinance); err != nil {
			return err
		}
		if b.Status == StatusIssued {
			return apperr.Conflictf("the bill is already issued")
		}
		issued, err := s.issue(tx, b.Month, []int64{b.PartnerID})
		if err != nil {
			return err
		}
		if len(issued) == 1 {
			out = &issued[0]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// lockBill locks bill id if the caller may see it, else NOT_FOUND.
func (s *Service) lockBill(tx *store.Tx, id int64) (*PartnerBill, accounts.Scope, error) {
	sc, err := accounts.ScopeOf(tx.Context())
	if err != nil {
		return nil, sc, err
	}
	var b PartnerBill
	if err := tx.DB.Raw(`SELECT * FROM partner_bills WHERE id = ? FOR UPDATE`, id).Scan(&b).Error; err != nil {
		return nil, sc, fmt.Errorf("lock partner bill %d: %w", id, err)
	}
	if b.ID == 0 {
		return nil, sc, accounts.NotFound("partner bill")
	}
	if ok, err := s.partnerVisible(tx.DB, sc, b.PartnerID); err != nil || !ok {
		if err == nil {
			err = accounts.NotFound("partner bill")
		}
		return nil, sc, err
	}
	return &b, sc, nil
}

// issue regenerates the DRAFT bills of month m (of partners, or all) and
// issues them: status, the issued months the ingestion marks late records
// by, the incentives earned, the audit entries and the notifications, in
// tx. It returns the bills it issued.
func (s *Service) issue(tx *store.Tx, m int, partners []int64) ([]PartnerBill, error) {
	if _, err := s.run(tx, m, partners); err != nil {
		return nil, err
	}
	by := store.ActorFrom(tx.Context()).Label
	q := `UPDATE partner_bills SET status = 'ISSUED', issued_at = ?, issued_by = ? WHERE month = ? AND status = 'DRAFT'`
	args := []any{tx.Now(), by, m}
	if partners != nil {
		q += ` AND partner_id = ANY(?)`
		args = append(args, store.Int64Array(partners))
	}
	var issued []PartnerBill
	if err := tx.DB.Raw(q+` RETURNING *`, args...).Scan(&issued).Error; err != nil {
		return nil, fmt.Errorf("issue the bills of %d: %w", m, err)
	}
	if partners == nil {
		if err := tx.DB.Exec(`UPDATE bill_runs SET issued_at = ? WHERE month = ?`, tx.Now(), m).Error; err != nil {
			return nil, fmt.Errorf("record the issue of %d: %w", m, err)
		}
	}
	if len(issued) == 0 {
		return nil, nil
	}
	billIDs := make([]int64, len(issued))
	for i, b := range issued {
		billIDs[i] = b.ID
	}
	err := tx.DB.Exec(`INSERT INTO issued_bill_months (owner_id, month, issued_at)
		SELECT partner_id, month, issued_at FROM partner_bills WHERE id = ANY(?) ON CONFLICT DO NOTHING`, store.Int64Array(billIDs)).Error
	if err != nil {
		return nil, fmt.Errorf("record the issued months of %d: %w", m, err)
	}
	if err := s.earnIncentives(tx, billIDs); err != nil {
		return nil, err
	}
	month := models.MonthOfKey(m).String()
	for _, b := range issued {
		if err := tx.Audit("billing.bill_issued", b.PartnerID, nil, map[string]any{"bill": b.ID, "month": month,
			"listTotal": b.ListTotal.String(), "actualTotal": b.ActualTotal.String(), "voucherTotal": b.VoucherTotal.String()}); err != nil {
			return nil, err
		}
		if err := tx.Emit(notify.BillIssued{BillID: b.ID, PartnerID: b.PartnerID, SettlesWithID: b.SettlesWithID, Month: month,
			ListTotal: b.ListTotal.StringFixed(2), ActualTotal: b.ActualTotal.StringFixed(2),
			Adjustments: b.AdjustmentActual.StringFixed(2), URL: s.url + "/bills/" + b.GlobalID()}); err != nil {
			return nil, err
		}
	}
	return issued, nil
}

// Schedule is when the bill run happens (DOMAIN.md §5): the previous
// month's bills are generated from RunDay at RunHour (Beijing time), retried
// every hour until they are, and issued on IssueDay at 00:00 at the latest.
type Schedule struct {
	RunDay   int
	RunHour  int
	IssueDay int
}

// DefaultSchedule generates on the 1st at 02:00 and issues on the 5th.
func DefaultSchedule() Schedule { return Schedule{RunDay: 1, RunHour: 2, IssueDay: 5} }

// Validate checks the schedule's days and hour.
func (sc Schedule) Validate() error {
	if sc.RunDay < 1 || sc.RunDay > 28 || sc.IssueDay < 1 || sc.IssueDay > 28 || sc.RunHour < 0 || sc.RunHour > 23 {
		return fmt.Errorf("bill schedule: days are 1..28 and the hour 0..23 (got run day %d, hour %d, issue day %d)", sc.RunDay, sc.RunHour, sc.IssueDay)
	}
	if sc.IssueDay < sc.RunDay {
		return fmt.Errorf("bill schedule: the issue day %d is before the run day %d", sc.IssueDay, sc.RunDay)
	}
	return nil
}

// TickResult says what a scheduled tick did.
type TickResult struct {
	Month     models.Month
	Generated int
	Issued    int
}

// Tick does what the schedule asks at the store clock's now, for the
// previous month: nothing before RunDay/RunHour; generate the bills if the
// month's run has not completed; on IssueDay or later, issue what is still
// DRAFT. It is safe to run twice and from several workers (runs of a month
// take turns, and an issued bill is never issued again).
func (s *Service) Tick(ctx context.Context, sched Schedule) (TickResult, error) {
	ctx = accounts.SystemContext(ctx)
	now := s.st.Now().In(s.loc)
	prev := models.MonthOf(now, s.loc).Prev()
	res := TickResult{Month: prev}
	m := prev.Key()
	runAt := time.Date(now.Year(), now.Month(), sched.RunDay, sched.RunHour, 0, 0, 0, s.loc)
	issueAt := time.Date(now.Year(), now.Month(), sched.IssueDay, 0, 0, 0, 0, s.loc)
	if now.Before(runAt) && now.Before(issueAt) {
		return res, nil
	}
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var run struct {
			Month    int
			IssuedAt *time.Time
		}
		if err := tx.DB.Raw(`SELECT month, issued_at FROM bill_runs WHERE month = ?`, m).Scan(&run).Error; err != nil {
			return fmt.Errorf("read the bill run of %s: %w", prev, err)
		}
		if !now.Before(issueAt) {
			var drafts int64
			if err := tx.DB.Raw(`SELECT count(*) FROM partner_bills WHERE month = ? AND status = 'DRAFT'`, m).Scan(&drafts).Error; err != nil {
				return fmt.Errorf("count the drafts of %s: %w", prev, err)
			}
			if run.IssuedAt != nil && drafts == 0 {
				return nil
			}
			issued, err := s.issue(tx, m, nil)
			res.Issued = len(issued)
			return err
		}
		if run.Month != 0 {
			return nil
		}
		var err error
		res.Generated, err = s.run(tx, m, nil)
		return err
	})
	if err != nil {
		return res, fmt.Errorf("bill run of %s: %w", prev, err)
	}
	if res.Generated > 0 || res.Issued > 0 {
		s.log.Info("bill run", "month", prev.String(), "generated", res.Generated, "issued", res.Issued)
	}
	return res, nil
}

// IssueMonth regenerates and issues every DRAFT partner bill of month, as
// the schedule does on the issue day, and returns how many it issued.
// Platform ADMIN only.
func (s *Service) IssueMonth(ctx context.Context, month models.Month) (int, error) {
	if err := requirePlatformAdmin(ctx); err != nil {
		return 0, err
	}
	if err := s.checkClosed(month); err != nil {
		return 0, err
	}
	var n int
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		issued, err := s.issue(tx, month.Key(), nil)
		n = len(issued)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("issue the partner bills of %s: %w", month, err)
	}
	return n, nil
}
