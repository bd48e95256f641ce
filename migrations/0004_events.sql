-- Events feed and webhooks. The events are the rows of dossier_events; this migration adds who
-- may see them, the order in which the feed hands them out, and webhook subscriptions with
-- their durable cursors and delivery log. See docs/events.md.

-- Who is a party to which dossier. Later dossier kinds extend this view with
-- `UNION ALL SELECT id, applicant_id, 'licence_application', reference FROM licence_applications`.
-- A dossier may appear several times for one party (submitter and declarant are often the
-- same): queries test membership with EXISTS.
CREATE VIEW dossier_parties (dossier_id, party_id, kind, reference) AS
    SELECT id, submitter, 'declaration'::text, reference FROM declarations
    UNION ALL
    SELECT id, trader_id, 'declaration'::text, reference FROM declarations
    UNION ALL
    SELECT id, declarant_id, 'declaration'::text, reference FROM declarations
    UNION ALL
    SELECT id, applicant_id, 'licence_application'::text, reference FROM licence_applications;

-- Which agency a dossier is routed to (ministries see those events). Declarations are not
-- routed to a ministry; licence applications are.
CREATE VIEW dossier_agencies (dossier_id, agency) AS
    SELECT id, agency FROM licence_applications;

CREATE INDEX declarations_declarant ON declarations (declarant_id);

-- Event ids come from a sequence at insert time, so a transaction that commits late can make a
-- smaller id appear after a reader has moved past it. The feed therefore does not order by id:
-- every committed event gets a position in event_feed, assigned by event_feed_seal() in one
-- place, in the order events become visible. A reader that has seen position p can never be
-- shown a new event at a position <= p.
CREATE TABLE event_pending (
    event_id    bigint PRIMARY KEY REFERENCES dossier_events (id)
);

CREATE TABLE event_feed (
    pos         bigint PRIMARY KEY CHECK (pos > 0),
    event_id    bigint NOT NULL UNIQUE REFERENCES dossier_events (id),
    dossier_id  uuid NOT NULL
);
CREATE INDEX event_feed_dossier ON event_feed (dossier_id, pos);

CREATE TRIGGER event_feed_append_only BEFORE UPDATE OR DELETE ON event_feed
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER event_feed_no_truncate BEFORE TRUNCATE ON event_feed
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- Every new event waits for a feed position, in the same transaction, so it becomes pending
-- exactly when it becomes visible. No pg_notify here: a notifying transaction takes a
-- database-wide lock through its commit, which serialised event-writing commits (about 450
-- instead of 3,000 transactions per second here, docs/events.md); the sequencers poll this small
-- table instead, and notify only when they sealed something.
CREATE FUNCTION dossier_event_enqueue() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO event_pending (event_id) VALUES (NEW.id);
    RETURN NULL;
END
$$;
CREATE TRIGGER dossier_event_enqueue AFTER INSERT ON dossier_events
    FOR EACH ROW EXECUTE FUNCTION dossier_event_enqueue();

-- Events recorded before this migration enter the feed like new ones.
INSERT INTO event_pending (event_id) SELECT id FROM dossier_events;

-- Moves committed pending events into the feed, oldest id first, after the last position.
-- One sealer at a time across instances. Without `wait`, a caller that finds another one busy
-- returns 0 and relies on that one; with it, the caller queues, and since each statement of
-- this function takes a fresh snapshot, it then seals everything committed before it was
-- called. Returns how many events got a position.
CREATE FUNCTION event_feed_seal(batch integer, wait boolean) RETURNS integer
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
        RETURNING event_id
    ), base AS (
        SELECT coalesce(max(pos), 0) AS last FROM event_feed
    )
    INSERT INTO event_feed (pos, event_id, dossier_id)
    SELECT base.last + row_number() OVER (ORDER BY m.event_id), m.event_id, e.dossier_id
      FROM moved m JOIN dossier_events e ON e.id = m.event_id CROSS JOIN base;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n > 0 THEN
        PERFORM pg_notify('nsw_event_feed', '');
    END IF;
    RETURN n;
END
$$;

-- Webhook subscriptions of enterprises. The secret signs every delivery, so it is kept as is
-- (it cannot be only hashed); the API shows it once, at creation.
CREATE TABLE webhooks (
    id              uuid PRIMARY KEY,
    party_id        text NOT NULL REFERENCES parties (id),
    url             text NOT NULL CHECK (url ~ '^https?://' AND length(url) <= 2000),
    secret          text NOT NULL CHECK (length(secret) >= 32),
    created_at      timestamptz NOT NULL DEFAULT now(),
    deleted_at      timestamptz,
    -- feed position of the last event delivered (or skipped as older than the subscription)
    cursor_pos      bigint NOT NULL CHECK (cursor_pos >= 0),
    -- consecutive failed attempts at the event after cursor_pos
    failures        integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    -- a worker that claimed the subscription holds it until locked_until, proven by lease
    lease           uuid,
    locked_until    timestamptz,
    CHECK ((lease IS NULL) = (locked_until IS NULL))
);
-- A cursor only moves forward: an event once delivered is never the reason to go back.
CREATE FUNCTION webhook_cursor_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.cursor_pos < OLD.cursor_pos THEN
        RAISE EXCEPTION 'webhook cursor moves only forward (% -> %)', OLD.cursor_pos, NEW.cursor_pos
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER webhook_cursor_forward BEFORE UPDATE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION webhook_cursor_forward();

CREATE INDEX webhooks_party ON webhooks (party_id, created_at) WHERE deleted_at IS NULL;
CREATE INDEX webhooks_due ON webhooks (next_attempt_at) WHERE deleted_at IS NULL;

-- Every delivery attempt, successful or not, for operators and subscribers.
CREATE TABLE webhook_deliveries (
    id              bigserial PRIMARY KEY,
    webhook_id      uuid NOT NULL REFERENCES webhooks (id),
    event_id        bigint NOT NULL REFERENCES dossier_events (id),
    attempt         integer NOT NULL CHECK (attempt >= 1),
    at              timestamptz NOT NULL DEFAULT now(),
    http_status     integer,
    error           text,
    delivered       boolean NOT NULL,
    CHECK (delivered = coalesce(http_status BETWEEN 200 AND 299, false))
);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, id);

CREATE TRIGGER webhook_deliveries_append_only BEFORE UPDATE OR DELETE ON webhook_deliveries
    FOR EACH ROW EXECUTE FUNCTION append_only();
