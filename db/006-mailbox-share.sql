-- longcall schema, version 6: one sender's share of a mailbox (issue 12,
-- item 3b). sender_sid is the session that sent a relayed message; NULL
-- for the server's messages and for replies to the recipient itself.
-- store_enqueue counts a sender's unacknowledged messages in a mailbox
-- (LONGCALL_MAILBOX_SHARE) with a range scan of UNIQUE(session_id, seq)
-- over seq > acked, only when the mailbox holds at least a share at all:
-- no index, so no extra page write per relayed message. The sender's name
-- (column sender) would not do: a session may register another name.
--
-- The table is rebuilt (once, at this migration) so that sender_sid comes
-- before body: a column added at the end would sit behind the body, and
-- reading it from a row whose body spills onto overflow pages (up to
-- LONGCALL_MAX_BODY, 64 pages of 1 KiB) means walking them all -- up to
-- quota x 64 page reads per counted send, inside the write lock. Before
-- the body it is in the row's first page. (A later migration that adds a
-- column to messages must come after this one.)
CREATE TABLE messages_new (
    id          INTEGER PRIMARY KEY,
    session_id  INTEGER NOT NULL REFERENCES sessions(id),  -- whose mailbox
    seq         INTEGER NOT NULL,        -- position in that mailbox, from 1
    sender_sid  INTEGER,                 -- the sending session of a relayed message
    sender      TEXT,                    -- sender's registered name; NULL = the server
    recipient   TEXT,                    -- recipient's registered name at the time, if any
    type        TEXT NOT NULL,           -- the message id: incomingCall, iceCandidate, ...
    body        TEXT NOT NULL,           -- the JSON object as delivered (without seq)
    call_id     INTEGER REFERENCES calls(id),
    created     INTEGER NOT NULL,
    delivered   INTEGER,                 -- when the recipient acknowledged it
    transient   INTEGER,                 -- 1: a reply without user content (db/002)
    UNIQUE (session_id, seq)
);
INSERT INTO messages_new(id, session_id, seq, sender_sid, sender, recipient, type, body, call_id,
                         created, delivered, transient)
    SELECT id, session_id, seq, NULL, sender, recipient, type, body, call_id, created, delivered,
           transient
    FROM messages;
DROP TABLE messages;
ALTER TABLE messages_new RENAME TO messages;
