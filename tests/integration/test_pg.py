#!/usr/bin/env python3
"""The PostgreSQL store on one node (issue 15, part 1), against a real
PostgreSQL this script starts (tests/lib/postgres.py: Debian's server
binaries, initdb into a temporary folder as the postgres user, a loopback
port, stopped by PID at the end):

- the store's unit tests (build/tests/test_store: the store contract) and
  every protocol case in-process (build/tests/test_cases) on PostgreSQL;
- four backend processes started together on an empty database migrate it
  once (under the advisory lock) and a poll held in one is woken by a send
  through another (the wake file stays per machine); the README's
  PostgreSQL history queries run as printed with psql;
- LONGCALL_WAKE_FILE is required with PostgreSQL (a start-up line naming it);
- backends started while PostgreSQL is down answer JSON 503s and serve
  once it is up, without a restart;
- a password in LONGCALL_DB never reaches the log;
- another connection holding the write lock (what a long write of another
  node would do): sends get a JSON 503 with Retry-After after
  LONGCALL_BUSY_TIMEOUT, polls are answered, the retried batch is applied
  once after;
- PostgreSQL stopped (immediate shutdown) and started again: JSON 503s
  while it is down, then the same backend process serves again without a
  restart, and nothing acknowledged before is lost; stopped and started
  with no request in between, the next requests are served at once.

The whole integration suite also runs on PostgreSQL: tests/run-tests'
stage "postgresql" (LONGCALL_TEST_STORE=pg)."""
import glob
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import harness  # noqa: E402
import postgres  # noqa: E402
from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_json_answer, check_messages, log_crashes, short, status, wait_held,
                      wait_status)

ROOT = harness.ROOT
UNITS = ("test_store", "test_cases")
PG_LOCK_WRITE = "7813586462003126636"  # fcgi/store_pg.c


