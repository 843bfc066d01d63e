package guard

import (
	"fmt"
	"testing"

	"github.com/shopspring/decimal"

	"partnerd/models"
)

// The purchase matrix: every status × billing mode × budget state ×
// exemption × arrears, against the rule written out case by case.
func TestDecide_Matrix(t *testing.T) {
	const cur = 202611
	d := decimal.RequireFromString
	ptr := func(r models.FrozenReason) *models.FrozenReason { return &r }
	statuses := []struct {
		name   string
		status models.AccountStatus
		reason *models.FrozenReason
	}{
		{"active", models.StatusActive, nil},
		{"frozen-manual", models.StatusFrozen, ptr(models.FrozenManual)},
		{"frozen-overspend", models.StatusFrozen, ptr(models.FrozenOverspend)},
		{"frozen-new", models.StatusFrozen, ptr(models.FrozenNewCustomer)},
		{"frozen-resources", models.StatusFrozenWithResources, ptr(models.FrozenManual)},
		{"frozen-arrears", models.StatusFrozen, ptr(models.FrozenArrears)},
	}
	budgets := []struct {
		name   string
		amount string // "" = no budget
		spent  string
	}{
		{"none", "", "0"}, {"under", "1000", "500"}, {"would-exceed", "1000", "950"}, {"exactly-reached", "1000", "1000"}, {"exceeded", "1000", "1200"},
	}
	exemptions := []struct{ post, pre bool }{{false, false}, {true, false}, {false, true}, {true, true}}
	modes := []models.BillingMode{models.PayPerUse, models.Subscription, models.ReservedInstance}
	for _, st := range statuses {
		for _, b := range budgets {
			for _, ex := range exemptions {
				for _, arrears := range []bool{false, true} {
					for _, credit := range []string{"5000", "60"} { // available credit: plenty, or less than the purchase
						for _, mode := range modes {
							limit := d(credit)
							r := &row{Kind: models.KindCustomer, Status: st.status, FrozenReason: st.reason, CreditLimit: limit,
								ExemptPostpaid: ex.post, ExemptPrepaid: ex.pre, Month: cur, MonthList: d(b.spent), MonthActual: d("0")}
							if arrears {
								r.MonthActual = limit.Add(d("0.01"))
							}
							if b.amount != "" {
								id, typ, amt := int64(1), models.BudgetMonthly, d(b.amount)
								r.BudgetID, r.BudgetType, r.BudgetAmount = &id, &typ, &amt
							}
							amount := d("100")
							// The rule, case by case.
							want := ""
							prepaid := mode != models.PayPerUse
							exempt := (mode == models.PayPerUse && ex.post) || (prepaid && ex.pre)
							switch {
							case st.status != models.StatusActive && st.name != "frozen-arrears":
								want = ReasonAccountFrozen
							case arrears && !exempt:
								want = ReasonArrearsSuspended
							case prepaid && (b.name == "would-exceed" || b.name == "exactly-reached" || b.name == "exceeded"):
								want = ReasonBudgetExceeded
							case prepaid && (arrears || credit == "60"):
								want = ReasonInsufficientCredit
							}
							name := fmt.Sprintf("%s/%s/budget-%s/exempt-%v-%v/arrears-%v/credit-%s", st.name, mode, b.name, ex.post, ex.pre, arrears, credit)
							got := decide(r, mode, amount, cur)
							if got.Allowed != (want == "") || got.Reason != want {
								t.Errorf("%s: got %+v, want %q", name, got, want)
							}
						}
					}
				}
			}
		}
	}
}

// A purchase exactly filling the budget is allowed; one cent more is not.
// Personal accounts answer to their status only. A row of an earlier month
// counts as zero spend.
func TestDecide_Edges(t *testing.T) {
	d := decimal.RequireFromString
	id, typ, amt := int64(1), models.BudgetMonthly, d("1000")
	r := &row{Kind: models.KindCustomer, Status: models.StatusActive, CreditLimit: d("5000"), Month: 202611, MonthList: d("900"),
		BudgetID: &id, BudgetType: &typ, BudgetAmount: &amt}
	if got := decide(r, models.Subscription, d("100"), 202611); !got.Allowed {
		t.Errorf("filling the budget exactly: %+v", got)
	}
	if got := decide(r, models.Subscription, d("100.01"), 202611); got.Reason != ReasonBudgetExceeded {
		t.Errorf("one cent over: %+v", got)
	}
	r.MonthList = d("5000")
	if got := decide(r, models.Subscription, d("100"), 202612); !got.Allowed {
		t.Errorf("next month with last month's row: %+v", got)
	}
	one := models.BudgetOneTime
	r.BudgetType, r.OneTimeSpent = &one, d("1000")
	if got := decide(r, models.Subscription, d("1"), 202612); got.Reason != ReasonBudgetExceeded {
		t.Errorf("one-time budget does not restart: %+v", got)
	}
	p := &row{Kind: models.KindPersonal, Status: models.StatusActive, CreditLimit: d("0")}
	if got := decide(p, models.Subscription, d("100"), 202611); !got.Allowed {
		t.Errorf("personal account: %+v", got)
	}
	reason := models.FrozenManual
	p.Status, p.FrozenReason = models.StatusFrozen, &reason
	if got := decide(p, models.PayPerUse, d("1"), 202611); got.Reason != ReasonAccountFrozen {
		t.Errorf("frozen personal account: %+v", got)
	}
}
