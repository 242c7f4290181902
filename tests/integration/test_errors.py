#!/usr/bin/env python3
"""Malformed and hostile input: each gets its JSON error with the right
status (400, 404, 405, 413, 503 + Retry-After) and applies nothing; and the
server keeps serving afterwards, with no backend crash. Message-level
mistakes, which become `error` messages with a `reason`, are protocol cases
(tests/cases: bad_message, unknown_id, missing_field, batch_nonobject, ...)."""
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from lcclient import (Background, Client, Runner, call_pair, check,  # noqa: E402
                      check_json_answer, log_crashes, short, strip_seq, wait_held)

STATE = {}


def remember_pids(srv):
    STATE["pids"] = sorted(srv.backend_pids())
    check(STATE["pids"], "no backend process found")


def send_and_mailbox(srv, body, headers=None, what=None):
    """Sends body with a fresh session; returns (status, headers, data, mailbox)."""
    c = Client(srv)
    st, h, data = c.send_raw(body, headers=headers)
    box = [strip_seq(m) for m in c.poll()]
    return st, h, data, box


def test_bad_json(srv):
    remember_pids(srv)
    bodies = [
        ("garbage bytes", b"\x00\x01\x02\xff\xfegarbage\x80"),
        ("empty body", b""),
        ("whitespace only", b"  \r\n "),
        ("truncated", b'{"id":"ping"'),
        ("trailing garbage", b'{"id":"ping"} xyz'),
        ("two objects", b'{"id":"ping"}{"id":"ping"}'),
        ("single quotes", b"{'id':'ping'}"),
        ("unquoted key", b'{id:"ping"}'),
        ("trailing comma", b'{"id":"ping",}'),
        ("non-UTF-8 string", b'{"id":"register","name":"\xff\xfe\xc3"}'),
        ("overlong UTF-8", b'{"id":"register","name":"\xc0\xaf"}'),
        ("lone surrogate escape", b'{"id":"register","name":"\\ud800"}'),
        ("bad escape", b'{"id":"register","name":"\\q"}'),
        ("NaN", b'{"id":"ping","n":NaN}'),
        ("html form", b"id=ping&name=alice"),
    ]
    for what, body in bodies:
        st, h, data, box = send_and_mailbox(srv, body)
        check_json_answer(st, h, data, 400, "send with %s %s" % (what, short(body, 60)))
        check(box == [], "%s: nothing may be applied, the mailbox has %s" % (what, short(box)))


def test_not_a_message(srv):
    for body in (b"null", b"42", b'"ping"', b"true", b"1e5"):
        st, h, data, box = send_and_mailbox(srv, body)
        check_json_answer(st, h, data, 400, "send with body %s" % body.decode())
        check(box == [], "body %s: the mailbox has %s" % (body.decode(), short(box)))


def test_deep_nesting(srv):
    depth = 20000
    obj = b'{"a":' * depth + b"1" + b"}" * depth          # 100 kB: over the limit
    st, h, data, box = send_and_mailbox(srv, obj)
    check_json_answer(st, h, data, 413, "%d nested objects (%d bytes)" % (depth, len(obj)))
    depth = 6000
    for what, body in (("objects", b'{"id":"ping","a":' + b'{"a":' * depth + b"1" +
                        b"}" * (depth + 1)),
                       ("arrays", b"[" * depth + b"]" * depth)):
        st, h, data, box = send_and_mailbox(srv, body)
        check(st in (200, 400), "%d nested %s: expected 400 (or 200), got %s %s" % (
            depth, what, st, short(data)))
        check_json_answer(st, h, data, st, "%d nested %s" % (depth, what))
        if st == 400:
            check(box == [], "refused nested %s, yet the mailbox has %s" % (what, short(box)))
        else:  # accepted: one message, applied as such
            want = [{"id": "pong"}] if what == "objects" else [{"id": "error", "message": "*"}]
            check(len(box) == 1 and box[0]["id"] == want[0]["id"],
                  "accepted nested %s: mailbox %s, expected %s" % (what, short(box), want))


