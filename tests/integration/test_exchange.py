#!/usr/bin/env python3
"""The exchange (issue 14): POST /rtc/send with after= stores the batch as a
send does and then is the session's poll from after=, answered
{"ok": true, "seq": M, "messages": [...]} at once or when held. What a
client checks: an exchange with nothing waiting is held, and answered by
the peer's next message; one with messages waiting answers them at once;
it supersedes a held poll and a later poll supersedes it (both answer at
once, nothing lost); a retried exchange (same batch, its answer lost) is
applied once and answers the mailbox from its after=; its after=
acknowledges; a bad cursor or timeout is a 400 that stores nothing; a send
without after= answers {"ok": true} as before. Run behind every front end
(tests/run-tests)."""
import concurrent.futures
import json
import os
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from lcclient import (Background, Client, Runner, check, check_json_answer,  # noqa: E402
                      db_size, short, status, strip_seq, wait_held)
from harness import SERVER  # noqa: E402


def exchange_raw(c, msgs, after, timeout=0, batch=None, http_timeout=None, prev=None):
    path = "/rtc/send?sid=%s&after=%s&timeout=%s" % (c.qsid(), after, timeout)
    if batch is not None:
        path += "&batch=" + urllib.parse.quote(batch, safe="")
    if prev is not None:
        path += "&prev=" + urllib.parse.quote(prev, safe="")
    body = msgs if isinstance(msgs, (bytes, str)) else json.dumps(msgs)
    t = timeout + 20 if http_timeout is None else http_timeout
    return c.srv.request("POST", path, body, timeout=t, source=c.source)


def exchange(c, msgs, timeout=0, batch=None, after=None):
    """An exchange from c's cursor; checks the answer's shape, records the
    messages and moves the cursor. Returns (messages, seconds it took)."""
    a = c.cursor if after is None else after
    t0 = time.monotonic()
    st, h, data = exchange_raw(c, msgs, a, timeout, batch)
    took = time.monotonic() - t0
    body = check_json_answer(st, h, data, 200, "%s exchange after=%s" % (c.label, a))
    check(isinstance(body, dict) and set(body) == {"ok", "seq", "messages"} and
          body["ok"] is True and isinstance(body["messages"], list),
          "%s: an exchange answers {ok, seq, messages}, got %s" % (c.label, short(body)))
    seqs = [m.get("seq") for m in body["messages"]]
    check(seqs == sorted(seqs) and all(s > a for s in seqs) and
          (not seqs or body["seq"] == seqs[-1]) and (seqs or body["seq"] == a),
          "%s: exchange after=%s answered seqs %s, seq %s" % (c.label, a, seqs, body["seq"]))
    fresh = [m for m in body["messages"] if m["seq"] > c.cursor]
    c.received.extend(fresh)
    c.cursor = max(c.cursor, body["seq"])
    return body["messages"], took


PAIRS = [0]


def pair(srv, source=None):
    """Two registered sessions with names of their own (one server serves
    every test of the group); alice's requests come from source."""
    PAIRS[0] += 1
    a, b = Client(srv, "alice", source=source), Client(srv, "bob")
    a.register("alice%d" % PAIRS[0])
    b.register("bob%d" % PAIRS[0])
    return a, b


def in_call(srv, source=None):
    """A pair in an answered call, every message of the set-up read."""
    a, b = pair(srv, source)
    a.send({"id": "call", "to": b.name, "sdpOffer": "o"})
    b.expect({"id": "incomingCall", "from": a.name, "offer": "o"})
    b.send({"id": "incomingCallResponse", "from": a.name, "callResponse": "accept",
            "sdpOffer": "a"})
    a.expect({"id": "callResponse", "response": "accepted", "sdpAnswer": "a"})
    b.expect({"id": "startCommunication"})
    return a, b


def ping(n):
    return {"id": "ping", "n": n}


def test_answers_what_waits(srv):
    a, b = pair(srv)
    b.send({"id": "call", "to": a.name, "sdpOffer": "o1"})
    # alice's exchange: bob's call was waiting, and her ping's pong is
    # stored by the exchange itself: one answer holds both, in order.
    msgs, _ = exchange(a, ping(1), timeout=20)
    got = [strip_seq(m) for m in msgs]
    check(got == [{"id": "incomingCall", "from": b.name, "offer": "o1"}, {"id": "pong"}],
          "alice's exchange answered %s" % short(got))


