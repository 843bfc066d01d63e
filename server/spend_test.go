package server_test

import (
	"testing"
	"time"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/testkit"
)

// Credit and spend end to end through GraphQL: the platform sets a limit,
// partners allocate down, the billing pipeline records spend, and every
// level reads credit, arrears and spend through its own scope.
func TestCreditAndSpend_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	id := func(p testkit.Party) string { return ids.Encode("Account", p.Account.ID) }

	api.MustDo(t, tr.Platform.Token, `mutation($id: ID!) { setCreditLimit(accountId: $id, amount: "1000.00") { id } }`, map[string]any{"id": id(tr.D1)}, nil)
	api.MustDo(t, tr.D1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: "300") { id } }`, map[string]any{"id": id(tr.R1)}, nil)
	api.MustDo(t, tr.R1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: "100.50") { id } }`, map[string]any{"id": id(tr.C1)}, nil)
	if r := api.Do(t, tr.R1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: "500") { id } }`, map[string]any{"id": id(tr.C1)}); r.Code() != "PRECONDITION_FAILED" {
		t.Fatalf("over-allocation: %q %+v", r.Code(), r.Errors)
	}
	if r := api.Do(t, tr.R1.Token, `mutation($id: ID!) { allocateCredit(childId: $id, amount: 5) { id } }`, map[string]any{"id": id(tr.C1)}); r.Code() != "VALIDATION" {
		t.Fatalf("numeric amount: %q", r.Code())
	}

	now := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	var ing struct {
		RecordExpenditures struct {
			Accepted, Duplicates, Conflicts, Rejected int
			Errors                                    []struct {
				Index  int
				Reason string
			}
		}
	}
	recs := []map[string]any{
		{"externalId": "e1", "customerId": id(tr.C1), "productCode": "ecs", "billingMode": "PAY_PER_USE", "usageAt": now, "listAmount": "80.00", "actualAmount": "70.25"},
		{"externalId": "e2", "customerId": id(tr.C1), "productCode": "rds", "billingMode": "SUBSCRIPTION", "usageAt": now, "listAmount": "40", "actualAmount": "40"},
		{"externalId": "e3", "customerId": id(tr.C5), "productCode": "ecs", "billingMode": "PAY_PER_USE", "usageAt": now, "listAmount": "10", "actualAmount": "11"},
	}
	const ingest = `mutation($r: [ExpenditureInput!]!) { recordExpenditures(records: $r) { accepted duplicates conflicts rejected errors { index reason } } }`
	api.MustDo(t, tr.Platform.Token, ingest, map[string]any{"r": recs}, &ing)
	if g := ing.RecordExpenditures; g.Accepted != 2 || g.Rejected != 1 || len(g.Errors) != 1 || g.Errors[0].Index != 2 {
		t.Fatalf("first ingest: %+v", g)
	}
	api.MustDo(t, tr.Platform.Token, ingest, map[string]any{"r": recs[:2]}, &ing)
	if g := ing.RecordExpenditures; g.Accepted != 0 || g.Duplicates != 2 {
		t.Fatalf("replay: %+v", g)
	}
	if r := api.Do(t, tr.D1.Token, ingest, map[string]any{"r": recs[:1]}); r.Code() != "FORBIDDEN" {
		t.Fatalf("a partner ingesting: %q", r.Code())
	}

	type view struct {
		Account struct {
			Credit    struct{ Limit, Allocated, Allocatable, Available string }
			InArrears bool
			Arrears   string
			Spend     struct {
				Month, List, Actual string
				AsOf                *string
			}
		}
	}
	const q = `query($id: ID!) { account(id: $id) { credit { limit allocated allocatable available } inArrears arrears spend { month list actual asOf } } }`
	var c1 view
	api.MustDo(t, tr.R1.Token, q, map[string]any{"id": id(tr.C1)}, &c1)
	a := c1.Account
	if a.Credit.Limit != "100.50" || a.Credit.Available != "-9.75" || !a.InArrears || a.Arrears != "9.75" ||
		a.Spend.List != "120.00" || a.Spend.Actual != "110.25" || a.Spend.AsOf == nil || a.Spend.Month != models.MonthOf(time.Now(), testkit.Shanghai).String() {
		t.Fatalf("C1 as R1: %+v", a)
	}
	var d1 view
	api.MustDo(t, tr.D1.Token, q, map[string]any{"id": id(tr.D1)}, &d1)
	if d := d1.Account; d.Credit.Limit != "1000.00" || d.Credit.Allocated != "300.00" || d.Credit.Allocatable != "700.00" || d.Spend.List != "120.00" || d.InArrears {
		t.Fatalf("D1: %+v", d)
	}
	var r2 view
	api.MustDo(t, tr.D1.Token, q, map[string]any{"id": id(tr.R2)}, &r2)
	if r2.Account.Spend.List != "0.00" {
		t.Fatalf("R2 spend: %+v", r2.Account.Spend)
	}
	var last view
	api.MustDo(t, tr.C1.Token, `query($id: ID!) { account(id: $id) { spend(month: "2020-01") { month list actual asOf } } }`, map[string]any{"id": id(tr.C1)}, &last)
	if last.Account.Spend.Month != "2020-01" || last.Account.Spend.List != "0.00" || last.Account.Spend.AsOf != nil {
		t.Fatalf("an empty month: %+v", last.Account.Spend)
	}

	var ledger struct {
		CreditLedger struct {
			Edges []struct {
				Node struct {
					Kind, Amount   string
					From           *struct{ Name string }
					FromLimitAfter *string
				}
			}
		}
	}
	api.MustDo(t, tr.R1.Token, `query($id: ID!) { creditLedger(accountId: $id) { edges { node { kind amount from { name } fromLimitAfter } } } }`, map[string]any{"id": id(tr.R1)}, &ledger)
	e := ledger.CreditLedger.Edges
	if len(e) != 2 || e[0].Node.Kind != "ALLOCATE" || e[0].Node.Amount != "100.50" || e[1].Node.From != nil || e[1].Node.FromLimitAfter != nil {
		t.Fatalf("R1's ledger as R1 (D1's side must be hidden): %+v", e)
	}
}
