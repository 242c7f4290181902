#!/usr/bin/env python3
"""Several backend processes (lighttpd max-procs=4) share one database and
wake file: a poll held in one process is woken by a send that another
process serves, overlapping polls and close work across processes, many
concurrent pairs see only their own messages, races (one name, one
callee, one batch id) have one winner, and expiry and ring timeouts fire."""
import json
import os
import sys
import threading

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_json_answer, check_messages, short, status, strip_seq, wait_held,
                      wait_status)

PROCS = 4


def test_processes(srv):
    s = wait_status(srv, lambda x: x.get("processes") == PROCS,
                    "processes == %d" % PROCS)
    pids = set(srv.backend_pids())
    check(len(pids) == PROCS, "lighttpd runs %d backends, expected %d" % (len(pids), PROCS))
    seen = set()
    for _ in range(40):
        seen.add(status(srv)["pid"])
    check(seen <= pids, "status pid %s not among the backends %s" % (seen - pids, pids))


def test_cross_process_wake(srv):
    a, b = call_pair(srv, "mp-a", "mp-b")
    for rnd in range(4):
        p = Background(b.poll, 20)
        wait_held(srv, 1)
        s = status(srv)
        check(s["processes"] >= 2 and s["held_polls"] == 1 and s["held_here"] == 0,
              "round %d: the request after the held poll should reach another process "
              "(processes >= 2, held_polls 1, held_here 0): %s" % (rnd, short(s)))
        a.send({"id": "onIceCandidate", "candidate": {"round": rnd}})
        got = p.join(40)
        check(p.elapsed() < 15, "round %d: the held poll returned after %.1f s of its 20 s "
              "timeout" % (rnd, p.elapsed()))
        check_messages("mp-b", [{"id": "iceCandidate", "candidate": {"round": rnd}}], got)


def poll_once(c, timeout):
    st, h, data = c.poll_raw(c.cursor, timeout)
    return st, h, data


def test_cross_process_overlap(srv):
    a, b = Client(srv, "mpo-a"), Client(srv, "mpo-b")
    a.register("mpo-a")
    b.register("mpo-b")
    p1 = Background(poll_once, b, 20)
    wait_held(srv, 1)
    s = status(srv)
    check(s["held_here"] == 0, "the next request should reach a process that holds no poll: "
          "%s" % short(s))
    p2 = Background(poll_once, b, 20)  # so lighttpd gives this one to another process too
    st, h, data = p1.join(40)
    body = check_json_answer(st, h, data, 200, "the older poll")
    check(body == {"seq": b.cursor, "messages": []}, "the older poll: %s" % short(body))
    check(p1.finished - p2.started < 10,
          "the older poll returned %.1f s after the newer one started" % (
              p1.finished - p2.started))
    wait_held(srv, 1)
    a.send({"id": "call", "to": "mpo-b", "sdpOffer": "O"})
    st, h, data = p2.join(40)
    body = check_json_answer(st, h, data, 200, "the newer poll")
    check_messages("mpo-b", [{"id": "incomingCall", "from": "mpo-a", "offer": "O"}],
                   body["messages"])
    check(p2.elapsed() < 15, "the newer poll took %.1f s" % p2.elapsed())


def test_cross_process_close(srv):
    a, b = call_pair(srv, "mpc-a", "mpc-b")
    p = Background(poll_once, b, 20)
    wait_held(srv, 1)
    st, _, _ = a.close()
    check(st == 200, "close: %s" % st)
    st, h, data = p.join(40)
    body = check_json_answer(st, h, data, 200, "the peer's held poll")
    check([strip_seq(m) for m in body["messages"]] == [{"id": "stopCommunication",
                                                           "reason": "closed"}],
          "the peer's held poll: %s" % short(body))
    check(p.elapsed() < 15, "the peer's held poll took %.1f s" % p.elapsed())


def test_many_pairs(srv):
    n = 8
    pairs = [call_pair(srv, "mpp-a%d" % i, "mpp-b%d" % i) for i in range(n)]
    polls = [Background(poll_once, b, 20) for _, b in pairs]
    s = wait_held(srv, n)
    check(s["processes"] >= 2, "status: %s" % short(s))
    for i, (a, _) in enumerate(pairs):
        a.send({"id": "onIceCandidate", "candidate": {"pair": i}})
    for i, ((_, b), p) in enumerate(zip(pairs, polls)):
        st, h, data = p.join(40)
        body = check_json_answer(st, h, data, 200, "pair %d poll" % i)
        check([strip_seq(m) for m in body["messages"]] ==
              [{"id": "iceCandidate", "candidate": {"pair": i}}],
              "pair %d got %s" % (i, short(body)))
        check(p.elapsed() < 15, "pair %d poll took %.1f s" % (i, p.elapsed()))
    wait_held(srv, 0)


