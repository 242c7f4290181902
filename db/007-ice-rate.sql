-- longcall schema, version 7: the rate of the iceServers message (issue
-- 13): ice_tat is its GCRA clock per session, as list_tat is list's
-- (db/002; store_rate_allow in fcgi/store.c). NULL: none asked yet. Nothing
-- of a TURN credential or its secret is stored here or anywhere.
ALTER TABLE sessions ADD COLUMN ice_tat INTEGER;
