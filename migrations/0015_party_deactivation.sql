-- The operator console: a party can be deactivated (its dossiers stay; its tokens stop
-- working and its portal sessions end at once), and a session ends for two more reasons:
-- the party was deactivated, or its access was revoked by an operator.
ALTER TABLE parties ADD COLUMN deactivated_at timestamptz;

ALTER TABLE portal_sessions DROP CONSTRAINT portal_sessions_end_reason_check;
ALTER TABLE portal_sessions ADD CONSTRAINT portal_sessions_end_reason_check
    CHECK (end_reason IN ('logout', 'idle', 'replaced', 'deactivated', 'revoked'));
ALTER TABLE portal_sessions ADD CONSTRAINT portal_sessions_ended_with_reason
    CHECK ((ended_at IS NULL) = (end_reason IS NULL));

-- The console searches outbox messages by partner and date, inbound ones by sender and date.
CREATE INDEX outbox_receiver ON outbox (receiver, created_at DESC);
CREATE INDEX inbound_messages_sender ON inbound_messages (sender, received_at DESC);
