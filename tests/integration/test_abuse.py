#!/usr/bin/env python3
"""Attacks an anonymous client can make (issue 12), each performed for real
against a running server, asserting what the victim experiences. Every
attack loop is bounded in count and in time; no duration is asserted.

Sections, one per part of the issue (each in its own functions and its own
list of groups, so that they merge independently):
- client address (item 4): limits per client address on new sessions per
  minute, live sessions and held polls (429 + Retry-After, other addresses
  untouched), 10,000 refused session requests grow the database by less
  than 1 MiB, X-Forwarded-For believed only from trusted proxies, empty
  batches refused, batch ids kept per session bounded. Clients act as
  different addresses by binding their sockets to 127.0.0.2, 127.0.0.3, ...
"""
import http.client
import json
import os
import re
import sqlite3
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from lcclient import (Background, Client, Runner, check, check_json_answer,  # noqa: E402
                      short, status, strip_seq, wait_held)


# ==== client address (item 4) =============================================

def addr_new_session(srv, source, headers=None):
    """POST /rtc/session from source; returns (status, headers, body dict)."""
    st, h, data = srv.request("POST", "/rtc/session", timeout=15, source=source, headers=headers)
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    return st, h, body


def addr_check_429(st, h, body, what, setting):
    """A per-address refusal: 429, Retry-After a whole number of seconds, a
    JSON sentence naming the setting."""
    check(st == 429, "%s: expected 429, got %s %s" % (what, st, short(body)))
    ra = h.get("retry-after", "")
    check(ra.isdigit() and 1 <= int(ra) <= 60, "%s: Retry-After %r" % (what, ra))
    check(isinstance(body, dict) and setting in body.get("error", ""),
          "%s: the sentence should name %s: %s" % (what, setting, short(body)))


def addr_db_size(srv):
    """Bytes of the database and its WAL."""
    db = os.path.join(srv.state, "longcall.db")
    return sum(os.path.getsize(p) for p in (db, db + "-wal") if os.path.exists(p))


def addr_sql(srv, query, args=()):
    """One value from the server's database (read only)."""
    db = sqlite3.connect(os.path.join(srv.state, "longcall.db"), timeout=10)
    try:
        return db.execute(query, args).fetchone()[0]
    finally:
        db.close()


def addr_test_session_rate(srv):
    """LONGCALL_ADDR_SESSIONS_PER_MIN=10: the 11th new session of one address
    within a minute is refused; another address, and the sessions already
    made, are served; a spoofed X-Forwarded-For does not escape the limit
    (no proxy is trusted)."""
    made = []
    for i in range(30):  # bounded: the limit is 10
        st, h, body = addr_new_session(srv, "127.0.0.2")
        if st != 200:
            break
        made.append(body["sid"])
    check(len(made) == 10, "127.0.0.2 made %d sessions before a refusal, expected 10" % len(made))
    addr_check_429(st, h, body, "the 11th session of 127.0.0.2", "LONGCALL_ADDR_SESSIONS_PER_MIN")
    st, h, body = addr_new_session(srv, "127.0.0.2", {"X-Forwarded-For": "203.0.113.77"})
    addr_check_429(st, h, body, "127.0.0.2 with a spoofed X-Forwarded-For",
                   "LONGCALL_ADDR_SESSIONS_PER_MIN")
    other = Client(srv, "other", source="127.0.0.3")
    other.send({"id": "ping"})
    other.expect({"id": "pong"})
    st, h, data = srv.request("POST", "/rtc/send?sid=" + made[0], {"id": "ping"},
                              source="127.0.0.2")
    check_json_answer(st, h, data, 200, "a send of a session 127.0.0.2 already has")


def addr_test_live_sessions(srv):
    """LONGCALL_ADDR_SESSIONS=5: the 6th live session of one address is
    refused until one of its sessions ends; another address is served."""
    mine = [Client(srv, "s%d" % i, source="127.0.0.4") for i in range(5)]
    st, h, body = addr_new_session(srv, "127.0.0.4")
    addr_check_429(st, h, body, "the 6th live session of 127.0.0.4", "LONGCALL_ADDR_SESSIONS")
    other = Client(srv, "other", source="127.0.0.5")
    other.send({"id": "ping"})
    other.expect({"id": "pong"})
    st, h, data = mine[0].close()
    check_json_answer(st, h, data, 200, "close of one of 127.0.0.4's sessions")
    st, h, body = addr_new_session(srv, "127.0.0.4")
    check(st == 200 and "sid" in (body or {}),
          "after a close 127.0.0.4 may open one again: %s %s" % (st, short(body)))