def test_held_then_answered(srv):
    a, b = in_call(srv)
    # alice trickles a candidate as an exchange: nothing waits for her, so
    # it is held until bob's candidate comes.
    held = Background(exchange, a, {"id": "onIceCandidate", "candidate": {"n": 1}}, 20)
    wait_held(srv, 1)
    got = b.expect({"id": "iceCandidate", "candidate": {"n": 1}})
    check(got, "bob did not get alice's candidate while her exchange was held")
    check(held.finished is None, "alice's exchange was answered before bob sent anything")
    t0 = time.monotonic()
    b.send({"id": "onIceCandidate", "candidate": {"n": 2}})
    msgs, took = held.join(25)
    check([strip_seq(m) for m in msgs] == [{"id": "iceCandidate", "candidate": {"n": 2}}] and
          time.monotonic() - t0 < 10, "alice's held exchange answered %s" % short(msgs))


def test_own_reply_at_once(srv):
    a, _ = pair(srv)
    msgs, took = exchange(a, ping(2), timeout=20)
    check([strip_seq(m) for m in msgs] == [{"id": "pong"}] and took < 15,
          "an exchange with a ping answered %s in %.1f s" % (short(msgs), took))


def test_timeout_in_call(srv):
    a, b = in_call(srv)
    seq0 = a.cursor
    msgs, took = exchange(a, {"id": "onIceCandidate", "candidate": {"n": 1}}, timeout=1)
    check(msgs == [] and took >= 0.8,
          "an exchange with nothing for its sender was not held to its time-out: %s in %.2f s"
          % (short(msgs), took))
    check(a.cursor == seq0, "an empty exchange answer moved the cursor")
    b.expect({"id": "iceCandidate", "candidate": {"n": 1}})


def cand(n):
    return {"id": "onIceCandidate", "candidate": {"n": n}}


def test_supersedes_poll(srv):
    a, b = in_call(srv)
    poll = Background(a.poll_raw, a.cursor, 20)
    wait_held(srv, 1)
    t0 = time.monotonic()
    exch = Background(exchange_raw, a, cand(1), a.cursor, 20)
    st, h, data = poll.join(15)
    body = check_json_answer(st, h, data, 200, "the superseded poll")
    check(body.get("messages") == [] and time.monotonic() - t0 < 10,
          "a poll held when an exchange came did not answer at once, empty: %s" % short(body))
    b.expect({"id": "iceCandidate", "candidate": {"n": 1}})
    b.send(cand(2))
    st, h, data = exch.join(25)
    body = check_json_answer(st, h, data, 200, "the exchange")
    check([strip_seq(m) for m in body.get("messages", [])] ==
          [{"id": "iceCandidate", "candidate": {"n": 2}}] and body.get("ok") is True,
          "the exchange that superseded the poll answered %s" % short(body))


def test_poll_supersedes_exchange(srv):
    a, b = in_call(srv)
    exch = Background(exchange_raw, a, cand(1), a.cursor, 20)
    wait_held(srv, 1)
    b.expect({"id": "iceCandidate", "candidate": {"n": 1}})
    t0 = time.monotonic()
    poll = Background(a.poll_raw, a.cursor, 20)
    st, h, data = exch.join(15)
    body = check_json_answer(st, h, data, 200, "the superseded exchange")
    check(body == {"ok": True, "seq": a.cursor, "messages": []} and time.monotonic() - t0 < 10,
          "an exchange held when a poll came did not answer at once, ok and empty: %s"
          % short(body))
    b.send(cand(2))
    st, h, data = poll.join(25)
    body = check_json_answer(st, h, data, 200, "the poll")
    check([strip_seq(m) for m in body.get("messages", [])] ==
          [{"id": "iceCandidate", "candidate": {"n": 2}}] and "ok" not in body,
          "the poll that superseded the exchange answered %s" % short(body))


