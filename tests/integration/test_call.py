#!/usr/bin/env python3
"""Call flows end to end through lighttpd + longcall: a full call with
trickle ICE both ways, reject, busy, unknown callee, self call, unregistered
caller, spoofed from, cancel, close, renegotiation, session expiry and ring
timeout."""
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_json_answer, check_messages, drain_many, has, short, status)

REJECTED = {"id": "callResponse", "response": "rejected", "message": "*"}


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
    b.expect({"id": "stopCommunication"})
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
    a.expect({"id": "stopCommunication"})
    b.expect_nothing()
    b.send({"id": "onIceCandidate", "candidate": cand("late")})
    a.expect_nothing()  # the call is over: nothing is forwarded any more


def test_reject(srv):
    a, b = Client(srv, "rej-a"), Client(srv, "rej-b")
    a.register("rej-a")
    b.register("rej-b")
    a.send({"id": "call", "to": "rej-b", "sdpOffer": "O1"})
    b.expect({"id": "incomingCall", "from": "rej-a", "offer": "O1"})
    b.send({"id": "incomingCallResponse", "from": "rej-a", "callResponse": "reject"})
    a.expect(REJECTED)
    b.expect_nothing()
    # Both are free again.
    a.send({"id": "call", "to": "rej-b", "sdpOffer": "O2"})
    b.expect({"id": "incomingCall", "from": "rej-a", "offer": "O2"})


def test_busy(srv):
    a, b = call_pair(srv, "busy-a", "busy-b")
    c = Client(srv, "busy-c")
    c.register("busy-c")
    c.send({"id": "call", "to": "busy-b", "sdpOffer": "O"})
    c.expect(REJECTED)
    c.send({"id": "call", "to": "busy-a", "sdpOffer": "O"})
    c.expect(REJECTED)
    a.expect_nothing()
    b.expect_nothing()
    # Ringing counts as busy too, for the callee and for the caller.
    d, e, f = Client(srv, "busy-d"), Client(srv, "busy-e"), Client(srv, "busy-f")
    d.register("busy-d")
    e.register("busy-e")
    f.register("busy-f")
    d.send({"id": "call", "to": "busy-e", "sdpOffer": "OD"})
    e.expect({"id": "incomingCall", "from": "busy-d", "offer": "OD"})
    f.send({"id": "call", "to": "busy-e", "sdpOffer": "OF"})
    f.expect(REJECTED)
    f.send({"id": "call", "to": "busy-d", "sdpOffer": "OF"})
    f.expect(REJECTED)
    e.expect_nothing()
    d.expect_nothing()
    # The busy call still works afterwards.
    a.send({"id": "onIceCandidate", "candidate": cand("x")})
    b.expect({"id": "iceCandidate", "candidate": cand("x")})


def test_unknown_callee(srv):
    a = Client(srv, "unk-a")
    a.register("unk-a")
    a.send({"id": "call", "to": "nobody-by-this-name", "sdpOffer": "O"})
    a.expect(REJECTED)
    # a callee that closed its session is unknown too
    gone = Client(srv, "unk-gone")
    gone.register("unk-gone")
    st, _, data = gone.close()
    check(st == 200, "close: %s %s" % (st, short(data)))
    a.send({"id": "call", "to": "unk-gone", "sdpOffer": "O"})
    a.expect(REJECTED)


def test_self_call(srv):
    a = Client(srv, "self-a")
    a.register("self-a")
    a.send({"id": "call", "to": "self-a", "sdpOffer": "O"})
    a.expect(REJECTED)
    # and it is not stuck "in a call" afterwards
    b = Client(srv, "self-b")
    b.register("self-b")
    b.send({"id": "call", "to": "self-a", "sdpOffer": "O"})
    a.expect({"id": "incomingCall", "from": "self-b", "offer": "O"})


def test_unregistered_caller(srv):
    b = Client(srv, "unreg-b")
    b.register("unreg-b")
    anon = Client(srv, "anonymous")
    anon.send({"id": "call", "to": "unreg-b", "sdpOffer": "O"})
    anon.expect(REJECTED)
    b.expect_nothing()


def test_spoofed_from(srv):
    a, b = Client(srv, "spoof-a"), Client(srv, "spoof-b")
    m = Client(srv, "spoof-m")
    a.register("spoof-a")
    b.register("spoof-b")
    m.register("spoof-m")
    a.send({"id": "call", "to": "spoof-b", "from": "spoof-m", "sdpOffer": "O"})
    b.expect({"id": "incomingCall", "from": "spoof-a", "offer": "O"})
    b.send({"id": "incomingCallResponse", "from": "spoof-a", "callResponse": "accept",
            "sdpOffer": "A"})
    a.expect({"id": "callResponse", "response": "accepted", "sdpAnswer": "A"})
    b.drain(has("startCommunication"))  # its fields are checked in the full call test
    a.send({"id": "onIceCandidate", "from": "spoof-m", "candidate": cand("s")})
    b.expect({"id": "iceCandidate", "candidate": cand("s")})
    m.expect_nothing()


def test_cancel_while_ringing(srv):
    a, b = Client(srv, "cancel-a"), Client(srv, "cancel-b")
    a.register("cancel-a")
    b.register("cancel-b")
    a.send({"id": "call", "to": "cancel-b", "sdpOffer": "O"})
    a.send({"id": "stop"})
    b.expect({"id": "incomingCall", "from": "cancel-a", "offer": "O"},
             {"id": "stopCommunication"})
    a.expect_nothing()
    b.send({"id": "call", "to": "cancel-a", "sdpOffer": "O2"})
    a.expect({"id": "incomingCall", "from": "cancel-b", "offer": "O2"})


