"""A real PostgreSQL for the tests (issue 15): Debian's server binaries
(/usr/lib/postgresql/15/bin, package postgresql-15, which `make test`
installs), `initdb` into a temporary folder as the unprivileged `postgres`
system user the package makes, listening on 127.0.0.1 on a free port (and a
unix socket in that folder only), trust authentication for loopback. Stopped
by PID (SIGQUIT to the postmaster: PostgreSQL's immediate shutdown) at the
end, even on failure, and the folder removed.

Usage:
    with Postgres() as pg:
        uri = pg.create_database()      # postgresql://postgres@127.0.0.1:PORT/lc_1
        rows = pg.query(uri, "SELECT count(*) FROM sessions")   # [("3",)]

`instance()` gives one PostgreSQL per test process, started on first use and
stopped at exit (harness.Server uses it when LONGCALL_TEST_STORE=pg).
"""
import atexit
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import harness

PG_BIN = "/usr/lib/postgresql/15/bin"
PG_USER = "postgres"


def available():
    """None when a PostgreSQL can be started here, else why not."""
    if not os.path.exists(os.path.join(PG_BIN, "postgres")):
        return "%s/postgres is missing (Debian package postgresql-15)" % PG_BIN
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return "no user %s (the postgresql-15 package makes it)" % PG_USER
    if os.geteuid() != 0:
        return "the tests run PostgreSQL as %s, which needs root" % PG_USER
    return None


class Postgres:
    """One PostgreSQL server in a temporary folder (see the module docstring)."""

    def __init__(self, durable=False, settings=()):
        # durable: PostgreSQL's own fsync and full_page_writes (on), as a
        # site runs it (make bench, BENCH_STORE=pg); else off (the tests).
        # settings: more "name=value" server settings (postgres -c).
        self.durable = durable
        self.settings = list(settings)
        self.dir = None
        self.port = None
        self.proc = None
        self.log_path = None
        self._n = 0
        self._lock = threading.Lock()

    def _as_pg(self, argv, **kw):
        pw = pwd.getpwnam(PG_USER)
        return subprocess.run(argv, user=pw.pw_uid, group=pw.pw_gid, capture_output=True,
                              text=True, timeout=kw.pop("timeout", 60), **kw)

    def start(self, timeout=60):
        why = available()
        if why:
            raise RuntimeError("cannot start PostgreSQL: " + why)
        pw = pwd.getpwnam(PG_USER)
        self.dir = tempfile.mkdtemp(prefix="longcall-pg-")
        os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        os.chmod(self.dir, 0o700)
        data = os.path.join(self.dir, "data")
        r = self._as_pg([os.path.join(PG_BIN, "initdb"), "-D", data, "-U", PG_USER,
                         "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"], cwd=self.dir)
        if r.returncode != 0:
            self.stop()
            raise RuntimeError("initdb failed: " + (r.stderr or r.stdout).strip()[-2000:])
        self.port = harness.free_port()
        self.log_path = os.path.join(self.dir, "postgres.log")
        with open(self.log_path, "ab"):
            pass
        os.chown(self.log_path, pw.pw_uid, pw.pw_gid)
        return self._launch(timeout)

    def _launch(self, timeout):
        """Starts the postmaster on the folder and port of start() and waits
        until it accepts connections."""
        pw = pwd.getpwnam(PG_USER)
        data = os.path.join(self.dir, "data")
        log = open(self.log_path, "ab")
        # fsync off: the tests never crash the machine, only processes (a
        # commit is in PostgreSQL's shared buffers and WAL either way), and
        # the machine is shared. Connections: every backend process of every
        # Server of a script, and CGI's one per request.
        argv = [os.path.join(PG_BIN, "postgres"), "-D", data, "-p", str(self.port),
                "-k", self.dir, "-c", "listen_addresses=127.0.0.1",
                "-c", "max_connections=300",
                "-c", "shared_buffers=64MB", "-c", "log_min_messages=warning"]
        if not self.durable:
            argv += ["-c", "fsync=off", "-c", "full_page_writes=off"]
        for kv in self.settings:
            argv += ["-c", kv]
        self.proc = subprocess.Popen(argv, user=pw.pw_uid, group=pw.pw_gid, cwd=self.dir,
                                     stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                text = self.read_log()
                self.stop()
                raise RuntimeError("postgres exited: " + text)
            r = subprocess.run([os.path.join(PG_BIN, "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port)], capture_output=True, timeout=10)
            if r.returncode == 0:
                return self
            time.sleep(0.1)
        text = self.read_log()
        self.stop()
        raise RuntimeError("postgres did not accept connections in time: " + text)

    def halt(self):
        """Stops the server by PID (SIGQUIT: immediate shutdown, every
        connection cut) and keeps its folder, for resume()."""
        children = harness.descendants(self.proc.pid) if self.proc else []
        if self.proc and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        for pid in children:  # any the postmaster left (it should leave none)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc = None

    def resume(self, timeout=60):
        """Starts the server halt() stopped, on the same folder and port."""
        return self._launch(timeout)

    def read_log(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")[-4000:]
        except (OSError, TypeError):
            return ""

    def uri(self, dbname="postgres"):
        return "postgresql://%s@127.0.0.1:%d/%s" % (PG_USER, self.port, dbname)

    def psql(self, uri, sql, timeout=60):
        """Runs sql with psql on the database of uri. Returns its rows as
        tuples of strings (NULL as None); raises RuntimeError on an error."""
        r = subprocess.run([os.path.join(PG_BIN, "psql"), "-X", "-q", "-A", "-t", "-F", "\x1f",
                            "-R", "\x1e", "-P", "null=\x1d", "-v", "ON_ERROR_STOP=1",
                            "-d", uri, "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.strip())
        rows = []
        for rec in r.stdout.rstrip("\n").split("\x1e"):
            rec = rec.strip("\n")
            if rec == "":
                continue
            rows.append(tuple(None if v == "\x1d" else v for v in rec.split("\x1f")))
        return rows

    query = psql

    def create_database(self, prefix="lc"):
        """CREATE DATABASE a fresh one; returns its URI."""
        with self._lock:
            self._n += 1
            name = "%s_%d" % (prefix, self._n)
        self.psql(self.uri(), 'CREATE DATABASE "%s"' % name)
        return self.uri(name)

    def drop_database(self, uri):
        """DROP DATABASE uri's database (its connections ended first)."""
        name = uri.rsplit("/", 1)[1]
        try:
            self.psql(self.uri(), 'DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)
        except RuntimeError:
            pass

    def postmaster_pid(self):
        return self.proc.pid if self.proc else None

    def stop(self):
        """halt(), then the folder goes."""
        self.halt()
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


_instance = None
_instance_lock = threading.Lock()


def instance():
    """The PostgreSQL of this test process: started on the first call,
    stopped (by PID) and removed at exit."""
    global _instance
    with _instance_lock:
        if _instance is None:
            pg = Postgres()
            atexit.register(pg.stop)
            pg.start()
            _instance = pg
        return _instance
