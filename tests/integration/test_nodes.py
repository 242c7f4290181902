#!/usr/bin/env python3
"""Several nodes on one PostgreSQL (issue 15, part 2), against a real
PostgreSQL this script starts (tests/lib/postgres.py). Each node is its own
lighttpd + backend with its own state folder and wake file (no shared
file); they share one database.

Two nodes talked to on their own ports:
- a poll held on node 1 is answered when a send goes through node 2 (and
  the other way round): the cross-node wake-up (LISTEN/NOTIFY, fcgi/notify.c);
- the listening connection of node 1 killed (pg_terminate_backend, found
  by its application_name longcall-listen): a poll held on node 1 before
  is still woken by a send through node 2, the node listens again, and
  the next round is woken too;
- node 1 not listening for a while (its listening connection ended, new
  connections refused) while a send goes through node 2: once node 1
  listens again, the poll held on it meanwhile is answered and a poll of a
  mailbox node 1 had cached gets its message at once;
- an exchange through node 2 supersedes a poll of its session held on node
  1: that poll answers at once (the held-poll count is per machine, so on
  a shared store the exchange bumps poll_gen in its own transaction);
- the two nodes' maintenance running at the same moment (calls placed
  through both ring out together) ends each call once: one callResponse
  no_answer and one stopCommunication each.

Two nodes of two backend processes each: one listening connection per
node; polls held in either process woken from the other node; the
listening process killed (SIGKILL): another process of the node listens.

Two nodes behind nginx as a round-robin balancer with no stickiness
(upstream of both ports, proxy_buffering off), every request going where
nginx sends it:
- a call (register, call, accept, candidates both ways, stop), with both
  nodes seen serving in nginx's log;
- ring time-out and session expiry end the call once;
- a node killed with SIGKILL mid-call (its lighttpd and backends) and
  started again on its port: every message answered ok arrives once, in
  order, none lost or duplicated (counted; sends retried with their batch
  id as a client does).
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

import harness  # noqa: E402
import postgres  # noqa: E402
from lcclient import (Background, Client, Runner, call_pair, check, log_crashes,  # noqa: E402
                      short, strip_seq, wait_held)

LISTENERS_SQL = ("SELECT pid FROM pg_stat_activity WHERE application_name = 'longcall-listen'"
                 " AND datname = '%s' ORDER BY pid")


class Nodes:
    """Two Servers (lighttpd + backend each, own state) on one new database."""

    def __init__(self, pg, env=None, procs=1):
        self.pg = pg
        self.uri = pg.create_database()
        self.nodes = []
        for _ in range(2):
            s = harness.Server(procs=procs, env=env, store="pg", server="lighttpd")
            s.db_uri = self.uri  # shared; not dropped by the Server
            self.nodes.append(s)

    def __enter__(self):
        try:
            for s in self.nodes:
                s.start()
        except BaseException:
            self.cleanup()
            raise
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def cleanup(self):
        for s in self.nodes:
            s.cleanup()
        try:
            self.pg.drop_database(self.uri)
        except Exception:  # the script's PostgreSQL stops at exit anyway
            pass

    def query(self, sql):
        return self.pg.psql(self.uri, sql)

    def admin(self, sql):
        """sql on the server's postgres database (works while this one
        refuses connections)."""
        return self.pg.psql(self.pg.uri(), sql)

    def listeners(self):
        return [r[0] for r in self.admin(LISTENERS_SQL % self.uri.rsplit("/", 1)[1])]


def wait_listeners(nodes, n, deadline=20):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        got = nodes.listeners()
        if len(got) == n:
            return got
        time.sleep(0.1)
    raise AssertionError("expected %d listening connections, found %s" % (n, nodes.listeners()))


def via(client, srv):
    """client's next requests go to srv (a node or the balancer)."""
    client.srv = srv
    return client


def held_round(srv_poll, srv_send, a, b, tag, deadline=15):
    """b polls (held) through srv_poll; a sends through srv_send; b's poll
    must be answered with that message well before its time-out."""
    via(b, srv_poll)
    p = Background(b.poll, 20)
    wait_held(srv_poll, 1)
    via(a, srv_send)
    a.send({"id": "onIceCandidate", "candidate": {"tag": tag}})
    got = p.join(40)
    check(p.elapsed() < deadline, "%s: the held poll returned after %.1f s of its 20 s "
          "time-out" % (tag, p.elapsed()))
    check([strip_seq(m) for m in got] == [{"id": "iceCandidate", "candidate": {"tag": tag}}],
          "%s: expected the iceCandidate, got %s" % (tag, short(got)))


