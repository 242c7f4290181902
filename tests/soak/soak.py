#!/usr/bin/env python3
"""Soak (make soak; not part of make test): SOAK_MINUTES (default 30) of
mixed traffic through lighttpd with 2 backend processes, sampled every
SOAK_SAMPLE seconds (default 60); the backends' memory, descriptors and the
database must level off.

Traffic: SOAK_WORKERS (default 8) workers, half of them through a proxy on
loopback that cuts every poll held past 4 s and drops one answer in 20
(tests/browser/cutproxy.py), the others direct. Each worker loops over
calls: two sessions register, one calls, the other accepts, 10 candidates
go each way (checked: each once, in order), an idle moment with a poll
held by each, stop. Then, by turns, the sessions are closed (POST
/rtc/close), or abandoned (they stop polling and expire after
LONGCALL_SESSION_EXPIRY=10 s; the next pair registers the same names with
their reclaim keys, refused until the old ones expired), or kept and registered under new
names. Every client keeps the contract of tests/lib/contract.py (batch ids,
retries, after=).

Sampled: each backend's RSS and open descriptors (/proc/PID/status,
/proc/PID/fd), the database and WAL file sizes, messages relayed, sessions.

"Levelled off" (the rule, applied to the samples after the first third,
which is the warm-up: SQLite's page cache, the allocator's arenas and the
WAL file grow to their working size there):
  - RSS, per backend process: the last third's maximum is at most 10% (and
    1 MiB) above the middle third's. A leak proportional to the traffic
    grows the same amount in each third, so it shows as the last third's
    maximum exceeding the middle third's by that much; 10% + 1 MiB absorbs
    allocator noise.
  - descriptors, per process: the last third's maximum at most 4 above the
    middle third's (they follow the connections in flight, bounded by the
    number of workers; a descriptor leaked per call would add dozens).
  - database + WAL bytes: LONGCALL_HISTORY_DAYS=0, so ended sessions, calls
    and delivered messages are pruned (the maintenance runs at least once a
    minute) and their pages reused: the last third's maximum at most 25%
    (and 256 KiB) above the middle third's. The WAL is restarted by
    checkpoints and keeps its high-water size, which the warm-up reaches.
Also required: no message lost, duplicated or out of order in any call, no
backend restarted or crashed (nor a sanitizer report in the log, also at
exit). Exits 1 when any check fails. With the sanitized backend
(LONGCALL_TEST_BIN=build/asan/longcall) the RSS rule is a skip:
AddressSanitizer's quarantine holds freed memory, so RSS grows by design;
LeakSanitizer checks leaks there.
"""
import os
import random
import re
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
sys.path.insert(0, os.path.join(ROOT, "tests", "browser"))
from contract import Gone, Peer  # noqa: E402
from cutproxy import CutProxy  # noqa: E402
from harness import Checks, Server, free_port  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
SAMPLE = float(os.environ.get("SOAK_SAMPLE", "60"))
WORKERS = int(os.environ.get("SOAK_WORKERS", "8"))
PROCS = 2
EXPIRY = 10
CANDIDATES = 10
CUT, DROP_EVERY = 4.0, 20
MAX_CYCLES = 100000  # calls per worker at most (the time limit comes first here)

check = Checks()


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {"calls": 0, "relayed": 0, "closed": 0, "abandoned": 0, "kept": 0,
                  "refused_names": 0, "retries": 0, "poll_errors": 0, "lost": 0,
                  "duplicated": 0, "reordered": 0, "errors": 0}
        self.first_errors = []

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self.c[k] += v

    def error(self, what):
        with self.lock:
            self.c["errors"] += 1
            if len(self.first_errors) < 5:
                self.first_errors.append(what)


KEYS = {}  # name -> the reclaim key its last holder got (each worker has its own names)


def register(p, name, end, totals, others=()):
    """Registers name, with the reclaim key its last holder got (an
    abandoned session's name is reserved for that key once it expired),
    retrying while the expired holder still has it; polls the others
    meanwhile (a session that does not poll expires)."""
    for k in range(1, 1000):
        for o in others:
            o.poll(0)
        m = {"id": "register", "name": name}
        if name in KEYS:
            m["reclaim"] = KEYS[name]
        if not p.send(m, "reg-%s-%d" % (name, k), end):
            raise AssertionError("%s: register not answered" % name)
        got = p.poll_until(lambda m: m["id"] == "registerResponse", end)
        r = [m for m in got if m["id"] == "registerResponse"][-1]
        if r.get("response") == "accepted":
            KEYS[name] = r.get("reclaim")
            return
        totals.add(refused_names=1)
        if time.monotonic() > end:
            break
        time.sleep(1)
    raise AssertionError("%s: never accepted" % name)