def test_retry_applied_once(srv):
    a, b = in_call(srv)
    b.send(cand(10))
    after = a.cursor
    # The first answer is lost (the client never reads it); the retry with
    # the same batch id and cursor is applied once and answers the same.
    st1, _, d1 = exchange_raw(a, cand(1), after, 0, batch="x1")
    st2, _, d2 = exchange_raw(a, cand(1), after, 0, batch="x1")
    b1, b2 = json.loads(d1), json.loads(d2)
    check(st1 == st2 == 200 and b1 == b2 and [strip_seq(m) for m in b2["messages"]] ==
          [{"id": "iceCandidate", "candidate": {"n": 10}}],
          "a retried exchange answered %s %s, then %s %s" % (st1, short(b1), st2, short(b2)))
    got = b.collect(2, deadline=3)
    check([strip_seq(m) for m in got] == [{"id": "iceCandidate", "candidate": {"n": 1}}],
          "the retried exchange's candidate reached bob %d times: %s" % (len(got), short(got)))


def test_acknowledges(srv):
    a, b = in_call(srv)
    b.send(cand(1))
    b.send(cand(2))
    first = a.cursor
    msgs, _ = exchange(a, cand(100), after=first)
    check(len(msgs) == 2, "the exchange did not answer both waiting: %s" % short(msgs))
    # The next exchange from the new cursor does not see them again, and
    # the acknowledgement is stored (a poll's acked, as the history shows).
    msgs2, _ = exchange(a, cand(101), timeout=0)
    check(msgs2 == [], "an exchange from the new cursor answered again: %s" % short(msgs2))
    b.collect(3, deadline=3)


def test_bad_cursor(srv):
    a, b = in_call(srv)
    for q, what in (("after=%d" % (a.cursor + 5), "beyond the last message"),
                    ("after=-1", "negative"), ("after=x", "not a number"),
                    ("after=0&timeout=z", "bad timeout")):
        st, h, data = a.srv.request("POST", "/rtc/send?sid=%s&%s" % (a.qsid(), q),
                                    json.dumps(cand(7)), timeout=20)
        check_json_answer(st, h, data, 400, "exchange with %s" % what)
    check(b.collect(1, deadline=1) == [], "a refused exchange stored its message")


def test_plain_send_unchanged(srv):
    a, b = in_call(srv)
    a.send(cand(1))  # asserts 200 {"ok": true}
    b.expect({"id": "iceCandidate", "candidate": {"n": 1}})


def test_prev_orders(srv):
    """A client that sends while its exchange is held sends the next batch
    with prev= the held one's id. Should that one overtake the first on the
    way (here: sent before it), the server holds it until the first is
    stored, then applies it: both answered ok, the peer gets both once, in
    order; the same batch again is not applied twice; a prev that never
    comes is a 409 out_of_order that stores nothing."""
    a, b = in_call(srv)
    cur = a.cursor
    second = Background(exchange_raw, a, cand(2), cur, 0, "p2", None, "p1")
    wait_held(srv, 1)
    check(second.finished is None, "the send whose prev is not stored was not held")
    st, h, data = exchange_raw(a, cand(1), cur, 1, batch="p1")
    body = check_json_answer(st, h, data, 200, "the first exchange")
    check(body.get("ok") is True, "first exchange: %s" % short(body))
    st, h, data = second.join(15)
    body = check_json_answer(st, h, data, 200, "the held second exchange, prev=p1")
    check(body.get("ok") is True, "second exchange: %s" % short(body))
    b.expect({"id": "iceCandidate", "candidate": {"n": 1}},
             {"id": "iceCandidate", "candidate": {"n": 2}})
    st, h, data = exchange_raw(a, cand(2), cur, 0, batch="p2", prev="p1")  # a retry
    check_json_answer(st, h, data, 200, "the second exchange again (same batch)")
    check(b.collect(1, deadline=0.5) == [], "a retried batch was applied twice")
    st, h, data = exchange_raw(a, cand(4), cur, 0, batch="p4", prev="never")
    body = check_json_answer(st, h, data, 409, "a batch whose prev never comes")
    check(body.get("reason") == "out_of_order", "409 without reason out_of_order: %s" % short(body))
    check(b.collect(1, deadline=1) == [], "the out-of-order batch was stored")
    st, h, data = a.srv.request("POST", "/rtc/send?sid=%s&prev=" % a.qsid(), json.dumps(cand(3)),
                                timeout=20)
    check_json_answer(st, h, data, 400, "an empty prev")


