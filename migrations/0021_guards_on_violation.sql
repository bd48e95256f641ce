-- The row guards on the busiest tables are written as trigger conditions (WHEN), so PostgreSQL
-- evaluates each rule as an expression per row and calls PL/pgSQL only for a row that breaks
-- it, to name the fault and refuse. The rules are the ones 0001, 0003/0013, 0007 and 0010
-- enforced, unchanged. This spares a PL/pgSQL call per row written; the gain was below what
-- the load tests can tell apart (issue 14, docs/performance.md), and each guard's rule now
-- reads in one place.
--
-- A guard on UPDATE and one on DELETE are now separate triggers (a WHEN condition of a DELETE
-- trigger cannot read NEW). The audit and outbox conditions describe what is allowed and
-- refuse whatever they cannot show allowed (FALSE or NULL); the declarations' conditions
-- describe the violation itself.

-- A declaration starts as accepted (0007).
DROP TRIGGER declarations_start ON declarations;
CREATE TRIGGER declarations_start BEFORE INSERT ON declarations
    FOR EACH ROW WHEN (NEW.status IS DISTINCT FROM 'accepted')
    EXECUTE FUNCTION declaration_starts_accepted();

-- A new declaration is never marked as reusing a reference, and a declaration's declarant and
-- reference never change (0010). The function already told the two cases apart by TG_OP.
DROP TRIGGER declarations_lrn_fixed ON declarations;
CREATE TRIGGER declarations_lrn_fixed BEFORE UPDATE OF lrn, declarant_id, lrn_reuse_of
    ON declarations FOR EACH ROW
    WHEN (NEW.lrn IS DISTINCT FROM OLD.lrn
          OR NEW.declarant_id IS DISTINCT FROM OLD.declarant_id
          OR NEW.lrn_reuse_of IS DISTINCT FROM OLD.lrn_reuse_of)
    EXECUTE FUNCTION declarations_lrn_fixed();
CREATE TRIGGER declarations_lrn_fixed_insert BEFORE INSERT ON declarations
    FOR EACH ROW WHEN (NEW.lrn_reuse_of IS NOT NULL)
    EXECUTE FUNCTION declarations_lrn_fixed();

-- Every new event waits for a feed position, in the same transaction (0004): one insert per
-- statement into `event_pending` for all the events the statement wrote, instead of one per
-- event. The sequencer orders pending events by id, so the order they enter in is immaterial.
DROP TRIGGER dossier_event_enqueue ON dossier_events;
DROP FUNCTION dossier_event_enqueue();
CREATE FUNCTION dossier_events_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_pending (event_id) SELECT id FROM entered;
    RETURN NULL;
END
$$;
CREATE TRIGGER dossier_event_enqueue AFTER INSERT ON dossier_events
    REFERENCING NEW TABLE AS entered
    FOR EACH STATEMENT EXECUTE FUNCTION dossier_events_enqueue();

-- The audit trail is append-only; sealing (setting chain position and hashes on an unsealed
-- entry, nothing else) is the only change ever allowed (0001). `append_only()` raises the same
-- error `audit_guard()` did: "audit_log is append-only (UPDATE refused)", SQLSTATE 42501.
DROP TRIGGER audit_append_only ON audit_log;
DROP FUNCTION audit_guard();
CREATE TRIGGER audit_append_only BEFORE UPDATE ON audit_log
    FOR EACH ROW
    WHEN ((OLD.hash IS NULL AND NEW.hash IS NOT NULL
           AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor = OLD.actor
           AND NEW.action = OLD.action AND NEW.subject = OLD.subject
           AND NEW.details = OLD.details) IS NOT TRUE)
    EXECUTE FUNCTION append_only();
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- The outbox's state machine (0003, 0013): the condition below is the whole rule, the same
-- pairs `domain::message_state` knows (a test compares the two on every pair);
-- `outbox_guard()` now only names what a refused change broke, and always refuses.
DROP TRIGGER outbox_state_machine ON outbox;
CREATE OR REPLACE FUNCTION outbox_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'outbox rows are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.message_id IS DISTINCT FROM OLD.message_id OR NEW.envelope IS DISTINCT FROM OLD.envelope
       OR NEW.sha256 IS DISTINCT FROM OLD.sha256 OR NEW.receiver IS DISTINCT FROM OLD.receiver
       OR NEW.id IS DISTINCT FROM OLD.id THEN
        RAISE EXCEPTION 'an outbox message is immutable once enqueued' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.signature IS NOT NULL AND NEW.signature IS DISTINCT FROM OLD.signature THEN
        RAISE EXCEPTION 'an outbox signature is made once' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = OLD.status THEN
        RAISE EXCEPTION 'outbox: % may not change in place', OLD.status USING ERRCODE = 'NS409';
    END IF;
    RAISE EXCEPTION 'outbox: transition % -> % is not allowed', OLD.status, NEW.status
        USING ERRCODE = 'NS409';
END
$$;
CREATE TRIGGER outbox_state_machine BEFORE UPDATE ON outbox
    FOR EACH ROW
    WHEN ((NEW.message_id = OLD.message_id AND NEW.envelope = OLD.envelope
           AND NEW.sha256 = OLD.sha256 AND NEW.receiver = OLD.receiver AND NEW.id = OLD.id
           AND (OLD.signature IS NULL OR NEW.signature IS NOT DISTINCT FROM OLD.signature)
           AND ((NEW.status = OLD.status
                 AND (NEW.status = 'sending'
                      OR (NEW.status IN ('delivered', 'rejected')
                          AND NEW.receipt IS NOT DISTINCT FROM OLD.receipt)
                      OR (NEW.status IN ('pending', 'retry_wait', 'dead_letter')
                          AND NEW.attempts = OLD.attempts
                          AND NEW.receipt IS NOT DISTINCT FROM OLD.receipt)))
                OR (OLD.status, NEW.status) IN (
                    ('pending', 'sending'),
                    ('retry_wait', 'sending'),
                    ('sending', 'delivered'),
                    ('sending', 'rejected'),
                    ('sending', 'retry_wait'),
                    ('sending', 'dead_letter'),
                    ('dead_letter', 'pending')))) IS NOT TRUE)
    EXECUTE FUNCTION outbox_guard();
CREATE TRIGGER outbox_no_delete BEFORE DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_guard();