def addr_test_held_polls(srv):
    """LONGCALL_ADDR_HELD=3 (2 backend processes: the limit is over both):
    one address's 4th held poll is refused with 429 while another address's
    poll is held and answered as usual; once one of the first address's
    polls is answered, it may hold one again."""
    mine = [Client(srv, "m%d" % i, source="127.0.0.6") for i in range(5)]
    held = [Background(c.poll_raw, 0, 20) for c in mine[:3]]
    wait_held(srv, 3)
    st, h, data = mine[3].poll_raw(0, 20)
    body = json.loads(data) if data else None
    addr_check_429(st, h, body, "127.0.0.6's 4th held poll", "LONGCALL_ADDR_HELD")
    victim = Client(srv, "victim", source="127.0.0.7")
    vpoll = Background(victim.poll_raw, 0, 20)
    wait_held(srv, 4)
    victim.send({"id": "ping"})  # its own pong wakes its held poll
    st, h, data = vpoll.join(30)
    got = [strip_seq(m) for m in json.loads(data)["messages"]] if st == 200 else data
    check(st == 200 and {"id": "pong"} in got, "127.0.0.7's held poll got %s %s" % (st, short(got)))
    mine[0].send({"id": "ping"})  # answers one of 127.0.0.6's held polls
    st, h, data = held[0].join(30)
    check(st == 200, "127.0.0.6's first held poll answered: %s" % st)
    wait_held(srv, 2)
    again = Background(mine[4].poll_raw, 0, 20)
    wait_held(srv, 3)
    for c in mine[1:3]:
        c.send({"id": "ping"})
    mine[4].send({"id": "ping"})
    for b in held[1:] + [again]:
        st, h, data = b.join(30)
        check(st == 200, "a held poll of 127.0.0.6 answered: %s %s" % (st, short(data)))


