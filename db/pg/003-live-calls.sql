-- longcall PostgreSQL schema, version 3: a session's live call found by
-- index alone, as db/009 for SQLite: store_pg.c P_CALL_LIVE takes max(id) over
-- the session's calls not ended, as caller and as callee; these partial
-- indexes hold only those, so a long call history no longer makes each of
-- the session's messages slower.
CREATE INDEX calls_live_caller ON calls(caller_sid, id) WHERE ended IS NULL;
CREATE INDEX calls_live_callee ON calls(callee_sid, id) WHERE ended IS NULL;
