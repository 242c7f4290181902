#!/usr/bin/env python3
"""TURN credentials (issue 13): the real server with a TURN secret and URIs.

- The session answer's iceServers holds LONGCALL_ICE_SERVERS' entries and one
  TURN entry whose credential is checked here independently (Python's hmac:
  base64(HMAC-SHA1(secret, username)), what coturn checks under
  use-auth-secret), whose username is "<expiry>:<opaque id>" with the expiry
  within LONGCALL_TURN_TTL of the clock, and iceTransportPolicy is the
  configured one.
- {"id":"iceServers"} answers a fresh credential for the same opaque id;
  another session has another id.
- The secret and the session tokens are in no log line and no database row
  (the database dumped with sqlite3 and grepped, and its files' bytes).
- Without a secret: iceServers as configured, policy "all".
- A backend whose secret file is missing does not start, and says why.
- coturn (Debian's, in TEST_PKGS) started from conf/turnserver.conf (ports,
  certificate and log moved to the test's; loopback only) reads every line
  of it, accepts a TURN allocation (a STUN client written here, RFC 5766 /
  8489 long-term credentials) with a credential the backend minted, refuses
  one minted with another secret, refuses to relay to a denied address
  (127.0.0.1: the example's denied-peer-ip), and logs the username.
Runs behind every front end (LONGCALL_TEST_SERVER) and under the sanitized
backend (LONGCALL_TEST_BIN)."""
import base64
import hashlib
import hmac
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from coturn import coturn_conf, coturn_logs  # noqa: E402
from harness import BIN, free_port  # noqa: E402
from lcclient import Client, Runner, Skip, check, short  # noqa: E402

SECRET = "turn-test-secret-7f3a9c"
URIS = ["turn:127.0.0.1:3478?transport=udp", "turn:127.0.0.1:3478?transport=tcp",
        "turns:turn.example.org:443?transport=tcp"]
STUN = {"urls": "stun:stun.example.org:3478"}
TTL = 600
SLACK = 120  # seconds of clock difference allowed between the test and the backend

# The secret file: readable by the user the front end runs the backend as.
SECRET_DIR = tempfile.mkdtemp(prefix="longcall-turn-")
os.chmod(SECRET_DIR, 0o755)
SECRET_FILE = os.path.join(SECRET_DIR, "turn-secret")
with open(SECRET_FILE, "w") as f:
    f.write(SECRET + "\n")
os.chmod(SECRET_FILE, 0o644)

ENV_TURN = {"LONGCALL_TURN_SECRET_FILE": SECRET_FILE, "LONGCALL_TURN_URIS": " ".join(URIS),
            "LONGCALL_TURN_TTL": str(TTL), "LONGCALL_ICE_TRANSPORT_POLICY": "relay",
            "LONGCALL_ICE_SERVERS": '[{"urls":"stun:stun.example.org:3478"}]'}


def turn_entry(servers, what):
    """The TURN entry of an iceServers list, checked: the STUN entry first,
    then {urls, username, credential} with the credential recomputed here.
    Returns (expiry, opaque id)."""
    check(isinstance(servers, list) and len(servers) == 2 and servers[0] == STUN,
          "%s: expected the STUN entry and one TURN entry, got %s" % (what, short(servers)))
    e = servers[1]
    check(set(e) == {"urls", "username", "credential"}, "%s: TURN entry %s" % (what, short(e)))
    check(e["urls"] == URIS, "%s: urls %s, expected %s" % (what, e["urls"], URIS))
    user = e["username"]
    expiry, sep, opaque = user.partition(":")
    check(sep and expiry.isdigit() and len(opaque) == 16 and
          all(c.isalnum() or c in "-_" for c in opaque),
          "%s: username %r is not <expiry>:<16 base64url>" % (what, user))
    want = base64.b64encode(hmac.new(SECRET.encode(), user.encode(), hashlib.sha1).digest())
    check(e["credential"] == want.decode(),
          "%s: credential %r, HMAC-SHA1 of the username gives %r" % (what, e["credential"],
                                                                      want.decode()))
    now = time.time()
    check(now + TTL - SLACK <= int(expiry) <= now + TTL + SLACK,
          "%s: expiry %s is not now + LONGCALL_TURN_TTL (%d) (now %d)" % (what, expiry, TTL, now))
    return int(expiry), opaque


