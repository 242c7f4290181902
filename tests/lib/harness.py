"""Test harness: starts a real web server with its shipped configuration from
conf/ on a free loopback port, with the built backend, in a private state
folder, and stops it by PID (even when a test fails). Also a tiny HTTP client.

The front end is $LONGCALL_TEST_SERVER (default lighttpd):
  lighttpd            conf/lighttpd.conf, lighttpd spawns the backends (max-procs)
  apache-proxy-fcgi   conf/apache-proxy-fcgi.conf, backends from spawn-fcgi
  apache-fcgid        conf/apache-fcgid.conf, mod_fcgid spawns the backends
  nginx               conf/nginx.conf (placeholders substituted), spawn-fcgi
  cgi                 conf/lighttpd-cgi.conf, one backend process per request
  lighttpd-tls        conf/lighttpd-tls.conf: lighttpd.conf over HTTPS, with a
                      certificate for 127.0.0.1 and localhost signed by a CA the
                      test process makes (openssl, in a temporary folder removed
                      at exit); the clients trust that CA and nothing else
Only the port and paths differ from the shipped files: lighttpd and Apache
read them from the environment (LONGCALL_ROOT/BIN/STATE/SOCKET/PORT/PROCS),
nginx cannot, so its file is copied with the @LONGCALL_*@ placeholders
replaced. Apache and nginx run their workers (and the spawn-fcgi backends) as
www-data, as on a real system, so the state folder is given to www-data.

Every HTTP connection of the suite to a front end is made by connection()
or open_socket() (or Server.request, which uses connection()): over TLS for
the ports of TLS servers, so a script runs unchanged over HTTPS.

The store is $LONGCALL_TEST_STORE (default sqlite): `pg` gives every
Server a fresh PostgreSQL database (CREATE DATABASE on the one PostgreSQL
this test process starts, tests/lib/postgres.py) as LONGCALL_DB, and the
wake file LONGCALL_WAKE_FILE where SQLite's would be (<state>/longcall.db.wake).
Server.db_query(sql) reads the state on either store.

Usage:
    with Server(procs=1, env={"LONGCALL_SESSION_EXPIRY": "5"}) as srv:
        status, headers, body = srv.request("POST", "/rtc/session")
"""
import atexit
import fcntl
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.environ.get("LONGCALL_TEST_BIN", os.path.join(ROOT, "build", "longcall"))
SERVER = os.environ.get("LONGCALL_TEST_SERVER", "lighttpd")
STORE = os.environ.get("LONGCALL_TEST_STORE", "sqlite")
if STORE not in ("sqlite", "pg"):
    sys.exit("LONGCALL_TEST_STORE=%s: expected sqlite or pg" % STORE)
if STORE == "pg" and SERVER == "cgi":
    sys.exit("LONGCALL_TEST_STORE=pg with LONGCALL_TEST_SERVER=cgi: the backend refuses "
             "PostgreSQL under plain CGI (README \"Which store\"; test_cgi.py checks it)")
SUITE_ADDR_LIMITS = {"LONGCALL_ADDR_SESSIONS_PER_MIN": "1000000", "LONGCALL_ADDR_SESSIONS": "1000000",
                     "LONGCALL_ADDR_HELD": "1000000"}
# The call limits (issue 12, 3a) likewise: the scripts call often, many users
# from one address (the cooldown holds for every session of an address).
# test_abuse.py's calls section and the protocol cases set their own.
SUITE_CALL_LIMITS = {"LONGCALL_CALL_RATE": "1000000", "LONGCALL_CALL_PAIR_RATE": "1000000",
                     "LONGCALL_CALL_COOLDOWN": "0"}
CONFS = {
    "lighttpd": "lighttpd.conf",
    "apache-proxy-fcgi": "apache-proxy-fcgi.conf",
    "apache-fcgid": "apache-fcgid.conf",
    "nginx": "nginx.conf",
    "cgi": "lighttpd-cgi.conf",
    "lighttpd-tls": "lighttpd-tls.conf",
}
TLS_KINDS = ("lighttpd-tls",)
LIGHTTPD_KINDS = ("lighttpd", "cgi", "lighttpd-tls")  # lighttpd spawns the backends itself
if SERVER not in CONFS:
    sys.exit("LONGCALL_TEST_SERVER=%s: expected one of %s" % (SERVER, ", ".join(CONFS)))
