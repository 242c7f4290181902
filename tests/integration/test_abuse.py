#!/usr/bin/env python3
"""Abuse (issue 12): each test performs an attack for real -- as an
anonymous client would, through the web server or as a FastCGI peer on the
backend's own socket -- and asserts what the other users experience.
Behind lighttpd (the default) and nginx (LONGCALL_TEST_SERVER=nginx, whose
shipped conf does not buffer answers); the FastCGI-peer attacks need the
backend's unix socket and are skipped where there is none (mod_fcgid, CGI).

  slow readers     64 FastCGI connections ask for a 240 KB poll answer each
                   and never read it: with 2 accept workers, two other
                   users still relay messages, /rtc/status answers, and the
                   stalled answers are dropped after LONGCALL_WRITE_TIMEOUT
                   and counted (dropped_slow); no descriptor is left behind
  kept connections FastCGI requests with FCGI_KEEP_CONN set and not: the
                   backend answers each and closes its connection, and its
                   open descriptors return to where they started
"""
import os
import socket
import statistics
import struct
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lcclient import (Client, Runner, Skip, call_pair, check, status,  # noqa: E402
                      wait_status)

# ---- a FastCGI peer ------------------------------------------------------

FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_END_REQUEST = 1, 4, 5, 6, 3


def record(kind, content, rid=1):
    return struct.pack(">BBHHBB", 1, kind, rid, len(content), 0, 0) + content


def pair(name, value):
    def n(x):
        return bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
    return n(name) + n(value) + name + value


def fcgi_request(method, uri, query, keep=False, body=b""):
    """The records of one request (id 1), as a web server writes them."""
    params = b"".join(pair(k.encode(), v.encode()) for k, v in (
        ("REQUEST_METHOD", method), ("REQUEST_URI", uri + ("?" + query if query else "")),
        ("QUERY_STRING", query), ("SCRIPT_NAME", uri), ("HTTP_HOST", "127.0.0.1"),
        ("CONTENT_TYPE", "application/json"), ("CONTENT_LENGTH", str(len(body))),
        ("REMOTE_ADDR", "127.0.0.1")))
    out = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 1 if keep else 0))
    out += record(FCGI_PARAMS, params) + record(FCGI_PARAMS, b"")
    if body:
        out += record(FCGI_STDIN, body)
    return out + record(FCGI_STDIN, b"")


def backend_socket(srv):
    """The unix socket the backend accepts on (lighttpd appends -0)."""
    for path in (srv.socket + "-0", srv.socket):
        if os.path.exists(path):
            return path
    raise Skip("no backend socket to talk FastCGI to behind %s" % srv.kind)


def fcgi_connect(path, rcvbuf=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20)
    s.connect(path)
    return s


def fcgi_read_answer(s):
    """Reads records until END_REQUEST: (stdout bytes, bytes after it or
    None when the connection stayed open)."""
    data, out = b"", b""
    while True:
        while len(data) < 8:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed before END_REQUEST")
            data += chunk
        _, kind, _, clen, pad, _ = struct.unpack(">BBHHBB", data[:8])
        while len(data) < 8 + clen + pad:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed inside a record")
            data += chunk
        content, data = data[8:8 + clen], data[8 + clen + pad:]
        if kind == FCGI_STDOUT:
            out += content
        elif kind == FCGI_END_REQUEST:
            return out


def open_fds(srv):
    n = 0
    for pid in srv.backend_pids():
        try:
            n += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return n


# ---- item 2: slow readers ---------------------------------------------------

SLOW = 64
WRITE_TIMEOUT = 3


def relay_times(a, b, n, what):
    """n messages a -> b through b's held polls; the time of each, in ms."""
    times = []
    for k in range(n):
        t = time.monotonic()
        a.send({"id": "onIceCandidate", "candidate": {"candidate": "%s %d" % (what, k)}})
        got = b.collect(1, deadline=20, poll_timeout=5)
        check(got and got[0].get("id") == "iceCandidate" and
              got[0]["candidate"]["candidate"] == "%s %d" % (what, k),
              "%s: message %d not relayed: %s" % (what, k, got))
        times.append((time.monotonic() - t) * 1000)
    return times


