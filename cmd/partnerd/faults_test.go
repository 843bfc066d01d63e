package main

// Fault tests (issue 11, points 1 and 2): the real binaries against a
// PostgreSQL and a Redis of the test's own, which the test kills and
// restarts while notifications are in flight and the API is under load.
// RELIABILITY.md records the full-size figures and the command.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/models"
	"partnerd/notify"
	"partnerd/notify/email"
	"partnerd/notify/email/emailtest"
	"partnerd/store"
	"partnerd/testkit"
)

// envInt is the whole number in the environment variable name, or def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a whole number above 0", name, v)
	}
	return n
}

// faultEnv is the product's configuration in the fault tests: every wait
// short, the reconciliation sweeps quick, debug logs (the log scan reads
// them), no rate limit (the load is the test's own).
func faultEnv(dbURL, redisURL string, smtp *emailtest.Sink, smsURL, smtpPassword string) map[string]string {
	return map[string]string{
		"DATABASE_URL": dbURL, "REDIS_URL": redisURL, "LIVE_PREFIX": "faults:",
		"SMTP_HOST": smtp.Host(), "SMTP_PORT": strconv.Itoa(smtp.Port()), "SMTP_TLS": "none",
		"SMTP_USERNAME": "partnerd", "SMTP_PASSWORD": smtpPassword, "SMTP_FROM": "notify@partnerd.test",
		"SMS_PROVIDER": "webhook", "SMS_WEBHOOK_URL": smsURL,
		"SMTP_TIMEOUT": "2s", "SMS_TIMEOUT": "2s", "WEBHOOK_TIMEOUT": "2s",
		// Longer than any delivery task here (an email claim of 16 messages at
		// a local SMTP server), so a duplicate email comes from a kill, not
		// from a lease taken over while its task still sends.
		"SEND_LEASE":      "15s",
		"RECONCILE_AFTER": "2s", "RECONCILE_EVERY": "1s",
		"DB_CONNECT_TIMEOUT": "2s", "REQUEST_TIMEOUT": "10s", "REDIS_TIMEOUT": "1s",
		"RATE_LIMIT_PER_SECOND": "0", "LOG_LEVEL": "debug", "SHUTDOWN_TIMEOUT": "10s",
	}
}