def ice_answer(c):
    c.send({"id": "iceServers"})
    got = c.collect(1, deadline=10)
    check(len(got) == 1 and got[0].get("id") == "iceServers" and set(got[0]) == {
        "seq", "id", "iceServers"}, "%s: expected one iceServers message, got %s" % (
        c.label, short(got)))
    return got[0]["iceServers"]


def test_session_answer(srv):
    c = Client(srv, "alice")
    check(c.session.get("iceTransportPolicy") == "relay",
          "iceTransportPolicy %r, expected relay" % c.session.get("iceTransportPolicy"))
    turn_entry(c.session.get("iceServers"), "session answer")
    srv.sids = [c.sid]


def test_ice_servers_message(srv):
    a = Client(srv, "alice")
    b = Client(srv, "bob")
    _, id_a = turn_entry(a.session["iceServers"], "alice's session answer")
    _, id_b = turn_entry(b.session["iceServers"], "bob's session answer")
    check(id_a != id_b, "two sessions have the same opaque id %s" % id_a)
    check(id_a not in a.sid and id_b not in b.sid, "the opaque id is part of the token")
    time.sleep(1.1)  # a new second: a fresh credential has a later expiry
    exp2, id_a2 = turn_entry(ice_answer(a), "alice's iceServers message")
    check(id_a2 == id_a, "the opaque id changed within a session: %s then %s" % (id_a, id_a2))
    exp1, _ = turn_entry(a.session["iceServers"], "alice's session answer")
    check(exp2 > exp1, "the iceServers message did not mint a fresh credential "
                       "(expiry %d, the session answer's %d)" % (exp2, exp1))
    a.register("alice")
    turn_entry(ice_answer(a), "iceServers after register")
    a.poll()  # acknowledges: the transient answers leave the database
    srv.sids = getattr(srv, "sids", []) + [a.sid, b.sid]


