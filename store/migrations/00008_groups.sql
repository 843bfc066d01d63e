-- +goose Up
-- Billing groups and savings-plan shared units of customers (DOMAIN.md §1):
-- their membership only, since their main role here is to block migrations.
-- All members of one are customers of the same partner (partner_id); a
-- customer is in at most one group and at most one unit.
CREATE TABLE customer_groups (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id       bigint NOT NULL REFERENCES accounts(id),
    name             text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    administrator_id bigint NOT NULL REFERENCES accounts(id),
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_groups_partner_idx ON customer_groups (partner_id, id);
CREATE TABLE customer_group_members (
    account_id bigint PRIMARY KEY REFERENCES accounts(id),
    group_id   bigint NOT NULL REFERENCES customer_groups(id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('ADMINISTRATOR','MEMBER')),
    added_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX customer_group_members_group_idx ON customer_group_members (group_id, account_id);
CREATE UNIQUE INDEX customer_group_one_admin ON customer_group_members (group_id) WHERE role = 'ADMINISTRATOR';

CREATE TABLE sharing_units (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id bigint NOT NULL REFERENCES accounts(id),
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 100),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sharing_units_partner_idx ON sharing_units (partner_id, id);
CREATE TABLE sharing_unit_members (
    account_id bigint PRIMARY KEY REFERENCES accounts(id),
    unit_id    bigint NOT NULL REFERENCES sharing_units(id) ON DELETE CASCADE,
    added_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sharing_unit_members_unit_idx ON sharing_unit_members (unit_id, account_id);

-- +goose Down
DROP TABLE sharing_unit_members;
DROP TABLE sharing_units;
DROP TABLE customer_group_members;
DROP TABLE customer_groups;
