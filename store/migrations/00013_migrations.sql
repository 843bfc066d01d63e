-- +goose Up
-- Sub-customer migrations (DOMAIN.md §6). A batch moves customers of one
-- source partner under a receiving partner, after the receiver's
-- distributor (for a second-level receiver), the source and a platform
-- reviewer approved. Each pending step must be answered before step_due_at.
CREATE TABLE migrations (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    receiver_id       bigint NOT NULL REFERENCES accounts(id),
    source_id         bigint NOT NULL REFERENCES accounts(id),
    -- The receiver's tier-1 distributor when the receiver is a second-level reseller.
    distributor_id    bigint REFERENCES accounts(id),
    status            text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT','PENDING_DISTRIBUTOR_APPROVAL','PENDING_SOURCE_APPROVAL',
                          'PENDING_INTERNAL_REVIEW','EXECUTING','COMPLETED','PARTIALLY_COMPLETED','REJECTED','CANCELLED','EXPIRED')),
    rejected_rows     jsonb NOT NULL DEFAULT '[]',
    reason            text NOT NULL DEFAULT '',
    created_by        bigint REFERENCES users(id),
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    step_due_at       timestamptz,
    statement_version text,
    statement_locale  text,
    statement_by      bigint REFERENCES users(id),
    statement_at      timestamptz,
    finished_at       timestamptz,
    CHECK (receiver_id <> source_id)
);
CREATE INDEX migrations_receiver_idx ON migrations (receiver_id, id);
CREATE INDEX migrations_source_idx ON migrations (source_id, id) WHERE status <> 'DRAFT';
CREATE INDEX migrations_distributor_idx ON migrations (distributor_id, id) WHERE distributor_id IS NOT NULL AND status <> 'DRAFT';
CREATE INDEX migrations_due_idx ON migrations (step_due_at) WHERE status LIKE 'PENDING%';
CREATE INDEX migrations_executing_idx ON migrations (id) WHERE status = 'EXECUTING';

-- One row per customer of a batch. open is true from submission until the
-- item ends (migrated, failed, or the batch ended): a customer is in at most
-- one open item, so two batches racing for it cannot both win.
CREATE TABLE migration_items (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id  bigint NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
    account_id    bigint NOT NULL REFERENCES accounts(id),
    row_number    int NOT NULL DEFAULT 0,
    credit        numeric(20,6) NOT NULL CHECK (credit >= 0),
    status        text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','MIGRATED','FAILED','REJECTED','CANCELLED')),
    reason        text NOT NULL DEFAULT '',
    open          boolean NOT NULL DEFAULT false,
    effective_at  timestamptz,
    UNIQUE (migration_id, account_id)
);
CREATE UNIQUE INDEX migration_items_one_open ON migration_items (account_id) WHERE open;
CREATE INDEX migration_items_pending_idx ON migration_items (migration_id, id) WHERE status = 'PENDING';

-- The history of a batch (account_id NULL) and of each of its customers.
CREATE TABLE migration_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id  bigint NOT NULL REFERENCES migrations(id) ON DELETE CASCADE,
    account_id    bigint REFERENCES accounts(id),
    at            timestamptz NOT NULL,
    actor         text NOT NULL,
    actor_user_id bigint REFERENCES users(id),
    action        text NOT NULL,
    status        text NOT NULL,
    note          text
);
CREATE INDEX migration_events_idx ON migration_events (migration_id, account_id, id);

-- +goose Down
DROP TABLE migration_events;
DROP TABLE migration_items;
DROP TABLE migrations;
