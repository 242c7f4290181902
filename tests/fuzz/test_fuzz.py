#!/usr/bin/env python3
"""Replays the fuzz corpora and runs each libFuzzer target briefly.

For every tests/fuzz/fuzz_NAME.c, two results:
  ok - fuzz_NAME replays its N corpus inputs with no finding
  ok - fuzz_NAME runs S seconds with no finding
The programs are build/fuzz/fuzz_NAME (`make fuzz-build`); a missing one is
a failure (make test builds them). The short run starts from the corpus in
tests/fuzz/corpus/NAME (read only); what it finds new goes to a scratch
folder under build/fuzz/, a crashing input to build/fuzz/crash/NAME-*.
S is FUZZ_SECONDS (default 5). Each program runs niced, one at a time, and
is killed (its process group) if it outlives its time limit.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.path.join(ROOT, "build", "fuzz")
SECONDS = int(os.environ.get("FUZZ_SECONDS", "5"))


def run(cmd, limit):
    """Runs cmd niced in its own process group; returns (status, output)
    with status None when it was killed at the limit."""
    p = subprocess.Popen(["nice", "-n", "10"] + cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    try:
        out, _ = p.communicate(timeout=limit)
        return p.returncode, out.decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        return None, out.decode("utf-8", "replace")


def finding(out):
    """The line that says what went wrong, for the not ok reason."""
    keys = ("fuzz_", "SUMMARY:", "ERROR:", "runtime error", "Test unit written")
    for key in keys:
        for line in out.splitlines():
            if key in line and "Running" not in line and "INFO" not in line:
                return line.strip()[:300]
    lines = [l for l in out.splitlines() if l.strip()]
    return lines[-1][:300] if lines else "no output"


def main():
    names = sorted(os.path.basename(p)[len("fuzz_"):-2]
                   for p in glob.glob(os.path.join(HERE, "fuzz_*.c")))
    print("1..%d" % (2 * len(names)), flush=True)
    os.makedirs(os.path.join(BUILD, "crash"), exist_ok=True)
    failed = 0
    for n in names:
        prog = os.path.join(BUILD, "fuzz_" + n)
        corpus = os.path.join(HERE, "corpus", n)
        inputs = sorted(glob.glob(os.path.join(corpus, "*")))
        flags_file = os.path.join(HERE, "fuzz_%s.flags" % n)
        flags = open(flags_file).read().split() if os.path.exists(flags_file) else []
        crash = ["-artifact_prefix=" + os.path.join(BUILD, "crash", n + "-")]
        replay = "fuzz_%s replays its %d corpus inputs with no finding" % (n, len(inputs))
        brief = "fuzz_%s runs %d seconds with no finding" % (n, SECONDS)
        if not os.access(prog, os.X_OK):
            for t in (replay, brief):
                print("not ok - %s: %s is not built (make fuzz-build)" % (t, prog), flush=True)
            failed += 2
            continue
        # Replay: each input once, as files (no fuzzing).
        if not inputs:
            print("not ok - %s: the corpus %s is empty" % (replay, corpus), flush=True)
            failed += 1
        else:
            rc, out = run([prog] + flags + crash + inputs, 120 + 2 * len(inputs))
            executed = out.count("Executed ")
            if rc == 0 and executed == len(inputs):
                print("ok - %s" % replay, flush=True)
            else:
                why = "killed at its time limit" if rc is None else finding(out)
                print("not ok - %s: exit %s, %d of %d executed: %s"
                      % (replay, rc, executed, len(inputs), why), flush=True)
                failed += 1
        # A short run from the corpus; new inputs into a scratch folder.
        scratch = tempfile.mkdtemp(prefix="new-%s-" % n, dir=BUILD)
        try:
            rc, out = run([prog, "-max_total_time=%d" % SECONDS, "-print_final_stats=1"]
                          + flags + crash + [scratch, corpus], 3 * SECONDS + 120)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        execs = [l.split()[-1] for l in out.splitlines()
                 if l.startswith("stat::number_of_executed_units")]
        if rc == 0 and execs:
            print("ok - %s (%s executions)" % (brief, execs[-1]), flush=True)
        else:
            why = "killed at its time limit" if rc is None else finding(out)
            print("not ok - %s: exit %s: %s" % (brief, rc, why), flush=True)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
