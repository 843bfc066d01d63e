package spend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"

	"partnerd/credit"
	"partnerd/guard"
	"partnerd/models"
	"partnerd/store"
	"partnerd/vouchers"
)

// The staged path: COPY into a staging table, classify in one statement,
// then one INSERT ... ON CONFLICT DO NOTHING into expenditures with the
// totals. It is safe against concurrent requests storing the same
// externalIds (the insert waits for them and skips what they stored), so
// Ingest replays a request here when the direct path lost that race.

// The staging tables live in the transaction only (ON COMMIT DROP).
const (
	stagingTable = "spend_staging"
	checkedTable = "spend_checked"
	restTable    = "spend_rest"
)

var stagingColumns = []string{"idx", "external_id", "customer_id", "product_code", "region",
	"billing_mode", "usage_at", "month", "list_amount", "actual_amount"}

const createStaging = `CREATE TEMP TABLE ` + stagingTable + ` (
	idx           bigint NOT NULL,
	external_id   text NOT NULL,
	customer_id   bigint NOT NULL,
	product_code  text NOT NULL,
	region        text NOT NULL,
	billing_mode  text NOT NULL,
	usage_at      timestamptz NOT NULL,
	month         int NOT NULL,
	list_amount   numeric(20,6) NOT NULL,
	actual_amount numeric(20,6) NOT NULL
) ON COMMIT DROP`

const createRest = `CREATE TEMP TABLE ` + restTable + ` (LIKE ` + stagingTable + `) ON COMMIT DROP`

const createChecked = `CREATE TEMP TABLE ` + checkedTable + ` (LIKE ` + stagingTable + `,
	owner_id bigint,
	reason   text
) ON COMMIT DROP`

// classify judges every staged record in one statement: the owner at usage
// time (parent history periods made contiguous with lead(), the first one
// stretched back to -infinity; the current parent when there is no history)
// and the reason it is rejected, NULL when it is valid. Parameters: the
// reason texts, the latest acceptable usage time before the last one.
const classify = `INSERT INTO ` + checkedTable + `
WITH cust AS MATERIALIZED (
	SELECT c.customer_id, a.kind, a.parent_id
	FROM (SELECT DISTINCT customer_id FROM ` + stagingTable + `) c
	LEFT JOIN accounts a ON a.id = c.customer_id
), periods AS (
	SELECT h.account_id, h.parent_id,
		CASE WHEN row_number() OVER w = 1 THEN '-infinity'::timestamptz ELSE h.valid_from END AS valid_from,
		coalesce(lead(h.valid_from) OVER w, 'infinity'::timestamptz) AS valid_to
	FROM account_parent_history h
	WHERE h.account_id IN (SELECT customer_id FROM cust WHERE kind IN ('CUSTOMER', 'PERSONAL'))
	WINDOW w AS (PARTITION BY h.account_id ORDER BY h.valid_from, h.id)
), repeated AS (
	SELECT external_id, min(idx) AS first_idx
	FROM ` + stagingTable + `
	GROUP BY external_id
	HAVING count(*) > 1
)
SELECT s.idx, s.external_id, s.customer_id, s.product_code, s.region, s.billing_mode, s.usage_at,
	s.month, s.list_amount, s.actual_amount,
	coalesce(p.parent_id, c.parent_id) AS owner_id,
	CASE
		WHEN r.first_idx IS NOT NULL AND r.first_idx <> s.idx THEN format(?, r.first_idx)
		WHEN c.kind IS NULL THEN ?
		WHEN c.kind NOT IN ('CUSTOMER', 'PERSONAL') THEN format(?, c.kind)
		WHEN s.list_amount < 0 OR s.actual_amount < 0 THEN ?
		WHEN s.actual_amount > s.list_amount THEN ?
		WHEN s.usage_at > ? THEN ?
	END AS reason
FROM ` + stagingTable + ` s
JOIN cust c ON c.customer_id = s.customer_id
LEFT JOIN repeated r ON r.external_id = s.external_id
LEFT JOIN periods p ON p.account_id = s.customer_id AND p.valid_from <= s.usage_at AND s.usage_at < p.valid_to`

