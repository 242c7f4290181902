#!/usr/bin/env python3
"""Abuse tests (issue 12): each performs an attack for real and asserts what
the victim experiences. Runs behind every front end (LONGCALL_TEST_SERVER)
and under the sanitized backend (LONGCALL_TEST_BIN).

Sections, one per part of the issue (each keeps its own functions and its
own entries in GROUPS):
  addr    client address (item 4): limits per client address on new sessions per
          minute, live sessions and held polls (429 + Retry-After, other addresses
          untouched), 10,000 refused session requests grow the database by less
          than 1 MiB, X-Forwarded-For believed only from trusted proxies, empty
          batches refused, batch ids kept per session bounded. Clients act as
          different addresses by binding their sockets to 127.0.0.2, 127.0.0.3, ...
  list    list amplification: 2,000 registered 64-byte names; an attacker
          session sends 100 batches of 64 {"id":"list"} twice over (once
          never reading its mailbox, once reading it after every batch):
          no request makes the database grow by more than 64 KiB, the 100
          by no more than 1 MiB (the size is page_count * page_size read
          through a connection of the test, which counts what the WAL
          holds -- the database as SQLite sees it, checkpointed or not --
          and the WAL file's growth is bounded per request too); the
          attacker gets one capped listResponse per batch and then
          rate_limited errors; a normal user meanwhile lists (first page,
          next page, prefix) and a page refreshing every 5 s is never
          refused.
  hosts   DNS rebinding and page headers: a request whose Host is not in
          LONGCALL_ALLOWED_HOSTS (what a page on a rebound name sends) is
          refused with a JSON 421 before anything runs and changes nothing;
          the allowed names work; unset, every Host is served (the
          documented default); the page's files come with the
          Content-Security-Policy, nosniff and no-referrer headers of the
          shipped front-end configuration, the JSON answers with nosniff.
  slow    slow readers (item 2): 64 FastCGI connections on the backend's
          socket ask for a 240 KB poll answer each and never read it: with
          2 accept workers, two other users still relay messages,
          /rtc/status answers, and the stalled answers are dropped after
          LONGCALL_WRITE_TIMEOUT and counted (dropped_slow); no descriptor
          is left behind. Needs the backend's unix socket: skipped under
          mod_fcgid and CGI.
  kept    kept connections (item 6): FastCGI requests with FCGI_KEEP_CONN
          set and not: the backend answers each and closes its connection,
          and its open descriptors return to where they started.
  names   names taken over (item 5): alice's network drops for longer than
          the session expiry; mallory, watching, tries to register "alice"
          and is refused with "reserved" (with no key and with a made-up
          one); alice comes back with a new session and her reclaim key, has
          her name again and bob's call reaches her. After the grace period
          (LONGCALL_NAME_GRACE, short here) mallory can take the name and
          the old key is worth nothing; a closed session's name is free at
          once. (Look-alike names: tests/cases/register_lookalikes.)
  flood   mailbox flooding (item 3b): mallory's 10 sessions flood bob, who is
          registered but does not read his mailbox, with every kind of message
          a stranger can put there (incomingCall, iceCandidate,
          startCommunication, stopCommunication; the issue's [call, stop] x
          32), each until refused with 429 mailbox_share: no session holds
          more than LONGCALL_MAILBOX_SHARE of bob's mailbox (read from the
          database and from bob's mailbox), bob's ping and list are
          answered, alice's call reaches him, the log has a line a minute.
          With more sessions than the quota holds shares, strangers get 429
          mailbox_full, bob's own replies are still answered. Slow writers:
          24 slow readers at one address, 4 at another: at most
          LONGCALL_ADDR_WRITERS answers of the first wait in the backend, the
          rest are dropped at once; the other address's come whole.
  review  what needs no body is answered before the body is read: at the
          FastCGI socket, requests announcing a 1 MB body they never send
          (foreign Host: 421, unknown endpoint: 404, wrong method: 405) are
          answered at once by a backend with 2 accept workers, and leave no
          descriptor once their peers leave; through the web server a
          foreign Host with a 200 KB body gets the JSON 421 every time.
  calls   ring-hogging and call floods (item 3a): mallory, 10 sessions on one
          address, rings bob and never hangs up, and sends [call, stop] x 32
          batches, for 60 s (LONGCALL_RING_TIMEOUT 6 s here, the call limits
          at their defaults); alice, retrying on busy or cooldown, gets her
          call to bob set up, and bob lists and calls carol meanwhile; bob's
          mailbox gets a bounded number of mallory's calls (one per
          LONGCALL_CALL_COOLDOWN), the log one line a minute. Reject and
          block: mallory's later calls (under any name) are refused with
          reason blocked and reach nothing. The rules one by one:
          tests/cases/call_*.
  turn    the iceServers message (issue 13): an attacker session with a TURN
          secret configured sends 100 batches of 64 {"id":"iceServers"},
          reading its mailbox after each: one answer per batch at most
          (the others ice_servers_once), LONGCALL_ICE_RATE a minute (then
          rate_limited), no request grows the database by more than 64
          KiB nor the 100 by more than 1 MiB, no acknowledged answer kept,
          the log one line per kind a minute without a token or the
          secret; another session of the same address still gets its
          credential.
"""
import concurrent.futures
import http.client
import json
import os
import re
import socket
import statistics
import struct
import sys
import threading
import time

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import connection  # noqa: E402
from lcclient import (Background, Client, Runner, Skip, call_pair, check, check_json_answer, has,  # noqa: E402
                      db_size, short, status, strip_seq, wait_held, wait_status)

# ---- list: list amplification (issue 12, item 1) ----------------------------

LIST_NAMES = 2000          # registered names (the figure)
LIST_BATCH = 64            # lists per attacking request (LONGCALL_MAX_BATCH)
LIST_REQUESTS = 100        # attacking requests in a row
LIST_MAX = 100             # LONGCALL_LIST_MAX's default
ONE_REQUEST = 64 * 1024    # what one request may make the database grow by
HUNDRED = 1024 * 1024      # and 100 of them
# A backend line of the log (logfmt: README "Logs"): the front end keeps the
# backend's stderr (spawn-fcgi -F, nginx, keeps none).
BACKEND_LOG = re.compile(r"(?:^|\s)(?:time=\S+ )?level=[a-z]+ event=[a-z_]+ ", re.M)


def list_name(i):
    """A 64-byte name, the longest there is: the worst case for a list."""
    return ("user-%04d-" % i).ljust(64, "x")


def register_many(srv, n, deadline=240):
    """n sessions, each registered under list_name(i): one session and one
    send each (a session holds one name), 8 at a time; bounded in count and
    time. Done once per server (kept on srv)."""
    if getattr(srv, "list_registered", 0) >= n:
        return
    end = time.monotonic() + deadline

    def one(i):
        if time.monotonic() > end:
            raise AssertionError("registering %d names took over %d s" % (n, deadline))
        c = Client(srv, "u%d" % i)
        c.send({"id": "register", "name": list_name(i)})
        return c

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        clients = list(pool.map(one, range(n)))
    srv.list_clients = clients
    srv.list_registered = n


def list_answers(msgs):
    return [m for m in msgs if m.get("id") == "listResponse"]


def attack(srv, c, read, what):
    """LIST_REQUESTS batches of LIST_BATCH lists from c (reading its mailbox
    after each when read). Returns (largest growth of one request, growth of
    all, largest WAL file growth of one request, answers by status, the
    messages read)."""
    batch = [{"id": "list"}] * LIST_BATCH
    start, _ = db_size(srv)
    worst = worst_wal = 0
    statuses = {}
    got = []
    end = time.monotonic() + 300
    for i in range(LIST_REQUESTS):
        check(time.monotonic() < end, "%s: 100 requests took over 300 s" % what)
        before, wal0 = db_size(srv)
        st, h, data = c.send_raw(batch)
        after, wal1 = db_size(srv)
        statuses[st] = statuses.get(st, 0) + 1
        check(st in (200, 429), "%s: request %d answered %d %s" % (what, i, st, short(data)))
        if st == 429:
            body = check_json_answer(st, h, data, 429, what)
            check("mailbox" in body["error"], "%s: 429 says %s" % (what, short(body)))
        worst = max(worst, after - before)
        worst_wal = max(worst_wal, wal1 - wal0)
        if read:
            got += c.poll(timeout=0)
    end_size, _ = db_size(srv)
    srv.list_attack_s = time.monotonic() - (end - 300)
    return worst, end_size - start, worst_wal, statuses, got


def test_list_amplification(srv):
    register_many(srv, LIST_NAMES)
    victim = srv.list_clients[0]
    # The attacker never reads its mailbox: what it asked for stays queued.
    deaf = Client(srv, "deaf attacker")
    worst, total, wal, statuses, _ = attack(srv, deaf, False, "attacker not reading")
    print("# list attack, not reading: %d requests of %d lists with %d names registered: "
          "answers %s; database growth (page_count*page_size) at most %d bytes per request, "
          "%d for all; WAL file growth at most %d bytes per request" % (
              LIST_REQUESTS, LIST_BATCH, LIST_NAMES, statuses, worst, total, wal), flush=True)
    check(worst <= ONE_REQUEST, "one request grew the database by %d bytes" % worst)
    check(wal <= ONE_REQUEST, "one request grew the WAL file by %d bytes" % wal)
    check(total <= HUNDRED, "100 requests grew the database by %d bytes" % total)
    # The attacker reads (and so acknowledges) after every batch.
    reader = Client(srv, "reading attacker")
    worst, total, wal, statuses, got = attack(srv, reader, True, "attacker reading")
    for _ in range(50):  # the rest, and acknowledges the last answers
        more = reader.poll(timeout=0)
        got += more
        if not more:
            break
    print("# list attack, reading: answers %s; database growth at most %d bytes per request, "
          "%d for all; WAL file growth at most %d bytes per request" % (
              statuses, worst, total, wal), flush=True)
    check(worst <= ONE_REQUEST, "one request grew the database by %d bytes" % worst)
    check(wal <= ONE_REQUEST, "one request grew the WAL file by %d bytes" % wal)
    check(total <= HUNDRED, "100 requests grew the database by %d bytes" % total)
    # What the attacker got: one capped list per batch, then rate_limited.
    lists = list_answers(got)
    errors = [m.get("reason") for m in got if m.get("id") == "error"]
    check(statuses.get(200) == LIST_REQUESTS, "reading attacker: answers %s" % statuses)
    check(len(lists) + errors.count("rate_limited") == LIST_REQUESTS,
          "%d lists and %d rate_limited for %d batches" % (
              len(lists), errors.count("rate_limited"), LIST_REQUESTS))
    check(errors.count("list_once") == LIST_REQUESTS * (LIST_BATCH - 1),
          "%d list_once errors" % errors.count("list_once"))
    # 30 at once (the burst), then one per 2 s (30 a minute).
    allowed = 30 + int(srv.list_attack_s / 2) + 1
    check(0 < len(lists) <= allowed, "%d list answers in %.0f s (LONGCALL_LIST_RATE 30: at most %d)"
          % (len(lists), srv.list_attack_s, allowed))
    check(all(len(m["list"]) == LIST_MAX and m["more"] is True for m in lists),
          "a list answer is not a full first page: %s" % short(lists[:1], 200))
    check(all(m["list"][0] == list_name(0) for m in lists), "first page does not start at 0")
    # The database keeps no history of those answers once acknowledged.
    kept = srv.db_value("SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id"
                        " WHERE s.id = (SELECT max(id) FROM sessions) AND m.seq <= s.acked"
                        " AND m.type IN ('listResponse', 'error')")
    print("# acknowledged listResponse/error rows kept for the reading attacker: %d" % kept,
          flush=True)
    check(kept == 0, "%d acknowledged list answers and errors kept as history" % kept)
    # The log summarises the refusals: at most a line per client address
    # and kind (second list in a batch, over the rate) a minute, over all
    # processes (CGI included: the memo is in the wake file).
    lines = [ln for ln in srv.log_text().splitlines() if "had a list refused" in ln]
    most = 2 * (int(srv.list_attack_s * 2 / 60) + 2)
    check(1 <= len(lines) <= most, "%d 'had a list refused' log lines (at most %d): %s"
          % (len(lines), most, short(lines, 600)))
    check(all("client 127.0.0.1 " in ln for ln in lines), "a line does not name the client: %s"
          % short(lines, 600))
    check(not any(c.sid in ln for ln in lines for c in (deaf, reader)), "a token in the log")
    # The victim still lists: its rate is its own.
    victim.poll(timeout=0)
    victim.send({"id": "list"})
    first = list_answers(victim.collect(1, deadline=10))
    check(first and len(first[0]["list"]) == LIST_MAX and first[0]["more"] is True
          and first[0]["next"] == first[0]["list"][-1],
          "victim's list: %s" % short(first, 300))


