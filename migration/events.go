package migration

import "partnerd/notify"

// EventExecute is the type of Execute.
const EventExecute = "migration.execute"

// Execute asks the workers to execute an approved batch (the consumer
// enqueues the execution task; the scheduler's sweep re-enqueues it for a
// batch still EXECUTING, so a lost task or a killed worker only delays it).
type Execute struct {
	MigrationID int64 `json:"migrationId"`
}

// EventType implements store.Event.
func (Execute) EventType() string { return EventExecute }

// Queue implements store.QueuedEvent: an approved batch starts at once.
func (Execute) Queue() string { return "critical" }

// EventUpdated is the type of Updated.
const EventUpdated = "migration.updated"

// Updated tells migrationUpdated subscribers that a batch changed in a way
// nobody is notified of (a draft edited, a customer that failed during the
// execution).
type Updated struct {
	MigrationID int64 `json:"migrationId"`
}

// EventType implements store.Event.
func (Updated) EventType() string { return EventUpdated }

// LiveTopics implements store.LiveEvent.
func (e Updated) LiveTopics() []string { return []string{notify.MigrationTopic(e.MigrationID)} }
