#!/usr/bin/env python3
"""The backend as a plain CGI program (no FastCGI socket on fd 0): each
request is one process; a held poll in one process is woken by a send made
by another process."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import BIN, Checks, free_port  # noqa: E402

check = Checks()


def cgi(db, method, path, query="", body=b"", ctype="application/json", extra=None):
    env = {k: v for k, v in os.environ.items() if k.startswith(("ASAN", "UBSAN", "PATH"))}
    env.update({"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": method,
                "REQUEST_URI": path + ("?" + query if query else ""), "QUERY_STRING": query,
                "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": ctype,
                "LONGCALL_DB": db, "LONGCALL_POLL_MAX": "10", "LONGCALL_SESSION_EXPIRY": "30"})
    env.update(extra or {})
    p = subprocess.run([BIN], input=body, env=env, capture_output=True, timeout=30)
    head, _, payload = p.stdout.partition(b"\r\n\r\n")
    status = int(head.split(b" ")[1]) if head.startswith(b"Status:") else 0
    return status, head.decode(), json.loads(payload) if payload else None, p


def main():
    with tempfile.TemporaryDirectory(prefix="longcall-cgi-") as d:
        db = os.path.join(d, "cgi.db")
        st, head, s, p = cgi(db, "POST", "/rtc/session")
        check("CGI: session created", st == 200 and "sid" in s, repr(p.stdout[:200]))
        check("CGI: headers carry the JSON type and no-store",
              "Content-Type: application/json" in head and "Cache-Control: no-store" in head)
        a = s["sid"]
        st, _, b, _ = cgi(db, "POST", "/rtc/session")
        b = b["sid"]
        result = {}

        def held():
            t0 = time.time()
            result["poll"] = cgi(db, "GET", "/rtc/poll", f"sid={b}&after=0&timeout=8")
            result["took"] = time.time() - t0

        th = threading.Thread(target=held)
        th.start()
        time.sleep(1.0)
        st, _, ok, _ = cgi(db, "POST", "/rtc/send", f"sid={b}", b'{"id":"ping"}')
        check("CGI: send answered ok", st == 200 and ok == {"ok": True})
        th.join(20)
        st, _, got, _ = result.get("poll", (0, "", None, None))
        check("CGI: held poll in one process woken by a send from another",
              st == 200 and got and [m["id"] for m in got["messages"]] == ["pong"]
              and result["took"] < 7, repr(got))
        st, _, err, _ = cgi(db, "POST", "/rtc/send", f"sid={a}", b"{nope")
        check("CGI: malformed JSON gets a JSON 400", st == 400 and "error" in err)
        st, _, err, _ = cgi(db, "GET", "/rtc/poll", "sid=" + "x" * 43)
        check("CGI: unknown session gets a JSON 404", st == 404 and "error" in err)
        # PostgreSQL under CGI is refused (README "Which store"): every
        # request gets a JSON 503 and the log names the variable, and no
        # connection is tried (a listening socket of the test's counts them).
        lsock = socket.socket()
        lsock.bind(("127.0.0.1", free_port()))
        lsock.listen(16)
        lsock.settimeout(0.5)
        pg = "postgresql://longcall@127.0.0.1:%d/longcall" % lsock.getsockname()[1]
        wake = {"LONGCALL_WAKE_FILE": os.path.join(d, "pg.wake")}
        answers = [cgi(pg, m, p, q, extra=wake)
                   for m, p, q in (("POST", "/rtc/session", ""), ("GET", "/rtc/status", ""),
                                   ("GET", "/rtc/poll", "sid=" + "x" * 43))]
        try:
            lsock.accept()
            tried = True
        except socket.timeout:
            tried = False
        lsock.close()
        check("CGI on PostgreSQL: every request refused with a JSON 503 and Retry-After",
              all(st == 503 and isinstance(body, dict) and "Retry-After:" in head
                  for st, head, body, _ in answers), repr([a[:3] for a in answers]))
        why = answers[0][3].stderr.decode(errors="replace")
        check("CGI on PostgreSQL: the log names LONGCALL_DB and says to run FastCGI",
              "LONGCALL_DB" in why and "CGI" in why and "FastCGI" in why and "longcall@" not in why,
              why[-400:])
        check("CGI on PostgreSQL: no PostgreSQL connection tried", not tried)


try:
    main()
except Exception as e:
    check("CGI checks ran to the end", False, repr(e))
check.exit()
