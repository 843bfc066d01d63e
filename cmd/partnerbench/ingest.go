package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"partnerd/models"
)

// The ingest scenario (issue 5): N expenditure records for the 1,000
// customers of one distributor, streamed as NDJSON in one
// POST /v1/expenditures, against the floor: a raw pgx CopyFrom of the same
// rows into bare_expenditures, a copy of the table with the same indexes
// (LIKE ... INCLUDING ALL) and nothing else: no staging, no owner lookup, no
// totals, no events, no foreign keys.

var (
	products     = []string{"ecs.g7.large", "ecs.c7.xlarge", "oss.standard", "rds.mysql.s2", "cdn.traffic", "slb.lcu", "nas.capacity", "sls.ingest"}
	regions      = []string{"cn-hangzhou", "cn-shanghai", "cn-beijing", "cn-shenzhen", "ap-southeast-1"}
	billingModes = []models.BillingMode{models.PayPerUse, models.Subscription, models.ReservedInstance}
)

// recordGen generates the records of one run: record i depends only on the
// seed, the run and i, so the HTTP stream and the COPY floor produce the
// same rows without sharing state.
type recordGen struct {
	seed      uint64
	run       int
	customers []int64
	owner     int64
	// anchor is the start of the previous calendar month (UTC), so every
	// usage time lies in the past and in one Beijing-time month.
	anchor time.Time
	span   int64 // seconds
	loc    *time.Location
	// random makes the externalIds of a run random (16 hex digits of a hash
	// of i) instead of increasing with i.
	random bool
}

