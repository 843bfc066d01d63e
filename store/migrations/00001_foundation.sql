-- +goose Up
-- The reseller tree (DOMAIN.md §1). path is the materialized path of ids from
-- the root, "/1/7/42/": a subtree is one prefix lookup on path_prefix_idx.
CREATE TABLE accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('PLATFORM','DISTRIBUTOR','RESELLER','CUSTOMER','PERSONAL')),
    parent_id     bigint REFERENCES accounts(id),
    path          text NOT NULL,
    depth         int  NOT NULL CHECK (depth >= 0),
    name          text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    email         text CHECK (email IS NULL OR length(email) <= 254),
    phone         text CHECK (phone IS NULL OR phone ~ '^\+[1-9][0-9]{6,14}$'),
    currency      char(3) NOT NULL DEFAULT 'CNY' CHECK (currency ~ '^[A-Z]{3}$'),
    status        text NOT NULL DEFAULT 'ACTIVE' CHECK (status IN ('ACTIVE','FROZEN','FROZEN_WITH_RESOURCES')),
    frozen_at     timestamptz,
    frozen_reason text CHECK (frozen_reason IN ('MANUAL','OVERSPEND','ARREARS','NEW_CUSTOMER')),
    tags          jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT accounts_root_has_no_parent CHECK ((kind = 'PLATFORM') = (parent_id IS NULL)),
    CONSTRAINT accounts_frozen_consistent CHECK ((status = 'ACTIVE') = (frozen_at IS NULL))
);
CREATE UNIQUE INDEX accounts_one_platform ON accounts ((true)) WHERE kind = 'PLATFORM';
CREATE UNIQUE INDEX accounts_path_idx ON accounts (path text_pattern_ops);
CREATE INDEX accounts_children_idx ON accounts (parent_id, id);
CREATE INDEX accounts_kind_idx ON accounts (parent_id, kind, id);

-- The parent rules of DOMAIN.md §1 hold in the database too, whoever writes.
-- +goose StatementBegin
-- On insert it also derives path and depth from the parent, so they are never
-- written by hand.
CREATE FUNCTION accounts_check_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pkind  text;
    ppath  text;
    pdepth int;
BEGIN
    IF NEW.parent_id IS NULL THEN
        IF TG_OP = 'INSERT' THEN
            NEW.path := '/' || NEW.id || '/';
            NEW.depth := 0;
        END IF;
        RETURN NEW;
    END IF;
    SELECT kind, path, depth INTO pkind, ppath, pdepth FROM accounts WHERE id = NEW.parent_id;
    IF TG_OP = 'INSERT' THEN
        NEW.path := ppath || NEW.id || '/';
        NEW.depth := pdepth + 1;
    END IF;
    IF NOT (
        (NEW.kind = 'DISTRIBUTOR' AND pkind = 'PLATFORM') OR
        (NEW.kind = 'RESELLER'    AND pkind IN ('PLATFORM','DISTRIBUTOR')) OR
        (NEW.kind = 'CUSTOMER'    AND pkind IN ('DISTRIBUTOR','RESELLER')) OR
        (NEW.kind = 'PERSONAL'    AND pkind = 'PLATFORM')
    ) THEN
        RAISE EXCEPTION 'an account of kind % cannot be a child of %', NEW.kind, pkind
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_parent_kind';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd
CREATE TRIGGER accounts_check_parent BEFORE INSERT OR UPDATE OF parent_id, kind ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_check_parent();

-- Who owned an account when: usage is billed to the owner at usage time.
CREATE TABLE account_parent_history (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts(id),
    parent_id  bigint NOT NULL REFERENCES accounts(id),
    valid_from timestamptz NOT NULL,
    valid_to   timestamptz,
    CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX account_parent_history_account_idx ON account_parent_history (account_id, valid_from);
CREATE UNIQUE INDEX account_parent_history_open_idx ON account_parent_history (account_id) WHERE valid_to IS NULL;

-- Users and their roles (DOMAIN.md §2).
CREATE TABLE users (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts(id),
    email      text NOT NULL CHECK (length(email) <= 254),
    phone      text CHECK (phone IS NULL OR phone ~ '^\+[1-9][0-9]{6,14}$'),
    name       text NOT NULL DEFAULT '',
    roles      text[] NOT NULL CHECK (cardinality(roles) > 0 AND roles <@ ARRAY['ADMIN','FINANCE','OPERATOR','VIEWER','REVIEWER']),
    locale     text NOT NULL DEFAULT 'en-US' CHECK (locale IN ('en-US','zh-CN')),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email_idx ON users (lower(email));
CREATE INDEX users_account_idx ON users (account_id, id);

-- Opaque API tokens: only the SHA-256 of the token is kept.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      bigint NOT NULL REFERENCES users(id),
    hash         bytea NOT NULL UNIQUE CHECK (length(hash) = 32),
    name         text NOT NULL DEFAULT '',
    expires_at   timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   bigint REFERENCES users(id),
    last_used_at timestamptz
);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id);

-- Append-only audit of every state change.
CREATE TABLE audit_log (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT now(),
    actor_user_id bigint,
    actor         text NOT NULL,
    account_id    bigint REFERENCES accounts(id),
    action        text NOT NULL,
    before        jsonb,
    after         jsonb,
    request_id    text NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_account_idx ON audit_log (account_id, id);

-- +goose StatementBegin
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
-- +goose StatementEnd
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- The transactional outbox: what a committed change owes.
CREATE TABLE outbox (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type    text NOT NULL,
    queue         text NOT NULL DEFAULT 'default',
    account_id    bigint,
    payload       jsonb NOT NULL,
    topics        text NOT NULL DEFAULT '',
    request_id    text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    dispatched_at timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (id) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_dispatched_idx ON outbox (dispatched_at) WHERE dispatched_at IS NOT NULL;

-- +goose Down
DROP TABLE outbox;
DROP TABLE audit_log;
DROP FUNCTION audit_log_append_only();
DROP TABLE api_tokens;
DROP TABLE users;
DROP TABLE account_parent_history;
DROP TABLE accounts;
DROP FUNCTION accounts_check_parent();
