package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/shopspring/decimal"

	"partnerd/accounts"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify/email/emailtest"
	"partnerd/store/storetest"
	"partnerd/testkit"
)

// TestReplicas (issue 12, point 1): three `api`, two `worker` and two
// `scheduler` processes of the real binary on one PostgreSQL and one Redis,
// under a mixed workload sent round robin to the API replicas:
//   - ingestion that crosses a customer's budget thresholds and its overspend
//     freeze;
//   - a migration from submission through the workers' execution;
//   - renames watched by a subscriber on every API replica;
//   - the notifications all of it owes, on every channel.
//
// Checks: every subscriber got every update, in order; the migration
// completed and its subscriber saw it; the customer was frozen; every
// delivery is SENT, each SMS and each inbox message once; and no periodic
// task was scheduled twice for one period by the two schedulers.
//
// REPLICAS_SCALE (default 1; RELIABILITY.md has runs at 40 and 200) multiplies
// the renames and the frozen customers: each is one more customer whose
// records cross its thresholds and freeze it, with the notifications that
// owes.
func TestReplicas(t *testing.T) {
	t.Parallel()
	redisURL, prefix := storetest.RedisDB(t)
	rdb := redisClient(t, redisURL)
	replicaWorkload(t, redisURL, prefix, func(channel string) int64 {
		n, err := rdb.PubSubNumSub(context.Background(), channel).Result()
		if err != nil {
			return 0
		}
		return n[channel]
	})
}

// TestReplicas_RedisCluster runs the same workload with REDIS_URL naming a
// Redis Cluster of three masters (issue 12, point 2).
func TestReplicas_RedisCluster(t *testing.T) {
	t.Parallel()
	nodes := startRedisCluster(t, 3)
	replicaWorkload(t, "redis+cluster://"+strings.Join(nodes, ","), "replicas:", func(channel string) int64 {
		// Pub/sub is per node in a cluster: add up every master's count.
		var total int64
		for _, n := range nodes {
			c := redis.NewClient(&redis.Options{Addr: n})
			got, err := c.PubSubNumSub(context.Background(), channel).Result()
			_ = c.Close()
			if err == nil {
				total += got[channel]
			}
		}
		return total
	})
}

