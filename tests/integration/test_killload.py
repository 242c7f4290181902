#!/usr/bin/env python3
"""kill -9 under load: 32 pairs in calls ping-pong ICE candidates through
lighttpd with 2 backend processes (max-procs=2: lighttpd respawns a killed
one) while one backend process is killed with SIGKILL every 2 s for 60 s
(30 kills, at 2, 4, ... 60 s; the traffic goes on 2 s more). Each client
keeps the contract (tests/lib/contract.py): every send has a batch id and
is sent again with it until answered {"ok": true}; each poll acknowledges
with after= what the previous one returned. Counted and printed: sent, answered ok, delivered, duplicated,
reordered, lost (answered ok but never delivered after a final drain),
retries. Every send answered ok must be delivered exactly once, in order.

KILL_PAIRS, KILL_SECONDS and KILL_EVERY (seconds) override the load for a
quick local run; the suite uses the defaults."""
import os
import re
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from contract import Gone, Stream, setup_call  # noqa: E402
from harness import Checks, Server  # noqa: E402

PAIRS = int(os.environ.get("KILL_PAIRS", "32"))
SECONDS = float(os.environ.get("KILL_SECONDS", "60"))
EVERY = float(os.environ.get("KILL_EVERY", "2"))
MAX_KILLS = int(SECONDS / EVERY)
PROCS = 2
DRAIN = 40        # seconds after the traffic for sends in flight and the final drain
POLL_HOLD = 5     # seconds a poll is held
MAX_PER_PAIR = 200000  # messages per pair at most (the time limit comes first here)

check = Checks()
check.plan(6)


class Side:
    def __init__(self, peer, first):
        self.peer = peer          # contract.Peer
        self.first = first        # sends candidate 0
        self.other = None         # the other Side
        self.stream = Stream()    # the other side's candidates as received here
        self.answered = []        # candidate values answered ok, in order
        self.unanswered = []      # given up at the deadline (may or may not arrive)
        self.sending = False
        self.done = False
        self.unexpected = []
        self.error = None

    def send(self, n, end):
        self.sending = True
        try:
            if self.peer.send({"id": "onIceCandidate", "candidate": {"n": n}}, "c%d" % n, end):
                self.answered.append(n)
            else:
                self.unanswered.append(n)
        finally:
            self.sending = False

    def drained(self):
        """The other side sends nothing more and all it had answered ok is here."""
        o = self.other
        return (o.done or not o.sending and time.monotonic() > self.traffic_end) and \
            set(o.answered) <= self.stream.seen

    def run(self, traffic_end, hard_end):
        self.traffic_end = traffic_end
        try:
            if self.first:
                self.send(0, hard_end)
            while time.monotonic() < hard_end:
                if time.monotonic() > traffic_end and self.drained() and not self.sending:
                    break
                ms = self.peer.poll(POLL_HOLD)
                if ms is None:
                    time.sleep(0.05)
                    continue
                for m in ms:
                    if m.get("id") != "iceCandidate":
                        self.unexpected.append(m)
                        continue
                    n = m["candidate"]["n"]
                    new = n not in self.stream.seen and (not self.stream.got or
                                                         n > self.stream.got[-1])
                    self.stream.add(n)
                    if new and time.monotonic() < traffic_end and n + 1 < MAX_PER_PAIR:
                        self.send(n + 1, hard_end)
        except Gone as e:
            self.error = e
        except Exception as e:  # reported by the main thread
            self.error = e
        finally:
            self.done = True


def killer(srv, t0, stop, kills, errors):
    """Kill i (1..MAX_KILLS) at t0 + i * EVERY: the next backend process in
    turn, whatever it is doing."""
    i = 0
    while i < MAX_KILLS and not stop.wait(max(0, t0 + (i + 1) * EVERY - time.monotonic())):
        i += 1
        pids = sorted(srv.backend_pids())
        if not pids:
            errors.append("no backend process to kill at kill %d" % i)
            continue
        p = pids[i % len(pids)]
        try:
            os.kill(p, signal.SIGKILL)
            kills.append((time.monotonic(), p))
        except ProcessLookupError:
            pass