def test_huge_numbers(srv):
    for what, body in (("huge integer", b'{"id":"ping","n":123456789012345678901234567890}'),
                       ("huge exponent", b'{"id":"ping","n":1e999999}'),
                       ("huge negative", b'{"id":"ping","n":-99999999999999999999999999}')):
        st, h, data, box = send_and_mailbox(srv, body)
        check(st in (200, 400), "%s: expected 400 (or 200), got %s %s" % (what, st, short(data)))
        check_json_answer(st, h, data, st, what)
        check(box == ([{"id": "pong"}] if st == 200 else []),
              "%s answered %s but the mailbox has %s" % (what, st, short(box)))
    c = Client(srv)
    c.send({"id": "ping"})
    for q in ("after=99999999999999999999999999&timeout=0", "after=0&timeout=-1",
              "after=-1&timeout=0", "after=abc&timeout=0", "after=1.5&timeout=0",
              "after=0&timeout=1e3", "after=0&timeout=abc", "after=&timeout=0",
              "after=0&timeout=", "after=0x1&timeout=0", "after=%2B1&timeout=0"):
        st, h, data = srv.request("GET", "/rtc/poll?sid=%s&%s" % (c.qsid(), q))
        check_json_answer(st, h, data, 400, "poll %s" % q)
    st, h, data = srv.request("GET", "/rtc/poll?sid=%s&after=0&timeout=%s" % (
        c.qsid(), "9" * 30), timeout=60)
    check(st in (200, 400), "poll timeout=9999...: %s %s" % (st, short(data)))
    body = check_json_answer(st, h, data, st, "poll with a 30-digit timeout")
    if st == 200:
        check([strip_seq(m) for m in body["messages"]] == [{"id": "pong"}],
              "poll with a huge timeout: %s" % short(body))


def test_null_in_name(srv):
    st, h, data, box = send_and_mailbox(srv, b'{"id":"register","name":"ab\\u0000cd"}')
    check(st in (200, 400), "name with \\u0000: %s %s" % (st, short(data)))
    check_json_answer(st, h, data, st, "name with \\u0000")
    if st == 200:
        check(len(box) == 1 and box[0].get("id") == "registerResponse" and
              box[0].get("response") == "rejected",
              "a name with \\u0000 must be rejected: %s" % short(box))
    else:
        check(box == [], "refused, yet the mailbox has %s" % short(box))


def test_content_type(srv):
    for ct in ("application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
               "application/xml", "image/png"):
        st, h, data, box = send_and_mailbox(srv, b'{"id":"ping"}', {"Content-Type": ct})
        check(st in (400, 415), "Content-Type %s: expected 415 (or 400), got %s %s" % (
            ct, st, short(data)))
        check_json_answer(st, h, data, st, "Content-Type %s" % ct)
        check(box == [], "Content-Type %s: nothing may apply, mailbox %s" % (ct, short(box)))
    for ct in ("application/json", "application/json; charset=utf-8", "text/plain",
               "text/plain;charset=UTF-8", "Application/JSON"):
        st, h, data, box = send_and_mailbox(srv, b'{"id":"ping"}', {"Content-Type": ct})
        check_json_answer(st, h, data, 200, "Content-Type %s" % ct)
        check(box == [{"id": "pong"}], "Content-Type %s: mailbox %s" % (ct, short(box)))


def test_body_limit(srv):
    def ping_of(size):
        base = b'{"id":"ping","pad":""}'
        return base[:-2] + b"x" * (size - len(base)) + base[-2:]
    exact = ping_of(65536)
    check(len(exact) == 65536, "test setup")
    st, h, data, box = send_and_mailbox(srv, exact)
    check_json_answer(st, h, data, 200, "a body of exactly LONGCALL_MAX_BODY=65536 bytes")
    check(box == [{"id": "pong"}], "65536-byte ping: mailbox %s" % short(box))
    for size in (65537, 70000, 1 << 20):
        st, h, data, box = send_and_mailbox(srv, ping_of(size))
        check_json_answer(st, h, data, 413, "a body of %d bytes" % size)
        check(box == [], "%d-byte body: nothing may apply, mailbox %s" % (size, short(box)))
    # close and session take bodies too (sendBeacon)
    c = Client(srv)
    st, h, data = srv.request("POST", "/rtc/close?sid=" + c.qsid(), b"x" * 70000,
                              {"Content-Type": "text/plain"})
    check(st in (200, 413), "close with a 70000-byte body: %s" % st)
    check_json_answer(st, h, data, st, "close with a 70000-byte body")


