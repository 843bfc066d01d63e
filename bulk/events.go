package bulk

// EventQueued is the type of Queued.
const EventQueued = "bulk.queued"

// Queued asks the workers to run a job that has rows to apply (the
// consumer enqueues the run under one task ID per job; the scheduler's
// sweep enqueues it again while the job is not COMPLETED, so a lost task or
// a killed worker only delays it).
type Queued struct {
	JobID int64 `json:"jobId"`
}

// EventType implements store.Event.
func (Queued) EventType() string { return EventQueued }
