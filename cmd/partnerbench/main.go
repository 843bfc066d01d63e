// Command partnerbench measures partnerd: it creates a fresh database of its
// own, starts the real product HTTP server in-process on a loopback port,
// generates data deterministically from a seed, drives closed-loop load over
// keep-alive HTTP and writes the figures as markdown (issue 10; the
// scenarios of issue 5 first; authorize, the purchase guard, and
// overspend, the time from a budget crossing to the freeze, of issue 6).
//
//	go run ./cmd/partnerbench [--quick] [--scenario all|ingest|allocate|point|tree|children|notify|webhook|authorize|overspend]
//	    [--database-url postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable]
//	    [--redis-url redis://127.0.0.1:6379/14] [--runs 3] [--duration 10s]
//	    [--concurrency 16] [--seed 1] [--out bench-results.md]
//	    [--records 1000000] [--random-ids]
//
// Every figure is the median of --runs runs, with their min and max. The
// exit status is non-zero only when the harness itself fails (the database
// cannot be prepared, a request error rate above 1%, an ingestion that does
// not store what it was sent); a slow figure never fails it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"
)

// options are the command line, resolved (--quick defaults applied).
type options struct {
	quick       bool
	scenarios   []string
	databaseURL string
	redisURL    string
	runs        int
	duration    time.Duration
	warmup      time.Duration
	concurrency int
	out         string
	plots       string
	seed        uint64
	records     int
	randomIDs   bool
	logLevel    slog.Level
	cpuProfile  string
	args        []string
}

// allScenarios are the scenarios in the order "all" runs them.
var allScenarios = []string{"ingest", "allocate", "point", "tree", "children", "notify", "webhook", "authorize", "overspend", "migrate", "billrun"}

