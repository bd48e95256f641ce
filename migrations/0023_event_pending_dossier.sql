-- A pending event carries its dossier, so the sequencer no longer joins `dossier_events`.
--
-- `event_feed_seal()` (0004) read each moved event's dossier from `dossier_events`. Its plan
-- for that join is made for `batch` rows (10,000) and chose a hash join over a sequential scan
-- of all of `dossier_events`: every pass, every 100 ms, read the whole event history to
-- position the few hundred events committed since the last one. In a profile of `nsw loadtest
-- --items 10` that scan and its hash table were about 5% of PostgreSQL's CPU on an almost empty
-- database, and the scan grows with every event ever recorded. The trigger that queues an event
-- already has its row at hand; it now queues the dossier with it, and a pass reads only
-- `event_pending`.

ALTER TABLE event_pending ADD COLUMN dossier_id uuid;
UPDATE event_pending p SET dossier_id = e.dossier_id FROM dossier_events e WHERE e.id = p.event_id;
ALTER TABLE event_pending ALTER COLUMN dossier_id SET NOT NULL;

CREATE OR REPLACE FUNCTION dossier_events_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_pending (event_id, dossier_id) SELECT id, dossier_id FROM entered;
    RETURN NULL;
END
$$;

-- Same contract as in 0004: one sealer at a time across instances; without `wait`, a caller
-- that finds another one busy returns 0; with it, the caller queues and then seals everything
-- committed before it was called. Returns how many events got a position.
CREATE OR REPLACE FUNCTION event_feed_seal(batch integer, wait boolean) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
BEGIN
    IF wait THEN
        PERFORM pg_advisory_xact_lock(4242004);
    ELSIF NOT pg_try_advisory_xact_lock(4242004) THEN
        RETURN 0;
    END IF;
    WITH moved AS (
        DELETE FROM event_pending
         WHERE event_id IN (SELECT event_id FROM event_pending ORDER BY event_id LIMIT batch)
        RETURNING event_id, dossier_id
    ), base AS (
        SELECT coalesce(max(pos), 0) AS last FROM event_feed
    )
    INSERT INTO event_feed (pos, event_id, dossier_id)
    SELECT base.last + row_number() OVER (ORDER BY m.event_id), m.event_id, m.dossier_id
      FROM moved m CROSS JOIN base;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('nsw_event_feed', '');
    END IF;
    RETURN n;
END
$$;