# ---- two nodes, their own ports -------------------------------------------------

def test_cross_node_wake(nodes):
    n1, n2 = nodes.nodes
    wait_listeners(nodes, 2)
    a, b = call_pair(n1, "cn-a", "cn-b")
    for rnd in range(3):
        held_round(n1, n2, a, b, "1<-2 round %d" % rnd)
        held_round(n2, n1, b, a, "2<-1 round %d" % rnd)


def test_listener_killed(nodes):
    n1, n2 = nodes.nodes
    a, b = call_pair(n1, "lk-a", "lk-b")
    for rnd in range(2):
        before = wait_listeners(nodes, 2)
        via(b, n1)
        p = Background(b.poll, 25)
        wait_held(n1, 1)
        own = set(n1.backend_pids())
        check(own, "node 1 has no backend process")
        # node 1's listener: the one whose client_port is a local port of a
        # node 1 backend's TCP socket
        port_of = {int(r[0]): int(r[1]) for r in nodes.query(
            "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = "
            "'longcall-listen' AND datname = current_database()")}
        local_ports = set()
        for bpid in own:
            local_ports |= tcp_local_ports(bpid)
        target = [pid for pid, port in port_of.items() if port in local_ports]
        check(len(target) == 1, "node 1's listener not found: listeners %s, node 1's ports %s"
              % (port_of, sorted(local_ports)))
        nodes.query("SELECT pg_terminate_backend(%d)" % target[0])
        via(a, n2)
        a.send({"id": "onIceCandidate", "candidate": {"after-kill": rnd}})
        got = p.join(40)
        check(p.elapsed() < 15, "round %d: the held poll returned after %.1f s of 25"
              % (rnd, p.elapsed()))
        check([strip_seq(m) for m in got] ==
              [{"id": "iceCandidate", "candidate": {"after-kill": rnd}}],
              "round %d: expected the iceCandidate, got %s" % (rnd, short(got)))
        after = wait_listeners(nodes, 2)
        check(target[0] not in after, "the killed listener %d is still there" % target[0])
        held_round(n1, n2, a, b, "after reconnect %d" % rnd)
    check("listening for other nodes' wake-ups again" in n1.log_text(),
          "node 1's log does not say it listens again")


def test_exchange_supersedes(nodes):
    """A poll of b held on node 1; b's exchange (a send with after=) through
    node 2 supersedes it: the held poll answers at once, ok and empty (the
    exchange queued nothing for b), and the exchange is held in its place
    until a's candidate comes."""
    n1, n2 = nodes.nodes
    a, b = call_pair(n1, "xs-a", "xs-b")
    for rnd in range(2):
        via(b, n1)
        p = Background(b.poll, 20)
        wait_held(n1, 1)
        path = "/rtc/send?sid=%s&batch=xs%d&after=%d&timeout=10" % (b.qsid(), rnd, b.cursor)
        x = Background(n2.request, "POST", path,
                       {"id": "onIceCandidate", "candidate": {"x": rnd}}, None, 30)
        got = p.join(30)
        check(p.elapsed() < 8, "round %d: the superseded poll answered after %.1f s of 20"
              % (rnd, p.elapsed()))
        check(got == [], "round %d: the superseded poll brought %s" % (rnd, short(got)))
        time.sleep(0.3)
        check(x.finished is None, "round %d: the exchange was not held" % rnd)
        via(a, n1)
        a.send({"id": "onIceCandidate", "candidate": {"to-b": rnd}})
        st, _, data = x.join(30)
        body = json.loads(data)
        check(st == 200 and body.get("ok") is True and [strip_seq(m) for m in body["messages"]]
              == [{"id": "iceCandidate", "candidate": {"to-b": rnd}}],
              "round %d: the exchange answered %s %s" % (rnd, st, short(data)))
        b.cursor = body["seq"]
        got = a.collect(1)
        check([strip_seq(m) for m in got] == [{"id": "iceCandidate", "candidate": {"x": rnd}}],
              "round %d: a got %s" % (rnd, short(got)))


