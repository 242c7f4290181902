#!/usr/bin/env python3
"""Browser test of TURN credentials (issue 13): the session's TURN entry and
ICE transport policy reach the page's RTCPeerConnection, and a credential
past half its life is refreshed before a call (turn.js). No TURN server
runs here: with policy "all" the call connects over host candidates; with
"relay" only the configuration is checked (media through coturn is the
later browser media tests' job)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, ready, run_node  # noqa: E402

TURN = {"LONGCALL_TURN_SECRET": "browser-turn-secret",
        # Nothing listens there: the relay candidates fail, host ones do not.
        "LONGCALL_TURN_URIS": "turn:127.0.0.1:9?transport=udp",
        "LONGCALL_TURN_TTL": "60"}

check = Checks()
if ready(check):
    for policy in ("all", "relay"):
        env = dict(TURN, LONGCALL_ICE_TRANSPORT_POLICY=policy)
        with Server(env=env) as srv:
            run_node(check, "turn.js", [f"http://127.0.0.1:{srv.port}", policy], timeout=240)
            log = srv.log_text()
            check("turn (%s): the TURN secret is in no log line" % policy,
                  TURN["LONGCALL_TURN_SECRET"] not in log)
check.exit()
