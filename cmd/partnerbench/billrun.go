package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/shopspring/decimal"
	"gorm.io/gorm"

	"partnerd/accounts"
	"partnerd/billing"
	"partnerd/models"
	"partnerd/store"
)

// The billrun scenario (issue 9): the bill run of one month
// (billing.Service.GeneratePartnerBills) over N expenditure records (10
// million; --quick 100,000) of a tree of 100,000 customers (--quick 1,000),
// against its floor: one plain GROUP BY (owner, customer, product) over the
// same rows, in the same run, the two measured alternately. Target: the bill
// run takes at most 1.5 times the GROUP BY.
//
// The fixture is written with SQL and COPY, as the guard scenarios' are:
// the tree with INSERT ... SELECT (the triggers derive paths and create the
// credit and guard rows), the records with binary COPY straight into
// expenditures, already attributed to their owner, and the running totals
// (spend_totals, owner_spend_totals) with one INSERT ... SELECT ... GROUP BY
// each, as ingestion would have left them.

const (
	// billrunTarget is issue 9's target: the bill run / the GROUP BY.
	billrunTarget = 1.5
	// billrunStreams is how many COPY connections load the records at once.
	billrunStreams = 2
	// billrunTimeout bounds a bill run on the fallback store, should one
	// statement outlast the product's default statement timeout.
	billrunTimeout = time.Hour
)

// billrunProducts are the month's product codes; each customer uses a few.
var billrunProducts = []string{"ecs.g7.large", "ecs.c7.xlarge", "ecs.r7.2xlarge", "ecs.gn7i.gpu", "oss.standard",
	"oss.archive", "rds.mysql.s2", "rds.pg.x4", "polardb.mysql", "redis.std.4g", "cdn.traffic", "slb.lcu",
	"nas.capacity", "sls.ingest", "eip.bandwidth", "nat.gateway", "ack.cluster", "fc.invocations", "mns.requests",
	"waf.pro"}

// billrunStrides are step sizes coprime with len(billrunProducts): a
// customer's products are p0, p0+s, p0+2s, ... (mod 20), all distinct.
var billrunStrides = []int{1, 3, 7, 9, 11, 13, 17, 19}

// billrunSize is the data set of a run.
type billrunSize struct {
	dists, resellersPer, tier1, customers, records int
}

// billrunFixture is the generated tree and month.
type billrunFixture struct {
	month    models.Month
	partners []int64 // distributors, second-level resellers, tier-1 resellers
	second   int     // how many of partners are second-level resellers
	tier1    []int64
	// customers and owners: customer i sits under owners[i].
	customers []int64
	owners    []int64
}

