#!/usr/bin/env python3
"""Browser test 3: the callee's tab closes during a call (with its close
beacon, then without a word); the caller is told within the session expiry
and the name is free again. Short expiry: POLL_MAX 4, SESSION_EXPIRY 8."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, db_rows, ready, run_node  # noqa: E402

EXPIRY = 8
check = Checks()
if ready(check):
    # NAME_GRACE 0: a name freed by expiry is free at once, as this test
    # wants it for the crashed tab's name (the reservation for the crashed
    # tab's reclaim key is test_reclaim.py's).
    env = {"LONGCALL_POLL_MAX": "4", "LONGCALL_POLL_TIMEOUT": "4", "LONGCALL_SESSION_EXPIRY": str(EXPIRY),
           "LONGCALL_NAME_GRACE": "0"}
    with Server(env=env) as srv:
        run_node(check, "close.js", [f"http://127.0.0.1:{srv.port}", EXPIRY], timeout=300)
        # The first session that held each name (the second is the page
        # that took the name over).
        rows = dict(db_rows(srv, "SELECT name, end_reason FROM sessions WHERE id IN "
                                 "(SELECT min(id) FROM sessions WHERE name IN ('bob', 'carol') GROUP BY name)"))
        check("close: the tab that closed normally ended its session with the beacon (closed)",
              rows.get("bob") == "closed", repr(rows))
        check("close: the tab that died was expired by the server", rows.get("carol") == "expired", repr(rows))
        out = [r[0] for r in db_rows(srv, "SELECT outcome FROM calls WHERE callee IN ('bob', 'carol') ORDER BY id")]
        check("close: the calls ended as 'callee left', then completed with the name's new holder",
              out == ["callee left", "completed", "callee left", "completed"], repr(out))
check.exit()
