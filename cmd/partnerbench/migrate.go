package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"

	"partnerd/accounts"
	"partnerd/ids"
	"partnerd/migration"
	"partnerd/models"
)

// The migrate scenario (issue 8): a distributor with N customers (10,000;
// --quick 500) and a tier-1 reseller that takes them all over. Measured: the
// upload of the filled-in template (N rows, multipart GraphQL, the
// receiver's token) validated into a DRAFT — a run per --runs, each a new
// draft — and then the execution of one batch of all N customers, customer
// by customer as the worker runs it, with the statements it sends.

const migrateCreditPer = 10

func (b *bench) migrate(ctx context.Context) (*section, error) {
	n := 10_000
	if b.o.quick {
		n = 500
	}
	conn, err := pgx.Connect(ctx, b.dbURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	stamp := strconv.FormatInt(time.Now().UnixNano(), 36)
	src, err := b.insertTree(ctx, conn, "Migrate Bench "+stamp, 1, 0, n)
	if err != nil {
		return nil, err
	}
	source := src.Distributors[0]
	// Each customer has 10 of credit from the source; the receiver can
	// allocate as much.
	if _, err := conn.Exec(ctx, `UPDATE credit_balances SET credit_limit = $2, updated_at = now() WHERE account_id = ANY($1::bigint[])`,
		src.Customers, migrateCreditPer); err != nil {
		return nil, fmt.Errorf("customer credit: %w", err)
	}
	if err := rollUpCredit(ctx, conn, []int64{source}); err != nil {
		return nil, err
	}
	if err := b.syncGuards(ctx, "migrate: guard rows", src.Customers); err != nil {
		return nil, err
	}
	receiver, err := b.accounts.Create(b.platform, accounts.CreateInput{Kind: models.KindReseller, ParentID: mustPlatformID(b),
		Name: "Migrate Bench Receiver " + stamp})
	if err != nil {
		return nil, fmt.Errorf("create receiver: %w", err)
	}
	if _, err := conn.Exec(ctx, `UPDATE credit_balances SET credit_limit = $2 WHERE account_id = $1`, receiver.ID, n*migrateCreditPer); err != nil {
		return nil, fmt.Errorf("receiver credit: %w", err)
	}
	recvToken, recvCtx, err := b.admin(ctx, receiver.ID)
	if err != nil {
		return nil, err
	}
	_, srcCtx, err := b.admin(ctx, source)
	if err != nil {
		return nil, err
	}
	reviewer, err := b.accounts.CreateUser(b.platform, accounts.CreateUserInput{AccountID: mustPlatformID(b),
		Email: "reviewer-" + stamp + "@bench.example", Roles: []models.Role{models.RoleReviewer}})
	if err != nil {
		return nil, fmt.Errorf("create reviewer: %w", err)
	}
	revToken, _, err := b.accounts.CreateToken(b.platform, reviewer.ID, time.Hour)
	if err != nil {
		return nil, err
	}
	rp, err := b.accounts.Authenticate(ctx, revToken)
	if err != nil {
		return nil, err
	}
	revCtx := accounts.WithPrincipal(ctx, rp)

	var csv bytes.Buffer
	csv.WriteString(migration.Template)
	for _, c := range src.Customers {
		fmt.Fprintf(&csv, "%s,%d.00\r\n", ids.Encode("Account", c), migrateCreditPer)
	}
	hc := newClient(1, 5*time.Minute)
	defer hc.CloseIdleConnections()
	var uploads []time.Duration
	var lastID string
	var uploadStmts int64
	prog := b.progress("migrate: uploads", int64(b.o.runs), "uploads", nil)
	for range b.o.runs {
		before := b.st.CountStatements()
		t0 := time.Now()
		id, err := b.uploadMigration(ctx, hc, recvToken, ids.Encode("Account", source), csv.Bytes(), n)
		if err != nil {
			prog.finish()
			return nil, err
		}
		uploads = append(uploads, time.Since(t0))
		uploadStmts = b.st.CountStatements() - before
		lastID = id
		prog.add(1)
	}
	prog.finish()
	key, err := ids.Decode(lastID, migration.TypeMigration)
	if err != nil {
		return nil, err
	}
	svc := migration.New(b.st, migration.Options{Location: b.loc, Log: b.log})
	t0 := time.Now()
	if _, err := svc.Submit(recvCtx, key); err != nil {
		return nil, fmt.Errorf("submit: %w", err)
	}
	submit := time.Since(t0)
	if _, err := svc.Approve(srcCtx, key, true); err != nil {
		return nil, fmt.Errorf("source approval: %w", err)
	}
	if _, err := svc.Approve(revCtx, key, false); err != nil {
		return nil, fmt.Errorf("review: %w", err)
	}
	before := b.st.CountStatements()
	t0 = time.Now()
	res, err := svc.ExecuteBatch(ctx, key)
	exec := time.Since(t0)
	stmts := b.st.CountStatements() - before
	if err != nil {
		return nil, fmt.Errorf("execute: %w", err)
	}
	if res.Migrated != n || !res.Finished {
		return nil, fmt.Errorf("execute: %+v, want %d migrated", res, n)
	}
	slices.Sort(uploads)
	sec := &section{name: "migrate", title: fmt.Sprintf("migrate: a %s-row upload and a %s-customer execution", thousands(n), thousands(n)),
		notes: []string{
			fmt.Sprintf("A distributor with %s active customers (10.00 of credit each) and a tier-1 reseller that takes them all over.", thousands(n)),
			fmt.Sprintf("Upload: the filled-in template (%s rows, %s KiB) as a multipart `createMigration` with the receiver's token; each row is parsed and judged by the preconditions (one statement for all rows) and the batch is written as a DRAFT (one statement for all items and their history). %d uploads; min, median and max.", thousands(n), strconv.Itoa(csv.Len()/1024), len(uploads)),
			"Execution: `ExecuteBatch` as the worker runs it, one transaction per customer (checked again, allocation released at the source, moved with its path and parent history, credit allocated by the receiver, item, history, audit, outbox event).",
		},
		header: []string{"step", "wall time", "per customer", "statements", "statements per customer"},
		rows: [][]string{
			{"upload → DRAFT (median)", uploads[len(uploads)/2].Round(time.Millisecond).String() + fmt.Sprintf(" (min %s, max %s)", uploads[0].Round(time.Millisecond), uploads[len(uploads)-1].Round(time.Millisecond)),
				perCustomer(uploads[len(uploads)/2], n), strconv.FormatInt(uploadStmts, 10), fmt.Sprintf("%.3f", float64(uploadStmts)/float64(n))},
			{"submit (preconditions of all, hold them)", submit.Round(time.Millisecond).String(), perCustomer(submit, n), "", ""},
			{"execution", exec.Round(time.Millisecond).String(), perCustomer(exec, n), strconv.FormatInt(stmts, 10), fmt.Sprintf("%.1f", float64(stmts)/float64(n))},
		}}
	return sec, nil
}

func perCustomer(d time.Duration, n int) string {
	return ms(float64(d.Microseconds())/1000/float64(n)) + " ms"
}

// admin makes an ADMIN user of account id and returns its token and a
// context acting as it.
func (b *bench) admin(ctx context.Context, id int64) (string, context.Context, error) {
	u, err := b.accounts.CreateUser(b.platform, accounts.CreateUserInput{AccountID: id,
		Email: fmt.Sprintf("admin-%d-%d@bench.example", id, time.Now().UnixNano()), Roles: []models.Role{models.RoleAdmin}})
	if err != nil {
		return "", nil, fmt.Errorf("create admin of %d: %w", id, err)
	}
	token, _, err := b.accounts.CreateToken(b.platform, u.ID, time.Hour)
	if err != nil {
		return "", nil, err
	}
	p, err := b.accounts.Authenticate(ctx, token)
	if err != nil {
		return "", nil, err
	}
	return token, accounts.WithPrincipal(ctx, p), nil
}

// uploadMigration posts createMigration with the CSV as a multipart upload
// and checks that want customers were imported.
func (b *bench) uploadMigration(ctx context.Context, hc *http.Client, token, source string, csv []byte, want int) (string, error) {
	ops, _ := json.Marshal(map[string]any{"query": `mutation($s: ID!, $f: Upload) { createMigration(sourceId: $s, file: $f) { id status counts { total } rejectedRows { row reason } } }`,
		"variables": map[string]any{"s": source, "f": nil}})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("operations", string(ops))
	_ = mw.WriteField("map", `{"0": ["variables.f"]}`)
	fw, _ := mw.CreateFormFile("0", "migration.csv")
	_, _ = fw.Write(csv)
	_ = mw.Close()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.baseURL+"/graphql", &body)
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("upload: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Data struct {
			CreateMigration struct {
				ID, Status string
				Counts     struct{ Total int }
			}
		}
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Errors) > 0 {
		return "", fmt.Errorf("upload: %d %s", resp.StatusCode, clip(raw))
	}
	if m := out.Data.CreateMigration; m.Status != "DRAFT" || m.Counts.Total != want {
		return "", fmt.Errorf("upload imported %d of %d rows: %s", m.Counts.Total, want, clip(raw))
	}
	return out.Data.CreateMigration.ID, nil
}
