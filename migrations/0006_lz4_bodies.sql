-- Stored documents and exchanged envelopes are compressed with lz4 instead of the default pglz:
-- lossless like pglz, several times cheaper in CPU on every insert (pglz showed in load
-- profiles of intake). Only new rows are affected. A server built without lz4 keeps pglz.
DO $$
BEGIN
    ALTER TABLE documents ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN envelope SET COMPRESSION lz4;
    ALTER TABLE inbound_messages ALTER COLUMN envelope SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression not available; bodies stay pglz-compressed';
END
$$;
