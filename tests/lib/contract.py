"""contract: a client that keeps longcall's delivery contract under faults,
for the fault and soak tests (Python 3 standard library only).

Each send carries a batch id; a send that got no answer (connection reset,
time-out, a 5xx or 429 of the backend or the front end) is sent again with
the same batch id until it is answered {"ok": true} or its deadline passes.
Each poll acknowledges what the previous one returned (after=); a poll that
failed is repeated with the same after=. A Peer counts what it saw, so a
test can print and check: sent, answered, retries, poll errors, and per
received message whether it was new, a duplicate or out of order.

A Peer is used by one thread at a time for sends and one for polls (each
has its own keep-alive connection).
"""
import http.client
import json
import time
import urllib.parse

from harness import connection  # plain HTTP, or HTTPS for a TLS server's port

TRANSIENT = (OSError, http.client.HTTPException, ValueError)
MAX_ATTEMPTS = 5000  # tries of one send or poll_until at most; the deadline comes first


class Gone(Exception):
    """The session is unknown to the server (404): the contract cannot go on."""


class Peer:
    def __init__(self, port, label="peer", host="127.0.0.1", http_timeout=40):
        self.host, self.port, self.label = host, port, label
        self.http_timeout = http_timeout
        self._sc = None   # the send connection
        self._pc = None   # the poll connection
        self.sid = None
        self.cursor = 0
        self.stats = {"sent": 0, "answered": 0, "retries": 0, "poll_errors": 0,
                      "redelivered": 0, "statuses": {}}
        self.last_error = None

    # -- HTTP ----------------------------------------------------------
    def _request(self, which, method, path, body=None, timeout=None):
        conn = self._sc if which == "send" else self._pc
        if conn is None:
            conn = connection(self.port, self.host, timeout=timeout or self.http_timeout)
            if which == "send":
                self._sc = conn
            else:
                self._pc = conn
        conn.timeout = timeout or self.http_timeout
        if conn.sock is not None:
            conn.sock.settimeout(conn.timeout)
        try:
            conn.request(method, path, body=body,
                         headers={"Content-Type": "text/plain"} if body is not None else {})
            r = conn.getresponse()
            data = r.read()
            if r.getheader("Connection", "").lower() == "close":
                conn.close()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        except BaseException:
            conn.close()
            raise

    def _count(self, status):
        s = self.stats["statuses"]
        s[status] = s.get(status, 0) + 1

    def close_connections(self):
        for c in (self._sc, self._pc):
            if c is not None:
                c.close()

    # -- the session ----------------------------------------------------
    def open(self, deadline=30):
        """POST /rtc/session, retried on transient failures; sets sid."""
        end = time.monotonic() + deadline
        for _ in range(MAX_ATTEMPTS):
            try:
                st, _, data = self._request("send", "POST", "/rtc/session", "")
                self._count(st)
                if st == 200:
                    self.sid = json.loads(data)["sid"]
                    self.cursor = 0
                    return self
                self.last_error = "session: %s %r" % (st, data[:200])
            except TRANSIENT as e:
                self.last_error = "session: %r" % e
            if time.monotonic() > end:
                break
            time.sleep(0.1)
        raise AssertionError("%s: no session within %d s (%s)" % (
            self.label, deadline, self.last_error))

    def q(self):
        return urllib.parse.quote(self.sid, safe="")

    def send(self, msgs, batch, deadline):
        """Sends msgs (a message or a list) with this batch id until it is
        answered {"ok": true}; deadline is a time.monotonic() value. Returns
        True when answered, False when the deadline passed first. Raises
        Gone on a 404, AssertionError on another 4xx (a bug in the test or
        the server)."""
        body = json.dumps(msgs)
        path = "/rtc/send?sid=%s&batch=%s" % (self.q(), urllib.parse.quote(batch, safe=""))
        self.stats["sent"] += 1
        first = True
        for _ in range(MAX_ATTEMPTS):
            if not first:
                self.stats["retries"] += 1
            first = False
            wait = 0.05
            try:
                st, h, data = self._request("send", "POST", path, body)
                self._count(st)
                if st == 200:
                    if json.loads(data) != {"ok": True}:
                        raise AssertionError("%s: send answered 200 %r" % (self.label, data[:200]))
                    self.stats["answered"] += 1
                    return True
                if st == 404:
                    raise Gone("%s: send: 404 %r" % (self.label, data[:200]))
                if st not in (429,) and st < 500:
                    raise AssertionError("%s: send: %s %r" % (self.label, st, data[:200]))
                self.last_error = "send: %s %r" % (st, data[:120])
                ra = h.get("retry-after", "")
                if ra.isdigit():
                    wait = min(int(ra), 2)
            except TRANSIENT as e:
                self.last_error = "send: %r" % e
            if time.monotonic() + wait > deadline:
                return False
            time.sleep(wait)
        return False

    def poll(self, timeout, http_timeout=None):
        """One poll after the cursor. Returns the new messages (seq > cursor,
        in order) and moves the cursor, or None when the poll failed (a
        transient error or 5xx: the caller polls again with the same
        cursor). Raises Gone on a 404. Messages with seq <= cursor (the
        server sending again what was acknowledged) are counted as
        redelivered and dropped."""
        path = "/rtc/poll?sid=%s&after=%d&timeout=%d" % (self.q(), self.cursor, timeout)
        try:
            st, _, data = self._request("poll", "GET", path,
                                        timeout=http_timeout or timeout + 30)
        except TRANSIENT as e:
            self.stats["poll_errors"] += 1
            self.last_error = "poll: %r" % e
            return None
        self._count(st)
        if st == 404:
            raise Gone("%s: poll: 404 %r" % (self.label, data[:200]))
        if st != 200:
            self.stats["poll_errors"] += 1
            self.last_error = "poll: %s %r" % (st, data[:120])
            if st < 500 and st != 429:
                raise AssertionError("%s: poll: %s %r" % (self.label, st, data[:200]))
            return None
        body = json.loads(data)
        fresh = []
        last = self.cursor
        for m in body["messages"]:
            if m["seq"] <= last:
                self.stats["redelivered"] += 1
                continue
            fresh.append(m)
            last = m["seq"]
        self.cursor = max(self.cursor, body["seq"])
        return fresh

    def poll_until(self, pred, deadline, timeout=1):
        """Polls until pred(message) is true for some new message; returns the
        new messages so far (AssertionError at the deadline, a monotonic time)."""
        got = []
        for _ in range(MAX_ATTEMPTS):
            ms = self.poll(timeout)
            if ms:
                got.extend(ms)
                if any(pred(m) for m in ms):
                    return got
            elif ms is None:
                time.sleep(0.05)
            if time.monotonic() > deadline:
                break
        raise AssertionError("%s: timed out; got %s (last error %s)" % (
            self.label, json.dumps(got)[:300], self.last_error))

    def close(self):
        """POST /rtc/close (best effort)."""
        try:
            self._request("send", "POST", "/rtc/close?sid=%s&after=%d" % (self.q(), self.cursor), "")
        except TRANSIENT:
            pass


