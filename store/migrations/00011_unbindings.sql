-- +goose Up
-- A customer leaving its partner (DOMAIN.md §1): requested by one side,
-- confirmed or rejected by the other; a PENDING one past expires_at lapses.
CREATE TABLE unbindings (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES accounts(id),
    partner_id   bigint NOT NULL REFERENCES accounts(id),
    requested_by text NOT NULL CHECK (requested_by IN ('PARTNER','CUSTOMER')),
    requester    bigint REFERENCES users(id),
    status       text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','COMPLETED','REJECTED','LAPSED')),
    reason       text NOT NULL DEFAULT '',
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    decided_by   bigint REFERENCES users(id),
    effective_at timestamptz
);
CREATE UNIQUE INDEX unbindings_one_pending ON unbindings (customer_id) WHERE status = 'PENDING';
CREATE INDEX unbindings_partner_idx ON unbindings (partner_id, id);
CREATE INDEX unbindings_expiry_idx ON unbindings (expires_at) WHERE status = 'PENDING';

-- +goose Down
DROP TABLE unbindings;