CONF = os.path.join(ROOT, "conf", CONFS[SERVER])
RUN_USER = "www-data"  # Apache's and nginx's workers; the spawn-fcgi backends


_tls = {}          # the test process's CA and server certificate (tls_files())
_tls_ports = {}    # port of a running TLS server -> its client SSLContext


def tls_files():
    """Makes, once per test process, a throwaway CA and a server certificate
    it signs for 127.0.0.1, ::1 and localhost (openssl, EC P-256, valid 2
    days) in a temporary folder removed at exit. Returns {"dir", "ca",
    "cert", "key"}: paths of the CA certificate, the server's certificate and
    its key (PEM)."""
    if _tls:
        return _tls
    d = tempfile.mkdtemp(prefix="longcall-tls-")
    atexit.register(shutil.rmtree, d, True)
    f = {k: os.path.join(d, k + ".pem") for k in ("ca", "ca-key", "cert", "key", "csr")}
    ext = os.path.join(d, "server.ext")
    with open(ext, "w") as e:
        e.write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    for argv in (
            ["openssl", "req", "-x509"] + ec + ["-keyout", f["ca-key"], "-out", f["ca"],
             "-days", "2", "-subj", "/CN=longcall test CA %d" % os.getpid(),
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["openssl", "req", "-new"] + ec + ["-keyout", f["key"], "-out", f["csr"],
             "-subj", "/CN=localhost"],
            ["openssl", "x509", "-req", "-in", f["csr"], "-CA", f["ca"], "-CAkey", f["ca-key"],
             "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", f["cert"]]):
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError("%s failed: %s" % (" ".join(argv[:3]), r.stderr.strip()))
    # lighttpd reads the key as root before it would drop privileges; Apache
    # and nginx are not TLS kinds here. Nothing else needs them readable.
    _tls.update(dir=d, ca=f["ca"], cert=f["cert"], key=f["key"])
    return _tls


def client_context():
    """An SSLContext that verifies the server's certificate and its name
    against the test CA of tls_files() only (no system CAs)."""
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls_files()["ca"])
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def is_tls(port):
    """True when port is that of a running TLS server of this process."""
    return port in _tls_ports


def connection(port, host="127.0.0.1", timeout=None, source_address=None):
    """An http.client connection to the front end on port: HTTPS trusting
    the test CA only when it is a TLS server's port, plain HTTP otherwise.
    Not connected yet (http.client connects on the first request)."""
    kw = {"source_address": source_address}
    if timeout is not None:
        kw["timeout"] = timeout
    if port in _tls_ports:
        return http.client.HTTPSConnection(host, port, context=_tls_ports[port], **kw)
    return http.client.HTTPConnection(host, port, **kw)


def open_socket(port, host="127.0.0.1", timeout=None):
    """A connected stream socket to the front end on port, for raw bytes:
    wrapped in TLS (handshake done, certificate verified) for a TLS server."""
    s = socket.create_connection((host, port), timeout=timeout)
    if port in _tls_ports:
        try:
            return _tls_ports[port].wrap_socket(s, server_hostname=host)
        except BaseException:
            s.close()
            raise
    return s


_ports_given = set()
_ports_lock = threading.Lock()
_port_locks = []  # open lock files, one per port handed out: held until the process ends
PORT_LOCK_DIR = os.path.join(tempfile.gettempdir(), "longcall-test-ports")