def test_batch_limits(srv):
    st, h, data, box = send_and_mailbox(srv, [{"id": "ping"}] * 65)
    check_json_answer(st, h, data, 413, "a batch of 65 (LONGCALL_MAX_BATCH=64)")
    check(box == [], "the 65-message batch applied something: %d messages" % len(box))
    st, h, data, box = send_and_mailbox(srv, [{"id": "ping"}] * 64)
    check_json_answer(st, h, data, 200, "a batch of 64")
    check(box == [{"id": "pong"}] * 64, "64 pings gave %d messages" % len(box))
    c = Client(srv)
    for batch in ("x" * 65, ""):
        st, h, data = srv.request("POST", "/rtc/send?sid=%s&batch=%s" % (c.qsid(), batch),
                                  {"id": "ping"})
        check_json_answer(st, h, data, 400, "batch id of %d characters" % len(batch))
    check(c.poll() == [], "a refused batch id still applied the message")




def test_sid_problems(srv):
    c = Client(srv)
    st, _, _ = c.close()
    check(st == 200, "close: %s" % st)
    bad = {"missing": "", "empty": "sid=", "unknown": "sid=" + "Q" * 43,
           "ended": "sid=" + c.qsid(), "non-ASCII": "sid=%C3%A9t%C3%A9",
           "path": "sid=..%2F..%2Fetc",
           "very long": "sid=" + "A" * 3000, "twice but unknown": "sid=x&sid=y"}
    for what, q in bad.items():
        for method, ep in (("POST", "send"), ("GET", "poll"), ("POST", "close")):
            path = "/rtc/%s?%s%s" % (ep, q, "&after=0&timeout=0" if ep == "poll" else "")
            st, h, data = srv.request(method, path, {"id": "ping"} if ep == "send" else None)
            check_json_answer(st, h, data, 404, "%s %s sid" % (ep, what))


def test_methods(srv):
    c = Client(srv)
    for method, ep in (("GET", "send"), ("POST", "poll"), ("GET", "session"), ("GET", "close"),
                       ("POST", "status"), ("PUT", "send"), ("DELETE", "session"),
                       ("PATCH", "poll"), ("PUT", "status")):
        path = "/rtc/%s?sid=%s&after=0&timeout=0" % (ep, c.qsid())
        st, h, data = srv.request(method, path, b'{"id":"ping"}' if method != "GET" else None)
        check_json_answer(st, h, data, 405, "%s /rtc/%s" % (method, ep))
        want = ("GET" if ep in ("poll", "status") else "POST") + ", OPTIONS"
        allow = {k.lower(): v for k, v in h.items()}.get("allow")
        check(allow == want, "%s /rtc/%s: Allow %r, expected %r (the endpoint's own method)" % (
            method, ep, allow, want))
    check(c.poll() == [], "a refused method still applied the message")
    check(json.loads(srv.request("GET", "/rtc/status")[2]).get("sessions") is not None,
          "status broken after refused methods")


def test_unknown_endpoints(srv):
    for path in ("/rtc/nope", "/rtc/", "/rtc", "/rtc/sessions", "/rtc/send/extra",
                 "/rtc/status.json", "/rtc/SEND"):
        for method in ("GET", "POST"):
            st, h, data = srv.request(method, path, b"{}" if method == "POST" else None)
            check_json_answer(st, h, data, 404, "%s %s" % (method, path))


def test_still_serving(srv):
    """After all of the above: a normal call works and no backend died."""
    a, b = call_pair(srv, "after-a", "after-b")
    a.send({"id": "onIceCandidate", "candidate": {"c": 1}})
    b.expect({"id": "iceCandidate", "candidate": {"c": 1}})
    b.send({"id": "stop"})
    a.expect({"id": "stopCommunication", "reason": "hung_up"})
    now = sorted(srv.backend_pids())
    check(STATE.get("pids") == now, "backend processes changed from %s to %s: one died" % (
        STATE.get("pids"), now))
    bad = log_crashes(srv)
    check(not bad, "the log shows a crash: %s" % " | ".join(bad[:5]))