// storeValid inserts the valid records (in externalId order, so concurrent
// ingestions of overlapping records wait for each other instead of
// deadlocking), adds what was inserted to the running totals, and keeps the
// valid records that were not inserted — their externalId was already
// stored — for classification. Parameters: received_at, received_at, the
// number of valid records.
const storeValid = `WITH ins AS (
	INSERT INTO expenditures (external_id, customer_id, owner_id, product_code, region, billing_mode,
		usage_at, month, list_amount, actual_amount, received_at, adjustment, tags)
	SELECT c.external_id, c.customer_id, c.owner_id, c.product_code, c.region, c.billing_mode,
		c.usage_at, c.month, c.list_amount, c.actual_amount, ?, ib.owner_id IS NOT NULL, nullif(ta.tags, '{}'::jsonb)
	FROM ` + checkedTable + ` c
	JOIN accounts ta ON ta.id = c.customer_id
	LEFT JOIN issued_bill_months ib ON ib.owner_id = c.owner_id AND ib.month = c.month
	WHERE c.reason IS NULL
	ORDER BY c.external_id COLLATE "C"
	ON CONFLICT (external_id, month) DO NOTHING
	RETURNING external_id, customer_id, owner_id, month, billing_mode, list_amount, actual_amount
), owners AS (
	INSERT INTO owner_spend_totals AS o (owner_id, month, list_total, actual_total, records, last_received_at)
	SELECT owner_id, month, sum(list_amount), sum(actual_amount), count(*), ? FROM ins
	GROUP BY owner_id, month
	ORDER BY owner_id, month
` + addToOwnerTotals + `
), added AS (
	SELECT customer_id, month, sum(list_amount) AS list, sum(actual_amount) AS actual,
		coalesce(sum(list_amount) FILTER (WHERE billing_mode <> 'PAY_PER_USE'), 0) AS prepaid,
		count(*) AS n
	FROM ins
	GROUP BY customer_id, month
), totals AS (
	INSERT INTO spend_totals AS t (customer_id, month, list_total, actual_total, prepaid_list, records, last_received_at)
	SELECT customer_id, month, list, actual, prepaid, n, ? FROM added
	ORDER BY customer_id, month
` + addToCustomerTotals + `
), rest AS (
	INSERT INTO ` + restTable + `
	SELECT c.idx, c.external_id, c.customer_id, c.product_code, c.region, c.billing_mode, c.usage_at,
		c.month, c.list_amount, c.actual_amount
	FROM ` + checkedTable + ` c
	WHERE c.reason IS NULL AND (SELECT count(*) FROM ins) < ?
		AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.external_id = c.external_id)
)
SELECT t.customer_id, t.month, t.list_total, t.actual_total, t.records, a.n AS added
FROM totals t JOIN added a ON a.customer_id = t.customer_id AND a.month = t.month
ORDER BY t.customer_id, t.month`

// compareRest compares each valid record that was not inserted with the
// stored record of its externalId (committed by then, by this request's
// predecessors or a concurrent one) and names the fields that differ; "" is
// a duplicate.
const compareRest = `SELECT r.idx, r.external_id, concat_ws(', ',
		CASE WHEN e.customer_id <> r.customer_id THEN 'customerId' END,
		CASE WHEN e.product_code <> r.product_code THEN 'productCode' END,
		CASE WHEN e.region <> r.region THEN 'region' END,
		CASE WHEN e.billing_mode <> r.billing_mode THEN 'billingMode' END,
		CASE WHEN e.usage_at <> r.usage_at THEN 'usageAt' END,
		CASE WHEN e.list_amount <> r.list_amount THEN 'listAmount' END,
		CASE WHEN e.actual_amount <> r.actual_amount THEN 'actualAmount' END) AS differs
	FROM ` + restTable + ` r JOIN expenditures e ON e.external_id = r.external_id`

// ingestStaged ingests the records of src on the staged path, in tx.
func (s *Service) ingestStaged(ctx context.Context, tx *store.Tx, cp *store.Copier, src Source) (*Result, error) {
	now := tx.Now()
	res := &Result{AsOf: &now}
	if err := tx.DB.Exec(`SET LOCAL statement_timeout = '` + ingestStatementTimeout + `'; SET LOCAL work_mem = '` + ingestWorkMem + `'`).Error; err != nil {
		return nil, err
	}
	if err := tx.DB.Exec(createStaging).Error; err != nil {
		return nil, fmt.Errorf("staging table: %w", err)
	}

	// Stage: COPY pulls the records one at a time from the source.
	timer := s.stepTimer(ctx)
	staged, err := s.stage(ctx, cp, src)
	if err != nil {
		return nil, err
	}
	timer("stage")
	if staged > 0 {
		if err := s.judge(tx, cp, res, staged, now); err != nil {
			return nil, err
		}
	}
	counts := map[string]int{"records": int(staged), "accepted": res.Accepted,
		"duplicates": res.Duplicates, "conflicts": res.Conflicts, "rejected": res.Rejected}
	if err := tx.Audit("expenditures.ingest", 0, nil, counts); err != nil {
		return nil, err
	}
	return res, nil
}

