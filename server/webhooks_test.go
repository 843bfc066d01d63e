package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/notify/webhook"
	"partnerd/server"
	"partnerd/testkit"
)

// Webhooks through GraphQL, with the real workers: a distributor registers
// an endpoint, a credit allocation to its reseller's customer reaches the
// receiver signed with the secret shown at creation, a test event follows,
// and the endpoint's delivery log shows both. Another distributor sees
// none of it.
func TestWebhooks_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	testkit.StartWorkers(t, tr, testkit.WorkerOptions{RedisURL: api.RedisURL, Prefix: api.Prefix})

	var mu sync.Mutex
	type req struct {
		header http.Header
		body   []byte
	}
	var got []req
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, req{r.Header.Clone(), b})
		mu.Unlock()
	}))
	defer rcv.Close()
	waitFor := func(n int) []req {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			mu.Lock()
			list := append([]req(nil), got...)
			mu.Unlock()
			if len(list) >= n {
				return list
			}
			if time.Now().After(deadline) {
				t.Fatalf("waited for %d webhook requests, have %d", n, len(list))
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	var types struct{ WebhookEventTypes []string }
	api.MustDo(t, tr.D1.Token, `{ webhookEventTypes }`, nil, &types)
	if !strings.Contains(strings.Join(types.WebhookEventTypes, ","), "credit.allocated") {
		t.Fatalf("event types %v", types.WebhookEventTypes)
	}
	d1 := ids.Encode("Account", tr.D1.Account.ID)
	const createQ = `mutation($p: ID!, $u: String!, $t: [String!]!) { createWebhookEndpoint(partnerId: $p, url: $u, eventTypes: $t, description: "ERP") {
		secret endpoint { id url enabled secretHint eventTypes partner { id } } } }`
	if r := api.Do(t, tr.D2.Token, createQ, map[string]any{"p": d1, "u": rcv.URL, "t": []string{"credit.allocated"}}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor's endpoint: %s", r.Code())
	}
	if r := api.Do(t, tr.D1.Token, createQ, map[string]any{"p": d1, "u": "https://169.254.169.254/", "t": []string{"credit.allocated"}}); r.Code() != "VALIDATION" {
		t.Fatalf("a link-local URL: %s", r.Code())
	}
	var created struct {
		CreateWebhookEndpoint struct {
			Secret   string
			Endpoint struct {
				ID, URL, SecretHint string
				Enabled             bool
				EventTypes          []string
			}
		}
	}
	api.MustDo(t, tr.D1.Token, createQ, map[string]any{"p": d1, "u": rcv.URL, "t": []string{"credit.allocated"}}, &created)
	c := created.CreateWebhookEndpoint
	if c.Secret == "" || !c.Endpoint.Enabled || !strings.HasSuffix(c.Secret, strings.TrimPrefix(c.Endpoint.SecretHint, "…")) {
		t.Fatalf("created %+v", c)
	}

	// D1 gives credit to R1, R1 to its customer C1: both concern D1's subtree.
	api.MustDo(t, tr.Platform.Token, `mutation($a: ID!) { setCreditLimit(accountId: $a, amount: "1000") { id } }`, map[string]any{"a": d1}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($a: ID!) { allocateCredit(childId: $a, amount: "300") { id } }`, map[string]any{"a": ids.Encode("Account", tr.R1.Account.ID)}, nil)
	api.MustDo(t, tr.R1.Token, `mutation($a: ID!) { allocateCredit(childId: $a, amount: "120.50") { id } }`, map[string]any{"a": ids.Encode("Account", tr.C1.Account.ID)}, nil)
	list := waitFor(2)
	children := map[float64]bool{}
	for _, r := range list {
		if err := webhook.Verify(r.header.Get(webhook.SignatureHeader), r.body, c.Secret, 5*time.Minute, time.Now()); err != nil {
			t.Fatalf("signature: %v", err)
		}
		var body struct {
			ID, Type string
			Data     map[string]any
		}
		if err := json.Unmarshal(r.body, &body); err != nil || body.Type != "credit.allocated" || !strings.HasPrefix(body.ID, "evt_") {
			t.Fatalf("body %s: %v", r.body, err)
		}
		children[body.Data["childId"].(float64)] = true
	}
	if !children[float64(tr.R1.Account.ID)] || !children[float64(tr.C1.Account.ID)] {
		t.Fatalf("events for %v", children)
	}

	var test struct{ SendTestWebhook struct{ EventID string } }
	api.MustDo(t, tr.D1.Token, `mutation($e: ID!) { sendTestWebhook(endpointId: $e) { eventId } }`, map[string]any{"e": c.Endpoint.ID}, &test)
	if r := api.Do(t, tr.D2.Token, `mutation($e: ID!) { sendTestWebhook(endpointId: $e) { eventId } }`, map[string]any{"e": c.Endpoint.ID}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor's test: %s", r.Code())
	}
	list = waitFor(3)
	if h := list[2].header; h.Get(webhook.EventIDHeader) != test.SendTestWebhook.EventID || h.Get(webhook.EventTypeHeader) != "webhook.test" {
		t.Fatalf("test request headers %v, event %s", h, test.SendTestWebhook.EventID)
	}

	// The delivery log: three SENT deliveries, newest first, with their attempts.
	var log struct {
		WebhookEndpoints struct {
			TotalCount int
			Edges      []struct {
				Node struct {
					Deliveries struct {
						TotalCount int
						Edges      []struct {
							Node struct {
								EventType, Status, Channel string
								AttemptLog                 []struct{ Outcome, Response string }
							}
						}
					}
				}
			}
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		api.MustDo(t, tr.D1.Token, `query($p: ID!) { webhookEndpoints(partnerId: $p) { totalCount edges { node {
			deliveries { totalCount edges { node { eventType status channel attemptLog { outcome response } } } } } } } }`, map[string]any{"p": d1}, &log)
		e := log.WebhookEndpoints.Edges[0].Node.Deliveries
		if e.TotalCount == 3 && e.Edges[0].Node.Status == "SENT" {
			n := e.Edges[0].Node
			if n.EventType != "webhook.test" || n.Channel != "WEBHOOK" || len(n.AttemptLog) != 1 || !strings.HasPrefix(n.AttemptLog[0].Response, "HTTP 200") {
				t.Fatalf("newest delivery %+v", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %+v", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	var other struct{ WebhookEndpoints struct{ TotalCount int } }
	if r := api.Do(t, tr.D2.Token, `query($p: ID!) { webhookEndpoints(partnerId: $p) { totalCount } }`, map[string]any{"p": d1}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor's list: %s", r.Code())
	}
	api.MustDo(t, tr.D2.Token, `query($p: ID!) { webhookEndpoints(partnerId: $p) { totalCount } }`, map[string]any{"p": ids.Encode("Account", tr.D2.Account.ID)}, &other)
	if other.WebhookEndpoints.TotalCount != 0 {
		t.Fatalf("D2 has %d endpoints", other.WebhookEndpoints.TotalCount)
	}

	// Rotate, disable and enable through GraphQL.
	var rotated struct {
		RotateWebhookSecret struct {
			Secret   string
			Endpoint struct {
				SecretHint               string
				PreviousSecretValidUntil *string
			}
		}
	}
	api.MustDo(t, tr.D1.Token, `mutation($e: ID!) { rotateWebhookSecret(id: $e, overlapHours: 1) { secret endpoint { secretHint previousSecretValidUntil } } }`, map[string]any{"e": c.Endpoint.ID}, &rotated)
	if r := rotated.RotateWebhookSecret; r.Secret == c.Secret || r.Endpoint.PreviousSecretValidUntil == nil {
		t.Fatalf("rotated %+v", r)
	}
	var toggled struct {
		DisableWebhookEndpoint struct {
			Enabled        bool
			DisabledReason string
		}
	}
	api.MustDo(t, tr.D1.Token, `mutation($e: ID!) { disableWebhookEndpoint(id: $e, reason: "ERP maintenance") { enabled disabledReason } }`, map[string]any{"e": c.Endpoint.ID}, &toggled)
	if toggled.DisableWebhookEndpoint.Enabled || !strings.Contains(toggled.DisableWebhookEndpoint.DisabledReason, "ERP maintenance") {
		t.Fatalf("disabled %+v", toggled)
	}
	var enabled struct{ EnableWebhookEndpoint struct{ Enabled bool } }
	api.MustDo(t, tr.D1.Token, `mutation($e: ID!) { enableWebhookEndpoint(id: $e) { enabled } }`, map[string]any{"e": c.Endpoint.ID}, &enabled)
	if !enabled.EnableWebhookEndpoint.Enabled {
		t.Fatal("not enabled")
	}
}
