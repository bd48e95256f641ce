-- Exchange with partner windows: the outbox of signed messages with its state machine, and the
-- messages received from partners, stored byte for byte and deduplicated on (sender, id).

CREATE TABLE outbox (
    id                  uuid PRIMARY KEY,
    -- the envelope's MessageId: fixed at enqueue, the same on every retry
    message_id          uuid NOT NULL UNIQUE,
    conversation_id     uuid NOT NULL,
    receiver            char(2) NOT NULL CHECK (receiver ~ '^[A-Z]{2}$'),
    document_type       text NOT NULL,
    function            text NOT NULL CHECK (function IN ('submit', 'amend', 'cancel', 'response')),
    reference           text NOT NULL,
    previous_reference  text,
    envelope            bytea NOT NULL,
    sha256              bytea NOT NULL CHECK (length(sha256) = 32),
    -- detached CMS over `envelope`, made once by the first worker that sends it
    signature           bytea,
    status              text NOT NULL DEFAULT 'pending' CHECK (status IN
                            ('pending', 'sending', 'retry_wait', 'delivered', 'rejected', 'dead_letter')),
    attempts            integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts        integer NOT NULL CHECK (max_attempts >= 1),
    available_at        timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    locked_until        timestamptz,
    locked_by           uuid,
    last_error          text,
    receipt             bytea,
    receipt_signature   bytea,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    delivered_at        timestamptz,
    -- a message counts as delivered or rejected only with the partner's signed receipt in hand
    CHECK (status NOT IN ('delivered', 'rejected') OR (receipt IS NOT NULL AND receipt_signature IS NOT NULL)),
    CHECK ((status = 'sending') = (locked_until IS NOT NULL AND locked_by IS NOT NULL))
);
CREATE INDEX outbox_ready ON outbox (available_at, id) WHERE status IN ('pending', 'retry_wait');
CREATE INDEX outbox_status ON outbox (status, id);
CREATE INDEX outbox_lease ON outbox (locked_until) WHERE status = 'sending';

-- The state machine, enforced here as well as in code: a failed message can never be marked
-- delivered, a delivered one never sent again, and only an operator's requeue revives a dead
-- letter.
CREATE FUNCTION outbox_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'outbox rows are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.message_id <> OLD.message_id OR NEW.envelope <> OLD.envelope OR NEW.sha256 <> OLD.sha256
       OR NEW.receiver <> OLD.receiver OR NEW.id <> OLD.id THEN
        RAISE EXCEPTION 'an outbox message is immutable once enqueued' USING ERRCODE = 'check_violation';
    END IF;
    IF OLD.signature IS NOT NULL AND NEW.signature IS DISTINCT FROM OLD.signature THEN
        RAISE EXCEPTION 'an outbox signature is made once' USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.status = OLD.status THEN
        IF NEW.status IN ('sending') THEN
            RETURN NEW;
        END IF;
        IF NEW.status IN ('delivered', 'rejected') AND NEW.receipt IS NOT DISTINCT FROM OLD.receipt THEN
            RETURN NEW;
        END IF;
        IF NEW.status IN ('pending', 'retry_wait', 'dead_letter')
           AND NEW.attempts = OLD.attempts AND NEW.receipt IS NOT DISTINCT FROM OLD.receipt THEN
            RETURN NEW;
        END IF;
        RAISE EXCEPTION 'outbox: % may not change in place', OLD.status USING ERRCODE = 'check_violation';
    END IF;
    IF (OLD.status, NEW.status) IN (
        ('pending', 'sending'),
        ('retry_wait', 'sending'),
        ('sending', 'delivered'),
        ('sending', 'rejected'),
        ('sending', 'retry_wait'),
        ('sending', 'dead_letter'),
        ('dead_letter', 'pending')) THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'outbox: transition % -> % is not allowed', OLD.status, NEW.status
        USING ERRCODE = 'check_violation';
END
$$;
CREATE TRIGGER outbox_state_machine BEFORE UPDATE OR DELETE ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_guard();

-- Every message a partner window delivered to us, exactly as received, with the receipt we
-- answered (so a redelivery gets the very same receipt back).
CREATE TABLE inbound_messages (
    id                  uuid PRIMARY KEY,
    sender              char(2) NOT NULL,
    message_id          uuid NOT NULL,
    conversation_id     uuid NOT NULL,
    document_type       text NOT NULL,
    function            text NOT NULL,
    reference           text NOT NULL,
    previous_reference  text,
    envelope            bytea NOT NULL,
    sha256              bytea NOT NULL CHECK (length(sha256) = 32),
    signature           bytea NOT NULL,
    signer_subject      text NOT NULL,
    receipt             bytea NOT NULL,
    receipt_signature   bytea NOT NULL,
    status              text NOT NULL DEFAULT 'received' CHECK (status IN ('received', 'answered')),
    received_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (sha256 = sha256(envelope)),
    UNIQUE (sender, message_id)
);
CREATE INDEX inbound_messages_type ON inbound_messages (document_type, id DESC);
CREATE INDEX inbound_messages_reference ON inbound_messages (reference);

CREATE FUNCTION inbound_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.status = 'received' AND NEW.status = 'answered'
       AND NEW.envelope = OLD.envelope AND NEW.signature = OLD.signature
       AND NEW.receipt = OLD.receipt AND NEW.receipt_signature = OLD.receipt_signature
       AND NEW.sender = OLD.sender AND NEW.message_id = OLD.message_id THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'inbound_messages are kept as received (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER inbound_messages_kept BEFORE UPDATE OR DELETE ON inbound_messages
    FOR EACH ROW EXECUTE FUNCTION inbound_guard();
