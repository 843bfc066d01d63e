package notify

import "partnerd/models"

// registerApplicationLinks adds the events of application links (issue 14)
// to c: the partner's operators learn of an application, the applicant's
// users of the decision.
func registerApplicationLinks(c *Catalogue) {
	Register(c, AppLinkApplied{ApplicationID: 9, LinkID: 4, PartnerID: 7, ApplicantID: 42, Kind: "CUSTOMER",
		URL: "https://partner.example.com/link-applications/TGlua0FwcGxpY2F0aW9uOjk"}, Spec[AppLinkApplied]{
		Audience: func(e AppLinkApplied) []Audience { return []Audience{To(e.PartnerID, models.RoleOperator)} },
		Defaults: InSiteAndEmail(),
	})
	everyone := []models.Role{models.RoleFinance, models.RoleOperator, models.RoleViewer}
	Register(c, AppLinkDecided{ApplicationID: 9, PartnerID: 7, ApplicantID: 42, Kind: "CUSTOMER", Approved: false,
		Reason: "We only take customers in East China for now.", URL: "https://partner.example.com/link-applications/TGlua0FwcGxpY2F0aW9uOjk"},
		Spec[AppLinkDecided]{
			Audience: func(e AppLinkDecided) []Audience { return []Audience{To(e.ApplicantID, everyone...)} },
			Defaults: InSiteAndEmail(),
		})
}
