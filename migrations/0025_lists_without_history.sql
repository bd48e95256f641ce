-- A party's declarations, newest first, by walking its three links in id order.
--
-- `GET /api/v1/declarations` for an enterprise merges three index walks (as submitter, trader
-- and declarant), each from the page's cursor in id order, so a page costs its rows. The
-- declarant's index held the declarant alone, whose entries are not in id order: that walk
-- would sort all of the party's declarations for each page. The index is replaced, not added
-- to, so intake writes no more index entries than before.
DROP INDEX declarations_declarant;
CREATE INDEX declarations_declarant ON declarations (declarant_id, id DESC);
