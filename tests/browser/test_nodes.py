#!/usr/bin/env python3
"""Browser test 1 on two nodes (issue 15, part 2): the real call of
call.js (two headless Chromium pages, video frames) with both pages served
through nginx as a round-robin balancer with no stickiness over two nodes
(each its own lighttpd, backend, state folder and wake file) that share one
PostgreSQL (tests/integration/test_nodes.py's Nodes and Balancer): every
request goes to whichever node nginx picks. Screenshots into
tests/artifacts/nodes/."""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import ARTIFACTS, ROOT, Checks, ready, run_node  # noqa: E402

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import postgres  # noqa: E402
from test_nodes import Balancer, Nodes  # noqa: E402

check = Checks()
if ready(check):
    why = postgres.available() or (None if shutil.which("nginx") else "nginx is not installed")
    if why:
        check.skip("a browser call through a balancer over two nodes", why)
    else:
        out = os.path.join(ARTIFACTS, "nodes")
        os.makedirs(out, exist_ok=True)
        with Nodes(postgres.instance()) as nodes:
            lb = Balancer([s.port for s in nodes.nodes]).start()
            try:
                run_node(check, "call.js", [f"http://127.0.0.1:{lb.port}", out], timeout=240)
                rows = nodes.query("SELECT caller, callee, (answered IS NOT NULL)::int, outcome"
                                   " FROM calls ORDER BY id")
                check("nodes: the database holds the three calls, each answered and completed",
                      rows == [("alice", "bob", "1", "completed")] * 3, repr(rows))
                counts = lb.upstream_counts()
                check("nodes: both nodes served the pages' requests",
                      all(counts.get("127.0.0.1:%d" % s.port, 0) >= 10 for s in nodes.nodes),
                      repr(counts))
            finally:
                lb.stop()
check.exit()
