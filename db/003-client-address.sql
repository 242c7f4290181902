-- longcall schema, version 3: the client address of each session, for the
-- per-address limits (README "Security"), and quick pruning of sessions
-- that never registered a name.

-- The address the session was created from (fcgi/addr.h: an IPv4 address
-- or an IPv6 /64); NULL for sessions made before this version.
ALTER TABLE sessions ADD COLUMN addr TEXT;
-- Sessions an address created in the last minute (and when the oldest of
-- them was), counted when it asks for another one.
CREATE INDEX sessions_addr_created ON sessions(addr, created) WHERE addr IS NOT NULL;
-- Its live sessions. Neither index is touched by a poll (last_seen).
CREATE INDEX sessions_addr_live ON sessions(addr) WHERE ended IS NULL AND addr IS NOT NULL;
-- Ended sessions that never registered a name: pruned an hour after they
-- end, not after the history retention.
CREATE INDEX sessions_unregistered_ended ON sessions(ended) WHERE ended IS NOT NULL AND name IS NULL;