def exchange(src, dst, tag, end, totals):
    """src sends CANDIDATES candidates (some in batches), dst polls them:
    each must arrive once, in order."""
    i = 0
    while i < CANDIDATES:
        n = random.choice((1, 1, 3))
        msgs = [{"id": "onIceCandidate", "candidate": {"t": tag, "n": j}}
                for j in range(i, min(i + n, CANDIDATES))]
        if not src.send(msgs, "%s-%d" % (tag, i), end):
            raise AssertionError("%s: send not answered" % tag)
        i += len(msgs)
    got = []
    while len(got) < CANDIDATES and time.monotonic() < end:
        ms = dst.poll(random.choice((0, 1, 2)))
        if ms is None:
            time.sleep(0.05)
            continue
        for m in ms:
            if m["id"] == "iceCandidate" and m["candidate"]["t"] == tag:
                got.append(m["candidate"]["n"])
    want = list(range(CANDIDATES))
    dup = len(got) - len(set(got))
    lost = len(set(want) - set(got))
    reord = sum(1 for x, y in zip(got, got[1:]) if y < x)
    totals.add(relayed=len(got), duplicated=dup, lost=lost, reordered=reord)
    if got != want:
        totals.error("%s: got %s" % (tag, got))


def worker(w, port, stop_at, totals):
    rnd = random.Random(w)
    names = ("w%da" % w, "w%db" % w)
    a = b = None
    cycle = 0
    while time.monotonic() < stop_at and cycle < MAX_CYCLES:
        cycle += 1
        end = time.monotonic() + 120
        try:
            if a is None:
                a = Peer(port, names[0]).open()
                register(a, names[0], end, totals)
                b = Peer(port, names[1]).open()
                register(b, names[1], end, totals, (a,))
                cur = names
            else:  # kept sessions: register again under new names
                cur = tuple("%s-%d" % (n, cycle) for n in names)
                register(a, cur[0], end, totals, (b,))
                register(b, cur[1], end, totals, (a,))
            if not a.send({"id": "call", "to": cur[1], "sdpOffer": "o"}, "call%d" % cycle, end):
                raise AssertionError("call not answered")
            b.poll_until(lambda m: m["id"] == "incomingCall", end)
            b.send({"id": "incomingCallResponse", "from": cur[0], "callResponse": "accept",
                    "sdpOffer": "a"}, "acc%d" % cycle, end)
            got = a.poll_until(lambda m: m["id"] == "callResponse", end)
            if [m for m in got if m["id"] == "callResponse"][-1].get("response") != "accepted":
                raise AssertionError("call not accepted: %s" % got)
            b.poll_until(lambda m: m["id"] == "startCommunication", end)
            exchange(a, b, "%s-%d-ab" % (names[0], cycle), end, totals)
            exchange(b, a, "%s-%d-ba" % (names[0], cycle), end, totals)
            # idle: a poll held by each (cut by the proxy past CUT seconds)
            idle = [threading.Thread(target=p.poll, args=(rnd.choice((2, 5, 6)),))
                    for p in (a, b)]
            for t in idle:
                t.start()
            for t in idle:
                t.join(60)
            a.send({"id": "stop"}, "stop%d" % cycle, end)
            b.poll_until(lambda m: m["id"] == "stopCommunication", end)
            a.poll(0)
            totals.add(calls=1)
            fate = rnd.choice(("close", "close", "abandon", "keep", "keep"))
            if fate == "close":
                a.close()
                b.close()
                totals.add(closed=2)
            elif fate == "abandon":
                totals.add(abandoned=2)
            else:
                totals.add(kept=2)
            if fate != "keep":
                for p in (a, b):
                    totals.add(retries=p.stats["retries"], poll_errors=p.stats["poll_errors"])
                    p.close_connections()
                a = b = None
        except Gone as e:
            totals.error("w%d cycle %d: %s" % (w, cycle, e))
            a = b = None
        except Exception as e:  # counted and shown; the soak goes on
            totals.error("w%d cycle %d: %r" % (w, cycle, e))
            a = b = None
        time.sleep(rnd.uniform(0, 1))


def proc_sample(pid):
    rss = fds = None
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"VmRSS:\s+(\d+) kB", f.read())
            rss = int(m.group(1)) if m else None
        fds = len(os.listdir("/proc/%d/fd" % pid))
    except OSError:
        pass
    return rss, fds


def sanitized(pids):
    """True when the backend runs with AddressSanitizer (libasan mapped)."""
    for p in pids:
        try:
            with open("/proc/%d/maps" % p) as f:
                if "libasan" in f.read():
                    return True
        except OSError:
            pass
    return False


