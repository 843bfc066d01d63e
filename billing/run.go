package billing

import (
	"context"
	"fmt"

	"partnerd/accounts"
	"partnerd/apperr"
	"partnerd/models"
	"partnerd/store"
)

// billRunLock is the advisory lock class of bill runs: runs of one month
// (by any scheduler, worker or caller) take turns.
const billRunLock = 7201

// lockRun takes month m's bill run lock (runs and issues of a month take
// turns) and, shared, the policies' lock (a policy is not created while a
// run computes incentives under the one in force). Taken again in the same
// transaction it is a no-op.
func lockRun(tx *store.Tx, m int) error {
	if err := tx.DB.Exec(`SELECT pg_advisory_xact_lock_shared(?, 0), pg_advisory_xact_lock(?, ?)`, billRunLock, billRunLock, m).Error; err != nil {
		return fmt.Errorf("lock the bill run of %d: %w", m, err)
	}
	return nil
}

// billOwners relates each partner to the owners whose records its bill
// holds: itself, and for a tier-1 distributor its second-level resellers
// (a distributor settles with the platform for its whole subtree).
const billOwners = `(SELECT a.id AS partner_id, a.id AS owner_id FROM accounts a WHERE a.kind IN ('DISTRIBUTOR','RESELLER')
	UNION ALL
	SELECT r.parent_id, r.id FROM accounts r JOIN accounts d ON d.id = r.parent_id
	WHERE r.kind IN ('DISTRIBUTOR','RESELLER') AND d.kind IN ('DISTRIBUTOR','RESELLER'))`

// GeneratePartnerBills generates the partner bills of month, or regenerates
// those still DRAFT, and returns how many DRAFT bills it wrote (issued bills
// never change). Platform ADMIN only. Generation is idempotent: with the
// same records, running it again gives the same bills.
func (s *Service) GeneratePartnerBills(ctx context.Context, month models.Month) (int, error) {
	if err := requirePlatformAdmin(ctx); err != nil {
		return 0, err
	}
	if err := s.checkClosed(month); err != nil {
		return 0, err
	}
	var n int
	err := s.st.InTx(ctx, func(tx *store.Tx) error {
		var err error
		if n, err = s.run(tx, month.Key(), nil); err != nil {
			return err
		}
		return tx.Audit("billing.bills_generated", 0, nil, map[string]any{"month": month.String(), "bills": n})
	})
	if err != nil {
		return 0, fmt.Errorf("generate partner bills of %s: %w", month, err)
	}
	return n, nil
}

// requirePlatformAdmin fails unless the caller is the system or a platform
// ADMIN.
func requirePlatformAdmin(ctx context.Context) error {
	p, ok := accounts.PrincipalFrom(ctx)
	if !ok {
		return accounts.ErrUnauthenticated
	}
	if p.System || (p.IsPlatform() && p.Has(models.RoleAdmin)) {
		return nil
	}
	return apperr.Forbiddenf("only a platform ADMIN may do this")
}

// checkClosed refuses a month that has not ended yet (in the billing zone).
func (s *Service) checkClosed(m models.Month) error {
	if m.Year < 2000 || m.Year > 9999 {
		return apperr.Invalid("month", "%s is out of range", m)
	}
	if cur := s.CurrentMonth(); m.Key() >= cur.Key() {
		return apperr.Invalid("month", "%s has not ended yet (the current month is %s): bills are made for past months", m, cur)
	}
	return nil
}

