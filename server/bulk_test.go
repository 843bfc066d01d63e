package server_test

import (
	"context"
	"strings"
	"testing"

	"partnerd/bulk"
	"partnerd/credit"
	"partnerd/guard"
	"partnerd/ids"
	"partnerd/server"
	"partnerd/testkit"
)

// Bulk changes through GraphQL: D1 uploads budgets for its customer C3 and
// for another distributor's customer; the foreign row is REJECTED as
// NOT_FOUND at the upload, the job applies the other one in the background
// (run here as the worker would), and another distributor sees no job.
func TestBulkChanges_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	d1 := ids.Encode("Account", tr.D1.Account.ID)
	var tpl struct{ BulkChangeTemplate string }
	api.MustDo(t, tr.D1.Token, `{ bulkChangeTemplate(kind: BUDGETS) }`, nil, &tpl)
	header := strings.SplitN(tpl.BulkChangeTemplate, "\r\n", 2)[0]
	csv := header + "\r\n" + ids.Encode("Account", tr.C3.Account.ID) + ",MONTHLY,800.00,,\r\n" +
		ids.Encode("Account", tr.C5.Account.ID) + ",MONTHLY,800.00,,\r\n"
	const uploadQ = `mutation($p: ID!, $f: Upload!) { uploadBulkChanges(partnerId: $p, kind: BUDGETS, file: $f) { id status valid rejected pending } }`
	var up struct {
		UploadBulkChanges struct {
			ID, Status               string
			Valid, Rejected, Pending int
		}
	}
	r := api.Upload(t, tr.D1.Token, uploadQ, map[string]any{"p": d1}, "f", "budgets.csv", []byte(csv))
	r.Decode(t, &up)
	if j := up.UploadBulkChanges; j.Status != "QUEUED" || j.Valid != 1 || j.Rejected != 1 || j.Pending != 1 {
		t.Fatalf("uploaded: %+v (%s)", j, r.Code())
	}
	if r := api.Upload(t, tr.D2.Token, uploadQ, map[string]any{"p": d1}, "f", "budgets.csv", []byte(csv)); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor's upload: %s", r.Code())
	}
	// The worker's part.
	key, _ := ids.Decode(up.UploadBulkChanges.ID, bulk.TypeJob)
	svc := bulk.New(tr.Store, guard.New(tr.Store, guard.Options{Location: testkit.Shanghai}), credit.New(tr.Store, testkit.Shanghai), bulk.Options{})
	if _, err := svc.Run(context.Background(), key); err != nil {
		t.Fatal(err)
	}
	const jobQ = `query($id: ID!) { node(id: $id) { ... on BulkJob { status done failed rows { edges { node { line customerRef status code } } } } } }`
	var job struct {
		Node struct {
			Status       string
			Done, Failed int
			Rows         struct {
				Edges []struct {
					Node struct {
						Line        int
						CustomerRef string
						Status      string
						Code        *string
					}
				}
			}
		}
	}
	api.MustDo(t, tr.D1.Token, jobQ, map[string]any{"id": up.UploadBulkChanges.ID}, &job)
	if job.Node.Status != "COMPLETED" || job.Node.Done != 1 || len(job.Node.Rows.Edges) != 2 {
		t.Fatalf("job: %+v", job.Node)
	}
	if e := job.Node.Rows.Edges; e[0].Node.Line != 2 || e[0].Node.Status != "DONE" || e[1].Node.Status != "REJECTED" || e[1].Node.Code == nil || *e[1].Node.Code != "NOT_FOUND" {
		t.Fatalf("rows: %+v", e)
	}
	var budget struct {
		Node struct{ Budget *struct{ Amount string } }
	}
	api.MustDo(t, tr.D1.Token, `query($id: ID!) { node(id: $id) { ... on Account { budget { amount } } } }`, map[string]any{"id": ids.Encode("Account", tr.C3.Account.ID)}, &budget)
	if budget.Node.Budget == nil || budget.Node.Budget.Amount != "800.00" {
		t.Fatalf("C3's budget: %+v", budget.Node.Budget)
	}
	if r := api.Do(t, tr.D2.Token, jobQ, map[string]any{"id": up.UploadBulkChanges.ID}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor reading the job: %s", r.Code())
	}
	if r := api.Do(t, tr.D2.Token, `query($p: ID!) { bulkJobs(partnerId: $p) { totalCount } }`, map[string]any{"p": d1}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor listing jobs: %s", r.Code())
	}
}