def listener_of(nodes, srv):
    """The pid of srv's listening connection: the longcall-listen
    connection whose client port is a local port of one of srv's backends."""
    port_of = {int(r[0]): int(r[1]) for r in nodes.admin(
        "SELECT pid, client_port FROM pg_stat_activity WHERE application_name = "
        "'longcall-listen' AND datname = '%s'" % nodes.uri.rsplit("/", 1)[1])}
    local_ports = set()
    for bpid in srv.backend_pids():
        local_ports |= tcp_local_ports(bpid)
    target = [pid for pid, port in port_of.items() if port in local_ports]
    check(len(target) == 1, "the node's listener not found: listeners %s, its ports %s"
          % (port_of, sorted(local_ports)))
    return target[0]


def test_missed_while_not_listening(nodes):
    """Node 1 does not listen for a while (its listening connection ended,
    new connections to the database refused: ALLOW_CONNECTIONS false) and
    a's send through node 2 commits meanwhile, its notification lost for
    node 1. Once node 1 listens again, the poll b held on it all along is
    answered, and c's next poll on node 1 -- whose mailbox node 1 had in
    its cache, unchanged slot -- gets c's message at once, not at its
    time-out (every slot is posted after the LISTEN is back: R8)."""
    n1, n2 = nodes.nodes
    a, b = call_pair(n1, "mw-a", "mw-b")
    c, d = call_pair(n1, "mw-c", "mw-d")
    dbname = nodes.uri.rsplit("/", 1)[1]
    wait_listeners(nodes, 2)
    via(c, n1).poll(timeout=0)  # node 1's cache now holds c's mailbox
    via(b, n1)
    p = Background(b.poll, 25)
    wait_held(n1, 1)
    try:
        nodes.admin('ALTER DATABASE "%s" ALLOW_CONNECTIONS false' % dbname)
        nodes.admin("SELECT pg_terminate_backend(%d)" % listener_of(nodes, n1))
        wait_listeners(nodes, 1)
        time.sleep(0.5)  # node 1 tries again meanwhile, and is refused
        check(len(nodes.listeners()) == 1, "node 1 listens again while refused")
        via(a, n2).send({"id": "onIceCandidate", "candidate": {"missed": "b"}})
        via(d, n2).send({"id": "onIceCandidate", "candidate": {"missed": "c"}})
        time.sleep(0.5)
        check(p.finished is None, "b's held poll answered while node 1 did not listen "
              "(nothing could have woken it)")
    finally:
        nodes.admin('ALTER DATABASE "%s" ALLOW_CONNECTIONS true' % dbname)
    wait_listeners(nodes, 2)
    got = p.join(40)
    check([strip_seq(m) for m in got] == [{"id": "iceCandidate", "candidate": {"missed": "b"}}],
          "b's held poll brought %s" % short(got))
    check(p.elapsed() < 20, "b's held poll answered after %.1f s of 25" % p.elapsed())
    q = Background(c.poll, 10)
    got = q.join(30)
    check([strip_seq(m) for m in got] == [{"id": "iceCandidate", "candidate": {"missed": "c"}}],
          "c's poll on node 1 brought %s" % short(got))
    check(q.elapsed() < 5, "c's poll on node 1 answered after %.1f s of 10: the stale cache "
          "entry let it wait" % q.elapsed())


def test_one_listener_per_node(nodes):
    """Nodes of two backend processes each: one listening connection per
    node (its processes share the wake file: one post per notification
    wakes each held poll once), polls held in either process are woken
    from the other node, and when the listening process is killed
    (SIGKILL) another process of the node takes over."""
    n1, n2 = nodes.nodes
    wait_listeners(nodes, 2)
    for s in nodes.nodes:
        pids = s.backend_pids()
        check(len(pids) == 2, "a node runs %s backend processes, expected 2" % pids)
    a, b = call_pair(n1, "ol-a", "ol-b")
    for rnd in range(4):  # lighttpd spreads the polls over both processes
        held_round(n1, n2, a, b, "2 processes round %d" % rnd)
    listener = listener_of(nodes, n1)
    owner = [p for p in n1.backend_pids() if listener in connections_of(nodes, p)]
    check(len(owner) == 1, "no backend process of node 1 owns listener %d" % listener)
    os.kill(owner[0], signal.SIGKILL)
    wait_listeners(nodes, 2)  # another process of node 1 listens now
    end = time.monotonic() + 20
    while time.monotonic() < end and len(n1.backend_pids()) < 2:
        time.sleep(0.1)  # lighttpd starts a new one
    for rnd in range(4):
        held_round(n1, n2, a, b, "after the listener's process died, round %d" % rnd)
    check(len(nodes.listeners()) == 2, "listeners: %s" % nodes.listeners())


