package spend

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/shopspring/decimal"

	"partnerd/models"
	"partnerd/store"
	"partnerd/vouchers"
)

// The direct path: every record is judged in Go and the new valid ones are
// copied straight into expenditures, each row written once. It is
// optimistic: a record another request stores between this one's check and
// its COPY makes the COPY fail, and Ingest replays the request through the
// staged path (see staged.go), which is safe against that race.

// errRaced says that a concurrent request stored some of this request's
// externalIds while it was being written (or that the two deadlocked): the
// transaction must be rolled back and the request replayed on the staged
// path.
var errRaced = errors.New("a concurrent request stored the same externalIds")

// expendituresColumns are the columns the direct path copies.
var expendituresColumns = []string{"external_id", "customer_id", "owner_id", "product_code", "region",
	"billing_mode", "usage_at", "month", "list_amount", "actual_amount", "received_at", "adjustment", "tags"}

// verdict is what the direct path decided about one record.
type verdict uint8

const (
	vNew verdict = iota // valid and not stored: copy it
	vRepeated
	vUnknownCustomer
	vNotCustomer
	vNegative
	vAboveList
	vFuture
	vDuplicate
	vConflict
	vPending // valid so far; its externalId is still to be looked up
)

// judgement is the direct path's working state for one record of a batch.
type judgement struct {
	verdict verdict
	first   int64  // vRepeated: the index of the first occurrence
	differs string // vConflict: the fields that differ
	usage   time.Time
	month   int32
	owner   int64
	list    amount
	actual  amount
	// adjustment: the owner's bill of the month is issued.
	adjustment bool
	// tags are the customer's tags, copied onto the record.
	tags json.RawMessage
}

// customerMonth and ownerMonth key the running totals.
type customerMonth struct {
	customer int64
	month    int32
}

type ownerMonth struct {
	owner int64
	month int32
}

type customerSums struct {
	list, actual, prepaid sum
	n                     int64
}

type ownerSums struct {
	list, actual sum
	n            int64
}

// customer is what the direct path knows of a customer id: its kind ("" for
// no account), its current parent and its parent history.
type customer struct {
	kind    models.AccountKind
	parent  int64
	periods []ownerPeriod
	// tags are the customer's tags as JSON, copied onto its records; nil
	// when it has none.
	tags json.RawMessage
	// vouchers: the customer holds a live voucher, so its records are
	// collected for vouchers.Redeem.
	vouchers bool
}

// ownerPeriod is one row of account_parent_history: from is when the
// parent became the owner.
type ownerPeriod struct {
	from  time.Time
	owner int64
}

// ownerAt is the partner that owned the customer at t: the history row in
// force then (rows ordered by valid_from and id; each lasts until the next
// one starts, the first also covers everything before it), or the current
// parent when there is no history. It is the classify statement's rule.
func (c *customer) ownerAt(t time.Time) int64 {
	if len(c.periods) == 0 {
		return c.parent
	}
	i := sort.Search(len(c.periods), func(i int) bool { return c.periods[i].from.After(t) })
	if i == 0 {
		return c.periods[0].owner
	}
	return c.periods[i-1].owner
}

// direct is one request on the direct path.
type direct struct {
	s      *Service
	tx     *store.Tx
	cp     *store.Copier
	now    time.Time
	latest time.Time // usage after this is in the future
	res    *Result
	n      int64 // records read

	// seen maps every externalId of the request to the index of its first
	// occurrence: it tells a repeat and names the first one.
	seen *idSet
	// lo and hi bound the externalIds copied so far (see lookUpStored).
	lo, hi    string
	customers map[int64]*customer
	issued    map[ownerMonth]bool
	totals    map[customerMonth]*customerSums
	owners    map[ownerMonth]*ownerSums
	// usages are the accepted records of customers with live vouchers.
	usages []vouchers.Usage

	// look is a connection of its own for the reads of the next batch
	// (customers, issued months, stored externalIds), so they overlap the
	// COPY of this one; nil when the pool had none to spare, and then they
	// run on the transaction's connection between the COPYs.
	look *sql.Conn
	row  []any

	mu    sync.Mutex
	steps map[string]time.Duration
}