def test_db_busy(srv):
    """LONGCALL_BUSY_TIMEOUT=500: a write lock held elsewhere gives 503 +
    Retry-After, and nothing is applied; once released, sends work."""
    a = Client(srv, "busy-db")
    a.send({"id": "ping"})
    a.expect({"id": "pong"})
    with srv.hold_write_lock():  # SQLite's BEGIN IMMEDIATE, or PostgreSQL's write lock
        t0 = time.monotonic()
        st, h, data = a.send_raw({"id": "ping"})
        took = time.monotonic() - t0
        check_json_answer(st, h, data, 503, "send while the database is locked")
        ra = h.get("retry-after", "")
        check(ra.isdigit() and int(ra) >= 1, "503 without a Retry-After in seconds: %r" % ra)
        check(took < 30, "the locked send took %.1f s with LONGCALL_BUSY_TIMEOUT=500 ms" % took)
        # A poll only reads (WAL, PostgreSQL: readers never wait for a writer), so the
        # messages already stored keep flowing while the lock is held.
        st, h, data = a.poll_raw(a.cursor, 0)
        check_json_answer(st, h, data, 200, "poll while the database is locked")
        # The other writing endpoints answer 503 like the send.
        for what, (st, h, data) in (("session", srv.request("POST", "/rtc/session")),
                                    ("close", a.close())):
            check_json_answer(st, h, data, 503, "%s while the database is locked" % what)
            check(h.get("retry-after", "").isdigit(), "%s: 503 without Retry-After" % what)
    a.send({"id": "ping"})
    a.expect({"id": "pong"})  # exactly one: the refused send left nothing


def test_held_capacity(srv):
    """LONGCALL_MAX_HELD=1: a second held poll is refused with 503."""
    a, b = Client(srv, "cap-a"), Client(srv, "cap-b")
    p = Background(a.poll, 20)
    wait_held(srv, 1)
    st, h, data = b.poll_raw(0, 10)
    check_json_answer(st, h, data, 503, "a poll over LONGCALL_MAX_HELD")
    ra = h.get("retry-after", "")
    check(ra.isdigit() and int(ra) >= 1, "503 without a Retry-After in seconds: %r" % ra)
    # a poll with something to return is not held, so it is answered
    b.send({"id": "ping"})
    b.expect({"id": "pong"})
    a.send({"id": "ping"})
    got = p.join(40)
    check([strip_seq(m) for m in got] == [{"id": "pong"}], "the held poll got %s" % short(got))
    # capacity is free again
    st, h, data = b.poll_raw(b.cursor, 1)
    check_json_answer(st, h, data, 200, "a poll once the held one was answered")


def main():
    t = Runner("test_errors")
    groups = []
    groups.append(({"procs": 1}, [
        ("malformed JSON is 400 and applies nothing", test_bad_json),
        ("a body that is not an object or array is 400", test_not_a_message),
        ("deeply nested JSON", test_deep_nesting),
        ("huge numbers in bodies and poll parameters", test_huge_numbers),
        ("a name with \\u0000", test_null_in_name),
        ("wrong Content-Type is refused, JSON and text/plain accepted", test_content_type),
        ("body size limit (413) at LONGCALL_MAX_BODY", test_body_limit),
        ("batch size limit (413) and batch id length (400)", test_batch_limits),
        ("missing, unknown, ended and odd sids are 404", test_sid_problems),
        ("wrong methods are 405", test_methods),
        ("unknown endpoints are 404", test_unknown_endpoints),
        ("still serving afterwards: a call works, no backend died", test_still_serving),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_BUSY_TIMEOUT": "500"}}, [
        ("database locked: 503 + Retry-After, then works", test_db_busy),
    ]))
    groups.append(({"procs": 1, "env": {"LONGCALL_MAX_HELD": "1"}}, [
        ("held-poll capacity full: 503 + Retry-After", test_held_capacity),
    ]))
    t.plan(Runner.count(groups))
    for g in groups:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
