-- Reading the exchange's figures costs what happened lately, not the whole history.
--
-- 1. Messages by partner, document type and status were counted over the whole outbox at
--    every metrics scrape and every view of the console's partners page: a million sent
--    messages meant a million rows read each time. The outbox now keeps its own tally: a
--    statement-level trigger appends, per statement, how many messages entered and left each
--    (partner, document type, status), and the reaper folds those rows into one per key from
--    time to time. The figures are exact and transactional (the tally commits with the
--    change), and the hot path pays one small insert per statement, not per row.
-- 2. Periods on the public dashboard and the console's date filters read rows by time. The
--    outbox's, the received messages' and the licence applications' ids are UUIDv7, whose
--    first 48 bits are the millisecond they were made, so a time range is also a primary-key
--    range (`store::time_ids`: no index needed), widened by an hour on each side for the
--    difference between the clock that made the id and the database's clock that stamped the
--    row; the time condition itself still decides.
--    A decision's time has an index of its own, for the applications decided in a period.
-- 3. The business responses sent for a received document are found by their own index
--    instead of every message to that partner.

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
-- rows it folded. Rows appended meanwhile by other transactions are not in the DELETE's
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

CREATE INDEX outbox_responses ON outbox (receiver, previous_reference)
    WHERE document_type = 'BUSINESS_RESPONSE';

CREATE INDEX licence_applications_decided ON licence_applications (decided_at)
    WHERE decided_at IS NOT NULL;
