-- +goose Up
-- Bulk changes from CSV (issue 14 point 6): a partner uploads budgets,
-- credit allocations or overspend actions for many of its direct customers
-- in one file; the valid rows are applied by one background job, row by
-- row, as the uploading user (created_by; NULL for the system).
CREATE TABLE bulk_jobs (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id     bigint NOT NULL REFERENCES accounts(id),
    kind           text NOT NULL CHECK (kind IN ('BUDGETS','CREDIT','OVERSPEND_ACTIONS')),
    status         text NOT NULL DEFAULT 'QUEUED' CHECK (status IN ('QUEUED','RUNNING','COMPLETED')),
    created_by     bigint REFERENCES users(id),
    -- valid_count rows to apply (PENDING until DONE or FAILED), rejected_count
    -- rows refused at the upload; done_count + failed_count <= valid_count.
    valid_count    int NOT NULL CHECK (valid_count > 0),
    rejected_count int NOT NULL DEFAULT 0,
    done_count     int NOT NULL DEFAULT 0,
    failed_count   int NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL,
    started_at     timestamptz,
    finished_at    timestamptz,
    CHECK (done_count + failed_count <= valid_count)
);
CREATE INDEX bulk_jobs_partner_idx ON bulk_jobs (partner_id, id);
CREATE INDEX bulk_jobs_open_idx ON bulk_jobs (id) WHERE status <> 'COMPLETED';

-- One row per line of the file that is not blank or a comment. A REJECTED
-- row was refused at the upload (code and message say why; customer_id is
-- NULL, customer_ref is the ID as written); the others are PENDING until
-- the job applies them (DONE, with a note in message, or FAILED with the
-- error's code and message).
CREATE TABLE bulk_rows (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id           bigint NOT NULL REFERENCES bulk_jobs(id) ON DELETE CASCADE,
    line             int NOT NULL,
    customer_id      bigint REFERENCES accounts(id),
    customer_ref     text NOT NULL DEFAULT '',
    budget_type      text CHECK (budget_type IN ('MONTHLY','ONE_TIME')),
    amount           numeric(20,6),
    thresholds       int[],
    overspend_action text CHECK (overspend_action IN ('NONE','FREEZE_ACCOUNT','FREEZE_ACCOUNT_AND_RESOURCES')),
    status           text NOT NULL CHECK (status IN ('PENDING','DONE','FAILED','REJECTED')),
    code             text NOT NULL DEFAULT '',
    message          text NOT NULL DEFAULT '',
    attempts         int NOT NULL DEFAULT 0,
    finished_at      timestamptz,
    CHECK ((status = 'REJECTED') = (customer_id IS NULL))
);
CREATE INDEX bulk_rows_job_idx ON bulk_rows (job_id, id);
CREATE INDEX bulk_rows_status_idx ON bulk_rows (job_id, status, id);

-- +goose Down
DROP TABLE bulk_rows;
DROP TABLE bulk_jobs;
