#!/usr/bin/env python3
"""The library in a page: LongPollSocket as a WebSocket drop-in, session
renewal after a 404 (rtc.js registers again), the page's transport state,
and cross-origin use without a CORS preflight."""
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import ROOT, Checks, Server, free_port, ready, run_node  # noqa: E402
from cutproxy import CutProxy  # noqa: E402

check = Checks()
if ready(check):
    # CORS_ORIGINS=*: the page on 127.0.0.1 also talks to the server as
    # "localhost" (another origin), through a plain relay that counts methods.
    # The page's Content-Security-Policy must allow that origin: as README
    # "Security" tells an operator, it is added to connect-src (here in a
    # copy of the shipped lighttpd.conf).
    rport = free_port()
    with open(os.path.join(ROOT, "conf", "lighttpd.conf")) as f:
        text = f.read()
    shipped = "connect-src 'self';"
    check("api: the shipped lighttpd.conf has connect-src 'self'", shipped in text)
    tmp = tempfile.mkdtemp(prefix="longcall-api-conf-")
    conf = os.path.join(tmp, "lighttpd.conf")
    with open(conf, "w") as f:
        f.write(text.replace(shipped, "connect-src 'self' http://localhost:%d;" % rport))
    try:
        with Server(env={"LONGCALL_CORS_ORIGINS": "*"}, conf=conf) as srv:
            relay = CutProxy(rport, srv.port, cut=0, drop_every=0).start()
            try:
                run_node(check, "api.js", [f"http://127.0.0.1:{srv.port}", f"http://localhost:{relay.port}"],
                         timeout=240)
            finally:
                relay.stop()
            m = relay.stats["methods"]
            check(f"api: cross-origin, the library's requests are CORS-simple: no preflight ({m})",
                  m.get("OPTIONS", 0) == 0 and m.get("POST", 0) >= 3 and
                  set(m) <= {"GET", "POST"}, repr(m))  # sends and exchanges are POSTs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
check.exit()