def connections_of(nodes, pid):
    """The pids of the PostgreSQL connections whose client port is one of
    pid's local TCP ports."""
    ports = tcp_local_ports(pid)
    return [int(r[0]) for r in nodes.admin(
        "SELECT pid, client_port FROM pg_stat_activity WHERE datname = '%s'"
        % nodes.uri.rsplit("/", 1)[1]) if r[1] and int(r[1]) in ports]


def tcp_local_ports(pid):
    """Local ports of pid's TCP sockets (IPv4 loopback), from /proc."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            t = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            inodes.add(t[8:-1])
    ports = set()
    for table in ("/proc/%d/net/tcp" % pid, "/proc/%d/net/tcp6" % pid):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[9] in inodes:
                        ports.add(int(parts[1].split(":")[1], 16))
        except OSError:
            pass
    return ports


def test_maintenance_once(nodes):
    """Calls placed through both nodes at once ring out at once: both nodes'
    ring time-out jobs come due at the same moment (each armed its timer
    for the calls placed through it, and each run ends every call due).
    Each call ends once: one callResponse no_answer to its caller, one
    stopCommunication to its callee, one ended row."""
    n1, n2 = nodes.nodes
    pairs = []
    for i in range(10):
        node = nodes.nodes[i % 2]
        a, b = Client(node, "mo-a%d" % i), Client(nodes.nodes[(i + 1) % 2], "mo-b%d" % i)
        a.register("mo-a%d" % i)
        b.register("mo-b%d" % i)
        pairs.append((a, b))
    for i, (a, b) in enumerate(pairs):
        a.send({"id": "call", "to": "mo-b%d" % i, "sdpOffer": "X"})
    time.sleep(4.5)  # the ring time-out is 2 s; both nodes ran their job meanwhile
    for i, (a, b) in enumerate(pairs):
        got_a = a.collect(1, deadline=10)
        got_b = b.collect(2, deadline=10)
        got_a += a.poll(timeout=0)
        got_b += b.poll(timeout=0)
        check([m["id"] for m in got_a] == ["callResponse"] and got_a[0].get("reason") ==
              "no_answer", "caller %d got %s" % (i, short(got_a)))
        check([m["id"] for m in got_b] == ["incomingCall", "stopCommunication"] and
              got_b[1].get("reason") == "no_answer", "callee %d got %s" % (i, short(got_b)))
    rows = nodes.query("SELECT count(*), count(DISTINCT id) FROM calls WHERE outcome IS NOT NULL")
    check(rows == [("10", "10")], "calls ended: %s, expected 10" % rows)
    skipped = sum(s.log_text().count("another node runs expiry") for s in nodes.nodes)
    print("# maintenance: %d runs found the other node ending calls at that moment" % skipped,
          file=sys.stderr)


# ---- behind nginx --------------------------------------------------------------

class Balancer:
    """nginx on a free loopback port, round-robin over the nodes' ports, no
    stickiness; its access log names the upstream of each request."""

    request = harness.Server.request

    def __init__(self, ports):
        self.ports = ports
        self.port = harness.free_port()
        self.dir = tempfile.mkdtemp(prefix="longcall-lb-")
        self.proc = None

    def start(self, timeout=15):
        import pwd
        pw = pwd.getpwnam(harness.RUN_USER)
        for sub in ("body", "proxy", "fastcgi", "scgi", "uwsgi"):
            os.mkdir(os.path.join(self.dir, sub))
            os.chown(os.path.join(self.dir, sub), pw.pw_uid, pw.pw_gid)
        conf = os.path.join(self.dir, "nginx.conf")
        d = self.dir
        upstreams = "".join("        server 127.0.0.1:%d max_fails=0;\n" % p for p in self.ports)
        with open(conf, "w") as f:
            f.write("""user %(user)s;
