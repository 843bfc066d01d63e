package notify

import "partnerd/models"

// registerForecasts adds the events of spend forecasts (issue 14) to c.
func registerForecasts(c *Catalogue) {
	fin := models.RoleFinance
	// 4,750.00 spent by 2026-11-10 12:00 is 500.00 a day: 15,000.00 by the
	// month's end, and the 10,000.00 reached 10.5 days later, on the 21st.
	Register(c, BudgetForecastExceeding{CustomerID: 42, BudgetID: 3, BudgetType: "MONTHLY", Period: "2026-11", Month: "2026-11",
		Amount: "10000.00", Spent: "4750.00", ProjectedList: "15000.00", ExceedsOn: "2026-11-21"}, Spec[BudgetForecastExceeding]{
		Audience: func(e BudgetForecastExceeding) []Audience {
			return []Audience{To(e.CustomerID, fin), ToParentOf(e.CustomerID, fin)}
		},
		Defaults: InSiteAndEmail(),
	})
}
