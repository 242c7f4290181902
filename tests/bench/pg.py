#!/usr/bin/env python3
"""make bench's PostgreSQL (BENCH_STORE=pg, tests/bench/run.sh): starts one
as tests/lib/postgres.py does for the tests (Debian's server binaries,
initdb into a temporary folder as the unprivileged postgres user, 127.0.0.1
on a free port) but with PostgreSQL's default durability (fsync and
full_page_writes on, synchronous_commit on), and leaves it running:

    python3 tests/bench/pg.py start [NAME=VALUE...]
        prints "POSTMASTER_PID FOLDER PORT"; each NAME=VALUE is a server
        setting (postgres -c), e.g. synchronous_commit=off

run.sh stops it by that PID (SIGQUIT) and removes the folder, on any exit.
Exit status 1 with the reason on stderr when it cannot start."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
import postgres  # noqa: E402


def main():
    if sys.argv[1:2] != ["start"] or not all("=" in a for a in sys.argv[2:]):
        print("usage: pg.py start [NAME=VALUE...]", file=sys.stderr)
        return 2
    try:
        pg = postgres.Postgres(durable=True, settings=sys.argv[2:]).start()
    except RuntimeError as e:
        print("bench: %s" % e, file=sys.stderr)
        return 1
    print(pg.proc.pid, pg.dir, pg.port)
    return 0


if __name__ == "__main__":
    sys.exit(main())
