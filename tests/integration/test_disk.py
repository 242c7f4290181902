#!/usr/bin/env python3
"""Disk full: the database (LONGCALL_DB, and so its WAL, -shm and <db>.wake)
on a small tmpfs mounted by the test (unmounted in a finally; where mounting
is not permitted every test is a skip with the reason), filled until writes
fail. Counted: every send answered {"ok": true} is delivered once and in
order; sends refused get 503 with a JSON error saying storage is full and
Retry-After (never a crash, never a 500); polls keep delivering what was
stored; once space is freed sends work again without a restart (same
backend PID, no crash in the log); the full disk is logged once, not per
request. Three ways to fill: a filler file, the WAL itself growing while a
reader keeps checkpoints from completing, and a backend starting on a full
disk (its wake file cannot be allocated: 503s, not a SIGBUS)."""
import errno
import json
import os
import pwd
import re
import sqlite3
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from harness import LIGHTTPD_KINDS, RUN_USER, SERVER, Server  # noqa: E402
from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_json_answer, log_crashes, short, wait_held)

TESTS = [
    "filler file: 503 storage full + Retry-After, polls deliver, nothing lost, "
    "sends work again once freed, same backend",
    "WAL grows into the full disk (a reader stops checkpoints): 503, nothing lost, "
    "works again once freed",
    "backend starting on a full disk: 503s and a clear log line (no SIGBUS), "
    "serves once space is freed, same backend",
]
FULL_LINE = re.compile(r'level=error event=storage_full .*msg="database .*: storage full')
MAX_SENDS = 3000       # bounds of every fill loop: count ...
FILL_SECONDS = 90      # ... and time


class Skip(BaseException):
    """A check that cannot run here (Runner.run lets it through)."""


class Tmpfs:
    """A tmpfs of size under a temporary folder; the backend's user may
    write it (www-data behind Apache and nginx)."""

    def __init__(self, size):
        self.dir = tempfile.mkdtemp(prefix="longcall-disk-")
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs",
                            self.dir], capture_output=True, text=True)
        if p.returncode != 0:
            os.rmdir(self.dir)
            raise Skip("cannot mount a tmpfs here (%s)" % (p.stderr.strip() or p.returncode))
        if SERVER not in LIGHTTPD_KINDS:
            pw = pwd.getpwnam(RUN_USER)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self.db = os.path.join(self.dir, "longcall.db")
        self.filler = os.path.join(self.dir, "filler")

    def fill(self, limit=None):
        """Writes the filler until the disk is full (or limit bytes).
        Returns the bytes written."""
        chunk = b"\xa5" * 65536
        n = 0
        # Unbuffered: a short write at the end of the space is counted and
        # the next one raises ENOSPC here, not in close() (a buffered file
        # keeps the rest and raises when the with block ends).
        with open(self.filler, "ab", buffering=0) as f:
            try:
                while limit is None or n < limit:
                    n += f.write(chunk if limit is None else chunk[:min(65536, limit - n)])
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
        if limit is None:  # the last bytes a short write may have left
            try:
                with open(self.filler, "ab", buffering=0) as f:
                    while f.write(b"\xa5" * 512):
                        pass
            except OSError as e:
                if e.errno != errno.ENOSPC:
                    raise
        return n

    def unfill(self):
        if os.path.exists(self.filler):
            os.unlink(self.filler)

    def free(self):
        s = os.statvfs(self.dir)
        return s.f_bavail * s.f_frsize

    def close(self):
        p = subprocess.run(["umount", self.dir], capture_output=True, text=True)
        if p.returncode != 0:
            subprocess.run(["umount", "-l", self.dir], capture_output=True)
        try:
            os.rmdir(self.dir)
        except OSError:
            pass


ENV = {"LONGCALL_MAILBOX_QUOTA": "100000"}  # the peer reads but its acks cannot be written