// run (re)generates the DRAFT bills of month m — of every partner, or of
// partners only — in tx, and returns how many it wrote:
//
//  1. a bill for every partner that existed before the month ended or
//     holds records of it;
//  2. the lines of the month: one GROUP BY over the month's records of
//     (owner, customer, product), each row going to its owner's bill and,
//     for a second-level reseller, also to its distributor's; then what
//     vouchers paid of each line, from the month's redemptions;
//  3. adjustment lines: for each issued earlier month whose records no
//     longer add up to what was billed of it, the difference per line
//     (vouchers included);
//  4. the totals, and the incentive of each tier-1 partner's bill.
func (s *Service) run(tx *store.Tx, m int, partners []int64) (int, error) {
	db := tx.DB
	if err := lockRun(tx, m); err != nil {
		return 0, err
	}
	// A month of records is a long statement: the run has its own bound
	// instead of the connections' default.
	if err := db.Exec(`SET LOCAL statement_timeout = '1h'`).Error; err != nil {
		return 0, fmt.Errorf("bound the bill run of %d: %w", m, err)
	}
	now := tx.Now()
	end := models.MonthOfKey(m).End(s.loc)
	subset, args := "", []any{}
	if partners != nil {
		subset, args = " AND partner_id = ANY(?)", []any{store.Int64Array(partners)}
	}
	// The run's (partner, owner) pairs, read from the tree once.
	if err := tempTable(tx, "bill_run_owners", `SELECT partner_id, owner_id FROM `+billOwners+` o WHERE true`+subset, args...); err != nil {
		return 0, fmt.Errorf("list the owners of the bill run of %d: %w", m, err)
	}
	create := `INSERT INTO partner_bills (partner_id, settles_with_id, month, generated_at)
		SELECT a.id, a.parent_id, ?, ? FROM accounts a
		WHERE a.kind IN ('DISTRIBUTOR','RESELLER') AND a.parent_id IS NOT NULL
		AND (a.created_at < ? OR a.id IN (SELECT o.partner_id FROM owner_spend_totals t JOIN bill_run_owners o ON o.owner_id = t.owner_id WHERE t.month = ?))`
	if partners != nil {
		create += ` AND a.id = ANY(?)`
	}
	if err := db.Exec(create+` ON CONFLICT (partner_id, month) DO NOTHING`, append([]any{m, now, end, m}, args...)...).Error; err != nil {
		return 0, fmt.Errorf("create the bills of %d: %w", m, err)
	}
	drafts := `SELECT id FROM partner_bills WHERE month = ? AND status = 'DRAFT'` + subset
	draftArgs := append([]any{m}, args...)
	if err := db.Exec(`DELETE FROM partner_bill_lines WHERE bill_id IN (`+drafts+`)`, draftArgs...).Error; err != nil {
		return 0, fmt.Errorf("clear the draft lines of %d: %w", m, err)
	}
	if err := db.Exec(`DELETE FROM partner_bill_adjustments WHERE bill_id IN (`+drafts+`)`, draftArgs...).Error; err != nil {
		return 0, fmt.Errorf("clear the draft adjustments of %d: %w", m, err)
	}
	res := db.Exec(`UPDATE partner_bills SET list_total = 0, actual_total = 0, adjustment_list = 0, adjustment_actual = 0,
		voucher_total = 0, records = 0, generated_at = ? WHERE month = ? AND status = 'DRAFT'`+subset, append([]any{now, m}, args...)...)
	if res.Error != nil {
		return 0, fmt.Errorf("reset the draft totals of %d: %w", m, res.Error)
	}
	n := int(res.RowsAffected)
	if n == 0 {
		return 0, s.recordRun(tx, m, partners, 0)
	}
	if err := s.monthLines(tx, m, subset, args); err != nil {
		return 0, err
	}
	if err := s.adjustments(tx, m, subset, args); err != nil {
		return 0, err
	}
	if err := s.computeIncentives(tx, m, subset, args); err != nil {
		return 0, err
	}
	return n, s.recordRun(tx, m, partners, n)
}

// monthLines writes the lines of month m into its DRAFT bills and adds
// them to the bills' totals, reading the month's records once: the GROUP BY
// goes into a temporary table first (a statement that only reads can use
// parallel workers; the INSERT of the lines cannot), then each group goes
// to the bills of its owner. What vouchers paid is filled in afterwards
// (monthVouchers), from the far smaller redemptions table.
func (s *Service) monthLines(tx *store.Tx, m int, subset string, args []any) error {
	filter := ""
	if subset != "" {
		filter = ` AND owner_id IN (SELECT owner_id FROM bill_run_owners)`
	}
	if err := tempTable(tx, "bill_run_lines", `SELECT owner_id, customer_id, product_code,
			sum(list_amount) AS l, sum(actual_amount) AS a, count(*) AS n
		FROM expenditures WHERE month = ?`+filter+` GROUP BY owner_id, customer_id, product_code`, m); err != nil {
		return fmt.Errorf("sum the records of %d: %w", m, err)
	}
	err := tx.DB.Exec(`WITH ins AS (
			INSERT INTO partner_bill_lines (bill_id, for_month, owner_id, customer_id, product_code, list, actual, records)
			SELECT b.id, ?, g.owner_id, g.customer_id, g.product_code, g.l, g.a, g.n
			FROM bill_run_lines g JOIN bill_run_owners o ON o.owner_id = g.owner_id
			JOIN partner_bills b ON b.partner_id = o.partner_id AND b.month = ? AND b.status = 'DRAFT'
			RETURNING bill_id, list, actual, records
		)
		UPDATE partner_bills b SET list_total = s.l, actual_total = s.a, records = s.n
		FROM (SELECT bill_id, sum(list) AS l, sum(actual) AS a, sum(records) AS n FROM ins GROUP BY bill_id) s
		WHERE b.id = s.bill_id`, m, m).Error
	if err != nil {
		return fmt.Errorf("write the lines of %d: %w", m, err)
	}
	return s.monthVouchers(tx, m)
}

