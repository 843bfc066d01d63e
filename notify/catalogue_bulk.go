package notify

import "partnerd/models"

// registerBulkChanges adds the events of bulk changes from CSV (issue 14)
// to c: the partner's finance users learn that an uploaded file has been
// applied, and how it went.
func registerBulkChanges(c *Catalogue) {
	Register(c, BulkChangeCompleted{JobID: 12, PartnerID: 7, Kind: "BUDGETS", Applied: 118, Failed: 2, Rejected: 3,
		URL: "https://partner.example.com/bulk-changes/QnVsa0pvYjoxMg"}, Spec[BulkChangeCompleted]{
		Audience: func(e BulkChangeCompleted) []Audience { return []Audience{To(e.PartnerID, models.RoleFinance)} },
		Defaults: InSiteAndEmail(),
	})
}
