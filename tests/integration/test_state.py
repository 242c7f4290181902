#!/usr/bin/env python3
"""Damaged state at start: a database the backend may not write (read-only,
or another user's), a corrupted one (garbage pages in the middle, a garbage
header), one from a newer schema, and a wake file that is truncated or
holds garbage. The database cases: the backend logs one clear line saying
what is wrong and what to do, stays up (the same PID for seconds: no
respawn loop) answering every request with a JSON 503 and Retry-After
(/rtc/status too, with "ok": false), and serves normally once the file is
fixed, without a restart. The wake file holds only hints: it is rebuilt
with a warning, and the server works normally (a call's messages flow, a
held poll is woken by a send).

The permission cases need a backend that is not root (file modes do not
stop root): behind lighttpd (and plain CGI) lighttpd runs from a copy of
its shipped file with server.username = www-data; behind Apache and nginx
the backend is www-data already."""
import json
import os
import pwd
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from harness import LIGHTTPD_KINDS, RUN_USER, SERVER, Server  # noqa: E402
from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_json_answer, log_crashes, short, wait_held)

RETRY_WAIT = 20   # s: the backend tries to open its state again every 3 s


class LenientServer(Server):
    """A Server whose start does not insist on /rtc/status 200 (a backend
    that cannot open its state answers 503 there), optionally with its
    backend run as www-data behind lighttpd too."""

    def __init__(self, nonroot=False, **kw):
        super().__init__(down_ok=True, **kw)
        self.nonroot = nonroot

    def start(self, timeout=15):
        if self.nonroot and self.kind in LIGHTTPD_KINDS:
            with open(self.conf) as f:
                # lighttpd-tls.conf includes lighttpd.conf from its own folder
                text = f.read().replace('include "lighttpd.conf"', 'include "%s"' % os.path.join(
                    os.path.dirname(self.conf), "lighttpd.conf"))
            self.conf = os.path.join(self.state, "lighttpd-www-data.conf")
            with open(self.conf, "w") as f:
                f.write(text + '\nserver.username = "%s"\nserver.groupname = "%s"\n' % (
                    RUN_USER, RUN_USER))
            self._give_state_to_run_user()
        return super().start(timeout)


class Skip(BaseException):
    """A check that cannot run here (Runner.run lets it through)."""


def backend_user(nonroot):
    """The backend's user: www-data behind Apache and nginx, or when asked."""
    return nonroot or SERVER not in LIGHTTPD_KINDS


def db_path(srv):
    """The database: in a folder of its own (srv.dbdir), linked from the
    state folder where the shipped configurations put it -- the harness
    gives the state folder to www-data at each start, which would undo the
    damage done to a file there."""
    return os.path.join(srv.dbdir, "longcall.db")


def settle_files(srv):
    """After the test touched the database with Python's sqlite3 (as
    root): no -wal or -shm of root's left, the files are the backend's."""
    for suffix in ("-wal", "-shm"):
        try:
            os.unlink(db_path(srv) + suffix)
        except FileNotFoundError:
            pass
    if backend_user(srv.nonroot):
        pw = pwd.getpwnam(RUN_USER)
        for n in os.listdir(srv.dbdir):
            os.chown(os.path.join(srv.dbdir, n), pw.pw_uid, pw.pw_gid)


def make_database(nonroot=False, messages=0):
    """Starts a server once so that it creates and fills its database, then
    stops it and folds the WAL into the file. Returns the stopped server (its
    state folder kept: reuse it with keep_state)."""
    srv = LenientServer(nonroot=nonroot)
    srv.dbdir = tempfile.mkdtemp(prefix="longcall-db-")
    os.chmod(srv.dbdir, 0o755)
    if backend_user(nonroot):
        pw = pwd.getpwnam(RUN_USER)
        os.chown(srv.dbdir, pw.pw_uid, pw.pw_gid)
    os.symlink(db_path(srv), os.path.join(srv.state, "longcall.db"))
    srv.start()
    try:
        a, b = call_pair(srv, "mk-a", "mk-b")
        for i in range(messages):
            a.send({"id": "onIceCandidate", "candidate": {"n": i, "pad": "p" * 200}})
            if i % 100 == 99:  # b reads and acknowledges: a stays within its share of b's mailbox
                b.collect(100, deadline=20)
                b.poll(timeout=0)
                # a polls too: a session lives LONGCALL_SESSION_EXPIRY (60 s) past
                # its last poll, and these sends, a process each under CGI, can
                # take longer than that on a busy machine.
                a.poll(timeout=0)
    finally:
        srv.stop()
    db = sqlite3.connect(db_path(srv), isolation_level=None)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    settle_files(srv)
    return srv