HELD = 3  # LONGCALL_ADDR_HELD in the abuse group
MANY = "127.0.0.9"  # the address that holds too many


def test_held_limit(srv):
    calls = [in_call(srv, MANY) for _ in range(HELD + 1)]
    held = [Background(exchange_raw, a, cand(i), a.cursor, 20) for i, (a, _) in
            enumerate(calls[:HELD])]
    wait_held(srv, HELD)
    a, b = calls[HELD]
    st, h, data = exchange_raw(a, cand(99), a.cursor, 20)
    body = check_json_answer(st, h, data, 200, "the exchange over LONGCALL_ADDR_HELD")
    check(body == {"ok": True, "seq": a.cursor, "messages": []},
          "an exchange over the held limit answered %s (its batch is stored: not a 429)"
          % short(body))
    b.expect({"id": "iceCandidate", "candidate": {"n": 99}})
    st, h, data = a.poll_raw(a.cursor, 5)
    check_json_answer(st, h, data, 429, "a poll from the same address over the limit")
    other = Background(b.poll_raw, b.cursor, 20)  # bob is on 127.0.0.1: held
    wait_held(srv, HELD + 1)
    check(other.finished is None, "another address's poll was not held")
    for i, (x, y) in enumerate(calls[:HELD]):
        y.expect({"id": "iceCandidate", "candidate": {"n": i}})
        y.send(cand(100 + i))
    for i, bg in enumerate(held):
        st, h, data = bg.join(25)
        body = check_json_answer(st, h, data, 200, "held exchange %d" % i)
        check([strip_seq(m) for m in body["messages"]] ==
              [{"id": "iceCandidate", "candidate": {"n": 100 + i}}],
              "held exchange %d answered %s" % (i, short(body)))
    a.send(cand(7))
    st, h, data = other.join(25)
    check(st == 200 and b"\"n\":7" in data, "bob's held poll answered %s %s" % (st, short(data)))


GOOD = "http://good.example"


def test_cors_held(srv):
    """A page on another origin (LONGCALL_CORS_ORIGINS) reads an exchange's
    answer only with Access-Control-Allow-Origin: at once and when held."""
    a, b = in_call(srv)
    origin = {"Origin": GOOD}
    path = "/rtc/send?sid=%s&after=%d&timeout=%%d" % (a.qsid(), a.cursor)
    st, h, data = srv.request("POST", path % 0, json.dumps(cand(1)), origin, timeout=20)
    check_json_answer(st, h, data, 200, "an exchange from a listed origin, answered at once")
    check(h.get("access-control-allow-origin") == GOOD,
          "exchange answered at once: Access-Control-Allow-Origin %r"
          % h.get("access-control-allow-origin"))
    held = Background(srv.request, "POST", path % 20, json.dumps(cand(2)), origin, 40)
    wait_held(srv, 1)
    b.expect({"id": "iceCandidate", "candidate": {"n": 1}},
             {"id": "iceCandidate", "candidate": {"n": 2}})
    b.send(cand(3))
    st, h, data = held.join(30)
    body = check_json_answer(st, h, data, 200, "a held exchange from a listed origin")
    check([strip_seq(m) for m in body["messages"]] ==
          [{"id": "iceCandidate", "candidate": {"n": 3}}],
          "the held exchange answered %s" % short(body))
    check(h.get("access-control-allow-origin") == GOOD,
          "held exchange's answer: Access-Control-Allow-Origin %r (a page on %s cannot read it)"
          % (h.get("access-control-allow-origin"), GOOD))


SPAM = int(os.environ.get("EXCHANGE_PREV_SPAM", "2000"))  # requests
SPAM_SECONDS = 240
SPAMMER = "127.0.0.10"


