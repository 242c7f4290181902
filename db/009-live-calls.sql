-- longcall schema, version 9: a session's live call found by index alone
-- (issue 14). The lookup of the call a session is in (fcgi/store.c
-- S_CALL_LIVE: max(id) over the session's calls with ended IS NULL, as caller
-- and as callee) walked calls_caller / calls_callee over every call the
-- session ever made, reading each row for `ended`: a session with a long
-- call history made each of its messages slower, under the write lock that
-- every other session waits for (2,000 ended calls: 27 µs a lookup, the
-- largest cost of a call set-up in make bench). These hold only the calls
-- not ended, a handful per session: max(id) is the index's last entry.
CREATE INDEX calls_live_caller ON calls(caller_sid) WHERE ended IS NULL;
CREATE INDEX calls_live_callee ON calls(callee_sid) WHERE ended IS NULL;
