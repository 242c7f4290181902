-- longcall PostgreSQL schema, version 2: batch ids by age, as db/008 for
-- SQLite: the trim of a session's batch ids to its newest 64 (store_pg.c
-- P_BATCH_TRIM) steps back 64 entries from the newest instead of sorting
-- them all on every batch. batch is in the key so that ties on created
-- are ordered by the index too.
CREATE INDEX batches_age ON batches(session_id, created, batch);
