-- The web portal: people's sessions, failed log-ins (for throttling), and the address a
-- party's documents carry (data supplied once: the licence-application form takes it from here).

ALTER TABLE parties
    ADD COLUMN street    text CHECK (street IS NULL OR length(street) BETWEEN 1 AND 200),
    ADD COLUMN city      text CHECK (city IS NULL OR length(city) BETWEEN 1 AND 100),
    ADD COLUMN post_code text CHECK (post_code IS NULL OR length(post_code) BETWEEN 1 AND 20),
    ADD COLUMN country   text CHECK (country IS NULL OR country ~ '^[A-Z]{2}$');

-- A session is found by the SHA-256 of the cookie's secret; the secret itself is never stored.
-- A log-in always creates a new row (a session id known before log-in is never promoted), a
-- log-out ends it, and a session idle longer than the configured time is refused and ended.
CREATE TABLE portal_sessions (
    id_hash    bytea PRIMARY KEY CHECK (length(id_hash) = 32),
    party_id   text NOT NULL REFERENCES parties (id),
    csrf       text NOT NULL CHECK (length(csrf) >= 32),
    address    text,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now(),
    ended_at   timestamptz,
    end_reason text CHECK (end_reason IN ('logout', 'idle', 'replaced'))
);
CREATE INDEX portal_sessions_party ON portal_sessions (party_id) WHERE ended_at IS NULL;

-- Failed log-ins, per claimed party id and per client address, counted over a window.
CREATE TABLE portal_login_failures (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    party_id text NOT NULL,
    address  text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX portal_login_failures_party ON portal_login_failures (party_id, at);
CREATE INDEX portal_login_failures_address ON portal_login_failures (address, at);