def test_list_victim_pages(srv):
    """A normal user, while an attacker floods: the first page, the next
    one, a prefix, and a page's refresh every 5 s -- all answered."""
    register_many(srv, LIST_NAMES)
    victim = srv.list_clients[1]
    victim.poll(timeout=0)
    flood = Client(srv, "flooding attacker")
    sent = {"n": 0}

    def flood_once():
        st, _, _ = flood.send_raw([{"id": "list"}] * LIST_BATCH)
        sent["n"] += 1
        return st

    names = []
    # The page: its first list at once, then one every 5 s (and a focus).
    end = time.monotonic() + 60
    after = None
    for i in range(5):
        check(time.monotonic() < end, "the page's lists took over 60 s")
        for _ in range(3):
            flood_once()
        msg = {"id": "list"} if after is None else {"id": "list", "after": after}
        victim.send(msg)
        got = list_answers(victim.collect(1, deadline=10))
        refused = [m for m in victim.received[-3:] if m.get("reason") == "rate_limited"]
        check(got and not refused, "page list %d: %s" % (i, short(victim.received[-2:], 300)))
        names += got[0]["list"]
        after = got[0].get("next")
        if i < 4:
            time.sleep(5)
    check(len(names) == 5 * LIST_MAX and names == sorted(names) and len(set(names)) == len(names),
          "5 pages: %d names, sorted %s" % (len(names), names == sorted(names)))
    check(names[0] == list_name(0) and names[-1] == list_name(5 * LIST_MAX - 1),
          "pages run from %s to %s" % (names[0][:12], names[-1][:12]))
    victim.send({"id": "list", "prefix": "user-1999"})
    got = list_answers(victim.collect(1, deadline=10))
    check(got and got[0]["list"] == [list_name(1999)] and got[0]["more"] is False,
          "prefix: %s" % short(got, 300))
    print("# victim: 5 pages of %d names and a prefix answered while an attacker sent %d "
          "batches of %d lists" % (LIST_MAX, sent["n"], LIST_BATCH), flush=True)


GROUPS_LIST = [
    # Sessions live 10 minutes without a poll: 2,000 registered ones must
    # not expire while the test runs.
    ({"env": {"LONGCALL_SESSION_EXPIRY": "600"}}, [
        ("list: 100 batches of 64 lists with 2,000 names grow the database by at most "
         "64 KiB each and 1 MiB in all; the attacker is capped and rate-limited",
         test_list_amplification),
        ("list: during a list flood a normal user pages, filters by prefix and refreshes "
         "every 5 s without a refusal", test_list_victim_pages),
    ]),
]

# ---- hosts: DNS rebinding and page headers (issue 12, item 7) --------------

# Entries without a port: any port (the harness picks a free one). The
# port rules are unit-tested (tests/unit/test_http.c).
HOSTS_ALLOWED = "127.0.0.1 localhost [::1]"
REBOUND = "rebind.attacker.example"   # a name the attacker points at 127.0.0.1
HOST_SENTENCE = "LONGCALL_ALLOWED_HOSTS"


def raw(srv, method, path, headers=None, body=None, timeout=20):
    """One request with exactly these headers (Host included when given).
    Returns (status, http.client.HTTPMessage, body bytes): the message keeps
    repeated headers (get_all)."""
    c = connection(srv.port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        return r.status, r.msg, data
    finally:
        c.close()


def rebound_headers(srv, extra=None):
    """What a page on the rebound name sends to its own origin."""
    h = {"Host": "%s:%d" % (REBOUND, srv.port),
         "Origin": "%s://%s:%d" % (srv.scheme, REBOUND, srv.port)}
    h.update(extra or {})
    return h


def lower(msg):
    return {k.lower(): v for k, v in msg.items()}


def check_refused(st, msg, data, what):
    body = check_json_answer(st, lower(msg), data, 421, what)
    check(HOST_SENTENCE in body["error"], "%s: the sentence does not name %s: %s" % (
        what, HOST_SENTENCE, short(body)))
    cors = [k for k in msg.keys() if k.lower().startswith("access-control-")]
    check(not cors, "%s: CORS headers on a refused request: %s" % (what, cors))


def db_rows(srv, sql):
    """A count from the server's database (either store)."""
    return srv.db_value(sql)


def test_hosts_new_session(srv):
    srv.hosts_started = time.monotonic()  # for test_hosts_log
    before = status(srv)["sessions"]
    rows = db_rows(srv, "SELECT count(*) FROM sessions")
    for path in ("/rtc/session", "/rtc/session?x=1"):
        st, msg, data = raw(srv, "POST", path, rebound_headers(srv), body=b"")
        check_refused(st, msg, data, "POST %s with Host %s" % (path, REBOUND))
    check(status(srv)["sessions"] == before, "a refused request created a session")
    check(db_rows(srv, "SELECT count(*) FROM sessions") == rows,
          "a refused request added a sessions row")


def test_hosts_existing_session(srv):
    """The rebinding page has somehow learnt a sid (it cannot, but even
    then): nothing it sends acts on the session."""
    bob = Client(srv, "bob")
    bob.send({"id": "register", "name": "bob"})
    got = bob.poll()
    check([m["id"] for m in got] == ["registerResponse"], "bob: %s" % short(got))
    registered = status(srv)["registered"]
    msgs = db_rows(srv, "SELECT count(*) FROM messages")
    sid = bob.qsid()
    h = rebound_headers(srv, {"Content-Type": "text/plain"})
    attempts = [
        ("POST", "/rtc/send?sid=%s" % sid, json.dumps({"id": "register", "name": "mallory"})),
        ("POST", "/rtc/send?sid=%s&batch=b1" % sid, json.dumps([{"id": "list"}, {"id": "ping"}])),
        ("GET", "/rtc/poll?sid=%s&after=0&timeout=0" % sid, None),
        ("POST", "/rtc/close?sid=%s" % sid, ""),
        ("GET", "/rtc/status", None),
        ("GET", "/rtc/nothing", None),
        ("PUT", "/rtc/send?sid=%s" % sid, "{}"),
    ]
    for method, path, body in attempts:
        st, msg, data = raw(srv, method, path, h,
                            body=body.encode() if body is not None else None)
        check_refused(st, msg, data, "%s %s with Host %s" % (method, path.split("?")[0], REBOUND))
        check(b'"sessions"' not in data, "status figures given to a foreign Host")
    check(db_rows(srv, "SELECT count(*) FROM messages") == msgs,
          "refused requests stored messages")
    check(status(srv)["registered"] == registered, "the registered count changed")
    # bob's session is untouched: still open, still "bob", nothing queued.
    bob.send({"id": "ping"})
    got = bob.poll()
    check([m["id"] for m in got] == ["pong"], "bob after the attack: %s" % short(got))
    name = db_rows(srv, "SELECT count(*) FROM sessions WHERE name = 'bob' AND ended IS NULL")
    check(name == 1, "bob is no longer registered")


def test_hosts_preflight(srv):
    """A preflight is refused too, before any CORS rule is looked at."""
    h = rebound_headers(srv, {"Access-Control-Request-Method": "POST",
                              "Access-Control-Request-Headers": "content-type"})
    st, msg, data = raw(srv, "OPTIONS", "/rtc/send?sid=x", h)
    check_refused(st, msg, data, "OPTIONS /rtc/send with Host %s" % REBOUND)
    # No Origin at all (a script with a Host header of its own): refused too.
    st, msg, data = raw(srv, "POST", "/rtc/session", {"Host": REBOUND}, body=b"")
    check_refused(st, msg, data, "POST /rtc/session with Host %s, no Origin" % REBOUND)


def test_hosts_allowed_names(srv):
    """The names of the setting work, whatever their case and with a
    trailing dot, and a foreign Origin on an allowed Host is still the
    origin check's 403 (the two checks are separate)."""
    for host in ("127.0.0.1:%d" % srv.port, "localhost:%d" % srv.port,
                 "LocalHost.:%d" % srv.port):
        st, msg, data = raw(srv, "POST", "/rtc/session",
                            {"Host": host, "Origin": "%s://%s" % (srv.scheme, host)}, body=b"")
        body = check_json_answer(st, lower(msg), data, 200, "POST /rtc/session with Host %s" % host)
        check(isinstance(body.get("sid"), str), "no sid: %s" % short(body))
        st, msg, data = raw(srv, "GET", "/rtc/status", {"Host": host})
        check_json_answer(st, lower(msg), data, 200, "GET /rtc/status with Host %s" % host)
    st, msg, data = raw(srv, "POST", "/rtc/session",
                        {"Host": "127.0.0.1:%d" % srv.port, "Origin": "http://evil.example"},
                        body=b"")
    check_json_answer(st, lower(msg), data, 403, "a foreign Origin on an allowed Host")
    # A whole call between two clients on the allowed Host.
    a, b = Client(srv, "alice"), Client(srv, "carol")
    a.send({"id": "register", "name": "alice"})
    b.send({"id": "register", "name": "carol"})
    a.poll()
    b.poll()
    a.send({"id": "call", "to": "carol", "sdpOffer": "offer"})
    got = b.poll()
    check([m["id"] for m in got] == ["incomingCall"], "carol: %s" % short(got))


def test_hosts_log(srv):
    """The refusals of the tests before (over 15, all from 127.0.0.1) are
    logged summarised: at most one line per client address a minute over
    all backend processes, none per request, naming the client and the
    refused host; under CGI (refused before the wake file, where the memo
    is, is opened) at debug level only."""
    st, msg, data = raw(srv, "GET", "/rtc/status", rebound_headers(srv))
    check(st == 421, "status from a foreign Host: %s" % st)
    lines = [ln for ln in srv.log_text().splitlines() if "not in LONGCALL_ALLOWED_HOSTS" in ln]
    if srv.kind == "cgi":
        check(not lines, "a CGI process logged a refusal above debug level: %s" % short(lines))
        return
    check(lines, "no refusal was logged")
    # The tests of this server so far ran within hosts_started..now: one
    # line per started minute at most (a minute may turn meanwhile).
    most = 2 + int((time.monotonic() - srv.hosts_started) // 60)
    check(len(lines) <= most, "%d lines in %.0f s, at most %d expected: %s" % (
        len(lines), time.monotonic() - srv.hosts_started, most, short(lines, 1000)))
    # (msg's quotes are escaped: logfmt, README "Logs")
    check(all(("Host \\\"%s" % REBOUND) in ln and "client 127.0.0.1 " in ln for ln in lines),
          "a line does not name the client and the refused host: %s" % short(lines))
    check(any("more since the previous line" in ln for ln in lines),
          "no line counts the refusals: %s" % short(lines))


def test_hosts_unset_serves_any(srv):
    """LONGCALL_ALLOWED_HOSTS unset: every Host is served, as before (the
    README says why, and that an intranet or loopback site must set it)."""
    st, msg, data = raw(srv, "POST", "/rtc/session", rebound_headers(srv), body=b"")
    body = check_json_answer(st, lower(msg), data, 200, "POST /rtc/session, setting unset")
    check(isinstance(body.get("sid"), str), "no sid: %s" % short(body))


CSP_MUST = ("default-src 'self'", "connect-src 'self'", "frame-ancestors 'none'")
PAGE_FILES = (("/", "text/html"), ("/index.html", "text/html"),
              ("/js/longpoll-socket.js", "javascript"), ("/js/rtc.js", "javascript"),
              ("/js/app.js", "javascript"), ("/css/app.css", "text/css"))


def test_page_headers(srv):
    for path, ctype in PAGE_FILES:
        st, msg, data = raw(srv, "GET", path, {"Host": "127.0.0.1:%d" % srv.port})
        what = "GET %s (%s)" % (path, srv.kind)
        check(st == 200 and data, "%s: %s" % (what, st))
        # nosniff makes the browser refuse a script or a style sheet served
        # with another type: the types must be right.
        check(ctype in msg.get("Content-Type", ""), "%s: Content-Type %r" % (
            what, msg.get("Content-Type")))
        for name, want in (("Content-Security-Policy", None),
                           ("X-Content-Type-Options", "nosniff"),
                           ("Referrer-Policy", "no-referrer")):
            values = msg.get_all(name) or []
            check(len(values) == 1, "%s: %d %s headers: %s" % (what, len(values), name, values))
            if want:
                check(values[0].strip().lower() == want, "%s: %s: %r" % (what, name, values[0]))
        csp = [d.strip() for d in msg.get("Content-Security-Policy").split(";")]
        for d in CSP_MUST:
            check(d in csp, "%s: Content-Security-Policy %r lacks %r" % (what, csp, d))
        check(not any("unsafe-" in d or "*" in d for d in csp),
              "%s: Content-Security-Policy %r allows too much" % (what, csp))


def test_rtc_headers(srv):
    """The JSON answers carry nosniff once (from the backend; the front end
    adds no second one) and none of the page's headers."""
    for method, path in (("GET", "/rtc/status"), ("POST", "/rtc/session"), ("GET", "/rtc/x")):
        st, msg, data = raw(srv, method, path, {"Host": "127.0.0.1:%d" % srv.port},
                            body=b"" if method == "POST" else None)
        what = "%s %s (%s)" % (method, path, srv.kind)
        values = msg.get_all("X-Content-Type-Options") or []
        check(values == ["nosniff"], "%s: X-Content-Type-Options %r" % (what, values))
        check(json.loads(data) is not None, "%s: not JSON" % what)


GROUPS_HOSTS = [
    ({"env": {"LONGCALL_ALLOWED_HOSTS": HOSTS_ALLOWED}}, [
        ("hosts: a foreign Host (DNS rebinding) gets a JSON 421 and creates no session",
         test_hosts_new_session),
        ("hosts: a foreign Host cannot act on an existing session, nor read status",
         test_hosts_existing_session),
        ("hosts: a preflight from a foreign Host is refused before CORS", test_hosts_preflight),
        ("hosts: the allowed names work (case, trailing dot); the origin check stays",
         test_hosts_allowed_names),
        ("hosts: refusals are logged summarised (a line per client a minute at most)",
         test_hosts_log),
    ]),
    ({}, [
        ("hosts: LONGCALL_ALLOWED_HOSTS unset serves every Host", test_hosts_unset_serves_any),
        ("page headers: www/ comes with the CSP, nosniff and no-referrer", test_page_headers),
        ("page headers: /rtc answers carry nosniff once", test_rtc_headers),
    ]),
]

# ---- a FastCGI peer ------------------------------------------------------

FCGI_BEGIN_REQUEST, FCGI_PARAMS, FCGI_STDIN, FCGI_STDOUT, FCGI_END_REQUEST = 1, 4, 5, 6, 3


def record(kind, content, rid=1):
    return struct.pack(">BBHHBB", 1, kind, rid, len(content), 0, 0) + content


def pair(name, value):
    def n(x):
        return bytes([len(x)]) if len(x) < 128 else struct.pack(">I", len(x) | 0x80000000)
    return n(name) + n(value) + name + value


def fcgi_request(method, uri, query, keep=False, body=b""):
    """The records of one request (id 1), as a web server writes them."""
    params = b"".join(pair(k.encode(), v.encode()) for k, v in (
        ("REQUEST_METHOD", method), ("REQUEST_URI", uri + ("?" + query if query else "")),
        ("QUERY_STRING", query), ("SCRIPT_NAME", uri), ("HTTP_HOST", "127.0.0.1"),
        ("CONTENT_TYPE", "application/json"), ("CONTENT_LENGTH", str(len(body))),
        ("REMOTE_ADDR", "127.0.0.1")))
    out = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 1 if keep else 0))
    out += record(FCGI_PARAMS, params) + record(FCGI_PARAMS, b"")
    if body:
        out += record(FCGI_STDIN, body)
    return out + record(FCGI_STDIN, b"")