def free_port():
    """A loopback TCP port free now and handed out to no other test process
    alive (tests/run-tests runs scripts two at a time) nor before by this one
    (threads of one script start servers at once). Each port handed out has
    a lock file in PORT_LOCK_DIR locked (flock) by this process until it
    ends, when the kernel drops the lock: another process skips a port whose
    file it cannot lock, so two scripts never get the same port between the
    kernel choosing it and a server binding it."""
    with _ports_lock:
        if not os.path.isdir(PORT_LOCK_DIR):
            os.makedirs(PORT_LOCK_DIR, exist_ok=True)
            try:  # any user's test processes share it (the umask would narrow makedirs' mode)
                os.chmod(PORT_LOCK_DIR, 0o1777)
            except OSError:
                pass
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            if port in _ports_given:
                continue
            fd = os.open(os.path.join(PORT_LOCK_DIR, str(port)), os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # another test process holds it
                os.close(fd)
                continue
            _port_locks.append(fd)
            _ports_given.add(port)
            return port
        raise RuntimeError("no free loopback port in 200 tries")


class Checks:
    """Prints `ok - NAME` / `not ok - NAME: why` / `skip - NAME: why` lines
    and counts failures, for the small test scripts that do not use
    lcclient's Runner. plan(n) prints the plan `1..n` up front; without it,
    exit() prints `1..N` (N results printed) as the last line."""

    def __init__(self):
        self.failed = 0
        self.total = 0
        self.planned = None

    def plan(self, n):
        """Prints `1..n`: n results will follow. Call before the first."""
        self.planned = n
        print("1..%d" % n, flush=True)

    def __call__(self, name, cond, why=""):
        print(("ok - " if cond else "not ok - ") + name + ("" if cond else ": " + why), flush=True)
        self.total += 1
        self.failed += 0 if cond else 1

    def skip(self, name, why):
        """A check that cannot run here: `skip - NAME: why`."""
        print("skip - %s: %s" % (name, why), flush=True)
        self.total += 1

    def exit(self):
        """Prints the plan if none was declared; exits 1 if a check failed."""
        if self.planned is None:
            print("1..%d" % self.total, flush=True)
        sys.exit(1 if self.failed else 0)


def _proc_table():
    """{pid: (ppid, exe path or None)} of every process, read from /proc."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        try:
            exe = os.readlink("/proc/%s/exe" % d)
        except OSError:
            exe = None
        table[int(d)] = (ppid, exe)
    return table


def descendants(root, exe=None):
    """PIDs of every process below root (optionally only those running exe)."""
    table = _proc_table()
    children = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            todo.append(c)
            if exe is None or table[c][1] == exe:
                out.append(c)
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def end_processes(proc, sig, group=True, others=(), reap=None, wait=10):
    """Ends a program and everything it started, by PID (Server.stop and
    postgres.Postgres.halt): the PIDs below proc are taken first; sig goes to
    proc's process group (group=True; proc started in a session of its own)
    or to proc alone, proc is waited for `wait` s and its group gets SIGKILL
    if it is still running; then sig goes to each PID of others (processes
    outside the group, e.g. spawn-fcgi's), every PID taken waits up to `wait`
    s in all (reap(): called meanwhile to collect an exited child) and those
    still alive get SIGKILL. proc may be None or already ended."""
    pids = (descendants(proc.pid) if proc else []) + list(others)
    if proc and proc.poll() is None:
        try:
            (os.killpg if group else os.kill)(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=wait)
    for p in others:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    deadline = time.time() + wait
    while time.time() < deadline and any(_alive(p) for p in pids):
        if reap:
            reap()
        time.sleep(0.05)
    for p in pids:  # anything left, in the group or not
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass


PG_LOCK_WRITE = "7813586462003126636"  # fcgi/store_pg.c


class _WriteLock:
    """Server.hold_write_lock()."""

    def __init__(self, srv):
        self.srv = srv
        self.db = self.psql = None

    def __enter__(self):
        if self.srv.db_uri:
            import postgres
            self.psql = subprocess.Popen(
                [os.path.join(postgres.PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-d",
                 self.srv.db_uri], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True)
            self.psql.stdin.write("BEGIN;\nSELECT pg_advisory_xact_lock(%s);\n"
                                  "SELECT 'locked';\n" % PG_LOCK_WRITE)
            self.psql.stdin.flush()
            line = ""
            deadline = time.time() + 30
            while "locked" not in line and time.time() < deadline:
                line = self.psql.stdout.readline()
                if not line:
                    raise RuntimeError("psql ended before it had the write lock")
            return self
        import sqlite3
        self.db = sqlite3.connect(os.path.join(self.srv.state, "longcall.db"), timeout=10,
                                  isolation_level=None)
        self.db.execute("BEGIN IMMEDIATE")
        return self

    def __exit__(self, *exc):
        if self.psql:
            try:
                self.psql.stdin.write("ROLLBACK;\n")
                self.psql.stdin.close()
                self.psql.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.psql.kill()
                self.psql.wait(timeout=10)
        if self.db:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.db.close()
        return False


class Server:
    """A web server + longcall instance (see the module docstring for the
    front ends). procs = how many resident backend processes: lighttpd's
    max-procs, spawn-fcgi's -F; mod_fcgid's lower limit; unused for CGI."""

    def __init__(self, procs=1, env=None, bin_path=None, conf=None, keep_state=None,
                 server=None, unit=None, down_ok=False, store=None):
        self.kind = server or SERVER
        self.store = store or STORE  # "sqlite" or "pg" (module docstring)
        # down_ok: start() accepts a /rtc/status 503 as "up" -- a backend that
        # cannot open its state answers that (tests of a full disk, damaged state)
        self.ready_status = (200, 503) if down_ok else (200,)
        self.unit = unit           # a longcall.service: start the backend as systemd would
        self.procs = procs
        # The suite plays many users from 127.0.0.1: the per-address limits
        # (README "Security") are set out of its way unless a test sets
        # them (tests/integration/test_abuse.py tests them).
        self.extra_env = dict(SUITE_ADDR_LIMITS)
        self.extra_env.update(SUITE_CALL_LIMITS)
        self.extra_env.update(env or {})
        self.bin = bin_path or BIN
        self.conf = conf or os.path.join(ROOT, "conf", CONFS[self.kind])
        self.state = keep_state or tempfile.mkdtemp(prefix="longcall-test-")
        self.port = None
        self.proc = None
        self.spawner = None        # spawn-fcgi (procs == 1: it is the backend)
        self.unit_sock = None      # unit=: the listening socket (as longcall.socket's)
        self.spawned = []          # backends spawn-fcgi forked (procs > 1)
        self.socket = os.path.join(self.state, "longcall.sock")
        self.log_path = os.path.join(self.state, "server.log")
        self.db_uri = None         # LONGCALL_TEST_STORE=pg: this Server's database
        self._own_db = False       # made by start(), dropped by cleanup()
        self.error_log = {"apache-proxy-fcgi": "apache-error.log",
                          "apache-fcgid": "apache-error.log",
                          "nginx": "nginx-error.log"}.get(self.kind)
        self.log = None

    def _env(self):
        env = dict(os.environ)
        env.update({
            "LONGCALL_ROOT": ROOT,
            "LONGCALL_BIN": self.bin,
            "LONGCALL_STATE": self.state,
            "LONGCALL_SOCKET": self.socket,
            "LONGCALL_PORT": str(self.port),
            "LONGCALL_PROCS": str(self.procs),
            "LONGCALL_DB": self.db_uri or os.path.join(self.state, "longcall.db"),
        })
        if self.db_uri:
            # where SQLite's wake file would be, so scripts find it alike
            env["LONGCALL_WAKE_FILE"] = os.path.join(self.state, "longcall.db.wake")
        if self.kind in TLS_KINDS:
            tls = tls_files()
            env.update({"LONGCALL_TLS_CERT": tls["cert"], "LONGCALL_TLS_KEY": tls["key"]})
        env.update(self.extra_env)
        return env

    def _give_state_to_run_user(self):
        import pwd
        pw = pwd.getpwnam(RUN_USER)
        os.chmod(self.state, 0o755)
        for dirpath, dirnames, filenames in os.walk(self.state):
            for n in [dirpath] + [os.path.join(dirpath, f) for f in dirnames + filenames]:
                os.lchown(n, pw.pw_uid, pw.pw_gid)

    def _spawn_backends(self, env):
        """The backend as its own process, as the Apache proxy_fcgi and nginx
        sections of the README start it: spawn-fcgi on a unix socket the web
        server's user may use, the backend running as that user too."""
        base = ["spawn-fcgi", "-s", self.socket, "-U", RUN_USER, "-G", RUN_USER, "-M", "0660",
                "-u", RUN_USER, "-g", RUN_USER]
        if self.procs == 1:   # -n: spawn-fcgi becomes the backend; its stderr is our log
            self.spawner = subprocess.Popen(base + ["-n", "--", self.bin], env=env,
                                            stdout=self.log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        else:                 # -F N: N children on one socket, spawn-fcgi exits
            pidfile = os.path.join(self.state, "spawn-fcgi.pid")
            subprocess.run(base + ["-F", str(self.procs), "-P", pidfile, "--", self.bin],
                           env=env, stdout=self.log, stderr=subprocess.STDOUT, timeout=30,
                           check=True)
            with open(pidfile) as f:
                self.spawned = [int(x) for x in f.read().split()]
        deadline = time.time() + 10
        while not os.path.exists(self.socket) and time.time() < deadline:
            time.sleep(0.02)

    def _unit_backend(self):
        """The backend as longcall.socket + longcall.service start it: the
        listening unix socket (group www-data, mode 0660) as fd 0, the
        service's ExecStart and Environment= (%S and %t meaning the state
        folder), a user of its own (nobody, as DynamicUser= would give one)
        and its StateDirectory= made for that user. The test's LONGCALL_*
        settings play the part of EnvironmentFile=/etc/default/longcall."""
        import grp
        import pwd
        import shlex
        conf = {}
        with open(self.unit) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", "[")) and "=" in line:
                    k, v = line.split("=", 1)
                    conf.setdefault(k.strip(), []).append(v.strip())
        if conf.get("StandardInput") != ["socket"]:
            raise RuntimeError("%s: StandardInput=socket expected" % self.unit)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for assignments in conf.get("Environment", []):
            for a in shlex.split(assignments):
                k, v = a.split("=", 1)
                env[k] = v.replace("%S", self.state).replace("%t", self.state)
        env.update({k: v for k, v in self.extra_env.items() if k.startswith("LONGCALL_")})
        user = pwd.getpwnam("nobody")
        for d in conf.get("StateDirectory", []):
            path = os.path.join(self.state, d)
            os.makedirs(path, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(path, 0o750)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.socket)
            os.chown(self.socket, 0, grp.getgrnam(RUN_USER).gr_gid)
            os.chmod(self.socket, 0o660)
            sock.listen(4096)
        except BaseException:
            sock.close()
            raise
        # Kept, as systemd keeps longcall.socket's: a restarted service gets
        # the same socket, and requests wait in it meanwhile.
        self.unit_sock = sock
        self._unit_start = (shlex.split(conf["ExecStart"][-1]), env, user)
        self._unit_spawn()

    def _unit_spawn(self):
        argv, env, user = self._unit_start
        self.spawner = subprocess.Popen(argv, stdin=self.unit_sock.fileno(), stdout=self.log,
                                        stderr=subprocess.STDOUT, env=env, user=user.pw_uid,
                                        group=user.pw_gid, start_new_session=True)

    def restart_unit(self, deadline=10, between=None):
        """`systemctl restart longcall` for a Server started with unit=: the
        backend gets SIGTERM (the unit's KillSignal), is waited for (up to
        deadline s, then SIGKILL), between() runs while no backend runs, and
        a new one starts on the same listening socket. Returns (exit status
        of the old one, seconds it took to exit); the status is None when it
        had to be killed."""
        old = self.spawner
        t = time.monotonic()
        old.send_signal(signal.SIGTERM)
        try:
            status = old.wait(deadline)
        except subprocess.TimeoutExpired:
            old.kill()
            old.wait()
            status = None
        took = time.monotonic() - t
        if between:
            between()
        self._unit_spawn()
        return status, took

    def _pg_conf(self):
        """A copy, in the state folder, of the lighttpd configuration (and
        of the lighttpd.conf it includes) that sets LONGCALL_DB to this
        Server's PostgreSQL database instead of the SQLite file; its path."""
        def copy(src):
            with open(src) as f:
                text = f.read()
            text = text.replace('var.lc_state + "/longcall.db"', '"%s"' % self.db_uri)
            dst = os.path.join(self.state, os.path.basename(src))
            with open(dst, "w") as f:
                f.write(text)
            return dst, text
        dst, text = copy(self.conf)
        if 'include "lighttpd.conf"' in text:
            copy(os.path.join(os.path.dirname(self.conf), "lighttpd.conf"))
        return dst

    def db_query(self, sql, args=()):
        """Rows of sql (portable SQL: it runs on SQLite and PostgreSQL; `?`
        for each of args, ints or strings) run on this Server's state, as
        tuples; integers as int, NULL as None, other values as str (a
        PostgreSQL boolean as "t"/"f", bytea as its \\x... text). The test's
        own read, beside the backend's connections."""
        if self.db_uri:
            import postgres
            parts = sql.split("?")
            if len(parts) != len(args) + 1:
                raise ValueError("db_query: %d ? for %d args" % (len(parts) - 1, len(args)))
            text = parts[0]
            for a, rest in zip(args, parts[1:]):
                lit = str(int(a)) if isinstance(a, int) else "'%s'" % str(a).replace("'", "''")
                text += lit + rest
            rows = postgres.instance().psql(self.db_uri, text)
            return [tuple(int(v) if v is not None and v.lstrip("-").isdigit() else v
                          for v in row) for row in rows]
        import sqlite3
        db = sqlite3.connect(os.path.join(self.state, "longcall.db"), timeout=30)
        try:
            return [tuple(r) for r in db.execute(sql, args).fetchall()]
        finally:
            db.close()

    def db_value(self, sql, args=()):
        """The first column of the first row of db_query (None: no row)."""
        rows = self.db_query(sql, args)
        return rows[0][0] if rows else None

    def db_bytes(self):
        """(bytes of the state, bytes of its WAL file). SQLite: page_count x
        page_size (pages still in the WAL included) and the -wal file.
        PostgreSQL: the pages of longcall's tables, indexes and their TOAST
        (the main fork of each: not the free-space and visibility maps,
        PostgreSQL's bookkeeping, made once per table by its first vacuum),
        measured after a VACUUM of the tables -- SQLite reuses a deleted
        row's space at once (its free list), PostgreSQL once (auto)vacuum
        has marked it free; without it every acknowledged transient reply
        and every rewrite of a session row would count as growth until
        autovacuum's next round -- and 0 for the WAL (PostgreSQL's is the
        server's, shared by every database)."""
        if self.db_uri:
            self.db_query("VACUUM sessions, messages, calls, batches, blocks")
            return self.db_value(
                "SELECT coalesce(sum(pg_relation_size(r.oid)), 0) FROM ("
                " SELECT c.oid FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
                " UNION ALL SELECT c.reltoastrelid FROM pg_class c"
                " WHERE c.relnamespace = 'public'::regnamespace AND c.reltoastrelid <> 0"
                " UNION ALL SELECT i.indexrelid FROM pg_class c JOIN pg_index i"
                " ON i.indrelid = c.reltoastrelid"
                " WHERE c.relnamespace = 'public'::regnamespace AND c.reltoastrelid <> 0) r"), 0
        import sqlite3
        path = os.path.join(self.state, "longcall.db")
        con = sqlite3.connect(path, timeout=10)
        try:
            pages = con.execute("PRAGMA page_count").fetchone()[0]
            size = con.execute("PRAGMA page_size").fetchone()[0]
        finally:
            con.close()
        wal = path + "-wal"
        return pages * size, os.path.getsize(wal) if os.path.exists(wal) else 0

    def hold_write_lock(self):
        """A context manager: while inside, another connection holds the
        store's write lock, as another writer (a sqlite3 shell, another
        node) would: SQLite's BEGIN IMMEDIATE on the file, PostgreSQL's
        advisory lock of fcgi/store_pg.c (PG_LOCK_WRITE) in a psql session
        kept open. Released (rolled back) on the way out."""
        return _WriteLock(self)

    def start(self, timeout=15):
        self.port = free_port()
        if self.store == "pg" and self.db_uri is None:
            import postgres
            self.db_uri = postgres.instance().create_database()
            self._own_db = True
        env = self._env()
        self.log = open(self.log_path, "ab")
        if self.kind in TLS_KINDS:
            _tls_ports[self.port] = client_context()
        if self.kind in LIGHTTPD_KINDS:
            argv = ["lighttpd", "-D", "-f", self._pg_conf() if self.db_uri else self.conf]
        else:
            self._give_state_to_run_user()
            if self.kind == "apache-fcgid":
                # mod_fcgid's processes get only FcgidInitialEnv variables: the
                # test's backend settings go in the file the shipped conf
                # includes for site-local settings.
                fcgid_env = dict(self.extra_env)
                if self.db_uri:  # after the shipped file's LONGCALL_DB: this one counts
                    fcgid_env.update({k: env[k] for k in ("LONGCALL_DB", "LONGCALL_WAKE_FILE")})
                with open(os.path.join(self.state, "longcall-fcgid-env.conf"), "w") as f:
                    for k, v in sorted(fcgid_env.items()):
                        if k.startswith("LONGCALL_"):
                            f.write('FcgidInitialEnv %s "%s"\n' % (
                                k, v.replace("\\", "\\\\").replace('"', '\\"')))
            if self.kind in ("apache-proxy-fcgi", "nginx"):
                if self.unit:
                    self._unit_backend()
                else:
                    self._spawn_backends(env)
            if self.kind == "nginx":
                # nginx reads no environment variables: a copy of the shipped
                # file with its @LONGCALL_*@ placeholders replaced.
                with open(self.conf) as f:
                    text = f.read()
                for k in ("ROOT", "STATE", "SOCKET", "PORT"):
                    text = text.replace("@LONGCALL_%s@" % k, env["LONGCALL_" + k])
                conf = os.path.join(self.state, "nginx.conf")
                with open(conf, "w") as f:
                    f.write(text)
                argv = ["nginx", "-c", conf, "-e", os.path.join(self.state, self.error_log),
                        "-g", "daemon off;"]
            else:
                argv = ["apache2", "-f", self.conf, "-DFOREGROUND"]
        self.proc = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise RuntimeError("%s exited: %s" % (argv[0], self.read_log()))
            try:
                st, _, _ = self.request("GET", "/rtc/status", timeout=2)
                if st in self.ready_status:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not answer /rtc/status in time: " + self.read_log())

    def backend_pids(self):
        """PIDs of the resident backend processes: lighttpd's and mod_fcgid's
        children running the backend, or the spawn-fcgi ones. Plain CGI has
        none (a process per request): there the web server itself stands in,
        so that "no backend died" checks still mean "nothing crashed"."""
        if self.kind in ("lighttpd", "lighttpd-tls"):
            out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True,
                                 text=True)
            return [int(p) for p in out.stdout.split()]
        if self.kind == "cgi":
            return [self.proc.pid] if self.proc and self.proc.poll() is None else []
        if self.kind == "apache-fcgid":
            return descendants(self.proc.pid, os.path.realpath(self.bin))
        if self.spawner is not None:
            return [self.spawner.pid] if self.spawner.poll() is None else []
        return [p for p in self.spawned if _alive(p)]

    def _logs(self, tail=None):
        text = ""
        for name in ("server.log", self.error_log):
            if not name:
                continue
            try:
                with open(os.path.join(self.state, name), "rb") as f:
                    part = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            text += part[-tail:] if tail else part
        return text

    def read_log(self):
        """The end of each log, for error messages."""
        return self._logs(tail=4000)

    def log_text(self):
        """The whole server log and the web server's error log (the backend's
        stderr is in one of them), for crash checks."""
        return self._logs()

    def stop(self):
        """Stops the web server, its children and the spawned backends by PID;
        SIGKILL for whatever is left after 10 s."""
        end_processes(self.proc, signal.SIGTERM,
                      others=self.spawned + ([self.spawner.pid] if self.spawner else []),
                      reap=self.spawner.poll if self.spawner else None)
        if self.spawner:
            self.spawner.wait(timeout=10)
            self.spawner = None
        self.spawned = []
        if self.unit_sock is not None:
            self.unit_sock.close()
            self.unit_sock = None
        if self.log:
            self.log.close()
            self.log = None
        _tls_ports.pop(self.port, None)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.state, ignore_errors=True)
        if self.db_uri and self._own_db:  # the backends are gone: its database goes too
            import postgres
            postgres.instance().drop_database(self.db_uri)
            self._own_db = False

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.cleanup()  # start() stopped what it started; remove the state too
            raise

    def __exit__(self, *exc):
        self.cleanup()
        return False

    def request(self, method, path, body=None, headers=None, timeout=40, source=None):
        """One HTTP request on a fresh connection. Returns (status, headers dict
        with lower-case names, body bytes). source: the loopback address to
        send from ("127.0.0.2", ...: the backend sees another client address)."""
        c = connection(self.port, timeout=timeout,
                       source_address=(source, 0) if source else None)
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

    @property
    def scheme(self):
        """"https" for a TLS front end, else "http" (for URLs and Origins)."""
        return "https" if self.kind in TLS_KINDS else "http"

    def json(self, method, path, body=None, headers=None, timeout=40, source=None):
        st, h, data = self.request(method, path, body, headers, timeout, source)
        return st, json.loads(data) if data else None
