package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/redis/go-redis/v9"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/notify/email/emailtest"
	"partnerd/testkit"
)

// TestRedisCluster_Serve runs partnerd on a Redis Cluster of three masters
// (issue 12, point 2): REDIS_URL=redis+cluster://… carries the task queues
// (asynq), the live fan-out of subscriptions and the rate limiter. Checks:
// readiness is green; notifications are relayed, queued and delivered on
// every channel; a subscriber gets the update a mutation causes; the rate
// limiter answers RATE_LIMITED; and the keys are spread over the masters.
func TestRedisCluster_Serve(t *testing.T) {
	t.Parallel()
	nodes := startRedisCluster(t, 3)
	_, dbURL := missingDatabase(t)
	smtp := emailtest.NewSink(t)
	sms := testkit.NewSMSSink(t)
	addr := freeAddr(t)
	base := "http://" + addr
	vars := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": "redis+cluster://" + strings.Join(nodes, ","), "LIVE_PREFIX": "cluster:",
		"HTTP_ADDR": addr, "PUBLIC_URL": base,
		"SMTP_HOST": smtp.Host(), "SMTP_PORT": fmt.Sprint(smtp.Port()), "SMTP_TLS": "none", "SMTP_FROM": "notify@partnerd.test",
		"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": sms.URL(),
		"RATE_LIMIT_PER_SECOND": "2", "RATE_LIMIT_BURST": "5",
	}
	st, tr := migratedTree(t, vars)
	cust := customerWithPhone(t, tr, "Cluster Co", "+8613800000099")
	custID := ids.Encode(accounts.TypeAccount, cust)

	p := start(t, vars, "serve", "--no-migrate")
	p.waitHealthy(base)
	api := &toxClient{t: t, base: base, token: tr.Platform.Token, customer: custID, http: &http.Client{Timeout: 30 * time.Second}}
	api.waitReady()

	// Notifications: relay → asynq on the cluster → every channel.
	outboxIDs := emitArrears(t, st, []int64{cust}, 20)
	deadline := time.Now().Add(90 * time.Second)
	for {
		var open, total int
		if err := st.SQL.QueryRow(`SELECT count(*) FILTER (WHERE status <> 'SENT'), count(*) FROM deliveries WHERE outbox_id = ANY($1)`,
			outboxIDs).Scan(&open, &total); err != nil {
			t.Fatal(err)
		}
		if total > 0 && open == 0 {
			t.Logf("%d deliveries sent through queues on the cluster", total)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries not sent after 90s", open, total)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(sms.Delivered()) == 0 || smtp.Count() == 0 {
		t.Errorf("the sinks got %d SMS and %d emails", len(sms.Delivered()), smtp.Count())
	}

	// A subscription: the update a mutation causes reaches the subscriber
	// through the relay and pub/sub on the cluster.
	ws := dialGraphQLWS(t, "ws://"+addr+"/graphql", tr.Platform.Token)
	ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": fmt.Sprintf(`subscription { accountUpdated(id: %q) { name } }`, custID)}})
	// The subscription reaches the hub a moment after "subscribe" is sent and
	// says nothing until then, so the change is made again until one arrives.
	var got map[string]any
	for i := 0; i < 40 && got == nil; i++ {
		mutation, _ := json.Marshal(map[string]string{"query": fmt.Sprintf(`mutation { updateAccount(id: %q, input: {name: "Cluster Co %d"}) { name } }`, custID, i)})
		if status, body, _, err := api.do(http.MethodPost, "/graphql", string(mutation)); err != nil || status != http.StatusOK || strings.Contains(string(body), `"errors"`) {
			t.Fatalf("updateAccount: %d %s %v", status, body, err)
		}
		got, _ = ws.tryNext(500 * time.Millisecond)
	}
	if got["type"] != "next" || !strings.Contains(fmt.Sprint(got["payload"]), "Cluster Co ") {
		t.Errorf("subscriber got %v, want the renamed account", got)
	}

	// The rate limiter's counters live on the cluster too.
	limited := false
	other := &toxClient{t: t, base: base, token: tr.R1.Token, customer: custID, http: api.http}
	for i := 0; i < 20 && !limited; i++ {
		status, body, _, err := other.do(http.MethodPost, "/graphql", `{"query":"{ me { kind } }"}`)
		if err != nil {
			t.Fatal(err)
		}
		limited = status == http.StatusTooManyRequests && strings.Contains(string(body), "RATE_LIMITED")
	}
	if !limited {
		t.Error("20 quick requests over a limit of 2 a second (burst 5) were never refused with RATE_LIMITED")
	}

	// The keys are spread over the masters: the cluster is really used.
	used := 0
	for _, n := range nodes {
		rdb := redis.NewClient(&redis.Options{Addr: n})
		size, err := rdb.DBSize(context.Background()).Result()
		_ = rdb.Close()
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 {
			used++
		}
	}
	if used < 2 {
		t.Errorf("keys on %d of %d masters, want them spread", used, len(nodes))
	}
	t.Logf("cluster of %d masters: keys on %d", len(nodes), used)

	p.stop(syscall.SIGTERM, 30*time.Second)
}

// graphQLWS is a graphql-transport-ws client of the test. A goroutine
// reads the connection (a read whose context ends closes a coder/websocket
// connection, so reads are never cut short to poll).
type graphQLWS struct {
	t    *testing.T
	conn *websocket.Conn
	msgs chan map[string]any
}

func dialGraphQLWS(t *testing.T, url, token string) *graphQLWS {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	c := &graphQLWS{t: t, conn: conn, msgs: make(chan map[string]any, 64)}
	go func() {
		defer close(c.msgs)
		for {
			_, b, err := conn.Read(context.Background())
			if err != nil {
				return
			}
			var m map[string]any
			if json.Unmarshal(b, &m) != nil {
				m = map[string]any{"type": "unreadable", "raw": string(b)}
			}
			if t := m["type"]; t == "ping" || t == "pong" || t == "ka" {
				continue
			}
			c.msgs <- m
		}
	}()
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	if m, ok := c.tryNext(10 * time.Second); !ok || m["type"] != "connection_ack" {
		t.Fatalf("connection_init: %v", m)
	}
	return c
}

func (c *graphQLWS) send(v any) {
	c.t.Helper()
	b, _ := json.Marshal(v)
	if err := c.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

// tryNext is the next message that is not a keep-alive, if one comes within
// the time.
func (c *graphQLWS) tryNext(within time.Duration) (map[string]any, bool) {
	select {
	case m, ok := <-c.msgs:
		return m, ok
	case <-time.After(within):
		return nil, false
	}
}
