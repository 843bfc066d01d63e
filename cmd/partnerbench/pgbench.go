package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Floors measured with pgbench (issue 10): PostgreSQL's own benchmark
// client runs the SQL partnerd runs for a read, over the benchmark's fresh
// database, so the product's figure can be read against what the database
// alone gives for the same statements on the same machine.

// pgbenchPath is where pgbench is looked for first; then on $PATH.
const pgbenchPath = "/usr/bin/pgbench"

// errNoPgbench is returned when pgbench is not installed.
var errNoPgbench = errors.New("pgbench is not installed (neither " + pgbenchPath + " nor on $PATH)")

// pgbenchResult is one pgbench run: pgbench's own summary (throughput
// without the initial connection time, average latency) and the latency
// distribution of its transactions, read from its per-transaction log.
type pgbenchResult struct {
	// Label names the run in logs.
	Label string
	// Clients and Threads are pgbench's -c and -j.
	Clients, Threads int
	// Duration is the -T pgbench ran for.
	Duration time.Duration
	// Transactions is "number of transactions actually processed".
	Transactions int64
	// Failed is "number of failed transactions" (0 when pgbench does not
	// print it).
	Failed int64
	// TPS is "tps = ... (without initial connection time)".
	TPS float64
	// LatencyAvg is "latency average" in milliseconds.
	LatencyAvg float64
	// Hist holds the latency of every successful transaction of the
	// per-transaction log, in microseconds.
	Hist *hdrhistogram.Histogram
}

// p returns the q-th percentile latency in milliseconds, from the
// per-transaction log.
func (r pgbenchResult) p(q float64) float64 { return float64(r.Hist.ValueAtQuantile(q)) / 1000 }

// pgbenchBinary finds pgbench: pgbenchPath, else on $PATH.
func pgbenchBinary() (string, error) {
	if st, err := os.Stat(pgbenchPath); err == nil && !st.IsDir() {
		return pgbenchPath, nil
	}
	if p, err := exec.LookPath("pgbench"); err == nil {
		return p, nil
	}
	return "", errNoPgbench
}

// pgbenchSeconds is the whole number of seconds pgbench runs for (its -T
// takes no fraction): dur rounded, at least 1.
func pgbenchSeconds(dur time.Duration) int {
	return max(1, int(math.Round(dur.Seconds())))
}

// pgbench runs script (a pgbench custom script: \set meta-commands and SQL
// with :variables) with /usr/bin/pgbench against the benchmark's fresh
// database, for dur rounded to whole seconds:
//
//	pgbench -n -M prepared -c clients -j min(clients, GOMAXPROCS) -T s -P 1
//	    --random-seed <--seed> --log --log-prefix <tmp>/tx -f <tmp>/script.sql
//	    -D k=v ... <database URL>
//
// No vacuum (-n), prepared statements (-M prepared, as pgx prepares them),
// the random choices of the script seeded by --seed, vars as -D variables. It shows a time-based progress bar labelled label
// (with pgbench's last per-second progress line), parses pgbench's summary
// for the throughput (without the initial connection time) and the average
// latency, and computes the latency distribution from the per-transaction
// log of every transaction. An error carries the tail of pgbench's stderr.
func (b *bench) pgbench(ctx context.Context, label string, script string, vars map[string]string, clients int, dur time.Duration) (pgbenchResult, error) {
	bin, err := pgbenchBinary()
	if err != nil {
		return pgbenchResult{}, err
	}
	secs := pgbenchSeconds(dur)
	threads := max(1, min(clients, runtime.GOMAXPROCS(0)))
	res := pgbenchResult{Label: label, Clients: clients, Threads: threads, Duration: time.Duration(secs) * time.Second}

	dir, err := os.MkdirTemp("", "partnerbench-pgbench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	scriptFile := filepath.Join(dir, "script.sql")
	if err := os.WriteFile(scriptFile, []byte(script), 0o644); err != nil {
		return res, err
	}
	args := []string{"-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(secs), "-P", "1", "--random-seed", strconv.FormatUint(b.o.seed, 10), "--log", "--log-prefix", filepath.Join(dir, "tx"), "-f", scriptFile}
	keys := make([]string, 0, len(vars))
	for k := range vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "-D", k+"="+vars[k])
	}
	args = append(args, b.dbURL)

	// pgbench stops by itself after -T; the context only guards against a
	// pgbench that hangs (a lost server, say).
	rctx, cancel := context.WithTimeout(ctx, res.Duration+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(rctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "PGAPPNAME=partnerbench-pgbench")
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		return res, err
	}
	tail := &tailBuffer{max: 4096}
	prog := b.progress(label, int64(res.Duration/time.Millisecond), "ms", func() string { return tail.progressLine() })
	start := time.Now()
	if err := cmd.Start(); err != nil {
		prog.finish()
		return res, fmt.Errorf("start pgbench: %w", err)
	}
	var readDone sync.WaitGroup
	readDone.Add(1)
	go func() {
		defer readDone.Done()
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			tail.line(sc.Text())
		}
	}()
	stopTick := prog.tickTime(start, res.Duration)
	readDone.Wait()
	err = cmd.Wait()
	stopTick()
	prog.finish()
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if err != nil {
		return res, fmt.Errorf("pgbench %s: %w; its output ends with: %s", label, err, tail.String()+lastLines(stdout.String(), 5))
	}
	if err := parsePgbenchSummary(stdout.String(), &res); err != nil {
		return res, fmt.Errorf("pgbench %s: %w; its stdout: %s; its stderr ends with: %s", label, err, lastLines(stdout.String(), 12), tail.String())
	}
	hist, failed, err := readPgbenchLogs(dir)
	if err != nil {
		return res, fmt.Errorf("pgbench %s: per-transaction log: %w", label, err)
	}
	res.Hist = hist
	if res.Failed == 0 {
		res.Failed = failed
	}
	if hist.TotalCount() == 0 {
		return res, fmt.Errorf("pgbench %s logged no successful transaction; its stderr ends with: %s", label, tail.String())
	}
	return res, nil
}

