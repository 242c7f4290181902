-- longcall schema, version 4: names can be reclaimed (issue 12, item 5).
-- A session's registerResponse gives it a reclaim key (random, like a
-- session token); reclaim_hash is its SHA-256, the key itself is never
-- stored. When the session EXPIRES (no poll for LONGCALL_SESSION_EXPIRY),
-- its name stays reserved for LONGCALL_NAME_GRACE seconds after `ended`
-- for a register that presents the key; a close clears the hash (the name
-- is free at once), and so does the next successful register of the name.
ALTER TABLE sessions ADD COLUMN reclaim_hash BLOB;
-- The reservations: ended sessions that still have a reclaim hash, looked
-- up by name when someone registers it. Live sessions are not in it.
CREATE INDEX sessions_reserved ON sessions(name, ended)
    WHERE reclaim_hash IS NOT NULL AND ended IS NOT NULL;