worker_processes 1;
pid %(d)s/nginx.pid;
error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http {
    log_format up '$upstream_addr $status $request_method';
    access_log %(d)s/access.log up;
    client_body_temp_path %(d)s/body;
    proxy_temp_path %(d)s/proxy;
    fastcgi_temp_path %(d)s/fastcgi;
    scgi_temp_path %(d)s/scgi;
    uwsgi_temp_path %(d)s/uwsgi;
    upstream nodes {
%(up)s    }
    server {
        listen 127.0.0.1:%(port)d;
        location / {
            proxy_pass http://nodes;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_buffering off;
            proxy_pass_header X-Accel-Buffering;
            proxy_read_timeout 300s;
            proxy_next_upstream error timeout;
            client_max_body_size 2m;
        }
    }
}
""" % {"user": harness.RUN_USER, "d": d, "up": upstreams, "port": self.port})
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-e", os.path.join(d, "error.log"),
                                      "-g", "daemon off;"], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(d, "stderr.log"), "ab"),
                                     start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            check(self.proc.poll() is None, "nginx exited: %s" % self.read("stderr.log"))
            try:
                st, _, _ = self.request("GET", "/rtc/status", timeout=2)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError("the balancer did not answer in time: " + self.read("error.log"))

    def read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def upstream_counts(self):
        counts = {}
        for line in self.read("access.log").splitlines():
            for up in line.split()[0].split(","):
                up = up.strip()
                counts[up] = counts.get(up, 0) + 1
        return counts

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def test_call_balanced(nodes, lb):
    a, b = Client(lb, "lb-a"), Client(lb, "lb-b")
    a.register("lb-a")
    b.register("lb-b")
    a.send({"id": "call", "to": "lb-b", "sdpOffer": "OFFER"})
    b.expect({"id": "incomingCall", "from": "lb-a", "offer": "OFFER"})
    b.send({"id": "incomingCallResponse", "from": "lb-a", "callResponse": "accept",
            "sdpOffer": "ANSWER"})
    a.expect({"id": "callResponse", "response": "accepted", "sdpAnswer": "ANSWER"})
    b.expect({"id": "startCommunication"})
    for i in range(10):
        a.send({"id": "onIceCandidate", "candidate": {"a": i}})
        b.send({"id": "onIceCandidate", "candidate": {"b": i}})
    b.expect(*[{"id": "iceCandidate", "candidate": {"a": i}} for i in range(10)])
    a.expect(*[{"id": "iceCandidate", "candidate": {"b": i}} for i in range(10)])
    # held polls answered whichever node holds them
    for rnd in range(4):
        p = Background(b.poll, 20)
        time.sleep(0.3)
        a.send({"id": "onIceCandidate", "candidate": {"held": rnd}})
        got = p.join(40)
        check(p.elapsed() < 15, "round %d: the held poll took %.1f s" % (rnd, p.elapsed()))
        check([strip_seq(m) for m in got] == [{"id": "iceCandidate", "candidate": {"held": rnd}}],
              "round %d: got %s" % (rnd, short(got)))
    a.send({"id": "stop"})
    b.expect({"id": "stopCommunication", "reason": "hung_up"})
    counts = lb.upstream_counts()
    for p in lb.ports:
        check(counts.get("127.0.0.1:%d" % p, 0) >= 5,
              "node on port %d served %s requests (nginx log: %s)" % (p, counts.get(
                  "127.0.0.1:%d" % p), counts))


def test_ring_and_expiry_balanced(nodes, lb):
    # ring time-out
    a, b = Client(lb, "re-a"), Client(lb, "re-b")
    a.register("re-a")
    b.register("re-b")
    a.send({"id": "call", "to": "re-b", "sdpOffer": "X"})
    got_b = b.drain(lambda ms: any(m["id"] == "stopCommunication" for m in ms), deadline=20)
    got_a = a.drain(lambda ms: any(m["id"] == "callResponse" for m in ms), deadline=20)
    time.sleep(2.5)
    got_a += a.poll(timeout=0)
    got_b += b.poll(timeout=0)
    check([m["id"] for m in got_b] == ["incomingCall", "stopCommunication"] and
          got_b[1].get("reason") == "no_answer", "callee got %s" % short(got_b))
    check([m["id"] for m in got_a] == ["callResponse"] and got_a[0].get("reason") ==
          "no_answer", "caller got %s" % short(got_a))
    # expiry: c and d in a call, d stops polling; c gets one stopCommunication expired
    c, d = call_pair(lb, "re-c", "re-d")
    got_c = c.drain(lambda ms: any(m["id"] == "stopCommunication" for m in ms), deadline=30,
                    poll_timeout=1)
    time.sleep(2.5)
    got_c += c.poll(timeout=0)
    stops = [m for m in got_c if m["id"] == "stopCommunication"]
    check(len(stops) == 1 and stops[0].get("reason") == "expired", "c got %s" % short(got_c))
    rows = nodes.query("SELECT count(*) FROM sessions WHERE name = 're-d' AND end_reason = "
                       "'expired'")
    check(rows == [("1",)], "re-d expired rows: %s" % rows)


class Stream:
    """a sends numbered messages to b through the balancer in batches with
    batch ids, retrying a batch (same id) until it is answered ok; b polls
    through the balancer. Both bounded in count and time."""

    def __init__(self, a, b, total):
        self.a, self.b, self.total = a, b, total
        self.acked = 0        # messages answered ok (in order)
        self.got = []         # numbers b received, in order
        self.errors = 0
        self.stop = time.monotonic() + 90

    def send_loop(self):
        n = 0
        polled = time.monotonic()
        while n < self.total and time.monotonic() < self.stop:
            if time.monotonic() - polled > 1:  # a keeps its session (expiry counts polls)
                polled = time.monotonic()
                try:
                    self.a.poll_raw(after=0, timeout=0, http_timeout=10)
                except OSError:
                    pass
            batch = [{"id": "onIceCandidate", "candidate": {"n": n + i}} for i in range(2)]
            bid = "s%d" % n
            while time.monotonic() < self.stop:
                try:
                    st, _, data = self.a.send_raw(batch, batch=bid, timeout=10)
                    if st == 200 and json.loads(data) == {"ok": True}:
                        break
                except (OSError, ValueError):
                    pass
                self.errors += 1
                time.sleep(0.1)
            else:
                return
            n += 2
            self.acked = n
            time.sleep(0.01)

    def recv_loop(self):
        while time.monotonic() < self.stop and len(self.got) < self.total:
            try:
                st, _, data = self.b.poll_raw(timeout=2, http_timeout=10)
            except OSError:
                self.errors += 1
                time.sleep(0.1)
                continue
            if st != 200:
                self.errors += 1
                time.sleep(0.1)
                continue
            body = json.loads(data)
            for m in body["messages"]:
                if m["seq"] > self.b.cursor and m.get("id") == "iceCandidate":
                    self.got.append(m["candidate"]["n"])
            self.b.cursor = max(self.b.cursor, body["seq"])


def kill_node(srv):
    """SIGKILL to the node's lighttpd and backends (its process group)."""
    pids = [srv.proc.pid] + srv.backend_pids()
    os.killpg(srv.proc.pid, signal.SIGKILL)
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    srv.proc.wait(timeout=10)


