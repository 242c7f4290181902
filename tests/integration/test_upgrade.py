#!/usr/bin/env python3
"""Upgrades and backups (issue 16): a database written by longcall 0.1.0
(tests/fixtures/longcall-0.1.0.db, schema 1: see tests/fixtures/README.md)
is upgraded in place when the backend starts on it, after a copy is taken
with SQLite's online backup API (<db>.before-v<N>), and every row of its
history is kept; a full disk while copying leaves it unmigrated (503 with
the reason) until there is room. An online backup with the sqlite3 shell
while the server relays a call is whole and consistent, and the call sees
no error."""
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

from harness import ROOT, Server  # noqa: E402
from lcclient import Client, Runner, call_pair, check, short  # noqa: E402
from test_disk import Skip, Tmpfs  # noqa: E402

FIXTURE = os.path.join(ROOT, "tests", "fixtures", "longcall-0.1.0.db")
# The fixture's rows are older each day: history is kept here for good.
ENV = {"LONGCALL_HISTORY_DAYS": "36500"}


def latest_schema():
    import glob
    return len(glob.glob(os.path.join(ROOT, "db", "[0-9][0-9][0-9]-*.sql")))


def header_version(path):
    """PRAGMA user_version read from the file's header (offset 60): no
    connection, so nothing is written beside it (a full disk)."""
    with open(path, "rb") as f:
        f.seek(60)
        return int.from_bytes(f.read(4), "big")


