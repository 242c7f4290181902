#!/usr/bin/env python3
"""Browser test: a name survives a network drop (issue 12, item 5). A page's
network goes away for longer than the session expiry; another page is told
the name is reserved; back online, the first page renews its session and
registers the name again with its reclaim key. Short expiry: POLL_MAX 4,
SESSION_EXPIRY 8."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, db_rows, ready, run_node  # noqa: E402

EXPIRY = 8
check = Checks()
if ready(check):
    env = {"LONGCALL_POLL_MAX": "4", "LONGCALL_POLL_TIMEOUT": "4", "LONGCALL_SESSION_EXPIRY": str(EXPIRY)}
    with Server(env=env) as srv:
        run_node(check, "reclaim.js", [f"http://127.0.0.1:{srv.port}", EXPIRY], timeout=300)
        rows = db_rows(srv, "SELECT end_reason, ended IS NULL FROM sessions WHERE name = 'dora' ORDER BY id")
        check("reclaim: the name's first session expired and the page's new session holds it",
              [tuple(r) for r in rows] == [("expired", 0), (None, 1)], repr(rows))
check.exit()