def main():
    with Server(procs=PROCS, env={"LONGCALL_POLL_MAX": "10",
                                  "LONGCALL_SESSION_EXPIRY": "60"}) as srv:
        pairs = []
        for i in range(PAIRS):
            a, b = setup_call(srv.port, "ka%d" % i, "kb%d" % i)
            for p in (a, b):  # count the traffic only, not the call set-up
                p.stats.update(sent=0, answered=0, retries=0, poll_errors=0, statuses={})
            sa, sb = Side(a, True), Side(b, False)
            sa.other, sb.other = sb, sa
            pairs.append((sa, sb))
        sides = [s for p in pairs for s in p]
        t0 = time.monotonic()
        traffic_end = t0 + SECONDS + EVERY  # the traffic goes on past the last kill
        hard_end = traffic_end + DRAIN
        threads = [threading.Thread(target=s.run, args=(traffic_end, hard_end), daemon=True)
                   for s in sides]
        for t in threads:
            t.start()
        stop, kills, kill_errors = threading.Event(), [], []
        kt = threading.Thread(target=killer, args=(srv, t0, stop, kills, kill_errors), daemon=True)
        kt.start()
        kt.join(SECONDS + 30)
        for t in threads:
            t.join(max(1, hard_end + 30 - time.monotonic()))
        stop.set()
        traffic = time.monotonic() - t0
        hung = sum(t.is_alive() for t in threads)

        sent = sum(s.peer.stats["sent"] for s in sides)
        answered = sum(len(s.answered) for s in sides)
        unanswered = sum(len(s.unanswered) for s in sides)
        delivered = sum(len(s.stream.seen) for s in sides)
        duplicated = sum(s.stream.duplicated + s.peer.stats["redelivered"] for s in sides)
        reordered = sum(s.stream.reordered for s in sides)
        lost = sum(len(set(s.answered) - s.other.stream.seen) for s in sides)
        retries = sum(s.peer.stats["retries"] for s in sides)
        poll_errors = sum(s.peer.stats["poll_errors"] for s in sides)
        statuses = {}
        for s in sides:
            for k, v in s.peer.stats["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
        errors = [s.error for s in sides if s.error]
        unexpected = [m for s in sides for m in s.unexpected]
        print("# kill -9 under load: %d pairs, %d backend processes, %d kills in %.0f s "
              "(one every %.0f s)" % (PAIRS, PROCS, len(kills), SECONDS, EVERY), flush=True)
        print("# sent %d, answered ok %d, delivered %d, duplicated %d, reordered %d, lost %d, "
              "retries %d, unanswered at the end %d, poll errors %d" % (
                  sent, answered, delivered, duplicated, reordered, lost, retries, unanswered,
                  poll_errors), flush=True)
        print("# rate: %.0f messages/s answered over %.0f s (Python client, %d threads); "
              "HTTP statuses seen %s" % (answered / max(traffic, 1), traffic, len(sides),
                                         dict(sorted(statuses.items()))), flush=True)

        check("kill -9 under load: the kills hit live backends during the traffic "
              "(%d kills, %d answered sends)" % (len(kills), answered),
              len(kills) >= max(1, MAX_KILLS // 2) and not kill_errors and
              answered >= 10 * PAIRS and kills and kills[-1][0] < traffic_end,
              "kills %d of %d, errors %s, %d sends answered" % (
                  len(kills), MAX_KILLS, kill_errors[:3], answered))
        check("kill -9 under load: every client ran to the end without a protocol error",
              not errors and not hung and not unexpected,
              "%d errors (%s), %d threads hung, unexpected messages %s" % (
                  len(errors), errors[:2], hung, unexpected[:3]))
        check("kill -9 under load: duplicated == reordered == lost == 0",
              duplicated == 0 and reordered == 0 and lost == 0,
              "duplicated %d, reordered %d, lost %d" % (duplicated, reordered, lost))
        # Per direction: the values received are exactly the ones answered ok,
        # in order (plus at most the last one, sent but unanswered at the end).
        bad = []
        for s in sides:
            got, want = s.other.stream.got, s.answered
            if got != want and got != want + s.unanswered[:1]:
                bad.append("%s: answered %s... got %s..." % (s.peer.label, want[-3:], got[-3:]))
        check("kill -9 under load: every send answered ok delivered exactly once, in order",
              not bad and delivered >= answered, "; ".join(bad[:3]))

        def serving():
            try:
                st, _, data = srv.request("GET", "/rtc/status", timeout=5)
                return st == 200 and b'"processes":%d' % PROCS in data.replace(b" ", b"")
            except OSError:
                return False
        end = time.monotonic() + 30
        while not serving() and time.monotonic() < end:
            time.sleep(0.2)
        check("kill -9 under load: afterwards lighttpd runs %d backend processes and "
              "/rtc/status answers" % PROCS, serving(), srv.read_log()[-500:])
        # The log shows the kills (signal 9) and nothing else: no sanitizer
        # report, no other signal, no assertion.
        text = srv.log_text()
        other = [ln for ln in text.splitlines()
                 if re.search(r"AddressSanitizer|LeakSanitizer|runtime error:|Assertion `|"
                              r"double free|stack smashing", ln)
                 or ("child signalled" in ln and not re.search(r"signalled:? 9\b", ln))]
        check("kill -9 under load: no crash in the log other than the kills", not other,
              " | ".join(other[:3]))


try:
    main()
except Exception as e:
    check("kill -9 under load ran to the end", False, repr(e))
check.exit()
