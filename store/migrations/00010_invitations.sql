-- +goose Up
-- Invitations of PERSONAL accounts by partners (DOMAIN.md §1). The token
-- travels only in the invitation's email and in-site message; the table
-- keeps its SHA-256. A PENDING invitation past expires_at reads as EXPIRED.
CREATE TABLE invitations (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id  bigint NOT NULL REFERENCES accounts(id),
    account_id  bigint NOT NULL REFERENCES accounts(id),
    email       text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    status      text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','ACCEPTED','DECLINED','REVOKED')),
    invited_by  bigint REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    decided_at  timestamptz,
    decided_by  bigint REFERENCES users(id)
);
CREATE INDEX invitations_partner_idx ON invitations (partner_id, id);
CREATE INDEX invitations_account_idx ON invitations (account_id, id);
CREATE UNIQUE INDEX invitations_one_pending ON invitations (partner_id, account_id) WHERE status = 'PENDING';

-- +goose Down
DROP TABLE invitations;
