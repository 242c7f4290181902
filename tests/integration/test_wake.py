#!/usr/bin/env python3
"""No lost wake-up: pairs ping-pong through held polls across backend
processes, and every held poll must be answered with the message it waits
for -- never by its timeout. A wake-up that slipped between a poll's read of
the mailbox and its parking shows up as a poll answered empty."""
import json
import os
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Checks, Server, connection  # noqa: E402

check = Checks()
# messages each way per pair (bounded); WAKE_ROUNDS lowers it (tests/run-tests
# does behind CGI, where every request is a process: 400 took 3 minutes)
ROUNDS = int(os.environ.get("WAKE_ROUNDS", "400"))
PAIRS = 4
POLL_TIMEOUT = 20


class Peer:
    def __init__(self, port, name):
        self.c = connection(port, timeout=POLL_TIMEOUT + 30)
        self.p = connection(port, timeout=POLL_TIMEOUT + 30)
        self.sid = self.req(self.c, "POST", "/rtc/session", "")["sid"]
        self.cursor = 0
        self.send({"id": "register", "name": name})
        self.wait_for("registerResponse")

    @staticmethod
    def req(conn, method, path, body=None):
        conn.request(method, path, body=body,
                     headers={"Content-Type": "text/plain"} if body is not None else {})
        r = conn.getresponse()
        data = r.read()
        if r.status != 200:
            raise AssertionError(f"{method} {path.split('?')[0]}: {r.status} {data[:200]!r}")
        return json.loads(data)

    def send(self, msg):
        # A fresh connection: lighttpd closes keep-alive connections idle for
        # 5 s, and a send may follow a long wait.
        self.c.close()
        self.req(self.c, "POST", f"/rtc/send?sid={self.sid}", json.dumps(msg))

    def poll(self):
        a = self.req(self.p, "GET", f"/rtc/poll?sid={self.sid}&after={self.cursor}"
                     f"&timeout={POLL_TIMEOUT}")
        self.cursor = a["seq"]
        return a["messages"]

    def wait_for(self, mid):
        for _ in range(5):
            ms = self.poll()
            if any(m["id"] == mid for m in ms):
                return ms
        raise AssertionError("no " + mid)


def pair(port, i, result):
    try:
        a, b = Peer(port, f"wa{i}"), Peer(port, f"wb{i}")
        a.send({"id": "call", "to": f"wb{i}", "sdpOffer": "o"})
        b.wait_for("incomingCall")
        b.send({"id": "incomingCallResponse", "from": f"wa{i}", "callResponse": "accept",
                "sdpOffer": "a"})
        a.wait_for("callResponse")
        b.wait_for("startCommunication")
        # Each side polls in its own thread and answers every candidate n
        # with n + 1: a side's next poll is on its way while the peer is
        # already sending, which is when a wake-up could slip through.
        stats = {}

        def side(me, first, key):
            empty, got = 0, []
            if first:
                me.send({"id": "onIceCandidate", "candidate": 0})
            while len(got) < ROUNDS and empty <= 3:
                ms = me.poll()
                if not ms:
                    empty += 1
                    continue
                for m in ms:
                    if m["id"] == "iceCandidate":
                        got.append(m["candidate"])
                        if m["candidate"] + 1 < 2 * ROUNDS:
                            me.send({"id": "onIceCandidate", "candidate": m["candidate"] + 1})
            stats[key] = (empty, got)

        ta = threading.Thread(target=side, args=(a, False, "a"))
        tb = threading.Thread(target=side, args=(b, True, "b"))
        tb.start()
        ta.start()
        ta.join(300)
        tb.join(300)
        empty = stats["a"][0] + stats["b"][0]
        got = (stats["b"][1], stats["a"][1])
        result[i] = (empty, got)
    except Exception as e:  # reported by the main thread
        result[i] = e


def main():
    with Server(procs=2, env={"LONGCALL_POLL_MAX": str(POLL_TIMEOUT),
                              "LONGCALL_SESSION_EXPIRY": "60"}) as srv:
        result = {}
        threads = [threading.Thread(target=pair, args=(srv.port, i, result))
                   for i in range(PAIRS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(600)
        errors = [r for r in result.values() if isinstance(r, Exception)]
        check("ping-pong pairs ran to the end", len(result) == PAIRS and not errors,
              repr(errors[:2]))
        ok = [r for r in result.values() if not isinstance(r, Exception)]
        empties = sum(e for e, _ in ok)
        check(f"every held poll was woken by its message ({PAIRS} pairs x {2 * ROUNDS}, "
              "2 processes)", empties == 0, f"{empties} polls answered by their timeout")
        # b receives the odd candidates, a the even ones, each in order.
        check("every message arrived once, in order",
              all(gb == list(range(1, 2 * ROUNDS, 2)) and ga == list(range(0, 2 * ROUNDS, 2))
                  for _, (gb, ga) in ok), "order or count differs")


try:
    main()
except Exception as e:
    check("wake test ran to the end", False, repr(e))
check.exit()
