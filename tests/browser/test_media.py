#!/usr/bin/env python3
"""Browser test of media through a real TURN relay (issue 13). coturn
(Debian's) runs on loopback from conf/turnserver.conf with the test's ports,
certificate and secret, and with loopback peers allowed (the shipped conf
denies them; this test's conf only). Two Chromium pages call each other with
LONGCALL_ICE_TRANSPORT_POLICY=relay and the credentials the backend minted
(media.js):
  udp    turn:...?transport=udp               relay reached over UDP
  tcp    turn:...?transport=tcp only          over TCP
  tls    turns:...?transport=tcp only         over TLS
  proxy  both browsers behind squid (Debian's stock rules: CONNECT to port
         443 only, WebSocket refused), coturn's TCP listener on port 443 of
         127.0.0.7: Chromium tunnels TURN/TCP through the proxy's CONNECT,
         which squid's log shows
  wrong  the backend's secret is not coturn's: coturn refuses, the pages
         say so and the call ends with a reason
Each relayed call shows both pages' minted usernames in coturn's log; the
TURN secret and the session tokens are in no log line, and the secret in no
database byte."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, free_port, ready, run_node, start_squid  # noqa: E402
from coturn import coturn_conf, coturn_logs  # noqa: E402

SECRET = "browser-media-secret-0123456789"
PROXY_IP = "127.0.0.7"  # coturn's TCP listener on port 443 for the proxy case

def wait_port(ip, port, proc, kind=socket.SOCK_STREAM, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            s = socket.socket(socket.AF_INET, kind)
            s.settimeout(1)
            s.connect((ip, port))
            s.close()
            return True
        except OSError:
            time.sleep(0.2)
    return False


def stop(proc):
    if proc and proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


class Coturn:
    """coturn on ip: port (UDP and TCP) and tls_port (TLS), in its own
    folder; stopped by PID."""

    def __init__(self, check, ip, port, tls_port):
        self.tmp = tempfile.mkdtemp(prefix="longcall-media-turn-")
        self.ip, self.port, self.tls_port, self.proc = ip, port, tls_port, None
        r = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                            os.path.join(self.tmp, "key.pem"), "-out", os.path.join(self.tmp, "cert.pem"),
                            "-days", "2", "-subj", "/CN=%s" % ip], capture_output=True)
        if r.returncode != 0:
            check("media: a certificate for coturn", False, r.stderr.decode()[-300:])
            return
        conf = coturn_conf(self.tmp, SECRET, port, tls_port, ip=ip, loopback_peers=True,
                           verbose=True)
        self.proc = subprocess.Popen(["turnserver", "-c", conf], stdout=subprocess.DEVNULL,
                                     stderr=open(os.path.join(self.tmp, "stderr"), "w"),
                                     start_new_session=True)
        self.up = wait_port(ip, port, self.proc) and wait_port(ip, tls_port, self.proc)
        check("media: coturn started on %s:%d (TLS %d)" % (ip, port, tls_port), self.up,
              coturn_logs(self.tmp)[-800:])

    def log(self):
        return coturn_logs(self.tmp)

    def close(self):
        stop(self.proc)
        if os.environ.get("MEDIA_KEEP"):
            print("# coturn folder kept: %s" % self.tmp)
            return
        shutil.rmtree(self.tmp, ignore_errors=True)


def lines_with(lines, prefix):
    """{name: value} of the `# prefix NAME VALUE` lines."""
    out = {}
    for ln in lines:
        parts = ln.split()
        if len(parts) == 4 and parts[0] == "#" and parts[1] == prefix:
            out[parts[2]] = parts[3]
    return out


def backend_env(uris, secret=SECRET):
    return {"LONGCALL_TURN_SECRET": secret, "LONGCALL_TURN_URIS": uris,
            "LONGCALL_ICE_TRANSPORT_POLICY": "relay"}


def nothing_leaked(check, mode, srv, lines, turn):
    """The secret in no log line and no database byte; the tokens in no
    log line (the backend's, coturn's)."""
    sids = [s for s in lines_with(lines, "sid").values() if s]
    logs = srv.log_text() + turn.log()
    blobs = b""
    for suffix in ("", "-wal"):
        path = os.path.join(srv.state, "longcall.db") + suffix
        if os.path.exists(path):
            with open(path, "rb") as f:
                blobs += f.read()
    check("media %s: the TURN secret is in no log line and no database byte; the %d session "
          "tokens in no log line" % (mode, len(sids)),
          len(sids) == 2 and SECRET not in logs and SECRET.encode() not in blobs and
          not any(s in logs for s in sids))


def relayed(check, mode, lines, turn):
    """coturn's log shows allocations made with both pages' usernames."""
    users = lines_with(lines, "turn-user")
    log = turn.log()
    ok = [u for u in users.values() if u and "user <%s>" % u in log and "ALLOCATE processed, success" in
          "".join(ln for ln in log.splitlines() if "user <%s>" % u in ln)]
    check("media %s: coturn's log shows allocations made with the usernames longcall minted (%d of 2)"
          % (mode, len(ok)), len(ok) == 2, "users %s; log: %s" % (users, log[-800:]))


def run(check, mode, turn, uris, secret=SECRET, proxy_port=None):
    mark = len(turn.log())  # this call's lines only: coturn serves several
    with Server(env=backend_env(uris, secret)) as srv:
        args = [f"http://127.0.0.1:{srv.port}", mode] + ([proxy_port] if proxy_port else [])
        lines = run_node(check, "media.js", args, timeout=240)
        if mode == "wrong":
            log = turn.log()[mark:]
            users = [u for u in lines_with(lines, "turn-user").values() if u]
            # The caller's page asks the relay first; the callee's may be
            # told the call ended before it asks.
            refused = [u for u in users if "user <%s>" % u in log]
            caller = lines_with(lines, "turn-user").get("alice", "")
            check("media wrong secret: coturn's log shows it refused the caller's credential (%d of 2 "
                  "pages asked)" % len(refused),
                  caller and caller in refused and "ALLOCATE processed, success" not in log and
                  ("401" in log or "Unauthorized" in log or "cannot find credentials" in log.lower() or
                   "check_integrity" in log.lower()), log[-800:])
        else:
            relayed(check, mode, lines, turn)
        nothing_leaked(check, mode, srv, lines, turn)
        return lines


def main(check):
    modes = os.environ.get("MEDIA_MODES", "udp tcp tls proxy wrong").split()
    if not shutil.which("turnserver"):
        check("coturn is installed", False, "make test-deps installs it (Debian package coturn)")
        return
    if not set(modes) - {"proxy"}:
        proxy_case(check)
        return
    turn = Coturn(check, "127.0.0.1", free_port(), free_port())
    try:
        if not turn.up:
            return
        hp = "127.0.0.1:%d" % turn.port
        if "udp" in modes:
            run(check, "udp", turn, "turn:%s?transport=udp" % hp)
        if "tcp" in modes:
            run(check, "tcp", turn, "turn:%s?transport=tcp" % hp)
        if "tls" in modes:
            run(check, "tls", turn, "turns:127.0.0.1:%d?transport=tcp" % turn.tls_port)
        if "wrong" in modes:
            run(check, "wrong", turn, "turn:%s?transport=udp turn:%s?transport=tcp" % (hp, hp),
                secret="not-the-relay's-secret")
    finally:
        turn.close()
    if "proxy" in modes:
        proxy_case(check)


def proxy_case(check):
    sdir = tempfile.mkdtemp(prefix="longcall-media-squid-")
    squid = None
    turn = Coturn(check, PROXY_IP, 443, free_port())
    try:
        if not turn.up:
            return
        squid, sport, up = start_squid(check, sdir, "media proxy")
        if not up:
            return
        run(check, "proxy", turn, "turn:%s:443?transport=tcp" % PROXY_IP, proxy_port=sport)
        stop(squid)  # squid writes a tunnel's line when it closes
        log = open(os.path.join(sdir, "access.log")).read()
        tunnels = [x for x in log.splitlines() if "CONNECT %s:443" % PROXY_IP in x and "/200 " in x]
        check("media proxy: squid's log shows the relay reached through CONNECT %s:443 (%d tunnels)"
              % (PROXY_IP, len(tunnels)), len(tunnels) >= 2, log[-1500:])
    finally:
        stop(squid)
        turn.close()
        shutil.rmtree(sdir, ignore_errors=True)


check = Checks()
if ready(check):
    try:
        main(check)
    except Exception as e:
        check("media test ran to the end", False, repr(e))
check.exit()