def disk_server(disk, down_ok=False):
    """A server (not started) whose database is on disk. The front ends'
    shipped files set LONGCALL_DB to the state folder themselves (lighttpd's
    bin-environment, mod_fcgid's FcgidInitialEnv), so the database and the
    wake file there are symbolic links to the tmpfs; SQLite puts -wal and
    -shm beside the link's target."""
    srv = Server(procs=1, env=ENV, down_ok=down_ok)
    os.symlink(disk.db, os.path.join(srv.state, "longcall.db"))
    os.symlink(disk.db + ".wake", os.path.join(srv.state, "longcall.db.wake"))
    return srv


def check_full_503(st, h, data, what):
    body = check_json_answer(st, h, data, 503, what)
    check("full" in body["error"], "%s: the error does not say storage is full: %s" % (
        what, short(body)))
    ra = h.get("retry-after", "")
    check(ra.isdigit() and int(ra) >= 1, "%s: 503 without a Retry-After in seconds: %r" % (
        what, ra))


def check_same_backend(srv, pids, what):
    """No backend process died (mod_fcgid may have added some: it gives a
    process one request at a time, and a held poll keeps one)."""
    now = sorted(srv.backend_pids())
    check(pids and all(p in now for p in pids),
          "%s: backend processes changed from %s to %s" % (what, pids, now))
    bad = log_crashes(srv)
    check(not bad, "%s: the log shows a crash: %s" % (what, " | ".join(bad[:5])))


def full_lines(srv):
    return [ln for ln in srv.log_text().splitlines() if FULL_LINE.search(ln)]


def log_lines(srv, pattern):
    return [ln for ln in srv.log_text().splitlines() if re.search(pattern, ln)]


def check_logged_per_episode(srv, refused):
    """Each backend process logs a full disk once per episode: one line when
    a write first fails, the next only after a line saying writes work
    again (under CGI every request is a process of its own)."""
    pid = re.compile(r"\bpid=(\d+) ")
    per = {}
    for ln in srv.log_text().splitlines():
        m = pid.search(ln)
        if m and FULL_LINE.search(ln):
            per.setdefault(m.group(1), []).append("full")
        elif m and "writes work again" in ln:
            per.setdefault(m.group(1), []).append("again")
    lines = sum(seq.count("full") for seq in per.values())
    for p, seq in per.items():
        check(all(x != y for x, y in zip(seq, seq[1:])),
              "process %s logged the full disk twice in one episode: %s" % (p, seq))
    # CGI: every request that meets the full disk (a poll's acknowledgement
    # too) is a process of its own, so the lines may outnumber the sends.
    check(0 < lines and (lines < refused or SERVER == "cgi"),
          "%d 'storage full' lines for %d refused writes" % (lines, refused))
    return lines


def send_until_refused(a, pad, sent, refused, want_refused=5, peer=None):
    """Sends numbered candidates until want_refused sends in a row were
    refused with 503 (bounded in count and time); the peer, if given,
    polls every 50 sends, as a client would. Appends the numbers answered
    ok to sent; counts refusals. Any other answer fails."""
    end = time.monotonic() + FILL_SECONDS
    row = 0
    n = (sent[-1] + 1) if sent else 0
    for _ in range(MAX_SENDS):
        if row >= want_refused or time.monotonic() > end:
            break
        n += 1
        if peer is not None and n % 50 == 0:
            peer.poll(timeout=0)
        st, h, data = a.send_raw({"id": "onIceCandidate", "candidate": {"n": n, "pad": pad}})
        if st == 200:
            check(json.loads(data) == {"ok": True}, "send %d: %s" % (n, short(data)))
            sent.append(n)
            row = 0
        else:
            check_full_503(st, h, data, "send %d on a full disk" % n)
            refused[0] += 1
            row += 1
    check(row >= want_refused, "the disk never filled: %d sends answered ok, %d refused" % (
        len(sent), refused[0]))


def received_numbers(b):
    return [m["candidate"]["n"] for m in b.received if m.get("id") == "iceCandidate"]


def drain_numbers(b, want, deadline=20):
    """Polls b until its candidates number at least len(want)."""
    end = time.monotonic() + deadline
    while len(received_numbers(b)) < len(want) and time.monotonic() < end:
        b.poll(timeout=1)
    b.poll(timeout=0)
    return received_numbers(b)


