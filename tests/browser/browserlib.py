"""Shared by the browser test drivers (test_*.py here): the Node scenario
runner and the server helpers. A driver starts lighttpd (tests/lib/harness.py)
and whatever sits in between (squid, the cutting proxy) on free loopback
ports, runs one Node scenario (playwright-core + Debian's Chromium) whose
`ok - ` / `not ok - ` lines pass through, and stops everything by PID."""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from harness import Checks, Server, free_port  # noqa: E402,F401

ARTIFACTS = os.path.join(ROOT, "tests", "artifacts")


def ready(check):
    """False (with a failure line) when the scenario cannot run here."""
    if not os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")):
        check("playwright-core is installed in tests/browser", False,
              "run `npm ci` in tests/browser (make test does)")
        return False
    chromium = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        check("Chromium is installed", False, chromium + " is missing (Debian package chromium)")
        return False
    return True


def run_node(check, script, args, timeout=300, env=None):
    """Runs `node script args...` in tests/browser, passing its lines through;
    kills its process group on timeout. Returns the list of lines."""
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.Popen(["node", script] + [str(a) for a in args], cwd=HERE, env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         errors="replace", start_new_session=True)
    lines = []
    deadline = time.time() + timeout
    import threading

    def killer():
        while p.poll() is None and time.time() < deadline:
            time.sleep(0.2)
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    threading.Thread(target=killer, daemon=True).start()
    for line in p.stdout:
        line = line.rstrip("\n")
        lines.append(line)
        print(line, flush=True)
    p.wait()
    try:  # Chromium children left behind by a crash
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    results = [x for x in lines if x.startswith(("ok - ", "not ok - ", "skip - "))]
    if p.returncode != 0 and not any(x.startswith("not ok - ") for x in results):
        check(f"{script} finished", False, f"exited with status {p.returncode} after {len(results)} results")
    # The scenario's own results are already counted by run-tests from its
    # lines; remember them for the driver's plan and exit status.
    check.total += len(results)
    check.failed += sum(1 for x in results if x.startswith("not ok - "))
    return lines


def db_rows(srv, sql, args=()):
    import sqlite3
    con = sqlite3.connect(os.path.join(srv.state, "longcall.db"), timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


# squid for the browser tests that put both pages behind a proxy
# (test_squid.py, test_media.py): Debian's stock access rules -- CONNECT
# only to port 443, so a WebSocket tunnel is refused -- and, for this
# machine, nothing but loopback destinations.
SQUID_CONF = """\
http_port 127.0.0.1:{port}
acl SSL_ports port 443
acl Safe_ports port 80
acl Safe_ports port 443
acl Safe_ports port 1025-65535
acl CONNECT method CONNECT
acl to_loopback dst 127.0.0.0/8
http_access deny !to_loopback
http_access deny !Safe_ports
http_access deny CONNECT !SSL_ports
http_access allow localhost
http_access deny all
cache deny all
access_log stdio:{dir}/access.log
cache_log {dir}/cache.log
cache_store_log none
pid_filename {dir}/squid.pid
coredump_dir {dir}
shutdown_lifetime 1 seconds
dns_nameservers 127.0.0.1
"""


def start_squid(check, sdir, name):
    """Starts squid with SQUID_CONF in folder sdir (given to the proxy
    user) on a free loopback port; checks "NAME: squid started". Returns
    (process, port, up); the caller stops the process group by PID."""
    import shutil
    import socket
    port = free_port()
    with open(os.path.join(sdir, "squid.conf"), "w") as f:
        f.write(SQUID_CONF.format(port=port, dir=sdir))
    shutil.chown(sdir, "proxy", "proxy")
    os.chmod(sdir, 0o755)
    proc = subprocess.Popen(["squid", "-N", "-f", os.path.join(sdir, "squid.conf")],
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(sdir, "stderr"), "w"),
                            start_new_session=True)
    up = False
    deadline = time.time() + 30
    while time.time() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            up = True
            break
        except OSError:
            time.sleep(0.2)
    log = os.path.join(sdir, "cache.log")
    check("%s: squid started" % name, up, open(os.path.join(sdir, "stderr")).read()[-500:] +
          (open(log).read()[-1000:] if os.path.exists(log) else ""))
    return proc, port, up
