-- Guards that make the database refuse what the service never does, so a stray statement (an
-- operator's psql session, a bug, a future code path) cannot bypass the ledger or the
-- declarations' state machine.

-- The ledger trigger is the only writer of `remaining`. It announces itself with a transaction-
-- local setting around its own UPDATE and clears it right after, so the permission does not
-- leak to later statements of the same transaction. A client setting the flag itself still
-- fails the guard: its UPDATE does not run inside a trigger (pg_trigger_depth() = 0).
CREATE OR REPLACE FUNCTION licence_ledger_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    reserved numeric;
BEGIN
    -- The same entry again is a retry: skip it, leaving the balance alone (idempotence).
    IF EXISTS (SELECT 1 FROM licence_ledger
                WHERE declaration_id = NEW.declaration_id AND item = NEW.item
                  AND licence_id = NEW.licence_id AND line = NEW.line AND kind = NEW.kind) THEN
        RETURN NULL;
    END IF;
    IF NEW.kind = 'reserve' THEN
        PERFORM set_config('nsw.ledger', 'on', true);
        UPDATE licence_lines SET remaining = remaining - NEW.quantity
         WHERE licence_id = NEW.licence_id AND line = NEW.line;
        PERFORM set_config('nsw.ledger', 'off', true);
        RETURN NEW;
    END IF;
    SELECT quantity INTO reserved FROM licence_ledger
     WHERE declaration_id = NEW.declaration_id AND item = NEW.item
       AND licence_id = NEW.licence_id AND line = NEW.line AND kind = 'reserve';
    IF reserved IS NULL OR reserved <> NEW.quantity THEN
        RAISE EXCEPTION 'a % must settle a reservation of the same quantity', NEW.kind
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM licence_ledger
                WHERE declaration_id = NEW.declaration_id AND item = NEW.item
                  AND licence_id = NEW.licence_id AND line = NEW.line
                  AND kind IN ('commit', 'release')) THEN
        RAISE EXCEPTION 'reservation already settled' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.kind = 'release' THEN
        PERFORM set_config('nsw.ledger', 'on', true);
        UPDATE licence_lines SET remaining = remaining + NEW.quantity
         WHERE licence_id = NEW.licence_id AND line = NEW.line;
        PERFORM set_config('nsw.ledger', 'off', true);
    END IF;
    RETURN NEW;
END
$$;

-- A licence line is as immutable as its licence, except for `remaining`, which only the ledger
-- moves: otherwise the balance would no longer be the allowance minus what the ledger holds.
-- insufficient_privilege, as for the other immutability guards (append_only).
CREATE FUNCTION licence_lines_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'licence_lines: lines of a licence cannot be deleted'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.licence_id, NEW.line, NEW.hs_code, NEW.description, NEW.unit, NEW.allowance)
       IS DISTINCT FROM
       (OLD.licence_id, OLD.line, OLD.hs_code, OLD.description, OLD.unit, OLD.allowance) THEN
        RAISE EXCEPTION 'licence_lines: a licence line cannot be changed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.remaining IS DISTINCT FROM OLD.remaining
       AND NOT (pg_trigger_depth() > 1
                AND coalesce(current_setting('nsw.ledger', true), '') = 'on') THEN
        RAISE EXCEPTION 'licence_lines: remaining moves only through licence_ledger entries'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER licence_lines_guarded BEFORE UPDATE OR DELETE ON licence_lines
    FOR EACH ROW EXECUTE FUNCTION licence_lines_guard();

-- A new line starts with its whole allowance: anything else would be a drawing without a ledger
-- entry.
CREATE FUNCTION licence_line_starts_full() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.remaining IS DISTINCT FROM NEW.allowance THEN
        RAISE EXCEPTION 'licence_lines: a new line starts with remaining = allowance'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER licence_lines_start BEFORE INSERT ON licence_lines
    FOR EACH ROW EXECUTE FUNCTION licence_line_starts_full();

-- A declaration enters the customs state machine where intake puts it, as accepted; every later
-- status must come through an allowed transition (declarations_state_machine). NS409, as for
-- licence applications (licence_applications_start).
CREATE FUNCTION declaration_starts_accepted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'accepted' THEN
        RAISE EXCEPTION 'a declaration starts as accepted, not %', NEW.status
            USING ERRCODE = 'NS409';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER declarations_start BEFORE INSERT ON declarations
    FOR EACH ROW EXECUTE FUNCTION declaration_starts_accepted();