def check_delivered(b, sent, what):
    got = drain_numbers(b, sent)
    dups = len(got) - len(set(got))
    lost = sorted(set(sent) - set(got))
    extra = sorted(set(got) - set(sent))
    print("# %s: %d answered ok, %d delivered, %d lost, %d duplicated, %d never answered ok "
          "yet delivered" % (what, len(sent), len(got), len(lost), dups, len(extra)), flush=True)
    check(not lost, "%s: %d sends answered ok were not delivered: %s" % (what, len(lost),
                                                                      short(lost)))
    check(not dups and not extra, "%s: duplicated %d, delivered without ok %s" % (
        what, dups, short(extra)))
    check(got == sent, "%s: delivered out of order: %s" % (what, short(got)))


def sends_work_again(a, sent, count=20, deadline=20):
    """After space was freed: sends are accepted again (the first within a
    bounded retry, the rest at once)."""
    end = time.monotonic() + deadline
    n = sent[-1] + 1 if sent else 1
    while True:
        st, h, data = a.send_raw({"id": "onIceCandidate", "candidate": {"n": n}})
        if st == 200:
            break
        check_full_503(st, h, data, "send %d after space was freed" % n)
        check(time.monotonic() < end, "sends still refused %d s after space was freed: %s" % (
            deadline, short(data)))
        time.sleep(0.5)
    sent.append(n)
    for _ in range(count - 1):
        n += 1
        a.send({"id": "onIceCandidate", "candidate": {"n": n}})
        sent.append(n)


def test_filler():
    disk = Tmpfs("8m")
    srv = None
    try:
        srv = disk_server(disk)
        srv.start()
        pids = sorted(srv.backend_pids())
        a, b = call_pair(srv, "full-a", "full-b")
        sent, refused = [], [0]
        pad = "x" * 1500
        for _ in range(10):   # stored before the disk fills
            n = (sent[-1] + 1) if sent else 1
            a.send({"id": "onIceCandidate", "candidate": {"n": n, "pad": pad}})
            sent.append(n)
        before = len(sent)
        disk.fill()
        send_until_refused(a, pad, sent, refused)
        # The other writing endpoints say so too. (A new session is a small
        # write: the few bytes left in the WAL's last page may take one
        # or two.)
        for i in range(50):
            st, h, data = srv.request("POST", "/rtc/session")
            if st != 200:
                break
        check_full_503(st, h, data, "POST /rtc/session on a full disk (after %d created)" % i)
        # Polls still deliver everything stored (they only read).
        check_delivered(b, sent, "while full")
        st, h, data = b.poll_raw(b.cursor, 1)
        check_json_answer(st, h, data, 200, "a held poll on a full disk")
        lines = check_logged_per_episode(srv, refused[0])
        print("# filler: %d sends before the filler, %d more ok, %d refused; %d 'storage full' "
              "log lines" % (before, len(sent) - before, refused[0], lines), flush=True)
        disk.unfill()
        sends_work_again(a, sent)
        check_delivered(b, sent, "after freeing")
        check(SERVER == "cgi" or log_lines(srv, r"writes work again"),
              "no line says writes work again")
        # A new session and a ping work too.
        c = Client(srv, "after-full")
        c.send({"id": "ping"})
        c.expect({"id": "pong"})
        check_same_backend(srv, pids, "after the disk was full")
    finally:
        if srv:
            srv.cleanup()
        disk.close()


