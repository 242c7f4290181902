#!/usr/bin/env python3
"""`longcall --check` and `longcall --version`, what an operator runs before
a restart (issue 16): the effective settings with secrets masked, the
database's schema version and size and whether migrations would run,
exit status 0 only when the backend would start; nothing on disk changes.
A CGI request cannot make the backend print any of it."""
import glob
import os
import re
import sqlite3
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import BIN, ROOT, Checks  # noqa: E402

check = Checks()
SECRET = "s3cr3t-turn-Secret-4242"
ICE_PASSWORD = "ice-Password-7373"
PG_PASSWORD = "pg-Password-5151"


def run(args, env=None, user=None, cwd=None):
    e = {k: v for k, v in os.environ.items() if k.startswith(("ASAN", "UBSAN", "LSAN", "PATH"))}
    e.update(env or {})
    return subprocess.run([BIN] + args, env=e, capture_output=True, text=True, timeout=60,
                          user=user, cwd=cwd)


def latest_schema():
    return len(glob.glob(os.path.join(ROOT, "db", "[0-9][0-9][0-9]-*.sql")))


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        return re.search(r"^VERSION\s*=\s*(\S+)", f.read(), re.M).group(1)


def old_database(path, version):
    """A database as a build with only the first `version` migrations left it."""
    db = sqlite3.connect(path)
    for f in sorted(glob.glob(os.path.join(ROOT, "db", "[0-9][0-9][0-9]-*.sql")))[:version]:
        with open(f) as sql:
            db.executescript(sql.read())
    db.execute("PRAGMA user_version = %d" % version)
    db.commit()
    db.close()


def cgi_session(db):
    """One CGI request (a session), which creates and migrates the database."""
    p = run([], {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "POST",
                 "REQUEST_URI": "/rtc/session", "QUERY_STRING": "", "CONTENT_LENGTH": "0",
                 "LONGCALL_DB": db})
    return p


