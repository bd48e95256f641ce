-- Fees paid online (docs/payments.md): fee notices, orders at the payment platform, payments
-- applied exactly once, refunds, e-receipts, every notification received, and alerts.
--
-- The database holds what must never happen twice or be lost:
--   * one fee notice per application, a unique payment reference;
--   * a platform transaction is recorded once (UNIQUE transaction_id), and a notice has at most
--     one applied payment (a unique partial index); a payment that cannot be applied (the notice
--     was cancelled, or already paid) is still recorded, and owes a refund;
--   * one refund per payment, a unique refund reference, and a refund's transaction once;
--   * one e-receipt per applied payment;
--   * the state machines of notices, orders and refunds, in tables like the applications' one,
--     judged by guard_transition() (migrations 0002, 0011).

-- 1. Applications: an application with a fee waits for its payment before the agency sees it
--    as pending; unpaid after its due date, it is cancelled.
ALTER TABLE licence_applications DROP CONSTRAINT licence_applications_status_check;
ALTER TABLE licence_applications ADD CONSTRAINT licence_applications_status_check
    CHECK (status IN ('submitted', 'awaiting_payment', 'received', 'supplement_requested',
                      'supplemented', 'under_review', 'issued', 'refused', 'withdrawn',
                      'cancelled'));

-- The table of allowed moves is append-only (a statement trigger); it steps aside for this one
-- insert, as the outbox guard did in 0011.
ALTER TABLE licence_application_transitions DISABLE TRIGGER licence_application_transitions_fixed;
INSERT INTO licence_application_transitions (from_status, to_status) VALUES
    ('submitted', 'awaiting_payment'),
    ('awaiting_payment', 'received'),
    ('awaiting_payment', 'withdrawn'),
    ('awaiting_payment', 'cancelled');
ALTER TABLE licence_application_transitions ENABLE TRIGGER licence_application_transitions_fixed;

-- 2. Fee notices.
CREATE TABLE fee_notice_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO fee_notice_transitions (from_status, to_status) VALUES
    ('due', 'paid'),
    ('due', 'cancelled'),
    ('paid', 'refund_requested'),
    ('refund_requested', 'refunded');
CREATE TRIGGER fee_notice_transitions_fixed BEFORE INSERT OR UPDATE OR DELETE
    ON fee_notice_transitions FOR EACH STATEMENT EXECUTE FUNCTION append_only();

CREATE SEQUENCE fee_notice_seq;

CREATE TABLE fee_notices (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL UNIQUE REFERENCES licence_applications (id),
    -- what the payer sees and quotes: FEE-2026-000001
    reference       text NOT NULL UNIQUE
                    CHECK (reference ~ '^[A-Za-z0-9_-]{1,40}$'),
    applicant_id    text NOT NULL REFERENCES parties (id),
    agency          text NOT NULL,
    agency_name     text NOT NULL,
    procedure_code  text NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL CHECK (currency = 'VND'),
    due_date        date NOT NULL,
    status          text NOT NULL CHECK (status IN ('due', 'paid', 'cancelled',
                        'refund_requested', 'refunded')),
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    paid_at         timestamptz,
    CHECK ((status IN ('paid', 'refund_requested', 'refunded')) = (paid_at IS NOT NULL))
);
CREATE INDEX fee_notices_applicant ON fee_notices (applicant_id, id DESC);
CREATE INDEX fee_notices_due ON fee_notices (due_date) WHERE status = 'due';

CREATE TRIGGER fee_notices_state_machine BEFORE UPDATE OF status ON fee_notices
    FOR EACH ROW EXECUTE FUNCTION guard_transition('fee_notice_transitions');

-- A notice starts due, and what it asks for never changes.
CREATE FUNCTION fee_notice_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        IF NEW.status <> 'due' THEN
            RAISE EXCEPTION 'a fee notice starts as due, not %', NEW.status USING ERRCODE = 'NS409';
        END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'fee notices are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF (NEW.id, NEW.application_id, NEW.reference, NEW.applicant_id, NEW.agency, NEW.amount,
        NEW.currency, NEW.due_date, NEW.created_at)
       IS DISTINCT FROM
       (OLD.id, OLD.application_id, OLD.reference, OLD.applicant_id, OLD.agency, OLD.amount,
        OLD.currency, OLD.due_date, OLD.created_at) THEN
        RAISE EXCEPTION 'a fee notice asks for what it asked for when issued'
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER fee_notices_guard BEFORE INSERT OR UPDATE OR DELETE ON fee_notices
    FOR EACH ROW EXECUTE FUNCTION fee_notice_guard();

