package notify

// The event types of application links (issue 14): a personal account
// applies through a partner's link, and the partner decides.
const (
	EventAppLinkApplied = "applink.applied"
	EventAppLinkDecided = "applink.decided"
)

// AppLinkApplied tells a partner's operators that the PERSONAL account
// ApplicantID applied through the partner's application link LinkID to
// become its CUSTOMER or, for a distributor, its second-level RESELLER
// (Kind). The application waits for their decision at URL.
type AppLinkApplied struct {
	ApplicationID int64  `json:"applicationId"`
	LinkID        int64  `json:"linkId"`
	PartnerID     int64  `json:"partnerId"`
	ApplicantID   int64  `json:"applicantId"`
	Kind          string `json:"kind"`
	URL           string `json:"url"`
}

// EventType implements store.Event.
func (AppLinkApplied) EventType() string { return EventAppLinkApplied }

// EventAccountID implements store.AccountEvent.
func (e AppLinkApplied) EventAccountID() int64 { return e.PartnerID }

// AppLinkDecided tells the applicant whether the partner approved its
// application (it is now the partner's Kind: a CUSTOMER frozen until the
// partner sets a budget and unfreezes it, or a RESELLER) or rejected it,
// with the partner's Reason.
type AppLinkDecided struct {
	ApplicationID int64  `json:"applicationId"`
	PartnerID     int64  `json:"partnerId"`
	ApplicantID   int64  `json:"applicantId"`
	Kind          string `json:"kind"`
	Approved      bool   `json:"approved"`
	Reason        string `json:"reason,omitempty"`
	URL           string `json:"url"`
}

// EventType implements store.Event.
func (AppLinkDecided) EventType() string { return EventAppLinkDecided }

// EventAccountID implements store.AccountEvent.
func (e AppLinkDecided) EventAccountID() int64 { return e.ApplicantID }
