-- Reconciliation (docs/payments.md, "Reconciliation"): every run of the comparison between the
-- platform's daily settlement file and what the window recorded, kept for good; and the claim
-- that makes the daily job reconcile each day once, however many instances run it.

CREATE TABLE reconciliations (
    id                  uuid PRIMARY KEY,
    -- the local day the settlement file covers
    settlement_date     date NOT NULL,
    ran_at              timestamptz NOT NULL,
    -- who ran it: `payments` (the daily job), `cli`, or an administrator's party id
    actor               text NOT NULL CHECK (length(actor) BETWEEN 1 AND 200),
    -- `platform`: fetched from the platform and its signature verified; `file`: a file an
    -- operator gave, whose signature could not be checked
    source              text NOT NULL CHECK (source IN ('platform', 'file')),
    outcome             text NOT NULL CHECK (outcome IN ('matched', 'mismatches', 'failed')),
    -- why a failed run failed (the file could not be fetched, did not verify, did not parse)
    failure             text CHECK (failure IS NULL OR length(failure) BETWEEN 1 AND 2000),
    settled_payments    bigint NOT NULL DEFAULT 0 CHECK (settled_payments >= 0),
    settled_refunds     bigint NOT NULL DEFAULT 0 CHECK (settled_refunds >= 0),
    recorded_payments   bigint NOT NULL DEFAULT 0 CHECK (recorded_payments >= 0),
    recorded_refunds    bigint NOT NULL DEFAULT 0 CHECK (recorded_refunds >= 0),
    matched             bigint NOT NULL DEFAULT 0 CHECK (matched >= 0),
    -- đồng
    settled_paid_amount      bigint NOT NULL DEFAULT 0,
    settled_refunded_amount  bigint NOT NULL DEFAULT 0,
    recorded_paid_amount     bigint NOT NULL DEFAULT 0,
    recorded_refunded_amount bigint NOT NULL DEFAULT 0,
    mismatch_count      integer NOT NULL DEFAULT 0 CHECK (mismatch_count >= 0),
    -- [{kind, transaction_id, settled_reference, recorded_reference, settled_amount,
    --   recorded_amount, time}], as payments::reconcile::Mismatch serialises
    mismatches          jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(mismatches) = 'array'),
    -- SHA-256 of the file's exact bytes, when there was a file
    file_sha256         bytea CHECK (file_sha256 IS NULL OR length(file_sha256) = 32),
    CHECK ((outcome = 'failed') = (failure IS NOT NULL)),
    CHECK (mismatch_count = jsonb_array_length(mismatches)),
    CHECK ((outcome = 'matched') = (outcome <> 'failed' AND mismatch_count = 0))
);
CREATE INDEX reconciliations_recent ON reconciliations (ran_at DESC, id DESC);
CREATE INDEX reconciliations_date ON reconciliations (settlement_date, ran_at DESC);
-- A run is what it was: kept as recorded, never changed or removed.
CREATE TRIGGER reconciliations_append_only BEFORE UPDATE OR DELETE ON reconciliations
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- The daily job's claim on a day: one row per settlement date. An instance reconciles the day
-- only if it inserted the row, or took it over after the previous claim's lease ran out; a
-- successful run's claim never runs out ('infinity'), a failed run's is retried after a delay.
CREATE TABLE reconciliation_claims (
    settlement_date     date PRIMARY KEY,
    claimed_until       timestamptz NOT NULL,
    attempts            integer NOT NULL DEFAULT 1 CHECK (attempts >= 1),
    last_run            uuid REFERENCES reconciliations (id)
);
