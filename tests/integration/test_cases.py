#!/usr/bin/env python3
"""Data-driven protocol cases: tests/cases/NAME/{input,expected}.

input, one action a line (blank lines and lines starting with # ignored):
    alice> {"id":"register","name":"alice"}      one send of one message
    alice> [{"id":"ping"},{"id":"list"}]         one send of a batch
    alice= {"id":"ping"}                         an exchange (send with after=0,
                                                 timeout=0): stored as a send is; its
                                                 answer must be {"ok": true, ...} with
                                                 exactly alice's mailbox then
    alice! close                                 POST /rtc/close for alice
    alice! expire                                alice stops polling until her
                                                 session expires (the others poll on)
    alice! ring-timeout                          every call ringing now ends unanswered
                                                 (the label may be any session): the
                                                 driver waits LONGCALL_RING_TIMEOUT
                                                 (set it short in env) plus RING_SLACK
    mallory? mailbox_share {"id":"call","to":"bob","sdpOffer":"o"}
                                                 a send that must be refused: 429
                                                 with that "reason" (and Retry-After),
                                                 nothing of it applied
    bob> {"id":"register","name":"alice","reclaim":"$alice"}
                                                 "$alice": the reclaim key of the
                                                 latest registerResponse alice got
A session is created on the first mention of its label (the label is
only a handle; the registered name is whatever register says). Each send
must be answered 200 {"ok": true}, each close 200. Every session of a case
comes from one client address (127.0.0.1), in both drivers: the rules that
look at the address (the call cooldown) see one caller in them.

expected, one message a line, per session in mailbox order:
    alice< {"id":"registerResponse","response":"accepted","reclaim":"*"}
Each session's mailbox must hold exactly the listed messages, in order
(compared without "seq"; the value "*" matches anything, but the member
must be there). A session with no line must have an empty mailbox. A
closed session's mailbox is not read (its sid must answer 404 instead).

Every rejection, error and stopCommunication line names its "reason"
(README, "The protocol"); the sentence ("message") may stay "*".

An optional third file, env, sets the server's LONGCALL_* settings for
the case, one VAR=value a line (e.g. LONGCALL_LIST_MAX=2); the others are
the server's defaults (the harness's suite settings -- call limits out of
the way of other scripts -- do not apply to cases). A case with
expire sets a short LONGCALL_SESSION_EXPIRY there (the driver waits that
long plus EXPIRE_SLACK; the in-process driver ends the session at once).

Each case runs against a fresh server (procs=1); CASES_JOBS (default 3)
cases run at once, reported in name order. tests/unit/test_cases.c
runs the same cases in-process over proto and store, with the same rules:
tests/cases is the one place for protocol cases. Usage:
    test_cases.py [NAME ...]        (default: every folder in tests/cases)
"""
import json
import os
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import SUITE_CALL_LIMITS, Server  # noqa: E402
from lcclient import (Client, Runner, check, check_json_answer, check_poll_body,  # noqa: E402
                      match, short, strip_seq)

CASES = os.path.join(HERE, "..", "cases")
LINE = re.compile(r"^([A-Za-z0-9_.-]+)\s*([<>=!?])\s?(.*)$")


class CaseError(Exception):
    """The case files themselves are wrong."""


def parse(path, allowed):
    """[(lineno, label, op, payload)] from a case file."""
    out = []
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = LINE.match(line)
            if not m or m.group(2) not in allowed:
                raise CaseError("%s:%d: cannot read %r" % (os.path.basename(path), no, line))
            label, op, rest = m.groups()
            if op == "!":
                if rest.strip() not in ("close", "expire", "ring-timeout"):
                    raise CaseError("%s:%d: unknown command %r" % (path, no, rest))
                payload = rest.strip()
            else:
                reason = None
                if op == "?":
                    reason, _, rest = rest.strip().partition(" ")
                try:
                    payload = json.loads(rest)
                    if op == "?":
                        payload = (reason, payload)
                except ValueError as e:
                    raise CaseError("%s:%d: bad JSON: %s" % (os.path.basename(path), no, e))
            out.append((no, label, op, payload))
    return out


