"""lcclient: a small longcall client and test runner for the integration
tests (Python 3 standard library only).

    from harness import Server
    from lcclient import Client, Runner, check, match

    t = Runner("call")
    def test_ping(srv):
        a = Client(srv)
        a.send({"id": "ping"})
        a.expect({"id": "pong"})
    groups = [({"procs": 1}, [("ping answers pong", test_ping)])]
    t.plan(Runner.count(groups))  # 1..2: the test and group()'s crash check
    for g in groups:
        t.group(*g)
    t.done()

A Client is one transport session. It keeps a cursor (the last seq it
acknowledged) and everything it received; poll() acknowledges what the
previous poll returned, like the browser client does. Every wait is bounded
by a deadline in seconds. Helpers raise AssertionError with a one-line reason.
"""
import json
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse

from harness import Server

JSON_TYPE = "application/json"
# lighttpd reports a backend that died; the sanitizers and glibc report the rest.
CRASH_MARKERS = ("child signalled", "child exited", "AddressSanitizer", "LeakSanitizer",
                 "runtime error:", "Segmentation fault", "double free", "stack smashing",
                 "Assertion `", "core dumped")


def check(cond, reason):
    """assert that survives python -O, with a one-line reason."""
    if not cond:
        raise AssertionError(reason)


def short(value, limit=300):
    """A one-line, bounded rendering of a value for failure reasons."""
    if isinstance(value, bytes):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, sort_keys=True)
        except (TypeError, ValueError):
            text = repr(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= limit else text[:limit] + "...(%d chars)" % len(text)


def strip_seq(msg):
    if isinstance(msg, dict):
        return {k: v for k, v in msg.items() if k != "seq"}
    return msg


def match(expected, actual):
    """True when actual equals expected, where the string "*" in expected
    matches any value (the member must still be present)."""
    if expected == "*":
        return True
    if isinstance(expected, dict):
        if not isinstance(actual, dict) or set(expected) != set(actual):
            return False
        return all(match(expected[k], actual[k]) for k in expected)
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(expected) != len(actual):
            return False
        return all(match(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return expected == actual


def check_messages(who, expected, got):
    """Compares a mailbox (messages with seq) with expected (without seq),
    exactly and in order."""
    got_plain = [strip_seq(m) for m in got]
    for i, (e, g) in enumerate(zip(expected, got_plain)):
        check(match(e, g), "%s message %d: expected %s, got %s" % (who, i + 1, short(e), short(g)))
    check(len(expected) == len(got_plain),
          "%s: expected %d messages, got %d: %s" % (who, len(expected), len(got_plain),
                                                    short(got_plain, 600)))


def check_json_answer(status, headers, data, want_status, what):
    """An answer per the wire contract: status, JSON body, the fixed headers.
    Returns the parsed body."""
    check(status == want_status, "%s: expected HTTP %s, got %s %s" % (what, want_status, status,
                                                                      short(data)))
    check_headers(headers, data, what)
    try:
        body = json.loads(data)
    except ValueError:
        raise AssertionError("%s: body is not JSON: %s" % (what, short(data)))
    if status >= 400:
        check(isinstance(body, dict) and list(body)[:1] == ["error"]
              and isinstance(body["error"], str) and body["error"].strip() != ""
              and set(body) <= {"error", "reason"}
              and isinstance(body.get("reason", ""), str),
              "%s: an error must be {\"error\": \"<sentence>\"} (and a \"reason\" string "
              "for a refused send), got %s" % (what, short(body)))
    return body


def check_headers(headers, data, what):
    ct = headers.get("content-type", "")
    check(ct.split(";")[0].strip().lower() == JSON_TYPE,
          "%s: Content-Type is %r, not application/json" % (what, ct))
    cl = headers.get("content-length")
    check(cl is not None, "%s: no Content-Length header" % what)
    check(cl.isdigit() and int(cl) == len(data),
          "%s: Content-Length %r but the body has %d bytes" % (what, cl, len(data)))
    check(headers.get("cache-control", "").lower() == "no-store",
          "%s: Cache-Control is %r, not no-store" % (what, headers.get("cache-control")))
    # Poll answers must not be buffered by a proxy; the others may be.
    try:
        poll = isinstance(json.loads(data), dict) and "messages" in json.loads(data)
    except ValueError:
        poll = False
    want = "no" if poll else ""
    check(headers.get("x-accel-buffering", "").lower() == want,
          "%s: X-Accel-Buffering is %r, expected %r (%s)" % (
              what, headers.get("x-accel-buffering"), want or "absent",
              "a poll answer" if poll else "not a poll answer"))


def db_size(srv):
    """(bytes of the database, bytes of its WAL file) on either store
    (harness Server.db_bytes)."""
    return srv.db_bytes()


def wait_until(pred, deadline, what, interval=0.05):
    """Calls pred() until it returns a true value or deadline seconds pass.
    Returns that value; raises AssertionError on time-out."""
    end = time.monotonic() + deadline
    last = None
    while True:
        last = pred()
        if last:
            return last
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.0f s waiting for %s" % (deadline, what))
        time.sleep(interval)


def status(srv):
    st, body = srv.json("GET", "/rtc/status", timeout=15)
    check(st == 200 and isinstance(body, dict), "GET /rtc/status: %s %s" % (st, short(body)))
    return body


def wait_status(srv, cond, what, deadline=10):
    """Polls /rtc/status until cond(status) is true; returns that status.
    On time-out the reason shows the last status seen."""
    end = time.monotonic() + deadline
    while True:
        s = status(srv)
        if cond(s):
            return s
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.0f s waiting for %s; last status %s" % (
                deadline, what, short(s)))
        time.sleep(0.05)


def wait_held(srv, n, deadline=10):
    """Waits until /rtc/status counts n held polls (over all processes)."""
    return wait_status(srv, lambda s: s.get("held_polls") == n, "held_polls == %d" % n, deadline)


class Client:
    """One transport session (POST /rtc/session)."""

    def __init__(self, srv, label=None, source=None):
        self.srv = srv
        self.source = source  # loopback address its requests come from (None: 127.0.0.1)
        st, h, data = srv.request("POST", "/rtc/session", timeout=15, source=source)
        self.session = check_json_answer(st, h, data, 200, "POST /rtc/session")
        check(isinstance(self.session.get("sid"), str), "session has no sid: %s" % short(data))
        self.sid = self.session["sid"]
        self.label = label or "session"
        self.name = None
        self.cursor = 0       # last seq returned to us (acknowledged by the next poll)
        self.received = []    # every message received, in order, each once

    # -- raw requests ---------------------------------------------------
    def qsid(self):
        return urllib.parse.quote(self.sid, safe="")

    def send_raw(self, msgs, batch=None, headers=None, timeout=30):
        path = "/rtc/send?sid=" + self.qsid()
        if batch is not None:
            path += "&batch=" + urllib.parse.quote(batch, safe="")
        body = msgs if isinstance(msgs, (bytes, str)) else json.dumps(msgs)
        return self.srv.request("POST", path, body, headers, timeout=timeout, source=self.source)

    def poll_raw(self, after=None, timeout=0, http_timeout=None):
        after = self.cursor if after is None else after
        path = "/rtc/poll?sid=%s&after=%s" % (self.qsid(), after)
        if timeout is not None:
            path += "&timeout=%s" % timeout
        t = (timeout or 0) + 20 if http_timeout is None else http_timeout
        return self.srv.request("GET", path, timeout=t, source=self.source)

    # -- checked requests -----------------------------------------------
    def send(self, msgs, batch=None, headers=None):
        """Sends one message or a batch; asserts 200 {"ok": true}."""
        st, h, data = self.send_raw(msgs, batch, headers)
        body = check_json_answer(st, h, data, 200, "%s send %s" % (self.label, short(msgs, 120)))
        check(body == {"ok": True}, "%s send: expected {\"ok\": true}, got %s" % (self.label,
                                                                                short(body)))
        return body

    def poll(self, timeout=0, after=None, keep=True):
        """One poll after the cursor (or after=). Checks the answer's shape,
        records new messages and moves the cursor. Returns the messages."""
        a = self.cursor if after is None else after
        st, h, data = self.poll_raw(a, timeout)
        body = check_json_answer(st, h, data, 200, "%s poll after=%s" % (self.label, a))
        check_poll_body(body, a, self.label)
        msgs = body["messages"]
        if keep:
            fresh = [m for m in msgs if m["seq"] > self.cursor]
            self.received.extend(fresh)
            self.cursor = max(self.cursor, body["seq"])
        return msgs

    def collect(self, n, deadline=10, poll_timeout=1):
        """Polls until n new messages arrived (or deadline). Returns the new
        messages (possibly more than n)."""
        start = len(self.received)
        end = time.monotonic() + deadline
        while len(self.received) - start < n and time.monotonic() < end:
            left = end - time.monotonic()
            self.poll(timeout=max(1, min(poll_timeout, int(left))))
        return self.received[start:]

    def expect(self, *expected, deadline=10):
        """Polls until len(expected) new messages arrived; checks them exactly
        (seq dropped, "*" matches anything). Then checks nothing else is
        waiting right now."""
        got = self.collect(len(expected), deadline)
        if len(got) == len(expected):
            got = got + self.poll(timeout=0)
        check_messages(self.label, list(expected), got)
        return got

    def expect_nothing(self, wait=0):
        """Checks the mailbox has nothing new (waiting up to wait seconds)."""
        got = self.poll(timeout=wait)
        check(not got, "%s: expected no message, got %s" % (self.label,
                                                          short([strip_seq(m) for m in got])))

    def drain(self, until, deadline=10, poll_timeout=1):
        """Polls until until(received_messages) is true; returns the messages
        received since the call. Raises on time-out."""
        start = len(self.received)
        end = time.monotonic() + deadline
        while not until(self.received[start:]):
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError("%s: timed out after %.0f s; got %s" % (
                    self.label, deadline, short([strip_seq(m) for m in self.received[start:]])))
            self.poll(timeout=max(1, min(poll_timeout, int(left))))
        return self.received[start:]

    def register(self, name, reclaim=None):
        """Registers name (presenting the reclaim key when given: a name
        reserved after its session expired); keeps the new key in
        self.reclaim."""
        m = {"id": "register", "name": name}
        if reclaim is not None:
            m["reclaim"] = reclaim
        self.send(m)
        got = self.expect({"id": "registerResponse", "response": "accepted", "reclaim": "*"})
        self.reclaim = got[0].get("reclaim") if got else None
        self.name = name
        self.label = name if isinstance(name, str) and name.isprintable() else self.label

    def close(self, body=b"", headers=None):
        return self.srv.request("POST", "/rtc/close?sid=" + self.qsid(), body,
                                headers or {"Content-Type": "text/plain;charset=UTF-8"},
                                timeout=15, source=self.source)


def check_poll_body(body, after, who="poll"):
    check(isinstance(body, dict) and set(body) == {"seq", "messages"},
          "%s: poll answer must be {seq, messages}, got %s" % (who, short(body)))
    msgs = body["messages"]
    check(isinstance(msgs, list) and isinstance(body["seq"], int),
          "%s: bad poll answer %s" % (who, short(body)))
    prev = after
    for m in msgs:
        check(isinstance(m, dict) and isinstance(m.get("id"), str) and
              isinstance(m.get("seq"), int),
              "%s: each message needs an id string and a seq number: %s" % (who, short(m)))
        check(m["seq"] > prev, "%s: seq not increasing after %s: %s" % (who, prev, short(msgs)))
        prev = m["seq"]
    check(body["seq"] == (msgs[-1]["seq"] if msgs else after),
          "%s: answer seq %s must be the last message's seq (or after=%s)" % (who, body["seq"],
                                                                             after))


def call_pair(srv, a_name="alice", b_name="bob", offer="OFFER", answer="ANSWER"):
    """Two registered sessions in an answered call, mailboxes drained.
    Checks only the essentials; the call tests check every field."""
    a, b = Client(srv, a_name), Client(srv, b_name)
    a.register(a_name)
    b.register(b_name)
    a.send({"id": "call", "to": b_name, "sdpOffer": offer})
    got = b.collect(1)
    check(got and got[0]["id"] == "incomingCall", "%s: expected incomingCall, got %s" % (
        b_name, short(got)))
    b.send({"id": "incomingCallResponse", "from": a_name, "callResponse": "accept",
            "sdpOffer": answer})
    got = a.collect(1)
    check(got and got[0]["id"] == "callResponse" and got[0].get("response") == "accepted",
          "%s: expected callResponse accepted, got %s" % (a_name, short(got)))
    b.drain(lambda ms: any(m["id"] == "startCommunication" for m in ms))
    a.poll()  # acknowledge
    b.poll()
    return a, b


def drain_many(pairs, deadline=10, interval=0.1):
    """Polls several clients in turn (timeout=0, so none of them is left
    without a poll for long) until each pred(new_messages) is true. pairs is
    [(client, pred)]. Returns the list of new messages per client."""
    starts = [len(c.received) for c, _ in pairs]
    end = time.monotonic() + deadline
    while True:
        for c, _ in pairs:
            c.poll(timeout=0)
        news = [c.received[s:] for (c, _), s in zip(pairs, starts)]
        if all(pred(n) for (_, pred), n in zip(pairs, news)):
            return news
        if time.monotonic() >= end:
            raise AssertionError("timed out after %.0f s; got %s" % (deadline, "; ".join(
                "%s: %s" % (c.label, short([strip_seq(m) for m in n]))
                for (c, _), n in zip(pairs, news))))
        time.sleep(interval)


def has(msg_id):
    """A predicate for drain(): some new message has this id."""
    return lambda msgs: any(m.get("id") == msg_id for m in msgs)


class Background:
    """Runs fn() in a thread; join() returns its result or re-raises."""

    def __init__(self, fn, *args):
        self.result = None
        self.error = None
        self.started = time.monotonic()
        self.finished = None
        self.thread = threading.Thread(target=self._run, args=(fn,) + args, daemon=True)
        self.thread.start()

    def _run(self, fn, *args):
        try:
            self.result = fn(*args)
        except BaseException as e:  # reported by join()
            self.error = e
        self.finished = time.monotonic()

    def join(self, deadline):
        self.thread.join(deadline)
        check(not self.thread.is_alive(), "background request still running after %.0f s" %
              deadline)
        if self.error:
            raise self.error
        return self.result

    def elapsed(self):
        return (self.finished or time.monotonic()) - self.started


def log_crashes(srv):
    """Lines of the lighttpd/backend log that show a crash."""
    text = srv.log_text()
    return [ln for ln in text.splitlines() if any(m in ln for m in CRASH_MARKERS)]


def settle(srv, deadline=25):
    """Waits (bounded) until no poll is held, so that a poll a failed test
    left behind does not fail the next test too."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if status(srv).get("held_polls") == 0:
                return
        except Exception:  # reported by the tests themselves
            return
        time.sleep(0.1)


class Skip(Exception):
    """Raised by a test that cannot run here (a tool is missing...): Runner.run
    prints `skip - NAME: reason`, counted neither passed nor failed."""


class Runner:
    """Prints a plan `1..N`, then `ok - name` / `not ok - name: reason` /
    `skip - name: reason` per test; done() exits 1 on failure. Declare the
    plan up front with plan(n) (tests/run-tests counts each planned result
    that never comes as a failure); without it done() prints `1..N` last."""

    def __init__(self, script):
        self.script = script
        self.failed = 0
        self.total = 0
        self.planned = None
        self.t0 = time.monotonic()

    def plan(self, n):
        """Prints `1..n`: n results will follow. Call before the first."""
        self.planned = n
        print("1..%d" % n, flush=True)

    @staticmethod
    def count(groups):
        """The number of results of group() calls over groups, a list of
        (server_kwargs, tests) or (server_kwargs, tests, crash_check)."""
        return sum(len(g[1]) + (g[2] if len(g) > 2 else True) for g in groups)

    def report(self, name, reason=None):
        self.total += 1
        if reason is None:
            print("ok - %s" % name, flush=True)
        else:
            self.failed += 1
            reason = " ".join(str(reason).split())
            print("not ok - %s: %s" % (name, reason[:1500]), flush=True)

    def skip(self, name, reason):
        """A test that cannot run here: `skip - name: reason`."""
        self.total += 1
        print("skip - %s: %s" % (name, " ".join(str(reason).split())), flush=True)

    def run(self, name, fn, *args):
        t = time.monotonic()
        try:
            fn(*args)
        except Skip as e:
            self.skip(name, e)
        except AssertionError as e:
            self.report(name, e)
        except Exception as e:  # a transport error, a bad JSON answer, a bug here
            tb = traceback.extract_tb(e.__traceback__)
            where = "%s:%d" % (os.path.basename(tb[-1].filename), tb[-1].lineno) if tb else "?"
            self.report(name, "%s: %s (at %s)" % (type(e).__name__, e, where))
        else:
            self.report(name)
        if os.environ.get("LONGCALL_TEST_VERBOSE"):
            print("#   %s took %.1f s" % (name, time.monotonic() - t), file=sys.stderr)

    def group(self, server_kwargs, tests, crash_check=True):
        """Starts one server, runs each (name, fn(srv)) against it, stops it.
        With crash_check, adds a test that the log shows no backend crash.
        Prints len(tests) + crash_check results, whatever happens."""
        env = server_kwargs.get("env") or {}
        label = "no backend crash in the log (%s)" % (
            ", ".join("%s=%s" % (k.replace("LONGCALL_", ""), v) for k, v in env.items())
            or "defaults")
        srv = None
        try:
            srv = Server(**server_kwargs)
            srv.start()
        except Exception as e:
            for name, _ in tests:
                self.report(name, "server did not start: %s" % e)
            if crash_check:
                self.report(label, "server did not start: %s" % e)
            if srv is not None:
                srv.cleanup()
            return
        try:
            for name, fn in tests:
                settle(srv)
                self.run(name, fn, srv)
            if crash_check:
                bad = log_crashes(srv)
                if bad:
                    # What the backends said before: the reason is usually there.
                    said = [ln for ln in srv.log_text().splitlines()
                            if re.search(r"\blevel=(error|warn) ", ln)]
                    for ln in said[-10:]:
                        print("#   log: " + ln[:300], file=sys.stderr)
                self.report(label, None if not bad else "log shows: " + " | ".join(bad[:5]))
        finally:
            srv.cleanup()

    def done(self):
        """Prints the plan if none was declared, a summary on stderr, and exits
        1 if a test failed."""
        if self.planned is None:
            print("1..%d" % self.total, flush=True)
        elif self.planned != self.total:
            print("# %s: planned %d results, printed %d" % (self.script, self.planned, self.total),
                  file=sys.stderr)
        print("# %s: %d tests, %d failed, %.0f s" % (self.script, self.total, self.failed,
                                                   time.monotonic() - self.t0),
              file=sys.stderr)
        sys.exit(1 if self.failed else 0)