def test_wal():
    disk = Tmpfs("48m")
    srv = None
    reader = None
    try:
        srv = disk_server(disk)
        srv.start()
        pids = sorted(srv.backend_pids())
        a, b = call_pair(srv, "wal-a", "wal-b")
        # The rest of the machine's files, freed later: well more than the
        # WAL will hold. A checkpoint needs about the WAL's size in the
        # database file before the WAL can start again from its beginning,
        # and the acknowledgements the peer's polls could not write while
        # the disk was full are written then -- each rewrites its message's
        # row, pad included (SQLite rewrites a whole row on UPDATE).
        disk.fill(limit=36 << 20)
        # A reader holding its snapshot: no checkpoint can get past it, so
        # the WAL grows with every commit until the disk is full.
        reader = sqlite3.connect(disk.db, timeout=10, isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM messages").fetchone()
        sent, refused = [], [0]
        send_until_refused(a, "w" * 30000, sent, refused, peer=b)
        wal = os.path.getsize(disk.db + "-wal")
        print("# wal: %d sends ok, %d refused, WAL %d bytes, %d bytes free" % (
            len(sent), refused[0], wal, disk.free()), flush=True)
        check(wal > (4 << 20), "the WAL did not grow (%d bytes): the reader did not hold it" % wal)
        check_delivered(b, sent, "WAL full")
        reader.execute("ROLLBACK")
        reader.close()
        reader = None
        disk.unfill()
        try:
            sends_work_again(a, sent)
        finally:
            print("# wal after freeing: WAL %d bytes, database %d bytes, %d bytes free" % (
                os.path.getsize(disk.db + "-wal"), os.path.getsize(disk.db), disk.free()),
                flush=True)
            print("# log: " + "\n# log: ".join(srv.read_log().splitlines()[-6:]), flush=True)
        check_delivered(b, sent, "WAL after freeing")
        check_logged_per_episode(srv, refused[0])
        check_same_backend(srv, pids, "after the WAL filled the disk")
    finally:
        if reader is not None:
            reader.close()
        if srv:
            srv.cleanup()
        disk.close()


def status_503(srv, what):
    st, h, data = srv.request("GET", "/rtc/status", timeout=15)
    check(st == 503, "%s: status %s %s" % (what, st, short(data)))
    body = json.loads(data)
    check(body.get("ok") is False and "full" in body.get("error", ""),
          "%s: status should say ok false and storage full: %s" % (what, short(body)))
    check(h.get("retry-after", "").isdigit(), "%s: no Retry-After" % what)


def test_start_full():
    disk = Tmpfs("8m")
    srv = None
    try:
        # A database made while there was room, then the wake file is gone
        # (a new one is made at start) and the disk fills up.
        srv = disk_server(disk)
        srv.start()
        Client(srv).send({"id": "ping"})
        srv.cleanup()
        srv = None
        os.unlink(disk.db + ".wake")
        disk.fill()
        srv = disk_server(disk, down_ok=True)
        srv.start()
        status_503(srv, "a backend started on a full disk")
        pids = sorted(srv.backend_pids())
        st, h, data = srv.request("POST", "/rtc/session")
        check_full_503(st, h, data, "POST /rtc/session, backend started on a full disk")
        time.sleep(4)   # more than the backend's retry period: still the same process
        status_503(srv, "4 s later")
        lines = [ln for ln in srv.log_text().splitlines()
                 if re.search(r"(wake file|database) .*(No space left|storage full)", ln)]
        check(lines, "no log line says the disk is full: %s" % srv.read_log()[-800:])
        print("# start on a full disk: %s" % lines[0].strip()[:200], flush=True)
        check(SERVER == "cgi" or len(lines) == 1,
              "the problem was logged %d times (each retry?)" % len(lines))
        check_same_backend(srv, pids, "a backend started on a full disk")
        disk.unfill()
        end = time.monotonic() + 20
        while srv.request("GET", "/rtc/status", timeout=15)[0] != 200:
            check(time.monotonic() < end, "still 503 20 s after space was freed")
            time.sleep(0.3)
        # Works normally now: a call's messages flow, a held poll is woken.
        a, b = call_pair(srv, "late-a", "late-b")
        p = Background(b.poll, 20)
        if SERVER != "cgi":
            wait_held(srv, 1)
        else:
            time.sleep(1)
        a.send({"id": "onIceCandidate", "candidate": {"n": 1}})
        got = p.join(40)
        check([m.get("candidate") for m in got] == [{"n": 1}],
              "the held poll got %s, not the candidate" % short(got))
        check_same_backend(srv, pids, "once space was freed")
    finally:
        if srv:
            srv.cleanup()
        disk.close()


def main():
    t = Runner("test_disk")
    t.plan(len(TESTS))
    for name, fn in zip(TESTS, (test_filler, test_wal, test_start_full)):
        try:
            t.run(name, fn)
        except Skip as e:
            print("skip - %s: %s" % (name, e), flush=True)
    t.done()


if __name__ == "__main__":
    main()
