-- +goose Up
-- Purchase controls (issue 14): a partner's ban on a customer's new
-- prepaid purchases, and the history of every change of a customer's
-- controls (its status — freezes — and the ban): who, when, the old and
-- the new value, and the reason given.
ALTER TABLE accounts ADD COLUMN purchase_banned boolean NOT NULL DEFAULT false;
ALTER TABLE purchase_guards ADD COLUMN purchase_banned boolean NOT NULL DEFAULT false;

CREATE TABLE account_control_changes (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id),
    control       text NOT NULL CHECK (control IN ('STATUS','PURCHASE_BAN')),
    old_value     text NOT NULL,
    new_value     text NOT NULL,
    reason        text NOT NULL DEFAULT '',
    actor         text NOT NULL,
    actor_user_id bigint,
    at            timestamptz NOT NULL,
    request_id    text NOT NULL DEFAULT ''
);
CREATE INDEX account_control_changes_account_idx ON account_control_changes (account_id, id);

-- +goose StatementBegin
CREATE FUNCTION account_control_changes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'account_control_changes is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
-- +goose StatementEnd
CREATE TRIGGER account_control_changes_append_only BEFORE UPDATE OR DELETE ON account_control_changes
    FOR EACH ROW EXECUTE FUNCTION account_control_changes_append_only();

-- +goose Down
DROP TRIGGER account_control_changes_append_only ON account_control_changes;
DROP FUNCTION account_control_changes_append_only();
DROP TABLE account_control_changes;
ALTER TABLE purchase_guards DROP COLUMN purchase_banned;
ALTER TABLE accounts DROP COLUMN purchase_banned;