def test_nothing_kept(srv):
    """The secret and the tokens: in no log line, no database row, no byte
    of the database files."""
    sids = getattr(srv, "sids", [])
    check(sids, "no session tokens were recorded by the tests before")
    secrets = [SECRET] + sids
    log = srv.log_text()
    for s in secrets:
        check(s not in log, "the log holds %s" % ("the TURN secret" if s == SECRET else "a token"))
    db = os.path.join(srv.state, "longcall.db")
    dump = subprocess.run(["sqlite3", db, ".dump"], capture_output=True, text=True, timeout=30)
    check(dump.returncode == 0 and "CREATE TABLE sessions" in dump.stdout,
          "sqlite3 .dump failed: %s" % dump.stderr[:200])
    for s in secrets:
        check(s not in dump.stdout, "the database dump holds %s" % (
            "the TURN secret" if s == SECRET else "a token"))
    for name in ("longcall.db", "longcall.db-wal"):
        path = os.path.join(srv.state, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data = f.read()
            for s in secrets:
                check(s.encode() not in data, "%s holds %s" % (
                    name, "the TURN secret" if s == SECRET else "a token"))


def test_no_secret(srv):
    c = Client(srv, "carol")
    check(c.session.get("iceServers") == [STUN] and c.session.get("iceTransportPolicy") == "all",
          "without a secret: %s" % short(c.session))
    got = ice_answer(c)
    check(got == [STUN], "iceServers message without a secret: %s" % short(got))


def test_inline_secret(srv):
    c = Client(srv, "dave")
    check(c.session.get("iceTransportPolicy") == "all", "policy %r" % c.session.get(
        "iceTransportPolicy"))
    turn_entry(c.session.get("iceServers"), "LONGCALL_TURN_SECRET's session answer")


def run_backend(env_extra):
    env = {"PATH": "/usr/bin:/bin", "LONGCALL_DB": os.path.join(SECRET_DIR, "x.db")}
    env.update(env_extra)
    return subprocess.run([BIN], env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=20)


def test_start_refused():
    missing = os.path.join(SECRET_DIR, "no-such-file")
    r = run_backend({"LONGCALL_TURN_SECRET_FILE": missing, "LONGCALL_TURN_URIS": URIS[0]})
    check(r.returncode != 0, "the backend ran with a missing secret file")
    check("LONGCALL_TURN_SECRET_FILE" in r.stderr and "No such file" in r.stderr,
          "the start-up error does not name the variable and the reason: %r" % r.stderr[-300:])
    r = run_backend({"LONGCALL_TURN_SECRET": SECRET, "LONGCALL_TURN_URIS": "http://x"})
    check(r.returncode != 0 and "LONGCALL_TURN_URIS" in r.stderr and SECRET not in r.stderr,
          "a bad URI: exit %d, %r" % (r.returncode, r.stderr[-300:]))


# ---- coturn from conf/turnserver.conf ----------------------------------------

MAGIC = 0x2112A442


def stun_attr(kind, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", kind, len(value)) + value + b"\0" * pad


def stun_message(method, attrs, key=None):
    """A STUN request (class request) with attrs; with key, a
    MESSAGE-INTEGRITY over it (RFC 8489 14.5)."""
    txid = os.urandom(12)
    body = b"".join(attrs)
    if key is not None:
        head = struct.pack("!HHI", method, len(body) + 24, MAGIC) + txid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += stun_attr(0x0008, mac)
    return struct.pack("!HHI", method, len(body), MAGIC) + txid + body, txid


def stun_parse(data):
    """(message type, {attribute type: value})."""
    kind, length, _ = struct.unpack("!HHI", data[:8])
    attrs, i = {}, 20
    while i + 4 <= 20 + length:
        t, n = struct.unpack("!HH", data[i:i + 4])
        attrs.setdefault(t, data[i + 4:i + 4 + n])
        i += 4 + n + (4 - n % 4) % 4
    return kind, attrs


def stun_error(attrs):
    v = attrs.get(0x0009)
    return v[2] * 100 + v[3] if v else None


def stun_ask(sock, port, msg, txid):
    sock.sendto(msg, ("127.0.0.1", port))
    end = time.monotonic() + 5
    while time.monotonic() < end:
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            data, _ = sock.recvfrom(4096)
        except socket.timeout:
            break
        if data[8:20] == txid:
            return stun_parse(data)
    raise AssertionError("coturn did not answer a STUN request within 5 s")


REQUESTED_UDP = stun_attr(0x0019, bytes([17, 0, 0, 0]))


def turn_allocate(sock, port, user, password):
    """An Allocate with long-term credentials: the 401 gives realm and nonce,
    the second request carries the MESSAGE-INTEGRITY. Returns (type, attrs)
    of the answer to the second."""
    msg, txid = stun_message(0x0003, [REQUESTED_UDP])
    kind, attrs = stun_ask(sock, port, msg, txid)
    check(kind == 0x0113 and stun_error(attrs) == 401 and 0x0014 in attrs and 0x0015 in attrs,
          "coturn's first answer to an Allocate is not 401 with realm and nonce: %#x %s" % (
              kind, stun_error(attrs)))
    realm, nonce = attrs[0x0014], attrs[0x0015]
    key = hashlib.md5(user.encode() + b":" + realm + b":" + password.encode()).digest()
    msg, txid = stun_message(0x0003, [REQUESTED_UDP, stun_attr(0x0006, user.encode()),
                                      stun_attr(0x0014, realm), stun_attr(0x0015, nonce)], key)
    kind, attrs = stun_ask(sock, port, msg, txid)
    return kind, attrs, (realm, nonce, key)


def test_coturn(srv):
    if not shutil.which("turnserver"):
        raise Skip("coturn is not installed (make test-deps installs it)")
    tmp = tempfile.mkdtemp(prefix="longcall-coturn-")
    proc = None
    try:
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                            "-keyout", os.path.join(tmp, "key.pem"), "-out",
                            os.path.join(tmp, "cert.pem"), "-days", "1", "-subj",
                            "/CN=turn.example.org"], capture_output=True, timeout=60)
        check(r.returncode == 0, "openssl req failed: %r" % r.stderr[-200:])
        port, tls_port = free_port(), free_port()
        conf = coturn_conf(tmp, SECRET, port, tls_port)
        proc = subprocess.Popen(["turnserver", "-c", conf], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, cwd=tmp)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            end = time.monotonic() + 15
            up = False
            while not up and time.monotonic() < end:  # a Binding request until it answers
                msg, txid = stun_message(0x0001, [])
                sock.sendto(msg, ("127.0.0.1", port))
                sock.settimeout(0.3)
                try:
                    up = sock.recvfrom(4096)[0][8:20] == txid
                except (socket.timeout, ConnectionRefusedError):
                    check(proc.poll() is None, "turnserver exited: %s" % coturn_logs(tmp)[-500:])
            check(up, "coturn did not answer a Binding request within 15 s")
            log = coturn_logs(tmp)
            check("Bad configuration format" not in log and "CONFIG ERROR" not in log,
                  "coturn did not take every line of conf/turnserver.conf: %s" % short(
                      [ln for ln in log.splitlines() if "onfig" in ln], 500))
            c = Client(srv, "turn user")
            entry = c.session["iceServers"][-1]
            user, cred = entry["username"], entry["credential"]
            # A credential from another secret (what a misconfigured backend mints).
            bad = base64.b64encode(hmac.new(b"wrong", user.encode(), hashlib.sha1).digest())
            kind, attrs, _ = turn_allocate(sock, port, user, bad.decode())
            check(kind == 0x0113 and stun_error(attrs) == 401,
                  "coturn accepted a credential of another secret: %#x %s" % (
                      kind, stun_error(attrs)))
            kind, attrs, (realm, nonce, key) = turn_allocate(sock, port, user, cred)
            check(kind == 0x0103 and 0x0016 in attrs,
                  "coturn refused the backend's credential: %#x error %s %r" % (
                      kind, stun_error(attrs), attrs.get(0x0009, b"")[4:]))
            # A permission to relay to 127.0.0.1: denied-peer-ip refuses it (403).
            peer = struct.pack("!BBH", 0, 1, 3478 ^ (MAGIC >> 16)) + struct.pack(
                "!I", 0x7F000001 ^ MAGIC)
            msg, txid = stun_message(0x0008, [stun_attr(0x0012, peer), stun_attr(
                0x0006, user.encode()), stun_attr(0x0014, realm), stun_attr(0x0015, nonce)], key)
            kind, attrs = stun_ask(sock, port, msg, txid)
            check(kind == 0x0118 and stun_error(attrs) == 403,
                  "coturn let the relay reach 127.0.0.1: %#x error %s" % (kind, stun_error(attrs)))
            log = coturn_logs(tmp)
            check(user in log, "coturn's log does not name the username %s" % user)
            check(c.sid not in log, "coturn's log holds a session token")
        finally:
            sock.close()
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


