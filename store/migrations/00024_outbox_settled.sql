-- +goose NO TRANSACTION
-- +goose Up
-- Reconciliation (issue 11, point 1): Redis may lose its tasks (on our
-- machines it keeps nothing over a restart), so the database must tell which
-- dispatched outbox rows still owe their consumers a run. settled_at is set
-- when a row needs no task, when its task has run its consumers, or when its
-- task was archived (given up: it waits in asynq's dead-letter queue). A
-- dispatched row without it whose task is gone from Redis is enqueued again,
-- under its same task ID, by the outbox sweep.
--
-- Outside a transaction, so every change that emits an event keeps writing
-- while it runs: the column is added without a rewrite, the backfill takes
-- row locks only, and the indexes are built concurrently.
ALTER TABLE outbox ADD COLUMN IF NOT EXISTS settled_at timestamptz;
UPDATE outbox SET settled_at = dispatched_at WHERE dispatched_at IS NOT NULL AND settled_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_unsettled_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL AND settled_at IS NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_settled_idx ON outbox (settled_at) WHERE settled_at IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS outbox_dispatched_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS outbox_dispatched_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;
DROP INDEX CONCURRENTLY IF EXISTS outbox_settled_idx;
DROP INDEX CONCURRENTLY IF EXISTS outbox_unsettled_idx;
ALTER TABLE outbox DROP COLUMN IF EXISTS settled_at;
