#!/usr/bin/env python3
"""The library in a page: LongPollSocket as a WebSocket drop-in, session
renewal after a 404 (rtc.js registers again), the page's transport state."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, ready, run_node  # noqa: E402

check = Checks()
if ready(check):
    with Server() as srv:
        run_node(check, "api.js", [f"http://127.0.0.1:{srv.port}"], timeout=240)
check.exit()