GROUPS = [
    ({"env": ENV_TURN}, [
        ("the session answer: STUN, the TURN entry with a credential that checks, relay policy",
         test_session_answer),
        ("iceServers answers a fresh credential for the same opaque id; another session has "
         "another", test_ice_servers_message),
        ("coturn from conf/turnserver.conf accepts the backend's credential, refuses another "
         "secret's and a relay to 127.0.0.1", test_coturn),
        ("the TURN secret and the tokens are in no log line and no database row",
         test_nothing_kept),
    ]),
    ({"env": {"LONGCALL_ICE_SERVERS": ENV_TURN["LONGCALL_ICE_SERVERS"]}}, [
        ("without a secret: iceServers as configured, policy all", test_no_secret),
    ]),
    ({"env": {"LONGCALL_TURN_SECRET": SECRET, "LONGCALL_TURN_URIS": " ".join(URIS),
              "LONGCALL_TURN_TTL": str(TTL),
              "LONGCALL_ICE_SERVERS": ENV_TURN["LONGCALL_ICE_SERVERS"]}}, [
        ("LONGCALL_TURN_SECRET works as the file does", test_inline_secret),
    ]),
]


def main():
    t = Runner("turn")
    t.plan(Runner.count(GROUPS) + 1)
    try:
        for g in GROUPS:
            t.group(*g)
        t.run("a backend with a missing secret file or a bad URI does not start, and says why",
              test_start_refused)
    finally:
        shutil.rmtree(SECRET_DIR, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
