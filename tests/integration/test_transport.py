#!/usr/bin/env python3
"""The transport: sessions, long polls (hold, wake, time-out, cap,
overlap), acknowledgement and re-delivery of lost answers, batches (order,
atomicity, idempotent batch ids), mailbox isolation, close, the headers of
every answer, /rtc/status and cross-origin rules."""
import json
import os
import random
import re
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from harness import connection  # noqa: E402
from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_headers, check_json_answer, check_messages, check_poll_body, short,
                      status, wait_held, wait_status)

ICE = [{"urls": "stun:stun.example.org:3478"},
       {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"}]


def cand(n):
    return {"candidate": "candidate:%d 1 udp 1 192.0.2.1 %d typ host" % (n, 1000 + n), "n": n}


def test_session_shape(srv):
    a, b = Client(srv), Client(srv)
    s = a.session
    check(re.fullmatch(r"[A-Za-z0-9_-]{43}", s["sid"] or ""),
          "sid is not a 43-character URL-safe token: %r" % s["sid"])
    check(s.get("poll") == 25, "poll should be the default 25, got %s" % short(s.get("poll")))
    check(s.get("iceServers") == [], "iceServers should default to [], got %s" %
          short(s.get("iceServers")))
    check(a.sid != b.sid, "two sessions got the same sid")
    # A session created with a body (some clients send {}) works the same.
    st, h, data = srv.request("POST", "/rtc/session", b"{}")
    check_json_answer(st, h, data, 200, "POST /rtc/session with {}")


def test_session_env(srv):
    s = Client(srv).session
    check(s.get("iceServers") == ICE, "iceServers %s, expected LONGCALL_ICE_SERVERS %s" % (
        short(s.get("iceServers")), short(ICE)))
    check(s.get("poll") == 1, "poll %s, expected LONGCALL_POLL_TIMEOUT=1" % short(s.get("poll")))


def test_poll_default_timeout(srv):
    """LONGCALL_POLL_TIMEOUT=1: a poll without timeout= is held about 1 s."""
    a = Client(srv)
    t0 = time.monotonic()
    st, h, data = a.poll_raw(0, None, http_timeout=30)
    took = time.monotonic() - t0
    body = check_json_answer(st, h, data, 200, "poll without timeout")
    check(body == {"seq": 0, "messages": []}, "expected {seq: 0, messages: []}, got %s" %
          short(body))
    check(0.5 <= took < 15, "a poll with the default timeout of 1 s took %.1f s" % took)


def test_poll_max_cap(srv):
    """LONGCALL_POLL_MAX=2: timeout=100 is cut to 2 s."""
    a = Client(srv)
    t0 = time.monotonic()
    st, h, data = a.poll_raw(0, 100, http_timeout=60)
    took = time.monotonic() - t0
    body = check_json_answer(st, h, data, 200, "poll timeout=100")
    check(body == {"seq": 0, "messages": []}, "expected an empty answer, got %s" % short(body))
    check(1 <= took < 30, "poll with timeout=100 under POLL_MAX=2 took %.1f s" % took)


def test_poll_timeout_empty(srv):
    a = Client(srv, "empty-a")
    a.register("empty-a")
    t0 = time.monotonic()
    st, h, data = a.poll_raw(a.cursor, 1)
    took = time.monotonic() - t0
    body = check_json_answer(st, h, data, 200, "poll timeout=1")
    check(body == {"seq": a.cursor, "messages": []}, "an expired poll should answer "
          "{seq: %d, messages: []}, got %s" % (a.cursor, short(body)))
    check(0.5 <= took < 15, "poll timeout=1 with nothing waiting took %.1f s" % took)
    # timeout=0 answers at once
    st, h, data = a.poll_raw(a.cursor, 0)
    check_json_answer(st, h, data, 200, "poll timeout=0")


def test_wake_by_send(srv):
    a, b = Client(srv, "wake-a"), Client(srv, "wake-b")
    a.register("wake-a")
    b.register("wake-b")
    p = Background(b.poll, 20)
    wait_held(srv, 1)
    a.send({"id": "call", "to": "wake-b", "sdpOffer": "O"})
    got = p.join(40)
    check(p.elapsed() < 15, "the held poll took %.1f s of its 20 s timeout to return" %
          p.elapsed())
    check_messages("wake-b", [{"id": "incomingCall", "from": "wake-a", "offer": "O"}], got)
    # and a poll woken by the session's own reply
    p = Background(a.poll, 20)
    wait_held(srv, 1)
    a.send({"id": "ping"})
    got = p.join(40)
    check(p.elapsed() < 15, "the held poll took %.1f s to see a pong" % p.elapsed())
    check_messages("wake-a", [{"id": "pong"}], got)


def test_woken_answers(srv):
    """A held poll woken by a send is answered with exactly the messages
    after its cursor: a batch's messages all, in order; older unacknowledged
    ones too when its cursor is behind (the answer is then read from the
    mailbox rather than from what the send queued)."""
    a, b = Client(srv, "woke-a"), Client(srv, "woke-b")
    a.register("woke-a")
    b.register("woke-b")
    a.send({"id": "call", "to": "woke-b", "sdpOffer": "O"})
    ring = b.poll(timeout=5)
    check([m["id"] for m in ring] == ["incomingCall"], "incomingCall first: %s" % short(ring))
    cursor = ring[-1]["seq"]
    p = Background(b.poll_raw, cursor, 20)
    wait_held(srv, 1)
    a.send([{"id": "onIceCandidate", "candidate": {"n": i}} for i in range(5)])
    st, _, data = p.join(40)
    got = json.loads(data)
    msgs = got["messages"] if st == 200 else []
    check([m.get("candidate", {}).get("n") for m in msgs] == list(range(5)),
          "the batch's 5 candidates in order: %s" % short(got))
    check([m["seq"] for m in msgs] == list(range(cursor + 1, cursor + 6)) and
          got["seq"] == cursor + 5, "contiguous seqs after %d: %s" % (cursor, short(got)))
    # The cursor stays behind (the answer was "lost"): the next wake-up
    # brings the 5 again, then the new one.
    p = Background(b.poll_raw, cursor, 20)
    st, _, data = p.join(40)
    got = json.loads(data)
    check(st == 200 and len(got["messages"]) == 5, "not held, the 5 again: %s" % short(got))
    p = Background(b.poll_raw, cursor + 5, 20)
    wait_held(srv, 1)
    a.send({"id": "onIceCandidate", "candidate": {"n": 5}})
    st, _, data = p.join(40)
    got = json.loads(data)
    check(st == 200 and [m["candidate"]["n"] for m in got["messages"]] == [5] and
          got["seq"] == cursor + 6, "the sixth alone: %s" % short(got))


def test_lost_response(srv):
    a = Client(srv, "lost-a")
    a.send([{"id": "ping"}, {"id": "ping"}, {"id": "ping"}])
    first = a.poll(after=0, keep=False)
    check(len(first) == 3, "expected 3 pongs, got %s" % short(first))
    seqs = [m["seq"] for m in first]
    # The answer was "lost": polling with the old cursor gives the same again.
    again = a.poll(after=0, keep=False)
    check(again == first, "re-poll after a lost answer: %s, first time %s" % (short(again),
                                                                           short(first)))
    # Acknowledging the first one only.
    rest = a.poll(after=seqs[0], keep=False)
    check(rest == first[1:], "poll after=%d: expected %s, got %s" % (seqs[0], short(first[1:]),
                                                                    short(rest)))
    rest = a.poll(after=seqs[0], keep=False)
    check(rest == first[1:], "the same poll again: %s" % short(rest))
    none = a.poll(after=seqs[-1], keep=False)
    check(none == [], "after the last seq: expected nothing, got %s" % short(none))
    a.send({"id": "ping"})
    nxt = a.poll(after=seqs[-1], keep=False)
    check(len(nxt) == 1 and nxt[0]["id"] == "pong" and nxt[0]["seq"] > seqs[-1],
          "the next message: %s" % short(nxt))


def test_long_exchange(srv):
    """300 numbered candidates each way in random batches; about a third of
    the poll answers are thrown away. Each side must get every candidate
    once, in order."""
    seed = int(os.environ.get("LONGCALL_TEST_SEED") or random.randrange(1 << 30))
    rnd = random.Random(seed)
    a, b = call_pair(srv, "long-a", "long-b")
    total = 300
    sent = {a: 0, b: 0}
    got = {a: [], b: []}
    peer = {a: b, b: a}
    lost = 0
    deadline = time.monotonic() + 90
    for _ in range(20000):
        if all(sent[c] == total for c in sent) and all(len(got[c]) >= total for c in got):
            break
        check(time.monotonic() < deadline, "(seed %d) timed out: sent %s, got %s" % (
            seed, [sent[a], sent[b]], [len(got[a]), len(got[b])]))
        c = rnd.choice([a, b])
        if rnd.random() < 0.5 and sent[c] < total:
            k = min(rnd.randint(1, 10), total - sent[c])
            msgs = [{"id": "onIceCandidate", "candidate": cand(sent[c] + i)} for i in range(k)]
            c.send(msgs if k > 1 or rnd.random() < 0.5 else msgs[0])
            sent[c] += k
        else:
            msgs = c.poll(timeout=0, keep=False)
            if msgs and rnd.random() < 0.33:
                lost += 1
                continue  # the answer never reached the client
            for m in msgs:
                check(m["id"] == "iceCandidate", "(seed %d) %s got %s" % (seed, c.label, short(m)))
                got[c].append(m["candidate"]["n"])
            if msgs:
                c.cursor = msgs[-1]["seq"]
    for c in (a, b):
        check(got[c] == list(range(total)), "(seed %d) %s got %d candidates, not 0..%d in "
              "order once each; first difference at index %s" % (
                  seed, c.label, len(got[c]), total - 1,
                  next((i for i, (x, y) in enumerate(zip(got[c], range(total))) if x != y),
                       min(len(got[c]), total))))
    check(lost > 0, "(seed %d) no poll answer was thrown away: the test proved nothing" % seed)
    for c in (a, b):
        c.expect_nothing()


def test_batch_order(srv):
    a = Client(srv, "order-a")
    a.send([{"id": "register", "name": "order-a"}, {"id": "list"}, {"id": "ping"},
            {"id": "bogus-id"}, {"id": "list"}])
    a.expect({"id": "registerResponse", "response": "accepted", "reclaim": "*"},
             {"id": "listResponse", "list": "*", "more": False},
             {"id": "pong"},
             {"id": "error", "message": "*", "reason": "unknown_id"},
             {"id": "error", "message": "*", "reason": "list_once"})
    lists = [m["list"] for m in a.received if m["id"] == "listResponse"]
    check(all("order-a" in x for x in lists),
          "the list after register in the same batch must hold the name: %s" % short(lists))


def test_batch_id_once(srv):
    a, b = call_pair(srv, "bid-a", "bid-b")
    one = [{"id": "onIceCandidate", "candidate": cand(1)},
           {"id": "onIceCandidate", "candidate": cand(2)}, {"id": "ping"}]
    a.send(one, batch="batch-1")
    a.send(one, batch="batch-1")  # a retry: answered ok, applied once
    a.send([{"id": "onIceCandidate", "candidate": cand(3)}], batch="batch-2")
    a.send(one, batch="batch-1")
    a.send({"id": "onIceCandidate", "candidate": cand(4)}, batch="x" * 64)
    a.send({"id": "onIceCandidate", "candidate": cand(4)}, batch="x" * 64)
    b.expect(*[{"id": "iceCandidate", "candidate": cand(n)} for n in (1, 2, 3, 4)])
    a.expect({"id": "pong"})
    # Batch ids belong to their session: the peer may use the same one.
    b.send({"id": "onIceCandidate", "candidate": cand(5)}, batch="batch-1")
    a.expect({"id": "iceCandidate", "candidate": cand(5)})
    # Without a batch id the same body is applied each time.
    a.send({"id": "ping"})
    a.send({"id": "ping"})
    a.expect({"id": "pong"}, {"id": "pong"})


def test_batch_atomic_quota(srv):
    """LONGCALL_MAILBOX_QUOTA=10: a batch that would overfill the peer's
    mailbox is refused whole with 429, then applies once there is room."""
    a, b = call_pair(srv, "quota-a", "quota-b")
    a.send([{"id": "onIceCandidate", "candidate": cand(n)} for n in range(5)])
    big = [{"id": "ping"}] + [{"id": "onIceCandidate", "candidate": cand(n)}
                              for n in range(5, 12)]
    st, h, data = a.send_raw(big, batch="big-1")
    check_json_answer(st, h, data, 429, "a batch overfilling the peer's mailbox")
    a.expect_nothing()  # no pong: nothing of the batch was applied
    got = b.poll()
    check_messages("quota-b (after the refused batch)",
                   [{"id": "iceCandidate", "candidate": cand(n)} for n in range(5)], got)
    b.poll()  # acknowledges the 5
    a.send(big, batch="big-1")  # the refused id was not used up
    b.expect(*[{"id": "iceCandidate", "candidate": cand(n)} for n in range(5, 12)])
    a.expect({"id": "pong"})
    a.send(big, batch="big-1")
    b.expect_nothing()


def test_quota_own_mailbox(srv):
    """The sender's own mailbox counts too, up to twice the quota (20 here:
    others' messages can never take the room of one's own replies): 21
    pings unacknowledged are refused."""
    a = Client(srv, "quota-self")
    a.send([{"id": "ping"}] * 18)
    st, h, data = a.send_raw([{"id": "ping"}] * 3)
    body = check_json_answer(st, h, data, 429, "pings overfilling the own mailbox")
    check(body.get("reason") == "mailbox_full", "expected reason mailbox_full, got %s" % body)
    got = a.poll()
    check(len(got) == 18, "expected the 18 first pongs only, got %d" % len(got))
    a.poll()
    a.send([{"id": "ping"}] * 3)
    a.expect({"id": "pong"}, {"id": "pong"}, {"id": "pong"})


def poll_result(c, timeout):
    st, h, data = c.poll_raw(c.cursor, timeout)
    return st, h, data, time.monotonic()


def test_overlapping_polls(srv):
    a, b = Client(srv, "ovl-a"), Client(srv, "ovl-b")
    a.register("ovl-a")
    b.register("ovl-b")
    p1 = Background(poll_result, b, 20)
    wait_held(srv, 1)
    p2 = Background(poll_result, b, 20)
    st, h, data, t1 = p1.join(40)
    body = check_json_answer(st, h, data, 200, "the older of two polls")
    check(body == {"seq": b.cursor, "messages": []},
          "the older poll should answer {seq: %d, messages: []}, got %s" % (b.cursor,
                                                                            short(body)))
    check(t1 - p2.started < 10, "the older poll returned %.1f s after the newer one came "
          "(timeout 20 s)" % (t1 - p2.started))
    check(p2.thread.is_alive(), "the newer poll returned before any message")
    wait_held(srv, 1)
    a.send({"id": "call", "to": "ovl-b", "sdpOffer": "O"})
    st, h, data, t2 = p2.join(40)
    body = check_json_answer(st, h, data, 200, "the newer poll")
    check_poll_body(body, b.cursor, "ovl-b")
    check_messages("ovl-b", [{"id": "incomingCall", "from": "ovl-a", "offer": "O"}],
                   body["messages"])
    check(p2.elapsed() < 15, "the newer poll took %.1f s to get the call" % p2.elapsed())


def test_overlap_newer_returns_at_once(srv):
    """The newer poll has something to return at once (it asks again from
    an earlier seq): the older held poll must still be answered at once."""
    a = Client(srv, "ovl2")
    a.send([{"id": "ping"}, {"id": "ping"}])
    a.poll()
    a.poll()  # cursor 2, both acknowledged
    p1 = Background(poll_result, a, 12)
    wait_held(srv, 1)
    t0 = time.monotonic()
    st, h, data = a.poll_raw(a.cursor - 1, 12)
    check(st in (200, 400), "a poll from an earlier seq: %s %s" % (st, short(data)))
    if st == 200:
        body = check_json_answer(st, h, data, 200, "the newer poll")
        check_poll_body(body, a.cursor - 1, "ovl2")
        st1, h1, data1, t1 = p1.join(40)
        body1 = check_json_answer(st1, h1, data1, 200, "the older poll")
        check(body1 == {"seq": a.cursor, "messages": []}, "the older poll: %s" % short(body1))
        check(t1 - t0 < 6, "the older poll was answered %.1f s after the newer one (which "
              "returned at once); its timeout was 12 s" % (t1 - t0))
    else:
        a.send({"id": "ping"})
        p1.join(40)


def test_backlog(srv):
    """240 waiting messages (more than one poll answer holds, within one
    sender's LONGCALL_MAILBOX_SHARE of 250): every poll answer is consistent
    and, polled in turn, they all come, in order."""
    a, b = call_pair(srv, "backlog-a", "backlog-b")
    for k in range(0, 240, 48):
        a.send([{"id": "onIceCandidate", "candidate": cand(n)} for n in range(k, k + 48)])
    got = b.collect(240, deadline=30)
    check([m["candidate"]["n"] for m in got] == list(range(240)),
          "the backlog came as %s" % short([m["candidate"]["n"] for m in got]))
    b.expect_nothing()


def test_keep_alive(srv):
    """Several requests on one HTTP/1.1 connection (as browsers do): the
    framing (Content-Length) must hold between answers."""
    c = connection(srv.port, timeout=30)
    try:
        def go(method, path, body=None):
            c.request(method, path, body=body, headers={"Content-Type": "application/json"})
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        st, h, data = go("POST", "/rtc/session")
        sid = check_json_answer(st, h, data, 200, "session (keep-alive)")["sid"]
        for i in range(3):
            st, h, data = go("POST", "/rtc/send?sid=" + sid, json.dumps({"id": "ping"}))
            check_json_answer(st, h, data, 200, "send %d (keep-alive)" % i)
        st, h, data = go("POST", "/rtc/send?sid=" + sid, "{oops")
        check_json_answer(st, h, data, 400, "bad send (keep-alive)")
        st, h, data = go("GET", "/rtc/poll?sid=%s&after=0&timeout=0" % sid)
        body = check_json_answer(st, h, data, 200, "poll (keep-alive)")
        check([m["id"] for m in body["messages"]] == ["pong"] * 3, "poll: %s" % short(body))
        st, h, data = go("GET", "/rtc/poll?sid=%s&after=3&timeout=1" % sid)
        check_json_answer(st, h, data, 200, "timed-out poll (keep-alive)")
        st, h, data = go("GET", "/rtc/status")
        check_json_answer(st, h, data, 200, "status (keep-alive)")
    finally:
        c.close()


def test_isolation(srv):
    a, b = Client(srv, "iso-a"), Client(srv, "iso-b")
    a.register("iso-a")
    b.register("iso-b")
    a.send([{"id": "ping"}] * 5)
    a.send({"id": "call", "to": "iso-b", "sdpOffer": "SECRET-OFFER"})
    mine = a.poll()
    check([m["id"] for m in mine] == ["pong"] * 5,
          "sid A must give A's messages only, got %s" % short(mine))
    a.poll()  # A acknowledges all of its own (a seq beyond B's last)
    check(a.cursor > 2, "test setup: A's cursor %d" % a.cursor)
    # B's mailbox is untouched by A's acknowledgements.
    got = b.poll(after=b.cursor, keep=False)
    check_messages("iso-b", [{"id": "incomingCall", "from": "iso-a", "offer": "SECRET-OFFER"}],
                   got)
    # A's seq numbers are A's: polling B beyond B's last is refused.
    st, h, data = b.poll_raw(a.cursor, 0)
    check_json_answer(st, h, data, 400, "poll after beyond the session's own last seq")
    # An unknown sid reads nothing.
    st, h, data = srv.request("GET", "/rtc/poll?sid=%s&after=0&timeout=0" % ("A" * 43))
    check_json_answer(st, h, data, 404, "poll with a made-up sid")
    b.expect({"id": "incomingCall", "from": "iso-a", "offer": "SECRET-OFFER"})


def test_after_beyond(srv):
    a = Client(srv)
    a.send({"id": "ping"})
    st, h, data = a.poll_raw(2, 0)
    check_json_answer(st, h, data, 400, "poll after=2 with one message")
    st, h, data = a.poll_raw(1, 0)
    check_json_answer(st, h, data, 200, "poll after=1 with one message")


def test_close(srv):
    a, b = Client(srv, "cl-a"), Client(srv, "cl-b")
    a.register("cl-a")
    p = Background(poll_result, a, 20)
    wait_held(srv, 1)
    st, h, data = a.close(b'{"reason":"pagehide"}', {"Content-Type": "text/plain;charset=UTF-8"})
    body = check_json_answer(st, h, data, 200, "close (sendBeacon style)")
    check(body == {"ok": True}, "close answered %s" % short(body))
    pst, _, pdata, _ = p.join(40)
    check(p.elapsed() < 15, "the held poll of a closed session took %.1f s to return" %
          p.elapsed())
    check(pst in (200, 404), "the held poll of a closed session answered %s %s" % (
        pst, short(pdata)))
    for what, (s2, h2, d2) in (("poll", a.poll_raw(0, 0)), ("send", a.send_raw({"id": "ping"})),
                               ("close", a.close())):
        check_json_answer(s2, h2, d2, 404, "%s with a closed sid" % what)
    b.register("cl-a")  # the name is free
    st, h, data = srv.request("POST", "/rtc/close?sid=" + b.qsid(), None, {})
    check_json_answer(st, h, data, 200, "close without a body")


def test_headers_everywhere(srv):
    a, b = Client(srv, "hdr-a"), Client(srv, "hdr-b")
    seen = []

    def req(what, method, path, body=None, headers=None, timeout=40):
        st, h, data = srv.request(method, path, body, headers, timeout=timeout)
        check_headers(h, data, what)
        seen.append(what)
        return st, h, data

    req("session", "POST", "/rtc/session")
    req("send", "POST", "/rtc/send?sid=" + a.qsid(), {"id": "register", "name": "hdr-a"})
    req("send text/plain", "POST", "/rtc/send?sid=" + a.qsid(), '{"id":"ping"}',
        {"Content-Type": "text/plain"})
    req("poll with messages", "GET", "/rtc/poll?sid=%s&after=0&timeout=0" % a.qsid())
    req("poll timed out", "GET", "/rtc/poll?sid=%s&after=2&timeout=1" % a.qsid())
    p = Background(req, "poll woken", "GET", "/rtc/poll?sid=%s&after=0&timeout=20" % b.qsid())
    wait_held(srv, 1)
    a.send({"id": "call", "to": "nobody", "sdpOffer": "x"})
    b.send({"id": "ping"})
    st, _, _ = p.join(40)
    check(st == 200, "woken poll: %s" % st)
    req("status", "GET", "/rtc/status")
    req("400", "POST", "/rtc/send?sid=" + a.qsid(), "{")
    req("404 sid", "POST", "/rtc/send?sid=nope", {"id": "ping"})
    req("404 endpoint", "GET", "/rtc/nothing-here")
    req("405", "GET", "/rtc/send?sid=" + a.qsid())
    req("413", "POST", "/rtc/send?sid=" + a.qsid(), "[" + " " * 70000 + "]")
    req("close", "POST", "/rtc/close?sid=" + a.qsid(), "x", {"Content-Type": "text/plain"})
    check(len(seen) == 13, "checked %d answers" % len(seen))


STATUS_KEYS = {"ok": bool, "version": str, "uptime": int, "sessions": int, "registered": int,
               "calls": int, "held_polls": int, "queued_messages": int, "processes": int,
               "pid": int, "held_here": int}


def test_status(srv):
    st, h, data = srv.request("GET", "/rtc/status")
    s = check_json_answer(st, h, data, 200, "GET /rtc/status")
    for k, t in STATUS_KEYS.items():
        check(k in s and type(s[k]) is t, "status.%s should be a %s: %s" % (k, t.__name__,
                                                                           short(s)))
    check(s["ok"] is True and s["version"] != "" and s["uptime"] >= 0, "status: %s" % short(s))
    check(s["processes"] == 1, "procs=1 but status says %d processes" % s["processes"])
    check(s["pid"] in srv.backend_pids(), "status pid %d is not a backend (%s)" % (
        s["pid"], srv.backend_pids()))
    zero = {k: s[k] for k in ("sessions", "registered", "calls", "held_polls",
                              "queued_messages", "held_here")}
    check(all(v == 0 for v in zero.values()), "a fresh server should count zeros: %s" %
          short(zero))
    a, b = Client(srv, "st-a"), Client(srv, "st-b")
    a.register("st-a")
    # Acknowledgements are written within milliseconds of the poll.
    s = wait_status(srv, lambda x: (x["sessions"], x["registered"], x["queued_messages"]) ==
                    (2, 1, 0), "2 sessions, 1 registered, all acknowledged")
    b.register("st-b")
    a.send({"id": "call", "to": "st-b", "sdpOffer": "O"})
    wait_status(srv, lambda x: (x["registered"], x["calls"], x["queued_messages"]) == (2, 1, 1),
                "ringing: 2 registered, 1 call, 1 queued (incomingCall)")
    p = Background(b.poll, 20)
    p.join(40)
    p = Background(b.poll, 20)  # acknowledges incomingCall and is held
    # (status reads its counters one after the other, not as one snapshot:
    # wait for them to settle)
    wait_status(srv, lambda x: (x["held_polls"], x["held_here"], x["queued_messages"]) ==
                (1, 1, 0), "held_polls 1, held_here 1 (procs=1) and queued_messages 0 while "
                "the acknowledging poll is held")
    a.send({"id": "stop"})
    p.join(40)
    wait_status(srv, lambda x: (x["held_polls"], x["calls"], x["queued_messages"]) == (0, 0, 1),
                "after stop: no held poll, no call, 1 queued (stopCommunication)")
    st, _, _ = a.close()
    s = status(srv)
    check((s["sessions"], s["registered"]) == (1, 1), "after close: %s" % short(s))
    time.sleep(1.1)
    check(status(srv)["uptime"] >= 1, "uptime does not move")


def test_big_answers(srv):
    """LONGCALL_MAX_BODY=1048576: bodies up to the limit are accepted, and
    poll answers far over one FastCGI record (64 KiB) arrive intact, from a
    held poll and from an immediate one."""
    a, b = call_pair(srv, "big-a", "big-b")
    for size in (65000, 70000, 300000, 1000000):
        v = "c" * size
        p = Background(b.poll_raw, b.cursor, 20)
        wait_held(srv, 1)
        a.send({"id": "onIceCandidate", "candidate": v})
        st, h, data = p.join(40)
        body = check_json_answer(st, h, data, 200, "held poll answering %d bytes" % size)
        check_poll_body(body, b.cursor, "big-b")
        check(len(body["messages"]) == 1 and body["messages"][0].get("candidate") == v,
              "the %d-byte candidate did not arrive intact through a held poll" % size)
        # the same again, through a poll that finds it waiting
        st, h, data = b.poll_raw(b.cursor, 0)
        body2 = check_json_answer(st, h, data, 200, "immediate poll of %d bytes" % size)
        check(body2 == body, "re-reading the %d-byte answer gave something else" % size)
        b.cursor = body["seq"]
    st, h, data = a.send_raw('{"id":"ping","pad":"%s"}' % ("p" * (1048576 - 22)))
    check_json_answer(st, h, data, 200, "a body of exactly 1048576 bytes")
    st, h, data = a.send_raw('{"id":"ping","pad":"%s"}' % ("p" * (1048576 - 21)))
    check_json_answer(st, h, data, 413, "a body of 1048577 bytes")
    a.expect({"id": "pong"})


def test_cors(srv):
    a = Client(srv)
    host = "127.0.0.1:%d" % srv.port
    good, other, evil = "http://good.example", "https://also.example:8443", "http://evil.example"
    for origin in (good, other):
        st, h, data = srv.request("GET", "/rtc/status", headers={"Origin": origin})
        check_json_answer(st, h, data, 200, "status from listed origin %s" % origin)
        check(h.get("access-control-allow-origin") == origin,
              "listed origin %s got Access-Control-Allow-Origin %r" % (
                  origin, h.get("access-control-allow-origin")))
    st, h, data = srv.request("POST", "/rtc/send?sid=" + a.qsid(), {"id": "ping"},
                              {"Origin": good})
    check_json_answer(st, h, data, 200, "send from a listed origin")
    check(h.get("access-control-allow-origin") == good, "send: no Access-Control-Allow-Origin")
    st, h, data = srv.request("GET", "/rtc/poll?sid=%s&after=0&timeout=0" % a.qsid(),
                              headers={"Origin": good})
    check_json_answer(st, h, data, 200, "poll from a listed origin")
    check(h.get("access-control-allow-origin") == good, "poll: no Access-Control-Allow-Origin")
    # a held poll's answer carries it too
    p = Background(srv.request, "GET", "/rtc/poll?sid=%s&after=1&timeout=20" % a.qsid(), None,
                   {"Origin": good})
    wait_held(srv, 1)
    a.send({"id": "ping"})
    st, h, data = p.join(40)
    check_json_answer(st, h, data, 200, "held poll from a listed origin")
    check(h.get("access-control-allow-origin") == good,
          "held poll answer: Access-Control-Allow-Origin %r" % h.get(
              "access-control-allow-origin"))
    # preflight
    st, h, data = srv.request("OPTIONS", "/rtc/send?sid=" + a.qsid(), None, {
        "Origin": good, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    check(st == 204, "preflight from a listed origin: expected 204, got %s %s" % (st,
                                                                                  short(data)))
    check(h.get("access-control-allow-origin") == good, "preflight without "
          "Access-Control-Allow-Origin: %s" % short(h))
    # same origin is always fine
    st, h, data = srv.request("POST", "/rtc/session", None, {"Origin": "http://" + host})
    check_json_answer(st, h, data, 200, "same-origin request")
    # a foreign origin is refused everywhere, and nothing happens
    before = status(srv)["sessions"]
    for method, path, body in (("POST", "/rtc/session", None),
                               ("POST", "/rtc/send?sid=" + a.qsid(), {"id": "ping"}),
                               ("GET", "/rtc/poll?sid=%s&after=0&timeout=0" % a.qsid(), None),
                               ("POST", "/rtc/close?sid=" + a.qsid(), None),
                               ("OPTIONS", "/rtc/send", None)):
        st, h, data = srv.request(method, path, body, {"Origin": evil})
        check_json_answer(st, h, data, 403, "%s %s from %s" % (method, path.split("?")[0], evil))
        check("access-control-allow-origin" not in h, "a refused origin got "
              "Access-Control-Allow-Origin")
    check(status(srv)["sessions"] == before, "a refused request still created a session")
    a.send({"id": "ping"})  # the refused close did not close
    # the host must match exactly, not as a prefix
    st, h, data = srv.request("GET", "/rtc/status", headers={"Origin": "http://" + host + ".evil"})
    check_json_answer(st, h, data, 403, "Origin that only starts with the Host")


def test_cors_any(srv):
    for origin in ("http://one.example", "https://two.example"):
        st, h, data = srv.request("POST", "/rtc/session", None, {"Origin": origin})
        check_json_answer(st, h, data, 200, "session from %s with LONGCALL_CORS_ORIGINS=*" %
                          origin)
        check(h.get("access-control-allow-origin") in (origin, "*"),
              "Access-Control-Allow-Origin %r" % h.get("access-control-allow-origin"))


def test_cors_none(srv):
    st, h, data = srv.request("GET", "/rtc/status", headers={"Origin": "http://elsewhere.example"})
    check_json_answer(st, h, data, 403, "foreign origin with no LONGCALL_CORS_ORIGINS")


def main():
    t = Runner("test_transport")
    groups = []
    groups.append(({"procs": 1}, [
        ("session answer shape and defaults", test_session_shape),
        ("a poll with nothing waiting times out empty", test_poll_timeout_empty),
        ("a held poll is woken by a send", test_wake_by_send),
        ("a woken poll gets exactly the messages after its cursor", test_woken_answers),
        ("lost poll answer: the same messages again", test_lost_response),
        ("300 messages each way with lost answers: all, once, in order", test_long_exchange),
        ("batch order kept, an error does not stop the batch", test_batch_order),
        ("a batch id re-sent is applied once", test_batch_id_once),
        ("two overlapping polls: the older answers at once", test_overlapping_polls),
        ("a newer poll that returns at once still releases the older one",
         test_overlap_newer_returns_at_once),
        ("a backlog of 240 messages comes whole and in order", test_backlog),
        ("keep-alive: several requests on one connection", test_keep_alive),
        ("a session polls only its own mailbox", test_isolation),
        ("after beyond the last seq is 400", test_after_beyond),
        ("close: ok, held poll released, then 404, name freed", test_close),
        ("headers on every answer", test_headers_everywhere),
        ("no Origin allowed when LONGCALL_CORS_ORIGINS is unset", test_cors_none),
    ]))
    groups.append(({"procs": 1}, [("status shape and counters", test_status)]))
    groups.append(({"procs": 1, "env": {"LONGCALL_ICE_SERVERS": json.dumps(ICE),
                                        "LONGCALL_POLL_TIMEOUT": "1", "LONGCALL_POLL_MAX": "2",
                                        "LONGCALL_SESSION_EXPIRY": "10"}}, [
        ("iceServers and poll from the environment", test_session_env),
        ("default poll timeout from LONGCALL_POLL_TIMEOUT", test_poll_default_timeout),
        ("timeout capped by LONGCALL_POLL_MAX", test_poll_max_cap),
    ]))
    groups.append(({"procs": 2, "env": {"LONGCALL_MAX_BODY": "1048576"}}, [
        ("bodies up to LONGCALL_MAX_BODY; answers over 64 KiB intact", test_big_answers),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_MAILBOX_QUOTA": "10",
                                        "LONGCALL_MAILBOX_SHARE": "10"}}, [
        ("a batch hitting the quota is refused whole (429), then applies", test_batch_atomic_quota),
        ("the sender's own mailbox has a quota too", test_quota_own_mailbox),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_CORS_ORIGINS":
                                        "http://good.example https://also.example:8443"}}, [
        ("cross-origin: listed allowed, others 403, preflight 204", test_cors),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_CORS_ORIGINS": "*"}}, [
        ("cross-origin: * allows any origin", test_cors_any),
    ]))
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
