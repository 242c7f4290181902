#!/usr/bin/env python3
"""Call flows end to end through lighttpd + longcall, what the protocol
cases (tests/cases, run over HTTP by test_cases.py and in-process by
tests/unit/test_cases.c) cannot express: a full call with trickle ICE both
ways and the status counts, payloads round-tripped exactly, a late candidate
after the callee stops, session expiry and the ring timeout (real time), and
the wake-up of held polls by the ring timeout. Reject, busy, unknown callee,
self call, unregistered caller, spoofed from, cancel, close and
renegotiation are cases."""
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_messages, drain_many, has, short, status, strip_seq)

NO_ANSWER = {"id": "callResponse", "response": "rejected", "message": "no answer",
             "reason": "no_answer"}


def cand(tag):
    return {"candidate": "candidate:%s 1 udp 2122260223 192.0.2.1 5000 typ host" % tag,
            "sdpMid": "0", "sdpMLineIndex": 0}


def test_full_call(srv):
    a, b = Client(srv, "alice"), Client(srv, "bob")
    a.register("alice")
    b.register("bob")
    # The call and a first candidate in one batch, a second candidate alone:
    # both sent before bob even saw the call.
    a.send([{"id": "call", "to": "bob", "sdpOffer": "OFFER-A"},
            {"id": "onIceCandidate", "candidate": cand("a1")}])
    a.send({"id": "onIceCandidate", "candidate": cand("a2")})
    b.expect({"id": "incomingCall", "from": "alice", "offer": "OFFER-A"},
             {"id": "iceCandidate", "candidate": cand("a1")},
             {"id": "iceCandidate", "candidate": cand("a2")})
    a.expect_nothing()
    # The callee trickles before answering: the caller gets it before the answer.
    b.send({"id": "onIceCandidate", "candidate": cand("b1")})
    b.send({"id": "incomingCallResponse", "from": "alice", "callResponse": "accept",
            "sdpOffer": "ANSWER-B"})
    a.send({"id": "onIceCandidate", "candidate": cand("a3")})
    b.send({"id": "onIceCandidate", "candidate": cand("b2")})
    a.expect({"id": "iceCandidate", "candidate": cand("b1")},
              {"id": "callResponse", "response": "accepted", "sdpAnswer": "ANSWER-B"},
              {"id": "iceCandidate", "candidate": cand("b2")})
    b.expect({"id": "startCommunication"},
             {"id": "iceCandidate", "candidate": cand("a3")})
    st = status(srv)
    check(st.get("calls") == 1, "status during the call: calls=%s, expected 1" % st.get("calls"))
    a.send({"id": "stop"})
    b.expect({"id": "stopCommunication", "reason": "hung_up"})
    a.expect_nothing()
    st = status(srv)
    check(st.get("calls") == 0, "status after stop: calls=%s, expected 0" % st.get("calls"))
    # Both free again: bob can call alice now.
    b.send({"id": "call", "to": "alice", "sdpOffer": "OFFER-B"})
    a.expect({"id": "incomingCall", "from": "bob", "offer": "OFFER-B"})
    b.expect_nothing()


PAYLOAD = {"s": "quote\" backslash\\ newline\n tab\t \u2028 emoji \U0001F600 é",
           "f": [0.1, -2.5e-300, 1e300], "i": [0, -1, 9007199254740993,
                                               -9223372036854775808, 9223372036854775807],
           "b": [True, False, None], "o": {"": "", "k": {"deep": [[[]]]}}, "empty": {}}


def test_payload_roundtrip(srv):
    """Offers, answers and candidates reach the peer exactly as sent."""
    a, b = Client(srv, "rt-a"), Client(srv, "rt-b")
    a.register("rt-a")
    b.register("rt-b")
    a.send({"id": "call", "to": "rt-b", "sdpOffer": PAYLOAD})
    b.expect({"id": "incomingCall", "from": "rt-a", "offer": PAYLOAD})
    b.send({"id": "incomingCallResponse", "from": "rt-a", "callResponse": "accept",
            "sdpOffer": [PAYLOAD]})
    a.expect({"id": "callResponse", "response": "accepted", "sdpAnswer": [PAYLOAD]})
    b.poll()
    for value in (PAYLOAD, "plain", "", 0, []):
        a.send({"id": "onIceCandidate", "candidate": value})
        b.expect({"id": "iceCandidate", "candidate": value})


def test_callee_stops(srv):
    a, b = call_pair(srv, "stop-a", "stop-b")
    b.send({"id": "stop"})
    a.expect({"id": "stopCommunication", "reason": "hung_up"})
    b.expect_nothing()
    b.send({"id": "onIceCandidate", "candidate": cand("late")})
    a.expect_nothing()  # the call is over: nothing is forwarded any more


def test_expiry(srv):
    """LONGCALL_SESSION_EXPIRY=4, POLL_MAX=2: bob stops polling."""
    a, b = call_pair(srv, "exp-a", "exp-b")
    t0 = time.monotonic()
    got = a.drain(has("stopCommunication"), deadline=30, poll_timeout=2)
    took = time.monotonic() - t0
    check([strip_seq(m) for m in got] == [{"id": "stopCommunication", "reason": "expired"}],
          "alice expected only stopCommunication (reason expired), got %s" % short(got))
    check(took >= 2, "bob expired after %.1f s, well before LONGCALL_SESSION_EXPIRY=4" % took)
    st, _, data = b.poll_raw(0, 0)
    check(st == 404, "the expired session still polls: %s %s" % (st, short(data)))
    b2 = Client(srv, "exp-b2")
    # The name is reserved for bob's reclaim key (README "Names"): his
    # new session presents it and has the name again.
    b2.register("exp-b", reclaim=b.reclaim)
    # alice, who kept polling, outlives the expiry several times over
    # (the new exp-b polls too, or it would expire in turn)
    end = t0 + 10
    for _ in range(200):
        if time.monotonic() >= end:
            break
        a.poll(timeout=1)
        b2.poll(timeout=0)
    a.send({"id": "ping"})
    a.expect({"id": "pong"})
    # and she can call the new exp-b
    a.send({"id": "call", "to": "exp-b", "sdpOffer": "O"})
    b2.expect({"id": "incomingCall", "from": "exp-a", "offer": "O"})


