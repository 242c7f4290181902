-- longcall schema, version 2: `list` bounded (issue 12): its rate per
-- session, and replies without user content not kept as history.

-- list_tat is the "theoretical arrival time" of the session's next list
-- (GCRA, store_rate_allow in fcgi/store.c): a list is allowed while
-- list_tat - now stays within the burst, and moves list_tat one interval
-- on. NULL: no list yet. It lives in the session row, which every send
-- writes anyway (next_seq), so the rate holds across backend processes
-- and costs no extra page.
ALTER TABLE sessions ADD COLUMN list_tat INTEGER;

-- 1 for a reply to the sender itself that carries no user content
-- (listResponse, pong, registerResponse, error); NULL for every other
-- message. Such a row is deleted once its recipient acknowledges it (the
-- same transaction that marks the others delivered), or when its session
-- ends undelivered (nobody can fetch it then): it is delivered exactly
-- once, in order, like any other, and then leaves no history.
ALTER TABLE messages ADD COLUMN transient INTEGER;
