#!/usr/bin/env python3
"""Reject & block (issue 12, item 3): the scenario block.js (9 results) and,
here, what the server stored: bob's session holds one block, of mallory,
and the calls table has only the first of mallory's calls (rejected; the
blocked one never rang) and alice's completed one."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, db_rows, ready, run_node  # noqa: E402

check = Checks()
check.plan(9 + 2)
if ready(check):
    with Server() as srv:
        run_node(check, "block.js", [f"http://127.0.0.1:{srv.port}"], timeout=240)
        blocks = db_rows(srv, "SELECT s.name, b.caller FROM blocks b JOIN sessions s ON s.id = b.session_id")
        check("block: the server holds one block, bob's of mallory (%r)" % (blocks,),
              blocks == [("bob", "mallory")], repr(blocks))
        calls = db_rows(srv, "SELECT caller, callee, outcome FROM calls ORDER BY id")
        check("block: the server's calls: mallory's rejected, alice's completed (%r)" % (calls,),
              calls == [("mallory", "bob", "rejected"), ("alice", "bob", "completed")], repr(calls))
check.exit()
