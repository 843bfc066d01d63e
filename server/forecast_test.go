package server_test

import (
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"partnerd/ids"
	"partnerd/models"
	"partnerd/server"
	"partnerd/spend"
	"partnerd/testkit"
)

// Account.forecast through GraphQL: a customer with spend this month gets a
// projection at least its spend so far; a partner gets null; another
// distributor cannot see the customer at all.
func TestForecast_ThroughGraphQL(t *testing.T) {
	api := testkit.NewAPI(t, server.Options{})
	tr := api.Tree
	c3 := ids.Encode("Account", tr.C3.Account.ID)
	sp := spend.New(tr.Store, testkit.Shanghai)
	if res, err := sp.IngestRecords(tr.Platform.Ctx, []spend.Record{{ExternalID: "fc-1", CustomerID: tr.C3.Account.ID, ProductCode: "ecs",
		BillingMode: models.PayPerUse, UsageAt: time.Now().Add(-time.Minute), List: decimal.RequireFromString("30"),
		Actual: decimal.RequireFromString("24")}}); err != nil || res.Accepted != 1 {
		t.Fatalf("ingest: %+v %v", res, err)
	}
	const q = `query($id: ID!) { node(id: $id) { ... on Account { forecast { month daysInMonth listToDate actualToDate projectedList projectedActual projectedAvailable budgetAmount creditRunsOutOn } } } }`
	var out struct {
		Node struct {
			Forecast *struct {
				Month                                   string
				DaysInMonth                             int
				ListToDate, ActualToDate, ProjectedList string
				ProjectedActual, ProjectedAvailable     string
				BudgetAmount, CreditRunsOutOn           *string
			}
		}
	}
	api.MustDo(t, tr.D1.Token, q, map[string]any{"id": c3}, &out)
	f := out.Node.Forecast
	if f == nil || f.Month != models.MonthOf(time.Now(), testkit.Shanghai).String() || f.ListToDate != "30.00" || f.ActualToDate != "24.00" ||
		decimal.RequireFromString(f.ProjectedList).LessThan(decimal.RequireFromString("30")) || f.BudgetAmount != nil || f.CreditRunsOutOn == nil {
		t.Fatalf("C3's forecast: %+v", f)
	}
	var partner struct {
		Node struct{ Forecast *struct{ Month string } }
	}
	api.MustDo(t, tr.D1.Token, q, map[string]any{"id": ids.Encode("Account", tr.D1.Account.ID)}, &partner)
	if partner.Node.Forecast != nil {
		t.Fatalf("a partner's forecast: %+v", partner.Node.Forecast)
	}
	if r := api.Do(t, tr.D2.Token, q, map[string]any{"id": c3}); r.Code() != "NOT_FOUND" {
		t.Fatalf("another distributor: %s", r.Code())
	}
}
