-- +goose Up
-- Vouchers (issue 13): quota pools down the tree, templates, vouchers issued
-- to customers, their redemption against expenditure records, reclaim and
-- expiry. Amounts are exact (6 decimals), like credit.

-- One pool per partner. A tier-1 partner's quota is what the platform
-- granted it; a second-level reseller's is what its distributor allocated
-- to it. allocated is what the partner passed down to its resellers, issued
-- the face value of its vouchers still charged to it (cancelled and expired
-- vouchers give their unused amount back). The CHECK holds Σ allocated +
-- issued ≤ quota under any concurrency; writers lock the row.
CREATE TABLE voucher_pools (
    partner_id   bigint PRIMARY KEY REFERENCES accounts(id),
    quota        numeric(20,6) NOT NULL DEFAULT 0,
    allocated    numeric(20,6) NOT NULL DEFAULT 0,
    issued       numeric(20,6) NOT NULL DEFAULT 0,
    -- Tier-1 pools only: when the granted quota expires (a reseller's pool
    -- follows its distributor's).
    expires_at   timestamptz,
    -- When the expiry was carried out (and the partner told).
    expired_at   timestamptz,
    -- A second-level reseller's issue of more than this face value waits
    -- for its distributor's approval (NULL: never).
    approval_threshold numeric(20,6),
    -- Whether the partner was told its remaining quota fell below 10%;
    -- cleared when it is back above.
    low_alerted  boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL,
    CHECK (quota >= 0 AND allocated >= 0 AND issued >= 0),
    CONSTRAINT voucher_pools_within_quota CHECK (allocated + issued <= quota),
    CHECK (approval_threshold IS NULL OR approval_threshold >= 0)
);
CREATE INDEX voucher_pools_expiry_idx ON voucher_pools (expires_at) WHERE expired_at IS NULL AND expires_at IS NOT NULL;

-- Every change of a pool, append-only, with the balances it left.
CREATE TABLE voucher_pool_ledger (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at              timestamptz NOT NULL,
    actor           text NOT NULL,
    partner_id      bigint NOT NULL REFERENCES accounts(id),
    kind            text NOT NULL CHECK (kind IN ('GRANT','ALLOCATE','RECLAIM','ALLOCATED','RECLAIMED','ISSUE','RETURN')),
    -- The other pool of an ALLOCATE/RECLAIM (the reseller) or of an
    -- ALLOCATED/RECLAIMED (the distributor).
    counterparty_id bigint REFERENCES accounts(id),
    voucher_id      bigint,
    issuance_id     bigint,
    amount          numeric(20,6) NOT NULL,
    reason          text NOT NULL DEFAULT '',
    quota_after     numeric(20,6) NOT NULL,
    allocated_after numeric(20,6) NOT NULL,
    issued_after    numeric(20,6) NOT NULL,
    request_id      text NOT NULL DEFAULT ''
);
CREATE INDEX voucher_pool_ledger_partner_idx ON voucher_pool_ledger (partner_id, id);

-- +goose StatementBegin
CREATE FUNCTION voucher_pool_ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'voucher_pool_ledger is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
-- +goose StatementEnd
CREATE TRIGGER voucher_pool_ledger_append_only BEFORE UPDATE OR DELETE ON voucher_pool_ledger
    FOR EACH ROW EXECUTE FUNCTION voucher_pool_ledger_append_only();

-- Voucher templates: what a partner hands out. A template with vouchers (or
-- a pending issuance) is in use: it is never changed, only retired.
CREATE TABLE voucher_templates (
    id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id         bigint NOT NULL REFERENCES accounts(id),
    name               text NOT NULL,
    face_value         numeric(20,6) NOT NULL CHECK (face_value > 0),
    product_scope      text NOT NULL CHECK (product_scope IN ('ALL','ONLY','EXCEPT')),
    product_codes      text[] NOT NULL DEFAULT '{}',
    billing_modes      text NOT NULL CHECK (billing_modes IN ('ALL','PREPAID','PAY_PER_USE')),
    valid_from         timestamptz,
    valid_until        timestamptz,
    valid_days         int CHECK (valid_days > 0),
    per_customer_limit int NOT NULL CHECK (per_customer_limit > 0),
    reason             text NOT NULL,
    status             text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','RETIRED')),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    retired_at         timestamptz,
    CHECK ((valid_until IS NOT NULL) <> (valid_days IS NOT NULL)),
    CHECK (valid_until IS NULL OR valid_from IS NULL OR valid_from < valid_until)
);
CREATE INDEX voucher_templates_partner_idx ON voucher_templates (partner_id, id);

-- One call of issueVouchers: its customers, and once carried out the
-- per-customer results. A second-level reseller's issue above its
-- threshold waits as PENDING_APPROVAL for its distributor.
CREATE TABLE voucher_issuances (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id   bigint NOT NULL REFERENCES voucher_templates(id),
    partner_id    bigint NOT NULL REFERENCES accounts(id),
    customer_ids  bigint[] NOT NULL,
    face_total    numeric(20,6) NOT NULL,
    status        text NOT NULL CHECK (status IN ('PENDING_APPROVAL','COMPLETED','REJECTED')),
    requested_by  text NOT NULL,
    requested_at  timestamptz NOT NULL,
    decided_by    text,
    decided_at    timestamptz,
    reason        text,
    results       jsonb
);
CREATE INDEX voucher_issuances_partner_idx ON voucher_issuances (partner_id, id);
CREATE INDEX voucher_issuances_pending_idx ON voucher_issuances (template_id) WHERE status = 'PENDING_APPROVAL';

-- Vouchers. The terms are copied from the template at issue, so a voucher
-- never changes meaning. remaining falls with each redemption.
CREATE TABLE vouchers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    template_id   bigint NOT NULL REFERENCES voucher_templates(id),
    issuance_id   bigint NOT NULL REFERENCES voucher_issuances(id),
    issuer_id     bigint NOT NULL REFERENCES accounts(id),
    customer_id   bigint NOT NULL REFERENCES accounts(id),
    face_value    numeric(20,6) NOT NULL CHECK (face_value > 0),
    remaining     numeric(20,6) NOT NULL CHECK (remaining >= 0 AND remaining <= face_value),
    status        text NOT NULL CHECK (status IN ('ISSUED','PARTIALLY_USED','USED','EXPIRED','CANCELLED')),
    product_scope text NOT NULL,
    product_codes text[] NOT NULL,
    billing_modes text NOT NULL,
    effective_at  timestamptz NOT NULL,
    expires_at    timestamptz NOT NULL,
    issued_at     timestamptz NOT NULL,
    closed_at     timestamptz,
    -- Why it was cancelled (by whom, or the customer's migration).
    close_reason  text,
    -- What cancellation or expiry gave back to the issuer's pool.
    returned      numeric(20,6) NOT NULL DEFAULT 0,
    reminded_at   timestamptz,
    CHECK (effective_at < expires_at)
);
CREATE INDEX vouchers_live_customer_idx ON vouchers (customer_id, expires_at, id) WHERE status IN ('ISSUED','PARTIALLY_USED');
CREATE INDEX vouchers_live_expiry_idx ON vouchers (expires_at) WHERE status IN ('ISSUED','PARTIALLY_USED');
CREATE INDEX vouchers_customer_idx ON vouchers (customer_id, id);
CREATE INDEX vouchers_issuer_idx ON vouchers (issuer_id, id);
CREATE INDEX vouchers_template_customer_idx ON vouchers (template_id, customer_id);

-- What a voucher paid of an expenditure record: one row per voucher and
-- record, written in the transaction that stored the record, so a replayed
-- record (a duplicate, never stored again) redeems nothing twice. Only
-- vouchers.Redeem writes rows, for the records it just stored and the
-- vouchers it holds locked, so there are no foreign keys: their checks
-- (a share lock on each record) more than doubled the cost of a
-- redemption.
CREATE TABLE voucher_redemptions (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    voucher_id     bigint NOT NULL,
    expenditure_id bigint NOT NULL,
    customer_id    bigint NOT NULL,
    owner_id       bigint NOT NULL,
    issuer_id      bigint NOT NULL,
    month          int NOT NULL,
    product_code   text NOT NULL,
    usage_at       timestamptz NOT NULL,
    amount         numeric(20,6) NOT NULL CHECK (amount > 0),
    redeemed_at    timestamptz NOT NULL,
    UNIQUE (expenditure_id, voucher_id)
);
CREATE INDEX voucher_redemptions_voucher_idx ON voucher_redemptions (voucher_id, id);
CREATE INDEX voucher_redemptions_customer_idx ON voucher_redemptions (customer_id, month, id);

-- What vouchers paid, in the running totals: a customer's consumption for
-- credit and arrears is actual_total − voucher_total (budgets stay at list
-- price, DOMAIN.md §4).
ALTER TABLE spend_totals ADD COLUMN voucher_total numeric(20,6) NOT NULL DEFAULT 0;
ALTER TABLE owner_spend_totals ADD COLUMN voucher_total numeric(20,6) NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE owner_spend_totals DROP COLUMN voucher_total;
ALTER TABLE spend_totals DROP COLUMN voucher_total;
DROP TABLE voucher_redemptions;
DROP TABLE vouchers;
DROP TABLE voucher_issuances;
DROP TABLE voucher_templates;
DROP TRIGGER voucher_pool_ledger_append_only ON voucher_pool_ledger;
DROP FUNCTION voucher_pool_ledger_append_only();
DROP TABLE voucher_pool_ledger;
DROP TABLE voucher_pools;
