#!/usr/bin/env python3
"""Browser test 5: the poll is cut. Both pages reach lighttpd only through
cutproxy.py, which cuts every poll held longer than 3 s and drops one poll
answer (and one send answer) in ten. The call still connects; counting on
both pages and in the server's history, no signalling message is lost or
duplicated."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, db_rows, free_port, ready, run_node  # noqa: E402
from cutproxy import CutProxy  # noqa: E402

# Replies to the sender without user content: deleted once acknowledged.
TRANSIENT = ("listResponse", "pong", "registerResponse", "error")

check = Checks()
if ready(check):
    with Server() as srv:
        proxy = CutProxy(free_port(), srv.port).start()
        try:
            lines = run_node(check, "cut.js", [f"http://127.0.0.1:{proxy.port}"], timeout=300)
        finally:
            proxy.stop()
        st = proxy.stats
        print("# proxy: " + json.dumps(st), flush=True)
        check(f"cut: the proxy cut held polls ({st['cut']}) and dropped poll answers ({st['dropped_polls']}) "
              f"and send answers ({st['dropped_sends']})",
              st["cut"] >= 1 and st["dropped_polls"] >= 1 and st["dropped_sends"] >= 1, json.dumps(st))
        summary = [json.loads(x[len("# summary "):]) for x in lines if x.startswith("# summary ")]
        if not summary:
            check("cut: the scenario printed its message counts", False, "no '# summary' line")
        else:
            s = summary[0]
            for name in ("alice", "bob"):
                # The page received exactly the server's mailbox of that
                # session: same seqs, same types, in order, each once.
                # Replies without user content leave no row once
                # acknowledged (README, Storage and history): the page
                # got every seq from 1 on, each once, and the server keeps
                # the others and those not acknowledged yet.
                rows = db_rows(srv, "SELECT seq, type FROM messages WHERE session_id = "
                                    "(SELECT min(id) FROM sessions WHERE name = ?) ORDER BY seq", (name,))
                acked = db_rows(srv, "SELECT acked FROM sessions WHERE id = "
                                     "(SELECT min(id) FROM sessions WHERE name = ?)", (name,))[0][0]
                server = [list(r) for r in rows]
                page = s[name]["received"]
                kept = [r for r in page if r[1] not in TRANSIENT or r[0] > acked]
                check(f"cut: {name} received exactly the {len(page)} messages the server queued for it, "
                      f"in order, each once ({len(server)} kept, acknowledged up to {acked})",
                      [r[0] for r in page] == list(range(1, len(page) + 1)) and server == kept
                      and len(server) > 0,
                      f"server {server[-3:]}, page {page[-3:]} (lengths {len(server)}, {len(page)})")
                # What the page sent is what the server stored, each once
                # (a batch retried after a dropped answer was applied once).
                sent = s[name]["sentRelayed"]
                stored = dict(db_rows(srv, "SELECT type, count(*) FROM messages WHERE sender = ? GROUP BY type",
                                      (name,)))
                check(f"cut: the server stored each relayed message of {name} once {json.dumps(stored, sort_keys=True)}",
                      stored == sent, f"page sent {json.dumps(sent, sort_keys=True)}")
check.exit()
