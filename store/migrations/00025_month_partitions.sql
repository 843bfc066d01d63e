-- +goose Up
-- Monthly partitions (issue 12, point 3). The four tables that grow with
-- the business (expenditure records, audit entries, outbox rows and
-- notification deliveries with their attempts) become range-partitioned by
-- month, so that a query for a month reads only that month, and old outbox
-- and delivery months are dropped whole instead of deleted row by row.
--
--   expenditures       by month (the billing month YYYYMM of usage_at)
--   audit_log          by at (UTC months)
--   outbox             by created_at (UTC months)
--   deliveries         by event_at: the created_at of the outbox event the
--   delivery_attempts  delivery is for, so every delivery of an event, and
--                      every attempt of a delivery, is in the event's month
--
-- A partition is named <table>_pYYYYMM; rows of a month that has none go to
-- <table>_default, from which month_partition moves them once it is created.
-- The scheduler's partitions task creates the months ahead and drops outbox
-- and delivery months past their retention (package partitions).
--
-- Each partition's primary key is (id); the parents have none (see
-- month_partition). Unique keys of a parent must hold the partition key:
--   expenditures (external_id, month): a replayed record has the same usage
--     time, so the same month, and is still caught; ingestion still looks
--     stored IDs up in every month, so an ID seen with another month is
--     still reported, except in a race between two requests that both store
--     it at once in different months.
--   deliveries (key, event_at): the key names the event, and so its month.
--   delivery_attempts (delivery_id, n, event_at): the same.
--
-- This migration rewrites the four tables in one transaction: on a large
-- installation, plan the window (DEPLOYMENT.md, section 8).

-- month_partition creates the partition of parent for the month of m (if
-- it does not exist) and returns its name. Rows of that month waiting in
-- the default partition are moved into it first. The new table is attached
-- rather than created as a partition, so the parent is held only in SHARE
-- UPDATE EXCLUSIVE mode: reads and writes of other months go on.
-- +goose StatementBegin
CREATE FUNCTION month_partition(parent text, m date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', m)::date;
    part text := parent || '_p' || to_char(date_trunc('month', m), 'YYYYMM');
    dflt text := parent || '_default';
    col name;
    typ regtype;
    lo text;
    hi text;
    waiting boolean;
BEGIN
    IF to_regclass(quote_ident(part)) IS NOT NULL THEN
        RETURN part;
    END IF;
    SELECT a.attname, a.atttypid::regtype INTO col, typ
    FROM pg_partitioned_table p
    JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
    WHERE p.partrelid = parent::regclass;
    IF col IS NULL THEN
        RAISE EXCEPTION 'month_partition: % is not a partitioned table', parent;
    END IF;
    IF typ = 'integer'::regtype THEN
        lo := to_char(first, 'YYYYMM');
        hi := to_char(first + interval '1 month', 'YYYYMM');
    ELSE
        lo := quote_literal(to_char(first, 'YYYY-MM-DD') || ' 00:00:00+00');
        hi := quote_literal(to_char(first + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)', part, parent);
    -- Every partition's primary key is its id (unique across partitions by
    -- the parent's identity sequence). The parent has none: it would have
    -- to include the partition key, and the planner would no longer know
    -- that an id matches one row, which matters most in a new month's
    -- partition, before it has statistics.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)', part, part || '_pkey');
    -- The bounds as a constraint let ATTACH skip its scan of the new table.
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (%I >= %s AND %I < %s)',
        part, part || '_bounds', col, lo, col, hi);
    IF to_regclass(quote_ident(dflt)) IS NOT NULL THEN
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= %s AND %I < %s)', dflt, col, lo, col, hi) INTO waiting;
        IF waiting THEN
            -- Moving is not a change of the rows: the audit log's
            -- append-only trigger is off for it, in this transaction only.
            EXECUTE format('ALTER TABLE %I DISABLE TRIGGER USER', dflt);
            EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= %s AND %I < %s RETURNING *) INSERT INTO %I SELECT * FROM moved',
                dflt, col, lo, col, hi, part);
            EXECUTE format('ALTER TABLE %I ENABLE TRIGGER USER', dflt);
        END IF;
    END IF;
    EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)', parent, part, lo, hi);
    EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', part, part || '_bounds');
    RETURN part;
END $$;
-- +goose StatementEnd

-- partition_retire renames a table about to be replaced, with its indexes
-- and constraints, so that the partitioned table can take their names.
-- +goose StatementBegin
CREATE FUNCTION pg_temp.partition_retire(tbl text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    ix text;
    con text;
BEGIN
    FOR con IN SELECT conname FROM pg_constraint WHERE conrelid = tbl::regclass AND contype IN ('c', 'f')
    LOOP
        EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', tbl, con, left(con, 50) || '_unpartitioned');
    END LOOP;
    FOR ix IN SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = tbl::regclass
    LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', ix, left(ix, 50) || '_unpartitioned');
    END LOOP;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, tbl || '_unpartitioned');
END $$;
-- +goose StatementEnd

