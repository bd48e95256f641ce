-- Certificates of origin (ATIGA Form D) issued through the window. The application is a row of
-- licence_applications (type COO, agency MOIT); the certificate is the signed document the
-- agency issued for it. One application yields at most one certificate; certificates are
-- immutable once written.

CREATE SEQUENCE certificate_of_origin_seq;

CREATE TABLE certificates_of_origin (
    id             uuid PRIMARY KEY,
    reference      text NOT NULL UNIQUE,
    application_id uuid NOT NULL UNIQUE REFERENCES licence_applications (id),
    agency         text NOT NULL,
    exporter_id    text NOT NULL REFERENCES parties (id),
    export_country char(2) NOT NULL,
    import_country char(2) NOT NULL CHECK (import_country <> export_country),
    issue_date     date NOT NULL,
    document_id    uuid NOT NULL UNIQUE REFERENCES documents (id),
    signature      bytea NOT NULL CHECK (length(signature) > 0),
    -- the e-Form D sent to the import country's window in the issuing transaction, if any
    outbox_message uuid,
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX certificates_of_origin_exporter ON certificates_of_origin (exporter_id, id DESC);

CREATE TRIGGER certificates_of_origin_append_only BEFORE UPDATE OR DELETE
    ON certificates_of_origin FOR EACH ROW EXECUTE FUNCTION append_only();

-- A certificate exists only for an application that the same transaction moves to issued.
CREATE FUNCTION certificate_of_origin_needs_issued_application() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM licence_applications
                    WHERE id = NEW.application_id AND application_type = 'COO'
                      AND status = 'issued') THEN
        RAISE EXCEPTION 'certificate % needs an issued certificate-of-origin application',
            NEW.reference USING ERRCODE = 'NS409';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER certificates_of_origin_issued AFTER INSERT ON certificates_of_origin
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
    EXECUTE FUNCTION certificate_of_origin_needs_issued_application();
