package notify

// EventBulkChangeCompleted is the type of BulkChangeCompleted.
const EventBulkChangeCompleted = "bulk.completed"

// BulkChangeCompleted tells a partner's finance users that a bulk change
// from CSV they uploaded (issue 14) has been applied: Applied rows changed
// their customer, Failed were refused when applied, Rejected were refused
// at the upload. Kind is BUDGETS, CREDIT or OVERSPEND_ACTIONS; the rows and
// their reasons are at URL.
type BulkChangeCompleted struct {
	JobID     int64  `json:"jobId"`
	PartnerID int64  `json:"partnerId"`
	Kind      string `json:"kind"`
	Applied   int    `json:"applied"`
	Failed    int    `json:"failed"`
	Rejected  int    `json:"rejected"`
	URL       string `json:"url"`
}

// EventType implements store.Event.
func (BulkChangeCompleted) EventType() string { return EventBulkChangeCompleted }

// EventAccountID implements store.AccountEvent.
func (e BulkChangeCompleted) EventAccountID() int64 { return e.PartnerID }
