package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The authorize scenario (issue 6): the purchase guard the cloud console
// asks before every purchase, on random customers of a tree of 100,000 in a
// realistic mix of states, over POST /v1/purchase-authorizations and over
// the authorizePurchase mutation.

const (
	purchasePath      = "/v1/purchase-authorizations"
	authorizeMutation = `mutation($id: ID!, $m: BillingMode!, $a: Decimal!) { authorizePurchase(customerId: $id, billingMode: $m, listAmount: $a) { allowed reason } }`
	// authorizeTargetMS is issue 6's target for the p99 latency.
	authorizeTargetMS = 10.0
)

// denyReasons are the reasons of a denied purchase, in the order reported.
var denyReasons = []string{"ACCOUNT_FROZEN", "ARREARS_SUSPENDED", "BUDGET_EXCEEDED", "INSUFFICIENT_CREDIT"}

// decisionCount counts the answers of a load: allowed, denied by reason.
type decisionCount struct {
	allowed atomic.Int64
	denied  [4]atomic.Int64
	other   atomic.Int64
}

// check accepts an answer holding a decision ({"allowed":...}, bare or in
// GraphQL's data) and counts it.
func (d *decisionCount) check(out []byte) error {
	switch {
	case bytes.Contains(out, []byte(`"allowed":true`)):
		d.allowed.Add(1)
		return nil
	case !bytes.Contains(out, []byte(`"allowed":false`)):
		return errors.New("no decision in the answer: " + clip(out))
	}
	_, rest, _ := bytes.Cut(out, []byte(`"reason":"`))
	reason, _, _ := bytes.Cut(rest, []byte(`"`))
	for i, r := range denyReasons {
		if string(reason) == r {
			d.denied[i].Add(1)
			return nil
		}
	}
	d.other.Add(1)
	return nil
}

// summary is "x% denied (reason y%, ...)" over every answer counted.
func (d *decisionCount) summary() string {
	total := d.allowed.Load() + d.other.Load()
	for i := range d.denied {
		total += d.denied[i].Load()
	}
	if total == 0 {
		return "no answer"
	}
	var parts []string
	denied := d.other.Load()
	for i, r := range denyReasons {
		n := d.denied[i].Load()
		denied += n
		parts = append(parts, fmt.Sprintf("%s %s", r, pct(100*float64(n)/float64(total))))
	}
	if n := d.other.Load(); n > 0 {
		parts = append(parts, fmt.Sprintf("other %s", pct(100*float64(n)/float64(total))))
	}
	return fmt.Sprintf("%s denied (%s) of %s answers", pct(100*float64(denied)/float64(total)), strings.Join(parts, ", "), thousands(int(total)))
}

// purchase is one random purchase question: a billing mode and a list
// amount with two decimals, mostly small, sometimes large.
func purchase(c *client) (mode, amount string) {
	mode = string(billingModes[c.rng.IntN(len(billingModes))])
	var cents int64
	switch u := c.rng.IntN(100); {
	case u < 60:
		cents = 100 + c.rng.Int64N(49_900) // 1.00 .. 499.99
	case u < 90:
		cents = 50_000 + c.rng.Int64N(450_000) // 500.00 .. 4,999.99
	default:
		cents = 500_000 + c.rng.Int64N(1_500_000) // 5,000.00 .. 19,999.99
	}
	return mode, string(appendCents(nil, cents))
}

// postJSON posts body to path with the platform token on hc and returns the
// answer, failing on a transport error or a status other than 200.
func (b *bench) postJSON(ctx context.Context, hc *http.Client, path string, body []byte) ([]byte, error) {
	return postJSONTo(ctx, hc, b.baseURL+path, b.token, body)
}

// postJSONTo posts body to url on hc, with token as a bearer token unless it
// is empty, and returns the answer, failing on a transport error or a status
// other than 200.
func postJSONTo(ctx context.Context, hc *http.Client, url, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return out, fmt.Errorf("HTTP %d: %s", resp.StatusCode, clip(out))
	}
	return out, nil
}

