#!/usr/bin/env python3
"""Browser tests 1 and 6: a real call between two headless Chromium pages
served by the real lighttpd (with LONGCALL_ALLOWED_HOSTS, and the page's
Content-Security-Policy, which it must not violate); a screenshot into
tests/artifacts/."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import ARTIFACTS, Checks, Server, db_rows, ready, run_node  # noqa: E402

check = Checks()
if ready(check):
    # As `make run` runs it: only loopback names are answered (the entries
    # without the port, which the harness picks).
    with Server(env={"LONGCALL_ALLOWED_HOSTS": "127.0.0.1 localhost [::1]"}) as srv:
        for f in ("call.png", "call-phone.png"):
            try:
                os.unlink(os.path.join(ARTIFACTS, f))
            except FileNotFoundError:
                pass
        run_node(check, "call.js", [f"http://127.0.0.1:{srv.port}", ARTIFACTS], timeout=240)
        rows = db_rows(srv, "SELECT caller, callee, answered IS NOT NULL, outcome FROM calls")
        check("call: the server recorded the three calls (the first, then one without and "
              "one with exchanges), each answered and completed",
              rows == [("alice", "bob", 1, "completed")] * 3, repr(rows))
check.exit()
