-- The outbox's state machine refuses a change of status with SQLSTATE NS409, as the dossier
-- machines do (0002, 0011), so every forbidden transition reaches a client as 409
-- TRANSITION_FORBIDDEN through one mapping. The function is 0003's otherwise unchanged.
CREATE OR REPLACE FUNCTION outbox_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'outbox rows are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.message_id <> OLD.message_id OR NEW.envelope <> OLD.envelope OR NEW.sha256 <> OLD.sha256
       OR NEW.receiver <> OLD.receiver OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'an outbox message is immutable once enqueued' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.signature IS NOT NULL AND NEW.signature IS DISTINCT FROM OLD.signature THEN
        RAISE EXCEPTION 'an outbox signature is made once' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = OLD.status THEN
        IF NEW.status IN ('sending') THEN
            RETURN NEW;
        END IF;
        IF NEW.status IN ('delivered', 'rejected') AND NEW.receipt IS NOT DISTINCT FROM OLD.receipt THEN
            RETURN NEW;
        END IF;
        IF NEW.status IN ('pending', 'retry_wait', 'dead_letter')
           AND NEW.attempts = OLD.attempts AND NEW.receipt IS NOT DISTINCT FROM OLD.receipt THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'outbox: % may not change in place', OLD.status USING ERRCODE = 'NS409';
    END IF;
    IF (OLD.status, NEW.status) IN (
        ('pending', 'sending'),
        ('retry_wait', 'sending'),
        ('sending', 'delivered'),
        ('sending', 'rejected'),
        ('sending', 'retry_wait'),
        ('sending', 'dead_letter'),
        ('dead_letter', 'pending')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'outbox: transition % -> % is not allowed', OLD.status, NEW.status
        USING ERRCODE = 'NS409';
END
$$;
