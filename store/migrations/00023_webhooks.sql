-- +goose Up
-- Webhooks (issue 14, point 1): a partner's endpoints that receive the
-- notification catalogue's events of its subtree, signed with the endpoint's
-- secret. Deliveries to them are rows of the one delivery engine (channel
-- WEBHOOK), so they are created, claimed, retried and logged exactly as
-- email and SMS are.
CREATE TABLE webhook_endpoints (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id            bigint NOT NULL REFERENCES accounts(id),
    url                   text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    description           text NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    event_types           text[] NOT NULL CHECK (cardinality(event_types) >= 1),
    -- The signing secret is needed in clear to sign; it is shown to the
    -- partner once, at creation or rotation, and never read back through
    -- the API.
    secret                text NOT NULL,
    -- After a rotation the previous secret signs too, until previous_until.
    previous_secret       text,
    previous_until        timestamptz,
    enabled               boolean NOT NULL DEFAULT true,
    disabled_reason       text,
    -- Since when every delivery has failed (NULL while the last one
    -- succeeded); 24 hours of it disables the endpoint.
    failing_since         timestamptz,
    last_success_at       timestamptz,
    last_failure_at       timestamptz,
    created_by            bigint REFERENCES users(id),
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    secret_rotated_at     timestamptz,
    CONSTRAINT webhook_endpoints_disabled_reason CHECK (enabled OR disabled_reason IS NOT NULL),
    CONSTRAINT webhook_endpoints_previous CHECK ((previous_secret IS NULL) = (previous_until IS NULL))
);
CREATE INDEX webhook_endpoints_account_idx ON webhook_endpoints (account_id, id);
CREATE INDEX webhook_endpoints_enabled_idx ON webhook_endpoints (account_id) WHERE enabled;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('IN_SITE','EMAIL','SMS','WEBHOOK'));
ALTER TABLE deliveries
    ADD COLUMN endpoint_id bigint REFERENCES webhook_endpoints(id),
    -- A webhook delivery is retried until then (24 hours from its creation
    -- or its resend), whatever the queue's retry count says.
    ADD COLUMN retry_until timestamptz;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_webhook_endpoint CHECK ((channel = 'WEBHOOK') = (endpoint_id IS NOT NULL));
CREATE INDEX deliveries_endpoint_idx ON deliveries (endpoint_id, id DESC) WHERE endpoint_id IS NOT NULL;
-- Webhooks waiting for their first attempt, newest first: a delivery task
-- claims a batch of them at once, as it does emails.
CREATE INDEX deliveries_first_webhook_idx ON deliveries (id)
    WHERE status = 'PENDING' AND channel = 'WEBHOOK' AND attempts = 0;

-- +goose Down
DROP INDEX deliveries_first_webhook_idx;
DROP INDEX deliveries_endpoint_idx;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_webhook_endpoint;
ALTER TABLE deliveries DROP COLUMN retry_until, DROP COLUMN endpoint_id;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_channel_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_channel_check CHECK (channel IN ('IN_SITE','EMAIL','SMS'));
DROP TABLE webhook_endpoints;
