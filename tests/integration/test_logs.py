#!/usr/bin/env python3
"""The log (issue 16, "Logs"): one event a line, logfmt by default and JSON
lines with LONGCALL_LOG_FORMAT=json, read back from the real server's log
(the front end's error log or the backend's stderr) after known traffic --
sessions, a call answered and hung up, a close, an expiry with short
settings, one address over LONGCALL_ADDR_SESSIONS_PER_MIN 500 times:

- every longcall line parses with a strict logfmt parser (or as one JSON
  object), `time=` first (RFC 3339 UTC, milliseconds), then level, event,
  the fields, pid and msg;
- session_created / session_closed / session_expired / call_started /
  call_answered / call_ended name the sessions and calls rows (ids and
  outcome compared with the database), the client address key as addr.c
  computes it (the sessions row's addr);
- no sid token in the log;
- the 500 refusals give at most one limit_hit line per minute, with a count;
- a hostile Host (newline, quotes, `=`, `event=forged`, a bad UTF-8 byte)
  stays inside msg: the line is one line, its fields are the backend's;
- under a JOURNAL_STREAM that names the backend's stderr (a wrapper sets it
  from its own fd 2, as systemd would) lines carry no time=; under one that
  does not, they do."""
import json
import os
import re
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import BIN  # noqa: E402
from lcclient import Client, Runner, call_pair, check, short, wait_until  # noqa: E402

LEVELS = ("error", "warn", "info", "debug")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")
KEY = re.compile(r"[a-z_][a-z0-9_]*")
BARE = re.compile(r'[^\s="\\]+')
EVENT = re.compile(r"[a-z][a-z_]*\Z")
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t"}
# Where a longcall line starts in a log that may mix in the front end's own
# lines (or prefix ours).
LOGFMT_START = re.compile(r"(?:^|(?<=\s))(?:time=\S+ )?level=\S+ event=")
JSON_START = re.compile(r'\{"(?:time|level)":')

SHORT = {"LONGCALL_SESSION_EXPIRY": "4", "LONGCALL_POLL_MAX": "2", "LONGCALL_POLL_TIMEOUT": "2",
         "LONGCALL_ADDR_SESSIONS_PER_MIN": "8"}
FLOOD = 500          # session requests from one address
FLOOD_ADDR = "127.0.0.2"
HOSTILE = 'evil"\n level=error event=forged x="y\\ \x01\xff'