type genRecord struct {
	externalID  string
	customerID  int64
	product     string
	region      string
	mode        models.BillingMode
	usageAt     time.Time
	listCents   int64
	actualCents int64
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func (g *recordGen) record(i int) genRecord {
	h := splitmix(g.seed*0x100000001b3 ^ uint64(i))
	h2 := splitmix(h)
	mode := models.PayPerUse
	switch m := h2 % 100; {
	case m >= 95:
		mode = models.ReservedInstance
	case m >= 80:
		mode = models.Subscription
	}
	list := int64(1 + h%500_000)                // 0.01 .. 5,000.00
	actual := list * int64(70+(h2>>8)%31) / 100 // 70% .. 100% of list
	id := fmt.Sprintf("%09d", i)
	if g.random {
		id = fmt.Sprintf("%016x", splitmix(h2^uint64(i)))
	}
	return genRecord{
		externalID:  "pb" + strconv.FormatUint(g.seed, 10) + "-r" + strconv.Itoa(g.run) + "-" + id,
		customerID:  g.customers[(h>>20)%uint64(len(g.customers))],
		product:     products[(h>>40)%uint64(len(products))],
		region:      regions[(h2>>20)%uint64(len(regions))],
		mode:        mode,
		usageAt:     g.anchor.Add(time.Duration((h2>>30)%uint64(g.span)) * time.Second),
		listCents:   list,
		actualCents: actual,
	}
}

// appendCents writes cents as a decimal string with two places.
func appendCents(buf []byte, c int64) []byte {
	buf = strconv.AppendInt(buf, c/100, 10)
	buf = append(buf, '.')
	if c%100 < 10 {
		buf = append(buf, '0')
	}
	return strconv.AppendInt(buf, c%100, 10)
}

// appendNDJSON writes record r as one NDJSON line. The fields are plain
// ASCII, so no escaping is needed.
func appendNDJSON(buf []byte, r genRecord) []byte {
	buf = append(buf, `{"externalId":"`...)
	buf = append(buf, r.externalID...)
	buf = append(buf, `","customerId":`...)
	buf = strconv.AppendInt(buf, r.customerID, 10)
	buf = append(buf, `,"productCode":"`...)
	buf = append(buf, r.product...)
	buf = append(buf, `","region":"`...)
	buf = append(buf, r.region...)
	buf = append(buf, `","billingMode":"`...)
	buf = append(buf, r.mode...)
	buf = append(buf, `","usageAt":"`...)
	buf = r.usageAt.UTC().AppendFormat(buf, time.RFC3339)
	buf = append(buf, `","listAmount":"`...)
	buf = appendCents(buf, r.listCents)
	buf = append(buf, `","actualAmount":"`...)
	buf = appendCents(buf, r.actualCents)
	return append(buf, "\"}\n"...)
}

// ingestResult is the JSON answer of POST /v1/expenditures.
type ingestResult struct {
	Accepted   int `json:"accepted"`
	Duplicates int `json:"duplicates"`
	Conflicts  int `json:"conflicts"`
	Rejected   int `json:"rejected"`
	Errors     []struct {
		Index  int    `json:"index"`
		Reason string `json:"reason"`
	} `json:"errors"`
}

// ingestHTTP streams n records of g in one POST /v1/expenditures, generated
// on the fly through a pipe, and returns how long the request took.
func (b *bench) ingestHTTP(ctx context.Context, g *recordGen, n int, label string) (time.Duration, error) {
	var sent atomic.Bool
	prog := b.progress(label, int64(n), "records sent", func() string {
		if sent.Load() {
			return "all sent, the server is storing them"
		}
		return "streaming"
	})
	defer prog.finish()
	pr, pw := io.Pipe()
	go func() {
		w := bufio.NewWriterSize(pw, 256<<10)
		var line []byte
		for i := 0; i < n; i++ {
			line = appendNDJSON(line[:0], g.record(i))
			if _, err := w.Write(line); err != nil {
				pw.CloseWithError(err)
				return
			}
			if i%1024 == 1023 {
				prog.add(1024)
			}
		}
		err := w.Flush()
		prog.set(int64(n))
		sent.Store(true)
		pw.CloseWithError(err)
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.baseURL+"/v1/expenditures", pr)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Authorization", "Bearer "+b.token)
	hc := newClient(1, 0)
	defer hc.CloseIdleConnections()
	t0 := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return 0, fmt.Errorf("POST /v1/expenditures: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	took := time.Since(t0)
	pr.CloseWithError(io.ErrClosedPipe) // stops the generator if the server answered early
	if err != nil {
		return 0, fmt.Errorf("POST /v1/expenditures: read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /v1/expenditures: HTTP %d: %s", resp.StatusCode, clip(body))
	}
	var res ingestResult
	if err := json.Unmarshal(body, &res); err != nil {
		return 0, fmt.Errorf("POST /v1/expenditures: the answer is not JSON: %s", clip(body))
	}
	if res.Accepted != n || res.Duplicates+res.Conflicts+res.Rejected != 0 {
		first := ""
		if len(res.Errors) > 0 {
			first = fmt.Sprintf("; the first problem: record %d: %s", res.Errors[0].Index, res.Errors[0].Reason)
		}
		return took, fmt.Errorf("POST /v1/expenditures accepted %d of %d records (%d duplicates, %d conflicts, %d rejected)%s",
			res.Accepted, n, res.Duplicates, res.Conflicts, res.Rejected, first)
	}
	return took, nil
}

var bareColumns = []string{"external_id", "customer_id", "owner_id", "product_code", "region", "billing_mode",
	"usage_at", "month", "list_amount", "actual_amount", "received_at"}

// copyBare loads the same n records of g with a raw binary COPY into
// bare_expenditures and returns how long it took.
func (b *bench) copyBare(ctx context.Context, conn *pgx.Conn, g *recordGen, n int, label string) (time.Duration, error) {
	prog := b.progress(label, int64(n), "records", nil)
	defer prog.finish()
	now := time.Now().UTC()
	row := make([]any, len(bareColumns))
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n {
			return nil, nil
		}
		r := g.record(i)
		i++
		if i%1024 == 0 {
			prog.add(1024)
		}
		usage := r.usageAt.UTC()
		row[0], row[1], row[2], row[3], row[4], row[5] = r.externalID, r.customerID, g.owner, r.product, r.region, string(r.mode)
		row[6], row[7] = usage, int32(models.MonthOf(usage, g.loc).Key())
		row[8] = pgtype.Numeric{Int: big.NewInt(r.listCents), Exp: -2, Valid: true}
		row[9] = pgtype.Numeric{Int: big.NewInt(r.actualCents), Exp: -2, Valid: true}
		row[10] = now
		return row, nil
	})
	t0 := time.Now()
	got, err := conn.CopyFrom(ctx, pgx.Identifier{"bare_expenditures"}, bareColumns, src)
	took := time.Since(t0)
	prog.set(int64(i))
	if err != nil {
		return 0, fmt.Errorf("COPY into bare_expenditures: %w", err)
	}
	if got != int64(n) {
		return 0, fmt.Errorf("COPY into bare_expenditures copied %d of %d rows", got, n)
	}
	return took, nil
}