// pgbenchRuns runs b.pgbench --runs times after an unmeasured warm-up of
// --warmup (rounded up to a whole second, none when --warmup is 0 or in
// --quick), with --concurrency clients and --duration each, and logs each
// run. It stops at the first failed run, or at a run where a transaction
// failed.
func (b *bench) pgbenchRuns(ctx context.Context, name, script string, vars map[string]string) ([]pgbenchResult, error) {
	if b.o.warmup > 0 && !b.o.quick {
		w := time.Duration(math.Ceil(b.o.warmup.Seconds())) * time.Second
		if _, err := b.pgbench(ctx, name+" warm-up", script, vars, b.o.concurrency, w); err != nil {
			return nil, err
		}
	}
	var runs []pgbenchResult
	for i := 1; i <= b.o.runs; i++ {
		r, err := b.pgbench(ctx, fmt.Sprintf("%s run %d/%d", name, i, b.o.runs), script, vars, b.o.concurrency, b.o.duration)
		if err != nil {
			return runs, err
		}
		b.logf("%s run %d/%d: %.0f transactions/s, average %.3f ms, p50 %.2f ms, p99 %.2f ms (%d clients, %d threads, %s)",
			name, i, b.o.runs, r.TPS, r.LatencyAvg, r.p(50), r.p(99), r.Clients, r.Threads, r.Duration)
		if r.Failed > 0 {
			return runs, fmt.Errorf("%s run %d: %d of %d transactions failed", name, i, r.Failed, r.Transactions+r.Failed)
		}
		runs = append(runs, r)
	}
	return runs, nil
}

// The lines of pgbench's summary that are read.
var (
	pgbenchTPS     = regexp.MustCompile(`(?m)^tps = ([0-9.]+) \(without initial connection time\)`)
	pgbenchLatency = regexp.MustCompile(`(?m)^latency average = ([0-9.]+) ms`)
	pgbenchTxs     = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	pgbenchFailed  = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
)

// parsePgbenchSummary reads the throughput, average latency and
// transaction counts of pgbench's summary into r.
func parsePgbenchSummary(out string, r *pgbenchResult) error {
	m := pgbenchTPS.FindStringSubmatch(out)
	if m == nil {
		return errors.New(`no "tps = ... (without initial connection time)" line`)
	}
	r.TPS, _ = strconv.ParseFloat(m[1], 64)
	if m := pgbenchLatency.FindStringSubmatch(out); m != nil {
		r.LatencyAvg, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := pgbenchTxs.FindStringSubmatch(out); m != nil {
		r.Transactions, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := pgbenchFailed.FindStringSubmatch(out); m != nil {
		r.Failed, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return nil
}

// readPgbenchLogs reads pgbench's per-transaction logs in dir (one file per
// thread: "client_id transaction_no time script_no time_epoch time_us ...",
// time being the transaction's latency in microseconds, or "failed" /
// "skipped") into a histogram, and counts the transactions that did not
// succeed.
func readPgbenchLogs(dir string) (*hdrhistogram.Histogram, int64, error) {
	files, err := filepath.Glob(filepath.Join(dir, "tx.*"))
	if err != nil {
		return nil, 0, err
	}
	if len(files) == 0 {
		return nil, 0, errors.New("pgbench wrote no log file")
	}
	h := hdrhistogram.New(histMin, histMax, histDigits)
	var failed int64
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return nil, 0, err
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				failed++ // "failed" or "skipped"
				continue
			}
			_ = h.RecordValue(min(max(us, histMin), histMax))
		}
		err = sc.Err()
		_ = f.Close()
		if err != nil {
			return nil, 0, fmt.Errorf("read %s: %w", filepath.Base(name), err)
		}
	}
	return h, failed, nil
}

