#!/usr/bin/env python3
"""Stopping and restarting the backend (issue 16, "Restarts and upgrades"):
SIGTERM answers every held poll at once (200, empty: the client polls again
without an error), takes no new request, finishes those in flight and exits
by itself; a client sees no error and loses nothing across the restart.

  - systemd: nginx in front, the backend started as longcall.socket +
    longcall.service start it (the socket on fd 0, kept across the restart
    as systemd keeps it): 500 held polls and a call relaying a stream of
    candidates while `systemctl restart longcall` happens (SIGTERM, a new
    process on the same socket). Every held poll answered 200 and empty;
    the old process exited 0 by itself; the stream arrived whole, in
    order, once, with no error answer on either side.
  - lighttpd: SIGTERM to the backend lighttpd spawned (lighttpd starts a
    new one): the held polls answered 200 and empty, the log says so.

Starts its own servers (the systemd-style backend behind nginx, then
lighttpd), whatever LONGCALL_TEST_SERVER says."""
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import BIN, ROOT, Server, open_socket  # noqa: E402
from lcclient import Background, Client, Runner, call_pair, check, short, status, wait_held  # noqa: E402

HELD = int(os.environ.get("STOP_HELD", "500"))
STREAM = 300  # candidates alice sends bob across the restart


def unit_file(folder):
    """conf/longcall.service with ExecStart naming the backend under test."""
    with open(os.path.join(ROOT, "conf", "longcall.service")) as f:
        text = f.read()
    text = text.replace("@LIBDIR@/longcall", BIN).replace("@DOCDIR@", ROOT)
    path = os.path.join(folder, "longcall.service")
    with open(path, "w") as f:
        f.write(text)
    return path


def cand(i):
    return {"candidate": "candidate:%d 1 udp 2122260223 192.0.2.1 %d typ host" % (i, 5000 + i),
            "sdpMid": "0", "sdpMLineIndex": 0}


class HeldPolls:
    """n sessions, each with a poll held on a raw connection of its own."""

    def __init__(self, srv, n):
        self.srv = srv
        self.socks = []
        clients = [Client(srv, "held%d" % i) for i in range(n)]
        for c in clients:
            s = open_socket(srv.port, timeout=30)
            path = "/rtc/poll?sid=%s&after=0&timeout=25" % urllib.parse.quote(c.sid, safe="")
            s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n" %
                       path).encode())
            self.socks.append(s)

    def answers(self, deadline=20):
        """(status, body) of each held poll, read until each connection
        closes (bounded by deadline over all of them)."""
        end = time.monotonic() + deadline
        out = []
        for s in self.socks:
            data = b""
            try:
                while time.monotonic() < end:
                    s.settimeout(max(0.1, end - time.monotonic()))
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except OSError as e:
                out.append((None, "%s after %r" % (e, data[:80])))
                continue
            finally:
                s.close()
            m = re.match(rb"HTTP/1\.[01] (\d+)", data)
            body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else b""
            out.append((int(m.group(1)) if m else None, body))
        self.socks = []
        return out

    def close(self):
        for s in self.socks:
            s.close()
        self.socks = []


def check_held_answers(answers, n):
    bad = [(st, body) for st, body in answers
           if st != 200 or not re.search(rb'"messages":\s*\[\]', body or b"")]
    check(len(answers) == n and not bad, "%d of %d held polls not answered 200 and empty: %s" % (
        len(bad) + n - len(answers), n, short(bad[:3])))


class Stream:
    """alice sends bob STREAM candidates, one a request with a batch id of
    its own (retried with the same id after any error answer); bob polls
    them. Counts the error answers each side saw."""

    def __init__(self, alice, bob):
        self.alice, self.bob = alice, bob
        self.errors = []
        self.sent = 0
        self.got = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._send, daemon=True),
                        threading.Thread(target=self._recv, daemon=True)]
        for t in self.threads:
            t.start()

    def _send(self):
        end = time.monotonic() + 60
        for i in range(STREAM):
            while time.monotonic() < end:
                try:
                    st, _, data = self.alice.send_raw(
                        {"id": "onIceCandidate", "candidate": cand(i)}, batch="s%d" % i)
                except OSError as e:
                    st, data = None, str(e).encode()
                if st == 200:
                    break
                self.errors.append("alice send %d: %s %s" % (i, st, short(data, 100)))
                time.sleep(0.05)
            self.sent = i + 1
            time.sleep(0.01)

    def _recv(self):
        end = time.monotonic() + 70
        while len(self.got) < STREAM and time.monotonic() < end:
            try:
                st, _, data = self.bob.poll_raw(self.bob.cursor, 2)
            except OSError as e:
                st, data = None, str(e).encode()
            if st != 200:
                self.errors.append("bob poll: %s %s" % (st, short(data, 100)))
                time.sleep(0.05)
                continue
            import json
            body = json.loads(data)
            for m in body["messages"]:
                if m["seq"] > self.bob.cursor and m.get("id") == "iceCandidate":
                    self.got.append(m["candidate"]["candidate"])
            self.bob.cursor = max(self.bob.cursor, body["seq"])
        self.done.set()

    def join(self):
        for t in self.threads:
            t.join(90)

    def check_whole(self):
        want = [cand(i)["candidate"] for i in range(STREAM)]
        check(self.got == want, "bob got %d of %d candidates (in order, once each: %s); first "
              "difference at %s" % (len(self.got), STREAM, self.got == want[:len(self.got)],
                                    next((i for i, (a, b) in enumerate(zip(self.got, want))
                                          if a != b), len(self.got))))
        check(not self.errors, "%d error answers: %s" % (len(self.errors),
                                                          short(self.errors[:4])))