def restart_node(srv):
    port = srv.port
    srv.stop()
    keep = harness.free_port
    harness.free_port = lambda: port
    try:
        srv.start()
    finally:
        harness.free_port = keep


def test_node_killed(nodes, lb):
    a, b = call_pair(lb, "nk-a", "nk-b")
    total = 300
    s = Stream(a, b, total)
    ts = [threading.Thread(target=s.send_loop, daemon=True),
          threading.Thread(target=s.recv_loop, daemon=True)]
    for t in ts:
        t.start()
    end = time.monotonic() + 30
    while s.acked < 60 and time.monotonic() < end:
        time.sleep(0.05)
    check(s.acked >= 60, "only %d messages acknowledged before the kill" % s.acked)
    victim = nodes.nodes[0]
    kill_node(victim)
    at_kill = s.acked
    end = time.monotonic() + 20
    while s.acked < at_kill + 40 and time.monotonic() < end:
        time.sleep(0.05)
    check(s.acked >= at_kill + 40, "sends stopped with one node down: %d acknowledged" % s.acked)
    restart_node(victim)
    up = "127.0.0.1:%d" % victim.port
    served_before = lb.upstream_counts().get(up, 0)
    for t in ts:
        t.join(100)
    check(not any(t.is_alive() for t in ts), "stream still running")
    check(s.acked == total, "%d of %d messages acknowledged" % (s.acked, total))
    check(s.got == list(range(total)),
          "b received %d messages, lost %s, duplicated %s, in order: %s" % (
              len(s.got), sorted(set(range(total)) - set(s.got))[:10],
              sorted({x for x in s.got if s.got.count(x) > 1})[:10], s.got == sorted(s.got)))
    rows = nodes.query("SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id"
                       " WHERE s.name = 'nk-b' AND m.type = 'iceCandidate'")
    check(rows == [(str(total),)], "the history holds %s of b's iceCandidates, expected %d"
          % (rows, total))
    check(s.acked - at_kill >= 40 and lb.upstream_counts().get(up, 0) > served_before,
          "the restarted node served nothing of the rest of the stream (nginx log: %s)"
          % lb.upstream_counts())
    print("# node killed: %d messages (%d acknowledged before the kill), %d failed requests "
          "retried" % (total, at_kill, s.errors), file=sys.stderr)


