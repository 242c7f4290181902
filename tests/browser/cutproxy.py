"""A hostile HTTP reverse proxy for browser test 5, between Chromium and
lighttpd: every held poll (/rtc/poll) or held exchange (/rtc/send with
after=, which is a poll too) still unanswered after CUT seconds is cut (both
connections closed, no answer); one poll answer in DROP_EVERY and one send
answer in DROP_EVERY is dropped after the server produced it (the browser
sees the connection close with no answer). Other requests pass.
GET /__proxy_stats answers its counters as JSON (with the request methods
seen); GET /__proxy_calm makes it a plain relay from then on, as cut=0 and
drop_every=0 do from the start. One request per
connection (it asks lighttpd for Connection: close and passes that on)."""
import asyncio
import json
import threading

CUT = 3.0
DROP_EVERY = 10


class CutProxy:
    def __init__(self, port, upstream_port, cut=CUT, drop_every=DROP_EVERY):
        self.port = port
        self.up = upstream_port
        self.cut = cut
        self.drop_every = drop_every
        self.stats = {"requests": 0, "polls": 0, "exchanges": 0, "poll_answers": 0, "cut": 0,
                      "dropped_polls": 0,
                      "sends": 0, "dropped_sends": 0, "methods": {}}
        self.loop = asyncio.new_event_loop()
        self.thread = None

    async def handle(self, reader, writer):
        upw = None
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 60)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            length = 0
            out = [lines[0]]
            for line in lines[1:]:
                if not line:
                    continue
                name = line.split(":", 1)[0].strip().lower()
                if name == "content-length":
                    length = int(line.split(":", 1)[1])
                if name in ("connection", "keep-alive", "proxy-connection"):
                    continue
                out.append(line)
            out.append("Connection: close")
            body = await reader.readexactly(length) if length else b""
            self.stats["requests"] += 1
            self.stats["methods"][method] = self.stats["methods"].get(method, 0) + 1
            if target.startswith("/__proxy_calm"):  # from now on: no cuts, no drops
                self.cut = 0
                self.drop_every = 0
                target = "/__proxy_stats"
            if target.startswith("/__proxy_stats"):
                data = json.dumps(self.stats).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
                             b"Connection: close\r\nContent-Length: %d\r\n\r\n" % len(data) + data)
                await writer.drain()
                return
            is_send = target.startswith("/rtc/send")
            is_exchange = is_send and "after=" in target
            is_poll = target.startswith("/rtc/poll")
            upr, upw = await asyncio.open_connection("127.0.0.1", self.up)
            upw.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + body)
            await upw.drain()
            if is_poll or is_exchange:
                self.stats["exchanges" if is_exchange else "polls"] += 1
                try:
                    resp = await asyncio.wait_for(upr.read(), self.cut or 120)
                except asyncio.TimeoutError:
                    self.stats["cut"] += 1
                    return
                if is_exchange:
                    if self.drop_send():
                        return
                    writer.write(resp)
                    await writer.drain()
                    return
                self.stats["poll_answers"] += 1
                if self.drop_every and self.stats["poll_answers"] % self.drop_every == 0:
                    self.stats["dropped_polls"] += 1
                    return
            else:
                resp = await asyncio.wait_for(upr.read(), 60)
                if is_send and self.drop_send():
                    return
            writer.write(resp)
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, asyncio.CancelledError, ConnectionError,
                ValueError):
            pass
        finally:
            if upw:
                upw.close()
            writer.close()

    def drop_send(self):
        """Counts a send answer; True when it is the one in drop_every to drop."""
        self.stats["sends"] += 1
        if self.drop_every and self.stats["sends"] % self.drop_every == 0:
            self.stats["dropped_sends"] += 1
            return True
        return False

    def start(self):
        ready = threading.Event()

        def run():
            asyncio.set_event_loop(self.loop)
            srv = self.loop.run_until_complete(asyncio.start_server(self.handle, "127.0.0.1", self.port))
            ready.set()
            self.loop.run_forever()
            srv.close()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(10)
        return self

    def stop(self):
        async def shutdown():
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop)
        self.thread.join(10)