def backend_socket(srv):
    """The unix socket the backend accepts on (lighttpd appends -0)."""
    for path in (srv.socket + "-0", srv.socket):
        if os.path.exists(path):
            return path
    raise Skip("no backend socket to talk FastCGI to behind %s" % srv.kind)


def fcgi_connect(path, rcvbuf=None):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(20)
    s.connect(path)
    return s


def fcgi_read_answer(s):
    """Reads records until END_REQUEST: (stdout bytes, bytes after it or
    None when the connection stayed open)."""
    data, out = b"", b""
    while True:
        while len(data) < 8:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed before END_REQUEST")
            data += chunk
        _, kind, _, clen, pad, _ = struct.unpack(">BBHHBB", data[:8])
        while len(data) < 8 + clen + pad:
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("connection closed inside a record")
            data += chunk
        content, data = data[8:8 + clen], data[8 + clen + pad:]
        if kind == FCGI_STDOUT:
            out += content
        elif kind == FCGI_END_REQUEST:
            return out


def open_fds(srv):
    n = 0
    for pid in srv.backend_pids():
        try:
            n += len(os.listdir("/proc/%d/fd" % pid))
        except OSError:
            pass
    return n


# ---- item 2: slow readers ---------------------------------------------------

SLOW = 64
WRITE_TIMEOUT = 3


def relay_times(a, b, n, what):
    """n messages a -> b through b's held polls; the time of each, in ms."""
    times = []
    for k in range(n):
        t = time.monotonic()
        a.send({"id": "onIceCandidate", "candidate": {"candidate": "%s %d" % (what, k)}})
        got = b.collect(1, deadline=20, poll_timeout=5)
        check(got and got[0].get("id") == "iceCandidate" and
              got[0]["candidate"]["candidate"] == "%s %d" % (what, k),
              "%s: message %d not relayed: %s" % (what, k, got))
        times.append((time.monotonic() - t) * 1000)
    return times