def run_unit(pg, name):
    """build/tests/NAME with $LONGCALL_TEST_PG: every result ok, as many as
    its plan says."""
    path = os.path.join(ROOT, "build", "tests", name)
    check(os.access(path, os.X_OK), "%s is not built (make unit)" % path)
    env = dict(os.environ, LONGCALL_TEST_PG="postgresql://%s@127.0.0.1:%d" % (
        postgres.PG_USER, pg.port))
    r = subprocess.run([path], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    lines = r.stdout.splitlines()
    oks = [ln for ln in lines if ln.startswith("ok - ")]
    bad = [ln for ln in lines if ln.startswith("not ok")]
    plans = [ln for ln in lines if ln.startswith("1..")]
    check(r.returncode == 0 and not bad,
          "%s on PostgreSQL: exit %d, %s; stderr: %s" % (name, r.returncode, " | ".join(bad[:5]),
                                                         r.stderr[-600:]))
    check(len(plans) == 1 and plans[0] == "1..%d" % len(oks) and len(oks) > 10,
          "%s: plan %s for %d results" % (name, plans, len(oks)))
    print("# %s on PostgreSQL: %d checks" % (name, len(oks)), file=sys.stderr)


def test_migrate_once(srv):
    wait_status(srv, lambda x: x.get("processes") == 4, "processes == 4")
    lines = [ln for ln in srv.log_text().splitlines()
             if "migrated to PostgreSQL schema version" in ln]
    version = srv.db_query("SELECT version FROM longcall_schema")
    n = len(glob.glob(os.path.join(ROOT, "db", "pg", "[0-9][0-9][0-9]-*.sql")))
    pids = {re.search(r"\bpid=(\d+) ", ln).group(1) for ln in lines}
    check(len(lines) == n and len(pids) == 1,
          "expected %d migration lines (one per version) from one of 4 processes, got %s"
          % (n, lines))
    check(version == [(n,)], "longcall_schema holds %s, expected [(%d,)]" % (version, n))


def test_cross_process_wake(srv):
    a, b = call_pair(srv, "pg-a", "pg-b")
    for rnd in range(3):
        p = Background(b.poll, 20)
        wait_held(srv, 1)
        a.send({"id": "onIceCandidate", "candidate": {"round": rnd}})
        got = p.join(40)
        check(p.elapsed() < 15, "round %d: the held poll returned after %.1f s of its 20 s "
              "timeout" % (rnd, p.elapsed()))
        check_messages("pg-b", [{"id": "iceCandidate", "candidate": {"round": rnd}}], got)
    rows = srv.db_query("SELECT count(*) FROM messages WHERE type = 'iceCandidate'")
    check(rows == [(3,)], "the history has %s iceCandidate rows, expected 3" % rows)


def test_wake_file_required(pg):
    uri = pg.create_database()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LONGCALL_")}
    env["LONGCALL_DB"] = uri
    r = subprocess.run([harness.BIN], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    check(r.returncode != 0 and "LONGCALL_WAKE_FILE" in r.stderr,
          "without LONGCALL_WAKE_FILE: exit %d, stderr %s" % (r.returncode, r.stderr[-300:]))


def test_password_hidden(pg):
    # trust authentication: the password is sent for nothing, but it is in
    # LONGCALL_DB, and the backend logs the database it serves.
    uri = pg.create_database().replace("postgres@", "postgres:pw-never-logged@")
    srv = harness.Server(store="pg")
    srv.db_uri = uri
    try:
        srv.start()
        Client(srv).send({"id": "ping"})
        log = srv.log_text()
        check("pw-never-logged" not in log, "the password is in the log")
        check("postgres:***@" in log, "the log does not name the database: %s" % log[-500:])
    finally:
        srv.cleanup()


def test_busy(srv, pg):
    a, b = call_pair(srv, "busy-a", "busy-b")
    a.send({"id": "onIceCandidate", "candidate": "before"})
    psql = subprocess.Popen([os.path.join(postgres.PG_BIN, "psql"), "-X", "-q", "-d",
                             srv.db_uri, "-c", "BEGIN", "-c",
                             "SELECT pg_advisory_xact_lock(%s)" % PG_LOCK_WRITE,
                             "-c", "SELECT pg_sleep(4)", "-c", "COMMIT"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        st, h, data = a.send_raw({"id": "onIceCandidate", "candidate": "during"}, batch="b-1")
        body = check_json_answer(st, h, data, 503, "send while the write lock is held")
        check("retry-after" in h, "503 without Retry-After: %s" % short(h))
        check(psql.poll() is None and time.monotonic() - t0 < 3.5,
              "the 503 came only once the lock was free: the busy timeout did not hold")
        got = b.poll(timeout=0)  # a read: not held up
        check_messages("busy-b", [{"id": "iceCandidate", "candidate": "before"}], got)
        check("error" in body, "503 body %s" % short(body))
    finally:
        psql.wait(timeout=30)
    a.send({"id": "onIceCandidate", "candidate": "during"}, batch="b-1")
    a.send({"id": "onIceCandidate", "candidate": "during"}, batch="b-1")  # retried: applied once
    b.expect({"id": "iceCandidate", "candidate": "during"})


def test_restart(srv, pg):
    a, b = call_pair(srv, "rs-a", "rs-b")
    a.send({"id": "onIceCandidate", "candidate": "kept"})
    pids = set(srv.backend_pids())
    pg.halt()
    try:
        st, h, data = a.send_raw({"id": "onIceCandidate", "candidate": "down"}, batch="r-1")
        check_json_answer(st, h, data, 503, "send while PostgreSQL is down")
        check("retry-after" in h, "503 without Retry-After: %s" % short(h))
        st, h, data = b.poll_raw(timeout=0)
        check_json_answer(st, h, data, 503, "poll while PostgreSQL is down")
    finally:
        pg.resume()
    a.send({"id": "onIceCandidate", "candidate": "down"}, batch="r-1")
    b.expect({"id": "iceCandidate", "candidate": "kept"},
             {"id": "iceCandidate", "candidate": "down"})
    # Stopped and started with no request in between: the connections the
    # server closed are found out by the next transaction's BEGIN, made again
    # and the request served (no 503 for it).
    for p in srv.backend_pids():
        check(os.path.exists("/proc/%d" % p), "backend %d gone" % p)
    pg.halt()
    pg.resume()
    for i in range(4):  # reaches both backend processes (or the same twice)
        a.send({"id": "onIceCandidate", "candidate": "after %d" % i})
    b.expect(*[{"id": "iceCandidate", "candidate": "after %d" % i} for i in range(4)])
    check(set(srv.backend_pids()) == pids, "the backends were restarted: %s -> %s" % (
        pids, srv.backend_pids()))
    s = status(srv)
    check(s.get("ok") is True, "status after the restart: %s" % short(s))


def test_readme_queries(srv):
    """The README's PostgreSQL history queries run as printed with psql on
    a database filled by a real call."""
    import re
    readme = open(os.path.join(ROOT, "README.md")).read()
    blocks = re.findall(r"```postgresql\n(.*?)```", readme, re.S)
    check(len(blocks) == 1, "README has %d postgresql blocks, expected 1" % len(blocks))
    queries = [q.strip() for q in blocks[0].split(";\n") if q.strip()]
    check(len(queries) >= 6, "README shows %d PostgreSQL queries" % len(queries))
    a, b = call_pair(srv, "alice", "bob")
    a.send({"id": "onIceCandidate", "candidate": "a1"})
    b.collect(1)
    a.send({"id": "stop"})
    b.drain(lambda ms: any(m["id"] == "stopCommunication" for m in ms))
    pg = postgres.instance()
    for i, q in enumerate(queries):
        try:
            rows = pg.psql(srv.db_uri, q + ";")
        except RuntimeError as e:
            raise AssertionError("README PostgreSQL query %d (%s) failed: %s" % (
                i + 1, q.splitlines()[0][:60], e))
        text = "\n".join("|".join(v or "" for v in r) for r in rows)
        if "FROM calls ORDER BY id DESC LIMIT 20" in q:
            check(re.search(r"\|alice\|bob\|.*\|completed\|", text),
                  "last-calls query: no completed alice -> bob call in %s" % text)
        if "call_id = (SELECT max(id)" in q:
            check(re.search(r"incomingCall.*callResponse.*iceCandidate.*stopCommunication",
                            text, re.S), "trace query: %s" % text)


def test_start_while_down(pg):
    """A backend started while PostgreSQL is down does not exit: it answers
    JSON 503s with Retry-After, logs why once, and serves once PostgreSQL is
    up, without a restart (the same PIDs)."""
    uri = pg.create_database()
    srv = harness.Server(procs=2, store="pg", down_ok=True)
    srv.db_uri = uri
    pg.halt()
    try:
        try:
            srv.start()
            st, h, data = srv.request("POST", "/rtc/session")
            check_json_answer(st, h, data, 503, "a new session while PostgreSQL is down")
            check(h.get("retry-after", "").isdigit(), "503 without Retry-After: %s" % short(h))
            pids = set(srv.backend_pids())
        finally:
            pg.resume()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st, h, data = srv.request("GET", "/rtc/status")
            if st == 200:
                break
            time.sleep(0.5)
        check(st == 200, "status still %d 30 s after PostgreSQL came back" % st)
        Client(srv).send({"id": "ping"})
        check(set(srv.backend_pids()) == pids, "the backends were restarted: %s -> %s" % (
            pids, srv.backend_pids()))
        lines = [ln for ln in srv.log_text().splitlines() if "cannot open database" in ln]
        check(lines, "no log line says why the database could not be opened")
        bad = log_crashes(srv)
        check(not bad, "log shows: " + " | ".join(bad[:5]))
    finally:
        srv.cleanup()


def main():
    t = Runner("pg")
    why = postgres.available()
    # the units; 4 processes (3 + its crash check); wake file, password, start while down;
    # busy, restart, crash
    n = len(UNITS) + 4 + 3 + 3
    t.plan(n)
    if why:
        for _ in range(n):
            t.skip("PostgreSQL store", why)
        t.done()
    pg = postgres.instance()
    for name in UNITS:
        label = "%s: the store on PostgreSQL (unit tests, in-process)" % name
        if os.environ.get("LONGCALL_TEST_BIN"):  # tests/run-tests' sanitizer stage
            t.skip(label, "LONGCALL_TEST_BIN changes the backend only; the unit tests (built "
                   "with ASan and UBSan already) ran without it")
            continue
        t.run(label, run_unit, pg, name)
    t.group({"procs": 4, "store": "pg"}, [
        ("4 processes starting on an empty database migrate it once", test_migrate_once),
        ("a poll held in one process is woken by a send through another", test_cross_process_wake),
        ("the README's PostgreSQL queries run as printed with psql", test_readme_queries),
    ])
    t.run("LONGCALL_WAKE_FILE is required with PostgreSQL", test_wake_file_required, pg)
    t.run("a password in LONGCALL_DB never reaches the log", test_password_hidden, pg)
    t.run("started while PostgreSQL is down: 503 + Retry-After, then served without a restart",
          test_start_while_down, pg)
    srv = harness.Server(procs=2, store="pg", env={"LONGCALL_BUSY_TIMEOUT": "500"})
    try:
        srv.start()
        t.run("write lock held elsewhere: sends 503 + Retry-After, polls answered, the retry "
              "applied once", test_busy, srv, pg)
        t.run("PostgreSQL stopped and started: 503 while down, then served by the same "
              "backends, nothing lost", test_restart, srv, pg)
        bad = log_crashes(srv)
        t.report("no backend crash in the log (busy, restart)",
                 None if not bad else "log shows: " + " | ".join(bad[:5]))
    except Exception as e:  # the server did not start
        while t.total < n:
            t.report("busy and restart", "server did not start: %s" % e)
    finally:
        srv.cleanup()
    t.done()


if __name__ == "__main__":
    main()