// maxErrorRate is the request error rate above which a run is a harness error.
const maxErrorRate = 0.01

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	fs := flag.NewFlagSet("partnerbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &options{args: args}
	var scenario, logLevel string
	fs.BoolVar(&o.quick, "quick", false, "small data, 2 s runs, 1 run each: proves the harness works (CI)")
	fs.StringVar(&scenario, "scenario", "all", "all, or a comma-separated list of: "+strings.Join(allScenarios, ", "))
	fs.StringVar(&o.databaseURL, "database-url", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable",
		"PostgreSQL server to use; a fresh database partnerbench_<random> is created on it and dropped at the end")
	fs.StringVar(&o.redisURL, "redis-url", "redis://127.0.0.1:6379/14", "Redis database to use (FLUSHDB at the start)")
	fs.IntVar(&o.runs, "runs", 3, "runs per figure (the median is reported with min and max); --quick: 1")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of one measured run of a load scenario; --quick: 2s")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before the runs of a load scenario; --quick: 500ms")
	fs.IntVar(&o.concurrency, "concurrency", 16, "closed-loop clients of a load scenario")
	fs.StringVar(&o.out, "out", "bench-results.md", "markdown file the tables are written to; a file that exists and holds the results markers (BENCHMARKS.md) gets them between the markers, its other text kept")
	fs.StringVar(&o.plots, "plots", "", "folder the plots (PNG) are drawn into (default: the results file's name without extension, plus -plots)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the generated data and of the random choices of the clients")
	fs.IntVar(&o.records, "records", 0, "ingest: records per run (default 1,000,000; --quick: 20,000)")
	fs.BoolVar(&o.randomIDs, "random-ids", false, "ingest: externalIds in random order (as UUIDs would be) instead of increasing")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the process (server and load generator) over the scenarios to this file")
	fs.StringVar(&logLevel, "log-level", "warn", "level of the product server's log on stderr: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.quick {
		if !set["runs"] {
			o.runs = 1
		}
		if !set["duration"] {
			o.duration = 2 * time.Second
		}
		if !set["warmup"] {
			o.warmup = 500 * time.Millisecond
		}
	}
	if o.records == 0 {
		o.records = 1_000_000
		if o.quick {
			o.records = 20_000
		}
	}
	switch {
	case o.runs < 1:
		return nil, errors.New("--runs must be at least 1")
	case o.duration < 100*time.Millisecond:
		return nil, errors.New("--duration must be at least 100ms")
	case o.warmup < 0:
		return nil, errors.New("--warmup cannot be negative")
	case o.concurrency < 1 || o.concurrency > 1024:
		return nil, errors.New("--concurrency must be from 1 to 1024")
	case o.records < 1:
		return nil, errors.New("--records must be at least 1")
	}
	if err := o.logLevel.UnmarshalText([]byte(logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	for _, s := range strings.Split(scenario, ",") {
		s = strings.TrimSpace(s)
		switch {
		case s == "all":
			o.scenarios = append(o.scenarios, allScenarios...)
		case contains(allScenarios, s):
			o.scenarios = append(o.scenarios, s)
		default:
			return nil, fmt.Errorf("--scenario %q: want all or one of %s", s, strings.Join(allScenarios, ", "))
		}
	}
	o.scenarios = dedupe(o.scenarios)
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "partnerbench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()

	b, err := setup(ctx, o, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "partnerbench: setup:", err)
		if b != nil {
			b.close()
		}
		return 1
	}
	defer b.close()

	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(stderr, "partnerbench: --cpuprofile:", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
	rep := newReport(o, b.machine(ctx))
	fmt.Fprint(stdout, rep.header())
	failed := false
	for _, name := range o.scenarios {
		if ctx.Err() != nil {
			break
		}
		sec, err := b.runScenario(ctx, name)
		if sec != nil {
			rep.add(sec)
			fmt.Fprint(stdout, sec.markdown())
		}
		if err != nil {
			failed = true
			rep.fail(name, err)
			fmt.Fprintf(stderr, "partnerbench: %s: %v\n", name, err)
			fmt.Fprintf(stdout, "\n**%s failed:** %v\n", name, err)
		}
	}
	if ctx.Err() != nil {
		failed = true
		rep.fail("run", errors.New("interrupted"))
		fmt.Fprintln(stderr, "partnerbench: interrupted")
	}
	took := time.Since(start).Round(100 * time.Millisecond)
	rep.took = took
	dir := o.plots
	if dir == "" {
		dir = plotsDir(o.out)
	}
	if figs, err := drawCharts(dir, filepath.Dir(o.out), rep.sections); err != nil {
		fmt.Fprintln(stderr, "partnerbench: draw plots:", err)
		failed = true
	} else {
		for s, md := range figs {
			s.figures = md
		}
	}
	if err := writeResults(o.out, rep.markdown()); err != nil {
		fmt.Fprintln(stderr, "partnerbench: write results:", err)
		failed = true
	} else {
		fmt.Fprintf(stderr, "partnerbench: results written to %s (%s in all)\n", o.out, took)
	}
	if failed {
		return 1
	}
	return 0
}

// runScenario runs one scenario by name.
func (b *bench) runScenario(ctx context.Context, name string) (*section, error) {
	b.logf("== scenario %s", name)
	before := loadAverage()
	var (
		sec *section
		err error
	)
	switch name {
	case "ingest":
		sec, err = b.ingest(ctx)
	case "allocate":
		sec, err = b.allocate(ctx)
	case "point":
		sec, err = b.point(ctx)
	case "tree":
		sec, err = b.tree(ctx)
	case "children":
		sec, err = b.children(ctx)
	case "notify":
		sec, err = b.notify(ctx)
	case "webhook":
		sec, err = b.webhook(ctx)
	case "authorize":
		sec, err = b.authorize(ctx)
	case "overspend":
		sec, err = b.overspend(ctx)
	case "migrate":
		sec, err = b.migrate(ctx)
	case "billrun":
		sec, err = b.billrun(ctx)
	default:
		return nil, fmt.Errorf("unknown scenario %q", name)
	}
	if sec != nil {
		// Other processes on the machine skew the figures; say how busy it was.
		sec.notes = append(sec.notes, fmt.Sprintf("Load average (1 min) of the machine: %s before the scenario, %s after it.", before, loadAverage()))
	}
	return sec, err
}

// loadAverage is the 1-minute load average of the machine.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil || len(strings.Fields(string(b))) == 0 {
		return "unknown"
	}
	return strings.Fields(string(b))[0]
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
