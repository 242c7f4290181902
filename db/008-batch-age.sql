-- longcall schema, version 8: batch ids by age (issue 14). Keeping a
-- session's newest STORE_BATCHES_KEPT ids (fcgi/store.c S_BATCH_TRIM) was a
-- NOT IN over the session's ids sorted by created on every batch -- a
-- quarter of the backend's time in a call set-up. With this index the trim
-- finds the 64th newest id by stepping back from the newest and deletes
-- what is older in one range.
CREATE INDEX batches_age ON batches(session_id, created);