def test_slow_readers(srv):
    path = backend_socket(srv)
    # The victim of nobody: one session whose mailbox holds 4 x 60 KB.
    x, y = call_pair(srv, "bigsender", "bigmailbox")
    for k in range(4):
        x.send({"id": "onIceCandidate", "candidate": {"candidate": str(k) * 60000}})
    alice, bob = call_pair(srv, "alice", "bob")
    fds0 = open_fds(srv)
    before = relay_times(alice, bob, 20, "before")
    # The attack: 64 FastCGI peers ask for that mailbox (after=0, answered
    # at once, ~240 KB) and never read.
    peers = []
    try:
        for _ in range(SLOW):
            s = fcgi_connect(path, rcvbuf=4096)
            s.sendall(fcgi_request("GET", "/rtc/poll", "sid=%s&after=0&timeout=0" % y.qsid()))
            peers.append(s)
        during = relay_times(alice, bob, 20, "during")
        st = status(srv)
        check(st.get("ok") is True, "/rtc/status during the attack: %s" % st)
        print("# relay p50 %.1f ms before, %.1f ms with %d stalled answers" % (
            statistics.median(before), statistics.median(during), SLOW), file=sys.stderr)
        wait_status(srv, lambda s: s.get("dropped_slow", 0) >= SLOW,
                    "the %d stalled answers dropped after LONGCALL_WRITE_TIMEOUT=%d s" % (
                        SLOW, WRITE_TIMEOUT), deadline=WRITE_TIMEOUT + 30)
    finally:
        for s in peers:
            s.close()
    # Nothing lost: the mailbox is whole for its owner.
    got = y.collect(4, deadline=20)
    check(len(got) == 4 and all(m["candidate"]["candidate"] == str(k) * 60000
                                for k, m in enumerate(got)),
          "the big mailbox after the attack: %d messages" % len(got))
    relay_times(alice, bob, 5, "after")
    deadline = time.monotonic() + 20
    while open_fds(srv) > fds0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(open_fds(srv) <= fds0, "backend descriptors %d, %d before the attack" % (
        open_fds(srv), fds0))


# ---- item 6: kept connections ------------------------------------------------

KEPT_REQUESTS = 5000
KEPT_SECONDS = 60


def test_kept_connections(srv):
    path = backend_socket(srv)
    c = Client(srv)
    fds0 = open_fds(srv)
    end = time.monotonic() + KEPT_SECONDS
    done = {True: 0, False: 0}
    for i in range(KEPT_REQUESTS):
        if time.monotonic() > end:
            break
        keep = i % 2 == 0
        s = fcgi_connect(path)
        try:
            s.sendall(fcgi_request("GET", "/rtc/poll", "sid=%s&timeout=0" % c.qsid(), keep=keep))
            out = fcgi_read_answer(s)
            check(b"Status: 200" in out and b'"messages":[]' in out,
                  "request %d (keep %s): %r" % (i, keep, out[:200]))
            s.settimeout(5)
            check(s.recv(1) == b"", "request %d (keep %s): the backend kept the connection "
                  "open (it serves one request per connection)" % (i, keep))
        finally:
            s.close()
        done[keep] += 1
    check(min(done.values()) >= 500, "only %s requests in %d s" % (done, KEPT_SECONDS))
    deadline = time.monotonic() + 10
    while open_fds(srv) > fds0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(open_fds(srv) <= fds0, "backend descriptors %d after %s requests, %d before" % (
        open_fds(srv), done, fds0))


GROUPS = [
    ({"env": {"LONGCALL_THREADS": "2", "LONGCALL_WRITE_TIMEOUT": str(WRITE_TIMEOUT)}},
     [("slow readers: %d stalled 240 KB answers stall nobody, are dropped and counted" % SLOW,
       test_slow_readers)]),
    ({}, [("kept connections: answered and closed, no descriptor left (FCGI_KEEP_CONN on "
           "and off)", test_kept_connections)]),
]


def main():
    t = Runner("test_abuse")
    t.plan(Runner.count(GROUPS))
    for g in GROUPS:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
