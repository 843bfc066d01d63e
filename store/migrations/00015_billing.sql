-- +goose Up
-- Billing (DOMAIN.md §5): partner bills, rating rules, customer bills,
-- incentives and payouts. Months are the integer YYYYMM of a Beijing-time
-- month, as in the spend tables. Amounts of records stay exact (6 decimals);
-- customer bills round half-even to 2 decimals at the line.

-- One partner bill per partner and month: the settlement basis between the
-- partner and settles_with (the platform for a tier-1 partner, the
-- distributor for a second-level reseller). DRAFT until issued; an ISSUED
-- bill and its lines never change: the triggers below refuse to update or
-- delete them, and only the bill run inserts lines, into the drafts it has
-- locked.
CREATE TABLE partner_bills (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id     bigint NOT NULL REFERENCES accounts(id),
    settles_with_id bigint NOT NULL REFERENCES accounts(id),
    month          int NOT NULL,
    status         text NOT NULL DEFAULT 'DRAFT' CHECK (status IN ('DRAFT','ISSUED')),
    -- Totals over every line, adjustments included.
    list_total     numeric(20,6) NOT NULL DEFAULT 0,
    actual_total   numeric(20,6) NOT NULL DEFAULT 0,
    -- The adjustment lines' part of the totals.
    adjustment_list   numeric(20,6) NOT NULL DEFAULT 0,
    adjustment_actual numeric(20,6) NOT NULL DEFAULT 0,
    records        bigint NOT NULL DEFAULT 0,
    generated_at   timestamptz NOT NULL,
    issued_at      timestamptz,
    issued_by      text,
    UNIQUE (partner_id, month)
);
CREATE INDEX partner_bills_month_idx ON partner_bills (month, status);
CREATE INDEX partner_bills_settles_idx ON partner_bills (settles_with_id, month);

-- A bill's lines: the records of (owner, customer, product) for for_month.
-- for_month is the bill's month for its own usage, an earlier month for an
-- adjustment (records of an issued month that arrived after its bill).
-- owner_id is the partner that owned the customer at usage time: the bill's
-- partner, or for a distributor also its second-level resellers. Only the
-- bill run writes lines, for bills it has just created or locked, so there
-- is no foreign key: its check, once per line, was a sixth of the run.
CREATE TABLE partner_bill_lines (
    bill_id      bigint NOT NULL,
    for_month    int NOT NULL,
    owner_id     bigint NOT NULL,
    customer_id  bigint NOT NULL,
    product_code text NOT NULL,
    list         numeric(20,6) NOT NULL,
    actual       numeric(20,6) NOT NULL,
    records      bigint NOT NULL,
    PRIMARY KEY (bill_id, for_month, owner_id, customer_id, product_code)
);

-- Bill runs: one row per month, so the scheduler knows a month's run
-- completed (and stops retrying) and operators see when it ran.
CREATE TABLE bill_runs (
    month        int PRIMARY KEY,
    generated_at timestamptz NOT NULL,
    bills        int NOT NULL,
    issued_at    timestamptz
);

-- +goose StatementBegin
CREATE FUNCTION partner_bills_immutable() RETURNS trigger AS $$
BEGIN
    IF OLD.status = 'ISSUED' THEN
        RAISE EXCEPTION 'partner bill % is issued and cannot change', OLD.id USING ERRCODE = 'check_violation';
    END IF;
    RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER partner_bills_immutable BEFORE UPDATE OR DELETE ON partner_bills
    FOR EACH ROW EXECUTE FUNCTION partner_bills_immutable();

-- Statement-level (one join over the changed rows, not a lookup per row):
-- a draft's regeneration deletes many lines at once.
-- +goose StatementBegin
CREATE FUNCTION partner_bill_lines_immutable() RETURNS trigger AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM old_lines o JOIN partner_bills b ON b.id = o.bill_id WHERE b.status = 'ISSUED') THEN
        RAISE EXCEPTION 'an issued partner bill''s lines cannot change' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER partner_bill_lines_immutable_delete AFTER DELETE ON partner_bill_lines
    REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION partner_bill_lines_immutable();
CREATE TRIGGER partner_bill_lines_immutable_update AFTER UPDATE ON partner_bill_lines
    REFERENCING OLD TABLE AS old_lines FOR EACH STATEMENT EXECUTE FUNCTION partner_bill_lines_immutable();

-- The adjustments a bill carries, summed per month they belong to: with the
-- bills' own records, what has been billed of each month.
CREATE TABLE partner_bill_adjustments (
    bill_id   bigint NOT NULL REFERENCES partner_bills(id) ON DELETE CASCADE,
    for_month int NOT NULL,
    list      numeric(20,6) NOT NULL,
    actual    numeric(20,6) NOT NULL,
    records   bigint NOT NULL,
    PRIMARY KEY (bill_id, for_month)
);

