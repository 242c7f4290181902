#!/usr/bin/env python3
"""Busy database in the browser: two LongPollSocket clients in a call send
candidates while a sqlite3 shell holds the database's write lock for 10 s
(LONGCALL_BUSY_TIMEOUT=500 ms: their sends are answered 503 with
Retry-After); the library's retry delivers everything once the lock is
released, each message once and in order (busy.js). Here: the server stored
each candidate once."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, db_rows, ready, run_node  # noqa: E402

N = 20
check = Checks()
check.plan(7)
if ready(check):
    with Server(env={"LONGCALL_BUSY_TIMEOUT": "500"}) as srv:
        db = os.path.join(srv.state, "longcall.db")
        run_node(check, "busy.js", [f"http://127.0.0.1:{srv.port}", db, N], timeout=180)
        stored = dict(db_rows(srv, "SELECT sender, count(*) FROM messages WHERE type = "
                                   "'iceCandidate' GROUP BY sender"))
        check(f"busy: the server stored each of the {N} candidates of each side once ({stored})",
              stored == {"busy-a": N, "busy-b": N}, repr(stored))
check.exit()
