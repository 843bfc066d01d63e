package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds, from 1 µs to 60 s, to 3
// significant digits.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

// client is one closed-loop worker: it sends a request, waits for the
// answer, records its latency and sends the next.
type client struct {
	b    *bench
	c    *http.Client
	rng  *rand.Rand
	hist *hdrhistogram.Histogram
	ok   int64
	errs int64
	// firstErr is the first error this client met.
	firstErr error
	// done counts requests of all clients, for progress.
	done *atomic.Int64
}

// do sends one GraphQL body, checks the answer with check (nil: any
// error-free 200) and records the outcome.
func (c *client) do(ctx context.Context, body []byte, check func([]byte) error) bool {
	return c.doWith(ctx, func() ([]byte, error) { return c.b.graphql(ctx, c.c, body) }, check)
}

// doWith is do for any request: send sends it on c.c and returns the
// answer's body (an error for a transport failure or an unexpected status).
func (c *client) doWith(ctx context.Context, send func() ([]byte, error), check func([]byte) error) bool {
	t0 := time.Now()
	out, err := send()
	if err == nil && check != nil {
		err = check(out)
	}
	us := time.Since(t0).Microseconds()
	c.done.Add(1)
	if err != nil {
		if ctx.Err() != nil {
			return false // the run was interrupted: neither a success nor a server error
		}
		c.errs++
		if c.firstErr == nil {
			c.firstErr = err
		}
		return false
	}
	c.ok++
	_ = c.hist.RecordValue(min(max(us, histMin), histMax))
	return true
}

// runResult is one measured run of a load scenario.
type runResult struct {
	Requests int64
	Errors   int64
	Elapsed  time.Duration
	Hist     *hdrhistogram.Histogram
	FirstErr error
	// CPU is the CPU time the harness process (partnerd's server and the
	// load generator) used during the run.
	CPU time.Duration
	// PeakRSS is the harness process's peak resident memory so far, in
	// bytes.
	PeakRSS int64
}

func (r runResult) rate() float64 { return float64(r.Requests) / r.Elapsed.Seconds() }

// cpuPerRequest is the harness process's CPU time per request, in
// milliseconds.
func (r runResult) cpuPerRequest() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.CPU.Microseconds()) / 1000 / float64(r.Requests)
}

// peakRSSMiB is PeakRSS in MiB.
func (r runResult) peakRSSMiB() float64 { return float64(r.PeakRSS) / (1 << 20) }

// processCPU is the CPU time (user and system) this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakRSS is this process's peak resident set size so far, in bytes.
func peakRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Maxrss * 1024 // kilobytes on Linux
}

// p returns the q-th percentile latency in milliseconds.
func (r runResult) p(q float64) float64 { return float64(r.Hist.ValueAtQuantile(q)) / 1000 }

func (r runResult) errorRate() float64 {
	if r.Requests == 0 {
		return 0
	}
	return float64(r.Errors) / float64(r.Requests)
}

// step is what one client does per iteration of its loop; it sends one or
// more requests through c.do.
type step func(ctx context.Context, c *client)

// closedLoop runs conc clients doing step until dur has passed (an
// iteration that has started is finished) and merges what they recorded.
// seed makes the clients' random choices reproducible.
func (b *bench) closedLoop(ctx context.Context, label string, conc int, dur time.Duration, seed uint64, hc *http.Client, s step) runResult {
	var done atomic.Int64
	clients := make([]*client, conc)
	for i := range clients {
		clients[i] = &client{b: b, c: hc, rng: rand.New(rand.NewPCG(seed, uint64(i))),
			hist: hdrhistogram.New(histMin, histMax, histDigits), done: &done}
	}
	prog := b.progress(label, int64(dur/time.Millisecond), "ms", func() string {
		return fmt.Sprintf("%d requests", done.Load())
	})
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(dur)
	rctx, cancel := context.WithDeadline(ctx, deadline.Add(time.Minute))
	defer cancel()
	stopTick := prog.tickTime(start, dur)
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rctx.Err() == nil && time.Now().Before(deadline) {
				s(rctx, c)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopTick()
	prog.finish()

	res := runResult{Elapsed: elapsed, Hist: hdrhistogram.New(histMin, histMax, histDigits), CPU: processCPU() - cpu0, PeakRSS: peakRSS()}
	for _, c := range clients {
		res.Requests += c.ok + c.errs
		res.Errors += c.errs
		res.Hist.Merge(c.hist)
		if res.FirstErr == nil {
			res.FirstErr = c.firstErr
		}
	}
	return res
}

// loadRuns warms up, then does o.runs measured runs of s and returns them;
// it fails when a run's error rate is above maxErrorRate.
func (b *bench) loadRuns(ctx context.Context, name string, seed uint64, s step) ([]runResult, error) {
	o := b.o
	hc := newClient(o.concurrency, 30*time.Second)
	defer hc.CloseIdleConnections()
	if o.warmup > 0 {
		w := b.closedLoop(ctx, name+" warm-up", o.concurrency, o.warmup, seed^0x5eed, hc, s)
		if w.Requests > 0 && w.errorRate() > maxErrorRate {
			return nil, fmt.Errorf("warm-up: %d of %d requests failed, the first: %v", w.Errors, w.Requests, w.FirstErr)
		}
	}
	var runs []runResult
	for i := 1; i <= o.runs; i++ {
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
		r := b.closedLoop(ctx, fmt.Sprintf("%s run %d/%d", name, i, o.runs), o.concurrency, o.duration, seed+uint64(i), hc, s)
		if ctx.Err() != nil {
			return runs, ctx.Err() // an interrupted run measures nothing
		}
		runs = append(runs, r)
		b.logf("%s run %d/%d: %.0f requests/s, p50 %.2f ms, p99 %.2f ms, %d errors of %d",
			name, i, o.runs, r.rate(), r.p(50), r.p(99), r.Errors, r.Requests)
		if r.Requests == 0 {
			return runs, fmt.Errorf("run %d sent no request", i)
		}
		if r.errorRate() > maxErrorRate {
			return runs, fmt.Errorf("run %d: %d of %d requests failed (more than %.0f%%), the first: %v",
				i, r.Errors, r.Requests, maxErrorRate*100, r.FirstErr)
		}
	}
	return runs, nil
}

// spread is the median of a figure over runs, with its min and max.
type spread struct{ Median, Min, Max float64 }

func spreadOf(vals []float64) spread {
	if len(vals) == 0 {
		return spread{}
	}
	s := append([]float64(nil), vals...)
	sort.Float64s(s)
	n := len(s)
	med := s[n/2]
	if n%2 == 0 {
		med = (s[n/2-1] + s[n/2]) / 2
	}
	return spread{Median: med, Min: s[0], Max: s[n-1]}
}

func spreadBy(runs []runResult, f func(runResult) float64) spread {
	vals := make([]float64, len(runs))
	for i, r := range runs {
		vals[i] = f(r)
	}
	return spreadOf(vals)
}

// ratioOf returns the spread of a[i]/b[i] in percent and whether its median
// meets the target percentage.
func ratioOf(a, b []float64, target float64) (spread, string) {
	ratios := make([]float64, len(a))
	for i := range a {
		ratios[i] = 100 * a[i] / b[i]
	}
	rs := spreadOf(ratios)
	if rs.Median < target {
		return rs, "missed"
	}
	return rs, "met"
}