def read_mailbox(c):
    """Everything in c's mailbox, following seq, without acknowledging
    beyond what was read. Bounded."""
    got, after = [], 0
    for _ in range(50):
        st, h, data = c.poll_raw(after, 0)
        body = check_json_answer(st, h, data, 200, "%s poll after=%d" % (c.label, after))
        check_poll_body(body, after, c.label)
        if not body["messages"]:
            return got
        got.extend(body["messages"])
        after = body["seq"]
    raise AssertionError("%s: mailbox still not empty after 50 polls" % c.label)


EXPIRE_SLACK = 3  # seconds past the expiry before a session must be gone
RING_SLACK = 2    # seconds past the ring timeout before a ringing call must have ended


def peek_key(c, old=None):
    """The reclaim key of the latest registerResponse in c's mailbox, read
    without acknowledging anything (after=0), or old if there is none."""
    st, h, data = c.poll_raw(0, 0)
    body = check_json_answer(st, h, data, 200, "%s poll after=0" % c.label)
    for m in body["messages"]:
        if m.get("id") == "registerResponse" and "reclaim" in m:
            old = m["reclaim"]
    return old


def expire(c, others, expiry):
    """Lets c's session expire: c polls no more while the others poll (with
    after=0, acknowledging nothing) to stay alive, for expiry +
    EXPIRE_SLACK seconds (bounded). Whether it ended is checked at the end
    (its poll must answer 404), and by the case's own expected lines."""
    end = time.monotonic() + expiry + EXPIRE_SLACK
    while time.monotonic() < end:
        for o in others:
            st, h, data = o.poll_raw(0, 0)
            check_json_answer(st, h, data, 200, "%s keep-alive poll" % o.label)
        time.sleep(0.5)


def put_keys(payload, sessions, closed, keys):
    """payload with each string member "$label" of a message (or of each
    message of a batch) replaced by that session's latest reclaim key."""
    msgs = payload if isinstance(payload, list) else [payload]
    for m in msgs:
        if not isinstance(m, dict):
            continue
        for k, v in list(m.items()):
            if isinstance(v, str) and v.startswith("$") and v[1:] in sessions:
                label = v[1:]
                if label not in closed:
                    keys[label] = peek_key(sessions[label], keys.get(label))
                m[k] = keys.get(label, "")
    return payload


def diff(label, expected, got):
    """Readable differences between two message lists, or None."""
    plain = [strip_seq(m) for m in got]
    problems = []
    for i in range(max(len(expected), len(plain))):
        e = expected[i] if i < len(expected) else None
        g = plain[i] if i < len(plain) else None
        if e is None:
            problems.append("%s #%d unexpected %s" % (label, i + 1, short(g, 200)))
        elif g is None:
            problems.append("%s #%d missing %s" % (label, i + 1, short(e, 200)))
        elif not match(e, g):
            problems.append("%s #%d expected %s got %s" % (label, i + 1, short(e, 200),
                                                           short(g, 200)))
    return problems


