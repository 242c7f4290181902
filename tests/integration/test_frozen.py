#!/usr/bin/env python3
"""Frozen backend: during a call, with a poll held for each party, every
backend process is stopped (SIGSTOP) for 10 s and then continued (SIGCONT).
Meanwhile each party sends a candidate (one attempt, observed) and asks
/rtc/status. Afterwards each client keeps the contract (a send that was not
answered ok is sent again with its batch id; polls acknowledge with
after=): nothing is lost or duplicated, the held polls were answered (or
failed and were renewed), and the call goes on (candidates both ways, stop).

Run behind the front end of LONGCALL_TEST_SERVER (default lighttpd, with
max-procs 2; nginx and Apache with mod_proxy_fcgi with spawn-fcgi -F 2;
mod_fcgid with the processes it starts); FROZEN_SERVERS="lighttpd nginx"
runs several in one go. Plain CGI has no resident backend process to stop:
there the tests are skips. What a client sees while the backend is frozen
is printed as `#` lines and must be one of the outcomes documented for that
front end in README.md ("When the backend stops responding"); nothing
asserts a duration."""
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from contract import poll_some, TRANSIENT, setup_call  # noqa: E402
from harness import Checks, Server  # noqa: E402

FREEZE = 10     # seconds the backend is stopped
HOLD = 15       # seconds the polls held before the freeze ask for
SERVERS = os.environ.get("FROZEN_SERVERS", os.environ.get("LONGCALL_TEST_SERVER",
                                                           "lighttpd")).split()
# What the README documents for each front end while the backend is frozen:
# the request waits (the front end has written it to the backend's socket
# and its read time-out, 300 s in the shipped files, has not run out), and
# is answered by the backend once it runs again. mod_fcgid gives a process
# one request at a time and starts another process for a request that finds
# none idle: that one answers while the others are frozen.
DOCUMENTED = {
    "lighttpd": {"answered after SIGCONT"},
    "lighttpd-tls": {"answered after SIGCONT"},
    "nginx": {"answered after SIGCONT"},
    "apache-proxy-fcgi": {"answered after SIGCONT"},
    "apache-fcgid": {"answered after SIGCONT", "answered while frozen"},
}
TESTS_PER_SERVER = 5

check = Checks()
check.plan(TESTS_PER_SERVER * len(SERVERS))


def outcome(res, thawed_at):
    """Classifies one observed request: (class, description)."""
    st, data, err, done = res["status"], res["data"], res["error"], res["done"]
    if done is None:
        return "no answer yet", "no answer yet"
    took = "%.1f s after the request, %.1f s after SIGCONT" % (done - res["start"],
                                                               done - thawed_at)
    if err is not None:
        cls = "client time-out" if "timed out" in str(err) else "connection closed"
        return cls, "%s (%r), %s" % (cls, err, took)
    if st == 200 and done >= thawed_at:
        return "answered after SIGCONT", "200 %s, %s" % (data[:80], took)
    if st == 200:
        return "answered while frozen", "200 %s, %s" % (data[:80], took)
    kind = "backend" if data.startswith(b"{") else "front end"
    return "%d from the %s" % (st, kind), "%d %r, %s" % (st, data[:80], took)


def observe(fn):
    """Runs fn() (one HTTP request) in a thread; returns the result dict it fills."""
    res = {"status": None, "data": b"", "error": None, "start": time.monotonic(), "done": None}

    def run():
        try:
            st, data = fn()
            res["status"], res["data"] = st, data
        except TRANSIENT as e:
            res["error"] = e
        res["done"] = time.monotonic()
    res["thread"] = threading.Thread(target=run, daemon=True)
    res["thread"].start()
    return res


def raw_send(peer, msg, batch, timeout):
    import json
    import urllib.parse
    st, _, data = peer._request("send", "POST", "/rtc/send?sid=%s&batch=%s" % (
        peer.q(), urllib.parse.quote(batch)), json.dumps(msg), timeout=timeout)
    return st, data


def raw_poll(peer, hold, timeout):
    """One poll that records its messages on the peer (cursor and list)."""
    ms = peer.poll(hold, http_timeout=timeout)
    if ms is None:
        raise OSError(peer.last_error)
    peer.got.extend(ms)
    import json
    return 200, json.dumps([m["id"] for m in ms]).encode()