-- partition_months creates the partitions of parent for every month in
-- months, and for the month before the current one through three ahead.
-- +goose StatementBegin
CREATE FUNCTION pg_temp.partition_months(parent text, months date[]) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    m date;
BEGIN
    FOR m IN SELECT DISTINCT x FROM unnest(months || ARRAY(
        SELECT generate_series(date_trunc('month', now() - interval '1 month'),
                               date_trunc('month', now() + interval '3 months'), interval '1 month')::date)) AS x
    LOOP
        PERFORM month_partition(parent, m);
    END LOOP;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', parent || '_default', parent);
    EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I PRIMARY KEY (id)', parent || '_default', parent || '_default_pkey');
END $$;
-- +goose StatementEnd

-- Expenditure records.
SELECT pg_temp.partition_retire('expenditures');
CREATE TABLE expenditures (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    external_id   text NOT NULL,
    customer_id   bigint NOT NULL,
    owner_id      bigint NOT NULL,
    product_code  text NOT NULL,
    region        text NOT NULL DEFAULT '',
    billing_mode  text NOT NULL CHECK (billing_mode IN ('PAY_PER_USE','SUBSCRIPTION','RESERVED_INSTANCE')),
    usage_at      timestamptz NOT NULL,
    month         int NOT NULL,
    list_amount   numeric(20,6) NOT NULL CHECK (list_amount >= 0),
    actual_amount numeric(20,6) NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    adjustment    boolean NOT NULL DEFAULT false,
    tags          jsonb,
    CONSTRAINT expenditures_check CHECK (actual_amount >= 0 AND actual_amount <= list_amount),
    CONSTRAINT expenditures_external_key UNIQUE (external_id, month)
) PARTITION BY RANGE (month);
CREATE INDEX expenditures_customer_idx ON expenditures (customer_id, month, usage_at);
CREATE INDEX expenditures_owner_hour_idx ON expenditures (owner_id, month, date_trunc('hour', usage_at AT TIME ZONE 'UTC'));
SELECT pg_temp.partition_months('expenditures', ARRAY(
    SELECT DISTINCT to_date(month::text, 'YYYYMM') FROM expenditures_unpartitioned));
INSERT INTO expenditures (id, external_id, customer_id, owner_id, product_code, region, billing_mode, usage_at, month,
        list_amount, actual_amount, received_at, adjustment, tags)
    OVERRIDING SYSTEM VALUE
    SELECT id, external_id, customer_id, owner_id, product_code, region, billing_mode, usage_at, month,
        list_amount, actual_amount, received_at, adjustment, tags
    FROM expenditures_unpartitioned;
SELECT setval(pg_get_serial_sequence('expenditures', 'id'), coalesce((SELECT max(id) FROM expenditures), 0) + 1, false);
DROP TABLE expenditures_unpartitioned;

-- Audit entries: append-only, never dropped.
SELECT pg_temp.partition_retire('audit_log');
CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_user_id bigint,
    actor         text NOT NULL,
    account_id    bigint REFERENCES accounts(id),
    action        text NOT NULL,
    before        jsonb,
    after         jsonb,
    request_id    text NOT NULL DEFAULT ''
) PARTITION BY RANGE (at);
CREATE INDEX audit_log_account_idx ON audit_log (account_id, id);
SELECT pg_temp.partition_months('audit_log', ARRAY(
    SELECT DISTINCT date_trunc('month', at AT TIME ZONE 'UTC')::date FROM audit_log_unpartitioned));
INSERT INTO audit_log (id, at, actor_user_id, actor, account_id, action, before, after, request_id)
    OVERRIDING SYSTEM VALUE
    SELECT id, at, actor_user_id, actor, account_id, action, before, after, request_id FROM audit_log_unpartitioned;
SELECT setval(pg_get_serial_sequence('audit_log', 'id'), coalesce((SELECT max(id) FROM audit_log), 0) + 1, false);
DROP TABLE audit_log_unpartitioned;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Outbox rows.
SELECT pg_temp.partition_retire('outbox');
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    event_type    text NOT NULL,
    queue         text NOT NULL DEFAULT 'default',
    account_id    bigint,
    payload       jsonb NOT NULL,
    topics        text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz,
    settled_at    timestamptz
) PARTITION BY RANGE (created_at);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_unsettled_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL AND settled_at IS NULL;
SELECT pg_temp.partition_months('outbox', ARRAY(
    SELECT DISTINCT date_trunc('month', created_at AT TIME ZONE 'UTC')::date FROM outbox_unpartitioned));
INSERT INTO outbox (id, event_type, queue, account_id, payload, topics, request_id, created_at, dispatched_at, settled_at)
    OVERRIDING SYSTEM VALUE
    SELECT id, event_type, queue, account_id, payload, topics, request_id, created_at, dispatched_at, settled_at
    FROM outbox_unpartitioned;
SELECT setval(pg_get_serial_sequence('outbox', 'id'), coalesce((SELECT max(id) FROM outbox), 0) + 1, false);