def restart(old):
    """A new server on old's state folder (same database and wake file)."""
    srv = LenientServer(nonroot=old.nonroot, keep_state=old.state)
    srv.start()
    return srv


def remove(base):
    base.cleanup()
    shutil.rmtree(base.dbdir, ignore_errors=True)


def check_503_everywhere(srv, what):
    """Every endpoint answers a JSON 503 with Retry-After; status says
    ok false. Returns the status error sentence."""
    st, h, data = srv.request("GET", "/rtc/status", timeout=15)
    check(st == 503, "%s: /rtc/status answered %s %s" % (what, st, short(data)))
    body = json.loads(data)
    check(body.get("ok") is False and isinstance(body.get("error"), str),
          "%s: status must say ok false with an error: %s" % (what, short(body)))
    check(h.get("retry-after", "").isdigit(), "%s: status without Retry-After" % what)
    for method, path, body_ in (("POST", "/rtc/session", None),
                                ("POST", "/rtc/send?sid=x", {"id": "ping"}),
                                ("GET", "/rtc/poll?sid=x&after=0", None),
                                ("POST", "/rtc/close?sid=x", b"")):
        st, h, data = srv.request(method, path, body_, timeout=15)
        check_json_answer(st, h, data, 503, "%s: %s %s" % (what, method, path))
        check(h.get("retry-after", "").isdigit(), "%s: %s without Retry-After" % (what, path))
    return body["error"]


def check_stays_up(srv, what, seconds=4):
    """The backend does not die and is not respawned over a few seconds of
    503s (the same PIDs before and after; no crash in the log)."""
    before = sorted(srv.backend_pids())
    check(before, "%s: no backend process" % what)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        check_503_everywhere(srv, what)
        time.sleep(0.5)
    after = sorted(srv.backend_pids())
    check(before == after, "%s: backend processes changed from %s to %s (a respawn loop?)" % (
        what, before, after))
    bad = log_crashes(srv)
    check(not bad, "%s: the log shows a crash: %s" % (what, " | ".join(bad[:5])))
    return before


def still_there(srv, pids):
    """Every backend process of pids still runs (mod_fcgid may add more: it
    gives a process one request at a time, and a held poll keeps one)."""
    now = srv.backend_pids()
    return SERVER == "cgi" or all(p in now for p in pids)


def log_lines(srv, pattern):
    return [ln for ln in srv.log_text().splitlines() if re.search(pattern, ln)]


def check_one_line(srv, pattern, what):
    """The problem is logged with a clear line -- once per process: a
    backend retrying every 3 s must not repeat it (CGI: a process per
    request, so once per request)."""
    lines = log_lines(srv, pattern)
    check(lines, "%s: no log line matches %r; the log ends: %s" % (what, pattern,
                                                                 srv.read_log()[-600:]))
    print("# %s: %s" % (what, lines[0].split(" msg=", 1)[-1][:300]), flush=True)
    if SERVER != "cgi":
        pids = {re.search(r"\bpid=(\d+) ", ln).group(1) for ln in lines}
        check(len(lines) == len(pids), "%s: logged %d times by %d processes" % (
            what, len(lines), len(pids)))


def wait_serving(srv, what):
    end = time.monotonic() + RETRY_WAIT
    while True:
        st, h, data = srv.request("GET", "/rtc/status", timeout=15)
        if st == 200:
            return
        check(time.monotonic() < end, "%s: still %s %s %d s after the fix" % (
            what, st, short(data), RETRY_WAIT))
        time.sleep(0.3)


def check_works(srv, tag):
    """A call's messages flow both ways and a held poll is woken by a send."""
    a, b = call_pair(srv, tag + "-a", tag + "-b")
    a.send({"id": "onIceCandidate", "candidate": {"c": 1}})
    b.expect({"id": "iceCandidate", "candidate": {"c": 1}})
    p = Background(a.poll, 20)
    if SERVER != "cgi":
        wait_held(srv, 1)
    else:
        time.sleep(1)
    b.send({"id": "onIceCandidate", "candidate": {"c": 2}})
    got = p.join(40)
    check([m.get("candidate") for m in got] == [{"c": 2}],
          "the held poll got %s, not the candidate sent" % short(got))


