#!/usr/bin/env python3
"""kill -9 of backend processes (lighttpd max-procs=2 respawns them):
sessions, names and calls live in the database and survive; under
traffic, every send answered {"ok": true} (retried with the same batch id
after a failure) reaches the peer exactly once and in order; /rtc/status
forgets the held polls of dead processes."""
import http.client
import json
import os
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_poll_body, short, wait_held, wait_status)

PROCS = 2
TRANSIENT = (OSError, http.client.HTTPException, ValueError)


def kill_backends(srv, which="all"):
    """kill -9 the backends (all, or the first one); returns the PIDs killed."""
    pids = sorted(srv.backend_pids())
    if which != "all":
        pids = pids[:1]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


def wait_serving(srv, deadline=20):
    """Waits until /rtc/status answers 200 again (lighttpd respawned)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            st, _, _ = srv.request("GET", "/rtc/status", timeout=5)
            if st == 200:
                return
        except TRANSIENT:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not answer /rtc/status within %d s of a kill -9" %
                         deadline)


def test_state_survives(srv):
    a, b = call_pair(srv, "surv-a", "surv-b")
    killed = kill_backends(srv)
    check(killed, "no backend to kill")
    wait_serving(srv)
    check(not set(killed) & set(srv.backend_pids()), "the killed backends are still there")
    a.send({"id": "onIceCandidate", "candidate": {"after": "kill"}})
    b.expect({"id": "iceCandidate", "candidate": {"after": "kill"}})
    b.send({"id": "list"})
    b.expect({"id": "listResponse", "list": ["surv-a", "surv-b"], "more": False})
    c = Client(srv, "surv-c")
    c.send({"id": "register", "name": "surv-a"})
    c.expect({"id": "registerResponse", "response": "rejected", "message": "*",
              "reason": "taken"})


def test_kill_under_traffic(srv):
    a, b = call_pair(srv, "kill-a", "kill-b")
    acked, gave_up, retried = [], [], [0]
    stop = threading.Event()
    sender_done = threading.Event()

    def sender():
        end = time.monotonic() + 60
        try:
            for i in range(5000):
                if stop.is_set():
                    return
                for attempt in range(300):
                    if time.monotonic() > end:
                        gave_up.append(i)
                        return
                    try:
                        st, _, data = a.send_raw(
                            {"id": "onIceCandidate", "candidate": {"n": i}}, batch="n-%d" % i,
                            timeout=10)
                        if st == 200 and json.loads(data) == {"ok": True}:
                            acked.append(i)
                            break
                    except TRANSIENT:
                        pass
                    retried[0] += 1
                    time.sleep(0.05)
                else:
                    gave_up.append(i)
                    return
                time.sleep(0.003)
        finally:
            sender_done.set()

    got, poll_errors = [], [0]
    receiver_stop = threading.Event()

    def receiver():
        end = time.monotonic() + 120
        settle = None  # once the sender is done: at most 15 s more for the rest
        while time.monotonic() < end:
            if receiver_stop.is_set() and sender_done.is_set():
                settle = settle or time.monotonic() + 15
                if len(got) >= len(acked) or time.monotonic() > settle:
                    return
            try:
                st, _, data = b.poll_raw(b.cursor, 1, http_timeout=15)
            except TRANSIENT:
                st = None
            if st != 200:
                poll_errors[0] += 1
                time.sleep(0.05)
                continue
            body = json.loads(data)
            check_poll_body(body, b.cursor, "kill-b")
            for m in body["messages"]:
                check(m["id"] == "iceCandidate", "kill-b got %s" % short(m))
                got.append(m["candidate"]["n"])
            b.cursor = body["seq"]

    snd = Background(sender)
    rcv = Background(receiver)
    kills = []
    try:
        for rnd in range(4):
            time.sleep(0.8)
            before = len(acked)
            kills.append((before, kill_backends(srv, "all" if rnd % 2 == 0 else "one")))
            wait_serving(srv)
        time.sleep(1.0)
    finally:
        stop.set()
        receiver_stop.set()
    snd.join(60)
    rcv.join(150)
    check(not gave_up, "the sender gave up on message %s (300 retries or 60 s)" % gave_up)
    check(len(kills) == 4 and all(k[1] for k in kills), "kills: %s" % kills)
    check(0 < kills[0][0] and kills[-1][0] < len(acked),
          "the kills did not happen during the traffic (acked before each kill: %s, total %d)"
          % ([k[0] for k in kills], len(acked)))
    check(acked == list(range(len(acked))), "acked out of order")
    dup = len(got) - len(set(got))
    check(got == acked, "%d sends answered ok; the peer got %d (%d duplicates), first "
          "difference at %s; %d sends retried, %d poll errors" % (
              len(acked), len(got), dup,
              next((i for i, (x, y) in enumerate(zip(got, acked)) if x != y),
                   min(len(got), len(acked))), retried[0], poll_errors[0]))
    # nothing more arrives later
    b.expect_nothing(wait=1)
    print("#   kill under traffic: %d messages, %d retried sends, %d poll errors" % (
        len(acked), retried[0], poll_errors[0]), file=sys.stderr)


def test_status_after_kill(srv):
    wait_status(srv, lambda s: s["processes"] == PROCS, "processes == %d" % PROCS)
    a = Client(srv, "dead-held")
    p = Background(a.poll_raw, 0, 20)
    wait_held(srv, 1)
    kill_backends(srv)
    wait_serving(srv)
    st = None
    try:
        st, _, _ = p.join(30)
    except TRANSIENT:
        pass  # the connection was cut: fine
    check(p.elapsed() < 20, "the poll held by a killed backend hung for %.1f s" % p.elapsed())
    s = wait_status(srv, lambda x: x["processes"] == PROCS and x["held_polls"] == 0,
                    "processes == %d and held_polls == 0 after kill -9" % PROCS)
    check(s["pid"] in srv.backend_pids(), "status pid %s is not a live backend" % s["pid"])
    a.send({"id": "ping"})
    a.expect({"id": "pong"})


def main():
    t = Runner("test_crash")
    groups = []
    groups.append(({"procs": PROCS}, [
        ("sessions, names and calls survive kill -9 of all backends", test_state_survives),
        ("kill -9 under traffic: every ok'd send delivered once, in order",
         test_kill_under_traffic),
        ("status counts only live processes and polls after kill -9", test_status_after_kill),
    ], False))
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
