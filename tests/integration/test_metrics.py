#!/usr/bin/env python3
"""GET /rtc/metrics (issue 16): the Prometheus text exposition of the site's
figures, off unless allowed. Checked for real: `promtool check metrics`
accepts it; Debian's Prometheus, started on loopback with a scrape of the
server every second, reports what a known amount of traffic (N calls, M
candidates, K refusals by a limit) must have made; with several backend
processes every scrape, whichever process answers it, has the totals; the
README's PromQL queries run. Behind every front end (CGI: a process per
request, the same totals)."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))

from harness import ROOT, SERVER, Server, end_processes, free_port  # noqa: E402
from lcclient import Background, Runner, Skip, call_pair, check, short, wait_held  # noqa: E402

CALLS = 3
CANDIDATES = 4    # alice sends bob per call
REFUSED = 3       # sessions over LONGCALL_ADDR_SESSIONS_PER_MIN from one address
TOKEN = "metrics-token-0123456789abcdef"


def readme_queries():
    """The PromQL queries of README's "Metrics" section (```promql blocks)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("### Metrics", 1)[1] if "### Metrics" in text else ""
    blocks = re.findall(r"```promql\n(.*?)```", section, re.S)
    return [q.strip() for b in blocks for q in b.split("\n\n") if q.strip()
            and not q.strip().startswith("#")]


class Prometheus:
    """Debian's prometheus on a loopback port, scraping srv every second."""

    def __init__(self, srv):
        if not shutil.which("prometheus") or not shutil.which("promtool"):
            raise Skip("prometheus is not installed (make test installs it)")
        self.dir = tempfile.mkdtemp(prefix="longcall-prom-")
        self.port = free_port()
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: longcall\n"
                    "    metrics_path: /rtc/metrics\n"
                    "    authorization:\n      credentials: %s\n"
                    "    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % (TOKEN, srv.port))
        if srv.scheme == "https":
            with open(conf, "a") as f:
                f.write("    scheme: https\n    tls_config:\n      insecure_skip_verify: true\n")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + conf, "--storage.tsdb.path=" + self.dir + "/data",
             "--web.listen-address=127.0.0.1:%d" % self.port], stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("prometheus did not become ready")

    def query(self, q):
        url = "http://127.0.0.1:%d/api/v1/query?query=%s" % (self.port, urllib.parse.quote(q))
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        check(body.get("status") == "success", "query %s: %s" % (q, short(body)))
        return body["data"]["result"]

    def value(self, q):
        res = self.query(q)
        return float(res[0]["value"][1]) if res else None

    def wait_value(self, q, want, deadline=30):
        end = time.monotonic() + deadline
        v = None
        while time.monotonic() < end:
            v = self.value(q)
            if v == want:
                return v
            time.sleep(0.5)
        return v

    def stop(self):
        end_processes(self.proc, signal.SIGTERM)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def scrape(srv, headers=None, source=None):
    return srv.request("GET", "/rtc/metrics", headers=headers, source=source)