def parse_logfmt(s):
    """Strict logfmt: key=value pairs separated by one space; a value bare
    (no space, '=', '"' or '\\') or double-quoted with the escapes \\" \\\\ \\n
    \\r \\t \\uXXXX and no raw control character; no key twice. Returns
    (keys in order, dict). Raises ValueError."""
    keys, fields, i, n = [], {}, 0, len(s)
    while i < n:
        m = KEY.match(s, i)
        if not m:
            raise ValueError("no key at %d: %r" % (i, s[i:i + 20]))
        k, i = m.group(), m.end()
        if i >= n or s[i] != "=":
            raise ValueError("key %s without =" % k)
        i += 1
        if i < n and s[i] == '"':
            i += 1
            v = []
            while True:
                if i >= n:
                    raise ValueError("unterminated value of %s" % k)
                c = s[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    e = s[i + 1:i + 2]
                    if e in ESCAPES:
                        v.append(ESCAPES[e])
                        i += 2
                    elif e == "u" and re.fullmatch(r"[0-9a-f]{4}", s[i + 2:i + 6]):
                        v.append(chr(int(s[i + 2:i + 6], 16)))
                        i += 6
                    else:
                        raise ValueError("bad escape in %s: %r" % (k, s[i:i + 6]))
                elif ord(c) < 0x20 or c == "\x7f":
                    raise ValueError("raw control character in %s" % k)
                else:
                    v.append(c)
                    i += 1
            val = "".join(v)
        else:
            m = BARE.match(s, i)
            if not m:
                raise ValueError("empty bare value of %s" % k)
            val, i = m.group(), m.end()
        if k in fields:
            raise ValueError("key %s twice" % k)
        keys.append(k)
        fields[k] = val
        if i < n:
            if s[i] != " " or i + 1 >= n:
                raise ValueError("expected one space between fields at %d" % i)
            i += 1
    return keys, fields


def check_shape(keys, f, want_time, line):
    """The fields every line has, in order: [time], level, event; pid; msg."""
    head = ["time", "level", "event"] if want_time else ["level", "event"]
    check(keys[:len(head)] == head, "line starts %s, expected %s: %s" % (keys[:3], head,
                                                                          short(line)))
    if want_time:
        check(TIME.match(str(f["time"])), "time is not RFC 3339 UTC with ms: %s" % short(line))
    check(f["level"] in LEVELS, "bad level: %s" % short(line))
    check(EVENT.match(str(f["event"])), "event is not snake_case: %s" % short(line))
    check("msg" in f and "pid" in f, "no msg or pid: %s" % short(line))
    check(str(f["pid"]).isdigit() and int(f["pid"]) > 0, "bad pid: %s" % short(line))


def longcall_lines(text, fmt="logfmt"):
    """The longcall lines of a log: [(line, keys, fields)]. A line that looks
    like one (level= event= / {"level":) and does not parse fails."""
    out = []
    for ln in text.splitlines():
        if fmt == "json":
            m = JSON_START.search(ln)
            if not m:
                check('"event"' not in ln, "a line with an event is not JSON: %s" % short(ln))
                continue
            try:
                obj = json.loads(ln[m.start():])
            except ValueError as e:
                raise AssertionError("not one JSON object (%s): %s" % (e, short(ln)))
            check(isinstance(obj, dict), "not an object: %s" % short(ln))
            out.append((ln, list(obj), obj))
        else:
            m = LOGFMT_START.search(ln)
            if not m:
                check(" event=" not in ln, "a line with an event does not parse: %s" % short(ln))
                continue
            try:
                keys, f = parse_logfmt(ln[m.start():])
            except ValueError as e:
                raise AssertionError("not logfmt (%s): %s" % (e, short(ln)))
            out.append((ln, keys, f))
    return out


def events(lines, name):
    return [f for _, _, f in lines if f.get("event") == name]


def as_int(v):
    return int(v) if v is not None else None


# ---- the traffic -----------------------------------------------------------

def minute_of(t):
    """The minute of monotonic time t as the wake file's log memo counts
    them (fcgi/wake.c log_due: CLOCK_MONOTONIC seconds / 60, which Python's
    time.monotonic reads too)."""
    return int(t // 60)


def flood(srv, state, n, until):
    """Up to n session requests from FLOOD_ADDR before monotonic time until;
    returns how many were refused 429."""
    refused = 0
    for _ in range(n):
        if time.monotonic() >= until:
            break
        st, _, data = srv.request("POST", "/rtc/session", timeout=15, source=FLOOD_ADDR)
        if st == 429:
            refused += 1
        elif st == 200:
            state["sids"].append(json.loads(data)["sid"])
    return refused


def traffic(srv, state, with_flood=True):
    """FLOOD / 2 session requests from FLOOD_ADDR within one minute of the
    log memo's clock; alice calls bob, bob answers, alice hangs up and
    closes; bob stops polling and expires; in the next minute the other
    FLOOD / 2 (the second limit_hit line then counts the first half's)."""
    state["sids"] = []
    t0 = time.monotonic()
    if with_flood:
        if t0 % 60 > 45:  # not enough of this minute left: the next one
            time.sleep(60 - t0 % 60 + 0.2)
        start = time.monotonic()
        state["flood_minute"] = minute_of(start)
        state["refused1"] = flood(srv, state, FLOOD // 2,
                                  (state["flood_minute"] + 1) * 60 - 1)
    a, b = call_pair(srv, "log-alice", "log-bob")
    a.send({"id": "stop"})
    b.drain(lambda ms: any(m["id"] == "stopCommunication" for m in ms))
    st, _, data = a.close()
    check(st == 200, "close: %s %s" % (st, short(data)))
    state["sids"] += [a.sid, b.sid]
    state["alice"] = srv.db_value("SELECT id FROM sessions WHERE name = 'log-alice'")
    state["bob"] = srv.db_value("SELECT id FROM sessions WHERE name = 'log-bob'")

    # bob polls no more: expired within SESSION_EXPIRY plus a maintenance
    # round (under CGI maintenance runs in requests: /rtc/status is one)
    def bob_expired():
        srv.request("GET", "/rtc/status", timeout=15)
        return srv.db_value("SELECT end_reason FROM sessions WHERE id = ?",
                            (state["bob"],)) == "expired"
    wait_until(bob_expired, 30, "bob's expiry", interval=0.5)
    # the maintenance's line is written after its commit: give it a moment
    wait_until(lambda: "session_expired" in srv.log_text(), 10, "the session_expired line")
    if with_flood:
        wait = (state["flood_minute"] + 1) * 60 + 0.2 - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        state["refused2"] = flood(srv, state, FLOOD - FLOOD // 2, time.monotonic() + 120)
        state["refused"] = state["refused1"] + state["refused2"]
    state["minutes"] = (time.monotonic() - t0) / 60


def check_sessions_and_calls(srv, lines, fmt="logfmt"):
    rows = srv.db_query("SELECT id, addr, end_reason FROM sessions ORDER BY id")
    check(rows, "no session rows")

    # The flood's sessions poll never and expire in their own time, maybe
    # after the lines were read; a session's line is written after the commit
    # the row shows (under CGI it reaches the log through the web server a
    # moment later), so read the log again until every ended row has its
    # line, for up to 10 s; the checks below say which one is missing.
    def ended_logged():
        nonlocal lines
        if all(not reason or any(as_int(f.get("session")) == int(sid)
                                 for f in events(lines, "session_" + reason))
               for sid, _, reason in rows):
            return True
        lines = longcall_lines(srv.log_text(), fmt)
        return False
    try:
        wait_until(ended_logged, 10, "a line for every ended session", interval=0.5)
    except AssertionError:
        pass
    created = {as_int(f.get("session")): f for f in events(lines, "session_created")}
    for sid, addr, reason in rows:
        f = created.get(int(sid))
        check(f is not None, "no session_created line for session %s: %s" % (sid, sorted(created)))
        check(f.get("client") == addr, "session %s: client=%s, the row's addr %s" % (
            sid, f.get("client"), addr))
    check(len(events(lines, "session_created")) == len(rows),
          "%d session_created lines for %d sessions" % (len(events(lines, "session_created")),
                                                         len(rows)))
    for sid, _, reason in rows:
        if reason:
            ended = [f for f in events(lines, "session_" + reason)
                     if as_int(f.get("session")) == int(sid)]
            check(len(ended) == 1, "session %s ended %s: %d session_%s lines" % (
                sid, reason, len(ended), reason))
    calls = srv.db_query("SELECT id, caller_sid, callee_sid, outcome FROM calls ORDER BY id")
    check(calls, "no call rows")
    for cid, caller, callee, outcome in calls:
        for ev in ("call_started", "call_answered", "call_ended"):
            got = [f for f in events(lines, ev) if as_int(f.get("call")) == int(cid)]
            check(len(got) == 1, "call %s: %d %s lines" % (cid, len(got), ev))
            f = got[0]
            check((as_int(f.get("caller")), as_int(f.get("callee"))) == (int(caller), int(callee)),
                  "call %s: %s says caller=%s callee=%s, the row %s and %s" % (
                      cid, ev, f.get("caller"), f.get("callee"), caller, callee))
        end = [f for f in events(lines, "call_ended") if as_int(f.get("call")) == int(cid)][0]
        check(end.get("outcome") == outcome, "call %s: outcome=%s, the row's %s" % (
            cid, end.get("outcome"), outcome))


# ---- logfmt ----------------------------------------------------------------

def logfmt_tests():
    state = {}

    def run_traffic(srv):
        traffic(srv, state)
        check(state["refused"] >= FLOOD - 30, "only %d of %d session requests refused" % (
            state["refused"], FLOOD))

    def parses(srv):
        lines = longcall_lines(srv.log_text())
        check(len(lines) >= 10, "only %d longcall lines: %s" % (len(lines), srv.read_log()[-600:]))
        for ln, keys, f in lines:
            check_shape(keys, f, True, ln)
        state["lines"] = lines

    def sessions_calls(srv):
        check_sessions_and_calls(srv, state["lines"])
        check(events(state["lines"], "serving") or srv.kind == "cgi",
              "no serving line at start")

    def no_token(srv):
        text = srv.log_text()
        check(state["sids"], "no sids")
        leaked = [s for s in state["sids"] if s in text]
        check(not leaked, "%d session tokens in the log" % len(leaked))

    def summarised(srv):
        hits = [f for f in events(state["lines"], "limit_hit")
                if f.get("client") == FLOOD_ADDR]
        print("# %d + %d refusals from %s in two minutes of the memo's clock: %d limit_hit "
              "line(s), counts %s" % (state["refused1"], state["refused2"], FLOOD_ADDR,
                                      len(hits), [f.get("count") for f in hits]), flush=True)
        check(state["refused1"] >= 10 and state["refused2"] >= 10,
              "too few refusals to tell: %d, %d" % (state["refused1"], state["refused2"]))
        check(all(f.get("limit") == "LONGCALL_ADDR_SESSIONS_PER_MIN" for f in hits),
              "limit= is not the setting: %s" % short(hits))
        check(all(str(f.get("count", "")).isdigit() for f in hits),
              "a limit_hit line without a count: %s" % short(hits))
        # one line in each minute (a third if the second half outlasted its
        # minute): the first counts itself, the second the first minute's
        check(len(hits) in (2, 3), "%d limit_hit lines for %d refusals in two minutes" % (
            len(hits), state["refused"]))
        check(int(hits[0]["count"]) == 1, "the first line's count is %s" % hits[0]["count"])
        check(int(hits[1]["count"]) == state["refused1"],
              "the second line counts %s, the first minute refused %d" % (
                  hits[1]["count"], state["refused1"]))

    return ({"env": SHORT}, [
        ("logfmt: traffic (a call, a close, an expiry, 500 refused sessions)", run_traffic),
        ("logfmt: every longcall line parses, time first, level/event/pid/msg", parses),
        ("logfmt: session and call events carry the rows' ids, clients and outcomes",
         sessions_calls),
        ("logfmt: no session token in the log", no_token),
        ("logfmt: 500 limit hits from one address over two minutes: one line a minute, "
         "each with the count since the previous",
         summarised),
    ])


# ---- JSON lines -------------------------------------------------------------

def json_tests():
    state = {}

    def run(srv):
        traffic(srv, state, with_flood=False)
        lines = longcall_lines(srv.log_text(), "json")
        check(len(lines) >= 6, "only %d JSON lines: %s" % (len(lines), srv.read_log()[-600:]))
        for ln, keys, f in lines:
            check_shape(keys, f, True, ln)
            for k in ("session", "call", "caller", "callee", "pid", "count"):
                check(k not in f or isinstance(f[k], int), "%s is not a number: %s" % (
                    k, short(ln)))
        state["lines"] = lines

    def same_events(srv):
        check_sessions_and_calls(srv, state["lines"], "json")
        text = srv.log_text()
        check(not [s for s in state["sids"] if s in text], "a session token in the log")

    env = dict(SHORT, LONGCALL_LOG_FORMAT="json")
    return ({"env": env}, [
        ("json: every longcall line is one JSON object: time, level, event, pid, msg", run),
        ("json: the same session and call events, ids as numbers; no token", same_events),
    ])


# ---- JOURNAL_STREAM ---------------------------------------------------------

WRAPPER = """#!/bin/sh
# As systemd's StandardError=journal sets it: our stderr's device:inode%s.
js=$(stat -L -c '%%d:%%i' /proc/self/fd/2)
JOURNAL_STREAM=${js%%%%:*}:$(( ${js#*:} + %d ))
export JOURNAL_STREAM
exec %s "$@"
"""


def journal_group(match):
    from harness import Server
    label = "matches" if match else "names another file"

    def make(srv_kwargs):
        srv = Server(**srv_kwargs)
        path = os.path.join(srv.state, "journal-wrapper.sh")
        with open(path, "w") as f:
            f.write(WRAPPER % ("" if match else " plus one (another file)", 0 if match else 1,
                               os.path.realpath(BIN)))
        os.chmod(path, 0o755)
        srv.bin = path
        return srv

    def run(t):
        name = "JOURNAL_STREAM %s stderr: %s" % (label, "no time=" if match else "time= first")
        srv = make({"env": {"LONGCALL_LOG_LEVEL": "info"}})
        try:
            srv.start()
            Client(srv, "j")
            wait_until(lambda: "session_created" in srv.log_text(), 10, "a session_created line")
            lines = longcall_lines(srv.log_text())
            check(lines, "no longcall line: %s" % srv.read_log()[-400:])
            for ln, keys, f in lines:
                check_shape(keys, f, not match, ln)
                check("time" not in f if match else True, "a time= under journald: %s" % ln)
        finally:
            srv.cleanup()
        return name

    return run


# ---- hostile client text ----------------------------------------------------

def hostile(fmt):
    """The backend as plain CGI (what lighttpd's mod_cgi runs), a Host no
    front end would pass: its line is one line, its fields the backend's."""
    import tempfile
    tmp = tempfile.mkdtemp(prefix="longcall-logs-")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GATEWAY_INTERFACE": "CGI/1.1",
           "REQUEST_METHOD": "GET", "SCRIPT_NAME": "/rtc", "PATH_INFO": "/status",
           "REQUEST_URI": "/rtc/status", "QUERY_STRING": "", "REMOTE_ADDR": "192.0.2.9",
           "SERVER_PROTOCOL": "HTTP/1.1",
           "LONGCALL_DB": os.path.join(tmp, "longcall.db"), "LONGCALL_LOG_LEVEL": "debug",
           "LONGCALL_ALLOWED_HOSTS": "good.example", "LONGCALL_LOG_FORMAT": fmt}
    env_b = {k.encode(): v.encode() for k, v in env.items()}
    env_b[b"HTTP_HOST"] = HOSTILE.encode("latin-1")  # \xff: not UTF-8
    try:
        p = subprocess.run([BIN], env=env_b, stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=30)
    finally:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
    check(b" 421" in p.stdout.split(b"\r\n")[0] or b"Status: 421" in p.stdout,
          "the foreign Host was not refused 421: %s" % short(p.stdout))
    err = p.stderr.decode("utf-8", "strict")  # the escaper wrote valid UTF-8
    raw = err.split("\n")
    check(raw[-1] == "", "stderr does not end with a newline")
    lines = longcall_lines(err, fmt)
    check(len(lines) == len(raw) - 1, "%d lines of stderr, %d longcall lines: %s" % (
        len(raw) - 1, len(lines), short(err, 800)))
    hits = [(ln, keys, f) for ln, keys, f in lines if f.get("event") == "limit_hit"]
    check(len(hits) == 1, "expected one limit_hit line: %s" % short(err, 800))
    ln, keys, f = hits[0]
    check(not any(f2.get("event") == "forged" for _, _, f2 in lines), "a forged event")
    check(set(keys) <= {"time", "level", "event", "client", "limit", "count", "pid", "msg"},
          "fields beyond the backend's: %s" % keys)
    check(f["level"] == "debug" and f["client"] == "192.0.2.9" and
          f["limit"] == "LONGCALL_ALLOWED_HOSTS", "wrong fields: %s" % short(ln))
    check('evil"\n level=error event=forged x="y\\ \x01\ufffd' in f["msg"],
          "the Host is not in msg as sent (escaped and read back): %r" % f["msg"])


def main():
    t = Runner("test_logs")
    groups = [logfmt_tests(), json_tests()]
    t.plan(Runner.count(groups) + 4)
    for g in groups:
        t.group(*g)
    for match in (True, False):
        run = journal_group(match)
        name = "JOURNAL_STREAM %s stderr: %s" % ("matches" if match else "names another file",
                                                  "no time=" if match else "time= first")
        t.run(name, lambda r=run: r(t))
    t.run("hostile Host (newline, quotes, =, event=forged, bad UTF-8), logfmt: one line, "
          "fields kept", hostile, "logfmt")
    t.run("hostile Host, JSON lines: one object, fields kept", hostile, "json")
    t.done()


if __name__ == "__main__":
    main()