def test_systemd_restart(t, folder):
    srv = Server(server="nginx", unit=unit_file(folder),
                 env={"LONGCALL_POLL_MAX": "30"})
    held = None
    before = t.total
    try:
        srv.start()
        alice, bob = call_pair(srv)
        held = HeldPolls(srv, HELD)
        wait_held(srv, HELD, deadline=30)
        stream = Stream(alice, bob)
        # the restart comes when a third of the stream is through
        end = time.monotonic() + 30
        while stream.sent < STREAM // 3 and time.monotonic() < end:
            time.sleep(0.01)
        old_pid = srv.spawner.pid
        code, took = srv.restart_unit()
        answers = held.answers()
        print("# the old backend exited %s after %.2f s (its limit: 2 s)" % (code, took),
              file=sys.stderr)
        stream.join()

        def held_answered():
            check_held_answers(answers, HELD)

        def exited():
            check(code == 0, "the stopped backend (pid %d) exited %s, not 0 by itself" % (
                old_pid, "only when killed" if code is None else code))
            log = srv.log_text()
            said = [int(x) for x in re.findall(r"stopping: (\d+) held polls answered", log)]
            # bob's poll may be held too at that moment
            check(said and said[0] >= HELD, "no 'stopping: N held polls answered' with N >= %d in "
                  "the log: %s" % (HELD, short(log[-600:], 600)))

        def stream_whole():
            stream.check_whole()

        def serving():
            st = status(srv)
            check(st.get("pid") and st["pid"] != old_pid, "status after the restart: %s" % st)

        t.run("systemd restart: %d held polls answered 200 and empty at once" % HELD,
              held_answered)
        t.run("systemd restart: the old backend took no new request and exited 0 by itself",
              exited)
        t.run("systemd restart: a call's %d candidates across it arrive whole, in order, once, "
              "with no error answer" % STREAM, stream_whole)
        t.run("systemd restart: the new backend serves on the same socket", serving)
    except Exception as e:
        for name in ("held polls", "exit", "stream", "serving")[t.total - before:]:
            t.report("systemd restart: %s" % name, "did not run: %s" % e)
    finally:
        if held:
            held.close()
        srv.cleanup()


def test_lighttpd_sigterm(t):
    n = 50
    srv = Server(server="lighttpd", procs=1)
    held = None
    before = t.total
    try:
        srv.start()
        held = HeldPolls(srv, n)
        # and a send waiting for a prev= batch that never comes (wait.c, R9)
        waiter = Client(srv, "waiter")
        path = "/rtc/send?sid=%s&batch=w2&prev=w1" % urllib.parse.quote(waiter.sid, safe="")
        waiting = Background(srv.request, "POST", path, '{"id": "ping"}', None, 30)
        wait_held(srv, n + 1, deadline=30)
        pids = srv.backend_pids()
        for p in pids:
            os.kill(p, signal.SIGTERM)
        answers = held.answers()

        def answered():
            check_held_answers(answers, n)
            said = re.findall(r"stopping: (\d+) held polls answered", srv.log_text())
            check(said == [str(n + 1)], "the log says %s held polls were answered, not %d (and "
                  "the waiting send)" % (said, n))

        def send_refused():
            st, _, data = waiting.join(30)
            check(st == 409 and b"out_of_order" in data,
                  "the send waiting for its prev= got %s %s, not 409 out_of_order (it stored "
                  "nothing: the client sends it again)" % (st, short(data, 200)))

        def respawned():
            end = time.monotonic() + 20
            while time.monotonic() < end:
                try:
                    st = status(srv)
                    if st.get("pid") and st["pid"] not in pids:
                        break
                except Exception:
                    pass
                time.sleep(0.1)
            a, b = call_pair(srv, "carol", "dave")
            a.send({"id": "onIceCandidate", "candidate": cand(1)})
            got = b.collect(1)
            check(got and got[0]["id"] == "iceCandidate", "after the restart: %s" % short(got))

        t.run("lighttpd: SIGTERM answers the backend's %d held polls 200 and empty" % n, answered)
        t.run("lighttpd: a send waiting for its prev= is answered 409 out_of_order", send_refused)
        t.run("lighttpd: the backend lighttpd starts again serves calls", respawned)
    except Exception as e:
        for name in ("held polls", "waiting send", "respawn")[t.total - before:]:
            t.report("lighttpd: %s" % name, "did not run: %s" % e)
    finally:
        if held:
            held.close()
        srv.cleanup()


def main():
    t = Runner("test_stop")
    t.plan(7)
    folder = tempfile.mkdtemp(prefix="longcall-stop-")
    try:
        test_systemd_restart(t, folder)
        test_lighttpd_sigterm(t)
    finally:
        import shutil
        shutil.rmtree(folder, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