def poll_some(peer, timeout):
    """One poll; its new messages, or [] after a pause when it failed (so a
    loop polling until a deadline never spins)."""
    ms = peer.poll(timeout)
    if ms is None:
        time.sleep(0.1)
        return []
    return ms


def setup_call(port, a_name, b_name, deadline=30, labels=None):
    """Two registered Peers in an answered call, mailboxes acknowledged.
    Returns (a, b)."""
    end = time.monotonic() + deadline
    a = Peer(port, a_name).open()
    b = Peer(port, b_name).open()
    for p, n in ((a, a_name), (b, b_name)):
        p.send({"id": "register", "name": n}, "reg-" + n, end)
        got = p.poll_until(lambda m: m["id"] == "registerResponse", end)
        r = [m for m in got if m["id"] == "registerResponse"][0]
        if r.get("response") != "accepted":
            raise AssertionError("%s: register: %s" % (n, json.dumps(r)))
    a.send({"id": "call", "to": b_name, "sdpOffer": "o"}, "call", end)
    b.poll_until(lambda m: m["id"] == "incomingCall", end)
    b.send({"id": "incomingCallResponse", "from": a_name, "callResponse": "accept",
            "sdpOffer": "a"}, "accept", end)
    got = a.poll_until(lambda m: m["id"] == "callResponse", end)
    r = [m for m in got if m["id"] == "callResponse"][0]
    if r.get("response") != "accepted":
        raise AssertionError("%s: call: %s" % (a_name, json.dumps(r)))
    b.poll_until(lambda m: m["id"] == "startCommunication", end)
    a.poll(0)  # acknowledge
    b.poll(0)
    return a, b


class Stream:
    """What one side received of the peer's candidates {"n": k}: checks
    each against the sequence so far."""

    def __init__(self):
        self.got = []          # every candidate value received, in order
        self.seen = set()
        self.duplicated = 0
        self.reordered = 0

    def add(self, n):
        if n in self.seen:
            self.duplicated += 1
        elif self.got and n < self.got[-1]:
            self.reordered += 1
        self.got.append(n)
        self.seen.add(n)