func (b *bench) billrun(ctx context.Context) (*section, error) {
	size := billrunSize{dists: 10, resellersPer: 10, tier1: 20, customers: 100_000, records: 10_000_000}
	if b.o.quick {
		size = billrunSize{dists: 2, resellersPer: 3, tier1: 2, customers: 1_000, records: 100_000}
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect for the fixture: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	// Two months back: the ingest scenario writes the previous month and the
	// guard scenarios the current one; a bill run is only for ended months.
	month := models.MonthOf(b.st.Now(), b.loc).Prev().Prev()
	m := month.Key()
	var loadNotes []string
	t0 := time.Now()
	fx, err := b.billrunTree(ctx, conn, size, month)
	if err != nil {
		return nil, err
	}
	treeTook := time.Since(t0)
	t1 := time.Now()
	if err := b.billrunCopy(ctx, fx, size.records); err != nil {
		return nil, err
	}
	copyTook := time.Since(t1)
	t2 := time.Now()
	if err := billrunTotals(ctx, conn, m); err != nil {
		return nil, err
	}
	totalsTook := time.Since(t2)
	t3 := time.Now()
	b.logf("billrun: VACUUM (ANALYZE) of the loaded tables")
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) accounts, credit_balances, purchase_guards, expenditures, spend_totals, owner_spend_totals`); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	vacuumTook := time.Since(t3)
	loadTook := time.Since(t0)
	b.logf("billrun: fixture ready in %s (tree %s, COPY %s, totals %s, VACUUM ANALYZE %s)", loadTook.Round(100*time.Millisecond),
		treeTook.Round(100*time.Millisecond), copyTook.Round(100*time.Millisecond), totalsTook.Round(100*time.Millisecond), vacuumTook.Round(100*time.Millisecond))
	loadNotes = append(loadNotes, fmt.Sprintf("Loading took %s: the tree %s, the COPY %s (%s records/s over %d connections), the running totals %s, `VACUUM (ANALYZE)` %s.",
		loadTook.Round(100*time.Millisecond), treeTook.Round(100*time.Millisecond), copyTook.Round(100*time.Millisecond),
		num(float64(size.records)/copyTook.Seconds()), billrunStreams, totalsTook.Round(100*time.Millisecond), vacuumTook.Round(100*time.Millisecond)))
	var tableMB, indexMB float64
	if err := conn.QueryRow(ctx, `SELECT coalesce(sum(pg_table_size(relid)), 0) / 1048576.0, coalesce(sum(pg_indexes_size(relid)), 0) / 1048576.0
		FROM pg_partition_tree('expenditures')`).Scan(&tableMB, &indexMB); err == nil {
		loadNotes = append(loadNotes, fmt.Sprintf("`expenditures` on disk: %s MiB of table and %s MiB of indexes (every scenario's rows; this one's are the only ones of %s).",
			num(tableMB), num(indexMB), month))
	}

	// The bill run on a store of its own, opened as the product opens it
	// (statement timeout included), whose statements are timed one by one
	// through gorm callbacks; billing itself is not touched.
	timer := &stmtTimer{}
	st, err := store.Open(ctx, b.dbURL, store.Options{MaxOpenConns: 4, Logger: b.log})
	if err != nil {
		return nil, err
	}
	defer st.Close()
	if err := timer.register(st.DB); err != nil {
		return nil, err
	}
	svc := billing.New(st, accounts.New(st), billing.Options{Location: b.loc, Log: b.log})
	sys := accounts.SystemContext(ctx)
	if _, err := svc.CreatePolicy(sys, "Partnerbench tiers", month, billing.Tiers{
		{Threshold: decimal.Zero, Percent: decimal.NewFromInt(1)},
		{Threshold: decimal.NewFromInt(1_000_000), Percent: decimal.NewFromInt(2)},
		{Threshold: decimal.NewFromInt(10_000_000), Percent: decimal.NewFromInt(3)},
	}); err != nil {
		return nil, fmt.Errorf("incentive policy: %w", err)
	}

	// The floor's plan, as PostgreSQL chooses it.
	plan, err := explainShape(ctx, conn, billrunFloorSQL, m)
	if err != nil {
		return nil, err
	}

	var (
		floorSel, floorSerial, floorCTAS, first, regen []float64
		firstStmts, regenStmts                         []map[string]time.Duration
		nGroups, nBills, nLines                        int64
		timeoutNote                                    string
		loads                                          []float64
		longStore                                      *store.Store
	)
	defer func() {
		if longStore != nil {
			_ = longStore.Close()
		}
	}()
	// measure times fn after a CHECKPOINT, noting the load average.
	measure := func(label string, fn func() error) (float64, error) {
		checkpoint(ctx, conn)
		if l, err := strconv.ParseFloat(loadAverage(), 64); err == nil {
			loads = append(loads, l)
		}
		prog := b.progress(label, 1, "steps", nil)
		t := time.Now()
		err := fn()
		d := time.Since(t).Seconds()
		prog.set(1)
		prog.finish()
		return d, err
	}
	// generate measures one GeneratePartnerBills; before, when not nil,
	// prepares the state (again, should the call be repeated).
	generate := func(label string, before func() error) (float64, error) {
		for {
			if before != nil {
				if err := before(); err != nil {
					return 0, err
				}
			}
			timer.reset()
			d, err := measure(label, func() error {
				n, err := svc.GeneratePartnerBills(sys, month)
				if err == nil && n != len(fx.partners) {
					err = fmt.Errorf("GeneratePartnerBills wrote %d bills, want %d", n, len(fx.partners))
				}
				return err
			})
			if store.PgCode(err) != "57014" || timeoutNote != "" {
				return d, err
			}
			// A statement outlasted the product's statement timeout: note it,
			// and measure again on a store that lets a statement run longer.
			timeoutNote = fmt.Sprintf("**The bill run failed on the product's store settings** (statement timeout 30 s) in %s: %v. That measurement was repeated, and every later bill run taken, on a store opened with a statement timeout of %s.",
				strings.TrimPrefix(label, "billrun "), err, billrunTimeout)
			b.logf("billrun: %v; measuring again with a statement timeout of %s", err, billrunTimeout)
			st2, err := store.Open(ctx, b.dbURL, store.Options{MaxOpenConns: 4, Logger: b.log, StatementTimeout: billrunTimeout})
			if err != nil {
				return 0, err
			}
			longStore = st2
			if err := timer.register(st2.DB); err != nil {
				return 0, err
			}
			svc = billing.New(st2, accounts.New(st2), billing.Options{Location: b.loc, Log: b.log})
		}
	}
	for r := 1; r <= b.o.runs; r++ {
		tag := fmt.Sprintf("run %d/%d", r, b.o.runs)
		d, err := measure("billrun floor SELECT "+tag, func() error {
			n, err := floorSelect(ctx, conn, m, false)
			nGroups = n
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("floor: %w", err)
		}
		floorSel = append(floorSel, d)
		d, err = measure("billrun floor serial "+tag, func() error {
			_, err := floorSelect(ctx, conn, m, true)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("floor without parallel workers: %w", err)
		}
		floorSerial = append(floorSerial, d)
		d, err = measure("billrun floor CTAS "+tag, func() error { return floorTemp(ctx, conn, m) })
		if err != nil {
			return nil, fmt.Errorf("floor (CREATE TEMP TABLE AS): %w", err)
		}
		floorCTAS = append(floorCTAS, d)

		d, err = generate("billrun first generation "+tag, func() error { return resetBills(ctx, conn, m) })
		if err != nil {
			return nil, fmt.Errorf("first generation: %w", err)
		}
		first = append(first, d)
		firstStmts = append(firstStmts, timer.take(d))
		if r == 1 {
			if nBills, nLines, err = checkBills(ctx, conn, m, fx); err != nil {
				return nil, err
			}
		}
		d, err = generate("billrun regeneration "+tag, nil)
		if err != nil {
			return nil, fmt.Errorf("regeneration: %w", err)
		}
		regen = append(regen, d)
		regenStmts = append(regenStmts, timer.take(d))
		b.logf("billrun %s: floor SELECT %.2f s, serial %.2f s, CTAS %.2f s; first generation %.2f s (%.2f×), regeneration %.2f s (%.2f×)",
			tag, floorSel[r-1], floorSerial[r-1], floorCTAS[r-1], first[r-1], first[r-1]/floorSel[r-1], regen[r-1], regen[r-1]/floorSel[r-1])
	}
	if _, _, err := checkBills(ctx, conn, m, fx); err != nil { // the regenerations left the same bills
		return nil, fmt.Errorf("after the regenerations: %w", err)
	}

	sec := &section{name: "billrun",
		title: fmt.Sprintf("billrun: the bill run of one month over %s records and %s customers vs one GROUP BY", thousands(size.records), thousands(size.customers))}
	sec.notes = []string{
		fmt.Sprintf("Fixture shortcut (SQL, as in authorize): %d distributors × %d second-level resellers and %d tier-1 resellers (%d partners), %s customers spread round-robin over all %d partners (%s under second-level resellers, whose records go to two bills), inserted with `INSERT INTO accounts ... SELECT`, created three months before the month billed.",
			size.dists, size.resellersPer, size.tier1, len(fx.partners), thousands(size.customers), len(fx.partners),
			pct(100*float64(fx.second)/float64(len(fx.partners)))),
		fmt.Sprintf("Records: %s for %s (two months before the current Beijing month, so no other scenario writes in it), loaded with binary COPY straight into `expenditures` over %d connections (owner = the customer's parent, usage times spread over the month in order, received 5 min to 2 h later, increasing externalIds): each customer uses 2 to 6 of %d product codes, list amounts 0.000001–200.000000 with 6 decimals, actual 70–100%% of list; then `spend_totals` and `owner_spend_totals` filled with one `INSERT ... SELECT ... GROUP BY` each, and `VACUUM (ANALYZE)`. An incentive policy (1%%/2%%/3%% tiers) is in force, so the run computes incentives.",
			thousands(size.records), month, billrunStreams, len(billrunProducts)),
		fmt.Sprintf("Floor: `%s` with the month bound, every row read by the client (pgx, raw values, no decoding), on a connection of its own with PostgreSQL's settings (work_mem 4 MB, up to 2 parallel workers per gather); its plan: %s. References: the same statement without parallel workers (`SET max_parallel_workers_per_gather = 0`), as the bill run's statement must run (it writes, in a data-modifying CTE, so PostgreSQL plans it serial), and as `CREATE TEMP TABLE ... AS` (the result written server-side, no WAL; parallel), dropped after.",
			oneLine(billrunFloorSQL), plan),
		fmt.Sprintf("Bill run: `billing.Service.GeneratePartnerBills(SystemContext, %s)`, one transaction, on a store opened as the product opens it (store.Open with the default statement timeout of 30 s). First generation: the month's bills, incentives and run record deleted beforehand (`DELETE FROM partner_bill_lines` of the month's bills, then the bills) and `VACUUM (ANALYZE)` of those tables, untimed. Regeneration: the call again, at once, on the drafts just generated (it deletes their lines and writes them again). `CHECKPOINT` before every measurement; each run measures the floor, the serial floor, the CTAS, the first generation and the regeneration, in that order.", month),
		fmt.Sprintf("Written per generation: %s bills, %s lines (the GROUP BY gives %s rows; lines of second-level resellers' customers appear on their distributor's bill too); checked: the bills of every partner, and the tier-1 bills' totals equal the month's records.",
			thousands(int(nBills)), thousands(int(nLines)), thousands(int(nGroups))),
	}
	sec.notes = append(sec.notes, loadNotes...)
	if len(loads) > 0 {
		ls := spreadOf(loads)
		sec.notes = append(sec.notes, fmt.Sprintf("Load average (1 min) as each measurement started: median %.2f, min %.2f, max %.2f (the 2 CPUs are shared with whatever else runs on the machine).", ls.Median, ls.Min, ls.Max))
	}
	if timeoutNote != "" {
		sec.notes = append(sec.notes, timeoutNote)
	}
	sec.notes = append(sec.notes, "Where the bill run's time went (median seconds per statement, first generation / regeneration, from gorm callbacks around each statement; \"commit and the rest\" is the call's time minus its statements): "+
		breakdown(firstStmts, regenStmts)+".")

	secs := func(v []float64) []string {
		s := spreadOf(v)
		return []string{strconv.FormatFloat(s.Median, 'f', 2, 64), strconv.FormatFloat(s.Min, 'f', 2, 64), strconv.FormatFloat(s.Max, 'f', 2, 64)}
	}
	times := func(s spread) []string {
		return []string{times2(s.Median), times2(s.Min), times2(s.Max)}
	}
	firstRatio, regenRatio := ratios(first, floorSel), ratios(regen, floorSel)
	sec.header = []string{"figure", "median", "min", "max"}
	sec.rows = [][]string{
		append([]string{"floor: GROUP BY read by the client (s)"}, secs(floorSel)...),
		append([]string{"reference: the GROUP BY without parallel workers (s)"}, secs(floorSerial)...),
		append([]string{"reference: the GROUP BY as CREATE TEMP TABLE AS (s)"}, secs(floorCTAS)...),
		append([]string{"bill run, first generation (s)"}, secs(first)...),
		append([]string{"bill run, regeneration (s)"}, secs(regen)...),
		append([]string{"first generation / floor"}, times(firstRatio)...),
		append([]string{"regeneration / floor"}, times(regenRatio)...),
		append([]string{"first generation / serial GROUP BY"}, times(ratios(first, floorSerial))...),
		append([]string{"regeneration / serial GROUP BY"}, times(ratios(regen, floorSerial))...),
		{"target ≤ " + times2(billrunTarget) + " the floor", "first generation: " + verdict(firstRatio.Median), "regeneration: " + verdict(regenRatio.Median), ""},
	}
	return sec, nil
}

func verdict(ratio float64) string {
	if ratio <= billrunTarget {
		return "met"
	}
	return "missed"
}

func times2(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "×" }

// ratios is the spread of a[i]/b[i].
func ratios(a, b []float64) spread {
	r := make([]float64, len(a))
	for i := range a {
		r[i] = a[i] / b[i]
	}
	return spreadOf(r)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// billrunTree inserts the tree: dists distributors with resellersPer
// second-level resellers each (insertTree), tier1 tier-1 resellers, and the
// customers round-robin over all those partners, every account created
// three months before month starts.
func (b *bench) billrunTree(ctx context.Context, conn *pgx.Conn, size billrunSize, month models.Month) (*billrunFixture, error) {
	b.logf("billrun: inserting %d distributors, %d second-level and %d tier-1 resellers, %s customers",
		size.dists, size.dists*size.resellersPer, size.tier1, thousands(size.customers))
	created := month.Start(b.loc).AddDate(0, -3, 0)
	const prefix = "Bill Run Bench"
	t, err := b.insertTree(ctx, conn, prefix, size.dists, size.resellersPer, 0)
	if err != nil {
		return nil, err
	}
	plat, err := b.accounts.Platform(b.platform)
	if err != nil {
		return nil, err
	}
	fx := &billrunFixture{month: month}
	rows, err := conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name, created_at, updated_at)
		SELECT 'RESELLER', $1, '', 0, $2 || ' Tier-1 Reseller ' || g, $4, $4 FROM generate_series(1, $3::int) g ORDER BY g
		RETURNING id`, plat.ID, prefix, size.tier1, created)
	if err == nil {
		fx.tier1, err = pgx.CollectRows(rows, pgx.RowTo[int64])
	}
	if err != nil {
		return nil, fmt.Errorf("insert tier-1 resellers: %w", err)
	}
	fx.partners = slices.Concat(t.Distributors, t.Resellers, fx.tier1)
	fx.second = len(t.Resellers)
	if _, err := conn.Exec(ctx, `UPDATE accounts SET created_at = $2, updated_at = $2 WHERE id = ANY($1::bigint[])`,
		slices.Concat(t.Distributors, t.Resellers), created); err != nil {
		return nil, fmt.Errorf("backdate the partners: %w", err)
	}
	type cust struct{ ID, Parent int64 }
	rows, err = conn.Query(ctx, `INSERT INTO accounts (kind, parent_id, path, depth, name, created_at, updated_at)
		SELECT 'CUSTOMER', ($1::bigint[])[1 + g % cardinality($1::bigint[])], '', 0, $2 || ' Customer ' || g, $4, $4
		FROM generate_series(0, $3::int - 1) g ORDER BY g
		RETURNING id, parent_id`, fx.partners, prefix, size.customers, created)
	var cs []cust
	if err == nil {
		cs, err = pgx.CollectRows(rows, pgx.RowToStructByPos[cust])
	}
	if err != nil {
		return nil, fmt.Errorf("insert customers: %w", err)
	}
	for _, c := range cs {
		fx.customers = append(fx.customers, c.ID)
		fx.owners = append(fx.owners, c.Parent)
	}
	return fx, nil
}

