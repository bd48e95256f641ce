-- Signatures and receipts are compressed with lz4, like the envelopes beside them (0006).
--
-- A row of the outbox or of the received messages holds an envelope, a CMS signature, a
-- receipt and the receipt's signature: past PostgreSQL's 2 KB threshold, so every insert and
-- every status change that adds a receipt tried pglz on them, and signatures barely compress.
-- pglz was 1.3% of all CPU in a profile of `nsw loadtest --exchange` (both windows and
-- PostgreSQL), lz4 0.4% after this. Lossless; new values only. A server built without lz4
-- keeps pglz.
DO $$
BEGIN
    ALTER TABLE outbox ALTER COLUMN signature SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN receipt SET COMPRESSION lz4;
    ALTER TABLE outbox ALTER COLUMN receipt_signature SET COMPRESSION lz4;
    ALTER TABLE inbound_messages ALTER COLUMN signature SET COMPRESSION lz4;
    ALTER TABLE inbound_messages ALTER COLUMN receipt SET COMPRESSION lz4;
    ALTER TABLE inbound_messages ALTER COLUMN receipt_signature SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN
    RAISE NOTICE 'lz4 compression not available; signatures and receipts stay pglz-compressed';
END
$$;