def main():
    latest = latest_schema()
    check.plan(15)
    p = run(["--version"])
    check("--version prints the Makefile's version", p.returncode == 0 and
          p.stdout.strip() == "longcall " + makefile_version(), repr(p.stdout + p.stderr))
    with tempfile.TemporaryDirectory(prefix="longcall-check-") as d:
        os.chmod(d, 0o755)
        fresh = os.path.join(d, "fresh.db")
        p = run(["--check"], {"LONGCALL_DB": fresh})
        check("--check on a database not made yet: exit 0, says the first start creates it",
              p.returncode == 0 and "not made yet" in p.stdout and
              p.stdout.rstrip().splitlines()[-1].startswith("ok:"), p.stdout[-400:] + p.stderr)
        check("--check creates nothing", os.listdir(d) == [], repr(os.listdir(d)))
        check("--check prints the effective settings, defaults filled in",
              "LONGCALL_DB=%s\n" % fresh in p.stdout and "LONGCALL_POLL_MAX=30\n" in p.stdout and
              "LONGCALL_WAKE_FILE=%s.wake\n" % fresh in p.stdout, p.stdout[:600])

        made = os.path.join(d, "made.db")
        c = cgi_session(made)
        p = run(["--check"], {"LONGCALL_DB": made})
        m = re.search(r"schema version (\d+) \(this build: (\d+)\), (\d+) bytes", p.stdout)
        check("--check on a current database: its schema version and size, nothing to migrate",
              c.returncode == 0 and p.returncode == 0 and m and int(m.group(1)) == latest and
              int(m.group(2)) == latest and int(m.group(3)) > 0 and
              "none to run" in p.stdout, p.stdout[-500:] + p.stderr + c.stderr[-300:])

        old = os.path.join(d, "old.db")
        old_database(old, latest - 3)
        before = os.stat(old)
        p = run(["--check"], {"LONGCALL_DB": old})
        check("--check on an older schema says the migrations would run, exit 0",
              p.returncode == 0 and "would run at start, from version %d to %d" % (
                  latest - 3, latest) in p.stdout, p.stdout[-500:] + p.stderr)
        db = sqlite3.connect(old)
        v = db.execute("PRAGMA user_version").fetchone()[0]
        db.close()
        after = os.stat(old)
        check("--check migrates nothing (the file is as it was)",
              v == latest - 3 and after.st_size == before.st_size and
              after.st_mtime_ns == before.st_mtime_ns and
              not os.path.exists(old + "-wal"), "user_version %s" % v)

        p = run(["--check"], {
            "LONGCALL_DB": made, "LONGCALL_TURN_SECRET": SECRET,
            "LONGCALL_TURN_URIS": "turn:127.0.0.1:3478",
            "LONGCALL_ICE_SERVERS": '[{"urls":"turn:127.0.0.1","username":"u","credential":"%s"}]'
                                    % ICE_PASSWORD})
        out = p.stdout + p.stderr
        check("--check never prints a secret (TURN secret, ICE credential)",
              p.returncode == 0 and SECRET not in out and ICE_PASSWORD not in out and
              "(masked)" in out and "not shown" in out, out[-800:])
        p = run(["--check"], {"LONGCALL_DB": "postgresql://longcall:%s@127.0.0.1:1/x" % PG_PASSWORD,
                              "LONGCALL_WAKE_FILE": os.path.join(d, "pg.wake")})
        out = p.stdout + p.stderr
        check("--check on an unreachable PostgreSQL: exit 1 with the reason, its password masked",
              p.returncode == 1 and PG_PASSWORD not in out and "problem:" in p.stdout and
              "127.0.0.1" in p.stdout, out[-600:])

        newer = os.path.join(d, "newer.db")
        db = sqlite3.connect(newer)
        db.execute("CREATE TABLE t (x)")
        db.execute("PRAGMA user_version = 99")
        db.commit()
        db.close()
        p = run(["--check"], {"LONGCALL_DB": newer})
        check("--check on a database from a newer build: exit 1, what to do",
              p.returncode == 1 and "newer longcall (schema 99" in p.stdout and
              "upgrade longcall or restore a backup" in p.stdout, p.stdout[-400:])
        garbage = os.path.join(d, "garbage.db")
        with open(garbage, "wb") as f:
            f.write(b"this is not a database\n" * 400)
        p = run(["--check"], {"LONGCALL_DB": garbage})
        check("--check on a file that is not a database: exit 1, what to do",
              p.returncode == 1 and "not a longcall database" in p.stdout and
              "restore a backup" in p.stdout, p.stdout[-400:])
        p = run(["--check"], {"LONGCALL_DB": made, "LONGCALL_POLL_MAX": "abc"})
        check("--check with a wrong setting: exit 1, the variable named",
              p.returncode == 1 and "LONGCALL_POLL_MAX" in p.stderr and "not ready" in p.stdout,
              p.stdout + p.stderr)
        locked = os.path.join(d, "locked")
        os.mkdir(locked, 0o755)  # root's: nobody may not write it
        p = run(["--check"], {"LONGCALL_DB": os.path.join(locked, "x.db")}, user="nobody",
                cwd="/")
        check("--check as a user who may not create the database: exit 1, says whose folder",
              p.returncode == 1 and "not writable" in p.stdout and locked in p.stdout,
              p.stdout[-500:] + p.stderr)

        p = run(["--check"], {"GATEWAY_INTERFACE": "CGI/1.1", "REQUEST_METHOD": "GET",
                              "REQUEST_URI": "/rtc/x?--check", "QUERY_STRING": "--check",
                              "CONTENT_LENGTH": "0", "LONGCALL_DB": made,
                              "LONGCALL_TURN_SECRET": SECRET,
                              "LONGCALL_TURN_URIS": "turn:127.0.0.1:3478"})
        check("under CGI an argument --check (a query string without =) is not obeyed",
              p.stdout.startswith("Status: 404") and "LONGCALL_DB" not in p.stdout and
              SECRET not in p.stdout, p.stdout[:300])
        p = run(["--frobnicate"])
        check("an unknown argument: usage on stderr, exit 2",
              p.returncode == 2 and "usage:" in p.stderr and p.stdout == "", p.stderr)
    check.exit()


if __name__ == "__main__":
    main()