// checkpoint asks PostgreSQL to write its dirty pages now, so one
// measurement does not pay for the WAL of the one before.
func checkpoint(ctx context.Context, conn *pgx.Conn) {
	_, _ = conn.Exec(ctx, "CHECKPOINT")
}

func (b *bench) ingest(ctx context.Context) (*section, error) {
	o := b.o
	fx, err := b.customersFixture(ctx)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect for the COPY floor: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS bare_expenditures (LIKE expenditures INCLUDING ALL)`); err != nil {
		return nil, fmt.Errorf("create bare_expenditures: %w", err)
	}
	now := time.Now().UTC()
	anchor := time.Date(now.Year(), now.Month()-1, 1, 0, 0, 0, 0, time.UTC)
	var httpRates, copyRates, httpSecs, copySecs []float64
	sec := &section{name: "ingest"}
	for run := 1; run <= o.runs; run++ {
		g := &recordGen{seed: o.seed, run: run, customers: fx.Customers, owner: fx.Distributor,
			anchor: anchor, span: 27 * 86400, loc: b.loc, random: o.randomIDs}
		checkpoint(ctx, conn)
		ht, err := b.ingestHTTP(ctx, g, o.records, fmt.Sprintf("ingest HTTP run %d/%d", run, o.runs))
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		checkpoint(ctx, conn)
		ct, err := b.copyBare(ctx, conn, g, o.records, fmt.Sprintf("ingest COPY run %d/%d", run, o.runs))
		if err != nil {
			return nil, fmt.Errorf("run %d: %w", run, err)
		}
		hr, cr := float64(o.records)/ht.Seconds(), float64(o.records)/ct.Seconds()
		httpRates, copyRates = append(httpRates, hr), append(copyRates, cr)
		httpSecs, copySecs = append(httpSecs, ht.Seconds()), append(copySecs, ct.Seconds())
		b.logf("ingest run %d/%d: HTTP %.0f records/s (%.1f s), COPY %.0f records/s (%.1f s), ratio %.0f%%",
			run, o.runs, hr, ht.Seconds(), cr, ct.Seconds(), 100*hr/cr)
	}
	hs, cs := spreadOf(httpRates), spreadOf(copyRates)
	rs, verdict := ratioOf(httpRates, copyRates, 50)
	sec.title = fmt.Sprintf("ingest: %s records per run over POST /v1/expenditures vs raw COPY", thousands(o.records))
	order := "increasing within a run (a zero-padded counter)"
	if o.randomIDs {
		order = "in random order within a run (16 hex digits of a hash, `--random-ids`)"
	}
	sec.notes = []string{
		fmt.Sprintf("%s expenditure records per run for the %s customers of one distributor (customers created through accounts.Service.Create as the platform admin), usage times spread over the previous calendar month, externalIds prefixed with the run number so no run replays another, %s.",
			thousands(o.records), thousands(len(fx.Customers)), order),
		"HTTP: one `POST /v1/expenditures` request, `Content-Type: application/x-ndjson`, generated on the fly through an `io.Pipe` (never held in memory), platform admin token; the request must answer 200 with every record accepted.",
		"Floor: a raw pgx `CopyFrom` (binary COPY) of the same rows, already attributed, into `bare_expenditures` (`CREATE TABLE bare_expenditures (LIKE expenditures INCLUDING ALL)`: the same indexes, no foreign keys, no staging, no totals, no events). Both tables grow by the same rows each run; a `CHECKPOINT` precedes each measurement.",
	}
	sec.header = []string{"path", "records/s (median)", "min", "max", "seconds (median)"}
	sec.rows = [][]string{
		{"HTTP `POST /v1/expenditures` (NDJSON)", num(hs.Median), num(hs.Min), num(hs.Max), fmt.Sprintf("%.2f", spreadOf(httpSecs).Median)},
		{"raw `COPY` into bare_expenditures", num(cs.Median), num(cs.Min), num(cs.Max), fmt.Sprintf("%.2f", spreadOf(copySecs).Median)},
		{"HTTP / COPY", pct(rs.Median), pct(rs.Min), pct(rs.Max), "target ≥ 50%: " + verdict},
	}
	return sec, nil
}