-- Deliveries and their attempts, in the month of their event. The inbox
-- keeps its messages when their deliveries' month is dropped, so its
-- foreign key to deliveries goes; it stays unique per delivery.
ALTER TABLE inbox_messages DROP CONSTRAINT inbox_messages_delivery_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
SELECT pg_temp.partition_retire('deliveries');
SELECT pg_temp.partition_retire('delivery_attempts');
CREATE TABLE deliveries (
    id            bigint GENERATED ALWAYS AS IDENTITY,
    key           text NOT NULL,
    outbox_id     bigint NOT NULL,
    event_type    text NOT NULL,
    channel       text NOT NULL CONSTRAINT deliveries_channel_check CHECK (channel IN ('IN_SITE','EMAIL','SMS','WEBHOOK')),
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
    endpoint_id   bigint REFERENCES webhook_endpoints(id),
    retry_until   timestamptz,
    event_at      timestamptz NOT NULL,
    CONSTRAINT deliveries_sent_consistent CHECK ((status = 'SENT') = (sent_at IS NOT NULL)),
    CONSTRAINT deliveries_webhook_endpoint CHECK ((channel = 'WEBHOOK') = (endpoint_id IS NOT NULL)),
    CONSTRAINT deliveries_key_key UNIQUE (key, event_at)
) PARTITION BY RANGE (event_at);
CREATE INDEX deliveries_account_idx ON deliveries (account_id, id DESC);
CREATE INDEX deliveries_outbox_idx ON deliveries (outbox_id);
CREATE INDEX deliveries_open_idx ON deliveries (updated_at) WHERE status IN ('PENDING','SENDING');
CREATE INDEX deliveries_first_email_idx ON deliveries (id) WHERE status = 'PENDING' AND channel = 'EMAIL' AND attempts = 0;
CREATE INDEX deliveries_first_webhook_idx ON deliveries (id) WHERE status = 'PENDING' AND channel = 'WEBHOOK' AND attempts = 0;
CREATE INDEX deliveries_endpoint_idx ON deliveries (endpoint_id, id DESC) WHERE endpoint_id IS NOT NULL;
CREATE TABLE delivery_attempts (
    id          bigint GENERATED ALWAYS AS IDENTITY,
    delivery_id bigint NOT NULL,
    n           int NOT NULL,
    channel     text NOT NULL,
    started_at  timestamptz NOT NULL,
    finished_at timestamptz,
    outcome     text CHECK (outcome IN ('SENT','RETRY','FAILED','UNKNOWN')),
    response    text NOT NULL DEFAULT '',
    event_at    timestamptz NOT NULL,
    CONSTRAINT delivery_attempts_delivery_id_n_key UNIQUE (delivery_id, n, event_at)
) PARTITION BY RANGE (event_at);
CREATE TEMP TABLE delivery_months ON COMMIT DROP AS
    SELECT d.id, coalesce(o.created_at, d.created_at) AS event_at
    FROM deliveries_unpartitioned d LEFT JOIN outbox o ON o.id = d.outbox_id;
SELECT pg_temp.partition_months('deliveries', ARRAY(
    SELECT DISTINCT date_trunc('month', event_at AT TIME ZONE 'UTC')::date FROM delivery_months));
SELECT pg_temp.partition_months('delivery_attempts', ARRAY(
    SELECT DISTINCT date_trunc('month', event_at AT TIME ZONE 'UTC')::date FROM delivery_months));
INSERT INTO deliveries (id, key, outbox_id, event_type, channel, account_id, user_id, address, locale, subject,
        body_text, body_html, status, generation, attempts, claimed_until, last_error, provider_id, created_at,
        updated_at, sent_at, endpoint_id, retry_until, event_at)
    OVERRIDING SYSTEM VALUE
    SELECT d.id, key, outbox_id, event_type, channel, account_id, user_id, address, locale, subject,
        body_text, body_html, status, generation, attempts, claimed_until, last_error, provider_id, created_at,
        updated_at, sent_at, endpoint_id, retry_until, m.event_at
    FROM deliveries_unpartitioned d JOIN delivery_months m ON m.id = d.id;
INSERT INTO delivery_attempts (id, delivery_id, n, channel, started_at, finished_at, outcome, response, event_at)
    OVERRIDING SYSTEM VALUE
    SELECT a.id, delivery_id, n, channel, started_at, finished_at, outcome, response, m.event_at
    FROM delivery_attempts_unpartitioned a JOIN delivery_months m ON m.id = a.delivery_id;
SELECT setval(pg_get_serial_sequence('deliveries', 'id'), coalesce((SELECT max(id) FROM deliveries), 0) + 1, false);
SELECT setval(pg_get_serial_sequence('delivery_attempts', 'id'), coalesce((SELECT max(id) FROM delivery_attempts), 0) + 1, false);
DROP TABLE delivery_attempts_unpartitioned;
DROP TABLE deliveries_unpartitioned;
DROP TABLE outbox_unpartitioned;

-- +goose Down
-- Partitioned tables stay partitioned: undoing this would rewrite them
-- again for no gain, and the code before it reads them as they are, except
-- for the unique keys it names (ON CONFLICT (key), (external_id)).
SELECT 'down migration of 00025 is not supported'::int;