def test_prev_spam(srv):
    """SPAM sends from one address naming a prev that is never stored: each a
    409 out_of_order (those within LONGCALL_ADDR_HELD after waiting for it,
    the rest at once); the database does not grow; a call on another
    address relays meanwhile and after."""
    a, b = in_call(srv, SPAMMER)
    x, y = in_call(srv)
    size0, _ = db_size(srv)
    end = time.monotonic() + SPAM_SECONDS
    path = "/rtc/send?sid=%s&batch=s%%d&prev=never&after=%d&timeout=20" % (a.qsid(), a.cursor)
    body = json.dumps(cand(0))

    def one(i):
        if time.monotonic() > end:
            return "late"
        st, h, data = srv.request("POST", path % i, body, timeout=30, source=SPAMMER)
        try:
            return json.loads(data).get("reason") if st == 409 else "%s %s" % (st, short(data))
        except ValueError:
            return "%s %s" % (st, short(data))

    relayed = 0
    held = []  # held_polls during the spam: the spammer's waiting sends, y's poll
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        spam = pool.map(one, range(SPAM))
        while relayed < 20 and time.monotonic() < end:  # the other call, during the spam
            x.send(cand(1000 + relayed))
            y.expect({"id": "iceCandidate", "candidate": {"n": 1000 + relayed}})
            held.append(status(srv).get("held_polls", -1))
            relayed += 1
        answers = {}
        for r in spam:
            answers[r] = answers.get(r, 0) + 1
    size1, _ = db_size(srv)
    print("# prev spam: %d requests from %s in %.1f s: %s; database %d -> %d bytes; %d relays of "
          "another call meanwhile; held polls then %s" % (
              SPAM, SPAMMER, time.monotonic() - end + SPAM_SECONDS, answers, size0, size1, relayed,
              held), flush=True)
    check(answers == {"out_of_order": SPAM},
          "the spam was answered %s (every one should be 409 out_of_order)" % answers)
    check(size1 - size0 <= 64 * 1024, "the spam grew the database by %d bytes" % (size1 - size0))
    check(max(held, default=0) <= HELD + 1,
          "held polls during the spam: %s (at most LONGCALL_ADDR_HELD=%d sends waiting, and "
          "another address's poll)" % (held, HELD))
    check(relayed == 20, "only %d of 20 relays of another call got through" % relayed)
    check(b.collect(1, deadline=1) == [], "a spammed batch was stored")
    a.send(cand(5))  # the spammer's own session still works
    b.expect({"id": "iceCandidate", "candidate": {"n": 5}})
    x.send(cand(6))
    y.expect({"id": "iceCandidate", "candidate": {"n": 6}})


BIG_BODY = 4096            # LONGCALL_MAX_BODY in the held-bytes group
BIG_SENDS = 160            # sends of almost BIG_BODY each, all at once
BUDGET = 64 * BIG_BODY     # api.c: HELD_SEND_BODIES x LONGCALL_MAX_BODY


