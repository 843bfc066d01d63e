-- +goose Up
-- Notifications (DOMAIN.md §7): per-user channel preferences, one delivery
-- row per (event, recipient, channel), every attempt, and the in-site inbox.

-- Only a user's choices that differ from the catalogue's defaults are kept.
CREATE TABLE notification_preferences (
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    event_type text NOT NULL,
    channel    text NOT NULL CHECK (channel IN ('IN_SITE','EMAIL','SMS')),
    enabled    boolean NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, event_type, channel)
);

-- One row per (event, recipient, channel): key is unique, and it is the task
-- ID of the delivery's queue task, so neither the row nor the task can exist
-- twice. The message is rendered when the row is created (the recipient's
-- locale), so a retry or a resend sends exactly what was first rendered.
CREATE TABLE deliveries (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key           text NOT NULL UNIQUE,
    outbox_id     bigint NOT NULL,
    event_type    text NOT NULL,
    channel       text NOT NULL CHECK (channel IN ('IN_SITE','EMAIL','SMS')),
    account_id    bigint NOT NULL REFERENCES accounts(id),
    user_id       bigint REFERENCES users(id),
    address       text NOT NULL DEFAULT '',
    locale        text NOT NULL CHECK (locale IN ('en-US','zh-CN')),
    subject       text NOT NULL,
    body_text     text NOT NULL,
    body_html     text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','SENDING','SENT','FAILED')),
    generation    int NOT NULL DEFAULT 1 CHECK (generation >= 1),
    attempts      int NOT NULL DEFAULT 0,
    claimed_until timestamptz,
    last_error    text,
    provider_id   text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    sent_at       timestamptz,
    CONSTRAINT deliveries_sent_consistent CHECK ((status = 'SENT') = (sent_at IS NOT NULL))
);
CREATE INDEX deliveries_account_idx ON deliveries (account_id, id DESC);
CREATE INDEX deliveries_outbox_idx ON deliveries (outbox_id);
CREATE INDEX deliveries_open_idx ON deliveries (updated_at) WHERE status IN ('PENDING','SENDING');

-- Every attempt at a delivery and its outcome; outcome NULL while in flight,
-- UNKNOWN when the worker stopped during the provider call.
CREATE TABLE delivery_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    n           int NOT NULL,
    channel     text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('SENT','RETRY','FAILED','UNKNOWN')),
    response    text NOT NULL DEFAULT '',
    UNIQUE (delivery_id, n)
);

-- The in-site inbox: a message per IN_SITE delivery (unique), addressed to a
-- user, or to the whole account (user_id NULL) when it has no user whose
-- roles qualify.
CREATE TABLE inbox_messages (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id bigint NOT NULL UNIQUE REFERENCES deliveries(id),
    account_id  bigint NOT NULL REFERENCES accounts(id),
    user_id     bigint REFERENCES users(id),
    event_type  text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    read_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inbox_messages_user_idx ON inbox_messages (user_id, id DESC) WHERE user_id IS NOT NULL;
CREATE INDEX inbox_messages_account_idx ON inbox_messages (account_id, id DESC) WHERE user_id IS NULL;

-- +goose Down
DROP TABLE inbox_messages;
DROP TABLE delivery_attempts;
DROP TABLE deliveries;
DROP TABLE notification_preferences;
