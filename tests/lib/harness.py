"""Test harness: starts the real lighttpd with the shipped conf/lighttpd.conf
on a free loopback port, with the built backend, in a private state folder,
and stops it by PID (even when a test fails). Also a tiny HTTP client.

Usage:
    with Server(procs=1, env={"LONGCALL_SESSION_EXPIRY": "5"}) as srv:
        status, headers, body = srv.request("POST", "/rtc/session")
"""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LONGCALL_TEST_BIN", os.path.join(ROOT, "build", "longcall"))
CONF = os.path.join(ROOT, "conf", "lighttpd.conf")


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Checks:
    """Prints `ok - NAME` / `not ok - NAME: why` lines and counts failures,
    for the small test scripts that do not use lcclient's Runner."""

    def __init__(self):
        self.failed = 0

    def __call__(self, name, cond, why=""):
        print(("ok - " if cond else "not ok - ") + name + ("" if cond else ": " + why), flush=True)
        self.failed += 0 if cond else 1

    def exit(self):
        sys.exit(1 if self.failed else 0)


class Server:
    """A lighttpd + longcall instance. procs = lighttpd max-procs."""

    def __init__(self, procs=1, env=None, bin_path=None, conf=CONF, keep_state=None):
        self.procs = procs
        self.extra_env = dict(env or {})
        self.bin = bin_path or BIN
        self.conf = conf
        self.state = keep_state or tempfile.mkdtemp(prefix="longcall-test-")
        self.port = None
        self.proc = None
        self.log_path = os.path.join(self.state, "lighttpd.log")

    def start(self, timeout=15):
        self.port = free_port()
        env = dict(os.environ)
        env.update({
            "LONGCALL_ROOT": ROOT,
            "LONGCALL_BIN": self.bin,
            "LONGCALL_STATE": self.state,
            "LONGCALL_PORT": str(self.port),
            "LONGCALL_PROCS": str(self.procs),
        })
        env.update(self.extra_env)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["lighttpd", "-D", "-f", self.conf], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("lighttpd exited: " + self.read_log())
            try:
                st, _, _ = self.request("GET", "/rtc/status", timeout=2)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not answer /rtc/status in time: " + self.read_log())

    def backend_pids(self):
        """PIDs of the backend processes lighttpd spawned (children of lighttpd)."""
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True)
        return [int(p) for p in out.stdout.split()]

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            pids = self.backend_pids()
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            for p in pids:  # backends lighttpd spawned are in its group, but be sure
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if getattr(self, "log", None):
            self.log.close()
            self.log = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def request(self, method, path, body=None, headers=None, timeout=40):
        """One HTTP request on a fresh connection. Returns (status, headers dict
        with lower-case names, body bytes)."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            if isinstance(body, str):
                body = body.encode()
            h = {"Content-Type": "application/json"} if body is not None else {}
            h.update(headers or {})
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            c.close()

    def json(self, method, path, body=None, headers=None, timeout=40):
        st, h, data = self.request(method, path, body, headers, timeout)
        return st, json.loads(data) if data else None