def test_expiry_idle_ringing(srv):
    """A callee that never polls while ringing expires; the caller is told."""
    a, b = Client(srv, "expr-a"), Client(srv, "expr-b")
    a.register("expr-a")
    b.register("expr-b")
    a.send({"id": "call", "to": "expr-b", "sdpOffer": "O"})
    got = a.drain(lambda ms: len(ms) > 0, deadline=30, poll_timeout=2)
    check([strip_seq(m) for m in got] in ([{"id": "stopCommunication", "reason": "expired"}],
                                           [NO_ANSWER]),
          "the caller of an expired callee expected one stopCommunication (reason expired; or "
          "a callResponse rejected for no answer), got %s" % short(got))
    st, _, _ = b.poll_raw(0, 0)
    check(st == 404, "the silent callee did not expire (poll answered %s)" % st)


def test_ring_timeout(srv):
    """LONGCALL_RING_TIMEOUT=2: nobody answers."""
    a, b = Client(srv, "ring-a"), Client(srv, "ring-b")
    a.register("ring-a")
    b.register("ring-b")
    t0 = time.monotonic()
    a.send({"id": "call", "to": "ring-b", "sdpOffer": "O"})
    got_a, got_b = drain_many([(a, has("callResponse")), (b, has("stopCommunication"))],
                              deadline=30)
    took = time.monotonic() - t0
    check_messages("caller", [NO_ANSWER], got_a)
    check_messages("callee", [{"id": "incomingCall", "from": "ring-a", "offer": "O"},
                              {"id": "stopCommunication", "reason": "no_answer"}], got_b)
    check(took >= 1, "the call ended after %.1f s, before LONGCALL_RING_TIMEOUT=2" % took)
    # A late answer finds no call; both can call again.
    b.send({"id": "incomingCallResponse", "from": "ring-a", "callResponse": "accept",
            "sdpOffer": "A"})
    a.expect_nothing()
    b.poll()
    a.send({"id": "call", "to": "ring-b", "sdpOffer": "O2"})
    b.drain(has("incomingCall"))
    b.send({"id": "incomingCallResponse", "from": "ring-a", "callResponse": "accept",
            "sdpOffer": "A2"})
    a.expect({"id": "callResponse", "response": "accepted", "sdpAnswer": "A2"})


def test_ring_timeout_wakes_held_polls(srv):
    """LONGCALL_RING_TIMEOUT=5, POLL_MAX=20: the timeout's messages wake
    polls already held by both sides (they do not wait for their 20 s).
    The ring time-out leaves the callee 5 s to see its incomingCall and
    hold its poll: with 2 s a loaded machine once delivered the
    stopCommunication already with the incomingCall."""
    a, b = Client(srv, "ringw-a"), Client(srv, "ringw-b")
    a.register("ringw-a")
    b.register("ringw-b")
    a.send({"id": "call", "to": "ringw-b", "sdpOffer": "O"})
    b.expect({"id": "incomingCall", "from": "ringw-a", "offer": "O"})
    pa = Background(a.poll, 20)
    pb = Background(b.poll, 20)
    got_a, got_b = pa.join(60), pb.join(60)
    check_messages("caller", [NO_ANSWER], got_a)
    check_messages("callee", [{"id": "stopCommunication", "reason": "no_answer"}], got_b)
    check(pa.elapsed() < 15 and pb.elapsed() < 15, "held polls returned after %.1f / %.1f s; "
          "the ring timeout is 5 s, the poll timeout 20 s" % (pa.elapsed(), pb.elapsed()))


def main():
    t = Runner("test_call")
    groups = []
    groups.append(({"procs": 1}, [
        ("full call: trickle both ways before and after the answer, stop", test_full_call),
        ("offers, answers and candidates arrive exactly as sent", test_payload_roundtrip),
        ("callee stops an answered call", test_callee_stops),
    ]))
    short_env = {"LONGCALL_SESSION_EXPIRY": "4", "LONGCALL_POLL_MAX": "2",
                 "LONGCALL_POLL_TIMEOUT": "2"}
    groups.append(({"procs": 1, "env": short_env}, [
        ("expiry of a silent peer notifies the other; its key reclaims the name", test_expiry),
        ("expiry of a silent ringing callee notifies the caller", test_expiry_idle_ringing),
    ]))
    groups.append(({"procs": 1, "env": dict(short_env, LONGCALL_RING_TIMEOUT="2")}, [
        ("ring timeout: no answer + stopCommunication", test_ring_timeout),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_RING_TIMEOUT": "5", "LONGCALL_POLL_MAX": "20",
                                        "LONGCALL_SESSION_EXPIRY": "30"}}, [
        ("ring timeout wakes the held polls of both sides", test_ring_timeout_wakes_held_polls),
    ]))
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