-- 3. Orders at the platform: a notice may have several over time (the payer cancelled one,
--    or one expired), each under its own platform reference (the notice's reference for the
--    first, `<reference>-<attempt>` after); the payer always quotes the notice's reference.
CREATE TABLE payment_order_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
-- The platform is the authority on an order: a payment it reports wins over a cancellation or
-- an expiry the window recorded before.
INSERT INTO payment_order_transitions (from_status, to_status) VALUES
    ('pending', 'paid'),
    ('pending', 'cancelled'),
    ('pending', 'expired'),
    ('cancelled', 'paid'),
    ('expired', 'paid'),
    ('paid', 'refunded');
CREATE TRIGGER payment_order_transitions_fixed BEFORE INSERT OR UPDATE OR DELETE
    ON payment_order_transitions FOR EACH STATEMENT EXECUTE FUNCTION append_only();

CREATE TABLE payment_orders (
    id                  uuid PRIMARY KEY,
    notice_id           uuid NOT NULL REFERENCES fee_notices (id),
    attempt             integer NOT NULL CHECK (attempt >= 1),
    platform_reference  text NOT NULL UNIQUE
                        CHECK (platform_reference ~ '^[A-Za-z0-9_-]{1,40}$'),
    -- the platform's id of the order and its payer's page
    order_id            text NOT NULL UNIQUE,
    pay_url             text NOT NULL,
    amount              bigint NOT NULL CHECK (amount > 0),
    expires_at          timestamptz NOT NULL,
    -- the status last known from the platform (answer, notification or status query)
    status              text NOT NULL CHECK (status IN ('pending', 'paid', 'cancelled',
                            'expired', 'refunded')),
    transaction_id      text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    last_queried_at     timestamptz,
    UNIQUE (notice_id, attempt)
);
CREATE INDEX payment_orders_pending ON payment_orders (created_at) WHERE status = 'pending';
CREATE TRIGGER payment_orders_state_machine BEFORE UPDATE OF status ON payment_orders
    FOR EACH ROW EXECUTE FUNCTION guard_transition('payment_order_transitions');

-- 4. Payments: the platform's transactions, each recorded once. `disposition` says what the
--    window did with it: `applied` (the notice is paid by it; at most one per notice) or
--    `refund_due` (it came for a notice that was cancelled or already paid: kept, alerted,
--    refunded).
CREATE TABLE payments (
    id                  uuid PRIMARY KEY,
    notice_id           uuid NOT NULL REFERENCES fee_notices (id),
    order_id            uuid NOT NULL REFERENCES payment_orders (id),
    transaction_id      text NOT NULL UNIQUE CHECK (length(transaction_id) BETWEEN 1 AND 200),
    amount              bigint NOT NULL CHECK (amount > 0),
    currency            text NOT NULL CHECK (currency = 'VND'),
    -- when the platform took the money; recorded_at is when the window learnt it
    paid_at             timestamptz NOT NULL,
    recorded_at         timestamptz NOT NULL,
    -- how the window learnt it: a signed notification or a signed status answer
    source              text NOT NULL CHECK (source IN ('notification', 'status_query')),
    disposition         text NOT NULL CHECK (disposition IN ('applied', 'refund_due'))
);
CREATE UNIQUE INDEX payments_one_applied_per_notice ON payments (notice_id)
    WHERE disposition = 'applied';
CREATE INDEX payments_paid_at ON payments (paid_at);
CREATE TRIGGER payments_append_only BEFORE UPDATE OR DELETE ON payments
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- 5. Refunds: one per payment, a durable request (a row, sent and retried by the payments job)
--    until the platform reports it paid back.
CREATE TABLE refund_transitions (
    from_status text NOT NULL,
    to_status   text NOT NULL,
    PRIMARY KEY (from_status, to_status)
);
INSERT INTO refund_transitions (from_status, to_status) VALUES
    ('requested', 'accepted'),
    ('requested', 'refunded'),
    ('accepted', 'refunded');
