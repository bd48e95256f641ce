-- The audit sealer links a pass's entries with one UPDATE instead of one per entry: the chain
-- is still computed in order, entry by entry, exactly as before (same canonical bytes, same
-- SHA-256 links, same advisory lock), but written by a single statement, so a pass of n
-- entries costs one statement's planning and execution rather than n. Under load every state
-- change leaves an entry, and the per-entry UPDATEs were a fixed share of the database's work.

CREATE OR REPLACE FUNCTION audit_seal(batch integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    prev bytea;
    pos bigint;
    r record;
    h bytea;
    ids bigint[] := '{}';
    positions bigint[] := '{}';
    prevs bytea[] := '{}';
    hashes bytea[] := '{}';
BEGIN
    -- One sealer at a time, whichever instance runs it.
    PERFORM pg_advisory_xact_lock(4242001);
    SELECT a.hash, a.chain_pos INTO prev, pos
      FROM audit_log a WHERE a.chain_pos IS NOT NULL ORDER BY a.chain_pos DESC LIMIT 1;
    IF pos IS NULL THEN
        pos := 0;
        prev := decode(repeat('00', 32), 'hex');
    END IF;
    FOR r IN SELECT a.id, audit_canonical(a) AS canonical
               FROM audit_log a WHERE a.hash IS NULL ORDER BY a.id LIMIT batch LOOP
        pos := pos + 1;
        h := sha256(prev || r.canonical);
        ids := ids || r.id;
        positions := positions || pos;
        prevs := prevs || prev;
        hashes := hashes || h;
        prev := h;
    END LOOP;
    IF cardinality(ids) > 0 THEN
        UPDATE audit_log a SET chain_pos = s.pos, prev_hash = s.prev, hash = s.hash
          FROM unnest(ids, positions, prevs, hashes) AS s(id, pos, prev, hash)
         WHERE a.id = s.id;
    END IF;
    RETURN cardinality(ids);
END
$$;