// billrunGen generates the month's records: record i depends only on the
// seed and i.
type billrunGen struct {
	seed      uint64
	customers []int64
	owners    []int64
	month     int32
	start     time.Time
	span      int64 // seconds in the month
	n         int
}

// product is one of customer index c's product codes (each customer has
// 2 to 6 distinct ones), chosen by pick.
func (g *billrunGen) product(c int, pick uint64) string {
	h := splitmix(g.seed*0x9e3779b97f4a7c15 ^ uint64(c)<<1 ^ 0xb111)
	k := 2 + h%5
	p0 := int(h>>8) % len(billrunProducts)
	stride := billrunStrides[int(h>>24)%len(billrunStrides)]
	j := int(pick % k)
	return billrunProducts[(p0+j*stride)%len(billrunProducts)]
}

// row fills dst (bareColumns' order) with record i, reusing list and actual.
func (g *billrunGen) row(i int, dst []any, id []byte, list, actual *big.Int) []byte {
	h := splitmix(g.seed*0x100000001b3 ^ uint64(i) ^ 0xb1119)
	h2 := splitmix(h)
	c := int(h % uint64(len(g.customers)))
	mode := models.PayPerUse
	switch m := h2 % 100; {
	case m >= 95:
		mode = models.ReservedInstance
	case m >= 80:
		mode = models.Subscription
	}
	// Usage times follow i through the month, as a pipeline delivers them,
	// give or take an hour.
	off := int64(i)*g.span/int64(g.n) + int64((h2>>16)%3600) - 1800
	off = min(max(off, 0), g.span-1)
	usage := g.start.Add(time.Duration(off) * time.Second)
	received := usage.Add(5*time.Minute + time.Duration((h2>>28)%7200)*time.Second)
	l := int64(1 + (h>>20)%200_000_000) // 0.000001 .. 200.000000
	list.SetInt64(l)
	actual.SetInt64(l * int64(70+(h2>>40)%31) / 100)
	id = append(id[:0], "br"...)
	id = strconv.AppendUint(id, g.seed, 10)
	id = append(id, '-')
	id = appendPadded(id, i, 9)
	dst[0], dst[1], dst[2], dst[3] = string(id), g.customers[c], g.owners[c], g.product(c, h>>44)
	dst[4], dst[5], dst[6], dst[7] = regions[(h2>>20)%uint64(len(regions))], string(mode), usage, g.month
	dst[8] = pgtype.Numeric{Int: list, Exp: -6, Valid: true}
	dst[9] = pgtype.Numeric{Int: actual, Exp: -6, Valid: true}
	dst[10] = received
	return id
}