def access_case(fix, damage, pattern, what):
    """A database the www-data backend may not write: 503s, the line, no
    respawn; fix() and it serves, the same backend."""
    base = make_database(nonroot=True)
    srv = None
    try:
        damage(db_path(base))
        srv = restart(base)
        error = check_503_everywhere(srv, what)
        check("permission" in error or "write" in error,
              "%s: the 503 does not name the problem: %r" % (what, error))
        pids = check_stays_up(srv, what)
        check_one_line(srv, pattern, what)
        fix(db_path(base))
        wait_serving(srv, what)
        check_works(srv, "fixed")
        check(still_there(srv, pids),
              "%s: the backend was restarted (%s, now %s)" % (what, pids, srv.backend_pids()))
        check(SERVER == "cgi" or log_lines(srv, r"opened: serving"),
              "%s: no line says the database was opened after all" % what)
    finally:
        if srv:
            srv.stop()
        remove(base)


def test_read_only():
    access_case(lambda p: os.chmod(p, 0o644), lambda p: os.chmod(p, 0o444),
                r"level=error .*msg=\"database .* is not readable and writable by uid \d+ \(%s\).*"
                r"mode 0444" % RUN_USER, "read-only database")


def test_other_owner():
    pw = pwd.getpwnam(RUN_USER)

    def damage(p):
        os.chown(p, 0, 0)
        os.chmod(p, 0o600)

    access_case(lambda p: os.chown(p, pw.pw_uid, pw.pw_gid), damage,
                r"level=error .*msg=\"database .* is not readable and writable by uid \d+ \(%s\).*"
                r"belongs to uid 0 \(root\) with mode 0600" % RUN_USER,
                "database owned by root, mode 0600")


def damaged_case(damage, pattern, what, fix=None):
    """A database the backend cannot use: 503s, the line, no respawn; the
    fix (moving it away, by default) and it serves, the same backend."""
    base = make_database(messages=600)
    srv = None
    try:
        damage(db_path(base))
        settle_files(base)
        srv = restart(base)
        error = check_503_everywhere(srv, what)
        pids = check_stays_up(srv, what)
        check_one_line(srv, pattern, what)
        if fix is None:   # README: move it away (with -wal, -shm); an empty one is made
            for suffix in ("", "-wal", "-shm"):
                if os.path.exists(db_path(base) + suffix):
                    os.rename(db_path(base) + suffix, db_path(base) + suffix + ".damaged")
        else:
            fix(db_path(base))
            settle_files(base)
        wait_serving(srv, what)
        check_works(srv, "after")
        check(still_there(srv, pids),
              "%s: the backend was restarted (%s, now %s)" % (what, pids, srv.backend_pids()))
        return error
    finally:
        if srv:
            srv.stop()
        remove(base)


def garbage_pages(p):
    size = os.path.getsize(p)
    rnd = random.Random(10)
    with open(p, "r+b") as f:
        page = 1024
        pages = size // page
        check(pages >= 20, "the database has only %d pages: too small to damage its middle" % pages)
        for n in range(pages // 3, pages // 3 + 8):
            f.seek(n * page)
            f.write(bytes(rnd.randrange(256) for _ in range(page)))


def garbage_header(p):
    with open(p, "r+b") as f:
        f.write(bytes(random.Random(11).randrange(256) for _ in range(100)))


def test_corrupt_pages():
    if SERVER == "cgi":
        raise Skip("a CGI process opens the database per request and does not read every page "
                   "(PRAGMA quick_check) each time: damaged pages are found by the request that "
                   "reads them")
    err = damaged_case(garbage_pages,
                       r"level=error .*msg=\"database .* is corrupt \(.*\): restore a backup, or move it away",
                       "garbage pages in the middle of the database")
    check("damaged" in err, "the 503 does not say the database is damaged: %r" % err)


def test_corrupt_header():
    err = damaged_case(garbage_header,
                       r"level=error .*msg=\"database .* is corrupt \(.*not a database.*\): restore a backup",
                       "a garbage database header")
    check("damaged" in err, "the 503 does not say the database is damaged: %r" % err)


def set_version(p, v):
    db = sqlite3.connect(p, isolation_level=None)
    db.execute("PRAGMA user_version = %d" % v)
    db.close()


# One above the newest migration this checkout has (db/NNN-*.sql): newer
# than this build knows, whatever migrations are added later.
NEWER_SCHEMA = 1 + max(int(f[:3]) for f in os.listdir(os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "db")) if f[:3].isdigit())


