-- Every decision takes effect once.
--
-- 1. A status "moving" to itself is not a transition. The guard of the dossier state machines
--    (declarations, licence applications) let `UPDATE … SET status = status` through, so a
--    repeated clearance, hold or review wrote a second event and audit entry. It now refuses
--    it with SQLSTATE NS409 like any other move its table does not list. The tables of allowed
--    moves are those of migrations/0002_ministries.sql, which list no (s, s) pair; the Rust
--    enums in src/domain/ declare the same machines and a test compares them pair by pair.
--
-- 2. Whatever leaves the window because of a decision is keyed by its cause. `outbox.cause`
--    names what produced a message (`acdd:<declaration id>`, `form-d:<application id>`,
--    `response:<inbound message id>`, `operator:<request id>`); it is unique, so a second
--    enqueue for the same cause is refused by the database, whatever the code does. Messages
--    enqueued before this migration keep their own message id as cause.

CREATE OR REPLACE FUNCTION guard_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    allowed boolean;
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RAISE EXCEPTION 'transition % -> % is not allowed: the status is already %',
                        OLD.status, NEW.status, OLD.status
            USING ERRCODE = 'NS409';
    END IF;
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE from_status = $1 AND to_status = $2)',
                   TG_ARGV[0])
       INTO allowed USING OLD.status, NEW.status;
    IF NOT allowed THEN
        RAISE EXCEPTION 'transition % -> % is not allowed', OLD.status, NEW.status
            USING ERRCODE = 'NS409';
    END IF;
    RETURN NEW;
END
$$;

ALTER TABLE outbox ADD COLUMN cause text;
-- The outbox guard refuses every change it does not know; backfilling a new column is not one
-- of them, so it steps aside for this one statement.
ALTER TABLE outbox DISABLE TRIGGER outbox_state_machine;
UPDATE outbox SET cause = 'message:' || message_id::text;
ALTER TABLE outbox ENABLE TRIGGER outbox_state_machine;
ALTER TABLE outbox
    ALTER COLUMN cause SET NOT NULL,
    ADD CONSTRAINT outbox_cause_unique UNIQUE (cause),
    ADD CONSTRAINT outbox_cause_shape CHECK (cause ~ '^[a-z][a-z-]*:.+$' AND length(cause) <= 200);

-- A message's cause is part of what it is: fixed at enqueue.
CREATE FUNCTION outbox_cause_fixed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cause IS DISTINCT FROM OLD.cause THEN
        RAISE EXCEPTION 'an outbox message keeps its cause' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER outbox_cause_fixed BEFORE UPDATE OF cause ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_cause_fixed();