def read_env(folder):
    """{VAR: value} from the case's optional env file."""
    env = {}
    path = os.path.join(folder, "env")
    if not os.path.exists(path):
        return env
    with open(path, encoding="utf-8") as f:
        for no, raw in enumerate(f, 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            var, eq, value = line.partition("=")
            if not eq or not var.startswith("LONGCALL_"):
                raise CaseError("env:%d: cannot read %r" % (no, line))
            env[var] = value
    return env


def run_case(name):
    folder = os.path.join(CASES, name)
    env = read_env(folder)
    actions = parse(os.path.join(folder, "input"), "!>=?")
    expects = parse(os.path.join(folder, "expected"), "<")
    labels = []
    for _, label, _, _ in actions:
        if label not in labels:
            labels.append(label)
    want = {label: [] for label in labels}
    for no, label, _, payload in expects:
        if label not in want:
            raise CaseError("expected:%d: session %r never appears in input" % (no, label))
        want[label].append(payload)
    closed = set()
    keys = {}  # label -> reclaim key noted when that session expired
    # The server's own defaults for what the case does not set (an empty
    # value is the default), as the in-process driver has them.
    server_env = {k: "" for k in SUITE_CALL_LIMITS}
    server_env.update(env)
    with Server(procs=1, env=server_env) as srv:
        sessions = {}
        for no, label, op, payload in actions:
            if label in closed:
                raise CaseError("input:%d: %r was closed before" % (no, label))
            c = sessions.get(label)
            if c is None:
                c = sessions[label] = Client(srv, label)
            if op == "!" and payload == "expire":
                keys[label] = peek_key(c, keys.get(label))
                expire(c, [sessions[o] for o in sessions if o != label and o not in closed],
                       int(env.get("LONGCALL_SESSION_EXPIRY", "60")))
                closed.add(label)
                continue
            if op == "!" and payload == "ring-timeout":
                time.sleep(int(env.get("LONGCALL_RING_TIMEOUT", "30")) + RING_SLACK)
                continue
            if op == "!":
                st, h, data = c.close()
                check_json_answer(st, h, data, 200, "input:%d %s close" % (no, label))
                closed.add(label)
                continue
            if op == "?":
                reason, payload = payload
                st, h, data = c.send_raw(put_keys(payload, sessions, closed, keys))
                body = check_json_answer(st, h, data, 429, "input:%d %s send (refused)" % (no, label))
                check(body.get("reason") == reason and isinstance(body.get("error"), str),
                      "input:%d: refusal %s, expected reason %r" % (no, short(body), reason))
                check(str(h.get("retry-after", "")).isdigit(),
                      "input:%d: the 429 has no Retry-After (%s)" % (no, h))
                continue
            payload = put_keys(payload, sessions, closed, keys)
            if op == "=":
                # An exchange from after=0 (it acknowledges nothing) that
                # is not held: its answer is the mailbox as it stands.
                st, h, data = c.srv.request("POST", "/rtc/send?sid=%s&after=0&timeout=0" % c.qsid(),
                                            json.dumps(payload), timeout=30)
                body = check_json_answer(st, h, data, 200, "input:%d %s exchange" % (no, label))
                check(body.get("ok") is True and isinstance(body.get("messages"), list) and
                      body.get("seq") == (body["messages"][-1]["seq"] if body["messages"] else 0),
                      "input:%d: exchange answered %s" % (no, short(body)))
                st, h, data = c.poll_raw(0, 0)  # after=0 acknowledges nothing either
                box = check_json_answer(st, h, data, 200, "input:%d %s poll" % (no, label))
                check(body["messages"] == box["messages"],
                      "input:%d: the exchange answered %s, the mailbox holds %s" % (
                          no, short(body), short(box)))
                continue
            st, h, data = c.send_raw(payload)
            body = check_json_answer(st, h, data, 200, "input:%d %s send" % (no, label))
            check(body == {"ok": True}, "input:%d: send answered %s" % (no, short(body)))
        problems = []
        for label in labels:
            c = sessions[label]
            if label in closed:
                if want[label]:
                    raise CaseError("expected lists messages for %r, which input closes" % label)
                st, _, data = c.poll_raw(0, 0)
                if st != 404:
                    problems.append("%s: closed, yet poll answered %s %s" % (label, st,
                                                                           short(data)))
                continue
            problems += diff(label, want[label], read_mailbox(c))
        check(not problems, "; ".join(problems))


def main():
    names = sys.argv[1:] or sorted(d for d in os.listdir(CASES)
                                   if os.path.isdir(os.path.join(CASES, d)))
    t = Runner("test_cases")
    t.plan(len(names) or 1)
    if not names:
        t.report("case folders exist", "no case in %s" % CASES)
    # Each case has its own server, so CASES_JOBS of them run at once (most
    # of a case's time is waiting: server start, expiry, ring time-out);
    # the results are printed in name order, each as its case ended.
    jobs = max(1, int(os.environ.get("CASES_JOBS", "3")))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcome = {name: pool.submit(caught, run_case, name) for name in names}
        for name in names:
            t.run("case " + name, reraise, outcome[name].result())
    t.done()


def caught(fn, *args):
    """Runs fn(*args) in a worker: None, or the exception it raised."""
    try:
        fn(*args)
    except Exception as e:  # reported by the main thread, in order
        return e
    return None


def reraise(e):
    if e is not None:
        raise e


if __name__ == "__main__":
    main()