def test_held_bytes(srv):
    """BIG_SENDS sends of nearly LONGCALL_MAX_BODY bytes each, from 16
    addresses, all naming a prev that never comes, all at once: the process
    keeps at most 64 bodies' worth waiting (the rest are 409 out_of_order at
    once), every one is a 409 that stores nothing, and another call is served
    meanwhile."""
    senders = []
    for k in range(16):
        c = Client(srv, "big%d" % k, source="127.0.1.%d" % (k + 1))
        senders.append(c)
    x, y = in_call(srv)
    pad = "p" * (BIG_BODY - 200)
    body = json.dumps({"id": "ping", "pad": pad})
    check(len(body) < BIG_BODY, "body too big for the test: %d" % len(body))

    def one(i):
        c = senders[i % len(senders)]
        st, _, data = srv.request("POST", "/rtc/send?sid=%s&batch=big%d&prev=never" % (c.qsid(), i),
                                  body, timeout=30, source=c.source)
        try:
            return json.loads(data).get("reason") if st == 409 else "%s %s" % (st, short(data))
        except ValueError:
            return "%s %s" % (st, short(data))

    held = []
    with concurrent.futures.ThreadPoolExecutor(BIG_SENDS) as pool:
        spam = [pool.submit(one, i) for i in range(BIG_SENDS)]
        # Sample until every send is answered (each waits at most 2 s once
        # it reaches a backend; on a loaded machine mod_fcgid and CGI take
        # a while to start the processes). Another call is served while
        # sends are held (or, at the latest, once the spam is over).
        start, served = time.monotonic(), False
        while not all(f.done() for f in spam) and time.monotonic() - start < 60:
            held.append(status(srv).get("held_polls", -1))
            if not served and (held[-1] > 0 or time.monotonic() - start > 1.5):
                x.send(cand(77))
                y.expect({"id": "iceCandidate", "candidate": {"n": 77}})
                served = True
            time.sleep(0.05)
        if not served:
            x.send(cand(77))
            y.expect({"id": "iceCandidate", "candidate": {"n": 77}})
        answers = {}
        for f in spam:
            r = f.result(60)
            answers[r] = answers.get(r, 0) + 1
    print("# held bytes: %d sends of %d bytes: %s; held polls meanwhile up to %d" % (
        BIG_SENDS, len(body), answers, max(held, default=-1)), flush=True)
    check(answers == {"out_of_order": BIG_SENDS}, "answers: %s" % answers)
    if SERVER in ("cgi", "apache-fcgid"):
        # A process per request (CGI), or one request at a time per process
        # (mod_fcgid starts another process for a request that finds every
        # process busy, up to FcgidMaxProcessesPerClass): each keeps one
        # body, the bytes budget has nothing to bound; what bounds held
        # sends across processes there is LONGCALL_ADDR_HELD per address
        # (test_prev_spam) and the web server's process limit. How many
        # are held at once depends on how fast mod_fcgid starts processes.
        check(max(held, default=0) > 0, "no send was held during the spam")
        return
    most = BUDGET // len(body)
    check(0 < max(held, default=0) <= most + 2,
          "held polls during the spam: up to %d; at most %d sends of %d bytes fit the process's "
          "%d bytes (and y's poll)" % (max(held, default=0), most, len(body), BUDGET))


GROUPS = [
    ({}, [
        ("an exchange with messages waiting answers them at once, ok and seq",
         test_answers_what_waits),
        ("an exchange whose own message answers its sender is answered at once",
         test_own_reply_at_once),
        ("an exchange with nothing waiting is held to its time-out, answered ok and empty",
         test_timeout_in_call),
        ("an exchange with nothing waiting is held and answered by the peer's next message",
         test_held_then_answered),
        ("an exchange supersedes a held poll (which answers at once), then is answered",
         test_supersedes_poll),
        ("a poll supersedes a held exchange (which answers at once, ok), then is answered",
         test_poll_supersedes_exchange),
        ("a retried exchange (same batch, answer lost) is applied once and answers the same",
         test_retry_applied_once),
        ("an exchange's after= acknowledges: the next one does not answer them again",
         test_acknowledges),
        ("a bad cursor or timeout is a 400 and stores nothing", test_bad_cursor),
        ("a send without after= still answers {\"ok\": true}", test_plain_send_unchanged),
        ("prev= orders a batch after its predecessor: one that overtakes it is held, then "
         "applied after it, once; a prev never stored is a 409 out_of_order that stores nothing",
         test_prev_orders),
    ]),
    ({"env": {"LONGCALL_ADDR_HELD": str(HELD)}}, [
        ("abuse: exchanges held by one address stop at LONGCALL_ADDR_HELD; one more is stored "
         "and answered ok at once, a poll gets 429, another address is served",
         test_held_limit),
        ("abuse: %d sends naming a prev never stored, from one address: each 409 "
         "out_of_order (at most LONGCALL_ADDR_HELD waiting), the database does not grow, "
         "another call is served" % SPAM,
         test_prev_spam),
    ]),
    ({"env": {"LONGCALL_MAX_BODY": str(BIG_BODY)}}, [
        ("abuse: %d big sends waiting for a prev that never comes, from 16 addresses: the "
         "process keeps at most 64 x LONGCALL_MAX_BODY of them, the rest 409 at once, another "
         "call served" % BIG_SENDS, test_held_bytes),
    ]),
    ({"env": {"LONGCALL_CORS_ORIGINS": GOOD}}, [
        ("cross-origin: an exchange's answer, at once and held, has "
         "Access-Control-Allow-Origin", test_cors_held),
    ]),
]


def main():
    t = Runner("exchange")
    t.plan(Runner.count(GROUPS))
    for g in GROUPS:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
