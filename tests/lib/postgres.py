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
import select
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


PSQL_FORMAT = ["-X", "-q", "-A", "-t", "-F", "\x1f", "-R", "\x1e", "-P", "null=\x1d"]
_END = b" \x01lc-end\n"  # after each statement's rows: psql's :ERROR (true/false), then this


def _rows(text):
    """psql's unaligned output (PSQL_FORMAT) as tuples of strings, NULL as None."""
    rows = []
    for rec in text.rstrip("\n").split("\x1e"):
        rec = rec.strip("\n")
        if rec == "":
            continue
        rows.append(tuple(None if v == "\x1d" else v for v in rec.split("\x1f")))
    return rows


class _Session:
    """A psql process reading statements from a pipe, for Postgres.psql():
    each statement is followed by `\\echo :ERROR` and a marker, and its
    answer read up to the marker."""

    def __init__(self, uri):
        self.lock = threading.Lock()
        self.proc = subprocess.Popen([os.path.join(PG_BIN, "psql")] + PSQL_FORMAT + ["-d", uri],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        self.buf = b""

    def alive(self):
        return self.proc.poll() is None

    def run(self, statement, timeout):
        """The output of one statement, or None when it failed or psql ended.
        Raises subprocess.TimeoutExpired (the session killed) after timeout s."""
        try:
            self.proc.stdin.write(statement.encode() + b";\n\\echo :ERROR \x01lc-end\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            self.close()
            return None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while _END not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.close()
                raise subprocess.TimeoutExpired(["psql"], timeout)
            chunk = os.read(fd, 65536)
            if not chunk:
                self.close()
                return None
            self.buf += chunk
        head, self.buf = self.buf.split(_END, 1)
        out, _, error = head.rpartition(b"\n") if b"\n" in head else (b"", b"", head)
        if error != b"false":
            return None
        return out.decode("utf-8", "replace")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(timeout=10)
        else:
            self.proc.wait()


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
        self._sessions = {}  # uri -> _Session (psql)

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
        self.close_sessions()
        # SIGQUIT to the postmaster alone (it ends its children itself), then
        # SIGKILL to its group and to any child it left: harness's sequence.
        harness.end_processes(self.proc, signal.SIGQUIT, group=False)
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

    def _psql_once(self, uri, sql, timeout=60):
        """psql -c sql: a process and a connection of its own."""
        r = subprocess.run([os.path.join(PG_BIN, "psql")] + PSQL_FORMAT + [
                            "-v", "ON_ERROR_STOP=1", "-d", uri, "-c", sql],
                           capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError("psql: %s" % r.stderr.strip())
        return _rows(r.stdout)

    def psql(self, uri, sql, timeout=60):
        """Runs sql with psql on the database of uri. Returns its rows as
        tuples of strings (NULL as None); raises RuntimeError on an error.
        A single statement without a backslash goes through a psql session
        kept open for uri (a process and a connection per query cost about
        a quarter of a second here: test_abuse.py measures the database
        twice per request); the rest, a failed statement (for its error), a
        session that ended (PostgreSQL halted) or is busy in another thread,
        through `psql -c` as before."""
        body = sql.strip().rstrip(";").strip()
        if ";" in body or "\\" in body:
            return self._psql_once(uri, sql, timeout)
        with self._lock:
            sess = self._sessions.get(uri)
            if sess is None or not sess.alive():
                sess = self._sessions[uri] = _Session(uri)
        if not sess.lock.acquire(blocking=False):
            return self._psql_once(uri, sql, timeout)
        try:
            out = sess.run(body, timeout)
        finally:
            sess.lock.release()
        if out is None:  # the statement failed, or the session ended: the error as psql -c gives it
            return self._psql_once(uri, sql, timeout)
        return _rows(out)

    def close_sessions(self, uri=None):
        """Ends the psql sessions (of uri, or all) kept by psql()."""
        with self._lock:
            uris = [u for u in self._sessions if uri is None or u == uri]
            gone = [self._sessions.pop(u) for u in uris]
        for sess in gone:
            sess.close()

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
        self.close_sessions(uri)
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
