#!/usr/bin/env python3
"""Turns tests/cases/NAME/input into fuzz_proto scripts (tests/fuzz/fuzz_proto.c
describes the encoding), two per case: as written, in CGI mode; and in the
deferred-acknowledgement mode with a poll of every session after each line.
Sessions are numbered in order of first mention (modulo 3: fuzz_proto has
three; "expire" advances the clock past the expiry, ending them all;
"ring-timeout" past the ring timeout).
Usage: cases2corpus.py OUTDIR (default tests/fuzz/corpus/proto)."""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = os.path.join(HERE, "..", "cases")
LINE = re.compile(r"^([A-Za-z0-9_.-]+)\s*([<>!])\s?(.*)$")
OP_RAW, OP_POLL, OP_CLOSE, OP_MAINT = 1, 2, 3, 4
MAINT_EXPIRY = 3  # op_maint's clock step past the session expiry
MAINT_RING = 2    # and the one past the ring timeout (30 s)


def script(lines, deferred):
    out = bytearray([1 if deferred else 0])
    labels = []
    for label, kind, rest in lines:
        if label not in labels:
            labels.append(label)
        s = labels.index(label) % 3
        if kind == ">":
            body = rest.encode()
            out += bytes([OP_RAW, s, 0, len(body) & 255, len(body) >> 8]) + body
        elif kind == "!" and rest.strip() == "expire":
            # Every session expires (fuzz_proto cannot stop one alone).
            out += bytes([OP_MAINT, MAINT_EXPIRY])
        elif kind == "!" and rest.strip() == "ring-timeout":
            out += bytes([OP_MAINT, MAINT_RING])
        elif kind == "!":
            out += bytes([OP_CLOSE, s, 1])
        if deferred:
            for i in range(min(len(labels), 3)):
                out += bytes([OP_POLL, i, 0])
    return bytes(out)


def main():
    outdir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus", "proto")
    os.makedirs(outdir, exist_ok=True)
    n = 0
    for name in sorted(os.listdir(CASES)):
        path = os.path.join(CASES, name, "input")
        if not os.path.isfile(path):
            continue
        lines = []
        with open(path, encoding="utf-8") as f:
            for raw in f:
                raw = raw.rstrip("\n")
                if not raw.strip() or raw.lstrip().startswith("#"):
                    continue
                m = LINE.match(raw)
                if m and m.group(2) in ">!":
                    lines.append(m.groups())
        for deferred in (0, 1):
            with open(os.path.join(outdir, "case-%s-%d" % (name, deferred)), "wb") as f:
                f.write(script(lines, deferred))
            n += 1
    print("%d scripts written to %s" % (n, outdir))


if __name__ == "__main__":
    main()
