package server_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/hibiken/asynq"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/server"
	"partnerd/testkit"
	"partnerd/workers"
)

// wsClient speaks graphql-transport-ws.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
}

func dialWS(t *testing.T, api *testkit.API, token string) (*wsClient, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(api.Server.URL, "http") + "/graphql"
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.CloseNow() })
	c := &wsClient{t: t, conn: conn}
	c.send(map[string]any{"type": "connection_init", "payload": map[string]any{"Authorization": "Bearer " + token}})
	msg, err := c.read(5 * time.Second)
	if err != nil {
		return nil, err
	}
	if msg["type"] != "connection_ack" {
		return nil, &wsError{msg: msg}
	}
	return c, nil
}

type wsError struct{ msg map[string]any }

func (e *wsError) Error() string { b, _ := json.Marshal(e.msg); return string(b) }

func (c *wsClient) send(v any) {
	b, _ := json.Marshal(v)
	if err := c.conn.Write(context.Background(), websocket.MessageText, b); err != nil {
		c.t.Fatalf("ws write: %v", err)
	}
}

func (c *wsClient) read(d time.Duration) (map[string]any, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		_, b, err := c.conn.Read(ctx)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, err
		}
		if m["type"] == "ping" || m["type"] == "pong" || m["type"] == "ka" {
			continue
		}
		return m, nil
	}
}

// An event caused through one api process reaches a subscriber connected to
// another, through the outbox, the relay and Redis pub/sub.
func TestLive_FanOutAcrossServers(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	b := testkit.NewAPIOn(t, a.Tree, server.Options{}, a)
	tr := a.Tree

	qopt, err := asynq.ParseRedisURI(a.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	client := asynq.NewClient(qopt)
	t.Cleanup(func() { _ = client.Close() })
	relay := workers.NewRelay(tr.Store, client, a.Hub, slog.New(slog.NewTextHandler(io.Discard, nil)), workers.RelayOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() { _ = relay.Run(ctx) }()

	// The fixture's own changes are still on their way through the relay;
	// let them pass first, or their live events would reach the subscriber.
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, _, err := tr.Store.OutboxBacklog(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relay left %d outbox rows", n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	ws, err := dialWS(t, b, tr.D1.Token)
	if err != nil {
		t.Fatalf("connection_init: %v", err)
	}
	c1 := ids.Encode("Account", tr.C1.Account.ID)
	ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { accountUpdated(id: $id) { id name email tags { key value } } }`, "variables": map[string]any{"id": c1}}})
	topic := accounts.AccountTopic(tr.C1.Account.ID)
	deadline = time.Now().Add(5 * time.Second)
	for b.Hub.Subscribers(topic) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the subscription never registered on server B")
		}
		time.Sleep(10 * time.Millisecond)
	}

	for i, name := range []string{"Renamed Once", "Renamed Twice"} {
		a.MustDo(t, tr.D1.Token, `mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n}) { id } }`,
			map[string]any{"id": c1, "n": name}, nil)
		msg, err := ws.read(10 * time.Second)
		if err != nil {
			t.Fatalf("update %d: no event on server B: %v", i, err)
		}
		if msg["type"] != "next" {
			t.Fatalf("update %d: got %v", i, msg)
		}
		got := msg["payload"].(map[string]any)["data"].(map[string]any)["accountUpdated"].(map[string]any)
		if got["name"] != name || got["id"] != c1 {
			t.Fatalf("update %d: got %v", i, got)
		}
	}
}

// A subscription is authorised like everything else: without a token the
// connection is refused, and a foreign account is NOT_FOUND.
func TestLive_SubscriptionScope(t *testing.T) {
	a := testkit.NewAPI(t, server.Options{})
	tr := a.Tree
	if _, err := dialWS(t, a, "pd_not-a-token"); err == nil {
		t.Fatal("a bad token was accepted in connection_init")
	}
	ws, err := dialWS(t, a, tr.R1.Token)
	if err != nil {
		t.Fatal(err)
	}
	ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { accountUpdated(id: $id) { name } }`, "variables": map[string]any{"id": ids.Encode("Account", tr.C2.Account.ID)}}})
	msg, err := ws.read(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(msg)
	if msg["type"] != "error" && msg["type"] != "next" || !strings.Contains(string(raw), "NOT_FOUND") || strings.Contains(string(raw), tr.C2.Account.Name) {
		t.Fatalf("foreign subscription: %s", raw)
	}
}
