#!/usr/bin/env python3
"""Browser test 2: reject, busy, unknown name, hang-up on either side, cancel."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, db_rows, ready, run_node  # noqa: E402

check = Checks()
if ready(check):
    with Server() as srv:
        run_node(check, "errors.js", [f"http://127.0.0.1:{srv.port}"], timeout=300)
        outcomes = [r[0] for r in db_rows(srv, "SELECT outcome FROM calls ORDER BY id")]
        check("errors: the server's call outcomes match (rejected, completed, completed, cancelled)",
              outcomes == ["rejected", "completed", "completed", "cancelled"], repr(outcomes))
check.exit()