// tailBuffer keeps the last max bytes of a stream of lines, and the last
// "progress:" line pgbench printed.
type tailBuffer struct {
	mu       sync.Mutex
	max      int
	buf      []string
	size     int
	progress string
}

// line adds one line of output.
func (t *tailBuffer) line(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p, ok := strings.CutPrefix(s, "progress: "); ok {
		t.progress = p
		return // progress lines are not worth keeping for an error message
	}
	t.buf = append(t.buf, s)
	t.size += len(s) + 1
	for t.size > t.max && len(t.buf) > 1 {
		t.size -= len(t.buf[0]) + 1
		t.buf = t.buf[1:]
	}
}

// progressLine is pgbench's last per-second progress report, shortened.
func (t *tailBuffer) progressLine() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.progress == "" {
		return "starting"
	}
	// "5.0 s, 12345.6 tps, lat 1.234 ms stddev 0.567, 0 failed"
	parts := strings.Split(t.progress, ", ")
	if len(parts) >= 3 {
		return parts[1] + ", " + strings.SplitN(parts[2], " stddev", 2)[0]
	}
	return t.progress
}

// String is the kept tail, one line after the other.
func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.buf) == 0 {
		return "(nothing on stderr)"
	}
	return strings.Join(t.buf, " | ")
}

// lastLines is the last n non-empty lines of s, joined with " | ".
func lastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// pgbenchCase renders, for pgbench's \set, an expression of the integer
// variable j (0 ≤ j < total of the runs' lengths) giving column col of the
// j-th row of runs: "case when :j < n1 then first + (:j - 0) * step ... end".
func pgbenchCase(j string, runs []idRun, col int) string {
	var sb strings.Builder
	if len(runs) == 1 {
		r := runs[0]
		return fmt.Sprintf("%d + :%s * %d", r.first[col], j, r.step[col])
	}
	sb.WriteString("case")
	off := 0
	for i, r := range runs {
		expr := fmt.Sprintf("%d + (:%s - %d) * %d", r.first[col], j, off, r.step[col])
		if i == len(runs)-1 {
			fmt.Fprintf(&sb, " else %s end", expr)
			break
		}
		fmt.Fprintf(&sb, " when :%s < %d then %s", j, off+r.n, expr)
		off += r.n
	}
	return sb.String()
}

// idRun is a stretch of rows of id columns that are each an arithmetic
// progression: row k of the run is first[c] + k*step[c] in column c.
type idRun struct {
	n           int
	first, step []int64
}

// idRuns splits the rows of cols (each column as long as the first) into
// the fewest runs of arithmetic progressions, scanning in order, so that a
// pgbench script can pick row j at random with pgbenchCase.
func idRuns(cols ...[]int64) []idRun {
	if len(cols) == 0 || len(cols[0]) == 0 {
		return nil
	}
	n := len(cols[0])
	var runs []idRun
	row := func(k int) []int64 {
		v := make([]int64, len(cols))
		for c := range cols {
			v[c] = cols[c][k]
		}
		return v
	}
	for k := 0; k < n; {
		r := idRun{n: 1, first: row(k), step: make([]int64, len(cols))}
		if k+1 < n {
			for c := range cols {
				r.step[c] = cols[c][k+1] - cols[c][k]
			}
			r.n = 2
			for k+r.n < n {
				ok := true
				for c := range cols {
					if cols[c][k+r.n]-cols[c][k+r.n-1] != r.step[c] {
						ok = false
						break
					}
				}
				if !ok {
					break
				}
				r.n++
			}
		}
		runs = append(runs, r)
		k += r.n
	}
	return runs
}