def addr_test_refused_flood(srv):
    """LONGCALL_ADDR_SESSIONS_PER_MIN=5 and LONGCALL_ADDR_SESSIONS=5: 10,000
    session requests of one address over its limits (4 threads, keep-alive,
    bounded in time) are all refused with 429, the database grows by less
    than 1 MiB, the log says so in a line a minute, and another address is
    served meanwhile. (Plain CGI starts a process per request: 2,000 there.)"""
    total = 2000 if srv.kind == "cgi" else 10000
    for i in range(5):
        st, h, body = addr_new_session(srv, "127.0.0.8")
        check(st == 200, "127.0.0.8's session %d: %s %s" % (i, st, short(body)))
    before = addr_db_size(srv)
    counts = {"refused": 0, "other": []}
    lock = threading.Lock()
    end = time.monotonic() + 300
    t0 = time.monotonic()

    def flood(n):
        c = None
        for _ in range(n):
            if time.monotonic() > end:
                return
            try:
                if c is None:
                    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=15,
                                                   source_address=("127.0.0.8", 0))
                c.request("POST", "/rtc/session", body=b"")
                r = c.getresponse()
                r.read()
                with lock:
                    if r.status == 429 and r.getheader("Retry-After"):
                        counts["refused"] += 1
                    else:
                        counts["other"].append(r.status)
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    counts["other"].append(type(e).__name__)
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    threads = [threading.Thread(target=flood, args=(total // 4,), daemon=True) for _ in range(4)]
    for th in threads:
        th.start()
    # Meanwhile another address opens a session and relays a message.
    other = Client(srv, "other", source="127.0.0.9")
    other.send({"id": "ping"})
    other.expect({"id": "pong"})
    for th in threads:
        th.join(max(1, end - time.monotonic() + 5))
    elapsed = time.monotonic() - t0
    grown = addr_db_size(srv) - before
    print("#   %d refused session requests in %.0f s, database grew %d bytes; other answers %s"
          % (counts["refused"], elapsed, grown, short(counts["other"], 200)), file=sys.stderr)
    check(not counts["other"], "answers other than 429 + Retry-After: %s" % short(counts["other"]))
    check(counts["refused"] == total, "only %d of %d requests were made and refused in time"
          % (counts["refused"], total))
    check(grown < 1 << 20, "the database grew by %d bytes" % grown)
    live = addr_sql(srv, "SELECT count(*) FROM sessions WHERE addr = '127.0.0.8'")
    check(live == 5, "127.0.0.8 has %d sessions stored, expected the 5 made" % live)
    lines = [ln for ln in srv.log_text().splitlines()
             if "client 127.0.0.8 is over LONGCALL_ADDR_SESSIONS" in ln]
    allowed = 2 + int(elapsed // 60)  # one a minute (a minute may turn meanwhile)
    check(1 <= len(lines) <= allowed, "%d log lines about 127.0.0.8 in %.0f s (at most one a "
          "minute expected: %d)" % (len(lines), elapsed, allowed))


def addr_test_trusted_proxy(srv):
    """LONGCALL_TRUSTED_PROXIES=127.0.0.1, LONGCALL_ADDR_SESSIONS_PER_MIN=3:
    behind the trusted proxy each X-Forwarded-For client has its own limit;
    from an untrusted address the header is ignored."""
    def mk(source, xff):
        return addr_new_session(srv, source, {"X-Forwarded-For": xff})
    for i in range(3):
        st, h, body = mk("127.0.0.1", "198.51.100.1, 203.0.113.5")
        check(st == 200, "session %d of 203.0.113.5 via the proxy: %s %s" % (i, st, short(body)))
    st, h, body = mk("127.0.0.1", "203.0.113.5")
    addr_check_429(st, h, body, "203.0.113.5's 4th session via the proxy",
                   "LONGCALL_ADDR_SESSIONS_PER_MIN")
    st, h, body = mk("127.0.0.1", "203.0.113.6")
    check(st == 200, "another client behind the same proxy: %s %s" % (st, short(body)))
    for i in range(3):
        st, h, body = mk("127.0.0.10", "203.0.113.%d" % (20 + i))
        check(st == 200, "untrusted 127.0.0.10, session %d: %s %s" % (i, st, short(body)))
    st, h, body = mk("127.0.0.10", "203.0.113.30")
    addr_check_429(st, h, body, "untrusted 127.0.0.10 naming yet another client",
                   "LONGCALL_ADDR_SESSIONS_PER_MIN")
    stored = addr_sql(srv, "SELECT group_concat(DISTINCT addr) FROM sessions WHERE addr "
                      "NOT LIKE '127.0.0.%' OR addr = '127.0.0.10'")
    check(sorted((stored or "").split(",")) == ["127.0.0.10", "203.0.113.5", "203.0.113.6"],
          "addresses stored: %s" % stored)


def addr_test_empty_batch(srv):
    """An empty batch is refused with 400 and stores nothing, with or
    without a batch id; a retry of it is refused the same."""
    c = Client(srv, "empty", source="127.0.0.11")
    sid_row = addr_sql(srv, "SELECT max(id) FROM sessions")
    for batch in (None, "e1", "e1"):
        st, h, data = c.send_raw([], batch=batch)
        body = check_json_answer(st, h, data, 400, "an empty batch (batch=%s)" % batch)
        check("empty batch" in body.get("error", ""), "sentence: %s" % short(body))
    n = addr_sql(srv, "SELECT count(*) FROM batches WHERE session_id = ?", (sid_row,))
    check(n == 0, "%d batch ids stored for empty batches" % n)
    check(c.poll() == [], "an empty batch put something in the mailbox")
    c.send([{"id": "ping"}], batch="e1")  # the id was not taken by the refused ones
    c.expect({"id": "pong"})


def addr_test_batch_ids_bounded(srv):
    """100 batches with distinct ids: at most 64 ids are kept for the
    session; a retry of a recent batch is still applied once."""
    c = Client(srv, "batches", source="127.0.0.12")
    sid_row = addr_sql(srv, "SELECT max(id) FROM sessions")
    for i in range(100):
        c.send([{"id": "ping"}], batch="b%d" % i)
    n = addr_sql(srv, "SELECT count(*) FROM batches WHERE session_id = ?", (sid_row,))
    check(n == 64, "%d batch ids kept for the session, expected 64" % n)
    c.send([{"id": "ping"}], batch="b99")  # retries: answered ok, applied once
    c.send([{"id": "ping"}], batch="b40")
    got = c.collect(100, deadline=20)
    check(len(got) == 100 and all(strip_seq(m) == {"id": "pong"} for m in got),
          "100 distinct batches and two retries gave %d messages" % len(got))
    c.expect_nothing(1)


ADDR_GROUPS = [
    ({"procs": 1, "env": {"LONGCALL_ADDR_SESSIONS_PER_MIN": "10"}}, [
        ("address: one address over its session rate gets 429, others are served",
         addr_test_session_rate),
    ]),
    ({"procs": 1, "env": {"LONGCALL_ADDR_SESSIONS": "5"}}, [
        ("address: one address over its live sessions gets 429 until one ends",
         addr_test_live_sessions),
    ]),
    ({"procs": 2, "env": {"LONGCALL_ADDR_HELD": "3"}}, [
        ("address: one address over its held polls (2 processes) gets 429, others held",
         addr_test_held_polls),
    ]),
    # One process: spawn-fcgi -F (nginx, more processes) keeps no backend log to count lines in.
    # The first 5 sessions stay live (no expiry) however long the flood takes (CGI: minutes).
    ({"procs": 1, "env": {"LONGCALL_ADDR_SESSIONS_PER_MIN": "5", "LONGCALL_ADDR_SESSIONS": "5",
                          "LONGCALL_SESSION_EXPIRY": "3600"}}, [
        ("address: 10,000 refused session requests grow the database < 1 MiB, one log line a minute",
         addr_test_refused_flood),
    ]),
    ({"procs": 1, "env": {"LONGCALL_TRUSTED_PROXIES": "127.0.0.1",
                          "LONGCALL_ADDR_SESSIONS_PER_MIN": "3"}}, [
        ("address: X-Forwarded-For believed from a trusted proxy only", addr_test_trusted_proxy),
    ]),
    ({"procs": 1}, [
        ("address: empty batches are refused with 400 and store nothing", addr_test_empty_batch),
        ("address: batch ids kept per session are bounded (64)", addr_test_batch_ids_bounded),
    ]),
]


def main():
    t = Runner("test_abuse")
    groups = []
    groups += ADDR_GROUPS
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