def series(text, name, **labels):
    """The value of one series in an exposition text (None: absent)."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(r"(\w+)(?:\{(.*)\})? (\S+)$", line)
        if m and m.group(1) == name:
            got = ",".join(sorted((m.group(2) or "").split(","))) if m.group(2) else ""
            if got == want:
                return float(m.group(3))
    return None


def traffic(srv):
    """CALLS completed calls with CANDIDATES candidates each way alice->bob,
    and REFUSED sessions refused by LONGCALL_ADDR_SESSIONS_PER_MIN."""
    for i in range(CALLS):
        a, b = call_pair(srv, "mx-a%d" % i, "mx-b%d" % i)
        for k in range(CANDIDATES):
            # bob's poll held first: each candidate is a relay (commit, wake, answer)
            held = Background(b.poll, 10)
            wait_held(srv, 1)
            a.send({"id": "onIceCandidate", "candidate": {
                "candidate": "candidate:%d 1 udp 1 192.0.2.1 %d typ host" % (k, 4000 + k),
                "sdpMid": "0", "sdpMLineIndex": 0}})
            got = held.join(20)
            check(len(got) == 1, "bob's held poll got %s" % short(got))
        a.send({"id": "stop"})
        b.collect(1)
    refused = 0
    for _ in range(8 + REFUSED):  # 127.0.0.1 made 2 x CALLS = 6 of its own
        st, _, _ = srv.request("POST", "/rtc/session", source="127.0.0.9")
        refused += st == 429
    check(refused == REFUSED, "%d sessions refused, %d expected" % (refused, REFUSED))


def main():
    t = Runner("test_metrics")
    t.plan(8)
    env = {"LONGCALL_METRICS_ALLOW": "127.0.0.2/32", "LONGCALL_ADDR_SESSIONS_PER_MIN": "8"}
    tmp = tempfile.mkdtemp(prefix="longcall-mxtok-")
    token_file = os.path.join(tmp, "token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tmp, 0o755)
    os.chmod(token_file, 0o644)
    env["LONGCALL_METRICS_TOKEN_FILE"] = token_file
    procs = 1 if SERVER == "cgi" else 2
    srv = Server(procs=procs, env=env)
    prom = None
    try:
        srv.start()

        def refused():
            st, h, data = scrape(srv)
            check(st == 403 and json.loads(data).get("error"),
                  "a scrape from an address not allowed, without a token: %s %s" % (st, data))
            st, _, data = scrape(srv, {"Authorization": "Bearer wrong-token-0123456789"})
            check(st == 403, "a wrong token: %s" % st)
            st, h, data = scrape(srv, source="127.0.0.2")
            check(st == 200 and h.get("content-type", "").startswith("text/plain; version=0.0.4"),
                  "an allowed address: %s %s" % (st, h.get("content-type")))
            st, _, _ = scrape(srv, {"Authorization": "Bearer " + TOKEN})
            check(st == 200, "the token: %s" % st)

        def off_by_default():
            plain = Server(procs=1)
            try:
                plain.start()
                st, _, data = scrape(plain, source="127.0.0.2")
                check(st == 403 and b"metrics are off" in data, "%s %s" % (st, data))
            finally:
                plain.cleanup()

        t.run("metrics: a JSON 403 unless the address is allowed or the token given", refused)
        t.run("metrics: off unless the operator allows them", off_by_default)
        prom = Prometheus(srv)
        traffic(srv)

        def promtool():
            st, _, data = scrape(srv, source="127.0.0.2")
            p = subprocess.run(["promtool", "check", "metrics"], input=data, capture_output=True,
                               timeout=30)
            check(p.returncode == 0, "promtool: %s" % (p.stdout + p.stderr).decode()[:800])

        def totals_everywhere():
            seen = set()
            texts = []
            for _ in range(8):
                st, _, data = scrape(srv, source="127.0.0.2")
                check(st == 200, "scrape: %s" % st)
                texts.append(data.decode())
                stt, _, s = srv.request("GET", "/rtc/status")
                seen.add(json.loads(s).get("pid"))
            ended = {series(x, "longcall_calls_ended_total", outcome="completed") for x in texts}
            check(ended == {CALLS}, "scrapes disagree or miss calls: %s" % ended)
            cand = {series(x, "longcall_messages_stored_total", type="iceCandidate") for x in texts}
            check(cand == {CALLS * CANDIDATES}, "candidates stored: %s" % cand)

        def in_prometheus():
            v = prom.wait_value('longcall_calls_ended_total{outcome="completed"}', CALLS)
            check(v == CALLS, "Prometheus: calls completed %s, not %d" % (v, CALLS))
            v = prom.wait_value('longcall_messages_stored_total{type="iceCandidate"}',
                                CALLS * CANDIDATES)
            check(v == CALLS * CANDIDATES, "Prometheus: candidates stored %s" % v)
            v = prom.wait_value('longcall_limit_hits_total{limit="LONGCALL_ADDR_SESSIONS_PER_MIN"}',
                                REFUSED)
            check(v == REFUSED, "Prometheus: limit hits %s, not %d" % (v, REFUSED))
            v = prom.wait_value('longcall_requests_total{endpoint="session",code="429"}', REFUSED)
            check(v == REFUSED, "Prometheus: 429 answers to /rtc/session %s" % v)
            v = prom.value('longcall_messages_delivered_total{type="iceCandidate"}')
            check(v is not None and v >= CALLS * CANDIDATES, "candidates delivered %s" % v)

        def relay_measured():
            v = prom.value("longcall_relay_latency_seconds_count")
            check(v is not None and v >= CALLS * CANDIDATES,
                  "relays observed: %s, at least %d expected" % (v, CALLS * CANDIDATES))
            v = prom.value('sum(longcall_wakeups_total)')
            check(v is not None and v > 0, "no wake-up counted: %s" % v)

        def gauges():
            for g in ("longcall_held_polls", "longcall_sessions", "longcall_registered_names",
                      "longcall_database_size_bytes", "longcall_build_info",
                      "longcall_start_time_seconds"):
                check(prom.value(g) is not None, "Prometheus has no %s" % g)

        def readme():
            qs = readme_queries()
            check(len(qs) >= 5, "README's Metrics section has %d PromQL queries, 5 expected" %
                  len(qs))
            for q in qs:
                prom.query(q)  # checks status success

        t.run("metrics: promtool check metrics accepts the exposition", promtool)
        t.run("metrics: every scrape has the site's totals, whichever process answers (%d)"
              % procs, totals_everywhere)
        t.run("metrics: Prometheus scraping every second has %d calls, %d candidates, %d limit "
              "hits" % (CALLS, CALLS * CANDIDATES, REFUSED), in_prometheus)
        t.run("metrics: relay latency and wake-ups observed", relay_measured)
        t.run("metrics: the gauges are there", gauges)
        t.run("metrics: the README's PromQL queries run", readme)
    except Skip as e:
        while t.total < 8:
            t.skip("metrics (%d)" % (t.total + 1), e)
    except Exception as e:
        while t.total < 8:
            t.report("metrics (%d)" % (t.total + 1), "did not run: %s" % e)
    finally:
        if prom:
            prom.stop()
        srv.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