// appendPadded appends n zero-padded to width digits.
func appendPadded(buf []byte, n, width int) []byte {
	s := strconv.Itoa(n)
	for range width - len(s) {
		buf = append(buf, '0')
	}
	return append(buf, s...)
}

// billrunCopy loads n records with binary COPY into expenditures, over
// billrunStreams connections, each a contiguous range of i.
func (b *bench) billrunCopy(ctx context.Context, fx *billrunFixture, n int) error {
	start := fx.month.Start(b.loc)
	g := &billrunGen{seed: b.o.seed, customers: fx.customers, owners: fx.owners, month: int32(fx.month.Key()),
		start: start.UTC(), span: int64(fx.month.End(b.loc).Sub(start) / time.Second), n: n}
	prog := b.progress("billrun: COPY records", int64(n), "records", nil)
	defer prog.finish()
	var wg sync.WaitGroup
	errs := make([]error, billrunStreams)
	for s := range billrunStreams {
		lo, hi := n*s/billrunStreams, n*(s+1)/billrunStreams
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[s] = b.copyRange(ctx, g, lo, hi, prog)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	prog.set(int64(n))
	return nil
}

func (b *bench) copyRange(ctx context.Context, g *billrunGen, lo, hi int, prog *progress) error {
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	row := make([]any, len(bareColumns))
	var id []byte
	list, actual := new(big.Int), new(big.Int)
	i := lo
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == hi {
			return nil, nil
		}
		id = g.row(i, row, id, list, actual)
		i++
		if i%4096 == 0 {
			prog.add(4096)
		}
		return row, nil
	})
	got, err := conn.CopyFrom(ctx, pgx.Identifier{"expenditures"}, bareColumns, src)
	if err != nil {
		return fmt.Errorf("COPY into expenditures: %w", err)
	}
	if got != int64(hi-lo) {
		return fmt.Errorf("COPY into expenditures copied %d of %d rows", got, hi-lo)
	}
	return nil
}