// monthVouchers sets, on the lines of month m just written into the DRAFT
// bills, what vouchers paid of their records, and the bills' voucher
// totals. A redemption carries its record's owner, customer, product and
// month, so the month's redemptions summed per (owner, customer, product)
// are the lines' vouchers, without reading the records again. A month
// without redemptions costs one index probe.
func (s *Service) monthVouchers(tx *store.Tx, m int) error {
	var redeemed bool
	if err := tx.DB.Raw(`SELECT EXISTS (SELECT 1 FROM voucher_redemptions WHERE month = ?)`, m).Scan(&redeemed).Error; err != nil {
		return fmt.Errorf("look for the voucher redemptions of %d: %w", m, err)
	}
	if !redeemed {
		return nil
	}
	err := tx.DB.Exec(`WITH v AS (
			SELECT owner_id, customer_id, product_code, sum(amount) AS v FROM voucher_redemptions
			WHERE month = ? AND owner_id IN (SELECT owner_id FROM bill_run_owners)
			GROUP BY owner_id, customer_id, product_code
		), up AS (
			UPDATE partner_bill_lines l SET voucher = v.v
			FROM v JOIN bill_run_owners o ON o.owner_id = v.owner_id
			JOIN partner_bills b ON b.partner_id = o.partner_id AND b.month = ? AND b.status = 'DRAFT'
			WHERE l.bill_id = b.id AND l.for_month = ? AND l.owner_id = v.owner_id AND l.customer_id = v.customer_id
				AND l.product_code = v.product_code
			RETURNING l.bill_id, l.voucher
		)
		UPDATE partner_bills b SET voucher_total = s.v
		FROM (SELECT bill_id, sum(voucher) AS v FROM up GROUP BY bill_id) s
		WHERE b.id = s.bill_id`, m, m, m).Error
	if err != nil {
		return fmt.Errorf("write the vouchers of the lines of %d: %w", m, err)
	}
	return nil
}

// tempTable creates the temporary table name (dropped at commit) from the
// query, and analyzes it so the statements that join it plan well.
func tempTable(tx *store.Tx, name, query string, args ...any) error {
	if err := tx.DB.Exec(`DROP TABLE IF EXISTS ` + name).Error; err != nil {
		return err
	}
	if err := tx.DB.Exec(`CREATE TEMP TABLE `+name+` ON COMMIT DROP AS `+query, args...).Error; err != nil {
		return err
	}
	return tx.DB.Exec(`ANALYZE ` + name).Error
}