func (b *bench) authorize(ctx context.Context) (*section, error) {
	dists, resellers, customers := 10, 10, 100_000
	if b.o.quick {
		dists, resellers, customers = 2, 5, 2_000
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, fmt.Errorf("connect for the fixture: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	label := fmt.Sprintf("%s customers by SQL", thousands(customers))
	b.logf("authorize: inserting %d distributors, %d resellers and %s customers", dists, dists*resellers, thousands(customers))
	t0 := time.Now()
	t, err := b.insertTree(ctx, conn, "Guard Bench", dists, resellers, customers)
	if err != nil {
		return nil, err
	}
	if err := b.applyAuthorizeMix(ctx, conn, t.Customers); err != nil {
		return nil, err
	}
	if err := rollUpCredit(ctx, conn, t.Resellers); err != nil {
		return nil, err
	}
	if err := rollUpCredit(ctx, conn, t.Distributors); err != nil {
		return nil, err
	}
	if err := b.syncGuards(ctx, label, t.Customers); err != nil {
		return nil, fmt.Errorf("sync purchase guards: %w", err)
	}
	// VACUUM as well as ANALYZE: the fixture's updates left a dead version
	// of most rows, which autovacuum would otherwise clean up during the
	// measurement.
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) accounts, credit_balances, purchase_guards, budgets, spend_totals"); err != nil {
		return nil, fmt.Errorf("vacuum analyze: %w", err)
	}
	b.logf("authorize: fixture of %s accounts ready in %s", thousands(len(t.Distributors)+len(t.Resellers)+len(t.Customers)),
		time.Since(t0).Round(time.Millisecond))

	gids := make([]string, len(t.Customers))
	for i, id := range t.Customers {
		gids[i] = gid(id)
	}
	var rest decisionCount
	restRuns, err := b.loadRuns(ctx, "authorize REST", b.o.seed*31+6, func(ctx context.Context, c *client) {
		mode, amount := purchase(c)
		body := make([]byte, 0, 128)
		body = append(body, `{"customerId":"`...)
		body = append(body, gids[c.rng.IntN(len(gids))]...)
		body = append(body, `","billingMode":"`...)
		body = append(body, mode...)
		body = append(body, `","listAmount":"`...)
		body = append(body, amount...)
		body = append(body, `"}`...)
		c.doWith(ctx, func() ([]byte, error) { return b.postJSON(ctx, c.c, purchasePath, body) }, rest.check)
	})
	if len(restRuns) == 0 {
		return nil, err
	}
	if err != nil {
		return b.authorizeSection(t, customers, &rest, restRuns, nil, nil), err
	}
	var gql decisionCount
	gqlRuns, err := b.loadRuns(ctx, "authorize GraphQL", b.o.seed*31+7, func(ctx context.Context, c *client) {
		mode, amount := purchase(c)
		body := gqlBody(authorizeMutation, map[string]any{"id": gids[c.rng.IntN(len(gids))], "m": mode, "a": amount})
		c.do(ctx, body, gql.check)
	})
	return b.authorizeSection(t, customers, &rest, restRuns, &gql, gqlRuns), err
}

func (b *bench) authorizeSection(t *sqlTree, customers int, rest *decisionCount, restRuns []runResult, gql *decisionCount, gqlRuns []runResult) *section {
	sec := &section{name: "authorize",
		title: fmt.Sprintf("authorize: purchase authorizations on %s customers, %d clients", thousands(customers), b.o.concurrency)}
	sec.notes = []string{
		fmt.Sprintf("Fixture shortcut: %d distributors × %d resellers and %s customers spread round-robin under the resellers, inserted with `INSERT INTO accounts ... SELECT` (the triggers derive path and depth and create the credit_balances and purchase_guards rows), states written with SQL (accounts, credit_balances, budgets, spend_totals for the current Beijing month, no expenditure records behind the totals, no audit or ledger rows), then every purchase guard row brought up to date with `guard.Sync` in transactions of %s, and `VACUUM (ANALYZE)` of the tables written.",
			len(t.Distributors), len(t.Resellers)/max(len(t.Distributors), 1), thousands(customers), thousands(syncChunk)),
		"State mix (by account id % 100): " + strings.Join(guardMix, "; ") + ".",
		"Each request: a customer chosen at random among all of them, a billing mode chosen at random among PAY_PER_USE, SUBSCRIPTION and RESERVED_INSTANCE, a list amount from 1.00 to 499.99 (60%), 500.00 to 4,999.99 (30%) or 5,000.00 to 19,999.99 (10%); as the platform admin (authentication and the scope check on). An answer counts when it holds a decision.",
		"REST: `POST " + purchasePath + "` with `{\"customerId\", \"billingMode\", \"listAmount\"}`; answers over all its requests (warm-up included): " + rest.summary() + ".",
	}
	if gql != nil && len(gqlRuns) > 0 {
		sec.notes = append(sec.notes, "GraphQL: `"+authorizeMutation+"`; answers: "+gql.summary()+".")
	}
	sec.header = []string{"figure", "REST median", "min", "max"}
	if len(gqlRuns) > 0 {
		sec.header = append(sec.header, "GraphQL median", "min", "max")
	}
	cols := [][]runResult{restRuns}
	if len(gqlRuns) > 0 {
		cols = append(cols, gqlRuns)
	}
	sec.rows = append(sec.rows, figureRows(loadFigures("requests/s", cpuRowLabel), cols)...)
	row := []string{"p99 target < " + strconv.FormatFloat(authorizeTargetMS, 'f', 0, 64) + " ms"}
	for _, runs := range cols {
		s := spreadBy(runs, func(r runResult) float64 { return r.p(99) })
		verdict := "met"
		if s.Median >= authorizeTargetMS {
			verdict = fmt.Sprintf("missed by %s ms", ms(s.Median-authorizeTargetMS))
		}
		row = append(row, verdict, "", "")
	}
	sec.rows = append(sec.rows, row)
	return sec
}