def size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def levelled(values, rel, absolute):
    """(ok, middle max, last max) by the rule in the docstring."""
    n = len(values)
    mid, last = values[n // 3: 2 * n // 3], values[2 * n // 3:]
    m, l = max(mid), max(last)
    return l <= m * (1 + rel) + absolute, m, l


def main():
    total = MINUTES * 60
    nsamples = int(total // SAMPLE)
    check.plan(5)
    print("# soak: %.0f min, a sample every %.0f s, %d workers (%d through the cutting proxy), "
          "%d backend processes, backend %s" % (MINUTES, SAMPLE, WORKERS, WORKERS // 2, PROCS,
                                                os.environ.get("LONGCALL_TEST_BIN",
                                                               "build/longcall")), flush=True)
    env = {"LONGCALL_SESSION_EXPIRY": str(EXPIRY), "LONGCALL_POLL_MAX": "8",
           "LONGCALL_HISTORY_DAYS": "0", "LONGCALL_RING_TIMEOUT": "20"}
    with Server(procs=PROCS, env=env) as srv:
        proxy = CutProxy(free_port(), srv.port, cut=CUT, drop_every=DROP_EVERY).start()
        totals = Totals()
        t0 = time.monotonic()
        stop_at = t0 + total
        threads = [threading.Thread(target=worker, args=(
            w, proxy.port if w % 2 else srv.port, stop_at, totals), daemon=True)
            for w in range(WORKERS)]
        for t in threads:
            t.start()
        pids0 = sorted(srv.backend_pids())
        db = os.path.join(srv.state, "longcall.db")
        rows = []
        print("# %6s %-22s %-12s %9s %9s %9s %8s %6s" % (
            "min", "RSS KiB per process", "fds", "db KiB", "wal KiB", "relayed", "sessions",
            "errors"), flush=True)
        for k in range(1, nsamples + 1):
            time.sleep(max(0, t0 + k * SAMPLE - time.monotonic()))
            pids = sorted(srv.backend_pids())
            per = [proc_sample(p) for p in pids]
            sessions = "?"
            try:
                import json
                st, _, data = srv.request("GET", "/rtc/status", timeout=10)
                sessions = json.loads(data).get("sessions", "?") if st == 200 else st
            except Exception:
                pass
            row = {"t": (time.monotonic() - t0) / 60, "pids": pids,
                   "rss": [r for r, _ in per], "fds": [f for _, f in per],
                   "db": size(db), "wal": size(db + "-wal"), "relayed": totals.c["relayed"],
                   "sessions": sessions, "errors": totals.c["errors"]}
            rows.append(row)
            print("# %6.1f %-22s %-12s %9d %9d %9d %8s %6d" % (
                row["t"], ",".join(str(r) for r in row["rss"]),
                ",".join(str(f) for f in row["fds"]), row["db"] // 1024, row["wal"] // 1024,
                row["relayed"], row["sessions"], row["errors"]), flush=True)
        for t in threads:
            t.join(150)
        proxy.stop()
        c = totals.c
        print("# totals: %s; proxy %s" % (
            ", ".join("%s %d" % kv for kv in c.items()),
            {k: v for k, v in proxy.stats.items() if k != "methods"}), flush=True)
        for e in totals.first_errors:
            print("#   error: %s" % e[:300], flush=True)

        same = all(r["pids"] == pids0 and None not in r["rss"] for r in rows)
        asan = sanitized(pids0)
        srv.stop()  # a sanitized backend's LeakSanitizer report comes at exit
        crash = [ln for ln in srv.log_text().splitlines()
                 if re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|child signalled|"
                              r"child exited|Assertion `", ln)]
        check("soak: the same %d backend processes ran throughout, no crash in the log" % PROCS,
              same and len(pids0) == PROCS and not crash,
              "pids at start %s, per sample %s; log %s" % (
                  pids0, [r["pids"] for r in rows][-3:], crash[:3]))
        check("soak: %d calls, %d candidates relayed: none lost, duplicated or reordered, "
              "no client error" % (c["calls"], c["relayed"]),
              c["calls"] > 0 and c["lost"] == c["duplicated"] == c["reordered"] == 0 and
              c["errors"] == 0, "%s; first errors %s" % (c, totals.first_errors))
        if len(rows) < 6 or not same:
            for what in ("RSS", "descriptors", "database + WAL size"):
                print("skip - soak: %s levelled off: %s" % (
                    what, "fewer than 6 samples" if len(rows) < 6 else "a backend restarted"),
                    flush=True)
            return
        rss_ok, fd_ok, why_rss, why_fd = not asan, True, [], []
        for i in range(PROCS):
            ok, m, l = levelled([r["rss"][i] for r in rows], 0.10, 1024)
            rss_ok &= ok
            why_rss.append("process %d: middle third max %d KiB, last third max %d KiB" % (
                i + 1, m, l))
            ok, m, l = levelled([r["fds"][i] for r in rows], 0, 4)
            fd_ok &= ok
            why_fd.append("process %d: middle third max %d, last third max %d" % (i + 1, m, l))
        if asan:
            print("skip - soak: RSS levelled off: the backend is sanitized and AddressSanitizer's "
                  "quarantine keeps freed memory (up to 256 MiB), so its RSS grows by design; "
                  "its leak check is LeakSanitizer's report at exit (%s)" % "; ".join(why_rss),
                  flush=True)
        else:
            check("soak: RSS levelled off (%s)" % "; ".join(why_rss), rss_ok, "; ".join(why_rss))
        check("soak: open descriptors levelled off (%s)" % "; ".join(why_fd), fd_ok,
              "; ".join(why_fd))
        ok, m, l = levelled([r["db"] + r["wal"] for r in rows], 0.25, 256 * 1024)
        check("soak: database + WAL size levelled off (middle third max %d KiB, last third max "
              "%d KiB)" % (m // 1024, l // 1024), ok, "grew")


try:
    main()
except Exception as e:
    check("soak ran to the end", False, repr(e))
check.exit()