def test_slow_readers(srv):
    path = backend_socket(srv)
    t0 = time.monotonic()
    # The victim of nobody: one session whose mailbox holds 4 x 60 KB.
    x, y = call_pair(srv, "bigsender", "bigmailbox")
    for k in range(4):
        x.send({"id": "onIceCandidate", "candidate": {"candidate": str(k) * 60000}})
    alice, bob = call_pair(srv, "alice", "bob")
    fds0 = open_fds(srv)
    before = relay_times(alice, bob, 20, "before")
    # The attack: 64 FastCGI peers ask for that mailbox (after=0, answered
    # at once, ~240 KB) and never read.
    peers = []
    try:
        for _ in range(SLOW):
            s = fcgi_connect(path, rcvbuf=4096)
            s.sendall(fcgi_request("GET", "/rtc/poll", "sid=%s&after=0&timeout=0" % y.qsid()))
            peers.append(s)
        during = relay_times(alice, bob, 20, "during")
        st = status(srv)
        check(st.get("ok") is True, "/rtc/status during the attack: %s" % st)
        print("# relay p50 %.1f ms before, %.1f ms with %d stalled answers" % (
            statistics.median(before), statistics.median(during), SLOW), file=sys.stderr)
        wait_status(srv, lambda s: s.get("dropped_slow", 0) >= SLOW,
                    "the %d stalled answers dropped after LONGCALL_WRITE_TIMEOUT=%d s" % (
                        SLOW, WRITE_TIMEOUT), deadline=WRITE_TIMEOUT + 30)
    finally:
        for s in peers:
            s.close()
    # Nothing lost: the mailbox is whole for its owner.
    got = y.collect(4, deadline=20)
    check(len(got) == 4 and all(m["candidate"]["candidate"] == str(k) * 60000
                                for k, m in enumerate(got)),
          "the big mailbox after the attack: %d messages" % len(got))
    relay_times(alice, bob, 5, "after")
    deadline = time.monotonic() + 20
    while open_fds(srv) > fds0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(open_fds(srv) <= fds0, "backend descriptors %d, %d before the attack" % (
        open_fds(srv), fds0))
    # The drops are logged summarised: at most a line per client a minute
    # (all 64 peers say REMOTE_ADDR 127.0.0.1), with the count.
    lines = [ln for ln in srv.log_text().splitlines() if "took no part of an answer" in ln]
    most = 2 + int((time.monotonic() - t0) // 60)
    check(1 <= len(lines) <= most and all("client 127.0.0.1 " in ln for ln in lines),
          "%d log lines about dropped answers (1 to %d expected, naming the client): %s"
          % (len(lines), most, short(lines, 600)))


# ---- item 6: kept connections ------------------------------------------------

KEPT_REQUESTS = 5000
KEPT_SECONDS = 60


def test_kept_connections(srv):
    path = backend_socket(srv)
    c = Client(srv)
    fds0 = open_fds(srv)
    end = time.monotonic() + KEPT_SECONDS
    done = {True: 0, False: 0}
    for i in range(KEPT_REQUESTS):
        if time.monotonic() > end:
            break
        keep = i % 2 == 0
        s = fcgi_connect(path)
        try:
            s.sendall(fcgi_request("GET", "/rtc/poll", "sid=%s&timeout=0" % c.qsid(), keep=keep))
            out = fcgi_read_answer(s)
            check(b"Status: 200" in out and b'"messages":[]' in out,
                  "request %d (keep %s): %r" % (i, keep, out[:200]))
            s.settimeout(5)
            check(s.recv(1) == b"", "request %d (keep %s): the backend kept the connection "
                  "open (it serves one request per connection)" % (i, keep))
        finally:
            s.close()
        done[keep] += 1
    check(min(done.values()) >= 500, "only %s requests in %d s" % (done, KEPT_SECONDS))
    deadline = time.monotonic() + 10
    while open_fds(srv) > fds0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(open_fds(srv) <= fds0, "backend descriptors %d after %s requests, %d before" % (
        open_fds(srv), done, fds0))


GROUPS_SLOW = [
    ({"env": {"LONGCALL_THREADS": "2", "LONGCALL_WRITE_TIMEOUT": str(WRITE_TIMEOUT)}},
     [("slow readers: %d stalled 240 KB answers stall nobody, are dropped and counted" % SLOW,
       test_slow_readers)]),
    ({}, [("kept connections: answered and closed, no descriptor left (FCGI_KEEP_CONN on "
           "and off)", test_kept_connections)]),
]


# ==== client address (item 4) =============================================

def addr_new_session(srv, source, headers=None):
    """POST /rtc/session from source; returns (status, headers, body dict)."""
    st, h, data = srv.request("POST", "/rtc/session", timeout=15, source=source, headers=headers)
    try:
        body = json.loads(data) if data else None
    except ValueError:
        body = None
    return st, h, body


def addr_check_429(st, h, body, what, setting):
    """A per-address refusal: 429, Retry-After a whole number of seconds, a
    JSON sentence naming the setting."""
    check(st == 429, "%s: expected 429, got %s %s" % (what, st, short(body)))
    ra = h.get("retry-after", "")
    check(ra.isdigit() and 1 <= int(ra) <= 60, "%s: Retry-After %r" % (what, ra))
    check(isinstance(body, dict) and setting in body.get("error", ""),
          "%s: the sentence should name %s: %s" % (what, setting, short(body)))


def addr_db_size(srv):
    """Bytes of the database and its WAL (either store)."""
    return sum(srv.db_bytes())


def addr_sql(srv, query, args=()):
    """One value from the server's database (either store)."""
    return srv.db_value(query, args)


def addr_test_session_rate(srv):
    """LONGCALL_ADDR_SESSIONS_PER_MIN=10: the 11th new session of one address
    within a minute is refused; another address, and the sessions already
    made, are served; a spoofed X-Forwarded-For does not escape the limit
    (no proxy is trusted)."""
    made = []
    for i in range(30):  # bounded: the limit is 10
        st, h, body = addr_new_session(srv, "127.0.0.2")
        if st != 200:
            break
        made.append(body["sid"])
    check(len(made) == 10, "127.0.0.2 made %d sessions before a refusal, expected 10" % len(made))
    addr_check_429(st, h, body, "the 11th session of 127.0.0.2", "LONGCALL_ADDR_SESSIONS_PER_MIN")
    st, h, body = addr_new_session(srv, "127.0.0.2", {"X-Forwarded-For": "203.0.113.77"})
    addr_check_429(st, h, body, "127.0.0.2 with a spoofed X-Forwarded-For",
                   "LONGCALL_ADDR_SESSIONS_PER_MIN")
    other = Client(srv, "other", source="127.0.0.3")
    other.send({"id": "ping"})
    other.expect({"id": "pong"})
    st, h, data = srv.request("POST", "/rtc/send?sid=" + made[0], {"id": "ping"},
                              source="127.0.0.2")
    check_json_answer(st, h, data, 200, "a send of a session 127.0.0.2 already has")


def addr_test_live_sessions(srv):
    """LONGCALL_ADDR_SESSIONS=5: the 6th live session of one address is
    refused until one of its sessions ends; another address is served."""
    mine = [Client(srv, "s%d" % i, source="127.0.0.4") for i in range(5)]
    st, h, body = addr_new_session(srv, "127.0.0.4")
    addr_check_429(st, h, body, "the 6th live session of 127.0.0.4", "LONGCALL_ADDR_SESSIONS")
    other = Client(srv, "other", source="127.0.0.5")
    other.send({"id": "ping"})
    other.expect({"id": "pong"})
    st, h, data = mine[0].close()
    check_json_answer(st, h, data, 200, "close of one of 127.0.0.4's sessions")
    st, h, body = addr_new_session(srv, "127.0.0.4")
    check(st == 200 and "sid" in (body or {}),
          "after a close 127.0.0.4 may open one again: %s %s" % (st, short(body)))


def addr_test_held_polls(srv):
    """LONGCALL_ADDR_HELD=3 (2 backend processes: the limit is over both):
    one address's 4th held poll is refused with 429 while another address's
    poll is held and answered as usual; once one of the first address's
    polls is answered, it may hold one again."""
    mine = [Client(srv, "m%d" % i, source="127.0.0.6") for i in range(5)]
    held = [Background(c.poll_raw, 0, 20) for c in mine[:3]]
    wait_held(srv, 3)
    st, h, data = mine[3].poll_raw(0, 20)
    body = json.loads(data) if data else None
    addr_check_429(st, h, body, "127.0.0.6's 4th held poll", "LONGCALL_ADDR_HELD")
    victim = Client(srv, "victim", source="127.0.0.7")
    vpoll = Background(victim.poll_raw, 0, 20)
    wait_held(srv, 4)
    victim.send({"id": "ping"})  # its own pong wakes its held poll
    st, h, data = vpoll.join(30)
    got = [strip_seq(m) for m in json.loads(data)["messages"]] if st == 200 else data
    check(st == 200 and {"id": "pong"} in got, "127.0.0.7's held poll got %s %s" % (st, short(got)))
    mine[0].send({"id": "ping"})  # answers one of 127.0.0.6's held polls
    st, h, data = held[0].join(30)
    check(st == 200, "127.0.0.6's first held poll answered: %s" % st)
    wait_held(srv, 2)
    again = Background(mine[4].poll_raw, 0, 20)
    wait_held(srv, 3)
    for c in mine[1:3]:
        c.send({"id": "ping"})
    mine[4].send({"id": "ping"})
    for b in held[1:] + [again]:
        st, h, data = b.join(30)
        check(st == 200, "a held poll of 127.0.0.6 answered: %s %s" % (st, short(data)))


def addr_test_refused_flood(srv):
    """LONGCALL_ADDR_SESSIONS_PER_MIN=5 and LONGCALL_ADDR_SESSIONS=5: 10,000
    session requests of one address over its limits (4 threads, keep-alive,
    bounded in time) are all refused with 429, the database grows by less
    than 1 MiB, the log says so in a line a minute, and another address is
    served meanwhile. (Plain CGI starts a process per request: 2,000 there.)"""
    total = 2000 if srv.kind == "cgi" else 10000
    for i in range(5):
        st, h, body = addr_new_session(srv, "127.0.0.8")
        check(st == 200, "127.0.0.8's session %d: %s %s" % (i, st, short(body)))
    before = addr_db_size(srv)
    counts = {"refused": 0, "other": []}
    lock = threading.Lock()
    end = time.monotonic() + 300
    t0 = time.monotonic()

    def flood(n):
        c = None
        for _ in range(n):
            if time.monotonic() > end:
                return
            try:
                if c is None:
                    c = connection(srv.port, timeout=15, source_address=("127.0.0.8", 0))
                c.request("POST", "/rtc/session", body=b"")
                r = c.getresponse()
                r.read()
                with lock:
                    if r.status == 429 and r.getheader("Retry-After"):
                        counts["refused"] += 1
                    else:
                        counts["other"].append(r.status)
                if r.getheader("Connection", "").lower() == "close":
                    c.close()
                    c = None
            except (OSError, http.client.HTTPException) as e:
                with lock:
                    counts["other"].append(type(e).__name__)
                if c:
                    c.close()
                c = None
        if c:
            c.close()

    threads = [threading.Thread(target=flood, args=(total // 4,), daemon=True) for _ in range(4)]
    for th in threads:
        th.start()
    # Meanwhile another address opens a session and relays a message.
    other = Client(srv, "other", source="127.0.0.9")
    other.send({"id": "ping"})
    other.expect({"id": "pong"})
    for th in threads:
        th.join(max(1, end - time.monotonic() + 5))
    elapsed = time.monotonic() - t0
    grown = addr_db_size(srv) - before
    print("#   %d refused session requests in %.0f s, database grew %d bytes; other answers %s"
          % (counts["refused"], elapsed, grown, short(counts["other"], 200)), file=sys.stderr)
    check(not counts["other"], "answers other than 429 + Retry-After: %s" % short(counts["other"]))
    check(counts["refused"] == total, "only %d of %d requests were made and refused in time"
          % (counts["refused"], total))
    check(grown < 1 << 20, "the database grew by %d bytes" % grown)
    live = addr_sql(srv, "SELECT count(*) FROM sessions WHERE addr = '127.0.0.8'")
    check(live == 5, "127.0.0.8 has %d sessions stored, expected the 5 made" % live)
    lines = [ln for ln in srv.log_text().splitlines()
             if "client 127.0.0.8 is over LONGCALL_ADDR_SESSIONS" in ln]
    # One a minute per kind (a minute may turn meanwhile): over the rate
    # (..._PER_MIN) and over the live sessions are two kinds, and a run that
    # lasts past a minute (CGI on a busy machine) meets both.
    allowed = 2 + int(elapsed // 60)
    per_kind = {k: sum(("LONGCALL_ADDR_SESSIONS%s=" % k) in ln for ln in lines)
                for k in ("_PER_MIN", "")}
    check(lines and max(per_kind.values()) <= allowed,
          "%d log lines about 127.0.0.8 in %.0f s, %s by kind (at most one a minute of each "
          "expected: %d)" % (len(lines), elapsed, per_kind, allowed))


def addr_test_trusted_proxy(srv):
    """LONGCALL_TRUSTED_PROXIES=127.0.0.1, LONGCALL_ADDR_SESSIONS_PER_MIN=3:
    behind the trusted proxy each X-Forwarded-For client has its own limit;
    from an untrusted address the header is ignored."""
    def mk(source, xff):
        return addr_new_session(srv, source, {"X-Forwarded-For": xff})
    for i in range(3):
        st, h, body = mk("127.0.0.1", "198.51.100.1, 203.0.113.5")
        check(st == 200, "session %d of 203.0.113.5 via the proxy: %s %s" % (i, st, short(body)))
    st, h, body = mk("127.0.0.1", "203.0.113.5")
    addr_check_429(st, h, body, "203.0.113.5's 4th session via the proxy",
                   "LONGCALL_ADDR_SESSIONS_PER_MIN")
    st, h, body = mk("127.0.0.1", "203.0.113.6")
    check(st == 200, "another client behind the same proxy: %s %s" % (st, short(body)))
    for i in range(3):
        st, h, body = mk("127.0.0.10", "203.0.113.%d" % (20 + i))
        check(st == 200, "untrusted 127.0.0.10, session %d: %s %s" % (i, st, short(body)))
    st, h, body = mk("127.0.0.10", "203.0.113.30")
    addr_check_429(st, h, body, "untrusted 127.0.0.10 naming yet another client",
                   "LONGCALL_ADDR_SESSIONS_PER_MIN")
    stored = [r[0] for r in srv.db_query("SELECT DISTINCT addr FROM sessions WHERE addr "
                                         "NOT LIKE '127.0.0.%' OR addr = '127.0.0.10'")]
    check(sorted(stored) == ["127.0.0.10", "203.0.113.5", "203.0.113.6"],
          "addresses stored: %s" % stored)


def addr_test_empty_batch(srv):
    """An empty batch is refused with 400 and stores nothing, with or
    without a batch id; a retry of it is refused the same."""
    c = Client(srv, "empty", source="127.0.0.11")
    sid_row = addr_sql(srv, "SELECT max(id) FROM sessions")
    for batch in (None, "e1", "e1"):
        st, h, data = c.send_raw([], batch=batch)
        body = check_json_answer(st, h, data, 400, "an empty batch (batch=%s)" % batch)
        check("empty batch" in body.get("error", ""), "sentence: %s" % short(body))
    n = addr_sql(srv, "SELECT count(*) FROM batches WHERE session_id = ?", (sid_row,))
    check(n == 0, "%d batch ids stored for empty batches" % n)
    check(c.poll() == [], "an empty batch put something in the mailbox")
    c.send([{"id": "ping"}], batch="e1")  # the id was not taken by the refused ones
    c.expect({"id": "pong"})


def addr_test_batch_ids_bounded(srv):
    """100 batches with distinct ids: the session keeps its newest 64 ids
    and at most 96 (SQLite trims 32 at a time, PostgreSQL on every batch);
    a retry of a recent batch is still applied once."""
    c = Client(srv, "batches", source="127.0.0.12")
    sid_row = addr_sql(srv, "SELECT max(id) FROM sessions")
    for i in range(100):
        c.send([{"id": "ping"}], batch="b%d" % i)
    n = addr_sql(srv, "SELECT count(*) FROM batches WHERE session_id = ?", (sid_row,))
    check(64 <= n <= 96, "%d batch ids kept for the session, expected 64 to 96" % n)
    c.send([{"id": "ping"}], batch="b99")  # retries: answered ok, applied once
    c.send([{"id": "ping"}], batch="b40")
    got = c.collect(100, deadline=20)
    check(len(got) == 100 and all(strip_seq(m) == {"id": "pong"} for m in got),
          "100 distinct batches and two retries gave %d messages" % len(got))
    c.expect_nothing(1)


ADDR_GROUPS = [
    ({"procs": 1, "env": {"LONGCALL_ADDR_SESSIONS_PER_MIN": "10"}}, [
        ("address: one address over its session rate gets 429, others are served",
         addr_test_session_rate),
    ]),
    ({"procs": 1, "env": {"LONGCALL_ADDR_SESSIONS": "5"}}, [
        ("address: one address over its live sessions gets 429 until one ends",
         addr_test_live_sessions),
    ]),
    ({"procs": 2, "env": {"LONGCALL_ADDR_HELD": "3"}}, [
        ("address: one address over its held polls (2 processes) gets 429, others held",
         addr_test_held_polls),
    ]),
    # One process: spawn-fcgi -F (nginx, more processes) keeps no backend log to count lines in.
    # The first 5 sessions stay live (no expiry) however long the flood takes (CGI: minutes).
    ({"procs": 1, "env": {"LONGCALL_ADDR_SESSIONS_PER_MIN": "5", "LONGCALL_ADDR_SESSIONS": "5",
                          "LONGCALL_SESSION_EXPIRY": "3600"}}, [
        ("address: 10,000 refused session requests grow the database < 1 MiB, one log line a minute",
         addr_test_refused_flood),
    ]),
    ({"procs": 1, "env": {"LONGCALL_TRUSTED_PROXIES": "127.0.0.1",
                          "LONGCALL_ADDR_SESSIONS_PER_MIN": "3"}}, [
        ("address: X-Forwarded-For believed from a trusted proxy only", addr_test_trusted_proxy),
    ]),
    ({"procs": 1}, [
        ("address: empty batches are refused with 400 and store nothing", addr_test_empty_batch),
        ("address: batch ids kept per session are bounded (64)", addr_test_batch_ids_bounded),
    ]),
]



# ---- names: names taken over or imitated (issue 12, item 5) -----------------

NAMES_EXPIRY = 4     # LONGCALL_SESSION_EXPIRY here: a network drop of 4 s ends a session
NAMES_GRACE = 12     # LONGCALL_NAME_GRACE here (default 300)
NAMES_WAIT = 60      # bound on every wait of this section, seconds


def names_register(c, name, key=None):
    """Sends register (with the reclaim key when given) and returns the
    registerResponse, polling c (which keeps it alive) for it."""
    m = {"id": "register", "name": name}
    if key is not None:
        m["reclaim"] = key
    c.send(m)
    got = c.drain(lambda ms: any(x.get("id") == "registerResponse" for x in ms), deadline=20)
    return [x for x in got if x.get("id") == "registerResponse"][-1]


def names_drop_alice(srv):
    """alice registers and gets her key; then her network drops (she polls
    no more). Returns (key, bob, mallory), bob and mallory registered."""
    alice = Client(srv, "alice")
    r = names_register(alice, "alice")
    check(r.get("response") == "accepted" and isinstance(r.get("reclaim"), str)
          and len(r["reclaim"]) == 43, "alice's registerResponse has a key: %s" % short(r))
    bob, mallory = Client(srv, "bob"), Client(srv, "mallory")
    bob.register("bob")
    mallory.register("mallory")
    return r["reclaim"], bob, mallory


def names_wait_not_taken(mallory, others, key=None):
    """mallory tries to take "alice" every half second (the others poll to
    stay alive) until the answer is no longer "taken", within NAMES_WAIT.
    Returns that registerResponse."""
    end = time.monotonic() + NAMES_WAIT
    r = None
    for _ in range(NAMES_WAIT * 2):
        r = names_register(mallory, "alice", key)
        if r.get("reason") != "taken" or time.monotonic() > end:
            return r
        for o in others:
            o.poll(timeout=0)
        time.sleep(0.5)
    return r


def names_test_reserved(srv):
    key, bob, mallory = names_drop_alice(srv)
    r = names_wait_not_taken(mallory, [bob])
    check(r.get("response") == "rejected" and r.get("reason") == "reserved",
          "mallory, once alice's session expired, was not refused as reserved: %s" % short(r))
    r = names_register(mallory, "alice", "A" * 43)
    check(r.get("reason") == "reserved", "mallory with a made-up key: %s" % short(r))
    r = names_register(bob, "alice", "")
    check(r.get("reason") == "reserved", "bob with an empty key: %s" % short(r))
    # alice's network is back: a new session (the old one is gone) and her key.
    alice = Client(srv, "alice-again")
    r = names_register(alice, "alice", key)
    check(r.get("response") == "accepted" and isinstance(r.get("reclaim"), str)
          and r["reclaim"] != key, "alice with her key did not get her name back: %s" % short(r))
    bob.send({"id": "call", "to": "alice", "sdpOffer": "O"})
    got = alice.drain(lambda ms: any(x.get("id") == "incomingCall" for x in ms), deadline=20)
    call = [x for x in got if x.get("id") == "incomingCall"]
    check(call and call[0].get("from") == "bob", "bob's call did not reach alice: %s" % short(got))
    bob.send({"id": "stop"})
    r = names_register(mallory, "alice")
    check(r.get("reason") == "taken", "mallory after alice came back: %s" % short(r))


def names_test_grace_over(srv):
    key, bob, mallory = names_drop_alice(srv)
    r = names_wait_not_taken(mallory, [bob])
    check(r.get("reason") == "reserved", "mallory during the grace period: %s" % short(r))
    # mallory keeps trying; once the grace period is over the name is free.
    end = time.monotonic() + NAMES_WAIT
    seen = set()
    while r.get("response") != "accepted" and time.monotonic() < end:
        seen.add(r.get("reason"))
        time.sleep(1)
        bob.poll(timeout=0)
        r = names_register(mallory, "alice")
    check(r.get("response") == "accepted", "mallory never got the name after the grace: %s"
          % short(r))
    check(seen == {"reserved"}, "refusals before the grace ended: %s" % sorted(map(str, seen)))
    r = names_register(Client(srv, "alice-late"), "alice", key)
    check(r.get("reason") == "taken", "alice's old key after the grace: %s" % short(r))


def names_test_close_frees(srv):
    # Its own name: on this server "alice" is held by the previous test.
    carol = Client(srv, "carol")
    key = names_register(carol, "carol").get("reclaim")
    st, h, data = carol.close()
    check_json_answer(st, h, data, 200, "carol close")
    mallory = Client(srv, "mallory-2")
    r = names_register(mallory, "carol")
    check(r.get("response") == "accepted", "a closed session's name is not free: %s" % short(r))
    r = names_register(Client(srv, "carol-again"), "carol", key)
    check(r.get("reason") == "taken", "carol's key after her close: %s" % short(r))


NAMES_GROUPS = [
    ({"procs": 1, "env": {"LONGCALL_SESSION_EXPIRY": str(NAMES_EXPIRY), "LONGCALL_POLL_MAX": "2",
                          "LONGCALL_NAME_GRACE": "300"}}, [
        ("names: alice's network drops past the expiry; mallory is refused (reserved), "
         "alice's new session with her key has her name and bob's call", names_test_reserved),
        ("names: a closed session's name is free at once; its key is worth nothing",
         names_test_close_frees),
    ]),
    ({"procs": 1, "env": {"LONGCALL_SESSION_EXPIRY": str(NAMES_EXPIRY), "LONGCALL_POLL_MAX": "2",
                          "LONGCALL_NAME_GRACE": str(NAMES_GRACE)}}, [
        ("names: after LONGCALL_NAME_GRACE mallory can take an expired name, and the old key "
         "no longer reclaims it", names_test_grace_over),
    ]),
]



# ==== review: what needs no body is answered before the body is read =======

REVIEW_BODY = 1000000   # a Content-Length far over LONGCALL_MAX_BODY (64 KiB)


def review_headers_only(method, uri, host, length, keep=False):
    """A request's BEGIN (FCGI_KEEP_CONN with keep) and PARAMS records,
    announcing a body of length bytes that never comes (no STDIN record)."""
    params = b"".join(pair(k.encode(), v.encode()) for k, v in (
        ("REQUEST_METHOD", method), ("REQUEST_URI", uri), ("QUERY_STRING", ""),
        ("SCRIPT_NAME", uri), ("HTTP_HOST", host), ("CONTENT_TYPE", "application/json"),
        ("CONTENT_LENGTH", str(length)), ("REMOTE_ADDR", "127.0.0.1")))
    out = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 1 if keep else 0))
    return out + record(FCGI_PARAMS, params) + record(FCGI_PARAMS, b"")


def review_test_body_not_read(srv):
    """At the backend's FastCGI socket (the web servers buffer bodies
    themselves): requests that announce a 1 MB body and never send it --
    a foreign Host (421), an unknown endpoint (404), a wrong method (405) --
    are each answered at once, by a backend with 2 accept workers: were it
    reading those bodies, its workers would wait for them and nothing would
    be answered. (The backend then throws away what comes of the body
    without a thread, until the peer closes: no descriptor stays. A
    connection the peer asked to keep is closed at once instead: its next
    request must not be taken for the body.)"""
    path = backend_socket(srv)
    sessions = status(srv)["sessions"]
    fds0 = open_fds(srv)
    cases = [("POST", "/rtc/send", "%s:%d" % (REBOUND, srv.port), 421),
             ("POST", "/rtc/session", REBOUND, 421),
             ("POST", "/rtc/nothing", "127.0.0.1", 404),
             ("GET", "/rtc/send", "127.0.0.1", 405)] * 2
    peers = []
    try:
        for method, uri, host, want in cases:
            s = fcgi_connect(path)
            s.sendall(review_headers_only(method, uri, host, REVIEW_BODY))
            peers.append((s, "%s %s (Host %s)" % (method, uri, host), want))
        kept = fcgi_connect(path)
        kept.sendall(review_headers_only("POST", "/rtc/send", REBOUND, REVIEW_BODY, keep=True))
        peers.append((kept, "POST /rtc/send (Host %s, FCGI_KEEP_CONN)" % REBOUND, 421))
        for s, what, want in peers:
            s.settimeout(20)
            try:
                out = fcgi_read_answer(s)
                closed = s.recv(1) == b"" if s is kept else True
            except socket.timeout:
                raise AssertionError("%s with a 1 MB body announced and not sent: no answer "
                                     "(or, kept, no close) within 20 s (the backend waits for "
                                     "the body)" % what)
            check(("Status: %d" % want).encode() in out, "%s: expected %d, got %r"
                  % (what, want, out[:200]))
            check(closed, "%s: the connection stayed open" % what)
        # Nobody was kept waiting: status answers, and nothing was created.
        st = status(srv)
        check(st.get("ok") is True and st["sessions"] == sessions, "status after: %s" % st)
    finally:
        for s, _, _ in peers:
            s.close()
    deadline = time.monotonic() + 20
    while open_fds(srv) > fds0 and time.monotonic() < deadline:
        time.sleep(0.2)
    check(open_fds(srv) <= fds0, "backend descriptors %d after the peers left, %d before" % (
        open_fds(srv), fds0))


def review_test_refused_big_body(srv):
    """Through the web server: a foreign Host with a 200 KB body (over
    LONGCALL_MAX_BODY) gets the JSON 421 every time -- the backend answers
    without reading the body and must not make the web server see an
    error instead -- and an allowed one with a normal body still works."""
    big = b'[' + b'{"id":"ping"},' * (200000 // 14) + b'{"id":"ping"}]'
    for i in range(10):
        st, msg, data = raw(srv, "POST", "/rtc/send?sid=x", rebound_headers(srv, {
            "Content-Type": "application/json"}), body=big)
        check_refused(st, msg, data, "POST /rtc/send with a %d-byte body and Host %s (try %d)"
                      % (len(big), REBOUND, i + 1))
    c = Client(srv, "normal")
    c.send({"id": "ping"})
    c.expect({"id": "pong"})


GROUPS_REVIEW = [
    ({"env": {"LONGCALL_ALLOWED_HOSTS": HOSTS_ALLOWED, "LONGCALL_THREADS": "2"}}, [
        ("review: requests refused without a body (foreign Host, unknown endpoint, wrong "
         "method) are answered without waiting for it", review_test_body_not_read),
        ("review: a foreign Host with a body over the limit gets the 421 through the web "
         "server", review_test_refused_big_body),
    ]),
]


# ---- calls: ring-hogging and call floods (issue 12, item 3a) ---------------

CALLS_MALLORY = "127.0.0.5"   # mallory's one client address, 10 sessions on it
CALLS_SESSIONS = 10
# seconds the attack lasts: a minute in the integration stage; the other
# stages (tests/run-tests: ABUSE_CALLS_SECONDS) check the same bounds over
# a shorter attack, still past a ring time-out and a cooldown refusal
CALLS_ATTACK = int(os.environ.get("ABUSE_CALLS_SECONDS", "60"))
CALLS_ROUNDS = 600            # and at most this many rounds (a call and a batch each)
CALLS_RING = 6                # LONGCALL_RING_TIMEOUT here: mallory's rings end "no answer"
                              # (long enough for bob to answer alice on a loaded machine)
CALLS_COOLDOWN = 60           # LONGCALL_CALL_COOLDOWN's default
CALLS_WAIT = 90               # bound on alice's retries and every other wait, seconds
# The server's own call limits (an empty value is the default): the harness
# sets them out of the way of the other scripts.
CALLS_DEFAULTS = {"LONGCALL_CALL_RATE": "", "LONGCALL_CALL_PAIR_RATE": "",
                  "LONGCALL_CALL_COOLDOWN": "", "LONGCALL_MAX_BLOCKS": ""}
CALLS_RETRY = ("busy", "cooldown", "rate_limited", "no_answer")  # alice tries again on these


def calls_client(srv, name, source):
    c = Client(srv, name, source=source)
    c.register(name)
    return c


def calls_sql(srv, query, args=()):
    """One value from the server's database (either store)."""
    return srv.db_value(query, args)


def calls_attack(mallory, stop_at, stats):
    """Mallory's attack until stop_at (and at most CALLS_ROUNDS rounds): each
    round one of her first five sessions calls bob and never hangs up
    (ring-hogging), one of the other five sends [call, stop] x 32 (a flood
    of incomingCall and stopCommunication), and both read their mailboxes
    (as a real attacker must, or her own quota stops her). stats collects
    what she got."""
    half = CALLS_SESSIONS // 2
    for n in range(CALLS_ROUNDS):
        if time.monotonic() >= stop_at:
            break
        hog, flood = mallory[n % half], mallory[half + n % half]
        for c, body in ((hog, {"id": "call", "to": "bob", "sdpOffer": "HOG"}),
                        (flood, [{"id": "call", "to": "bob", "sdpOffer": "FLOOD"},
                                 {"id": "stop"}] * 32)):
            st, h, data = c.send_raw(body)
            stats["sends"] += 1
            if st != 200:
                stats["other"].append(st)
            for m in c.poll(timeout=0):
                if m.get("id") == "callResponse":
                    r = m.get("reason") or m.get("response")
                    stats["answers"][r] = stats["answers"].get(r, 0) + 1
                    if r in ("cooldown", "rate_limited") and not m.get("message"):
                        stats["other"].append("a %s refusal without a sentence" % r)
        stats["rounds"] += 1
        time.sleep(0.2)


def calls_test_ring_hogging(srv):
    """The issue's test. Mallory, 10 sessions on one address, rings bob and
    never hangs up, and floods him with [call, stop] x 32 batches, for 60 s.
    Meanwhile alice (another address) calls bob, trying again on busy or
    cooldown: bob sees her call, accepts, and the call is set up (she gets
    callResponse accepted, he startCommunication); then bob lists and calls
    carol, who answers. Bob's mailbox gets a bounded number of mallory's
    calls (each unanswered ring starts LONGCALL_CALL_COOLDOWN for every
    session of her address), and the log sums the refusals up."""
    bob = calls_client(srv, "bob", "127.0.0.20")
    alice = calls_client(srv, "alice", "127.0.0.21")
    carol = calls_client(srv, "carol", "127.0.0.22")
    mallory = [calls_client(srv, "mallory%d" % i, CALLS_MALLORY) for i in range(CALLS_SESSIONS)]
    names = {"mallory%d" % i for i in range(CALLS_SESSIONS)}
    stats = {"sends": 0, "rounds": 0, "answers": {}, "other": []}
    t0 = time.monotonic()
    attack = Background(calls_attack, mallory, t0 + CALLS_ATTACK, stats)
    time.sleep(2)  # the attack is under way: mallory's first ring holds bob
    end = time.monotonic() + CALLS_WAIT
    tries, reasons, calling, answered, started = 0, [], False, None, False
    while not (answered and started) and time.monotonic() < end:
        if not calling and not answered:
            alice.send({"id": "call", "to": "bob", "sdpOffer": "ALICE"})
            calling, tries = True, tries + 1
        for m in bob.poll(timeout=1):
            if m.get("id") == "incomingCall" and m.get("from") == "alice":
                bob.send({"id": "incomingCallResponse", "from": "alice",
                          "callResponse": "accept", "sdpOffer": "BOB"})
            elif m.get("id") == "startCommunication":
                started = True
            # mallory's calls: bob does nothing, they ring out (no answer)
        for m in alice.poll(timeout=0):
            if m.get("id") != "callResponse":
                continue
            if m.get("response") == "accepted":
                answered = m
                continue
            check(m.get("reason") in CALLS_RETRY, "alice's call refused: %s" % short(m))
            reasons.append(m.get("reason"))
            calling = False
            time.sleep(1)
    print("#   alice called %d times (refused: %s) within %.0f s of the attack's start; "
          "mallory's answers so far: %s; bob got: %s"
          % (tries, ", ".join(reasons) or "none", time.monotonic() - t0, stats["answers"],
             short([strip_seq(m) for m in bob.received], 600)), file=sys.stderr)
    check(answered and answered.get("sdpAnswer") == "BOB",
          "alice's call was not accepted (tries %d, refusals %s)" % (tries, reasons))
    check(started, "bob got no startCommunication")
    # bob can list and call out while the attack goes on.
    check(time.monotonic() < t0 + CALLS_ATTACK, "the attack was over before bob's turn")
    bob.send({"id": "list"})
    got = bob.drain(lambda ms: any(m.get("id") == "listResponse" for m in ms), deadline=20)
    lst = [m for m in got if m.get("id") == "listResponse"][-1].get("list", [])
    check({"alice", "bob", "carol"} <= set(lst), "bob's list: %s" % short(lst))
    bob.send({"id": "stop"})
    alice.drain(has("stopCommunication"), deadline=20)
    bob.send({"id": "call", "to": "carol", "sdpOffer": "BOB2"})
    got = carol.drain(has("incomingCall"), deadline=20)
    check([m.get("from") for m in got if m.get("id") == "incomingCall"] == ["bob"],
          "carol got %s" % short(got))
    carol.send({"id": "incomingCallResponse", "from": "bob", "callResponse": "accept",
                "sdpOffer": "CAROL"})
    got = bob.drain(lambda ms: any(m.get("id") == "callResponse" for m in ms), deadline=20)
    resp = [m for m in got if m.get("id") == "callResponse"][-1]
    check(resp.get("response") == "accepted", "bob's call to carol: %s" % short(resp))
    bob.send({"id": "stop"})
    attack.join(CALLS_ATTACK + CALLS_WAIT)
    elapsed = time.monotonic() - t0
    while bob.poll(timeout=0):  # what is left in bob's mailbox (bounded by its size)
        pass
    rings = [m for m in bob.received if m.get("id") == "incomingCall" and m.get("from") in names]
    stops = [m for m in bob.received if m.get("id") == "stopCommunication"]
    bound = 1 + int(elapsed // CALLS_COOLDOWN)
    print("#   mallory: %d rounds, %d sends in %.0f s; her callResponses: %s; bob got %d of her "
          "calls, %d stopCommunication in all" % (stats["rounds"], stats["sends"], elapsed,
                                                   stats["answers"], len(rings), len(stops)),
          file=sys.stderr)
    check(not stats["other"], "mallory's sends: %s" % short(stats["other"]))
    check(stats["rounds"] >= 10, "the attack made only %d rounds" % stats["rounds"])
    check(stats["answers"].get("no_answer", 0) >= 1, "no ring of mallory's ran out (no_answer): %s"
          % stats["answers"])
    check(stats["answers"].get("cooldown", 0) >= 1, "mallory was never refused with cooldown: %s"
          % stats["answers"])
    check(1 <= len(rings) <= bound, "bob's mailbox got %d of mallory's calls in %.0f s (at most "
          "%d expected: one per LONGCALL_CALL_COOLDOWN)" % (len(rings), elapsed, bound))
    check(len(stops) <= bound + 2, "bob got %d stopCommunication" % len(stops))
    lines = [ln for ln in srv.log_text().splitlines()
             if "client %s had a call refused by the call limits" % CALLS_MALLORY in ln]
    allowed = 2 + int(elapsed // 60)
    check(1 <= len(lines) <= allowed, "%d log lines about %s's refused calls in %.0f s (at most "
          "one a minute expected: %d)" % (len(lines), CALLS_MALLORY, elapsed, allowed))
    check(not any(c.sid in srv.log_text() for c in mallory + [bob]), "a session token is in the log")


def calls_test_block(srv):
    """bob rejects mallory's call with block: true: her next calls (also
    under a new name) are refused with reason blocked at once, and bob's
    mailbox gets nothing of them; alice still reaches bob. The block is a
    row of bob's session, gone when his session ends."""
    bob = calls_client(srv, "bob", "127.0.0.30")
    mallory = calls_client(srv, "mallory", "127.0.0.31")
    alice = calls_client(srv, "alice", "127.0.0.32")
    mallory.send({"id": "call", "to": "bob", "sdpOffer": "M1"})
    bob.expect({"id": "incomingCall", "from": "mallory", "offer": "M1"})
    bob.send({"id": "incomingCallResponse", "from": "mallory", "callResponse": "reject",
              "block": True})
    mallory.expect({"id": "callResponse", "response": "rejected", "message": "*",
                    "reason": "rejected"})
    bob_sid = calls_sql(srv, "SELECT id FROM sessions WHERE name = 'bob' AND ended IS NULL")
    n = calls_sql(srv, "SELECT count(*) FROM blocks WHERE session_id = ?", (bob_sid,))
    check(n == 1, "%d block rows for bob's session" % n)
    mallory.send({"id": "call", "to": "bob", "sdpOffer": "M2"})
    got = mallory.expect({"id": "callResponse", "response": "rejected", "message": "*",
                          "reason": "blocked"})
    mallory.register("mallory-renamed")
    mallory.send([{"id": "call", "to": "bob", "sdpOffer": "M3"}, {"id": "stop"}])
    mallory.expect({"id": "callResponse", "response": "rejected", "message": "*",
                    "reason": "blocked"})
    bob.expect_nothing(1)
    msgs = calls_sql(srv, "SELECT count(*) FROM messages WHERE session_id = ? AND type = "
                     "'incomingCall'", (bob_sid,))
    check(msgs == 1, "bob's mailbox holds %d incomingCall rows, expected mallory's first" % msgs)
    print("#   mallory, blocked, was told: %s" % got[0].get("message"), file=sys.stderr)
    alice.send({"id": "call", "to": "bob", "sdpOffer": "A1"})
    bob.expect({"id": "incomingCall", "from": "alice", "offer": "A1"})
    st, h, data = bob.close()
    check_json_answer(st, h, data, 200, "bob's close")
    n = calls_sql(srv, "SELECT count(*) FROM blocks WHERE session_id = ?", (bob_sid,))
    check(n == 0, "%d block rows left after bob's session ended" % n)


CALLS_GROUPS = [
    # One process: spawn-fcgi -F (nginx, more processes) keeps no backend log to count lines in.
    ({"procs": 1, "env": dict(CALLS_DEFAULTS, LONGCALL_RING_TIMEOUT=str(CALLS_RING))}, [
        ("calls: mallory (10 sessions, one address) rings bob and floods him with [call, stop] "
         "x 32 for 60 s; alice's call is set up, bob lists and calls out", calls_test_ring_hogging),
    ]),
    ({"procs": 1, "env": dict(CALLS_DEFAULTS)}, [
        ("calls: reject and block: mallory's next calls are refused (blocked), bob gets nothing",
         calls_test_block),
    ]),
]


# ---- flood: mailbox flooding (issue 12, item 3b) ----------------------------

FLOOD_QUOTA = 200      # LONGCALL_MAILBOX_QUOTA here (default 1000)
FLOOD_SHARE = 10       # LONGCALL_MAILBOX_SHARE here (default a quarter of the quota)
FLOOD_SESSIONS = 10    # mallory's sessions
FLOOD_ROUNDS = 40      # attacking requests per session and kind, at most
FLOOD_SECONDS = 240    # bound on the whole attack
FLOOD_SOURCE = "127.0.0.10"


def flood_kinds(victim):
    """Every message kind a stranger can put in victim's mailbox, as the
    batches that do it (each leaves the victim free for the next call):
    incomingCall, iceCandidate, startCommunication (answer while ringing),
    stopCommunication; then the issue's [call, stop] x 32."""
    call = {"id": "call", "to": victim, "sdpOffer": "x" * 200}
    ice = {"id": "onIceCandidate", "candidate": {"candidate": "y" * 200}}
    stop = {"id": "stop"}
    return [("call+ice+answer+stop", [call, ice, {"id": "answer", "sdp": "z"}, stop]),
            ("call+ice*4+stop", [call] + [ice] * 4 + [stop]),
            ("call+stop", [call, stop]),
            ("[call, stop] x 32", [call, stop] * 32)]


def flood_attack(srv, victim, nsessions):
    """mallory's nsessions sessions (from FLOOD_SOURCE) each send every kind
    of flood_kinds(victim) until refused, bounded in requests and time.
    Returns (sessions, refusals: [(session index, status, body)], accepted
    requests)."""
    mallory = []
    for i in range(nsessions):
        m = Client(srv, "mallory%d" % i, source=FLOOD_SOURCE)
        m.register("mallory%d" % i)
        mallory.append(m)
    end = time.monotonic() + FLOOD_SECONDS
    refusals, accepted = [], 0
    for i, m in enumerate(mallory):
        for kind, batch in flood_kinds(victim):
            for _ in range(FLOOD_ROUNDS):
                check(time.monotonic() < end, "the flood did not end in %d s" % FLOOD_SECONDS)
                st, h, data = m.send_raw(batch)
                if st == 200:
                    accepted += 1
                    continue
                body = check_json_answer(st, h, data, 429, "mallory%d's %s" % (i, kind))
                ra = h.get("retry-after", "")
                check(ra.isdigit() and int(ra) >= 1, "mallory%d's 429: Retry-After %r" % (i, ra))
                refusals.append((i, kind, body))
                break
    return mallory, refusals, accepted


def flood_from_mallory(srv, victim_sid):
    """{sender session id: unacknowledged messages} in the victim's mailbox,
    of sender sessions registered as mallory*, read from the database."""
    rows = srv.db_query(
        "SELECT m.sender_sid, count(*) FROM messages m JOIN sessions s ON s.id = m.sender_sid"
        " WHERE m.session_id = ? AND m.seq > (SELECT acked FROM sessions WHERE id = ?)"
        " AND s.name LIKE 'mallory%' GROUP BY m.sender_sid", (victim_sid, victim_sid))
    return dict(rows)


def flood_sid_of(srv, name):
    return addr_sql(srv, "SELECT id FROM sessions WHERE name = ? AND ended IS NULL", (name,))


def flood_bob_reads(bob, want_alice=True):
    """bob finally polls his whole mailbox: returns the messages."""
    def done(ms):
        ids = [x.get("id") for x in ms]
        return "pong" in ids and "listResponse" in ids and (
            not want_alice or any(x.get("id") == "incomingCall" and x.get("from") == "alice"
                                  for x in ms))
    return bob.drain(done, deadline=60)


def flood_test_share(srv):
    """mallory's 10 sessions flood bob (registered, not reading) with every
    kind of message a stranger can send him, until each is refused with 429
    mailbox_share: none holds more than its share of bob's mailbox, bob's
    own ping and list are answered, alice's call reaches him, and the log
    says it in at most a line a minute."""
    bob, alice = Client(srv, "bob"), Client(srv, "alice")
    bob.register("bob")
    alice.register("alice")
    t0 = time.monotonic()
    mallory, refusals, accepted = flood_attack(srv, "bob", FLOOD_SESSIONS)
    elapsed = time.monotonic() - t0
    print("#   flood: %d batches accepted, %d refused in %.0f s" % (
        accepted, len(refusals), elapsed), file=sys.stderr)
    share = [r for r in refusals if r[2].get("reason") == "mailbox_share"]
    check(len({r[0] for r in share}) == FLOOD_SESSIONS,
          "every mallory session should have been refused over its share; refusals: %s"
          % short([(r[0], r[1], r[2].get("reason")) for r in refusals]))
    check(all("bob's mailbox holds too many of your messages" in r[2]["error"] for r in share),
          "the sentence of a share refusal: %s" % short(share[0][2] if share else None))
    check(all(r[2].get("reason") == "mailbox_share" for r in refusals),
          "refusals other than mailbox_share: %s" % short(
              [r[2] for r in refusals if r[2].get("reason") != "mailbox_share"]))
    per = flood_from_mallory(srv, flood_sid_of(srv, "bob"))
    check(len(per) == FLOOD_SESSIONS and all(1 <= n <= FLOOD_SHARE for n in per.values()),
          "mallory's messages in bob's mailbox per session: %s (share %d)"
          % (sorted(per.values()), FLOOD_SHARE))
    # bob's own requests and alice's call are served.
    bob.send([{"id": "ping"}, {"id": "list"}])
    alice.send({"id": "call", "to": "bob", "sdpOffer": "alice's offer"})
    got = flood_bob_reads(bob)
    calls = [x for x in got if x.get("id") == "incomingCall" and x.get("from") == "alice"]
    check(len(calls) == 1 and calls[0].get("offer") == "alice's offer",
          "bob got alice's call as %s" % short(calls))
    lst = [x for x in got if x.get("id") == "listResponse"]
    check(lst and "alice" in lst[0].get("list", []), "bob's list: %s" % short(lst))
    strangers = [x for x in got if x.get("id") in ("incomingCall", "iceCandidate",
                                                     "startCommunication", "stopCommunication")
                 and x.get("from") != "alice"]
    check(len(strangers) <= FLOOD_SESSIONS * FLOOD_SHARE,
          "bob's mailbox held %d of mallory's messages (at most %d x %d)"
          % (len(strangers), FLOOD_SESSIONS, FLOOD_SHARE))
    check(len(strangers) == sum(per.values()), "bob read %d of mallory's messages, the database "
          "held %d" % (len(strangers), sum(per.values())))
    # Once bob has read them, mallory may send again (her share is free).
    bob.poll(timeout=0)  # acknowledges what he read
    mallory[0].send({"id": "call", "to": "bob", "sdpOffer": "again"})
    flood_log_check(srv, "LONGCALL_MAILBOX_SHARE", time.monotonic() - t0)


def flood_log_check(srv, setting, elapsed):
    """The refusals are in the log as at most one line a minute for mallory's
    address (when this front end keeps the backend's log)."""
    text = srv.log_text()
    if not BACKEND_LOG.search(text):
        return  # spawn-fcgi -F (nginx) keeps no backend log; the count is checked elsewhere
    lines = [ln for ln in text.splitlines()
             if "client %s is over %s" % (FLOOD_SOURCE, setting) in ln]
    allowed = 2 + int(elapsed // 60)
    check(1 <= len(lines) <= allowed, "%d log lines about %s over %s in %.0f s (at most one a "
          "minute expected: %d)" % (len(lines), FLOOD_SOURCE, setting, elapsed, allowed))


def flood_test_full(srv):
    """More of mallory's sessions than the quota holds shares (quota 40,
    share 10, 10 sessions): bob's mailbox fills to the quota and then
    refuses every stranger, alice included (429 mailbox_full: the quota
    still bounds the mailbox), but bob's own ping and list are answered,
    and once bob reads, alice's call gets through."""
    bob, alice = Client(srv, "bob"), Client(srv, "alice")
    bob.register("bob")
    alice.register("alice")
    # bob's acknowledgement of his registerResponse is deferred (written
    # 50 ms later, deleting that transient row): written in the middle of
    # the attack it would free a slot after mallory's last try and leave
    # room for two. Wait for it, so that the attack fills the mailbox.
    deadline = time.monotonic() + 10
    while (addr_sql(srv, "SELECT acked FROM sessions WHERE name = 'bob' AND ended IS NULL")
           < bob.cursor and time.monotonic() < deadline):
        time.sleep(0.05)
    t0 = time.monotonic()
    mallory, refusals, accepted = flood_attack(srv, "bob", FLOOD_SESSIONS)
    reasons = {r[2].get("reason") for r in refusals}
    check("mailbox_full" in reasons and reasons <= {"mailbox_full", "mailbox_share"},
          "refusal reasons: %s" % sorted(map(str, reasons)))
    per = flood_from_mallory(srv, flood_sid_of(srv, "bob"))
    check(sum(per.values()) <= 40 and all(n <= 10 for n in per.values()),
          "mallory's messages in bob's mailbox: %s" % sorted(per.values()))
    # [call, stop]: two messages for bob. The attack leaves room for at most
    # one (its smallest batch is two): two never fit.
    st, h, data = alice.send_raw([{"id": "call", "to": "bob", "sdpOffer": "alice's offer"},
                                  {"id": "stop"}], batch="alice-full")
    body = check_json_answer(st, h, data, 429, "alice's call to a full mailbox")
    check(body.get("reason") == "mailbox_full" and "bob's mailbox is full" in body["error"],
          "alice's refusal: %s" % short(body))
    bob.send([{"id": "ping"}, {"id": "list"}])  # never refused for the others' messages
    got = flood_bob_reads(bob, want_alice=False)
    check(len([x for x in got if x.get("id") == "pong"]) == 1, "bob's pong: %s" % short(got))
    bob.poll(timeout=0)  # bob has read it all: acknowledged
    alice.send({"id": "call", "to": "bob", "sdpOffer": "alice's offer"}, batch="alice-call")
    got = bob.drain(lambda ms: any(x.get("id") == "incomingCall" for x in ms), deadline=20)
    check([x.get("from") for x in got if x.get("id") == "incomingCall"] == ["alice"],
          "after bob read his mailbox alice's call: %s" % short(got))
    # the first refusals were over the share: the one line of the minute names it
    flood_log_check(srv, "LONGCALL_MAILBOX_", time.monotonic() - t0)


# Parked writers (review finding): answers waiting for a slow reader count
# per client address (LONGCALL_ADDR_WRITERS per process).

FLOOD_WRITERS = 8        # LONGCALL_ADDR_WRITERS here (default 16)
FLOOD_SLOW = 24          # slow readers of the attacking address
FLOOD_SLOW_OTHER = 4     # slow readers of another address (served whole)


def flood_fcgi_poll(sid, remote):
    """The records of a poll for sid's whole mailbox (after=0, answered at
    once) as a web server writes them for a client at address remote."""
    query = "sid=%s&after=0&timeout=0" % sid
    params = b"".join(pair(k.encode(), v.encode()) for k, v in (
        ("REQUEST_METHOD", "GET"), ("REQUEST_URI", "/rtc/poll?" + query),
        ("QUERY_STRING", query), ("SCRIPT_NAME", "/rtc/poll"), ("HTTP_HOST", "127.0.0.1"),
        ("CONTENT_LENGTH", "0"), ("REMOTE_ADDR", remote)))
    out = record(FCGI_BEGIN_REQUEST, struct.pack(">HB5x", 1, 0))
    return out + record(FCGI_PARAMS, params) + record(FCGI_PARAMS, b"") + record(FCGI_STDIN, b"")


def flood_read_whole(s):
    """1 when s gives a complete 200 answer with the 4 big messages, else 0
    (the backend closed it before the end)."""
    try:
        out = fcgi_read_answer(s)
    except (AssertionError, OSError):
        return 0
    return int(b"Status: 200" in out and out.count(b'"iceCandidate"') == 4)


def flood_test_slow_writers(srv):
    """24 slow readers at one address (127.0.0.11) ask for a 240 KB answer
    each and do not read: at most LONGCALL_ADDR_WRITERS=8 of those answers
    wait in the backend (LONGCALL_WRITE_TIMEOUT is 600 s here: the others
    are dropped at once, counted in dropped_slow); 4 slow readers at another
    address (127.0.0.12) get their whole answers, and two users relay
    messages meanwhile."""
    path = backend_socket(srv)
    x, y = call_pair(srv, "bigsender", "bigmailbox")
    for k in range(4):
        x.send({"id": "onIceCandidate", "candidate": {"candidate": str(k) * 60000}})
    alice, bob = call_pair(srv, "alice", "bob")
    dropped0 = status(srv).get("dropped_slow", 0)
    mine, other = [], []
    try:
        for _ in range(FLOOD_SLOW):
            s = fcgi_connect(path, rcvbuf=4096)
            s.sendall(flood_fcgi_poll(y.qsid(), "127.0.0.11"))
            mine.append(s)
        wait_status(srv, lambda st: st.get("dropped_slow", 0) - dropped0 >= FLOOD_SLOW - FLOOD_WRITERS,
                    "%d of 127.0.0.11's answers dropped beyond LONGCALL_ADDR_WRITERS=%d" % (
                        FLOOD_SLOW - FLOOD_WRITERS, FLOOD_WRITERS), deadline=60)
        for _ in range(FLOOD_SLOW_OTHER):
            s = fcgi_connect(path, rcvbuf=4096)
            s.sendall(flood_fcgi_poll(y.qsid(), "127.0.0.12"))
            other.append(s)
        relay_times(alice, bob, 10, "during")
        whole_other = sum(flood_read_whole(s) for s in other)
        check(whole_other == FLOOD_SLOW_OTHER, "127.0.0.12's slow readers got %d whole answers "
              "of %d" % (whole_other, FLOOD_SLOW_OTHER))
        whole_mine = sum(flood_read_whole(s) for s in mine)
        check(whole_mine == FLOOD_WRITERS, "127.0.0.11's slow readers got %d whole answers, "
              "expected the %d that could wait" % (whole_mine, FLOOD_WRITERS))
        dropped = status(srv).get("dropped_slow", 0) - dropped0
        check(dropped == FLOOD_SLOW - FLOOD_WRITERS, "%d answers dropped, expected %d"
              % (dropped, FLOOD_SLOW - FLOOD_WRITERS))
    finally:
        for s in mine + other:
            s.close()
    got = y.collect(4, deadline=20)
    check(len(got) == 4, "the big mailbox after the attack: %d messages" % len(got))
    text = srv.log_text()
    if BACKEND_LOG.search(text):
        lines = [ln for ln in text.splitlines()
                 if "client 127.0.0.11 has LONGCALL_ADDR_WRITERS" in ln]
        check(1 <= len(lines) <= 2, "%d log lines about 127.0.0.11's slow readers" % len(lines))


FLOOD_GROUPS = [
    # One process: the log line is counted in the backend's log.
    ({"procs": 1, "env": {"LONGCALL_MAILBOX_QUOTA": str(FLOOD_QUOTA),
                          "LONGCALL_MAILBOX_SHARE": str(FLOOD_SHARE)}}, [
        ("flood: mallory's 10 sessions each get only their share of bob's mailbox; bob's "
         "ping and list are answered, alice's call reaches him", flood_test_share),
    ]),
    ({"procs": 1, "env": {"LONGCALL_MAILBOX_QUOTA": "40",
                          "LONGCALL_MAILBOX_SHARE": str(FLOOD_SHARE)}}, [
        ("flood: a mailbox filled by many senders refuses strangers (mailbox_full), never "
         "its owner's own replies", flood_test_full),
    ]),
    ({"procs": 1, "env": {"LONGCALL_ADDR_WRITERS": str(FLOOD_WRITERS),
                          "LONGCALL_WRITE_TIMEOUT": "600"}}, [
        ("flood: answers waiting for one address's slow readers are bounded "
         "(LONGCALL_ADDR_WRITERS); another address's are served", flood_test_slow_writers),
    ]),
]


# ---- turn: the iceServers message (issue 13) ---------------------------------

TURN_SECRET = "abuse-turn-secret-51c2"
TURN_BATCH = 64        # iceServers per attacking request (LONGCALL_MAX_BATCH)
TURN_REQUESTS = 100    # attacking requests in a row
TURN_RATE = 10         # LONGCALL_ICE_RATE's default


def turn_test_ice_flood(srv):
    attacker = Client(srv, "attacker")
    batch = [{"id": "iceServers"}] * TURN_BATCH
    start, _ = db_size(srv)
    worst = worst_wal = 0
    got = []
    t0 = time.monotonic()
    end = t0 + 300
    for i in range(TURN_REQUESTS):
        check(time.monotonic() < end, "100 requests took over 300 s")
        before, wal0 = db_size(srv)
        st, h, data = attacker.send_raw(batch)
        after, wal1 = db_size(srv)
        check(st == 200, "request %d answered %d %s" % (i, st, short(data)))
        worst = max(worst, after - before)
        worst_wal = max(worst_wal, wal1 - wal0)
        got += attacker.poll(timeout=0)
    for _ in range(50):  # the rest, and acknowledges the last answers
        more = attacker.poll(timeout=0)
        got += more
        if not more:
            break
    elapsed = time.monotonic() - t0
    total = db_size(srv)[0] - start
    answers = [m for m in got if m.get("id") == "iceServers"]
    errors = [m.get("reason") for m in got if m.get("id") == "error"]
    print("# iceServers attack: %d requests of %d in %.0f s: %d answers, %d ice_servers_once, "
          "%d rate_limited; database growth at most %d bytes per request, %d for all; WAL file "
          "growth at most %d bytes per request" % (
              TURN_REQUESTS, TURN_BATCH, elapsed, len(answers), errors.count("ice_servers_once"),
              errors.count("rate_limited"), worst, total, worst_wal), flush=True)
    check(worst <= ONE_REQUEST, "one request grew the database by %d bytes" % worst)
    check(worst_wal <= ONE_REQUEST, "one request grew the WAL file by %d bytes" % worst_wal)
    check(total <= HUNDRED, "100 requests grew the database by %d bytes" % total)
    check(errors.count("ice_servers_once") == TURN_REQUESTS * (TURN_BATCH - 1),
          "%d ice_servers_once errors" % errors.count("ice_servers_once"))
    check(len(answers) + errors.count("rate_limited") == TURN_REQUESTS,
          "%d answers and %d rate_limited for %d batches" % (
              len(answers), errors.count("rate_limited"), TURN_REQUESTS))
    allowed = TURN_RATE + int(elapsed / (60 / TURN_RATE)) + 1  # the burst, then one per 6 s
    check(0 < len(answers) <= allowed, "%d answers in %.0f s (LONGCALL_ICE_RATE %d: at most %d)"
          % (len(answers), elapsed, TURN_RATE, allowed))
    check(all(len(m["iceServers"]) == 1 and m["iceServers"][0]["username"] for m in answers),
          "an answer without the credential: %s" % short(answers[:1]))
    # Acknowledgements are written in batches (README, "Architecture"):
    # the rows go within a few seconds.
    kept_end = time.monotonic() + 10
    while True:
        kept = srv.db_value("SELECT count(*) FROM messages m JOIN sessions s ON s.id ="
                            " m.session_id WHERE s.id = (SELECT max(id) FROM sessions)"
                            " AND m.seq <= s.acked AND m.type IN ('iceServers', 'error')")
        acked = srv.db_value("SELECT acked FROM sessions WHERE id = (SELECT max(id) FROM"
                             " sessions)")
        if (kept == 0 and acked >= attacker.cursor) or time.monotonic() > kept_end:
            break
        time.sleep(0.2)
    check(acked >= attacker.cursor, "acknowledged seq %s, the attacker read up to %d" % (
        acked, attacker.cursor))
    check(kept == 0, "%d acknowledged iceServers answers and errors kept" % kept)
    text = srv.log_text()
    lines = [ln for ln in text.splitlines() if "had an iceServers refused" in ln]
    most = 2 * (int(elapsed / 60) + 2)
    if BACKEND_LOG.search(text):  # (spawn-fcgi -F keeps no backend log)
        check(1 <= len(lines) <= most, "%d 'had an iceServers refused' log lines (at most %d): %s"
              % (len(lines), most, short(lines, 600)))
    check(attacker.sid not in text and TURN_SECRET not in text, "a token or the secret in the log")
    # Another session of the same address has its own allowance.
    other = Client(srv, "other")
    other.send({"id": "iceServers"})
    mine = other.collect(1, deadline=10)
    check(len(mine) == 1 and mine[0].get("id") == "iceServers",
          "another session's iceServers: %s" % short(mine))


TURN_GROUPS = [
    ({"env": {"LONGCALL_TURN_SECRET": TURN_SECRET, "LONGCALL_TURN_URIS": "turn:127.0.0.1:3478"}}, [
        ("turn: 100 batches of 64 iceServers get one answer per batch, LONGCALL_ICE_RATE a "
         "minute, bounded database growth, a summarised log; another session is served",
         turn_test_ice_flood),
    ]),
]


# ---- the list of tests: one section per part ---------------------------------

SECTIONS = {"list": GROUPS_LIST, "hosts": GROUPS_HOSTS, "slow": GROUPS_SLOW, "addr": ADDR_GROUPS,
            "names": NAMES_GROUPS, "calls": CALLS_GROUPS, "review": GROUPS_REVIEW,
            "flood": FLOOD_GROUPS, "turn": TURN_GROUPS}
# ABUSE_SECTIONS="hosts addr" runs only those sections (tests/run-tests does
# behind CGI, where the others are the same backend rules run elsewhere).
_only = os.environ.get("ABUSE_SECTIONS", "").split()
GROUPS = [g for name, gs in SECTIONS.items() if not _only or name in _only for g in gs]


def main():
    t = Runner("abuse")
    t.plan(Runner.count(GROUPS))
    for g in GROUPS:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
