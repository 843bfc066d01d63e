package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The peer of the point and tree scenarios (issue 10): PostGraphile 4.14.1,
// from npm, run with the machine's Node.js against the benchmark's database,
// so both servers answer the same questions from the same accounts table.

const (
	postgraphileVersion = "4.14.1"
	// peerStartTimeout bounds the wait for PostGraphile to introspect the
	// database and answer its first query.
	peerStartTimeout = 60 * time.Second
	// npmInstallTimeout bounds the install of PostGraphile into the cache.
	npmInstallTimeout = 5 * time.Minute
	// peerName names the peer in tables and progress lines.
	peerName = "PostGraphile"
)

// postgraphile is a running PostGraphile server, in its own process group.
type postgraphile struct {
	// url is the GraphQL endpoint, http://127.0.0.1:port/graphql.
	url string
	// node is the version of Node.js it runs on (node --version).
	node string
	// args are its command line options after the script (for the notes).
	args   []string
	cmd    *exec.Cmd
	out    *peerOutput
	exited chan struct{}
	once   sync.Once
}

// peerOptions are PostGraphile's options besides the connection, host and
// port: a read server as one would run it in production. Simple lists
// beside the Relay connections (--simple-collections both), so the children
// relation is also the list accountsByParentIdList, which PostGraphile
// answers faster than the connection accountsByParentId. Defaults kept:
// RBAC is ignored (the benchmark connects as the database owner, who may
// read everything anyway); no JWT secret, so no authentication at all; no
// --watch, no query batching, no CORS, no subscriptions.
func peerOptions() []string {
	return []string{
		"--schema", "public",
		"--disable-graphiql",
		"--disable-query-log",
		"--simple-collections", "both",
		// The same number of database connections as partnerd's pool.
		"--max-pool-size", strconv.Itoa(dbMaxConns),
	}
}

// startPostGraphile installs PostGraphile into the user's cache folder when
// it is not there yet and starts it on a free loopback port against the
// benchmark's database; it answers a trivial query when this returns. The
// caller stops it with stop.
func (b *bench) startPostGraphile(ctx context.Context) (*postgraphile, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("Node.js is needed to run PostGraphile: %w", err)
	}
	version, err := exec.CommandContext(ctx, node, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("node --version: %w", err)
	}
	dir, err := b.installPostGraphile(ctx)
	if err != nil {
		return nil, err
	}
	port, err := peerFreePort()
	if err != nil {
		return nil, err
	}
	p := &postgraphile{url: "http://127.0.0.1:" + strconv.Itoa(port) + "/graphql",
		node: strings.TrimSpace(string(version)), args: peerOptions(), out: &peerOutput{max: 8 << 10},
		exited: make(chan struct{})}
	args := append([]string{filepath.Join(dir, "node_modules", ".bin", "postgraphile"),
		"--connection", b.dbURL, "--host", "127.0.0.1", "--port", strconv.Itoa(port)}, p.args...)
	p.cmd = exec.Command(node, args...)
	p.cmd.Dir = dir
	p.cmd.Env = append(os.Environ(), "NODE_ENV=production")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Its own process group, so stop ends whatever it started too.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b.logf("starting PostGraphile %s (Node.js %s) on 127.0.0.1:%d", postgraphileVersion, p.node, port)
	t0 := time.Now()
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start PostGraphile: %w", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx); err != nil {
		p.stop()
		return nil, err
	}
	b.logf("PostGraphile answering at %s after %s", p.url, time.Since(t0).Round(time.Millisecond))
	return p, nil
}

// waitReady polls PostGraphile with a trivial query until it answers,
// it exits or peerStartTimeout passes.
func (p *postgraphile) waitReady(ctx context.Context) error {
	c := newClient(1, 2*time.Second)
	defer c.CloseIdleConnections()
	deadline := time.Now().Add(peerStartTimeout)
	body := []byte(`{"query":"{ __typename }"}`)
	var last error
	for {
		out, err := p.query(ctx, c, body)
		if err == nil && bytes.Contains(out, []byte(`"Query"`)) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected answer: %s", clip(out))
		}
		last = err
		select {
		case <-p.exited:
			return fmt.Errorf("PostGraphile exited (%v) before answering; its output ends with: %s", p.cmd.ProcessState, p.out.tail())
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("PostGraphile did not answer within %s (last: %v); its output ends with: %s", peerStartTimeout, last, p.out.tail())
		}
	}
}

// query POSTs one GraphQL body to PostGraphile on c and returns the answer,
// failing on a transport error, a status other than 200 or an errors entry.
func (p *postgraphile) query(ctx context.Context, c *http.Client, body []byte) ([]byte, error) {
	return graphqlAt(ctx, c, p.url, "", body)
}

// stop ends PostGraphile's process group: SIGTERM, then SIGKILL after 5 s.
func (p *postgraphile) stop() {
	p.once.Do(func() {
		if p.cmd == nil || p.cmd.Process == nil {
			return
		}
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
			<-p.exited
		}
	})
}

// commandLine is how PostGraphile was run, for the notes (the connection
// string left out).
func (p *postgraphile) commandLine() string {
	return "postgraphile --connection <the benchmark's database> " + strings.Join(p.args, " ")
}

