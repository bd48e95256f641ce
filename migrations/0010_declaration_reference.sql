-- A declarant's own reference (Header/Reference, stored as `lrn`) identifies one declaration:
-- a second declaration of the same declarant with the same reference is refused (409
-- DECLARATION_REFERENCE_REUSED), and this index is what guarantees it.
--
-- Declarations stored before the rule may share a reference. They are kept as they are; every
-- one after the first (in arrival order) of a declarant's reference is marked with the first
-- one's id in `lrn_reuse_of`, and only unmarked declarations must be unique. A declaration
-- stored from now on is never marked (trigger below), so the mark records history only.
ALTER TABLE declarations ADD COLUMN lrn_reuse_of uuid REFERENCES declarations (id);

UPDATE declarations d
   SET lrn_reuse_of = f.first
  FROM (SELECT id, first_value(id) OVER (PARTITION BY declarant_id, lrn ORDER BY id) AS first
          FROM declarations) f
 WHERE d.id = f.id AND f.first <> d.id;

CREATE UNIQUE INDEX declarations_declarant_lrn ON declarations (declarant_id, lrn)
    WHERE lrn_reuse_of IS NULL;

CREATE FUNCTION declarations_lrn_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' AND NEW.lrn_reuse_of IS NOT NULL THEN
        RAISE EXCEPTION 'a new declaration cannot be marked as reusing a reference'
            USING ERRCODE = '23514';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.lrn IS DISTINCT FROM OLD.lrn
            OR NEW.declarant_id IS DISTINCT FROM OLD.declarant_id
            OR NEW.lrn_reuse_of IS DISTINCT FROM OLD.lrn_reuse_of) THEN
        RAISE EXCEPTION 'a declaration''s declarant and reference never change'
            USING ERRCODE = '42501';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER declarations_lrn_fixed BEFORE INSERT OR UPDATE OF lrn, declarant_id, lrn_reuse_of
    ON declarations FOR EACH ROW EXECUTE FUNCTION declarations_lrn_fixed();
