-- The payment platform simulator's own tables (`nsw paygate`), created at start under an
-- advisory lock. Not the window's migrations: the platform is another system with its own
-- database. Every invariant a payment relies on is a constraint here.

CREATE TABLE IF NOT EXISTS paygate_orders (
    order_id        text PRIMARY KEY,
    merchant_id     text NOT NULL,
    reference       text NOT NULL CHECK (reference ~ '^[A-Za-z0-9_-]{1,40}$'),
    amount          bigint NOT NULL CHECK (amount > 0),
    currency        text NOT NULL CHECK (currency = 'VND'),
    description     text NOT NULL,
    return_url      text NOT NULL,
    notify_url      text NOT NULL,
    expires_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- 'expired' is not stored: a pending order past expires_at reads as expired.
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'paid', 'cancelled', 'refunded')),
    -- The hidden token of the payer's page forms.
    pay_token       text NOT NULL,
    -- One payment per order, one order per payment.
    transaction_id  text UNIQUE,
    paid_at         timestamptz,
    cancelled_at    timestamptz,
    refunded_amount bigint NOT NULL DEFAULT 0
                    CHECK (refunded_amount >= 0 AND refunded_amount <= amount),
    UNIQUE (merchant_id, reference),
    CHECK ((status IN ('paid', 'refunded')) = (transaction_id IS NOT NULL AND paid_at IS NOT NULL)),
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    CHECK ((status = 'refunded') = (refunded_amount = amount))
);

CREATE TABLE IF NOT EXISTS paygate_refunds (
    refund_id        text PRIMARY KEY,
    merchant_id      text NOT NULL,
    refund_reference text NOT NULL CHECK (length(refund_reference) BETWEEN 1 AND 40),
    order_id         text NOT NULL REFERENCES paygate_orders (order_id),
    amount           bigint NOT NULL CHECK (amount > 0),
    reason           text NOT NULL,
    transaction_id   text NOT NULL UNIQUE,
    refunded_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (merchant_id, refund_reference)
);

CREATE INDEX IF NOT EXISTS paygate_orders_paid_at ON paygate_orders (merchant_id, paid_at)
    WHERE paid_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS paygate_refunds_refunded_at ON paygate_refunds (merchant_id, refunded_at);

-- The notifier's queue: one row per notification to send (two when the `duplicated` fault
-- was set), claimed with FOR UPDATE SKIP LOCKED and retried with back-off until a 2xx.
CREATE TABLE IF NOT EXISTS paygate_notifications (
    id               bigserial PRIMARY KEY,
    -- 'paid:<order_id>', 'cancelled:<order_id>' or 'refunded:<refund_id>': with `copy`, one
    -- row per event (copy 2 exists only for the `duplicated` fault).
    event_key        text NOT NULL,
    copy             smallint NOT NULL DEFAULT 1 CHECK (copy IN (1, 2)),
    kind             text NOT NULL CHECK (kind IN ('paid', 'cancelled', 'refunded')),
    merchant_id      text NOT NULL,
    reference        text NOT NULL,
    order_id         text NOT NULL REFERENCES paygate_orders (order_id),
    transaction_id   text NOT NULL,
    amount           bigint NOT NULL,
    refund_reference text,
    at               timestamptz NOT NULL,
    notify_url       text NOT NULL,
    -- 'bad_signature' or 'wrong_amount' when that fault was set at queueing.
    fault            text CHECK (fault IN ('bad_signature', 'wrong_amount')),
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'delivered', 'lost')),
    available_at     timestamptz NOT NULL DEFAULT now(),
    locked_until     timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    last_error       text,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (event_key, copy),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);

CREATE INDEX IF NOT EXISTS paygate_notifications_due ON paygate_notifications (available_at)
    WHERE status IN ('pending', 'sending');
