-- +goose Up
-- The tree stays consistent whoever writes: a kind change must still fit the
-- parent rules for the account's children, a move recomputes the path and
-- depth of the account and of its whole subtree, and an account cannot move
-- under its own descendant.
-- The parent rules of DOMAIN.md §1, once: may an account of kind child sit
-- under an account of kind parent?
CREATE FUNCTION account_kind_fits(child text, parent text) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT (child = 'DISTRIBUTOR' AND parent = 'PLATFORM')
        OR (child = 'RESELLER'    AND parent IN ('PLATFORM','DISTRIBUTOR'))
        OR (child = 'CUSTOMER'    AND parent IN ('DISTRIBUTOR','RESELLER'))
        OR (child = 'PERSONAL'    AND parent = 'PLATFORM')
$$;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION accounts_check_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pkind  text;
    ppath  text;
    pdepth int;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.kind <> OLD.kind AND EXISTS (
        SELECT 1 FROM accounts c WHERE c.parent_id = NEW.id AND NOT account_kind_fits(c.kind, NEW.kind)
    ) THEN
        RAISE EXCEPTION 'account % has children that cannot sit under a %', NEW.id, NEW.kind
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_parent_kind';
    END IF;
    IF NEW.parent_id IS NULL THEN
        IF TG_OP = 'INSERT' THEN
            NEW.path := '/' || NEW.id || '/';
            NEW.depth := 0;
        END IF;
        RETURN NEW;
    END IF;
    SELECT kind, path, depth INTO pkind, ppath, pdepth FROM accounts WHERE id = NEW.parent_id;
    IF TG_OP = 'INSERT' OR NEW.parent_id IS DISTINCT FROM OLD.parent_id THEN
        IF TG_OP = 'UPDATE' AND ppath LIKE OLD.path || '%' THEN
            RAISE EXCEPTION 'account % cannot move under its own descendant %', NEW.id, NEW.parent_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_no_cycle';
        END IF;
        NEW.path := ppath || NEW.id || '/';
        NEW.depth := pdepth + 1;
    END IF;
    IF NOT account_kind_fits(NEW.kind, pkind) THEN
        RAISE EXCEPTION 'an account of kind % cannot be a child of %', NEW.kind, pkind
            USING ERRCODE = 'check_violation', CONSTRAINT = 'accounts_parent_kind';
    END IF;
    RETURN NEW;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION accounts_move_subtree() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- The descendants' own updates below must not cascade again.
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;
    END IF;
    UPDATE accounts
       SET path = NEW.path || substr(path, length(OLD.path) + 1),
           depth = depth + (NEW.depth - OLD.depth)
     WHERE path LIKE OLD.path || '%' AND id <> NEW.id;
    RETURN NULL;
END $$;
-- +goose StatementEnd
CREATE TRIGGER accounts_move_subtree AFTER UPDATE ON accounts
    FOR EACH ROW WHEN (OLD.path IS DISTINCT FROM NEW.path) EXECUTE FUNCTION accounts_move_subtree();

-- +goose Down
DROP TRIGGER accounts_move_subtree ON accounts;
DROP FUNCTION accounts_move_subtree();
-- accounts_check_parent keeps its new body (it refers to account_kind_fits)
-- until 00001's Down drops it.
