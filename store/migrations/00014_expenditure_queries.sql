-- +goose NO TRANSACTION
-- +goose Up
-- Expenditure queries (DOMAIN.md §5, package expenditures) read one owner's
-- records of a month in usage-time order: a page of a partner's records is
-- the first rows after the cursor (month, usage_at, id) of each owning
-- partner of its subtree, merged. (owner_id, month, usage_at, id) serves that
-- keyset and every query the (owner_id, month) index served, so it replaces
-- it: ingestion still maintains one owner index, not two. Built
-- CONCURRENTLY, so a large table keeps taking records while it builds.
CREATE INDEX CONCURRENTLY IF NOT EXISTS expenditures_owner_usage_idx ON expenditures (owner_id, month, usage_at, id);
DROP INDEX CONCURRENTLY IF EXISTS expenditures_owner_idx;

-- +goose Down
CREATE INDEX CONCURRENTLY IF NOT EXISTS expenditures_owner_idx ON expenditures (owner_id, month);
DROP INDEX CONCURRENTLY IF EXISTS expenditures_owner_usage_idx;
