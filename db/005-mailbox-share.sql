-- longcall schema, version 5: one sender's share of a mailbox (issue 12,
-- item 3b). sender_sid is the session that sent a relayed message; NULL
-- for the server's messages and for replies to the recipient itself.
-- store_enqueue counts a sender's unacknowledged messages in a mailbox
-- (LONGCALL_MAILBOX_SHARE) with a range scan of UNIQUE(session_id, seq)
-- over seq > acked, only when the mailbox holds at least a share at all:
-- no index, so no extra page write per relayed message. The sender's name
-- (column sender) would not do: a session may register another name.
ALTER TABLE messages ADD COLUMN sender_sid INTEGER;