def test_renegotiation(srv):
    a, b = call_pair(srv, "reneg-a", "reneg-b")
    a.send({"id": "answer", "sdp": "RE-OFFER-A"})
    b.expect({"id": "startCommunication", "sdpAnswer": "RE-OFFER-A"})
    b.send({"id": "answer", "sdp": {"type": "answer", "sdp": "RE-B"}})
    a.expect({"id": "startCommunication", "sdpAnswer": {"type": "answer", "sdp": "RE-B"}})


def test_close_in_call(srv):
    a, b = call_pair(srv, "close-a", "close-b")
    st, h, data = a.close(b"bye", {"Content-Type": "text/plain;charset=UTF-8"})
    body = check_json_answer(st, h, data, 200, "close with a text/plain body")
    check(body == {"ok": True}, "close: expected {\"ok\": true}, got %s" % short(body))
    b.expect({"id": "stopCommunication"})
    for what, (s2, _, d2) in (("poll", a.poll_raw(0, 0)), ("send", a.send_raw({"id": "ping"})),
                              ("close", a.close())):
        check(s2 == 404, "%s with a closed sid: expected 404, got %s %s" % (what, s2, short(d2)))
    # The name is free and the peer is free.
    a2 = Client(srv, "close-a2")
    a2.register("close-a")
    a2.send({"id": "call", "to": "close-b", "sdpOffer": "O"})
    b.expect({"id": "incomingCall", "from": "close-a", "offer": "O"})


def test_expiry(srv):
    """LONGCALL_SESSION_EXPIRY=4, POLL_MAX=2: bob stops polling."""
    a, b = call_pair(srv, "exp-a", "exp-b")
    t0 = time.monotonic()
    got = a.drain(has("stopCommunication"), deadline=30, poll_timeout=2)
    took = time.monotonic() - t0
    check([m["id"] for m in got] == ["stopCommunication"],
          "alice expected only stopCommunication, got %s" % short(got))
    check(took >= 2, "bob expired after %.1f s, well before LONGCALL_SESSION_EXPIRY=4" % took)
    st, _, data = b.poll_raw(0, 0)
    check(st == 404, "the expired session still polls: %s %s" % (st, short(data)))
    b2 = Client(srv, "exp-b2")
    b2.register("exp-b")  # the name is free again
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
    check([m["id"] for m in got] in (["stopCommunication"], ["callResponse"]),
          "the caller of an expired callee expected one stopCommunication (or a rejected "
          "callResponse), got %s" % short(got))
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
    check_messages("caller", [{"id": "callResponse", "response": "rejected",
                               "message": "no answer"}], got_a)
    check_messages("callee", [{"id": "incomingCall", "from": "ring-a", "offer": "O"},
                              {"id": "stopCommunication"}], got_b)
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
    """LONGCALL_RING_TIMEOUT=2, POLL_MAX=12: the timeout's messages wake
    polls already held by both sides (they do not wait for their 12 s)."""
    a, b = Client(srv, "ringw-a"), Client(srv, "ringw-b")
    a.register("ringw-a")
    b.register("ringw-b")
    a.send({"id": "call", "to": "ringw-b", "sdpOffer": "O"})
    b.expect({"id": "incomingCall", "from": "ringw-a", "offer": "O"})
    pa = Background(a.poll, 12)
    pb = Background(b.poll, 12)
    got_a, got_b = pa.join(40), pb.join(40)
    check_messages("caller", [{"id": "callResponse", "response": "rejected",
                               "message": "no answer"}], got_a)
    check_messages("callee", [{"id": "stopCommunication"}], got_b)
    check(pa.elapsed() < 9 and pb.elapsed() < 9, "held polls returned after %.1f / %.1f s; "
          "the ring timeout is 2 s, the poll timeout 12 s" % (pa.elapsed(), pb.elapsed()))


def main():
    t = Runner("test_call")
    groups = []
    groups.append(({"procs": 1}, [
        ("full call: trickle both ways before and after the answer, stop", test_full_call),
        ("offers, answers and candidates arrive exactly as sent", test_payload_roundtrip),
        ("callee stops an answered call", test_callee_stops),
        ("reject", test_reject),
        ("busy: in a call or ringing", test_busy),
        ("unknown callee", test_unknown_callee),
        ("self call", test_self_call),
        ("unregistered caller", test_unregistered_caller),
        ("spoofed from is replaced by the sender's name", test_spoofed_from),
        ("caller cancels while ringing", test_cancel_while_ringing),
        ("answer renegotiation both ways", test_renegotiation),
        ("close during a call notifies the peer and frees the name", test_close_in_call),
    ]))
    short_env = {"LONGCALL_SESSION_EXPIRY": "4", "LONGCALL_POLL_MAX": "2",
                 "LONGCALL_POLL_TIMEOUT": "2"}
    groups.append(({"procs": 1, "env": short_env}, [
        ("expiry of a silent peer notifies the other and frees the name", test_expiry),
        ("expiry of a silent ringing callee notifies the caller", test_expiry_idle_ringing),
    ]))
    groups.append(({"procs": 1, "env": dict(short_env, LONGCALL_RING_TIMEOUT="2")}, [
        ("ring timeout: no answer + stopCommunication", test_ring_timeout),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_RING_TIMEOUT": "2", "LONGCALL_POLL_MAX": "12",
                                        "LONGCALL_SESSION_EXPIRY": "15"}}, [
        ("ring timeout wakes the held polls of both sides", test_ring_timeout_wakes_held_polls),
    ]))
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