// adjustments writes, into each DRAFT bill of month m, the records of
// earlier issued months that arrived after their bill: for every issued
// month of the partner whose record count no longer matches what its
// issued bills hold of it, the difference per (owner, customer, product),
// what vouchers paid included (a record's redemptions are stored with it,
// so they never change without its line's count).
// A month waiting behind a later DRAFT bill of the partner is left to that
// bill (which is issued first), so nothing is billed twice.
func (s *Service) adjustments(tx *store.Tx, m int, subset string, args []any) error {
	type gap struct {
		BillID    int64
		PartnerID int64
		Month     int
	}
	var gaps []gap
	q := `WITH o AS (SELECT * FROM bill_run_owners),
		drafts AS (SELECT id, partner_id FROM partner_bills WHERE month = ? AND status = 'DRAFT'` + subset + `),
		cur AS (SELECT o.partner_id, t.month, sum(t.records) AS n FROM owner_spend_totals t
			JOIN o ON o.owner_id = t.owner_id JOIN drafts d ON d.partner_id = o.partner_id
			WHERE t.month < ? GROUP BY o.partner_id, t.month),
		billed AS (SELECT partner_id, month, sum(n) AS n FROM (
			SELECT b.partner_id, b.month, b.records AS n FROM partner_bills b JOIN drafts d ON d.partner_id = b.partner_id
			WHERE b.status = 'ISSUED' AND b.month < ?
			UNION ALL
			SELECT b.partner_id, a.for_month, a.records FROM partner_bill_adjustments a
			JOIN partner_bills b ON b.id = a.bill_id JOIN drafts d ON d.partner_id = b.partner_id
			WHERE b.status = 'ISSUED') x GROUP BY partner_id, month)
		SELECT d.id AS bill_id, d.partner_id, cur.month FROM cur
		JOIN drafts d ON d.partner_id = cur.partner_id
		JOIN partner_bills i ON i.partner_id = cur.partner_id AND i.month = cur.month AND i.status = 'ISSUED'
		LEFT JOIN billed bs ON bs.partner_id = cur.partner_id AND bs.month = cur.month
		WHERE cur.n <> coalesce(bs.n, 0)
		  AND NOT EXISTS (SELECT 1 FROM partner_bills x WHERE x.partner_id = cur.partner_id AND x.status = 'DRAFT'
			AND x.month > cur.month AND x.month < ?)
		ORDER BY d.id, cur.month`
	if err := tx.DB.Raw(q, append(append([]any{m}, args...), m, m, m)...).Scan(&gaps).Error; err != nil {
		return fmt.Errorf("find late records before %d: %w", m, err)
	}
	for _, g := range gaps {
		err := tx.DB.Exec(`INSERT INTO partner_bill_lines (bill_id, for_month, owner_id, customer_id, product_code, list, actual, records, voucher)
			SELECT ?, ?, c.owner_id, c.customer_id, c.product_code, c.l - coalesce(p.l, 0), c.a - coalesce(p.a, 0), c.n - coalesce(p.n, 0),
				coalesce(v.v, 0) - coalesce(p.v, 0)
			FROM (SELECT owner_id, customer_id, product_code, sum(list_amount) AS l, sum(actual_amount) AS a, count(*) AS n
				FROM expenditures WHERE month = ? AND owner_id IN (SELECT owner_id FROM bill_run_owners WHERE partner_id = ?)
				GROUP BY owner_id, customer_id, product_code) c
			LEFT JOIN (SELECT l.owner_id, l.customer_id, l.product_code, sum(l.list) AS l, sum(l.actual) AS a, sum(l.records) AS n,
					sum(l.voucher) AS v
				FROM partner_bill_lines l JOIN partner_bills b ON b.id = l.bill_id
				WHERE b.partner_id = ? AND b.status = 'ISSUED' AND l.for_month = ?
				GROUP BY l.owner_id, l.customer_id, l.product_code) p
			ON p.owner_id = c.owner_id AND p.customer_id = c.customer_id AND p.product_code = c.product_code
			LEFT JOIN (SELECT owner_id, customer_id, product_code, sum(amount) AS v
				FROM voucher_redemptions WHERE month = ? AND owner_id IN (SELECT owner_id FROM bill_run_owners WHERE partner_id = ?)
				GROUP BY owner_id, customer_id, product_code) v
			ON v.owner_id = c.owner_id AND v.customer_id = c.customer_id AND v.product_code = c.product_code
			WHERE c.n <> coalesce(p.n, 0)`, g.BillID, g.Month, g.Month, g.PartnerID, g.PartnerID, g.Month, g.Month, g.PartnerID).Error
		if err != nil {
			return fmt.Errorf("write the adjustments of bill %d for %d: %w", g.BillID, g.Month, err)
		}
		err = tx.DB.Exec(`WITH a AS (
				INSERT INTO partner_bill_adjustments (bill_id, for_month, list, actual, records, voucher)
				SELECT bill_id, for_month, sum(list), sum(actual), sum(records), sum(voucher) FROM partner_bill_lines
				WHERE bill_id = ? AND for_month = ? GROUP BY bill_id, for_month
				RETURNING bill_id, list, actual, voucher)
			UPDATE partner_bills b SET list_total = b.list_total + a.list, actual_total = b.actual_total + a.actual,
				adjustment_list = b.adjustment_list + a.list, adjustment_actual = b.adjustment_actual + a.actual,
				voucher_total = b.voucher_total + a.voucher
			FROM a WHERE b.id = a.bill_id`, g.BillID, g.Month).Error
		if err != nil {
			return fmt.Errorf("sum the adjustments of bill %d for %d: %w", g.BillID, g.Month, err)
		}
	}
	return nil
}

// recordRun notes that the whole month's run completed (a run over some
// partners only does not count), keeping the count of bills of the last
// run that wrote any.
func (s *Service) recordRun(tx *store.Tx, m int, partners []int64, n int) error {
	if partners != nil {
		return nil
	}
	err := tx.DB.Exec(`INSERT INTO bill_runs (month, generated_at, bills) VALUES (?, ?, ?)
		ON CONFLICT (month) DO UPDATE SET generated_at = EXCLUDED.generated_at,
			bills = CASE WHEN EXCLUDED.bills > 0 THEN EXCLUDED.bills ELSE bill_runs.bills END`, m, tx.Now(), n).Error
	if err != nil {
		return fmt.Errorf("record the bill run of %d: %w", m, err)
	}
	return nil
}
