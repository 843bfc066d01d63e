-- +goose Up
-- Emails waiting for their first attempt, oldest first: a delivery task
-- takes a batch of them in one claim (one commit for many messages).
CREATE INDEX deliveries_first_email_idx ON deliveries (id)
    WHERE status = 'PENDING' AND channel = 'EMAIL' AND attempts = 0;

-- +goose Down
DROP INDEX deliveries_first_email_idx;
