#!/usr/bin/env python3
"""Self-test of tests/run-tests: runs the runner on each fake test program in
fake/ alone (`run-tests --only-programs FILE --limit 3`) and checks that its
last line, `N passed, N failed`, and its exit status show what the program
did: a crash midway, a hang, a non-zero exit with all `ok` lines, fewer or
more results than planned, no plan, a signal -- each must count as failed;
an honest program, one with its plan last, and one with a skip line must
not (and the skip must not count as passed), nor one that exits 1 for a
failure the runner's SKIP table excuses. Then a TESTS filter that runs
no sanitized script must not count the sanitizer check. `make test` runs
this first (stage 0 of run-tests)."""
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUNNER = os.path.join(ROOT, "tests", "run-tests")
LIMIT = 3  # s: the runner's time limit of each fake program here

# fake program: (what it does, expected last line, a reason the runner must name)
CASES = [
    ("crash_midway.py", "crashes midway (uncaught exception, exit 1) after 2 of 3 ok lines",
     "2 passed, 2 failed", "1 of 3 planned results missing"),
    ("hang.sh", "hangs after 1 of 2 ok lines, with a child and a server of its own",
     "1 passed, 2 failed", "killed after"),
    ("hang_printing.sh", "never ends, printing a line every 10 ms", "0 passed, 2 failed",
     "killed after"),
    ("nonzero_all_ok.sh", "exits 1 with all its ok lines",
     "2 passed, 1 failed", "exited with status 1"),
    ("short_exit0.sh", "exits 0 with 2 of 3 planned results",
     "2 passed, 1 failed", "1 of 3 planned results missing"),
    ("no_plan.sh", "prints no plan", "2 passed, 1 failed", "no plan"),
    ("signal.sh", "is killed by SIGSEGV after 1 of 2 ok lines",
     "1 passed, 2 failed", "SIGSEGV"),
    ("too_many.sh", "prints 2 results for a plan of 1", "2 passed, 1 failed",
     "2 results, 1 planned"),
    ("honest_failure.sh", "reports its own failure and exits 1 (one failure, not two)",
     "1 passed, 1 failed", "two: it broke"),
    ("honest.sh", "passes honestly", "2 passed, 0 failed", None),
    ("plan_last.sh", "passes honestly, its plan as the last line", "2 passed, 0 failed", None),
    ("skips.sh", "passes 2 and skips 1 (the skip not counted as passed)",
     "2 passed, 0 failed", "1 skipped"),
    ("table_skip.sh", "exits 1 for a failure the SKIP table excuses (--skip)",
     "1 passed, 0 failed", "1 skipped"),
]


def runner(args, env):
    e = {k: v for k, v in os.environ.items() if k not in ("TESTS", "SERVERS")}
    e.update(env)
    t = time.monotonic()
    p = subprocess.run([sys.executable, RUNNER] + args, capture_output=True, text=True,
                       env=e, timeout=120)
    return p, time.monotonic() - t


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def main():
    print("1..%d" % (len(CASES) + 1), flush=True)
    failed = 0
    for prog, what, want, reason in CASES:
        name = "the runner counts a program that %s as %s" % (what, want)
        pids = tempfile.NamedTemporaryFile(prefix="selftest-pids-", delete=False)
        pids.close()
        try:
            p, took = runner(["--only-programs", os.path.join(HERE, "fake", prog),
                              "--limit", str(LIMIT), "--skip", "cannot apply here"],
                             {"SELFTEST_PIDS": pids.name})
            time.sleep(0.2)
            left = [int(x) for x in open(pids.name).read().split()]
            left = [x for x in left if alive(x)]
        except subprocess.TimeoutExpired:
            p, took, left = None, 120, []
        finally:
            os.unlink(pids.name)
        problems = []
        if p is None:
            problems.append("the runner itself hung (120 s)")
        else:
            lines = p.stdout.rstrip("\n").split("\n")
            if lines[-1] != want:
                problems.append("last line %r, expected %r" % (lines[-1], want))
            if p.returncode != (1 if not want.endswith(" 0 failed") else 0):
                problems.append("runner exit status %d" % p.returncode)
            if reason and reason not in p.stdout:
                problems.append("the output does not say %r" % reason)
            if took > LIMIT + 20:
                problems.append("the runner took %.0f s with a limit of %d s" % (took, LIMIT))
            if left:
                problems.append("processes it started still run: %s" % left)
            if problems:
                problems.append("output: " + " | ".join(lines[-12:]))
        failed += bool(problems)
        print("ok - %s" % name if not problems else "not ok - %s: %s" % (name, "; ".join(problems)),
              flush=True)
    # A filter that selects no sanitized script: no sanitizer check counted.
    name = "TESTS matching no program: 0 passed, 0 failed, the sanitizer check not counted"
    try:
        p, _ = runner([], {"TESTS": "no-such-test-program", "SERVERS": ""})
        lines = p.stdout.rstrip("\n").split("\n")
        ok = (lines[-1] == "0 passed, 0 failed" and p.returncode == 0 and
              "sanitizer check not counted" in p.stdout)
        why = "" if ok else "exit %d, output: %s" % (p.returncode, " | ".join(lines[-8:]))
    except subprocess.TimeoutExpired:
        ok, why = False, "the runner hung (120 s)"
    failed += not ok
    print("ok - %s" % name if ok else "not ok - %s: %s" % (name, why), flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