// ingestDirect ingests the batches of f on the direct path, in tx.
func (s *Service) ingestDirect(ctx context.Context, tx *store.Tx, cp *store.Copier, f *feed) (*Result, error) {
	now := tx.Now()
	d := &direct{s: s, tx: tx, cp: cp, now: now, latest: now.Add(futureTolerance).Truncate(time.Microsecond),
		res: &Result{AsOf: &now}, seen: newIDSet(), customers: map[int64]*customer{},
		issued: map[ownerMonth]bool{}, totals: map[customerMonth]*customerSums{}, owners: map[ownerMonth]*ownerSums{},
		row: make([]any, len(expendituresColumns)), steps: map[string]time.Duration{}}
	if err := tx.DB.Exec(`SET LOCAL statement_timeout = '` + ingestStatementTimeout + `'`).Error; err != nil {
		return nil, err
	}
	// Waiting for a spare connection is bounded, so ingestions holding their
	// transaction's connection can never all wait for a second one.
	lctx, cancel := context.WithTimeout(ctx, lookConnWait)
	look, err := s.st.SQL.Conn(lctx)
	cancel()
	if err == nil {
		d.look = look
		defer func() { _ = look.Close() }()
	}

	// Prepare batch k+1 while batch k is copied.
	cur, err := d.next(ctx, f)
	for cur != nil && err == nil {
		var next *batch
		var nerr error
		var wg sync.WaitGroup
		if d.look != nil {
			wg.Go(func() { next, nerr = d.next(ctx, f) })
		}
		err = d.copy(ctx, cur)
		wg.Wait()
		f.recycle(cur)
		if err == nil && d.look == nil {
			next, nerr = d.next(ctx, f)
		}
		if err == nil {
			err = nerr
		}
		if err != nil && next != nil {
			f.recycle(next)
		}
		cur = next
	}
	if err != nil {
		return nil, err
	}
	<-f.done
	if f.err != nil {
		return nil, f.err
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	counts := map[string]int{"records": int(d.n), "accepted": d.res.Accepted,
		"duplicates": d.res.Duplicates, "conflicts": d.res.Conflicts, "rejected": d.res.Rejected}
	if err := tx.Audit("expenditures.ingest", 0, nil, counts); err != nil {
		return nil, err
	}
	s.log.DebugContext(ctx, "ingest steps", "path", "direct", "steps", fmt.Sprint(d.steps))
	return d.res, nil
}

// raced tells a failure the staged path resolves: the unique key on
// (external_id, month) hit by a concurrent request's committed row, or a
// deadlock with it. The error names the key's index in the month's
// partition (expenditures_pYYYYMM_external_id_month_key), or the parent's
// constraint.
func raced(err error) error {
	c := store.PgConstraint(err)
	external := c == "expenditures_external_key" || (strings.HasPrefix(c, "expenditures_") && strings.HasSuffix(c, "_external_id_month_key"))
	if (store.PgCode(err) == "23505" && external) || store.IsRetryable(err) {
		return fmt.Errorf("%w: %w", errRaced, err)
	}
	return err
}

func (d *direct) step(name string, t0 time.Time) {
	d.mu.Lock()
	d.steps[name] += time.Since(t0)
	d.mu.Unlock()
}

// next returns the next batch of the feed, judged, or nil after the last.
func (d *direct) next(ctx context.Context, f *feed) (*batch, error) {
	t0 := time.Now()
	b := f.next()
	d.step("wait for records", t0)
	if b == nil {
		return nil, nil
	}
	if err := d.prepare(ctx, b); err != nil {
		f.recycle(b)
		return nil, err
	}
	return b, nil
}

// prepare judges the records of b, tallies them and leaves in b.rows the
// new valid ones to copy.
func (d *direct) prepare(ctx context.Context, b *batch) error {
	t0 := time.Now()
	b.judged = slices.Grow(b.judged[:0], len(b.recs))[:len(b.recs)]
	b.rows = b.rows[:0]
	var load []int64
	for i := range b.recs {
		r, j := &b.recs[i], &b.judged[i]
		*j = judgement{verdict: vPending}
		idx := b.first + int64(i)
		if first, ok := d.seen.firstOrAdd(r.ExternalID, idx); ok {
			j.verdict, j.first = vRepeated, first
			continue
		}
		if _, ok := d.customers[r.CustomerID]; !ok {
			d.customers[r.CustomerID] = nil
			load = append(load, r.CustomerID)
		}
	}
	d.n += int64(len(b.recs))
	d.step("judge", t0)
	if len(load) > 0 {
		t0 = time.Now()
		if err := d.loadCustomers(ctx, load); err != nil {
			return err
		}
		d.step("load customers", t0)
	}

	t0 = time.Now()
	var pending []int
	var pairs []ownerMonth
	for i := range b.recs {
		r, j := &b.recs[i], &b.judged[i]
		if j.verdict != vPending {
			continue
		}
		c := d.customers[r.CustomerID]
		j.usage = r.UsageAt.UTC().Truncate(time.Microsecond) // what timestamptz keeps
		j.list, j.actual = newAmount(r.List), newAmount(r.Actual)
		switch {
		case c.kind == "":
			j.verdict = vUnknownCustomer
		case c.kind != models.KindCustomer && c.kind != models.KindPersonal:
			j.verdict = vNotCustomer
		case j.list.negative() || j.actual.negative():
			j.verdict = vNegative
		case j.actual.greaterThan(j.list):
			j.verdict = vAboveList
		case j.usage.After(d.latest):
			j.verdict = vFuture
		default:
			j.month = int32(models.MonthOf(j.usage, d.s.loc).Key())
			j.owner = c.ownerAt(j.usage)
			j.tags = c.tags
			pending = append(pending, i)
			om := ownerMonth{j.owner, j.month}
			if _, ok := d.issued[om]; !ok {
				d.issued[om] = false
				pairs = append(pairs, om)
			}
		}
	}
	d.step("judge", t0)
	if len(pairs) > 0 {
		t0 = time.Now()
		if err := d.loadIssued(ctx, pairs); err != nil {
			return err
		}
		d.step("load issued months", t0)
	}
	if len(pending) > 0 {
		t0 = time.Now()
		if err := d.lookUpStored(ctx, b, pending); err != nil {
			return err
		}
		d.step("look up stored", t0)
	}

	// Tally in request order, so the kept errors are the first ones.
	t0 = time.Now()
	for i := range b.recs {
		r, j := &b.recs[i], &b.judged[i]
		switch j.verdict {
		case vPending:
			j.verdict, j.adjustment = vNew, d.issued[ownerMonth{j.owner, j.month}]
			b.rows = append(b.rows, i)
			d.add(r, j)
			d.res.Accepted++
			continue
		case vDuplicate:
			d.res.Duplicates++
			continue
		case vConflict:
			d.res.Conflicts++
		default:
			d.res.Rejected++
		}
		if len(d.res.Errors) < maxKeptErrors {
			d.res.Errors = append(d.res.Errors, RecordError{Index: int(b.first) + i, ExternalID: r.ExternalID, Reason: j.reason(r, d.customers)})
		}
	}
	d.step("judge", t0)
	return nil
}

// copy copies the new valid records of b into expenditures. Accepted counts
// them already: if the COPY fails, the request fails.
func (d *direct) copy(ctx context.Context, b *batch) error {
	if len(b.rows) == 0 {
		return nil
	}
	t0 := time.Now()
	if d.s.beforeCopy != nil {
		d.s.beforeCopy()
	}
	k := 0
	var list, actual big.Int
	n, err := d.cp.CopyFrom(ctx, pgx.Identifier{"expenditures"}, expendituresColumns, pgx.CopyFromFunc(func() ([]any, error) {
		if k == len(b.rows) {
			return nil, nil
		}
		r, j := &b.recs[b.rows[k]], &b.judged[b.rows[k]]
		k++
		row := d.row
		row[0], row[1], row[2], row[3], row[4], row[5] = r.ExternalID, r.CustomerID, j.owner, r.ProductCode, r.Region, string(r.BillingMode)
		row[6], row[7], row[8], row[9], row[10], row[11] = j.usage, j.month, j.list.numeric(&list), j.actual.numeric(&actual), d.now, j.adjustment
		// The judgement holds the tags: the customers map is being filled
		// for the next batch while this one is copied.
		row[12] = nil
		if j.tags != nil {
			row[12] = j.tags
		}
		return row, nil
	}))
	if err != nil {
		return raced(fmt.Errorf("copy expenditures: %w", err))
	}
	if n != int64(len(b.rows)) {
		return fmt.Errorf("copy expenditures: %d of %d rows copied", n, len(b.rows))
	}
	d.step("copy", t0)
	return nil
}

// reason is the text of a rejection or conflict.
func (j *judgement) reason(r *Record, customers map[int64]*customer) string {
	switch j.verdict {
	case vRepeated:
		return fmt.Sprintf(reasonDuplicateInRequest, strconv.FormatInt(j.first, 10))
	case vUnknownCustomer:
		return reasonUnknownCustomer
	case vNotCustomer:
		return fmt.Sprintf(reasonNotCustomer, customers[r.CustomerID].kind)
	case vNegative:
		return reasonNegative
	case vAboveList:
		return reasonActualAboveList
	case vFuture:
		return reasonFuture
	case vConflict:
		return fmt.Sprintf(reasonConflict, j.differs)
	}
	return ""
}

// add counts an accepted record in the running totals of its customer and
// owner.
func (d *direct) add(r *Record, j *judgement) {
	cm := customerMonth{r.CustomerID, j.month}
	t := d.totals[cm]
	if t == nil {
		t = &customerSums{}
		d.totals[cm] = t
	}
	t.list.add(j.list)
	t.actual.add(j.actual)
	if r.BillingMode != models.PayPerUse {
		t.prepaid.add(j.list)
	}
	t.n++
	om := ownerMonth{j.owner, j.month}
	o := d.owners[om]
	if o == nil {
		o = &ownerSums{}
		d.owners[om] = o
	}
	o.list.add(j.list)
	o.actual.add(j.actual)
	o.n++
	if d.customers[r.CustomerID].vouchers {
		d.usages = append(d.usages, vouchers.Usage{ExternalID: r.ExternalID, CustomerID: r.CustomerID, OwnerID: j.owner,
			ProductCode: r.ProductCode, BillingMode: r.BillingMode, UsageAt: j.usage, Month: int(j.month), Actual: r.Actual})
	}
}

// read runs a query of prepare on the look-ahead connection, or on the
// transaction's when there is none. Parameters go to pgx as they are, so a
// Go slice is sent as one PostgreSQL array (gorm would expand it into a
// list). The look-ahead connection reads what is committed, which is what
// these queries need: the request's own rows are told by seen.
func (d *direct) read(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if d.look != nil {
		return d.look.QueryContext(ctx, q, args...)
	}
	return d.query(q, args...)
}

// query runs a statement in the transaction, parameters as read passes them.
func (d *direct) query(q string, args ...any) (*sql.Rows, error) {
	return d.tx.DB.Statement.ConnPool.QueryContext(d.tx.Context(), q, args...)
}

// loadCustomers caches the kind, parent and parent history of ids.
func (d *direct) loadCustomers(ctx context.Context, ids []int64) error {
	for _, id := range ids {
		d.customers[id] = &customer{}
	}
	rows, err := d.read(ctx, `SELECT a.id, a.kind, coalesce(a.parent_id, 0), CASE WHEN a.tags = '{}'::jsonb THEN NULL ELSE a.tags::text END,
		`+vouchers.LiveCustomersSQL+`
		FROM accounts a WHERE a.id = ANY($1)`, ids)
	if err != nil {
		return fmt.Errorf("load customers: %w", err)
	}
	for rows.Next() {
		var id int64
		var c customer
		var tags *string
		if err := rows.Scan(&id, &c.kind, &c.parent, &tags, &c.vouchers); err != nil {
			rows.Close()
			return fmt.Errorf("load customers: %w", err)
		}
		if tags != nil {
			c.tags = json.RawMessage(*tags)
		}
		*d.customers[id] = c
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("load customers: %w", err)
	}
	rows, err = d.read(ctx, `SELECT account_id, parent_id, valid_from FROM account_parent_history
		WHERE account_id = ANY($1) ORDER BY account_id, valid_from, id`, ids)
	if err != nil {
		return fmt.Errorf("load parent history: %w", err)
	}
	for rows.Next() {
		var id int64
		var p ownerPeriod
		if err := rows.Scan(&id, &p.owner, &p.from); err != nil {
			rows.Close()
			return fmt.Errorf("load parent history: %w", err)
		}
		c := d.customers[id]
		c.periods = append(c.periods, p)
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("load parent history: %w", err)
	}
	return nil
}

// loadIssued caches whether the bills of pairs are issued.
func (d *direct) loadIssued(ctx context.Context, pairs []ownerMonth) error {
	owners, months := make([]int64, len(pairs)), make([]int32, len(pairs))
	for i, p := range pairs {
		owners[i], months[i] = p.owner, p.month
	}
	rows, err := d.read(ctx, `SELECT owner_id, month FROM issued_bill_months
		WHERE (owner_id, month) IN (SELECT * FROM unnest($1::bigint[], $2::int[]))`, owners, months)
	if err != nil {
		return fmt.Errorf("load issued bill months: %w", err)
	}
	for rows.Next() {
		var p ownerMonth
		if err := rows.Scan(&p.owner, &p.month); err != nil {
			rows.Close()
			return fmt.Errorf("load issued bill months: %w", err)
		}
		d.issued[p] = true
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("load issued bill months: %w", err)
	}
	return nil
}

// lookUpStored looks up which pending records of b have an externalId
// already stored, and marks each a duplicate (same content) or a conflict
// (naming the fields that differ, as compareRest does).
func (d *direct) lookUpStored(ctx context.Context, b *batch, pending []int) error {
	exts := make([]string, len(pending))
	lo, hi := b.recs[pending[0]].ExternalID, b.recs[pending[0]].ExternalID
	for k, i := range pending {
		ext := b.recs[i].ExternalID
		exts[k] = ext
		lo, hi = min(lo, ext), max(hi, ext)
	}
	// The bounds test walks the index from the least externalId to the
	// first committed one, past the uncommitted rows of this request's
	// earlier batches: only worth it when their externalIds (in byte order,
	// which is the index's order in the C and C.UTF-8 collations; in another
	// it is only a guess, and the answer is exact either way) are all outside
	// this batch's bounds.
	q := lookUpStoredEach
	if d.hi == "" || hi < d.lo || lo > d.hi {
		q = lookUpStored
	}
	if d.hi == "" {
		d.lo, d.hi = lo, hi
	} else {
		d.lo, d.hi = min(d.lo, lo), max(d.hi, hi)
	}
	rows, err := d.read(ctx, q, exts)
	if err != nil {
		return fmt.Errorf("look up stored expenditures: %w", err)
	}
	var at map[string]int
	for rows.Next() {
		var e struct {
			ext, product, region, mode string
			customer                   int64
			usage                      time.Time
			list, actual               decimal.Decimal
		}
		if err := rows.Scan(&e.ext, &e.customer, &e.product, &e.region, &e.mode, &e.usage, &e.list, &e.actual); err != nil {
			rows.Close()
			return fmt.Errorf("look up stored expenditures: %w", err)
		}
		if at == nil {
			at = make(map[string]int, len(pending))
			for _, i := range pending {
				at[b.recs[i].ExternalID] = i
			}
		}
		i, ok := at[e.ext]
		if !ok {
			continue
		}
		r, j := &b.recs[i], &b.judged[i]
		var differs []string
		if e.customer != r.CustomerID {
			differs = append(differs, "customerId")
		}
		if e.product != r.ProductCode {
			differs = append(differs, "productCode")
		}
		if e.region != r.Region {
			differs = append(differs, "region")
		}
		if e.mode != string(r.BillingMode) {
			differs = append(differs, "billingMode")
		}
		if !e.usage.Equal(j.usage) {
			differs = append(differs, "usageAt")
		}
		if !e.list.Equal(r.List) {
			differs = append(differs, "listAmount")
		}
		if !e.actual.Equal(r.Actual) {
			differs = append(differs, "actualAmount")
		}
		if len(differs) == 0 {
			j.verdict = vDuplicate
		} else {
			j.verdict, j.differs = vConflict, strings.Join(differs, ", ")
		}
	}
	if err := closeRows(rows); err != nil {
		return fmt.Errorf("look up stored expenditures: %w", err)
	}
	return nil
}

// lookUpStoredEach returns the stored expenditures of the externalIds $1,
// one index probe each.
const lookUpStoredEach = `SELECT external_id, customer_id, product_code, region, billing_mode, usage_at, list_amount, actual_amount
	FROM expenditures WHERE external_id = ANY($1)`

// lookUpStored returns the stored expenditures of the externalIds $1. The
// index probe per externalId (about 2.5 µs each) runs only when a stored
// externalId lies between the least and the greatest of $1 in the index's
// order, which one ordered index scan tells (ORDER BY ... LIMIT 1, so that
// no plan can turn it into a scan of the table; a BETWEEN under EXISTS let
// the generic plan do that): a batch of new externalIds that increase, as a
// pipeline's sequence or time-based ids do, is told stored-free at once. The
// bounds are computed by PostgreSQL, in the collation of the index, so the
// test is exact. The scan passes over the uncommitted rows between the
// bounds (a concurrent request's), so it costs at most what the probes
// would.
const lookUpStored = `WITH r AS MATERIALIZED (SELECT min(i) AS lo, max(i) AS hi FROM unnest($1::text[]) i)
	SELECT external_id, customer_id, product_code, region, billing_mode, usage_at, list_amount, actual_amount
	FROM expenditures
	WHERE external_id = ANY($1)
		AND (SELECT x.external_id FROM expenditures x
			WHERE x.external_id >= (SELECT lo FROM r) AND x.external_id <= (SELECT hi FROM r)
			ORDER BY x.external_id LIMIT 1) IS NOT NULL`

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// upsertTotals adds the accepted records to spend_totals, then to
// owner_spend_totals — the staged path's order, each in key order, so
// concurrent ingestions lock the rows they share in one order — and returns
// the new totals of the touched customer months, ordered by customer and
// month.
const upsertTotals = `INSERT INTO spend_totals AS t (customer_id, month, list_total, actual_total, prepaid_list, records, last_received_at)
	SELECT u.customer_id, u.month, u.list::numeric, u.actual::numeric, u.prepaid::numeric, u.n, $7
	FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::text[], $6::bigint[]) AS u(customer_id, month, list, actual, prepaid, n)
	ORDER BY u.customer_id, u.month
` + addToCustomerTotals

const upsertOwnerTotals = `INSERT INTO owner_spend_totals AS o (owner_id, month, list_total, actual_total, records, last_received_at)
	SELECT u.owner_id, u.month, u.list::numeric, u.actual::numeric, u.n, $6
	FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[], $5::bigint[]) AS u(owner_id, month, list, actual, n)
	ORDER BY u.owner_id, u.month
` + addToOwnerTotals

// finish updates the running totals, emits CustomerSpendChanged per
// customer month touched and re-evaluates those customers' arrears.
func (d *direct) finish() error {
	if len(d.totals) == 0 {
		return nil
	}
	t0 := time.Now()
	var (
		customers, owners        []int64
		months, ownerMonths      []int32
		lists, actuals, prepaids []string
		counts, ownerCounts      []int64
		ownerLists, ownerActuals []string
	)
	for k, t := range d.totals {
		customers, months = append(customers, k.customer), append(months, k.month)
		lists, actuals, prepaids = append(lists, t.list.total().String()), append(actuals, t.actual.total().String()), append(prepaids, t.prepaid.total().String())
		counts = append(counts, t.n)
	}
	for k, o := range d.owners {
		owners, ownerMonths = append(owners, k.owner), append(ownerMonths, k.month)
		ownerLists, ownerActuals = append(ownerLists, o.list.total().String()), append(ownerActuals, o.actual.total().String())
		ownerCounts = append(ownerCounts, o.n)
	}
	rows, err := d.query(upsertTotals, customers, months, lists, actuals, prepaids, counts, d.now)
	if err != nil {
		return raced(fmt.Errorf("update spend totals: %w", err))
	}
	var touched []monthTotals
	for rows.Next() {
		var t monthTotals
		if err := rows.Scan(&t.CustomerID, &t.Month, &t.ListTotal, &t.ActualTotal, &t.Records); err != nil {
			rows.Close()
			return fmt.Errorf("update spend totals: %w", err)
		}
		touched = append(touched, t)
	}
	if err := closeRows(rows); err != nil {
		return raced(fmt.Errorf("update spend totals: %w", err))
	}
	if _, err := d.tx.DB.Statement.ConnPool.ExecContext(d.tx.Context(), upsertOwnerTotals,
		owners, ownerMonths, ownerLists, ownerActuals, ownerCounts, d.now); err != nil {
		return raced(fmt.Errorf("update owner spend totals: %w", err))
	}
	d.step("totals", t0)
	t0 = time.Now()
	sort.Slice(touched, func(a, b int) bool {
		if touched[a].CustomerID != touched[b].CustomerID {
			return touched[a].CustomerID < touched[b].CustomerID
		}
		return touched[a].Month < touched[b].Month
	})
	if err := emitSpendChanged(d.tx, d.cp, touched, d.usages, d.s.loc); err != nil {
		return raced(err)
	}
	d.step("events and arrears", t0)
	return nil
}