// stage copies src into the staging table and returns how many records it
// held. A malformed record stops the COPY and is returned as is.
func (s *Service) stage(ctx context.Context, cp *store.Copier, src Source) (int64, error) {
	var (
		n      int64
		srcErr error
		row    = make([]any, len(stagingColumns))
	)
	// pgx calls next from a goroutine of its own; CopyFrom returns only after
	// it is done, so n and srcErr are safe to read afterwards.
	next := func() ([]any, error) {
		rec, err := src.Next()
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		if _, checked := src.(checkedSource); err == nil && !checked {
			if msg := checkRecord(&rec); msg != "" {
				err = recordError(n, "%s", msg)
			}
		}
		if err != nil {
			srcErr = err
			return nil, err
		}
		usage := rec.UsageAt.UTC().Truncate(time.Microsecond) // what timestamptz keeps
		row[0], row[1], row[2], row[3], row[4] = n, rec.ExternalID, rec.CustomerID, rec.ProductCode, rec.Region
		row[5], row[6], row[7] = string(rec.BillingMode), usage, int32(models.MonthOf(usage, s.loc).Key())
		row[8], row[9] = numeric(rec.List), numeric(rec.Actual)
		n++
		if n%progressEvery == 0 {
			s.log.InfoContext(ctx, "ingesting expenditures", "request_id", store.RequestID(ctx), "records", n)
		}
		return row, nil
	}
	_, err := cp.CopyFrom(ctx, pgx.Identifier{"pg_temp", stagingTable}, stagingColumns, pgx.CopyFromFunc(next))
	if srcErr != nil {
		return 0, srcErr
	}
	if err != nil {
		return 0, fmt.Errorf("stage expenditures: %w", err)
	}
	return n, nil
}

func numeric(d decimal.Decimal) pgtype.Numeric {
	return pgtype.Numeric{Int: d.Coefficient(), Exp: d.Exponent(), Valid: true}
}

// judge classifies the staged records, stores the valid ones with their
// totals, events and arrears, and fills res.
func (s *Service) judge(tx *store.Tx, cp *store.Copier, res *Result, staged int64, now time.Time) error {
	timer := s.stepTimer(tx.Context())
	valid, rejected, err := s.classify(tx, now)
	if err != nil {
		return err
	}
	res.Rejected = int(staged - valid)
	timer("classify")
	if valid == 0 {
		res.Errors = rejected
		return nil
	}

	touched, err := storeAccepted(tx, valid, now)
	if err != nil {
		return err
	}
	for _, t := range touched {
		res.Accepted += int(t.Added)
	}
	timer("store")

	var conflicts []RecordError
	if rest := valid - int64(res.Accepted); rest > 0 {
		if res.Duplicates, res.Conflicts, conflicts, err = compareStored(tx, rest); err != nil {
			return err
		}
		timer("compare")
	}
	res.Errors = mergeErrors(rejected, conflicts)

	usages, err := storedUsages(tx)
	if err != nil {
		return err
	}
	if err := emitSpendChanged(tx, cp, touched, usages, s.loc); err != nil {
		return err
	}
	timer("events and arrears")
	return nil
}

// classify judges the staged records into the checked table and returns how
// many are valid and the first rejected ones.
func (s *Service) classify(tx *store.Tx, now time.Time) (int64, []RecordError, error) {
	// Temp tables are never analyzed by autovacuum; the joins need the statistics.
	if err := tx.DB.Exec(`ANALYZE ` + stagingTable).Error; err != nil {
		return 0, nil, fmt.Errorf("analyze staging: %w", err)
	}
	if err := tx.DB.Exec(createChecked).Error; err != nil {
		return 0, nil, fmt.Errorf("checked table: %w", err)
	}
	err := tx.DB.Exec(classify, reasonDuplicateInRequest, reasonUnknownCustomer, reasonNotCustomer,
		reasonNegative, reasonActualAboveList, now.Add(futureTolerance), reasonFuture).Error
	if err != nil {
		return 0, nil, fmt.Errorf("classify expenditures: %w", err)
	}
	var counts struct{ Valid, Rejected int64 }
	err = tx.DB.Raw(`SELECT count(*) FILTER (WHERE reason IS NULL) AS valid, count(*) FILTER (WHERE reason IS NOT NULL) AS rejected
		FROM ` + checkedTable).Scan(&counts).Error
	if err != nil {
		return 0, nil, fmt.Errorf("count valid expenditures: %w", err)
	}
	var rejected []RecordError
	if counts.Rejected > 0 {
		err := tx.DB.Raw(`SELECT idx AS index, external_id, reason FROM `+checkedTable+`
			WHERE reason IS NOT NULL ORDER BY idx LIMIT ?`, maxKeptErrors).Scan(&rejected).Error
		if err != nil {
			return 0, nil, fmt.Errorf("list rejected expenditures: %w", err)
		}
	}
	return counts.Valid, rejected, nil
}

