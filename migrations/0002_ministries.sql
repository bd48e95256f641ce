-- Ministries and customs: versioned routing tables, licence applications and their state
-- machine, electronic licences with per-line balances, the append-only licence ledger, agency
-- signing keys, and the customs state machine of declarations.

-- Every routing table ever in force; the current one is the highest version. A decision records
-- the version it used, so the table a dossier was routed by can always be shown again.
CREATE TABLE routing_versions (
    version     integer PRIMARY KEY CHECK (version >= 1),
    tables      jsonb NOT NULL,
    rule_count  integer NOT NULL CHECK (rule_count >= 1),
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  text NOT NULL,
    note        text
);
CREATE TRIGGER routing_versions_append_only BEFORE UPDATE OR DELETE ON routing_versions
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- Dossier state machines. These two tables are the only place the allowed transitions live: the
-- triggers below refuse any other change of status, and the service relies on that refusal.
CREATE TABLE licence_application_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO licence_application_transitions (from_status, to_status) VALUES
    ('submitted', 'received'),
    ('received', 'supplement_requested'),
    ('received', 'under_review'),
    ('supplement_requested', 'supplemented'),
    ('supplemented', 'supplement_requested'),
    ('supplemented', 'under_review'),
    ('under_review', 'supplement_requested'),
    ('under_review', 'issued'),
    ('under_review', 'refused'),
    ('submitted', 'withdrawn'),
    ('received', 'withdrawn'),
    ('supplement_requested', 'withdrawn'),
    ('supplemented', 'withdrawn'),
    ('under_review', 'withdrawn');

CREATE TABLE declaration_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO declaration_transitions (from_status, to_status) VALUES
    ('accepted', 'under_inspection'),
    ('accepted', 'cleared'),
    ('accepted', 'rejected'),
    ('accepted', 'withdrawn'),
    ('under_inspection', 'cleared'),
    ('under_inspection', 'rejected');

CREATE TRIGGER licence_application_transitions_fixed BEFORE INSERT OR UPDATE OR DELETE
    ON licence_application_transitions FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER declaration_transitions_fixed BEFORE INSERT OR UPDATE OR DELETE
    ON declaration_transitions FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- SQLSTATE NS409 tells the service "forbidden transition" apart from every other failure.
CREATE FUNCTION guard_transition() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    allowed boolean;
BEGIN
    IF NEW.status IS NOT DISTINCT FROM OLD.status THEN
        RETURN NEW;
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

CREATE TRIGGER declarations_state_machine BEFORE UPDATE OF status ON declarations
    FOR EACH ROW EXECUTE FUNCTION guard_transition('declaration_transitions');

ALTER TABLE declarations
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN decision_reason text,
    -- the routing table version the licence check of this declaration used
    ADD COLUMN routing_version integer REFERENCES routing_versions (version);

CREATE SEQUENCE licence_application_seq;
CREATE SEQUENCE licence_number_seq;

CREATE TABLE licence_applications (
    id               uuid PRIMARY KEY,
    reference        text NOT NULL UNIQUE,
    document_id      uuid NOT NULL UNIQUE REFERENCES documents (id),
    applicant_id     text NOT NULL REFERENCES parties (id),
    lrn              text NOT NULL,
    -- the application as read (applicant, validity, lines), from which a licence is written
    details          jsonb NOT NULL,
    application_type text NOT NULL,
    direction        text NOT NULL CHECK (direction IN ('IM', 'EX', 'TR')),
    country          char(2) NOT NULL,
    valid_from       date NOT NULL,
    valid_to         date NOT NULL CHECK (valid_to >= valid_from),
    agency           text NOT NULL,
    procedure_code   text NOT NULL,
    document_type    text NOT NULL,
    rule_id          text NOT NULL,
    routing_version  integer NOT NULL REFERENCES routing_versions (version),
    -- the time limit of the rule that routed it, in working minutes
    sla_minutes      integer NOT NULL CHECK (sla_minutes > 0),
    status           text NOT NULL CHECK (status IN ('submitted', 'received', 'supplement_requested',
                        'supplemented', 'under_review', 'issued', 'refused', 'withdrawn')),
    received_at      timestamptz NOT NULL,
    decided_at       timestamptz,
    decision_reason  text,
    updated_at       timestamptz NOT NULL,
    CHECK ((status IN ('issued', 'refused')) = (decided_at IS NOT NULL)),
    CHECK (status <> 'refused' OR length(decision_reason) > 0)
);
CREATE INDEX licence_applications_inbox ON licence_applications (agency, status, id);
CREATE INDEX licence_applications_applicant ON licence_applications (applicant_id, id DESC);

CREATE TRIGGER licence_applications_state_machine BEFORE UPDATE OF status ON licence_applications
    FOR EACH ROW EXECUTE FUNCTION guard_transition('licence_application_transitions');

CREATE FUNCTION licence_application_starts_submitted() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status <> 'submitted' THEN
        RAISE EXCEPTION 'a licence application starts as submitted, not %', NEW.status
            USING ERRCODE = 'NS409';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER licence_applications_start BEFORE INSERT ON licence_applications
    FOR EACH ROW EXECUTE FUNCTION licence_application_starts_submitted();

