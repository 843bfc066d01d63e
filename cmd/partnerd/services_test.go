package main

// Private PostgreSQL and Redis servers for the fault tests: the tests stop,
// kill and restart them, which they must never do to the machine's shared
// services (other tests run against those at the same time).

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// pgCluster is a PostgreSQL cluster of the test's own, in a temporary
// directory, listening on 127.0.0.1 only.
type pgCluster struct {
	t    *testing.T
	bin  string // the server's bin directory
	dir  string // the cluster's data directory
	port int
	// as runs the server's commands as this user (PostgreSQL refuses to run
	// as root), "" for the test's own user.
	as string
}

// startPostgres initdb's and starts a cluster; the test's cleanup stops it
// and removes its files.
func startPostgres(t *testing.T) *pgCluster {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		if p, err := exec.LookPath("initdb"); err == nil {
			bins = []string{p}
		}
	}
	if len(bins) == 0 {
		t.Fatal("no initdb: the fault tests need the PostgreSQL server binaries (Debian: postgresql)")
	}
	sort.Strings(bins)
	c := &pgCluster{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	root, err := os.MkdirTemp("", "partnerd-faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c.dir = filepath.Join(root, "data")
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, and there is no postgres user to run the test cluster as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(root, uid, gid); err != nil {
			t.Fatal(err)
		}
		c.as = "postgres"
	}
	t.Cleanup(func() {
		_ = c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop")
		_ = os.RemoveAll(root)
	})
	if err := c.run("initdb", "-D", c.dir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"); err != nil {
		t.Fatal(err)
	}
	c.port = freePort(t)
	if err := c.start(); err != nil {
		t.Fatal(err)
	}
	return c
}

// URL is the connection string of database name on the cluster.
func (c *pgCluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

func (c *pgCluster) start() error {
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -c unix_socket_directories=%s -c max_connections=200 -c fsync=on",
		c.port, filepath.Dir(c.dir))
	return c.run("pg_ctl", "-D", c.dir, "-l", filepath.Join(filepath.Dir(c.dir), "server.log"), "-o", opts, "-w", "-t", "60", "start")
}

// Restart stops the cluster as a crash would (immediate: no checkpoint,
// every connection cut), keeps it down for down, and starts it again
// (crash recovery replays the WAL).
func (c *pgCluster) Restart(down time.Duration) {
	c.t.Helper()
	if err := c.run("pg_ctl", "-D", c.dir, "-m", "immediate", "-w", "stop"); err != nil {
		c.t.Fatal(err)
	}
	time.Sleep(down)
	if err := c.start(); err != nil {
		c.t.Fatal(err)
	}
}

func (c *pgCluster) run(name string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	path := filepath.Join(c.bin, name)
	var cmd *exec.Cmd
	if c.as != "" {
		cmd = exec.CommandContext(ctx, "runuser", append([]string{"-u", c.as, "--", path}, args...)...)
	} else {
		cmd = exec.CommandContext(ctx, path, args...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// redisServer is a Redis of the test's own that keeps nothing on disk, so a
// restart loses every key, as on our machines.
type redisServer struct {
	t    *testing.T
	port int
	cmd  *exec.Cmd
	done chan struct{}
}

// startRedis starts a server; the test's cleanup kills it.
func startRedis(t *testing.T) *redisServer {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatal("no redis-server: the fault tests need it (Debian: redis-server)")
	}
	r := &redisServer{t: t, port: freePort(t)}
	r.start()
	t.Cleanup(r.kill)
	return r
}

// URL is the server's REDIS_URL.
func (r *redisServer) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", r.port) }

func (r *redisServer) start() {
	r.t.Helper()
	r.cmd = exec.Command("redis-server", "--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--dir", os.TempDir(), "--loglevel", "warning")
	r.done = make(chan struct{})
	if err := r.cmd.Start(); err != nil {
		r.t.Fatalf("start redis-server: %v", err)
	}
	go func(cmd *exec.Cmd, done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(r.cmd, r.done)
	waitListening(r.t, fmt.Sprintf("127.0.0.1:%d", r.port))
}

func (r *redisServer) kill() {
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// Restart kills the server (SIGKILL: everything in it is lost), keeps it
// down for down, and starts an empty one on the same port.
func (r *redisServer) Restart(down time.Duration) {
	r.t.Helper()
	r.kill()
	time.Sleep(down)
	r.start()
}

func freePort(t *testing.T) int {
	t.Helper()
	_, p, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// startRedisCluster starts n Redis nodes with cluster mode on (each keeps
// nothing on disk), joins them into one cluster of n masters with
// redis-cli --cluster create, waits for cluster_state:ok, and returns the
// nodes' addresses. The test's cleanup kills them.
func startRedisCluster(t *testing.T, n int) []string {
	t.Helper()
	if _, err := exec.LookPath("redis-cli"); err != nil {
		t.Fatal("no redis-cli: the cluster test needs it (Debian: redis-tools)")
	}
	var addrs []string
	for i := 0; i < n; i++ {
		port := clusterPort(t)
		dir := t.TempDir()
		cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(dir, "nodes.conf"),
			"--save", "", "--appendonly", "no", "--dir", dir, "--loglevel", "warning")
		if err := cmd.Start(); err != nil {
			t.Fatalf("start cluster node: %v", err)
		}
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
		addr := fmt.Sprintf("127.0.0.1:%d", port)
		waitListening(t, addr)
		addrs = append(addrs, addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok := true
		for _, a := range addrs {
			host, port, _ := net.SplitHostPort(a)
			out, err := exec.CommandContext(ctx, "redis-cli", "-h", host, "-p", port, "cluster", "info").Output()
			if err != nil || !strings.Contains(string(out), "cluster_state:ok") {
				ok = false
			}
		}
		if ok {
			return addrs
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cluster %v is not ok after 30s", addrs)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// clusterPort is a free port whose cluster bus port (port + 10000) is free
// too.
func clusterPort(t *testing.T) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		bus, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port+10000))
		_ = ln.Close()
		if err == nil {
			_ = bus.Close()
			if port+10000 <= 65535 {
				return port
			}
		}
	}
	t.Fatal("no free port with a free cluster bus port")
	return 0
}

func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