// monthTotals is a customer's month after an ingestion: its new running
// totals and how many records this ingestion added.
type monthTotals struct {
	CustomerID  int64
	Month       int
	ListTotal   decimal.Decimal
	ActualTotal decimal.Decimal
	Records     int64
	Added       int64
}

// storeAccepted inserts the valid records and updates the running totals,
// returning the touched months ordered by customer and month.
func storeAccepted(tx *store.Tx, valid int64, now time.Time) ([]monthTotals, error) {
	if err := tx.DB.Exec(createRest).Error; err != nil {
		return nil, fmt.Errorf("rest table: %w", err)
	}
	var touched []monthTotals
	if err := tx.DB.Raw(storeValid, now, now, now, valid).Scan(&touched).Error; err != nil {
		return nil, fmt.Errorf("store expenditures: %w", err)
	}
	return touched, nil
}

// compareStored tells duplicates from conflicts among the rest valid records
// that were not inserted, and returns the first conflicts.
func compareStored(tx *store.Tx, rest int64) (dup, conf int, conflicts []RecordError, err error) {
	var counts struct{ Dup, Conf int64 }
	err = tx.DB.Raw(`SELECT count(*) FILTER (WHERE differs = '') AS dup, count(*) FILTER (WHERE differs <> '') AS conf
		FROM (` + compareRest + `) x`).Scan(&counts).Error
	if err != nil {
		return 0, 0, nil, fmt.Errorf("compare stored expenditures: %w", err)
	}
	if counts.Dup+counts.Conf != rest {
		return 0, 0, nil, fmt.Errorf("compare stored expenditures: %d records were neither inserted nor found stored (%d duplicates, %d conflicts)",
			rest, counts.Dup, counts.Conf)
	}
	if counts.Conf > 0 {
		var rows []struct {
			Idx        int
			ExternalID string
			Differs    string
		}
		err := tx.DB.Raw(`SELECT idx, external_id, differs FROM (`+compareRest+`) x
			WHERE differs <> '' ORDER BY idx LIMIT ?`, maxKeptErrors).Scan(&rows).Error
		if err != nil {
			return 0, 0, nil, fmt.Errorf("list conflicting expenditures: %w", err)
		}
		for _, r := range rows {
			conflicts = append(conflicts, RecordError{Index: r.Idx, ExternalID: r.ExternalID, Reason: fmt.Sprintf(reasonConflict, r.Differs)})
		}
	}
	return int(counts.Dup), int(counts.Conf), conflicts, nil
}

// storedUsages returns the records the staged path just stored for
// customers with live vouchers, for vouchers.Redeem: those of the checked
// table that are valid and whose stored row this transaction wrote.
func storedUsages(tx *store.Tx) ([]vouchers.Usage, error) {
	var out []vouchers.Usage
	err := tx.DB.Raw(`SELECT e.external_id, e.customer_id, e.owner_id, e.product_code, e.billing_mode, e.usage_at, e.month, e.actual_amount AS actual
		FROM ` + checkedTable + ` c JOIN accounts a ON a.id = c.customer_id
		JOIN expenditures e ON e.external_id = c.external_id AND e.xmin = pg_current_xact_id()::xid
		WHERE c.reason IS NULL AND ` + vouchers.LiveCustomersSQL).Scan(&out).Error
	if err != nil {
		return nil, fmt.Errorf("load records for vouchers: %w", err)
	}
	return out, nil
}

// emitSpendChanged lets the customers' vouchers pay for the stored records
// (vouchers.Redeem), emits CustomerSpendChanged for each touched customer
// month (ordered by customer and month) and re-evaluates those customers'
// arrears (credit.UpdateArrears emits ArrearsChanged when one flips, and
// syncs their purchase guards), then flags the budgets that now owe an alert
// or the overspend action (guard.Flag).
func emitSpendChanged(tx *store.Tx, cp *store.Copier, touched []monthTotals, usages []vouchers.Usage, loc *time.Location) error {
	if err := vouchers.Redeem(tx, cp, usages); err != nil {
		return err
	}
	customers := make([]int64, 0, len(touched))
	evs := make([]store.Event, 0, len(touched))
	for i, t := range touched {
		m := models.MonthOfKey(t.Month)
		evs = append(evs, CustomerSpendChanged{CustomerID: t.CustomerID, Month: m.String(),
			List: models.FormatDecimal(t.ListTotal), Actual: models.FormatDecimal(t.ActualTotal), Records: t.Records})
		if i == 0 || touched[i-1].CustomerID != t.CustomerID {
			customers = append(customers, t.CustomerID)
		}
	}
	if err := tx.Emit(evs...); err != nil {
		return err
	}
	if err := credit.UpdateArrears(tx, customers, loc); err != nil {
		return err
	}
	return guard.Flag(tx, loc, customers...)
}
