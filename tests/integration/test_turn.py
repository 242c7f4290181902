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
Runs behind every front end (LONGCALL_TEST_SERVER) and under the sanitized
backend (LONGCALL_TEST_BIN)."""
import base64
import hashlib
import hmac
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import BIN  # noqa: E402
from lcclient import Client, Runner, check, short  # noqa: E402

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


GROUPS = [
    ({"env": ENV_TURN}, [
        ("the session answer: STUN, the TURN entry with a credential that checks, relay policy",
         test_session_answer),
        ("iceServers answers a fresh credential for the same opaque id; another session has "
         "another", test_ice_servers_message),
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
