-- longcall schema, version 1.
-- Every file db/NNN-*.sql is one migration; the backend applies, in one
-- transaction each, those whose number is above PRAGMA user_version, then
-- sets user_version to that number. Times are Unix epoch milliseconds
-- (query with datetime(x/1000, 'unixepoch')).

-- One row per transport session (POST /rtc/session). The session token
-- itself is never stored: token_hash is its SHA-256, cleared when the session
-- ends, so nothing in this database can be used to act as a user.
CREATE TABLE sessions (
    id          INTEGER PRIMARY KEY,
    token_hash  BLOB UNIQUE,             -- SHA-256 of the sid; NULL once ended
    name        TEXT,                    -- registered name, kept for history
    created     INTEGER NOT NULL,
    last_seen   INTEGER NOT NULL,        -- start of the latest poll (expiry clock)
    next_seq    INTEGER NOT NULL DEFAULT 0,  -- seq of the last message queued for it
    acked       INTEGER NOT NULL DEFAULT 0,  -- every seq <= acked was delivered
    poll_gen    INTEGER NOT NULL DEFAULT 0,  -- bumped by each poll; an older held poll yields
    ended       INTEGER,                 -- NULL while live
    end_reason  TEXT                     -- 'closed' or 'expired'
);
-- A name belongs to at most one live session; ended sessions keep theirs.
CREATE UNIQUE INDEX sessions_live_name ON sessions(name) WHERE ended IS NULL AND name IS NOT NULL;
CREATE INDEX sessions_live_seen ON sessions(last_seen) WHERE ended IS NULL;
CREATE INDEX sessions_ended ON sessions(ended) WHERE ended IS NOT NULL;

-- One row per call attempt.
CREATE TABLE calls (
    id          INTEGER PRIMARY KEY,
    caller_sid  INTEGER NOT NULL REFERENCES sessions(id),
    callee_sid  INTEGER NOT NULL REFERENCES sessions(id),
    caller      TEXT NOT NULL,
    callee      TEXT NOT NULL,
    placed      INTEGER NOT NULL,
    answered    INTEGER,                 -- when the callee accepted
    ended       INTEGER,                 -- NULL while ringing or in progress
    outcome     TEXT                     -- completed, rejected, no answer, cancelled, caller left, callee left
);
-- Calls are written once per call, not per message: index freely.
CREATE INDEX calls_caller ON calls(caller_sid);
CREATE INDEX calls_callee ON calls(callee_sid);
CREATE INDEX calls_ringing ON calls(placed) WHERE ended IS NULL AND answered IS NULL;
CREATE INDEX calls_ended ON calls(ended) WHERE ended IS NOT NULL;

-- Every message the server put in a mailbox, in mailbox order (seq).
CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),  -- whose mailbox
    seq         INTEGER NOT NULL,        -- position in that mailbox, from 1
    sender      TEXT,                    -- sender's registered name; NULL = the server
    recipient   TEXT,                    -- recipient's registered name at the time, if any
    type        TEXT NOT NULL,           -- the message id: incomingCall, iceCandidate, ...
    body        TEXT NOT NULL,           -- the JSON object as delivered (without seq)
    call_id     INTEGER REFERENCES calls(id),
    created     INTEGER NOT NULL,
    delivered   INTEGER,                 -- when the recipient acknowledged it
    UNIQUE (session_id, seq)
);
-- No index but (session_id, seq): each one would cost every relayed message
-- a page write. Pruning walks messages in id order (ids grow with time);
-- a call's trace (call_id = ?) is a scan, fine for an operator's query.

-- Batch ids already applied, so that a retried send is applied once.
-- Deleted with the session (they are no history).
CREATE TABLE batches (
    session_id  INTEGER NOT NULL,
    batch       TEXT NOT NULL,
    created     INTEGER NOT NULL,
    PRIMARY KEY (session_id, batch)
) WITHOUT ROWID;
