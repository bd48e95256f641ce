-- Intake: parties and their tokens, documents kept byte for byte, declarations with the fields
-- we query on, their status events, idempotency keys, and the hash-chained audit trail.

CREATE TABLE parties (
    id          text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9][A-Za-z0-9-]{0,34}$'),
    role        text NOT NULL CHECK (role IN ('enterprise', 'ministry', 'customs', 'partner', 'admin')),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- the agency a ministry officer acts for (routing), or a partner's country
    agency      text,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Bearer tokens, stored only as SHA-256 digests.
CREATE TABLE tokens (
    hash        bytea PRIMARY KEY CHECK (length(hash) = 32),
    party_id    text NOT NULL REFERENCES parties (id),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX tokens_party ON tokens (party_id);

-- Every document exactly as received.
CREATE TABLE documents (
    id          uuid PRIMARY KEY,
    kind        text NOT NULL,
    sha256      bytea NOT NULL CHECK (length(sha256) = 32),
    size        integer NOT NULL,
    body        bytea NOT NULL,
    received_at timestamptz NOT NULL,
    CHECK (size = length(body))
);

CREATE SEQUENCE dossier_reference_seq;

CREATE TABLE declarations (
    id                   uuid PRIMARY KEY,
    reference            text NOT NULL UNIQUE,
    document_id          uuid NOT NULL UNIQUE REFERENCES documents (id),
    submitter            text NOT NULL REFERENCES parties (id),
    status               text NOT NULL CHECK (status IN
                            ('accepted', 'under_inspection', 'cleared', 'rejected', 'withdrawn')),
    direction            text NOT NULL CHECK (direction IN ('IM', 'EX')),
    lrn                  text NOT NULL,
    declarant_id         text NOT NULL,
    exporter_id          text NOT NULL,
    importer_id          text NOT NULL,
    -- importer of an import, exporter of an export: sees the dossier with its submitter
    trader_id            text NOT NULL,
    export_country       char(2) NOT NULL,
    destination_country  char(2) NOT NULL,
    customs_office       text NOT NULL,
    issue_date           date NOT NULL,
    currency             char(3) NOT NULL,
    total_value          numeric(20, 2) NOT NULL,
    total_gross_mass     numeric(18, 3) NOT NULL,
    item_count           integer NOT NULL CHECK (item_count BETWEEN 1 AND 999),
    received_at          timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX declarations_submitter ON declarations (submitter, id DESC);
CREATE INDEX declarations_trader ON declarations (trader_id, id DESC);
CREATE INDEX declarations_status ON declarations (status, id DESC);

CREATE TABLE declaration_items (
    declaration_id  uuid NOT NULL REFERENCES declarations (id),
    line            integer NOT NULL CHECK (line BETWEEN 1 AND 999),
    hs_code         text NOT NULL CHECK (hs_code ~ '^[0-9]{6}([0-9]{2})?$'),
    description     text NOT NULL,
    origin          char(2) NOT NULL,
    quantity        numeric(18, 3) NOT NULL CHECK (quantity > 0),
    unit            text NOT NULL,
    net_mass        numeric(18, 3) NOT NULL,
    gross_mass      numeric(18, 3) NOT NULL CHECK (gross_mass >= net_mass),
    customs_value   numeric(20, 2) NOT NULL,
    documents       jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (declaration_id, line)
);
CREATE INDEX declaration_items_hs ON declaration_items (hs_code);

-- Status history of every dossier (declarations now, licence applications later).
CREATE TABLE dossier_events (
    id          bigserial PRIMARY KEY,
    dossier_id  uuid NOT NULL,
    status      text NOT NULL,
    at          timestamptz NOT NULL,
    actor       text NOT NULL,
    note        text
);
CREATE INDEX dossier_events_dossier ON dossier_events (dossier_id, id);

CREATE TABLE idempotency_keys (
    party_id        text NOT NULL REFERENCES parties (id),
    key             text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
    request_sha256  bytea NOT NULL,
    status          integer NOT NULL,
    response        jsonb NOT NULL,
    location        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, key)
);

-- Append-only audit trail. Rows are written inside the transactions that cause them, without a
-- chain lock (which would serialise every commit); audit_seal() then links committed rows into
-- the SHA-256 chain in one place. Once sealed, a row can never change.
CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor       text NOT NULL,
    action      text NOT NULL,
    subject     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}',
    chain_pos   bigint UNIQUE,
    prev_hash   bytea,
    hash        bytea,
    CHECK ((chain_pos IS NULL) = (hash IS NULL) AND (hash IS NULL) = (prev_hash IS NULL))
);
CREATE INDEX audit_log_unsealed ON audit_log (id) WHERE hash IS NULL;

-- The bytes a chain link hashes besides the previous hash; `nsw audit verify` recomputes the
-- SHA-256 itself from these.
CREATE FUNCTION audit_canonical(a audit_log) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT convert_to(concat_ws(E'\x1f',
        a.id::text,
        to_char(a.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
        a.actor, a.action, a.subject, a.details::text), 'UTF8')
$$;

CREATE FUNCTION audit_seal(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
    pos bigint;
    r audit_log;
    h bytea;
    n integer := 0;
BEGIN
    -- One sealer at a time, whichever instance runs it.
    PERFORM pg_advisory_xact_lock(4242001);
    SELECT a.hash, a.chain_pos INTO prev, pos
      FROM audit_log a WHERE a.chain_pos IS NOT NULL ORDER BY a.chain_pos DESC LIMIT 1;
    IF pos IS NULL THEN
        pos := 0;
        prev := decode(repeat('00', 32), 'hex');
    END IF;
    FOR r IN SELECT * FROM audit_log WHERE hash IS NULL ORDER BY id LIMIT batch LOOP
        pos := pos + 1;
        h := sha256(prev || audit_canonical(r));
        UPDATE audit_log SET chain_pos = pos, prev_hash = prev, hash = h WHERE id = r.id;
        prev := h;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION audit_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.hash IS NULL AND NEW.hash IS NOT NULL
       AND NEW.id = OLD.id AND NEW.at = OLD.at AND NEW.actor = OLD.actor
       AND NEW.action = OLD.action AND NEW.subject = OLD.subject AND NEW.details = OLD.details THEN
        RETURN NEW;  -- sealing: the only change ever allowed
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (% refused)', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_guard();

CREATE FUNCTION append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON dossier_events
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER documents_immutable BEFORE UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION append_only();