// billrunTotals fills the month's running totals as ingestion keeps them.
func billrunTotals(ctx context.Context, conn *pgx.Conn, m int) error {
	if _, err := conn.Exec(ctx, `INSERT INTO spend_totals (customer_id, month, list_total, actual_total, prepaid_list, records, last_received_at)
		SELECT customer_id, month, sum(list_amount), sum(actual_amount),
			coalesce(sum(list_amount) FILTER (WHERE billing_mode <> 'PAY_PER_USE'), 0), count(*), max(received_at)
		FROM expenditures WHERE month = $1 GROUP BY customer_id, month`, m); err != nil {
		return fmt.Errorf("fill spend_totals: %w", err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO owner_spend_totals (owner_id, month, list_total, actual_total, records, last_received_at)
		SELECT owner_id, month, sum(list_amount), sum(actual_amount), count(*), max(received_at)
		FROM expenditures WHERE month = $1 GROUP BY owner_id, month`, m); err != nil {
		return fmt.Errorf("fill owner_spend_totals: %w", err)
	}
	return nil
}

// billrunFloorSQL is the floor: the bill run's GROUP BY, alone.
const billrunFloorSQL = `SELECT owner_id, customer_id, product_code, sum(list_amount) AS l, sum(actual_amount) AS a, count(*) AS n
	FROM expenditures WHERE month = $1 GROUP BY 1, 2, 3`

// floorSelect runs the floor and reads every row (raw, undecoded);
// serial forbids parallel workers, as a data-modifying statement has none.
func floorSelect(ctx context.Context, conn *pgx.Conn, m int, serial bool) (int64, error) {
	if serial {
		if _, err := conn.Exec(ctx, `SET max_parallel_workers_per_gather = 0`); err != nil {
			return 0, err
		}
		defer conn.Exec(context.WithoutCancel(ctx), `RESET max_parallel_workers_per_gather`)
	}
	rows, err := conn.Query(ctx, billrunFloorSQL, m)
	if err != nil {
		return 0, err
	}
	var n int64
	for rows.Next() {
		_ = rows.RawValues()
		n++
	}
	rows.Close()
	return n, rows.Err()
}

// floorTemp runs the floor as CREATE TEMP TABLE AS (a utility statement
// takes no parameters: the month is an integer written in) and drops it.
func floorTemp(ctx context.Context, conn *pgx.Conn, m int) error {
	q := `CREATE TEMP TABLE billrun_floor AS ` + strings.Replace(billrunFloorSQL, "$1", strconv.Itoa(m), 1)
	if _, err := conn.Exec(ctx, q); err != nil {
		return err
	}
	_, err := conn.Exec(ctx, `DROP TABLE billrun_floor`)
	return err
}

// explainShape summarizes the plan of q: its node types, top down, and
// the parallel workers planned.
func explainShape(ctx context.Context, conn *pgx.Conn, q string, args ...any) (string, error) {
	rows, err := conn.Query(ctx, "EXPLAIN "+q, args...)
	if err != nil {
		return "", fmt.Errorf("explain the floor: %w", err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("explain the floor: %w", err)
	}
	var nodes []string
	for _, l := range lines {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->"))
		if name, _, ok := strings.Cut(l, "  (cost="); ok {
			nodes = append(nodes, strings.TrimSpace(name))
		} else if strings.HasPrefix(l, "Workers Planned:") {
			nodes = append(nodes, "("+strings.ToLower(l)+")")
		}
	}
	return strings.Join(nodes, " → "), nil
}

// resetBills deletes the month's bills (their lines, then the bills, whose
// adjustments go with them), incentives and run record, and vacuums those tables, so the
// next run generates them for the first time.
func resetBills(ctx context.Context, conn *pgx.Conn, m int) error {
	for _, q := range []string{
		`DELETE FROM incentives WHERE month = $1`,
		`DELETE FROM partner_bill_lines WHERE bill_id IN (SELECT id FROM partner_bills WHERE month = $1)`,
		`DELETE FROM partner_bills WHERE month = $1`,
		`DELETE FROM bill_runs WHERE month = $1`,
	} {
		if _, err := conn.Exec(ctx, q, m); err != nil {
			return fmt.Errorf("reset the bills of %d: %w", m, err)
		}
	}
	if _, err := conn.Exec(ctx, `VACUUM (ANALYZE) partner_bills, partner_bill_lines, partner_bill_adjustments, incentives, bill_runs`); err != nil {
		return fmt.Errorf("vacuum the bills: %w", err)
	}
	return nil
}

// checkBills checks the month's bills: one DRAFT bill per partner, the
// tier-1 bills' totals equal to the month's records, and returns the bills
// and lines written.
func checkBills(ctx context.Context, conn *pgx.Conn, m int, fx *billrunFixture) (int64, int64, error) {
	var bills, lines, tier1Records, records int64
	var tier1List, list pgtype.Numeric
	err := conn.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM partner_bills WHERE month = $1 AND status = 'DRAFT' AND partner_id = ANY($2::bigint[])),
			(SELECT count(*) FROM partner_bill_lines l JOIN partner_bills b ON b.id = l.bill_id WHERE b.month = $1),
			(SELECT coalesce(sum(b.records), 0) FROM partner_bills b JOIN accounts a ON a.id = b.partner_id WHERE b.month = $1 AND a.depth = 1),
			(SELECT coalesce(sum(b.list_total), 0) FROM partner_bills b JOIN accounts a ON a.id = b.partner_id WHERE b.month = $1 AND a.depth = 1),
			(SELECT coalesce(sum(records), 0) FROM owner_spend_totals WHERE month = $1 AND owner_id = ANY($2::bigint[])),
			(SELECT coalesce(sum(list_total), 0) FROM owner_spend_totals WHERE month = $1 AND owner_id = ANY($2::bigint[]))`,
		m, fx.partners).Scan(&bills, &lines, &tier1Records, &tier1List, &records, &list)
	if err != nil {
		return 0, 0, fmt.Errorf("check the bills: %w", err)
	}
	if bills != int64(len(fx.partners)) {
		return 0, 0, fmt.Errorf("check the bills: %d DRAFT bills of %d partners", bills, len(fx.partners))
	}
	tl, _ := tier1List.Value()
	ll, _ := list.Value()
	if tier1Records != records || tl != ll {
		return 0, 0, fmt.Errorf("check the bills: the tier-1 bills hold %d records for %v, the month %d records for %v", tier1Records, tl, records, ll)
	}
	return bills, lines, nil
}

// stmtTimer times the statements gorm runs on a store, by kind.
type stmtTimer struct {
	mu    sync.Mutex
	spent map[string]time.Duration
	order []string
}

const stmtStartKey = "partnerbench:start"

func (t *stmtTimer) register(db *gorm.DB) error {
	before := func(db *gorm.DB) { db.InstanceSet(stmtStartKey, time.Now()) }
	after := func(db *gorm.DB) {
		v, ok := db.InstanceGet(stmtStartKey)
		if !ok {
			return
		}
		d := time.Since(v.(time.Time))
		label := stmtLabel(db.Statement.SQL.String())
		t.mu.Lock()
		if t.spent == nil {
			t.spent = map[string]time.Duration{}
		}
		if _, seen := t.spent[label]; !seen && !slices.Contains(t.order, label) {
			t.order = append(t.order, label)
		}
		t.spent[label] += d
		t.mu.Unlock()
	}
	cb := db.Callback()
	regs := []error{
		cb.Raw().Before("gorm:raw").Register("partnerbench:t0", before),
		cb.Raw().After("gorm:raw").Register("partnerbench:t1", after),
		cb.Row().Before("gorm:row").Register("partnerbench:t0", before),
		cb.Row().After("gorm:row").Register("partnerbench:t1", after),
		cb.Query().Before("gorm:query").Register("partnerbench:t0", before),
		cb.Query().After("gorm:query").Register("partnerbench:t1", after),
	}
	return errors.Join(regs...)
}

func (t *stmtTimer) reset() {
	t.mu.Lock()
	t.spent = map[string]time.Duration{}
	t.mu.Unlock()
}

// take returns what was timed since reset, with the rest of total (begin,
// commit, Go) as "commit and the rest".
func (t *stmtTimer) take(total float64) map[string]time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := map[string]time.Duration{}
	var sum time.Duration
	for k, v := range t.spent {
		out[k] = v
		sum += v
	}
	out[restLabel] = time.Duration(total*float64(time.Second)) - sum
	return out
}

