#!/usr/bin/env python3
"""Browser test 4: both pages reach the server only through squid (Debian's,
with the stock rule `http_access deny CONNECT !SSL_ports`), which refuses
WebSocket tunnels. Shows that a WebSocket server answers a direct handshake,
that squid answers CONNECT with 403, and that the page's own WebSocket
through squid fails; then a call through squid, and squid's access log
shows the /rtc requests went through it."""
import asyncio
import base64
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browserlib import Checks, Server, free_port, ready, run_node, start_squid  # noqa: E402

def ws_server():
    """A minimal WebSocket server (handshake only) on a free loopback port:
    proof that a direct handshake works. Returns (port, stop)."""
    loop = asyncio.new_event_loop()
    port = free_port()

    async def handle(reader, writer):
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            key = ""
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("sec-websocket-key:"):
                    key = line.split(":", 1)[1].strip()
            acc = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest())
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                         b"Sec-WebSocket-Accept: " + acc + b"\r\n\r\n")
            await writer.drain()
            await asyncio.wait_for(reader.read(1), 10)
        except Exception:
            pass
        finally:
            writer.close()

    started = threading.Event()

    def run():
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", port))
        started.set()
        loop.run_forever()
        srv.close()

    th = threading.Thread(target=run, daemon=True)
    th.start()
    started.wait(10)
    return port, lambda: loop.call_soon_threadsafe(loop.stop)


def raw(port, data, timeout=10):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        return s.recv(4096).decode("latin-1")
    finally:
        s.close()


check = Checks()
if ready(check):
    squid = None
    sdir = tempfile.mkdtemp(prefix="longcall-squid-")
    stop_ws = None
    try:
        with Server() as srv:
            wsport, stop_ws = ws_server()
            hs = (f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{wsport}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode()
            direct = raw(wsport, hs)
            check("squid: the WebSocket server answers a direct handshake (101)", direct.startswith("HTTP/1.1 101"),
                  direct[:80])
            squid, sport, up = start_squid(check, sdir, "squid")
            if up:
                c = raw(sport, f"CONNECT 127.0.0.1:{wsport} HTTP/1.1\r\nHost: 127.0.0.1:{wsport}\r\n\r\n".encode())
                check("squid: a CONNECT tunnel to the WebSocket server is refused (403)",
                      c.startswith("HTTP/1.1 403"), c[:80])
                g = raw(sport, f"GET http://127.0.0.1:{srv.port}/rtc/status HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
                               "Connection: close\r\n\r\n".encode())
                check("squid: an ordinary GET passes", g.startswith("HTTP/1.1 200"), g[:80])
                run_node(check, "squid.js", [f"http://127.0.0.1:{srv.port}", sport, f"ws://127.0.0.1:{wsport}/"],
                         timeout=240)
                # squid writes its log lines as requests finish; stop it first.
                os.killpg(squid.pid, signal.SIGTERM)
                try:
                    squid.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(squid.pid, signal.SIGKILL)
                    squid.wait()
                log = open(os.path.join(sdir, "access.log")).read()
                lines = log.splitlines()
                polls = [x for x in lines if f"127.0.0.1:{srv.port}/rtc/poll" in x]
                sends = [x for x in lines if f"127.0.0.1:{srv.port}/rtc/send" in x and " POST " in x]
                page = [x for x in lines if f"127.0.0.1:{srv.port}/js/longpoll-socket.js" in x]
                denied = [x for x in lines if "CONNECT" in x and f"127.0.0.1:{wsport}" in x and "/403 " in x]
                check("squid: its access log shows the pages, sends and polls went through it "
                      f"({len(page)} script loads, {len(sends)} sends, {len(polls)} polls)",
                      len(page) >= 2 and len(sends) >= 4 and len(polls) >= 4, log[-1500:])
                check(f"squid: its access log shows the page's WebSocket tunnel refused ({len(denied)})",
                      len(denied) >= 2, log[-1500:])  # the raw CONNECT above, and the page's
    finally:
        if squid and squid.poll() is None:
            os.killpg(squid.pid, signal.SIGKILL)
            squid.wait()
        if stop_ws:
            stop_ws()
        shutil.rmtree(sdir, ignore_errors=True)
check.exit()
