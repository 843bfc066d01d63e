-- +goose Up
-- Tags filter children (children(tag:)) and are copied onto expenditure
-- records at ingestion (NULL when the customer had none), so costs stay
-- allocated by the tags in force when they were recorded.
CREATE INDEX accounts_tags_idx ON accounts USING gin (tags jsonb_path_ops);
ALTER TABLE expenditures ADD COLUMN tags jsonb;

-- +goose Down
ALTER TABLE expenditures DROP COLUMN tags;
DROP INDEX accounts_tags_idx;
