#!/usr/bin/env python3
"""Busy database: a `sqlite3` shell (Debian's sqlite3, the command-line
program) holds a write transaction (BEGIN IMMEDIATE) on the server's
database for 10 s during a call, with LONGCALL_BUSY_TIMEOUT=500 (ms).
While it holds it: sends and new sessions get a JSON 503 with Retry-After;
polls keep being answered (WAL: reads never wait for the writer) -- a
message stored before the lock is delivered, and a poll held from before
the lock is answered at its timeout. Each client keeps the contract (a send
answered 503 is sent again with its batch id), and after the shell commits
every message arrives exactly once, in order, and the call goes on.
The browser library's retry under the same lock: tests/browser/test_busy.py."""
import json
import os
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from contract import poll_some, Peer, setup_call  # noqa: E402
from harness import Checks, Server  # noqa: E402

LOCK = 10        # seconds the shell holds the write lock
BUSY_MS = 500    # LONGCALL_BUSY_TIMEOUT
HELD = 3         # the hold of the poll that times out while locked

check = Checks()
check.plan(7)


class Lock:
    """A sqlite3 shell holding BEGIN IMMEDIATE on db (as the file's owner,
    so that nothing it creates is unreadable to the backend); stopped by
    PID."""

    def __init__(self, db):
        self.db = db
        self.proc = None

    def __enter__(self):
        stt = os.stat(self.db)
        self.proc = subprocess.Popen(["sqlite3", "-batch", self.db], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     user=stt.st_uid, group=stt.st_gid, text=True)
        self.proc.stdin.write(".timeout 10000\nBEGIN IMMEDIATE;\nSELECT 'locked';\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().strip()
        if line != "locked":
            raise AssertionError("sqlite3 did not take the lock: %r" % line)
        return self

    def release(self):
        if self.proc and self.proc.poll() is None:
            self.proc.stdin.write("COMMIT;\n.quit\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def __exit__(self, *exc):
        self.release()
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        return False


def locked(db):
    """True when another connection holds the write lock."""
    con = sqlite3.connect(db, timeout=0, isolation_level=None)
    try:
        con.execute("BEGIN IMMEDIATE")
        con.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError as e:
        return "locked" in str(e) or "busy" in str(e)
    finally:
        con.close()


def json_503(st, h, data):
    try:
        body = json.loads(data)
    except ValueError:
        return False
    return (st == 503 and isinstance(body, dict) and isinstance(body.get("error"), str)
            and h.get("retry-after", "").isdigit() and int(h["retry-after"]) >= 1)


def cands(msgs):
    return [m.get("candidate") for m in msgs if m.get("id") == "iceCandidate"]


def main():
    env = {"LONGCALL_BUSY_TIMEOUT": str(BUSY_MS), "LONGCALL_POLL_MAX": "20",
           "LONGCALL_SESSION_EXPIRY": "60"}
    with Server(procs=2, env=env) as srv:
        db = os.path.join(srv.state, "longcall.db")
        a, b = setup_call(srv.port, "busy-a", "busy-b")
        a.got, b.got = [], []
        for p in (a, b):  # count what follows, not the call set-up
            p.stats["statuses"] = {}
        deadline = time.monotonic() + LOCK + 60
        # Before the lock: b's candidate waits in a's mailbox; b holds a poll.
        b.send({"id": "onIceCandidate", "candidate": "b-before"}, "bb", deadline)
        held = {}

        def hold_b():
            t = time.monotonic()
            held["msgs"] = b.poll(HELD, http_timeout=HELD + 30)
            held["done"] = time.monotonic()
            held["took"] = held["done"] - t
        hb = threading.Thread(target=hold_b, daemon=True)
        hb.start()
        time.sleep(0.3)
        with Lock(db) as lock:
            t_lock = time.monotonic()
            is_locked = locked(db)
            # a reads its mailbox while locked: the message stored before.
            got = a.poll(0)
            a.got.extend(got or [])
            read_ok = got is not None and cands(got) == ["b-before"]
            # the first attempt of a send, and of a new session
            raw = Peer(srv.port, "raw")
            raw.sid = a.sid
            st, h, data = raw._request("send", "POST", "/rtc/send?sid=%s&batch=al" % a.q(),
                                       json.dumps({"id": "onIceCandidate",
                                                   "candidate": "a-locked"}))
            send_503 = json_503(st, h, data)
            send_seen = "%s %s Retry-After %s" % (st, data[:100], h.get("retry-after"))
            st2, h2, data2 = srv.request("POST", "/rtc/session", timeout=30)
            session_503 = json_503(st2, h2, data2)
            session_seen = "%s %s Retry-After %s" % (st2, data2[:100], h2.get("retry-after"))
            # Both parties keep sending by the contract (same batch id).
            senders = {}

            def keep_sending(p, cand, batch):
                senders[batch] = p.send({"id": "onIceCandidate", "candidate": cand}, batch,
                                        deadline)
                senders[batch + "-at"] = time.monotonic()
            threads = [threading.Thread(target=keep_sending, args=(a, "a-locked", "al"),
                                        daemon=True),
                       threading.Thread(target=keep_sending, args=(b, "b-locked", "bl"),
                                        daemon=True)]
            for th in threads:
                th.start()
            hb.join(HELD + 30)
            # a new poll held while locked is answered too (at its timeout)
            t = time.monotonic()
            again = a.poll(2, http_timeout=40)
            again_at = time.monotonic()
            time.sleep(max(0, t_lock + LOCK - time.monotonic()))
            still_locked = locked(db)
            released_at = time.monotonic()
        for th in threads:
            th.join(60)
        print("# locked %.0f s (BUSY_TIMEOUT %d ms): first send -> %s; POST /rtc/session -> %s"
              % (released_at - t_lock, BUSY_MS, send_seen, session_seen), flush=True)
        print("# a poll held from before the lock -> %s after %.1f s; a poll held while locked -> "
              "%s after %.1f s" % (held.get("msgs"), held.get("took", -1), again,
                                   again_at - t), flush=True)
        print("# sends during and after the lock, answered: a %s, b %s" % (
            a.stats["statuses"], b.stats["statuses"]), flush=True)
        check("busy: the sqlite3 shell held the write lock for the whole %d s" % LOCK,
              is_locked and still_locked, "locked at start %s, at the end %s" % (
                  is_locked, still_locked))
        check("busy: a send while locked gets a JSON 503 with Retry-After (%s)" % send_seen,
              send_503, send_seen)
        check("busy: a new session while locked gets a JSON 503 with Retry-After",
              session_503, session_seen)
        check("busy: polls are answered while locked: a message stored before is delivered, "
              "a poll held from before the lock and one held during it are answered (empty) "
              "at their timeout",
              read_ok and held.get("msgs") == [] and held["done"] < released_at and
              again == [] and again_at < released_at,
              "read %s, held %s, again %s" % (read_ok, held, again))
        check("busy: the contract's retries were refused while locked (503) and answered ok "
              "after the commit",
              senders.get("al") is True and senders.get("bl") is True and
              senders["al-at"] >= released_at - 0.5 and
              a.stats["statuses"].get(503, 0) >= 2 and b.stats["statuses"].get(503, 0) >= 1,
              "senders %s, a %s, b %s" % (senders, a.stats, b.stats))
        for p, want in ((a, "b-locked"), (b, "a-locked")):
            while want not in cands(p.got) and time.monotonic() < deadline:
                p.got.extend(poll_some(p, 2))
            p.got.extend(poll_some(p, 1))
        check("busy: afterwards every message arrived exactly once, in order "
              "(a got %s, b got %s)" % (cands(a.got), cands(b.got)),
              cands(a.got) == ["b-before", "b-locked"] and cands(b.got) == ["a-locked"],
              "a %s, b %s" % (a.last_error, b.last_error))
        a.send({"id": "stop"}, "stop", deadline)
        while not any(m["id"] == "stopCommunication" for m in b.got) and \
                time.monotonic() < deadline:
            b.got.extend(poll_some(b, 2))
        check("busy: after the commit the call goes on (stop reaches the peer), no crash",
              any(m["id"] == "stopCommunication" for m in b.got) and not any(
                  m in srv.log_text() for m in ("AddressSanitizer", "runtime error:",
                                                "child signalled")),
              srv.read_log()[-400:])


try:
    main()
except Exception as e:
    check("busy database test ran to the end", False, repr(e))
check.exit()
