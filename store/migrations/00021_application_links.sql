-- +goose Up
-- Application links (issue 14): besides inviting by email, a partner hands
-- out a link; a PERSONAL account applies through it and the partner approves
-- or rejects the application. The token is shown once, at creation; the
-- table keeps its SHA-256. A link's status (UNUSED, USED, EXPIRED, REVOKED)
-- is computed from expires_at, uses, usage_limit and revoked_at.
CREATE TABLE application_links (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partner_id  bigint NOT NULL REFERENCES accounts(id),
    kind        text NOT NULL CHECK (kind IN ('CUSTOMER','RESELLER')),
    token_hash  bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    expires_at  timestamptz NOT NULL,
    usage_limit int CHECK (usage_limit >= 1),
    uses        int NOT NULL DEFAULT 0 CHECK (uses >= 0 AND (usage_limit IS NULL OR uses <= usage_limit)),
    created_by  bigint REFERENCES users(id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    revoked_by  bigint REFERENCES users(id)
);
CREATE INDEX application_links_partner_idx ON application_links (partner_id, id);

-- One application of a personal account through a link. partner_id and kind
-- are the link's (they never change), so a partner's list needs no join. An
-- account has at most one PENDING application per partner.
CREATE TABLE link_applications (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    link_id      bigint NOT NULL REFERENCES application_links(id),
    partner_id   bigint NOT NULL REFERENCES accounts(id),
    applicant_id bigint NOT NULL REFERENCES accounts(id),
    kind         text NOT NULL CHECK (kind IN ('CUSTOMER','RESELLER')),
    status       text NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING','APPROVED','REJECTED','WITHDRAWN')),
    reason       text NOT NULL DEFAULT '' CHECK (length(reason) <= 500),
    applied_by   bigint REFERENCES users(id),
    applied_at   timestamptz NOT NULL,
    decided_at   timestamptz,
    decided_by   bigint REFERENCES users(id),
    CONSTRAINT link_applications_decided CHECK ((status = 'PENDING') = (decided_at IS NULL))
);
CREATE INDEX link_applications_partner_idx ON link_applications (partner_id, id);
CREATE INDEX link_applications_link_idx ON link_applications (link_id, id);
CREATE INDEX link_applications_applicant_idx ON link_applications (applicant_id, id);
CREATE UNIQUE INDEX link_applications_one_pending ON link_applications (partner_id, applicant_id) WHERE status = 'PENDING';

-- +goose Down
DROP TABLE link_applications;
DROP TABLE application_links;