def run(kind):
    env = {"LONGCALL_POLL_MAX": "20", "LONGCALL_SESSION_EXPIRY": "60"}
    with Server(procs=2, server=kind, env=env) as srv:
        a, b = setup_call(srv.port, "fa-" + kind, "fb-" + kind)
        a.got, b.got = [], []
        # a held poll for each party
        polls = {p.label: observe(lambda p=p: raw_poll(p, HOLD, HOLD + FREEZE + 40))
                 for p in (a, b)}
        end = time.monotonic() + 10
        while time.monotonic() < end:
            st, _, data = srv.request("GET", "/rtc/status", timeout=5)
            if b'"held_polls":2' in data.replace(b" ", b""):
                break
            time.sleep(0.05)
        pids = srv.backend_pids()
        stopped_at = time.monotonic()
        for p in pids:
            os.kill(p, signal.SIGSTOP)
        try:
            time.sleep(0.5)
            # What a client sees while the backend is frozen: a send each
            # way (a second connection of each peer), and a status request.
            from contract import Peer
            a2, b2 = Peer(srv.port, a.label), Peer(srv.port, b.label)
            a2.sid, b2.sid = a.sid, b.sid
            sends = {
                "send a->b": observe(lambda: raw_send(a2, {"id": "onIceCandidate",
                                                           "candidate": "a-frozen"}, "af", 60)),
                "send b->a": observe(lambda: raw_send(b2, {"id": "onIceCandidate",
                                                           "candidate": "b-frozen"}, "bf", 60)),
            }
            status = observe(lambda: srv.request("GET", "/rtc/status", timeout=60)[0::2])
            time.sleep(max(0, stopped_at + FREEZE - time.monotonic()))
        finally:
            thawed_at = time.monotonic()
            for p in pids:
                try:
                    os.kill(p, signal.SIGCONT)
                except ProcessLookupError:
                    pass
        observed = dict(sends)
        observed["held poll of a"] = polls[a.label]
        observed["held poll of b"] = polls[b.label]
        observed["GET /rtc/status"] = status
        for r in observed.values():
            r["thread"].join(90)
        classes = {}
        for what, r in observed.items():
            cls, text = outcome(r, thawed_at)
            classes[what] = cls
            print("# %s, backend frozen %d s: %s -> %s" % (kind, FREEZE, what, text), flush=True)

        # The contract after the thaw: a send not answered ok is sent again
        # with its batch id; each side polls until it has the peer's
        # candidate, then a little longer for a duplicate.
        deadline = time.monotonic() + 60
        for who, p, cand, batch in (("send a->b", a, "a-frozen", "af"),
                                    ("send b->a", b, "b-frozen", "bf")):
            r = observed[who]
            if not (r["status"] == 200 and r["error"] is None):
                p.send({"id": "onIceCandidate", "candidate": cand}, batch, deadline)

        def cands(p):
            return [m.get("candidate") for m in p.got if m.get("id") == "iceCandidate"]
        for p, want in ((a, "b-frozen"), (b, "a-frozen")):
            while want not in cands(p) and time.monotonic() < deadline:
                p.got.extend(poll_some(p, 2))
            p.got.extend(poll_some(p, 1))
        got_a, got_b = cands(a), cands(b)
        check("%s: frozen %d s: each party got the other's candidate sent while frozen "
              "exactly once (a got %s, b got %s)" % (kind, FREEZE, got_a, got_b),
              got_a == ["b-frozen"] and got_b == ["a-frozen"],
              "a last error %s, b last error %s" % (a.last_error, b.last_error))
        check("%s: frozen %d s: the held polls were answered after SIGCONT or failed and were "
              "renewed (%s, %s)" % (kind, FREEZE, classes["held poll of a"],
                                    classes["held poll of b"]),
              all(classes[w] in ("answered after SIGCONT", "connection closed")
                  or classes[w].endswith("from the front end")
                  for w in ("held poll of a", "held poll of b")),
              repr(classes))
        doc = DOCUMENTED[kind]
        check("%s: frozen %d s: what a client saw while frozen is documented for %s (%s)" % (
            kind, FREEZE, kind, sorted(set(classes.values()))),
            set(classes.values()) <= doc, "documented: %s, seen %s" % (sorted(doc), classes))
        # The call goes on: candidates both ways, then stop.
        a.send({"id": "onIceCandidate", "candidate": "a-after"}, "aa", deadline)
        b.send({"id": "onIceCandidate", "candidate": "b-after"}, "ba", deadline)
        for p, want in ((a, "b-after"), (b, "a-after")):
            while want not in cands(p) and time.monotonic() < deadline:
                p.got.extend(poll_some(p, 2))
        a.send({"id": "stop"}, "stop", deadline)
        while not any(m["id"] == "stopCommunication" for m in b.got) and \
                time.monotonic() < deadline:
            b.got.extend(poll_some(b, 2))
        check("%s: after SIGCONT the call goes on: candidates both ways once each, then stop "
              "reaches the peer" % kind,
              cands(a) == ["b-frozen", "b-after"] and cands(b) == ["a-frozen", "a-after"] and
              any(m["id"] == "stopCommunication" for m in b.got),
              "a got %s, b got %s" % (cands(a), [m["id"] for m in b.got]))
        alive = [p for p in pids if os.path.exists("/proc/%d" % p)]
        check("%s: the frozen backend processes run on (%d of %d), no crash in the log" % (
            kind, len(alive), len(pids)),
            len(alive) == len(pids) and not any(
                m in srv.log_text() for m in ("AddressSanitizer", "runtime error:",
                                              "child signalled")),
            srv.read_log()[-500:])


for kind in SERVERS:
    if kind == "cgi":
        for i in range(TESTS_PER_SERVER):
            print("skip - cgi: frozen backend (%d of %d): plain CGI has no resident backend "
                  "process to stop (a process per request)" % (i + 1, TESTS_PER_SERVER),
                  flush=True)
        continue
    try:
        run(kind)
    except Exception as e:
        check("%s: frozen backend test ran to the end" % kind, False, repr(e))
check.exit()