const restLabel = "commit and the rest"

// stmtLabels name the bill run's statements by a piece of their SQL;
// others are named by their first words.
var stmtLabels = []struct{ match, label string }{
	{"pg_advisory_xact_lock", "lock"},
	{"statement_timeout", "bound the run"},
	{"CREATE TEMP TABLE bill_run_owners", "the run's owners (temp table)"},
	{"CREATE TEMP TABLE bill_run_lines", "the month's GROUP BY (temp table)"},
	{"ANALYZE bill_run", "analyze the temp tables"},
	{"DROP TABLE IF EXISTS", "drop stale temp tables"},
	{"INSERT INTO partner_bills ", "create the bills"},
	{"DELETE FROM partner_bill_lines", "clear the draft lines"},
	{"DELETE FROM partner_bill_adjustments", "clear the draft adjustments"},
	{"UPDATE partner_bills SET list_total = 0", "reset the draft totals"},
	{"WITH ins AS ( INSERT INTO partner_bill_lines", "the month's lines (INSERT lines, UPDATE totals)"},
	{"FROM owner_spend_totals", "find late records (owner_spend_totals)"},
	{"INSERT INTO partner_bill_adjustments", "sum adjustments"},
	{"INSERT INTO partner_bill_lines", "adjustment lines"},
	{"FROM incentive_policies", "incentives: the policy"},
	{"FROM partner_bills b JOIN accounts a", "incentives: the tier-1 drafts"},
	{"INSERT INTO incentives", "incentives: write"},
	{"INSERT INTO bill_runs", "record the run"},
	{"audit_log", "audit entry"},
}