def main():
    t = Runner("nodes")
    why = postgres.available() or (None if shutil.which("nginx") else "nginx is not installed")
    direct = [("a poll held on node 1 is woken by a send through node 2, both ways",
               test_cross_node_wake),
              ("node 1's listening connection killed: the held poll is still woken, "
               "it listens again", test_listener_killed),
              ("a send while node 1 does not listen: its held poll and its cached mailbox "
               "catch up once it listens again", test_missed_while_not_listening),
              ("an exchange through node 2 supersedes a poll held on node 1 (answered at once)",
               test_exchange_supersedes),
              ("both nodes' ring time-out at once ends the call once", test_maintenance_once)]
    balanced = [("a call through the balancer (call, accept, candidates, held polls, stop)",
                 test_call_balanced),
                ("ring time-out and expiry through the balancer end the call once",
                 test_ring_and_expiry_balanced),
                ("a node killed with SIGKILL mid-call and restarted: nothing acknowledged "
                 "lost or duplicated", test_node_killed)]
    n = len(direct) + 1 + 1 + len(balanced) + 1
    t.plan(n)
    if why:
        for _ in range(n):
            t.skip("several nodes", why)
        t.done()
    pg = postgres.instance()
    env = {"LONGCALL_RING_TIMEOUT": "2", "LONGCALL_LOG_LEVEL": "debug"}
    try:
        with Nodes(pg, env=env) as nodes:
            for name, fn in direct:
                t.run(name, fn, nodes)
            bad = [ln for s in nodes.nodes for ln in log_crashes(s)]
            t.report("no backend crash in the nodes' logs",
                     None if not bad else "log shows: " + " | ".join(bad[:5]))
    except Exception as e:  # the nodes did not start
        while t.total < len(direct) + 1:
            t.report("two nodes", "did not start: %s" % e)
    try:
        with Nodes(pg, procs=2) as nodes:
            t.run("nodes of two processes: one listener each, taken over when its process dies",
                  test_one_listener_per_node, nodes)
    except Exception as e:
        t.report("nodes of two processes", "did not start: %s" % e)
    env = {"LONGCALL_RING_TIMEOUT": "3", "LONGCALL_POLL_TIMEOUT": "2", "LONGCALL_POLL_MAX": "2",
           "LONGCALL_SESSION_EXPIRY": "5"}
    lb = None
    try:
        with Nodes(pg, env=env) as nodes:
            lb = Balancer([s.port for s in nodes.nodes]).start()
            for name, fn in balanced:
                t.run(name, fn, nodes, lb)
            bad = [ln for s in nodes.nodes for ln in log_crashes(s)]
            t.report("no backend crash in the nodes' logs (balancer)",
                     None if not bad else "log shows: " + " | ".join(bad[:5]))
    except Exception as e:
        while t.total < n:
            t.report("two nodes behind nginx", "did not start: %s" % e)
    finally:
        if lb:
            lb.stop()
    t.done()


if __name__ == "__main__":
    main()
