-- +goose Up
-- Credit (DOMAIN.md §3). Every account that can hold credit has one row:
-- credit_limit is what its parent granted (the platform's setCreditLimit for
-- a tier-1 partner, an allocation for everyone else) and allocated is the sum
-- of what it granted its children. The ledger explains every change.
CREATE TABLE credit_balances (
    account_id       bigint PRIMARY KEY REFERENCES accounts(id),
    credit_limit     numeric(20,6) NOT NULL DEFAULT 0 CHECK (credit_limit >= 0),
    allocated        numeric(20,6) NOT NULL DEFAULT 0 CHECK (allocated >= 0),
    exempt_postpaid  boolean NOT NULL DEFAULT false,
    exempt_prepaid   boolean NOT NULL DEFAULT false,
    in_arrears       boolean NOT NULL DEFAULT false,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT credit_within_limit CHECK (allocated <= credit_limit)
);

-- Every account but the platform has a credit row from its creation on.
INSERT INTO credit_balances (account_id) SELECT id FROM accounts WHERE kind <> 'PLATFORM';
-- +goose StatementBegin
CREATE FUNCTION accounts_credit_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind <> 'PLATFORM' THEN
        INSERT INTO credit_balances (account_id, updated_at) VALUES (NEW.id, NEW.created_at) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER accounts_credit_row AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_credit_row();

CREATE TABLE credit_ledger (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at                 timestamptz NOT NULL DEFAULT now(),
    actor              text NOT NULL,
    actor_user_id      bigint,
    kind               text NOT NULL CHECK (kind IN ('LIMIT','ALLOCATE','REVERSE','RELEASE')),
    from_account_id    bigint REFERENCES accounts(id),
    to_account_id      bigint NOT NULL REFERENCES accounts(id),
    amount             numeric(20,6) NOT NULL,
    reason             text NOT NULL DEFAULT '',
    from_limit_after     numeric(20,6),
    from_allocated_after numeric(20,6),
    to_limit_after       numeric(20,6) NOT NULL,
    to_allocated_after   numeric(20,6) NOT NULL,
    request_id         text NOT NULL DEFAULT ''
);
CREATE INDEX credit_ledger_to_idx ON credit_ledger (to_account_id, id);
CREATE INDEX credit_ledger_from_idx ON credit_ledger (from_account_id, id);

-- +goose StatementBegin
CREATE FUNCTION credit_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'credit_ledger is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
-- +goose StatementEnd
CREATE TRIGGER credit_ledger_append_only BEFORE UPDATE OR DELETE ON credit_ledger
    FOR EACH ROW EXECUTE FUNCTION credit_ledger_append_only();

-- Expenditure records from the billing pipeline (DOMAIN.md §4), idempotent by
-- external_id, attributed to the partner that owned the customer at usage
-- time. month is the Beijing-time month of usage_at as YYYYMM.
CREATE TABLE expenditures (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    external_id   text NOT NULL,
    customer_id   bigint NOT NULL REFERENCES accounts(id),
    owner_id      bigint NOT NULL REFERENCES accounts(id),
    product_code  text NOT NULL,
    region        text NOT NULL DEFAULT '',
    billing_mode  text NOT NULL CHECK (billing_mode IN ('PAY_PER_USE','SUBSCRIPTION','RESERVED_INSTANCE')),
    usage_at      timestamptz NOT NULL,
    month         int NOT NULL,
    list_amount   numeric(20,6) NOT NULL CHECK (list_amount >= 0),
    actual_amount numeric(20,6) NOT NULL CHECK (actual_amount >= 0 AND actual_amount <= list_amount),
    received_at   timestamptz NOT NULL DEFAULT now(),
    adjustment    boolean NOT NULL DEFAULT false
);
CREATE UNIQUE INDEX expenditures_external_idx ON expenditures (external_id);
CREATE INDEX expenditures_customer_idx ON expenditures (customer_id, month, usage_at);
CREATE INDEX expenditures_owner_idx ON expenditures (owner_id, month);

-- Running totals per customer and month, kept in the transaction that adds
-- the records they count.
CREATE TABLE spend_totals (
    customer_id   bigint NOT NULL REFERENCES accounts(id),
    month         int NOT NULL,
    list_total    numeric(20,6) NOT NULL DEFAULT 0,
    actual_total  numeric(20,6) NOT NULL DEFAULT 0,
    prepaid_list  numeric(20,6) NOT NULL DEFAULT 0,
    records       bigint NOT NULL DEFAULT 0,
    last_received_at timestamptz,
    PRIMARY KEY (customer_id, month)
);

-- Which partner bills have been issued (filled by billing); a record for an
-- issued month is stored as an adjustment for the next bill.
CREATE TABLE issued_bill_months (
    owner_id bigint NOT NULL REFERENCES accounts(id),
    month    int NOT NULL,
    issued_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (owner_id, month)
);

-- +goose Down
DROP TABLE issued_bill_months;
DROP TABLE spend_totals;
DROP TABLE expenditures;
DROP TABLE credit_ledger;
DROP FUNCTION credit_ledger_append_only();
DROP TRIGGER accounts_credit_row ON accounts;
DROP FUNCTION accounts_credit_row();
DROP TABLE credit_balances;