CREATE TABLE licence_application_lines (
    application_id  uuid NOT NULL REFERENCES licence_applications (id),
    line            integer NOT NULL CHECK (line BETWEEN 1 AND 999),
    hs_code         text NOT NULL CHECK (hs_code ~ '^[0-9]{6}([0-9]{2})?$'),
    description     text NOT NULL,
    quantity        numeric(18, 3) NOT NULL CHECK (quantity > 0),
    unit            text NOT NULL,
    PRIMARY KEY (application_id, line)
);

-- Supplements the enterprise sends when the agency asks for more.
CREATE TABLE licence_supplements (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES licence_applications (id),
    note            text NOT NULL CHECK (length(note) BETWEEN 1 AND 4000),
    at              timestamptz NOT NULL
);
CREATE TRIGGER licence_supplements_append_only BEFORE UPDATE OR DELETE ON licence_supplements
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- The key each agency signs the licences it issues through the window with (EC P-256), made on
-- first use.
CREATE TABLE agency_keys (
    agency          text PRIMARY KEY,
    private_key_pem bytea NOT NULL,
    certificate_pem text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

-- Certificates an administrator registered for licences an agency issues outside the window and
-- then deposits here.
CREATE TABLE agency_certificates (
    id              bigserial PRIMARY KEY,
    agency          text NOT NULL,
    certificate_pem text NOT NULL,
    sha256          bytea NOT NULL CHECK (length(sha256) = 32),
    registered_by   text NOT NULL,
    registered_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (agency, sha256)
);

CREATE TABLE licences (
    id              uuid PRIMARY KEY,
    number          text NOT NULL UNIQUE,
    licence_type    text NOT NULL,
    agency          text NOT NULL,
    holder_id       text NOT NULL,
    direction       text NOT NULL CHECK (direction IN ('IM', 'EX', 'TR')),
    issue_date      date NOT NULL,
    valid_from      date NOT NULL,
    valid_to        date NOT NULL CHECK (valid_to >= valid_from),
    application_id  uuid UNIQUE REFERENCES licence_applications (id),
    document_id     uuid NOT NULL UNIQUE REFERENCES documents (id),
    signature       bytea NOT NULL,
    -- issued through the window, or issued elsewhere and deposited
    origin          text NOT NULL CHECK (origin IN ('issued', 'deposited')),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL,
    CHECK ((origin = 'issued') = (application_id IS NOT NULL))
);
CREATE INDEX licences_holder ON licences (holder_id);
CREATE TRIGGER licences_immutable BEFORE UPDATE OR DELETE ON licences
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- One balance row per licence line. `remaining` moves only through the ledger trigger below, and
-- the CHECK is the last word on overdrawing, however many declarations race for it.
CREATE TABLE licence_lines (
    licence_id   uuid NOT NULL REFERENCES licences (id),
    line         integer NOT NULL CHECK (line BETWEEN 1 AND 999),
    hs_code      text NOT NULL CHECK (hs_code ~ '^[0-9]{6}([0-9]{2})?$'),
    description  text NOT NULL,
    unit         text NOT NULL,
    allowance    numeric(18, 3) NOT NULL CHECK (allowance > 0),
    remaining    numeric(18, 3) NOT NULL,
    PRIMARY KEY (licence_id, line),
    CHECK (remaining >= 0 AND remaining <= allowance)
);

CREATE TABLE licence_ledger (
    id              bigserial PRIMARY KEY,
    licence_id      uuid NOT NULL,
    line            integer NOT NULL,
    declaration_id  uuid NOT NULL REFERENCES declarations (id),
    item            integer NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('reserve', 'commit', 'release')),
    quantity        numeric(18, 3) NOT NULL CHECK (quantity > 0),
    at              timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (licence_id, line) REFERENCES licence_lines (licence_id, line),
    UNIQUE (declaration_id, item, licence_id, line, kind)
);
CREATE INDEX licence_ledger_line ON licence_ledger (licence_id, line);
CREATE TRIGGER licence_ledger_append_only BEFORE UPDATE OR DELETE ON licence_ledger
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER licence_ledger_no_truncate BEFORE TRUNCATE ON licence_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();

-- Applies a ledger entry to its line's balance. A commit or release must settle an existing
-- reservation of the same quantity, and a reservation is settled at most once.
CREATE FUNCTION licence_ledger_apply() RETURNS trigger
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
        UPDATE licence_lines SET remaining = remaining - NEW.quantity
         WHERE licence_id = NEW.licence_id AND line = NEW.line;
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
        UPDATE licence_lines SET remaining = remaining + NEW.quantity
         WHERE licence_id = NEW.licence_id AND line = NEW.line;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER licence_ledger_balance BEFORE INSERT ON licence_ledger
    FOR EACH ROW EXECUTE FUNCTION licence_ledger_apply();

-- Which agency and procedure each declaration item was held to, by which rule of which version.
CREATE TABLE declaration_routing (
    declaration_id  uuid NOT NULL REFERENCES declarations (id),
    item            integer NOT NULL,
    agency          text NOT NULL,
    procedure_code  text NOT NULL,
    document_type   text NOT NULL,
    rule_id         text NOT NULL,
    routing_version integer NOT NULL REFERENCES routing_versions (version),
    PRIMARY KEY (declaration_id, item, agency)
);
