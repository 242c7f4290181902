#!/usr/bin/env python3
"""Abuse tests (issue 12): each performs an attack for real and asserts what
the victim experiences. Runs behind every front end (LONGCALL_TEST_SERVER)
and under the sanitized backend (LONGCALL_TEST_BIN).

Sections, one per part of the issue (each keeps its own functions and its
own entries in GROUPS):
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
"""
import concurrent.futures
import json
import os
import sqlite3
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from lcclient import Client, Runner, check, check_json_answer, short  # noqa: E402

# ---- list: list amplification (issue 12, item 1) ----------------------------

LIST_NAMES = 2000          # registered names (the figure)
LIST_BATCH = 64            # lists per attacking request (LONGCALL_MAX_BATCH)
LIST_REQUESTS = 100        # attacking requests in a row
LIST_MAX = 100             # LONGCALL_LIST_MAX's default
ONE_REQUEST = 64 * 1024    # what one request may make the database grow by
HUNDRED = 1024 * 1024      # and 100 of them


def list_name(i):
    """A 64-byte name, the longest there is: the worst case for a list."""
    return ("user-%04d-" % i).ljust(64, "x")


def db_path(srv):
    return os.path.join(srv.state, "longcall.db")


def db_size(srv):
    """(page_count * page_size, WAL file bytes): the database's size as
    SQLite sees it (pages still in the WAL included), and the WAL file's."""
    con = sqlite3.connect(db_path(srv), timeout=10)
    try:
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        size = con.execute("PRAGMA page_size").fetchone()[0]
    finally:
        con.close()
    wal = db_path(srv) + "-wal"
    return pages * size, os.path.getsize(wal) if os.path.exists(wal) else 0


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
    con = sqlite3.connect(db_path(srv), timeout=10)
    try:
        kept = con.execute("SELECT count(*) FROM messages m JOIN sessions s ON s.id = m.session_id"
                           " WHERE s.id = (SELECT max(id) FROM sessions) AND m.seq <= s.acked"
                           " AND m.type IN ('listResponse', 'error')").fetchone()[0]
    finally:
        con.close()
    print("# acknowledged listResponse/error rows kept for the reading attacker: %d" % kept,
          flush=True)
    check(kept == 0, "%d acknowledged list answers and errors kept as history" % kept)
    # The log summarises the refusals: at most a line a minute per process.
    # (Plain CGI: a process per request, each with its own summary.)
    lines = [ln for ln in srv.log_text().splitlines() if "list limits:" in ln]
    most = (len(srv.backend_pids()) or 1) * (int(srv.list_attack_s * 2 / 60) + 2)
    if srv.kind == "cgi":
        most = 2 * LIST_REQUESTS
    check(1 <= len(lines) <= most, "%d 'list limits' log lines (at most %d)" % (len(lines), most))
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

# ---- the list of tests: one section per part ---------------------------------

GROUPS = GROUPS_LIST


def main():
    t = Runner("abuse")
    t.plan(Runner.count(GROUPS))
    for g in GROUPS:
        t.group(*g)
    t.done()


if __name__ == "__main__":
    main()
