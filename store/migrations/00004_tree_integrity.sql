-- +goose Up
-- The tree stays consistent whoever writes: a kind change must still fit the
-- parent rules for the account's children, a move recomputes the path and
-- depth of the account and of its whole subtree, and an account cannot move
-- under its own descendant.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION accounts_check_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    pkind  text;
    ppath  text;
    pdepth int;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.kind <> OLD.kind AND EXISTS (
        SELECT 1 FROM accounts c WHERE c.parent_id = NEW.id AND NOT (
            (c.kind = 'DISTRIBUTOR' AND NEW.kind = 'PLATFORM') OR
            (c.kind = 'RESELLER'    AND NEW.kind IN ('PLATFORM','DISTRIBUTOR')) OR
            (c.kind = 'CUSTOMER'    AND NEW.kind IN ('DISTRIBUTOR','RESELLER')) OR
            (c.kind = 'PERSONAL'    AND NEW.kind = 'PLATFORM'))
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