CREATE TRIGGER refund_transitions_fixed BEFORE INSERT OR UPDATE OR DELETE
    ON refund_transitions FOR EACH STATEMENT EXECUTE FUNCTION append_only();

CREATE TABLE refunds (
    id                  uuid PRIMARY KEY,
    payment_id          uuid NOT NULL UNIQUE REFERENCES payments (id),
    notice_id           uuid NOT NULL REFERENCES fee_notices (id),
    -- the paid order's platform reference + `-R`
    refund_reference    text NOT NULL UNIQUE
                        CHECK (refund_reference ~ '^[A-Za-z0-9_-]{1,40}$'),
    amount              bigint NOT NULL CHECK (amount > 0),
    reason              text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    status              text NOT NULL CHECK (status IN ('requested', 'accepted', 'refunded')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at     timestamptz NOT NULL,
    last_error          text,
    -- the refund's own transaction at the platform, from its answer to the request (its
    -- notification names the refunded payment's transaction instead); a refund completed by
    -- the notification alone learns it when the request is sent again (the platform answers a
    -- repeated refund reference with the refund it has)
    transaction_id      text UNIQUE,
    requested_at        timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    refunded_at         timestamptz,
    CHECK ((status = 'refunded') = (refunded_at IS NOT NULL)),
    CHECK (transaction_id IS NULL OR status = 'refunded')
);
CREATE INDEX refunds_due ON refunds (next_attempt_at)
    WHERE status = 'requested' OR (status = 'refunded' AND transaction_id IS NULL);
CREATE INDEX refunds_refunded_at ON refunds (refunded_at) WHERE status = 'refunded';
CREATE TRIGGER refunds_state_machine BEFORE UPDATE OF status ON refunds
    FOR EACH ROW EXECUTE FUNCTION guard_transition('refund_transitions');

-- 6. E-receipts: one per applied payment, the signed document kept in `documents`.
CREATE SEQUENCE e_receipt_seq;
CREATE TABLE e_receipts (
    id              uuid PRIMARY KEY,
    number          text NOT NULL UNIQUE,
    notice_id       uuid NOT NULL UNIQUE REFERENCES fee_notices (id),
    payment_id      uuid NOT NULL UNIQUE REFERENCES payments (id),
    document_id     uuid NOT NULL UNIQUE REFERENCES documents (id),
    -- detached CMS (DER) over the document's bytes, by the window's receipt key
    signature       bytea NOT NULL,
    issued_at       timestamptz NOT NULL
);
CREATE TRIGGER e_receipts_append_only BEFORE UPDATE OR DELETE ON e_receipts
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- 7. Every notification received, with its exact bytes, whatever became of it.
CREATE TABLE payment_notifications (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL,
    body            bytea NOT NULL,
    body_sha256     bytea NOT NULL CHECK (length(body_sha256) = 32),
    signature       text,
    key_id          text,
    verified        boolean NOT NULL,
    -- the answer's code: ACKNOWLEDGED, ALREADY_APPLIED or the problem's code
    outcome         text NOT NULL,
    http_status     integer NOT NULL,
    reference       text,
    transaction_id  text
);
CREATE INDEX payment_notifications_reference ON payment_notifications (reference);
CREATE TRIGGER payment_notifications_append_only BEFORE UPDATE OR DELETE ON payment_notifications
    FOR EACH ROW EXECUTE FUNCTION append_only();

-- 8. Alerts for the operator: what the platform sent that the window refused, and payments that
--    came when they should not have. One row per kind, reference and transaction; a repeat
--    (the platform retries what is refused) counts on it.
CREATE TABLE payment_alerts (
    id              bigserial PRIMARY KEY,
    kind            text NOT NULL,
    reference       text NOT NULL DEFAULT '',
    transaction_id  text NOT NULL DEFAULT '',
    detail          text NOT NULL,
    body_sha256     bytea CHECK (body_sha256 IS NULL OR length(body_sha256) = 32),
    first_at        timestamptz NOT NULL,
    last_at         timestamptz NOT NULL,
    occurrences     integer NOT NULL DEFAULT 1 CHECK (occurrences >= 1),
    UNIQUE (kind, reference, transaction_id)
);
