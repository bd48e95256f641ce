-- People log in with their party id and a password; systems keep bearer tokens. Only the
-- argon2id hash (PHC string: algorithm, parameters, salt and hash) is stored.
ALTER TABLE parties
    ADD COLUMN password_hash   text CHECK (password_hash IS NULL OR password_hash LIKE '$argon2id$%'),
    ADD COLUMN password_set_at timestamptz,
    ADD CONSTRAINT parties_password_set_when CHECK ((password_hash IS NULL) = (password_set_at IS NULL));