def run_together(fns, deadline=40):
    """Starts every fn at once (a barrier) in its own thread; returns results."""
    barrier = threading.Barrier(len(fns))

    def wrap(fn):
        barrier.wait(10)
        return fn()
    jobs = [Background(wrap, fn) for fn in fns]
    return [j.join(deadline) for j in jobs]


def test_register_race(srv):
    for rnd in range(3):
        name = "race-%d" % rnd
        cs = [Client(srv, "racer%d" % i) for i in range(10)]
        answers = run_together([lambda c=c: c.send_raw({"id": "register", "name": name})
                                for c in cs])
        check(all(st == 200 for st, _, _ in answers), "register answers: %s" % [
            st for st, _, _ in answers])
        results = []
        for c in cs:
            got = [strip_seq(m) for m in c.poll()]
            check(len(got) == 1 and got[0].get("id") == "registerResponse",
                  "%s got %s" % (c.label, short(got)))
            results.append(got[0]["response"])
        check(results.count("accepted") == 1, "round %d: %d of 10 concurrent registrations "
              "of one name were accepted: %s" % (rnd, results.count("accepted"), results))
        listing = Client(srv)
        listing.send({"id": "list"})
        got = listing.collect(1)
        check(got and got[0]["list"].count(name) == 1, "list: %s" % short(got))


def test_call_race(srv):
    """Five callers ring one callee at the same moment: one rings, four
    are told busy."""
    callee = Client(srv, "crace-b")
    callee.register("crace-b")
    callers = [Client(srv, "crace-a%d" % i) for i in range(5)]
    for c in callers:
        c.register(c.label)
    run_together([lambda c=c: c.send({"id": "call", "to": "crace-b", "sdpOffer": c.label})
                  for c in callers])
    got = callee.collect(1, deadline=5) + callee.poll(timeout=1)
    check(len(got) == 1 and got[0]["id"] == "incomingCall",
          "the callee got %s" % short([strip_seq(m) for m in got]))
    winner = got[0]["from"]
    for c in callers:
        m = [strip_seq(x) for x in c.poll(timeout=0)]
        if c.label == winner:
            check(m == [], "the ringing caller got %s" % short(m))
        else:
            check(len(m) == 1 and m[0].get("response") == "rejected", "%s got %s" % (
                c.label, short(m)))


def test_batch_id_race(srv):
    """The same batch sent 4 times at once (through different processes):
    all answered ok, applied once."""
    a, b = call_pair(srv, "brace-a", "brace-b")
    for rnd in range(8):
        answers = run_together([lambda: a.send_raw(
            [{"id": "onIceCandidate", "candidate": {"r": rnd, "k": 0}},
             {"id": "onIceCandidate", "candidate": {"r": rnd, "k": 1}}],
            batch="same-%d" % rnd) for _ in range(4)])
        check(all(st == 200 and json.loads(d) == {"ok": True} for st, _, d in answers),
              "round %d answers: %s" % (rnd, [(st, short(d, 80)) for st, _, d in answers]))
    got = b.collect(16, deadline=10) + b.poll(timeout=0)
    check([(m["candidate"]["r"], m["candidate"]["k"]) for m in got] ==
          [(r, k) for r in range(8) for k in (0, 1)],
          "the peer got %s" % short([m["candidate"] for m in got]))


def main():
    t = Runner("test_multiproc")
    groups = []
    groups.append(({"procs": PROCS}, [
        ("%d backend processes, status pid is one of them" % PROCS, test_processes),
        ("a poll held in one process is woken by a send through another",
         test_cross_process_wake),
        ("overlapping polls in two processes: the older answers at once",
         test_cross_process_overlap),
        ("close through another process stops the peer's held poll", test_cross_process_close),
        ("8 pairs with held polls spread over processes", test_many_pairs),
        ("10 sessions register one name at once: exactly one wins", test_register_race),
        ("5 callers ring one callee at once: one rings, the rest are busy", test_call_race),
        ("the same batch id sent 4 times at once is applied once", test_batch_id_race),
    ]))
    import test_call
    short_env = {"LONGCALL_SESSION_EXPIRY": "4", "LONGCALL_POLL_MAX": "2",
                 "LONGCALL_POLL_TIMEOUT": "2"}
    groups.append(({"procs": PROCS, "env": short_env}, [
        ("expiry with %d processes" % PROCS, test_call.test_expiry),
    ]))
    groups.append(({"procs": PROCS, "env": dict(short_env, LONGCALL_RING_TIMEOUT="2")}, [
        ("ring timeout with %d processes" % PROCS, test_call.test_ring_timeout),
    ]))
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