def rows(path, sql):
    db = sqlite3.connect("file:%s?mode=ro" % path, uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


HISTORY = [
    ("messages", "SELECT id, session_id, seq, sender, recipient, type, body, call_id, created "
                 "FROM messages ORDER BY id"),
    ("calls", "SELECT id, caller_sid, callee_sid, caller, callee, placed, answered, ended, "
              "outcome FROM calls ORDER BY id"),
    ("registered sessions", "SELECT id, name, created FROM sessions WHERE name IS NOT NULL "
                            "ORDER BY id"),
]


def test_upgrade(t):
    latest = latest_schema()
    srv = Server(procs=1, env=ENV)
    db = os.path.join(srv.state, "longcall.db")
    copy = "%s.before-v%d" % (db, latest)
    shutil.copy(FIXTURE, db)
    try:
        srv.start()

        def migrated():
            v = rows(db, "PRAGMA user_version")[0][0]
            check(v == latest, "schema version %s after the start, not %d" % (v, latest))
            check(re.search(r"copied to .*before-v%d before migrating it from schema version 1"
                            % latest, srv.log_text()), "no log line about the copy")

        def copy_whole():
            check(os.path.exists(copy), "no %s" % os.path.basename(copy))
            check(rows(copy, "PRAGMA user_version")[0][0] == 1, "the copy is not schema 1")
            check(rows(copy, "PRAGMA integrity_check") == [("ok",)], "the copy is damaged")
            a = sqlite3.connect("file:%s?mode=ro" % FIXTURE, uri=True)
            b = sqlite3.connect("file:%s?mode=ro" % copy, uri=True)
            try:
                check(list(a.iterdump()) == list(b.iterdump()),
                      "the copy's contents differ from the 0.1.0 database's")
            finally:
                a.close()
                b.close()

        def history_kept():
            for what, sql in HISTORY:
                before, after = rows(FIXTURE, sql), rows(db, sql)
                check(before and before == after, "%s: %d rows in the 0.1.0 database, %d after "
                      "the upgrade, or they differ: %s" % (what, len(before), len(after),
                                                           short([r for r in before
                                                                  if r not in after][:3])))

        def serves():
            a, b = call_pair(srv, "dave", "erin")
            a.send({"id": "onIceCandidate", "candidate": {"candidate": "candidate:1 1 udp 1 "
                                                          "192.0.2.9 9 typ host",
                                                          "sdpMid": "0", "sdpMLineIndex": 0}})
            got = b.collect(1)
            check(got and got[0]["id"] == "iceCandidate", "erin got %s" % short(got))
            n = rows(db, "SELECT count(*) FROM messages")[0][0]
            check(n > len(rows(FIXTURE, HISTORY[0][1])), "no new message stored")

        def no_second_copy():
            srv.stop()
            srv.start()
            extra = [f for f in os.listdir(srv.state) if ".before-v" in f and
                     f != os.path.basename(copy)]
            check(not extra, "a start on an up-to-date database made a copy: %s" % extra)
            Client(srv).send({"id": "ping"})

        t.run("0.1.0 database: the backend starts on it and migrates it to schema %d" % latest,
              migrated)
        t.run("0.1.0 database: the copy taken first (longcall.db.before-v%d) is the 0.1.0 "
              "database, whole" % latest, copy_whole)
        t.run("0.1.0 database: every message, call and registered session is kept",
              history_kept)
        t.run("0.1.0 database: the upgraded database serves a call", serves)
        t.run("0.1.0 database: a start on an up-to-date database takes no copy", no_second_copy)
    finally:
        srv.cleanup()


def test_copy_full(t):
    """The disk fills while the copy is written: nothing migrated, 503 with
    the reason, no partial copy left; with room again it migrates."""
    latest = latest_schema()
    disk = None
    srv = None

    def run():
        nonlocal disk, srv
        disk = Tmpfs("256k")
        shutil.copy(FIXTURE, disk.db)
        # room to open it (its -shm file, 32 KiB) but not for the 20 KiB copy too
        disk.fill(limit=max(0, disk.free() - 40 * 1024))
        srv = Server(procs=1, env=ENV, down_ok=True)
        os.symlink(disk.db, os.path.join(srv.state, "longcall.db"))
        srv.start()
        st, _, data = srv.request("GET", "/rtc/status")
        check(st == 503, "status %s with no room for the copy: %s" % (st, short(data)))
        check(header_version(disk.db) == 1, "the database was migrated without its copy")
        check(not [f for f in os.listdir(disk.dir) if ".before-v" in f],
              "a partial copy was left: %s" % os.listdir(disk.dir))
        check(re.search(r"copying it to .*before-v%d before migrating it" % latest,
                        srv.log_text()), "no log line says the copy failed: %s" %
              srv.read_log()[-500:])
        disk.unfill()
        end = time.monotonic() + 20
        while srv.request("GET", "/rtc/status", timeout=15)[0] != 200:
            check(time.monotonic() < end, "still 503 20 s after space was freed")
            time.sleep(0.3)
        check(header_version(disk.db) == latest, "not migrated once freed")
        check(os.path.exists("%s.before-v%d" % (disk.db, latest)), "no copy once freed")

    try:
        t.run("0.1.0 database on a full disk: not migrated without its copy (503, the reason "
              "logged), migrated once there is room", run)
    finally:
        if srv:
            srv.cleanup()
        if disk:
            disk.close()


def test_online_backup(t):
    srv = Server(procs=1)
    try:
        srv.start()
        a, b = call_pair(srv, "fred", "gina")
        errors, sent = [], [0]
        stop = threading.Event()

        def stream():
            end = time.monotonic() + 30
            i = 0
            while not stop.is_set() and i < 2000 and time.monotonic() < end:
                st, _, data = a.send_raw({"id": "onIceCandidate", "candidate": {
                    "candidate": "candidate:%d 1 udp 1 192.0.2.1 %d typ host" % (i, 1000 + i),
                    "sdpMid": "0", "sdpMLineIndex": 0}}, batch="b%d" % i)
                if st != 200:
                    errors.append("send %d: %s %s" % (i, st, short(data, 80)))
                else:
                    sent[0] = i + 1
                if i % 20 == 0:
                    b.poll(timeout=0)
                i += 1

        th = threading.Thread(target=stream, daemon=True)
        th.start()
        time.sleep(0.5)
        db = os.path.join(srv.state, "longcall.db")
        before = rows(db, "SELECT count(*) FROM messages")[0][0]
        out = os.path.join(srv.state, "backup.db")
        p = subprocess.run(["sqlite3", db, ".backup '%s'" % out], capture_output=True, text=True,
                           timeout=60)
        time.sleep(0.3)
        stop.set()
        th.join(40)

        def whole():
            check(p.returncode == 0, "sqlite3 .backup failed: %s" % p.stderr)
            check(rows(out, "PRAGMA integrity_check") == [("ok",)], "the backup is damaged")
            check(rows(out, "PRAGMA user_version")[0][0] == latest_schema(),
                  "the backup's schema version")
            n = rows(out, "SELECT count(*) FROM messages")[0][0]
            check(n >= before, "the backup has %d messages, %d were stored before it began" % (
                n, before))

        def no_error():
            check(sent[0] > 0 and not errors, "%d sends, errors: %s" % (sent[0], errors[:3]))
            want = sent[0]
            got = b.drain(lambda ms: len(b.received) >= 0 and
                          sum(m["id"] == "iceCandidate" for m in b.received) >= want, 20)
            n = sum(m["id"] == "iceCandidate" for m in b.received)
            check(n == want, "gina got %d candidates of %d sent" % (n, want))
            check(got is not None, "")

        t.run("online backup (sqlite3 .backup) while a call relays: whole and consistent",
              whole)
        t.run("online backup: the call relayed on, with no error answer", no_error)
    finally:
        srv.cleanup()


def main():
    t = Runner("test_upgrade")
    t.plan(8)
    before = t.total
    try:
        test_upgrade(t)
    except Exception as e:  # the server did not start: the rest did not run
        for _ in range(5 - (t.total - before)):
            t.report("0.1.0 database upgrade", "did not run: %s" % e)
    try:
        test_copy_full(t)
    except Skip as e:
        t.skip("0.1.0 database on a full disk", e)
    before = t.total
    try:
        test_online_backup(t)
    except Exception as e:
        for _ in range(2 - (t.total - before)):
            t.report("online backup", "did not run: %s" % e)
    t.done()


if __name__ == "__main__":
    main()
