-- longcall schema, version 10: batch ids without an index by age (issue 14).
-- Each batch inserted one id and the trim (db/008) deleted the oldest on
-- every batch: the id table's page and the age index's page for the
-- insert, the same two for the delete -- 3.7 of the 8.8 pages a relayed
-- message wrote to the WAL (and the checkpoint copied back). A session's
-- ids are now trimmed once STORE_BATCHES_SLACK (32) beyond
-- STORE_BATCHES_KEPT (64) have accumulated (fcgi/store.c
-- store_batch_mark), which sorts at most 97 rows without an index: one
-- insert page per batch. The session row counts its ids since the last
-- trim (batch_count): counting the rows instead cost more than the trim
-- it replaced. A session live across this upgrade starts at 0 with up to
-- 64 ids: its first trim comes up to 64 batches later, once.
DROP INDEX batches_age;
ALTER TABLE sessions ADD COLUMN batch_count INTEGER NOT NULL DEFAULT 0;