// TestFaults_NothingLost puts FAULT_DELIVERIES notifications (default
// 1,200; RELIABILITY.md has the 10,000 run) in flight across in-site, email
// and SMS, then, while they are delivered: kills the worker with SIGKILL
// three times, restarts Redis (empty) three times and PostgreSQL (an
// immediate stop: crash recovery) once. Meanwhile an API process takes
// reads, writes and purchase checks. Afterwards:
//   - every delivery is SENT; each in-site delivery has exactly one inbox
//     message, each SMS reached the provider's inbox once (the webhook's id
//     is its dedupe key), and email duplicates (a worker killed between the
//     SMTP answer and its commit) are counted and reported;
//   - every emitted event was fanned out, and every outbox row settled;
//   - while PostgreSQL was down the API answered only retryable errors
//     (INTERNAL with extensions.retryable, or 503 on REST), did not crash,
//     came back on its own, and every acknowledged write is stored;
//   - no log line of any process holds a token, the SMTP password or a
//     message body.
func TestFaults_NothingLost(t *testing.T) {
	t.Parallel()
	target := envInt(t, "FAULT_DELIVERIES", 1200)
	ctx := context.Background()

	pg := startPostgres(t)
	rd := startRedis(t)
	smtp := emailtest.NewSink(t)
	sms := testkit.NewSMSSink(t)
	const smtpPassword = "smtp-Pa55-faults-7f3a9c"
	dbURL := pg.URL("partnerd_faults")
	vars := faultEnv(dbURL, rd.URL(), smtp, sms.URL(), smtpPassword)

	// The recipients: a reseller's finance user and, under it, customers
	// with a finance user each, all with phones: an arrears event of a
	// customer tells both, on all three channels.
	st, tr := migratedTree(t, vars)
	phone := func(n int) string { return fmt.Sprintf("+86138%08d", n) }
	tel := phone(1)
	tr.AddUserWith(t, accounts.CreateUserInput{AccountID: tr.R1.Account.ID, Roles: []models.Role{models.RoleFinance}, Phone: &tel})
	const customers = 20
	custIDs := make([]int64, customers)
	for i := range custIDs {
		custIDs[i] = customerWithPhone(t, tr, fmt.Sprintf("Faults %02d", i), phone(100+i))
	}

	// The events, committed before any worker runs: all in flight at once.
	perEvent := probeFanOut(t, st, custIDs[0])
	events := (target + perEvent - 1) / perEvent
	outboxIDs := emitArrears(t, st, custIDs, events)

	worker := start(t, vars, "worker")
	sched := start(t, vars, "scheduler")
	apiAddr := freeAddr(t)
	apiVars := withVars(vars, map[string]string{"HTTP_ADDR": apiAddr, "PUBLIC_URL": "http://" + apiAddr})
	api := start(t, apiVars, "api")
	api.waitHealthy("http://" + apiAddr)
	procs := []*proc{worker, sched, api}

	load := newAPILoad(t, "http://"+apiAddr, tr.Platform.Token, custIDs[0])
	load.run()

	// Faults, each once delivery has moved on by a tenth of the total: the
	// stalls after a Redis restart last until the sweeps re-enqueue what it
	// lost, so every step after one proves the reconciliation.
	total := events * perEvent
	sent := func() int { return countSent(t, st, outboxIDs) }
	step := 0
	waitProgress := func(what string) {
		step++
		want := total * step / 10
		deadline := time.Now().Add(2 * time.Minute)
		for sent() < want {
			if time.Now().After(deadline) {
				t.Fatalf("before %s: %d of %d deliveries sent after 2 minutes, want %d", what, sent(), total, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	killWorker := func() {
		waitProgress("killing the worker")
		if err := worker.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-worker.done
		worker = start(t, vars, "worker")
		procs = append(procs, worker)
	}
	restartRedis := func() {
		waitProgress("restarting Redis")
		rd.Restart(500 * time.Millisecond)
	}
	killWorker()
	restartRedis()
	killWorker()
	restartRedis()

	waitProgress("restarting PostgreSQL")
	load.mark("down")
	pg.Restart(2 * time.Second)
	load.mark("up")
	load.waitRecovered(60 * time.Second)
	for _, p := range []*proc{api, sched, worker} {
		if p.exited() {
			t.Fatalf("partnerd %s exited while PostgreSQL restarted (code %d)\n%s", p.name, p.cmd.ProcessState.ExitCode(), p.stderr)
		}
	}

	killWorker()
	restartRedis()

	// Everything settles: every delivery sent, every outbox row settled.
	deadline := time.Now().Add(4 * time.Minute)
	for {
		open, unsettled := openWork(t, st, outboxIDs)
		if open == 0 && unsettled == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("4 minutes after the last fault: %d deliveries not sent, %d outbox rows not settled", open, unsettled)
		}
		time.Sleep(100 * time.Millisecond)
	}
	load.stop()

	// Fan-out: every event, the same deliveries each.
	var fan struct{ Events, Min, Max, Total int }
	if err := st.SQL.QueryRowContext(ctx, `SELECT count(*), coalesce(min(n),0), coalesce(max(n),0), coalesce(sum(n),0) FROM (
		SELECT outbox_id, count(*) AS n FROM deliveries WHERE outbox_id = ANY($1) GROUP BY outbox_id) d`, outboxIDs).
		Scan(&fan.Events, &fan.Min, &fan.Max, &fan.Total); err != nil {
		t.Fatal(err)
	}
	if fan.Events != events || fan.Min != perEvent || fan.Max != perEvent {
		t.Errorf("fan-out: %d of %d events have deliveries, %d to %d each, want %d each", fan.Events, events, fan.Min, fan.Max, perEvent)
	}

	// The sinks.
	byChannel := map[models.Channel]map[string]bool{}
	statuses := map[models.DeliveryStatus]int{}
	rows, err := st.SQL.QueryContext(ctx, `SELECT key, channel, status FROM deliveries WHERE outbox_id = ANY($1)`, outboxIDs)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			key    string
			ch     models.Channel
			status models.DeliveryStatus
		)
		if err := rows.Scan(&key, &ch, &status); err != nil {
			t.Fatal(err)
		}
		if byChannel[ch] == nil {
			byChannel[ch] = map[string]bool{}
		}
		byChannel[ch][key] = true
		statuses[status]++
	}
	rows.Close()
	if statuses[models.DeliverySent] != fan.Total {
		t.Errorf("delivery statuses %v, want all %d SENT", statuses, fan.Total)
	}

	var inbox, inboxDistinct int
	if err := st.SQL.QueryRowContext(ctx, `SELECT count(*), count(DISTINCT m.delivery_id) FROM inbox_messages m
		JOIN deliveries d ON d.id = m.delivery_id WHERE d.outbox_id = ANY($1)`, outboxIDs).Scan(&inbox, &inboxDistinct); err != nil {
		t.Fatal(err)
	}
	if inbox != len(byChannel[models.ChannelInSite]) || inboxDistinct != inbox {
		t.Errorf("in-site: %d inbox messages (%d distinct deliveries) for %d deliveries, want exactly one each",
			inbox, inboxDistinct, len(byChannel[models.ChannelInSite]))
	}

	smsPosts, smsDelivered := 0, map[string]bool{}
	for _, p := range sms.Posts() {
		if !byChannel[models.ChannelSMS][p.ID] {
			continue
		}
		smsPosts++
		if p.Status < 300 {
			smsDelivered[p.ID] = true
		}
	}
	if len(smsDelivered) != len(byChannel[models.ChannelSMS]) {
		t.Errorf("SMS: the provider accepted %d distinct messages for %d deliveries", len(smsDelivered), len(byChannel[models.ChannelSMS]))
	}

	emails := map[string]int{}
	for _, m := range smtp.Messages() {
		emails[m.MessageID]++
	}
	emailKeys := byChannel[models.ChannelEmail]
	var emailSent, emailDup int
	for key := range emailKeys {
		n := emails[emailMessageID(key)]
		if n == 0 {
			t.Errorf("email delivery %s: SENT, but the SMTP server never got it", key)
		}
		emailSent += n
		if n > 1 {
			emailDup += n - 1
		}
	}

	// The API through the PostgreSQL restart.
	rep := load.report()
	for _, p := range rep.problems {
		t.Error(p)
	}
	if rep.retryableWhileDown == 0 {
		t.Errorf("no retryable error while PostgreSQL was down (%d answers in that window): the restart was not exercised", rep.whileDown)
	}
	var stored int
	if err := st.SQL.QueryRowContext(ctx, `SELECT count(*) FROM expenditures WHERE external_id = ANY($1)`, rep.acknowledged).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if stored != len(rep.acknowledged) {
		t.Errorf("%d acknowledged writes, %d stored: acknowledged writes were lost", len(rep.acknowledged), stored)
	}

	// No secret and no message body in any log line.
	var logs strings.Builder
	for _, p := range procs {
		logs.WriteString(p.stderr.String())
		logs.WriteString(p.stdout.String())
	}
	secrets := map[string]string{"the SMTP password": smtpPassword, "the platform token": tr.Platform.Token, "a user token": tr.R1.Token}
	for i, p := range sms.Posts() {
		if i >= 50 {
			break
		}
		secrets["an SMS body"] = p.Text
	}
	for i, m := range smtp.Messages() {
		if i >= 50 {
			break
		}
		if body := strings.TrimSpace(m.TextBody); len(body) > 40 {
			secrets["an email body"] = body[:40]
		}
	}
	text := logs.String()
	// The Redis restarts lost queued tasks: the sweeps must have put them
	// back, or the deliveries finished without proving anything.
	requeuedDeliveries := sumLogged(text, "re-enqueued deliveries whose task was lost", "deliveries")
	requeuedRows := sumLogged(text, "re-enqueued outbox rows whose task was lost", "rows")
	if requeuedDeliveries+requeuedRows == 0 {
		t.Errorf("no sweep re-enqueued anything after three Redis restarts")
	}
	for what, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("the logs hold %s (%q)", what, s)
		}
	}

	t.Logf("%d events, %d deliveries (%d in-site, %d email, %d SMS); faults: worker SIGKILL x3, Redis restart x3, PostgreSQL restart x1",
		events, fan.Total, len(byChannel[models.ChannelInSite]), len(emailKeys), len(byChannel[models.ChannelSMS]))
	t.Logf("sinks: %d inbox messages; %d SMS posts for %d SMS (%d repeats the provider dropped by id); %d emails for %d email deliveries: %d duplicates",
		inbox, smsPosts, len(smsDelivered), smsPosts-len(smsDelivered), emailSent, len(emailKeys), emailDup)
	t.Logf("API through the restart: %d answers, %d retryable errors (%d of %d while down), %d acknowledged writes all stored; recovered %s after PostgreSQL was back",
		rep.answers, rep.retryable, rep.retryableWhileDown, rep.whileDown, len(rep.acknowledged), rep.recoveredAfter.Round(time.Millisecond))
	t.Logf("reconciliation: %d deliveries and %d outbox rows re-enqueued by the sweeps; %d bytes of logs scanned for secrets and bodies",
		requeuedDeliveries, requeuedRows, len(text))
	for _, p := range procs {
		if !p.exited() {
			p.stop(syscall.SIGTERM, 30*time.Second)
		}
	}
}

