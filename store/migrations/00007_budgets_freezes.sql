-- +goose Up
-- Budgets, freezes, resources and the purchase guard (DOMAIN.md §4).

-- One budget per customer, at list price. A budget keeps its id while its
-- amount, thresholds or action change; clearing it, or changing its type,
-- makes a new one (with a new id, so its alerts start afresh).
-- override_period and override_amount record that the partner unfroze the
-- customer while this budget was exceeded in that period at that amount: the
-- overspend action is not enforced again until the period or amount changes.
CREATE TABLE budgets (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id      bigint NOT NULL REFERENCES accounts(id),
    type             text NOT NULL CHECK (type IN ('MONTHLY','ONE_TIME')),
    amount           numeric(20,6) NOT NULL CHECK (amount > 0),
    thresholds       int[] NOT NULL CHECK (cardinality(thresholds) BETWEEN 1 AND 20),
    overspend_action text NOT NULL DEFAULT 'NONE' CHECK (overspend_action IN ('NONE','FREEZE_ACCOUNT','FREEZE_ACCOUNT_AND_RESOURCES')),
    started_at       timestamptz NOT NULL,
    start_month      int NOT NULL,
    override_period  int,
    override_amount  numeric(20,6),
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX budgets_customer_idx ON budgets (customer_id);

-- One row per budget, period and threshold crossed: the alert is sent once.
-- period is YYYYMM for MONTHLY budgets and 0 for ONE_TIME ones. No foreign
-- key: a cleared budget's alerts stay as history.
CREATE TABLE budget_alerts (
    budget_id   bigint NOT NULL,
    period      int NOT NULL,
    threshold   int NOT NULL,
    customer_id bigint NOT NULL,
    spent       numeric(20,6) NOT NULL,
    amount      numeric(20,6) NOT NULL,
    at          timestamptz NOT NULL,
    PRIMARY KEY (budget_id, period, threshold)
);

-- The purchase guard: one precomputed row per CUSTOMER and PERSONAL account
-- holding every input of a purchase decision, rewritten (guard.Sync) in each
-- transaction that changes one of them. month_* are the totals of the
-- Beijing month month; a decision in a later month reads them as 0.
CREATE TABLE purchase_guards (
    customer_id     bigint PRIMARY KEY REFERENCES accounts(id),
    kind            text NOT NULL,
    status          text NOT NULL,
    frozen_reason   text,
    credit_limit    numeric(20,6) NOT NULL DEFAULT 0,
    exempt_postpaid boolean NOT NULL DEFAULT false,
    exempt_prepaid  boolean NOT NULL DEFAULT false,
    month           int NOT NULL DEFAULT 0,
    month_list      numeric(20,6) NOT NULL DEFAULT 0,
    month_actual    numeric(20,6) NOT NULL DEFAULT 0,
    budget_id       bigint,
    budget_type     text,
    budget_amount   numeric(20,6),
    one_time_spent  numeric(20,6) NOT NULL DEFAULT 0,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- Existing customers start with this Beijing month's totals (the default
-- BILLING_TIMEZONE; the next change of any input rewrites the row anyway).
INSERT INTO purchase_guards (customer_id, kind, status, frozen_reason, credit_limit, exempt_postpaid, exempt_prepaid,
    month, month_list, month_actual)
SELECT a.id, a.kind, a.status, a.frozen_reason, coalesce(b.credit_limit, 0), coalesce(b.exempt_postpaid, false), coalesce(b.exempt_prepaid, false),
    m.month, coalesce(t.list_total, 0), coalesce(t.actual_total, 0)
FROM accounts a LEFT JOIN credit_balances b ON b.account_id = a.id
CROSS JOIN (SELECT to_char(now() AT TIME ZONE 'Asia/Shanghai', 'YYYYMM')::int AS month) m
LEFT JOIN spend_totals t ON t.customer_id = a.id AND t.month = m.month
WHERE a.kind IN ('CUSTOMER','PERSONAL');
-- +goose StatementBegin
CREATE FUNCTION accounts_guard_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind IN ('CUSTOMER','PERSONAL') THEN
        INSERT INTO purchase_guards (customer_id, kind, status, frozen_reason, updated_at)
        VALUES (NEW.id, NEW.kind, NEW.status, NEW.frozen_reason, NEW.created_at) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER accounts_guard_row AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_guard_row();

-- When a FROZEN_WITH_RESOURCES account's resources are released unless it
-- is unfrozen first, and when its data was deleted (irreversible).
ALTER TABLE accounts ADD COLUMN release_at timestamptz;
ALTER TABLE accounts ADD COLUMN data_deleted_at timestamptz;
ALTER TABLE accounts ADD CONSTRAINT accounts_release_consistent
    CHECK (release_at IS NULL OR status = 'FROZEN_WITH_RESOURCES' OR data_deleted_at IS NOT NULL);

-- Cloud resources, as far as freezes need them. stopped_by_freeze: stopped
-- by a FROZEN_WITH_RESOURCES freeze, so an unfreeze starts it again.
CREATE TABLE resources (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id       bigint NOT NULL REFERENCES accounts(id),
    product_code      text NOT NULL CHECK (length(product_code) BETWEEN 1 AND 100),
    external_id       text NOT NULL CHECK (length(external_id) BETWEEN 1 AND 200),
    status            text NOT NULL DEFAULT 'RUNNING' CHECK (status IN ('RUNNING','STOPPED','RELEASED')),
    stopped_by_freeze boolean NOT NULL DEFAULT false,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    released_at       timestamptz
);
CREATE UNIQUE INDEX resources_external_idx ON resources (customer_id, external_id);

-- What a FROZEN_WITH_RESOURCES freeze has scheduled: reminders and the
-- release, keyed by the account's release_at so a job of an earlier freeze
-- is recognised as stale. Picked with FOR UPDATE SKIP LOCKED when due.
CREATE TABLE freeze_jobs (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts(id),
    kind       text NOT NULL CHECK (kind IN ('REMIND_3D','REMIND_1D','RELEASE')),
    release_at timestamptz NOT NULL,
    due_at     timestamptz NOT NULL,
    done_at    timestamptz,
    outcome    text CHECK (outcome IN ('DONE','CANCELLED','STALE')),
    UNIQUE (account_id, release_at, kind)
);
CREATE INDEX freeze_jobs_due_idx ON freeze_jobs (due_at) WHERE done_at IS NULL;

-- +goose Down
DROP TABLE freeze_jobs;
DROP TABLE resources;
ALTER TABLE accounts DROP CONSTRAINT accounts_release_consistent;
ALTER TABLE accounts DROP COLUMN data_deleted_at;
ALTER TABLE accounts DROP COLUMN release_at;
DROP TRIGGER accounts_guard_row ON accounts;
DROP FUNCTION accounts_guard_row();
DROP TABLE purchase_guards;
DROP TABLE budget_alerts;
DROP TABLE budgets;