// replicaWorkload is TestReplicas on the Redis at redisURL; subscribers
// counts the subscribers of a pub/sub channel.
func replicaWorkload(t *testing.T, redisURL, prefix string, subscribers func(channel string) int64) {
	t.Helper()
	_, dbURL := missingDatabase(t)
	smtp := emailtest.NewSink(t)
	sms := testkit.NewSMSSink(t)
	vars := map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": prefix,
		"SMTP_HOST": smtp.Host(), "SMTP_PORT": fmt.Sprint(smtp.Port()), "SMTP_TLS": "none", "SMTP_FROM": "notify@partnerd.test",
		"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": sms.URL(), "RATE_LIMIT_PER_SECOND": "0", "LOG_LEVEL": "debug",
		"WORKER_CONCURRENCY": "5", "DB_MAX_CONNS": "8",
	}
	st, tr := migratedTree(t, vars)

	// The fixture, straight into PostgreSQL: credit for the migration's
	// source and receiver, an active customer whose budget freezes it on
	// overspend, a reviewer, and users with phones everywhere.
	cs := credit.New(st, testkit.Shanghai)
	gs := guard.New(st, guard.Options{Location: testkit.Shanghai})
	d := decimal.RequireFromString
	for _, step := range []struct {
		f      func(context.Context, int64, decimal.Decimal) (*models.Account, error)
		ctx    context.Context
		id     int64
		amount string
	}{
		{cs.SetLimit, tr.Platform.Ctx, tr.D2.Account.ID, "1000"},
		{cs.SetLimit, tr.Platform.Ctx, tr.S1.Account.ID, "1000"},
		{cs.Allocate, tr.D2.Ctx, tr.C5.Account.ID, "100"},
	} {
		if _, err := step.f(step.ctx, step.id, d(step.amount)); err != nil {
			t.Fatal(err)
		}
	}
	activate := func(partner testkit.Party, customer int64, amount string, action models.OverspendAction) {
		t.Helper()
		if _, err := gs.SetBudget(partner.Ctx, guard.BudgetInput{CustomerID: customer, Type: models.BudgetMonthly, Amount: d(amount), OverspendAction: action}); err != nil {
			t.Fatal(err)
		}
		if _, err := gs.Unfreeze(partner.Ctx, customer); err != nil {
			t.Fatal(err)
		}
	}
	activate(tr.D2, tr.C5.Account.ID, "1000", models.OverspendNone)
	scale := envInt(t, "REPLICAS_SCALE", 1)
	var spenders []int64
	for i := range scale {
		spender := customerWithPhone(t, tr, fmt.Sprintf("Spender Co %d", i), fmt.Sprintf("+86138%08d", 55+i))
		activate(tr.R1, spender, "100", models.OverspendFreeze)
		spenders = append(spenders, spender)
	}
	reviewer := tr.AddUser(t, tr.Platform.Account, models.RoleReviewer)
	tel := "+8613800000056"
	tr.AddUserWith(t, accounts.CreateUserInput{AccountID: tr.D2.Account.ID, Phone: &tel, Roles: []models.Role{models.RoleOperator}})

	// The processes.
	var apis []*toxClient
	var procs, schedulers []*proc
	for i := 0; i < 3; i++ {
		addr := freeAddr(t)
		p := start(t, withVars(vars, map[string]string{"HTTP_ADDR": addr, "PUBLIC_URL": "http://" + addr}), "api")
		p.waitHealthy("http://" + addr)
		procs = append(procs, p)
		apis = append(apis, &toxClient{t: t, base: "http://" + addr, token: tr.Platform.Token, http: &http.Client{Timeout: 30 * time.Second}})
	}
	for i := 0; i < 2; i++ {
		procs = append(procs, start(t, vars, "worker"))
		s := start(t, vars, "scheduler")
		schedulers = append(schedulers, s)
		procs = append(procs, s)
	}
	next := 0
	call := func(token, query string, vars map[string]any) gqlAnswer {
		t.Helper()
		c := apis[next%len(apis)]
		next++
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req := *c
		req.token = token
		status, data, _, err := req.do(http.MethodPost, "/graphql", string(body))
		var a gqlAnswer
		if err == nil {
			err = json.Unmarshal(data, &a)
		}
		if err != nil || status != http.StatusOK || len(a.Errors) > 0 {
			t.Fatalf("%s on %s: %d %s %v", query, c.base, status, data, err)
		}
		return a
	}
	acct := func(id int64) string { return ids.Encode(accounts.TypeAccount, id) }

	// Subscribers on every replica follow renames made through the others.
	// Each api process subscribes its hub to the topic's Redis channel for
	// its first subscriber: three subscribers of the channel say every
	// subscription is live.
	renames := 6 * scale
	// The fixture's own changes are still on their way through the relays:
	// let them pass first, or their updates would reach the subscribers.
	waitFor(t, 30*time.Second, "an empty outbox backlog", func() bool {
		n, _, err := st.OutboxBacklog(context.Background())
		return err == nil && n == 0
	})
	var subs []*graphQLWS
	for _, c := range apis {
		ws := dialGraphQLWS(t, "ws"+strings.TrimPrefix(c.base, "http")+"/graphql", tr.R1.Token)
		ws.send(map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
			"query": fmt.Sprintf(`subscription { accountUpdated(id: %q) { name } }`, acct(tr.C1.Account.ID))}})
		subs = append(subs, ws)
	}
	channel := prefix + "live:" + accounts.AccountTopic(tr.C1.Account.ID)
	waitFor(t, 20*time.Second, "three subscribers of "+channel, func() bool { return subscribers(channel) == int64(len(apis)) })
	for i := 0; i < renames; i++ {
		call(tr.R1.Token, `mutation($id: ID!, $n: String!) { updateAccount(id: $id, input: {name: $n}) { name } }`,
			map[string]any{"id": acct(tr.C1.Account.ID), "n": fmt.Sprintf("rename %d", i)})
	}

	// Ingestion across the replicas: 5 × 30 against a budget of 100 with
	// FREEZE_ACCOUNT crosses 50, 80 and 100 % and freezes the customer.
	started := time.Now()
	for i := 0; i < 5; i++ {
		for j, spender := range spenders {
			call(tr.Platform.Token, `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted } }`, map[string]any{"r": []any{map[string]any{
				"externalId": fmt.Sprintf("replicas-%d-%d", j, i), "customerId": acct(spender), "productCode": "ecs", "billingMode": "PAY_PER_USE",
				"usageAt": time.Now().UTC().Format(time.RFC3339), "listAmount": "30.00", "actualAmount": "30.00"}}})
		}
	}

	// A migration: S1 takes C5 from D2; created, submitted and approved
	// through different replicas, executed by the workers.
	a := call(tr.S1.Token, `mutation($s: ID!, $rows: [MigrationRowInput!]) { createMigration(sourceId: $s, rows: $rows) { id } }`,
		map[string]any{"s": acct(tr.D2.Account.ID), "rows": []map[string]any{{"accountId": acct(tr.C5.Account.ID), "creditToAllocate": "50"}}})
	var created struct{ CreateMigration struct{ ID string } }
	_ = json.Unmarshal(a.Data, &created)
	id := created.CreateMigration.ID
	migWS := dialGraphQLWS(t, "ws"+strings.TrimPrefix(apis[2].base, "http")+"/graphql", tr.S1.Token)
	migWS.send(map[string]any{"id": "m", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { migrationUpdated(id: $id) { status } }`, "variables": map[string]any{"id": id}}})
	call(tr.S1.Token, `mutation($id: ID!) { submitMigration(id: $id) { status } }`, map[string]any{"id": id})
	approve := `mutation($id: ID!) { approveMigration(id: $id, acknowledgeDataTransferStatement: true) { status } }`
	call(tr.D2.Token, approve, map[string]any{"id": id})
	call(reviewer.Token, approve, map[string]any{"id": id})

	// Every replica's subscriber gets one update per rename. An update
	// carries the account as it is when the subscriber's process resolves
	// it (two workers relay, so events may arrive in either order): the
	// last one resolved comes after every rename and names the last.
	var wg sync.WaitGroup
	for i, ws := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var names []string
			deadline := time.Now().Add(30 * time.Second)
			for len(names) < renames {
				m, ok := ws.tryNext(time.Until(deadline))
				if !ok {
					break
				}
				var p struct {
					Data struct{ AccountUpdated struct{ Name string } }
				}
				b, _ := json.Marshal(m["payload"])
				_ = json.Unmarshal(b, &p)
				names = append(names, p.Data.AccountUpdated.Name)
			}
			if len(names) < renames || names[len(names)-1] != fmt.Sprintf("rename %d", renames-1) {
				t.Errorf("subscriber on api %d got %d of %d updates: %v", i+1, len(names), renames, names)
			}
			if m, ok := ws.tryNext(500 * time.Millisecond); ok {
				t.Errorf("subscriber on api %d got an update more than the renames: %v", i+1, m)
			}
		}()
	}
	wg.Wait()

	// The migration completes; its subscriber on api 3 sees it.
	for deadline := time.Now().Add(60 * time.Second); ; {
		m, ok := migWS.tryNext(time.Until(deadline))
		if !ok {
			t.Fatal("the migration's subscriber saw no COMPLETED within 60s")
		}
		if strings.Contains(fmt.Sprint(m["payload"]), "COMPLETED") {
			break
		}
	}
	var parent int64
	if err := st.SQL.QueryRow(`SELECT parent_id FROM accounts WHERE id = $1`, tr.C5.Account.ID).Scan(&parent); err != nil || parent != tr.S1.Account.ID {
		t.Errorf("C5's parent is %d after the migration, want S1 (%d): %v", parent, tr.S1.Account.ID, err)
	}

	// The overspend freezes.
	waitFor(t, 60*time.Second, "every spender frozen", func() bool {
		var frozen int
		_ = st.SQL.QueryRow(`SELECT count(*) FROM accounts WHERE id = ANY($1) AND status LIKE 'FROZEN%'`, spenders).Scan(&frozen)
		return frozen == len(spenders)
	})

	// Every delivery sent, once.
	waitFor(t, time.Duration(90+scale)*time.Second, "every delivery SENT", func() bool {
		var open int
		_ = st.SQL.QueryRow(`SELECT count(*) FROM deliveries WHERE status <> 'SENT'`).Scan(&open)
		return open == 0
	})
	sentAfter := time.Since(started)
	var deliveries, smsDeliveries, inSite, inbox int
	if err := st.SQL.QueryRow(`SELECT count(*), count(*) FILTER (WHERE channel = 'SMS'), count(*) FILTER (WHERE channel = 'IN_SITE'),
		(SELECT count(*) FROM inbox_messages) FROM deliveries`).Scan(&deliveries, &smsDeliveries, &inSite, &inbox); err != nil {
		t.Fatal(err)
	}
	var kinds []string
	rows, err := st.SQL.Query(`SELECT DISTINCT event_type FROM deliveries ORDER BY 1`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		_ = rows.Scan(&k)
		kinds = append(kinds, k)
	}
	rows.Close()
	for _, want := range []string{"budget.threshold_crossed", "account.frozen", "migration.customer_migrated"} {
		if !strings.Contains(strings.Join(kinds, " "), want) {
			t.Errorf("no %s delivery among %v", want, kinds)
		}
	}
	if inbox != inSite {
		t.Errorf("%d inbox messages for %d in-site deliveries", inbox, inSite)
	}
	posts := map[string]int{}
	for _, p := range sms.Posts() {
		posts[p.ID]++
	}
	if len(sms.Delivered()) != smsDeliveries {
		t.Errorf("the SMS provider accepted %d distinct messages for %d SMS deliveries", len(sms.Delivered()), smsDeliveries)
	}
	for id, n := range posts {
		if n > 1 {
			t.Errorf("SMS %s posted %d times", id, n)
		}
	}

	// The two schedulers never scheduled one period twice, and both took part
	// (the first to tick takes a period, the other finds it taken).
	periods := map[string]int{}
	perScheduler := make([]int, len(schedulers))
	for i, s := range schedulers {
		for _, line := range strings.Split(s.stderr.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != "scheduled task" {
				continue
			}
			periods[fmt.Sprint(rec["name"], "@", rec["period"])]++
			perScheduler[i]++
		}
	}
	for k, n := range periods {
		if n > 1 {
			t.Errorf("%s scheduled %d times", k, n)
		}
	}
	if len(periods) == 0 {
		t.Error("no periodic task was scheduled")
	}
	for i, s := range schedulers {
		if perScheduler[i] == 0 && !strings.Contains(s.stderr.String(), "period already scheduled") {
			t.Errorf("scheduler %d neither scheduled a period nor found one scheduled: it did not take part", i+1)
		}
	}

	t.Logf("3 api, 2 worker, 2 scheduler processes: %d renames seen by each of %d subscribers; migration COMPLETED; %d spenders frozen; %d deliveries (%v) all SENT, %d SMS and %d inbox messages each once, %s after the first record; %d periods scheduled once each (%v per scheduler)",
		renames, len(subs), len(spenders), deliveries, kinds, smsDeliveries, inbox, sentAfter.Round(100*time.Millisecond), len(periods), perScheduler)
	for _, p := range procs {
		if p.exited() {
			t.Errorf("partnerd %s exited early", p.name)
			continue
		}
		p.stop(syscall.SIGTERM, 30*time.Second)
	}
}

// waitFor polls cond every 50 ms until it holds, failing the test after
// within.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// redisClient is a client of the Redis at url, closed at the test's end.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opt)
	t.Cleanup(func() { _ = c.Close() })
	return c
}
