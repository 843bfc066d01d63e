-- +goose Up
-- Reconciliation (issue 11, point 1): Redis may lose its tasks (on our
-- machines it keeps nothing over a restart), so the database must tell which
-- dispatched outbox rows still owe their consumers a run. settled_at is set
-- when a row needs no task, when its task has run its consumers, or when its
-- task was archived (given up: it waits in asynq's dead-letter queue). A
-- dispatched row without it whose task is gone from Redis is enqueued again,
-- under its same task ID, by the outbox sweep.
ALTER TABLE outbox ADD COLUMN settled_at timestamptz;
UPDATE outbox SET settled_at = dispatched_at WHERE dispatched_at IS NOT NULL;
CREATE INDEX outbox_unsettled_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL AND settled_at IS NULL;
DROP INDEX outbox_dispatched_idx;
CREATE INDEX outbox_settled_idx ON outbox (settled_at) WHERE settled_at IS NOT NULL;

-- +goose Down
DROP INDEX outbox_settled_idx;
CREATE INDEX outbox_dispatched_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;
DROP INDEX outbox_unsettled_idx;
ALTER TABLE outbox DROP COLUMN settled_at;