// installPostGraphile returns the folder PostGraphile is installed in,
// <user cache>/partnerbench/postgraphile-<version>, installing it with npm
// first when it is not there.
func (b *bench) installPostGraphile(ctx context.Context) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder for PostGraphile: %w", err)
	}
	dir := filepath.Join(cache, "partnerbench", "postgraphile-"+postgraphileVersion)
	bin := filepath.Join(dir, "node_modules", ".bin", "postgraphile")
	if _, err := os.Stat(bin); err == nil {
		b.logf("PostGraphile %s found in %s", postgraphileVersion, dir)
		return dir, nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", fmt.Errorf("npm is needed to install PostGraphile: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	b.logf("installing postgraphile@%s with npm into %s", postgraphileVersion, dir)
	t0 := time.Now()
	ictx, cancel := context.WithTimeout(ctx, npmInstallTimeout)
	defer cancel()
	cmd := exec.CommandContext(ictx, npm, "install", "--no-audit", "--no-fund", "--prefix", dir, "postgraphile@"+postgraphileVersion)
	cmd.Dir = dir
	out := &peerOutput{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("npm install postgraphile@%s: %w; npm's output ends with: %s", postgraphileVersion, err, out.tail())
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("npm install postgraphile@%s did not install %s; npm's output ends with: %s", postgraphileVersion, bin, out.tail())
	}
	b.logf("installed PostGraphile %s in %s", postgraphileVersion, time.Since(t0).Round(100*time.Millisecond))
	return dir, nil
}

// startPeer starts PostGraphile for a scenario. In quick mode (CI) a
// failure to install or start it is not the harness's: it is logged and
// returned as the reason to skip the peer; in full mode it is an error.
func (b *bench) startPeer(ctx context.Context, scenario string) (p *postgraphile, skipped string, err error) {
	p, err = b.startPostGraphile(ctx)
	if err == nil {
		return p, "", nil
	}
	if b.o.quick && ctx.Err() == nil {
		b.logf("%s: %s skipped: %v", scenario, peerName, err)
		return nil, clip([]byte(err.Error())), nil
	}
	return nil, "", fmt.Errorf("%s: %w", peerName, err)
}

// peerFreePort is a TCP port on 127.0.0.1 that was free a moment ago.
func peerFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// peerOutput keeps the last max bytes written to it.
type peerOutput struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *peerOutput) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}

// tail is the last lines written, on one line.
func (t *peerOutput) tail() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(t.buf)), "\n") {
		// Stack frames say little about why; the lines around them do.
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, " at ") && !strings.HasPrefix(l, "at ") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 15 {
		lines = lines[len(lines)-15:]
	}
	s := strings.Join(lines, " ⏎ ")
	if s == "" {
		return "(nothing)"
	}
	return s
}

// peerFigures are the rows of a load scenario measured on both servers:
// each figure's median, min and max for partnerd, then for the peer.
func peerFigures(ours, peer []runResult) [][]string {
	return figureRows(loadFigures("requests/s", cpuRowLabel+"; for "+peerName+", the load generator alone"), [][]runResult{ours, peer})
}

// peerHeader is the header of peerFigures' table.
var peerHeader = []string{"figure", "partnerd median", "min", "max", peerName + " median", "min", "max"}

// peerRateRow compares the requests/s of run i of each side, run by run:
// the median, min and max of ours/peer, and whether the median reaches
// target (a factor).
func peerRateRow(ours, peer []runResult, target float64) []string {
	n := min(len(ours), len(peer))
	a, b := make([]float64, n), make([]float64, n)
	for i := range n {
		a[i], b[i] = ours[i].rate(), peer[i].rate()
	}
	rs, verdict := ratioOf(a, b, 100*target)
	return []string{"requests/s, partnerd ÷ " + peerName, peerFactor(rs.Median / 100), peerFactor(rs.Min / 100), peerFactor(rs.Max / 100),
		"target ≥ " + strconv.FormatFloat(target, 'f', -1, 64) + "×: " + verdict, "", ""}
}

// peerP99Row compares the p99 latency of run i of each side: the median,
// min and max of ours/peer; the target is no worse (a median at most 1×).
func peerP99Row(ours, peer []runResult) []string {
	n := min(len(ours), len(peer))
	r := make([]float64, n)
	for i := range n {
		r[i] = ours[i].p(99) / peer[i].p(99)
	}
	s := spreadOf(r)
	verdict := "met"
	if s.Median > 1 {
		verdict = "missed"
	}
	return []string{"p99 latency, partnerd ÷ " + peerName, peerFactor(s.Median), peerFactor(s.Min), peerFactor(s.Max),
		"target ≤ 1× (no worse): " + verdict, "", ""}
}

// times formats a factor: 1.53×.
func peerFactor(f float64) string { return strconv.FormatFloat(f, 'f', 2, 64) + "×" }

// peerCharts are a peer comparison's plots: requests/s and p99 latency
// (medians) of partnerd and the peer, named after the scenario.
func peerCharts(scenario string, ours, peer []runResult) []chart {
	med := func(runs []runResult, f func(runResult) float64) float64 { return spreadBy(runs, f).Median }
	p99 := func(r runResult) float64 { return r.p(99) }
	groups := []string{"partnerd (GraphQL, authenticated)", peerName + " " + postgraphileVersion}
	return []chart{
		{File: scenario + "-rate.png", Title: scenario + ": requests/s", YLabel: "requests/s", Groups: groups,
			Series: []chartSeries{{Name: "median of the runs", Values: []float64{med(ours, runResult.rate), med(peer, runResult.rate)}}}},
		{File: scenario + "-p99.png", Title: scenario + ": p99 latency", YLabel: "p99 (ms)", Groups: groups,
			Series: []chartSeries{{Name: "median of the runs", Values: []float64{med(ours, p99), med(peer, p99)}}}},
	}
}
