-- Reading the exchange's figures costs what happened lately, not the whole history.
--
-- 1. Messages by partner, document type and status were counted over the whole outbox at
--    every metrics scrape and every view of the console's partners page, and received
--    messages over the whole of `inbound_messages`: a million messages meant a million rows
--    read each time. Both tables now keep a tally: statement-level triggers append, per
--    statement, how many messages entered and left each (partner, document type[, status]),
--    and a job folds those rows into one per key every few seconds. The figures are exact and
--    transactional (the tally commits with the change), and the hot path pays one small
--    insert per statement, not per row. TRUNCATE, which no row trigger sees, is refused on
--    both tables (their rows are never deleted).
-- 2. Periods on the public dashboard and the console's date filters read rows by time. The
--    outbox's, the received messages' and the licence applications' ids are UUIDv7, whose
--    first 48 bits are the millisecond they were made, so a time range is also a primary-key
--    range (`store::time_ids`: no index needed), widened by an hour on each side for the
--    difference between the clock that made the id and the database's clock that stamped the
--    row; the time condition itself still decides.
--    A decision's time has an index of its own, for the applications decided in a period.
-- 3. The business responses sent for a received document are found by their own index
--    instead of every message to that partner; the console's lists by partner follow the
--    primary key's order, so their partner indexes do too.
--
-- Applying it counts both tables once and builds four indexes while writes wait: seconds per
-- million messages.

CREATE TABLE outbox_tally (
    receiver            char(2) NOT NULL,
    document_type       text NOT NULL,
    status              text NOT NULL,
    -- messages that entered this status, less those that left it (per row before a fold)
    messages            bigint NOT NULL,
    -- latest delivered_at among the messages counted here
    last_delivered_at   timestamptz
);

CREATE FUNCTION outbox_tally_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_tally (receiver, document_type, status, messages, last_delivered_at)
    SELECT receiver, document_type, status, count(*), max(delivered_at)
      FROM entered GROUP BY 1, 2, 3;
    RETURN NULL;
END
$$;

CREATE FUNCTION outbox_tally_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox_tally (receiver, document_type, status, messages, last_delivered_at)
    SELECT receiver, document_type, status, sum(d), max(delivered_at)
      FROM (SELECT receiver, document_type, status, -1 AS d, NULL::timestamptz AS delivered_at
              FROM left_rows
            UNION ALL
            SELECT receiver, document_type, status, 1, delivered_at FROM entered) c
     GROUP BY 1, 2, 3
    HAVING sum(d) <> 0;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_tally_insert AFTER INSERT ON outbox
    REFERENCING NEW TABLE AS entered
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_tally_insert();
CREATE TRIGGER outbox_tally_update AFTER UPDATE ON outbox
    REFERENCING OLD TABLE AS left_rows NEW TABLE AS entered
    FOR EACH STATEMENT EXECUTE FUNCTION outbox_tally_update();

-- Folds the tally into one row per key once it holds at least `at_least` rows; returns the
-- rows it wrote. Rows appended meanwhile by other transactions are not in the DELETE's
-- snapshot and stay for the next fold, so nothing is counted twice or lost.
CREATE FUNCTION outbox_tally_fold(at_least integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF (SELECT count(*) FROM outbox_tally) < at_least THEN
        RETURN 0;
    END IF;
    WITH gone AS (DELETE FROM outbox_tally RETURNING *)
    INSERT INTO outbox_tally (receiver, document_type, status, messages, last_delivered_at)
    SELECT receiver, document_type, status, sum(messages), max(last_delivered_at)
      FROM gone GROUP BY 1, 2, 3
    HAVING sum(messages) <> 0 OR max(last_delivered_at) IS NOT NULL;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- The messages already there, once.
INSERT INTO outbox_tally (receiver, document_type, status, messages, last_delivered_at)
SELECT receiver, document_type, status, count(*), max(delivered_at) FROM outbox GROUP BY 1, 2, 3;

CREATE TABLE inbound_tally (
    sender              char(2) NOT NULL,
    document_type       text NOT NULL,
    messages            bigint NOT NULL
);

CREATE FUNCTION inbound_tally_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO inbound_tally (sender, document_type, messages)
    SELECT sender, document_type, count(*) FROM entered GROUP BY 1, 2;
    RETURN NULL;
END
$$;

-- Received messages are only ever added: their guard refuses deletes and every update but
-- received -> answered, which the window makes without touching sender or document type, so
-- inserts are all the tally has to follow.
CREATE TRIGGER inbound_tally_insert AFTER INSERT ON inbound_messages
    REFERENCING NEW TABLE AS entered
    FOR EACH STATEMENT EXECUTE FUNCTION inbound_tally_insert();

CREATE FUNCTION inbound_tally_fold(at_least integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF (SELECT count(*) FROM inbound_tally) < at_least THEN
        RETURN 0;
    END IF;
    WITH gone AS (DELETE FROM inbound_tally RETURNING *)
    INSERT INTO inbound_tally (sender, document_type, messages)
    SELECT sender, document_type, sum(messages) FROM gone GROUP BY 1, 2;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

INSERT INTO inbound_tally (sender, document_type, messages)
SELECT sender, document_type, count(*) FROM inbound_messages GROUP BY 1, 2;

CREATE FUNCTION never_truncated() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are never deleted (its tally would no longer match)', TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER outbox_no_truncate BEFORE TRUNCATE ON outbox
    FOR EACH STATEMENT EXECUTE FUNCTION never_truncated();
CREATE TRIGGER inbound_messages_no_truncate BEFORE TRUNCATE ON inbound_messages
    FOR EACH STATEMENT EXECUTE FUNCTION never_truncated();

CREATE INDEX outbox_responses ON outbox (receiver, previous_reference)
    WHERE document_type = 'BUSINESS_RESPONSE';

-- The console lists a partner's messages newest first by id (UUIDv7).
DROP INDEX outbox_receiver;
CREATE INDEX outbox_receiver ON outbox (receiver, id DESC);
DROP INDEX inbound_messages_sender;
CREATE INDEX inbound_messages_sender ON inbound_messages (sender, id DESC);

CREATE INDEX licence_applications_decided ON licence_applications (decided_at)
    WHERE decided_at IS NOT NULL;