def test_newer_schema():
    version = {}

    def damage(p):
        db = sqlite3.connect(p, isolation_level=None)
        version["was"] = db.execute("PRAGMA user_version").fetchone()[0]
        db.close()
        set_version(p, NEWER_SCHEMA)

    err = damaged_case(damage,
                       r"level=error .*msg=\"database .* is from a newer longcall \(schema %d, this build "
                       r"knows %d\): upgrade longcall or restore a backup" % (NEWER_SCHEMA, NEWER_SCHEMA - 1),
                       "a database from a newer schema",
                       fix=lambda p: set_version(p, version["was"]))
    check("newer" in err, "the 503 does not say the database is newer: %r" % err)


def wake_case(damage, what):
    """A damaged wake file is rebuilt at start with a warning; everything
    works."""
    base = make_database()
    srv = None
    try:
        wake = os.path.join(base.state, "longcall.db.wake")   # beside LONGCALL_DB
        damage(wake)
        srv = restart(base)
        st, h, data = srv.request("GET", "/rtc/status", timeout=15)
        check(st == 200, "%s: status %s %s" % (what, st, short(data)))
        lines = log_lines(srv, r"level=warn event=wake_file_rebuilt .*msg=\"wake file .* was damaged .*: rebuilt")
        check(lines, "%s: no warning says the wake file was rebuilt: %s" % (
            what, srv.read_log()[-600:]))
        print("# %s: %s" % (what, lines[0].split(" msg=", 1)[-1][:300]), flush=True)
        check(SERVER == "cgi" or len(lines) == 1, "%s: rebuilt %d times" % (what, len(lines)))
        check(os.path.getsize(wake) >= 100000, "%s: the wake file has %d bytes" % (
            what, os.path.getsize(wake)))
        pids = sorted(srv.backend_pids())
        check_works(srv, "wake")
        check(still_there(srv, pids), "%s: backends changed from %s to %s" % (
            what, pids, srv.backend_pids()))
        bad = log_crashes(srv)
        check(not bad, "%s: the log shows a crash: %s" % (what, " | ".join(bad[:5])))
        # Rebuilt once: later requests (CGI: each a new process) do not
        # rebuild it again.
        check(len(log_lines(srv, r"wake file .* was damaged")) == len(lines),
              "%s: the wake file was rebuilt again while serving" % what)
    finally:
        if srv:
            srv.stop()
        remove(base)


def test_wake_truncated():
    wake_case(lambda p: os.truncate(p, 100), "a truncated wake file")


def test_wake_garbage():
    def damage(p):
        size = os.path.getsize(p)
        with open(p, "r+b") as f:
            f.write(random.Random(12).randbytes(size))
    wake_case(damage, "a wake file full of garbage")


TESTS = [
    ("read-only database (0444, backend www-data): 503s, one clear line, no respawn; "
     "chmod fixes it without a restart", test_read_only),
    ("database owned by root 0600 (backend www-data): 503s, one clear line, no respawn; "
     "chown fixes it without a restart", test_other_owner),
    ("garbage pages in the database: 503s, one clear line, no respawn; moved away, "
     "a new one serves", test_corrupt_pages),
    ("garbage database header: 503s, one clear line, no respawn; moved away, "
     "a new one serves", test_corrupt_header),
    ("database from a newer schema: 503s, one clear line, no respawn; "
     "restored, it serves", test_newer_schema),
    ("truncated wake file: rebuilt with a warning, calls and held polls work",
     test_wake_truncated),
    ("garbage wake file: rebuilt with a warning, calls and held polls work",
     test_wake_garbage),
]


def main():
    t = Runner("test_state")
    t.plan(len(TESTS))
    for name, fn in TESTS:
        try:
            t.run(name, fn)
        except Skip as e:
            print("skip - %s: %s" % (name, e), flush=True)
    t.done()


if __name__ == "__main__":
    main()