-- round_half_even rounds v to s decimals, ties to the even neighbour
-- (banker's rounding), as customer bill lines are rounded; PostgreSQL's
-- round(numeric) rounds ties away from zero.
-- +goose StatementBegin
CREATE FUNCTION round_half_even(v numeric, s int) RETURNS numeric AS $$
DECLARE
    x numeric := v * power(10::numeric, s);
    t numeric := trunc(x);
BEGIN
    IF abs(x - t) = 0.5 THEN
        IF mod(t, 2) <> 0 THEN
            t := t + sign(x);
        END IF;
        RETURN t / power(10::numeric, s);
    END IF;
    RETURN round(x) / power(10::numeric, s);
END $$ LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE;
-- +goose StatementEnd

-- A partner's rating rules: a percentage on list price (negative: discount,
-- positive: markup) for one product code, or its default (product_code ''),
-- in force from effective_month until a later rule for the same product.
CREATE TABLE rating_rules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id      bigint NOT NULL REFERENCES accounts(id),
    product_code    text NOT NULL DEFAULT '',
    percent         numeric(9,4) NOT NULL CHECK (percent >= -100 AND percent <= 1000),
    effective_month int NOT NULL,
    created_at      timestamptz NOT NULL,
    created_by      text NOT NULL,
    UNIQUE (partner_id, product_code, effective_month)
);

-- A customer's bill from one partner for one month: the partner bill's lines
-- of that customer (owned by the partner), rated. DRAFT while the partner
-- bill is; generated from an ISSUED partner bill it is ISSUED and final.
CREATE TABLE customer_bills (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id      bigint NOT NULL REFERENCES accounts(id),
    customer_id     bigint NOT NULL REFERENCES accounts(id),
    month           int NOT NULL,
    partner_bill_id bigint NOT NULL REFERENCES partner_bills(id),
    status          text NOT NULL CHECK (status IN ('DRAFT','ISSUED')),
    list_total      numeric(20,6) NOT NULL,
    total           numeric(20,2) NOT NULL,
    generated_at    timestamptz NOT NULL,
    UNIQUE (partner_id, customer_id, month)
);
CREATE INDEX customer_bills_customer_idx ON customer_bills (customer_id, month);
CREATE INDEX customer_bills_month_idx ON customer_bills (partner_id, month, id);

CREATE TABLE customer_bill_lines (
    bill_id      bigint NOT NULL REFERENCES customer_bills(id) ON DELETE CASCADE,
    for_month    int NOT NULL,
    product_code text NOT NULL,
    list         numeric(20,6) NOT NULL,
    rule_id      bigint REFERENCES rating_rules(id),
    percent      numeric(9,4) NOT NULL,
    amount       numeric(20,2) NOT NULL,
    PRIMARY KEY (bill_id, for_month, product_code)
);

-- Platform incentive policies: revenue tiers (ascending thresholds, each
-- with a rebate percentage), in force from effective_month until a later
-- policy.
CREATE TABLE incentive_policies (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL,
    effective_month int NOT NULL UNIQUE,
    tiers           jsonb NOT NULL,
    created_at      timestamptz NOT NULL,
    created_by      text NOT NULL
);

-- A tier-1 partner's incentive earning of a month, computed with its partner
-- bill: PENDING while the bill is a draft, EARNED once it is issued, then
-- APPLIED (payout requested), APPROVED or REJECTED (and APPLIED again).
CREATE TABLE incentives (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id   bigint NOT NULL REFERENCES accounts(id),
    month        int NOT NULL,
    bill_id      bigint NOT NULL REFERENCES partner_bills(id),
    policy_id    bigint NOT NULL REFERENCES incentive_policies(id),
    revenue      numeric(20,6) NOT NULL,
    percent      numeric(9,4) NOT NULL,
    amount       numeric(20,2) NOT NULL,
    status       text NOT NULL CHECK (status IN ('PENDING','EARNED','APPLIED','APPROVED','REJECTED')),
    reason       text,
    updated_at   timestamptz NOT NULL,
    UNIQUE (partner_id, month)
);
CREATE INDEX incentives_status_idx ON incentives (status, id);

CREATE TABLE incentive_events (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    incentive_id bigint NOT NULL REFERENCES incentives(id),
    at           timestamptz NOT NULL,
    actor        text NOT NULL,
    action       text NOT NULL,
    status       text NOT NULL,
    note         text
);
CREATE INDEX incentive_events_incentive_idx ON incentive_events (incentive_id, id);

-- +goose Down
DROP TABLE incentive_events;
DROP TABLE incentives;
DROP TABLE incentive_policies;
DROP TABLE customer_bill_lines;
DROP TABLE customer_bills;
DROP TABLE rating_rules;
DROP FUNCTION round_half_even(numeric, int);
DROP TABLE partner_bill_adjustments;
DROP TRIGGER partner_bill_lines_immutable_update ON partner_bill_lines;
DROP TRIGGER partner_bill_lines_immutable_delete ON partner_bill_lines;
DROP FUNCTION partner_bill_lines_immutable();
DROP TRIGGER partner_bills_immutable ON partner_bills;
DROP FUNCTION partner_bills_immutable();
DROP TABLE bill_runs;
DROP TABLE partner_bill_lines;
DROP TABLE partner_bills;
