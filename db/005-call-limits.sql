-- longcall schema, version 5: calls bounded (issue 12, item 3a): a rate per
-- caller session, a rate and a cooldown per (caller, callee), and blocks.

-- call_tat: the "theoretical arrival time" of the session's next call
-- (GCRA, as list_tat in db/002; store_rate_allow in fcgi/store.c). NULL: no
-- call yet. In the session row, which the send writes anyway.
ALTER TABLE sessions ADD COLUMN call_tat INTEGER;

-- Calls of one caller session to one callee session in the last minute
-- (LONGCALL_CALL_PAIR_RATE): a range of this index.
CREATE INDEX calls_pair ON calls(caller_sid, callee_sid, placed);
-- Rings of a callee that ended without an answer (rejected, cancelled, no
-- answer), newest last: the cooldown (LONGCALL_CALL_COOLDOWN) looks at
-- those that ended within it, from the caller's session or another session
-- of its client address.
CREATE INDEX calls_unanswered ON calls(callee_sid, ended)
    WHERE answered IS NULL AND ended IS NOT NULL;

-- Callers a session blocked ("callResponse":"reject","block":true): their
-- session (caller_sid) and the name it called with (caller). At most
-- LONGCALL_MAX_BLOCKS per session (the oldest go); deleted with the
-- session, like its batch ids (they are no history).
CREATE TABLE blocks (
    session_id  INTEGER NOT NULL,        -- the callee who blocked
    caller_sid  INTEGER NOT NULL,
    caller      TEXT NOT NULL,
    created     INTEGER NOT NULL,
    PRIMARY KEY (session_id, caller_sid)
) WITHOUT ROWID;
