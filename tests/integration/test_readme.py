#!/usr/bin/env python3
"""The README's sqlite3 queries run as printed against a database filled by
a real call through lighttpd, and the README's curl walk-through answers
what it says."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import ROOT, Checks, Server  # noqa: E402

check = Checks()


def send(srv, sid, msg):
    st, body = srv.json("POST", f"/rtc/send?sid={sid}", msg)
    assert st == 200, body


def main():
    readme = open(os.path.join(ROOT, "README.md")).read()
    queries = re.findall(r"```sql\n(.*?)```", readme, re.S)
    check("README shows at least five sqlite3 queries", len(queries) >= 5, str(len(queries)))
    with Server() as srv:
        sid = {}
        for n in ("alice", "bob"):
            st, s = srv.json("POST", "/rtc/session")
            sid[n] = s["sid"]
            send(srv, sid[n], {"id": "register", "name": n})
        send(srv, sid["alice"], {"id": "call", "to": "bob", "sdpOffer": "offer"})
        send(srv, sid["alice"], {"id": "onIceCandidate", "candidate": "a1"})
        send(srv, sid["bob"], {"id": "incomingCallResponse", "from": "alice",
                               "callResponse": "accept", "sdpOffer": "answer"})
        srv.json("GET", f"/rtc/poll?sid={sid['bob']}&after=0&timeout=0")
        st, got = srv.json("GET", f"/rtc/poll?sid={sid['bob']}&after=3&timeout=0")
        send(srv, sid["alice"], {"id": "stop"})
        db = os.path.join(srv.state, "longcall.db")
        for i, q in enumerate(queries):
            p = subprocess.run(["sqlite3", "-bail", db], input=q, capture_output=True, text=True,
                               timeout=30)
            first = q.strip().splitlines()[0][:50]
            check(f"README query {i + 1} runs ({first})", p.returncode == 0 and not p.stderr,
                  p.stderr.strip())
            if "FROM calls" in q and "LIMIT 20" in q:
                check("last-calls query shows the call with its outcome",
                      "alice|bob|" in p.stdout and "|completed|" in p.stdout, p.stdout)
            if "call_id = (SELECT max(id)" in q:
                check("trace query shows the offer, the candidate and the hang-up in order",
                      re.search(r"incomingCall.*iceCandidate.*callResponse.*stopCommunication",
                                p.stdout, re.S) is not None, p.stdout)
        # The README's curl walk-through (on a server where alice is free again).
        for n in sid:
            srv.json("POST", f"/rtc/close?sid={sid[n]}", "")
        script = re.search(r"```sh\nB=http://127.0.0.1:8080/rtc\n(.*?)```", readme, re.S)
        check("README has a curl walk-through", script is not None)
        if script:
            lines = [l for l in script.group(1).splitlines() if l and not l.startswith("#")]
            expected = [l[2:] for l in script.group(1).splitlines() if l.startswith("# ")]
            sh = f"B=http://127.0.0.1:{srv.port}/rtc\n" + "\n".join(
                l + "; echo" if l.startswith("curl") else l for l in lines)
            p = subprocess.run(["sh", "-c", sh], capture_output=True, text=True, timeout=60)
            # The reclaim key is random: the README writes it as KEY.
            out = [re.sub(r'"reclaim":"[A-Za-z0-9_-]{43}"', '"reclaim":"KEY"', l)
                   for l in p.stdout.splitlines() if l]
            check("README curl answers are as printed", out == expected,
                  f"got {out!r} expected {expected!r}")


try:
    main()
except Exception as e:  # a crash is a failure, never a pass
    check("README checks ran to the end", False, repr(e))
check.exit()