func stmtLabel(sql string) string {
	flat := oneLine(sql)
	for _, l := range stmtLabels {
		if strings.Contains(flat, l.match) {
			return l.label
		}
	}
	if len(flat) > 40 {
		flat = flat[:40] + "…"
	}
	return "`" + flat + "`"
}

// breakdown formats the median time of each statement kind over the runs,
// first generation / regeneration, in the order they ran.
func breakdown(first, regen []map[string]time.Duration) string {
	var order []string
	for _, set := range [][]map[string]time.Duration{first, regen} {
		for _, m := range set {
			for _, l := range stmtLabels {
				if _, ok := m[l.label]; ok && !slices.Contains(order, l.label) {
					order = append(order, l.label)
				}
			}
		}
	}
	for _, set := range [][]map[string]time.Duration{first, regen} {
		for _, m := range set {
			var extra []string
			for k := range m {
				if k != restLabel && !slices.Contains(order, k) {
					extra = append(extra, k)
				}
			}
			slices.Sort(extra)
			order = append(order, extra...)
		}
	}
	order = append(order, restLabel)
	med := func(set []map[string]time.Duration, k string) string {
		var v []float64
		for _, m := range set {
			v = append(v, m[k].Seconds())
		}
		return strconv.FormatFloat(spreadOf(v).Median, 'f', 3, 64)
	}
	var parts []string
	for _, k := range order {
		parts = append(parts, fmt.Sprintf("%s %s / %s", k, med(first, k), med(regen, k)))
	}
	return strings.Join(parts, "; ")
}
