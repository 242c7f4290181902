#!/usr/bin/env python3
"""The library in a page: LongPollSocket as a WebSocket drop-in, session
renewal after a 404 (rtc.js registers again), the page's transport state,
and cross-origin use without a CORS preflight."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, free_port, ready, run_node  # noqa: E402
from cutproxy import CutProxy  # noqa: E402

check = Checks()
if ready(check):
    # CORS_ORIGINS=*: the page on 127.0.0.1 also talks to the server as
    # "localhost" (another origin), through a plain relay that counts methods.
    with Server(env={"LONGCALL_CORS_ORIGINS": "*"}) as srv:
        relay = CutProxy(free_port(), srv.port, cut=0, drop_every=0).start()
        try:
            run_node(check, "api.js", [f"http://127.0.0.1:{srv.port}", f"http://localhost:{relay.port}"],
                     timeout=240)
        finally:
            relay.stop()
        m = relay.stats["methods"]
        check(f"api: cross-origin, the library's requests are CORS-simple: no preflight ({m})",
              m.get("OPTIONS", 0) == 0 and m.get("POST", 0) >= 3 and m.get("GET", 0) >= 1, repr(m))
check.exit()