// migratedTree migrates the database of vars with the binary, opens it, and
// builds testkit's standard tree in it.
func migratedTree(t *testing.T, vars map[string]string) (*store.Store, *testkit.Tree) {
	t.Helper()
	if code, _, stderr := runOnce(t, vars, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, stderr)
	}
	st, err := store.Open(context.Background(), vars["DATABASE_URL"], store.Options{MaxOpenConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, testkit.NewTreeOn(t, st)
}

// customerWithPhone adds a customer under the tree's reseller R1 with a
// finance user who has a phone, so its arrears events go out on every
// channel, and returns its ID.
func customerWithPhone(t *testing.T, tr *testkit.Tree, name, phone string) int64 {
	t.Helper()
	c, err := tr.Accounts.Create(tr.Platform.Ctx, accounts.CreateInput{Kind: models.KindCustomer, ParentID: tr.R1.Account.ID, Name: name})
	if err != nil {
		t.Fatal(err)
	}
	tr.AddUserWith(t, accounts.CreateUserInput{AccountID: c.ID, Roles: []models.Role{models.RoleFinance}, Phone: &phone})
	return c.ID
}

// withVars is base with extra set on top.
func withVars(base, extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range base {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// probeFanOut returns how many deliveries one arrears event of customer
// makes, by fanning one out in a transaction it rolls back.
func probeFanOut(t *testing.T, st *store.Store, customer int64) int {
	t.Helper()
	svc, err := notify.New(st, notify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(notify.ArrearsChanged{CustomerID: customer, Entered: true, Available: "-1.00", Month: "2026-11"})
	pending, err := svc.FanOut(context.Background(), 1<<40, notify.EventArrearsEntered, payload)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SQL.Exec(`DELETE FROM deliveries WHERE outbox_id = $1`, int64(1<<40)); err != nil {
		t.Fatal(err)
	}
	chans := map[models.Channel]int{}
	for _, p := range pending {
		chans[p.Channel]++
	}
	if chans[models.ChannelInSite] == 0 || chans[models.ChannelEmail] == 0 || chans[models.ChannelSMS] == 0 {
		t.Fatalf("an arrears event makes deliveries %v, want in-site, email and SMS", chans)
	}
	return len(pending)
}

// emitArrears commits n arrears events across the customers, as the credit
// service would, and returns their outbox IDs.
func emitArrears(t *testing.T, st *store.Store, customers []int64, n int) []int64 {
	t.Helper()
	var out []int64
	for done := 0; done < n; {
		batch := min(500, n-done)
		err := st.InTx(context.Background(), func(tx *store.Tx) error {
			evs := make([]store.Event, batch)
			for i := range evs {
				k := done + i
				evs[i] = notify.ArrearsChanged{CustomerID: customers[k%len(customers)], Entered: k%2 == 0,
					Available: fmt.Sprintf("-%d.00", k+1), Month: "2026-11"}
			}
			got, err := tx.EmitIDs(evs...)
			out = append(out, got...)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		done += batch
	}
	return out
}

func countSent(t *testing.T, st *store.Store, outboxIDs []int64) int {
	t.Helper()
	var n int
	if err := st.SQL.QueryRow(`SELECT count(*) FROM deliveries WHERE outbox_id = ANY($1) AND status = 'SENT'`, outboxIDs).Scan(&n); err != nil {
		// The test's own connection meets the PostgreSQL restart too.
		return 0
	}
	return n
}

// openWork is how many of the events' deliveries are not final and how many
// of their outbox rows are not dispatched and settled.
func openWork(t *testing.T, st *store.Store, outboxIDs []int64) (open, unsettled int) {
	t.Helper()
	err := st.SQL.QueryRow(`SELECT
		(SELECT count(*) FROM deliveries WHERE outbox_id = ANY($1) AND status <> 'SENT'),
		(SELECT count(*) FROM outbox WHERE id = ANY($1) AND settled_at IS NULL)`, outboxIDs).Scan(&open, &unsettled)
	if err != nil {
		return -1, -1
	}
	return open, unsettled
}

// emailMessageID is the Message-ID partnerd gives the email of delivery key.
func emailMessageID(key string) string {
	return email.MessageID(key, "notify@partnerd.test")
}

// apiLoad keeps the API busy with reads, writes and purchase checks, and
// sorts every answer: success, retryable error, or a problem.
type apiLoad struct {
	t        *testing.T
	base     string
	token    string
	customer string
	client   *http.Client

	stopping atomic.Bool
	wg       sync.WaitGroup
	seq      atomic.Int64

	mu         sync.Mutex
	phase      string    // "", "down" (PostgreSQL stopping and down), "up"
	upAt       time.Time // when PostgreSQL was back
	firstOK    time.Time // the first success after upAt
	answers    int
	retryable  int
	whileDown  int
	retryDown  int
	acked      []string
	problems   []string
	recovering chan struct{}
}

func newAPILoad(t *testing.T, base, token string, customer int64) *apiLoad {
	return &apiLoad{t: t, base: base, token: token, customer: ids.Encode(accounts.TypeAccount, customer),
		client: &http.Client{Timeout: 30 * time.Second}, recovering: make(chan struct{})}
}

func (l *apiLoad) run() {
	for i := 0; i < 3; i++ {
		l.wg.Add(1)
		go func(i int) {
			defer l.wg.Done()
			for n := 0; !l.stopping.Load(); n++ {
				switch (i + n) % 3 {
				case 0:
					l.read()
				case 1:
					l.write()
				default:
					l.purchase()
				}
				time.Sleep(5 * time.Millisecond)
			}
		}(i)
	}
}

func (l *apiLoad) stop() {
	l.stopping.Store(true)
	l.wg.Wait()
}

func (l *apiLoad) mark(phase string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.phase = phase
	if phase == "up" {
		l.upAt = time.Now()
	}
}

// waitRecovered waits for the first success after PostgreSQL came back.
func (l *apiLoad) waitRecovered(within time.Duration) {
	l.t.Helper()
	select {
	case <-l.recovering:
	case <-time.After(within):
		l.t.Fatalf("the API did not answer a request successfully within %s of PostgreSQL's restart", within)
	}
}

func (l *apiLoad) post(path string, body any) (int, []byte, error) {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, l.base+path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+l.token)
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

type gqlAnswer struct {
	Data   json.RawMessage `json:"data"`
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

// outcome sorts one answer.
func (l *apiLoad) outcome(what string, status int, body []byte, err error, ok func(gqlAnswer) bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers++
	down := l.phase == "down"
	if down {
		l.whileDown++
	}
	problem := func(format string, args ...any) {
		if len(l.problems) < 10 {
			l.problems = append(l.problems, fmt.Sprintf("%s (phase %q): ", what, l.phase)+fmt.Sprintf(format, args...))
		}
	}
	if err != nil {
		problem("no answer: %v", err)
		return false
	}
	var a gqlAnswer
	_ = json.Unmarshal(body, &a)
	if len(a.Errors) > 0 {
		e := a.Errors[0]
		if e.Extensions["code"] == "INTERNAL" && e.Extensions["retryable"] == true && (status == http.StatusOK || status == http.StatusServiceUnavailable) {
			l.retryable++
			if down {
				l.retryDown++
			}
			return false
		}
		problem("status %d, error %s %v", status, e.Message, e.Extensions)
		return false
	}
	if status != http.StatusOK || !ok(a) {
		problem("status %d: %.300s", status, body)
		return false
	}
	if l.phase == "up" && l.firstOK.IsZero() {
		l.firstOK = time.Now()
		close(l.recovering)
	}
	return true
}

func (l *apiLoad) read() {
	q := fmt.Sprintf(`{ account(id: %q) { name parent { name } } }`, l.customer)
	status, body, err := l.post("/graphql", map[string]string{"query": q})
	l.outcome("read", status, body, err, func(a gqlAnswer) bool { return bytes.Contains(a.Data, []byte(`"name"`)) })
}

func (l *apiLoad) write() {
	ext := fmt.Sprintf("fault-%d", l.seq.Add(1))
	q := `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted duplicates rejected } }`
	rec := map[string]any{"externalId": ext, "customerId": l.customer, "productCode": "ecs", "billingMode": "PAY_PER_USE",
		"usageAt": time.Now().UTC().Format(time.RFC3339), "listAmount": "0.01", "actualAmount": "0.01"}
	status, body, err := l.post("/graphql", map[string]any{"query": q, "variables": map[string]any{"r": []any{rec}}})
	if l.outcome("write", status, body, err, func(a gqlAnswer) bool {
		return bytes.Contains(a.Data, []byte(`"accepted":1`)) || bytes.Contains(a.Data, []byte(`"duplicates":1`))
	}) {
		l.mu.Lock()
		l.acked = append(l.acked, ext)
		l.mu.Unlock()
	}
}

func (l *apiLoad) purchase() {
	status, body, err := l.post("/v1/purchase-authorizations", map[string]string{"customerId": l.customer, "billingMode": "PAY_PER_USE", "listAmount": "1.00"})
	l.outcome("purchase", status, body, err, func(gqlAnswer) bool { return bytes.Contains(body, []byte(`"allowed"`)) })
}

// loadReport is what the load saw.
type loadReport struct {
	answers, retryable            int
	whileDown, retryableWhileDown int
	acknowledged                  []string
	problems                      []string
	recoveredAfter                time.Duration
}

func (l *apiLoad) report() loadReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return loadReport{answers: l.answers, retryable: l.retryable, whileDown: l.whileDown, retryableWhileDown: l.retryDown,
		acknowledged: append([]string(nil), l.acked...), problems: append([]string(nil), l.problems...), recoveredAfter: l.firstOK.Sub(l.upAt)}
}

// sumLogged adds up the number field of every JSON log line whose msg is
// msg.
func sumLogged(logs, msg, field string) int {
	total := 0
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, msg) {
			continue
		}
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) != nil || rec["msg"] != msg {
			continue
		}
		if n, ok := rec[field].(float64); ok {
			total += int(n)
		}
	}
	return total
}
