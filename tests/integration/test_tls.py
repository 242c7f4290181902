#!/usr/bin/env python3
"""HTTPS itself, behind conf/lighttpd-tls.conf (whatever LONGCALL_TEST_SERVER
says: this script always starts the lighttpd-tls front end; the rest of the
suite runs over it as the run-tests stage lighttpd-tls). The harness makes a
throwaway CA and a certificate for 127.0.0.1 / localhost with openssl, and
its clients trust that CA only. Checked here: the certificate the client
verified is the one the test made (not an unverified context: a client with
the system's CAs, or asking for another name, is refused); only TLS 1.2 and
newer; a plain-HTTP request to the TLS port fails cleanly (no answer, no
session, the server goes on); the page keeps the plain conf's headers; a
poll is held and woken over TLS."""
import hashlib
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings

sys.dont_write_bytecode = True  # keep the work tree clean
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import Checks, Server, client_context, connection, tls_files  # noqa: E402

check = Checks()
NAMES = [
    "the certificate the client verified is the test's, for 127.0.0.1 and localhost",
    "a client with the system's CAs only is refused (the test CA is what it trusts)",
    "a client asking for another name is refused",
    "TLS 1.1 and older are refused, TLS 1.2 is served",
    "plain HTTP to the TLS port: no answer, no session, the server goes on",
    "the page over HTTPS: the plain conf's headers, no HSTS unless asked",
    "a poll held over TLS is woken by a send",
    "no backend crash in the log",
]


def fingerprint_of_file(path):
    with open(path) as f:
        return hashlib.sha256(ssl.PEM_cert_to_DER_cert(f.read())).hexdigest()


def handshake(srv, ctx, name):
    """A TLS handshake with server_hostname=name; returns (version, DER
    certificate of the peer) or raises the ssl error."""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            return s.version(), s.getpeercert(binary_form=True)


def test_verified(srv):
    want = fingerprint_of_file(tls_files()["cert"])
    ctx = client_context()
    if ctx.verify_mode != ssl.CERT_REQUIRED or not ctx.check_hostname:
        return False, "the client context does not verify"
    got = {}
    for name in ("127.0.0.1", "localhost"):
        version, der = handshake(srv, ctx, name)
        got[name] = (version, hashlib.sha256(der).hexdigest())
    ok = all(fp == want for _, fp in got.values())
    # and the suite's own requests go through the same verified path
    st, body = srv.json("POST", "/rtc/session")
    return ok and st == 200 and "sid" in (body or {}), "want %s, got %s; session %s" % (
        want[:16], {k: (v, f[:16]) for k, (v, f) in got.items()}, st)


def expect_refused(srv, ctx, name):
    try:
        handshake(srv, ctx, name)
    except ssl.SSLCertVerificationError as e:
        return True, str(e)
    except (ssl.SSLError, OSError) as e:
        return False, "failed otherwise: %r" % e
    return False, "the handshake succeeded"


def test_tls11(srv):
    """Offers at most TLS 1.1 (with a security level that lets this OpenSSL
    offer it at all): the server must refuse; TLS 1.2 alone must work."""
    old = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    old.load_verify_locations(tls_files()["ca"])
    warnings.simplefilter("ignore", DeprecationWarning)  # TLSv1, TLSv1_1: the point here
    try:
        old.set_ciphers("DEFAULT:@SECLEVEL=0")
        old.minimum_version = ssl.TLSVersion.TLSv1
        old.maximum_version = ssl.TLSVersion.TLSv1_1
    except (ValueError, ssl.SSLError) as e:
        return None, "this Python/OpenSSL cannot offer TLS 1.1 (%s)" % e
    try:
        v, _ = handshake(srv, old, "127.0.0.1")
        return False, "a TLS 1.1 client got %s" % v
    except ssl.SSLError as e:
        if "NO_PROTOCOLS_AVAILABLE" in str(e) or "no protocols available" in str(e):
            return None, "this OpenSSL refuses to offer TLS 1.1 itself (%s)" % e
        refused = str(e)
        if "PROTOCOL_VERSION" not in refused.upper() and "UNSUPPORTED_PROTOCOL" not in \
                refused.upper():
            return False, "TLS 1.1 failed, but not on the protocol version: %s" % refused
    except OSError as e:  # the server may just close
        refused = repr(e)
    new = client_context()
    new.maximum_version = ssl.TLSVersion.TLSv1_2
    v, _ = handshake(srv, new, "127.0.0.1")
    return v == "TLSv1.2", "TLS 1.1 refused (%s), TLS 1.2 gave %s" % (refused[:80], v)


def test_plain_http(srv, sessions_before):
    req = ("POST /rtc/session HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 0\r\n"
           "Connection: close\r\n\r\n" % srv.port).encode()
    got, how = b"", "closed"
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as s:
        s.sendall(req)
        try:
            while len(got) < 65536:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            how = "no end after 10 s"
    took = time.monotonic() - t0
    print("# plain HTTP to the TLS port: connection %s after %.1f s, %d bytes back %r" % (
        how, took, len(got), got[:60]), flush=True)
    # Whatever came back is not an HTTP answer (lighttpd closes; a TLS alert
    # record at most), and certainly nothing from the backend.
    clean = how in ("closed", "reset") and not got.startswith(b"HTTP/") and b"sid" not in got
    st, body = srv.json("GET", "/rtc/status")
    same = st == 200 and body["sessions"] == sessions_before
    alive = srv.proc.poll() is None and srv.backend_pids()
    return clean and same and bool(alive), "how %s, got %r, status %s %s, alive %s" % (
        how, got[:80], st, body, alive)


def test_page(srv):
    st, h, data = srv.request("GET", "/")
    csp = h.get("content-security-policy", "")
    ok = (st == 200 and b"<html" in data.lower() and "default-src 'self'" in csp
          and "frame-ancestors 'none'" in csp and h.get("x-content-type-options") == "nosniff"
          and h.get("referrer-policy") == "no-referrer" and "strict-transport-security" not in h)
    st2, h2, _ = srv.request("GET", "/rtc/status")
    ok = ok and st2 == 200 and "content-security-policy" not in h2
    return ok, "page %s %s; /rtc %s %s" % (st, sorted(h), st2, sorted(h2))


def test_held_poll(srv):
    """b's poll is held (a connection of its own), then b's ping wakes it."""
    from lcclient import Client
    b = Client(srv)
    out = {}

    def hold():
        c = connection(srv.port, timeout=30)
        try:
            c.request("GET", "/rtc/poll?sid=%s&after=0&timeout=20" % b.qsid())
            r = c.getresponse()
            out["answer"] = (r.status, r.read(), time.monotonic())
        finally:
            c.close()
    th = threading.Thread(target=hold, daemon=True)
    th.start()
    time.sleep(1.5)
    sent = time.monotonic()
    b.send({"id": "ping"})
    th.join(25)
    if "answer" not in out:
        return False, "the held poll was not answered"
    status, body, when = out["answer"]
    return status == 200 and b"pong" in body and when >= sent, "poll %s %r" % (status, body[:200])


def main():
    if subprocess.run(["sh", "-c", "ls /usr/lib/lighttpd/mod_openssl.so"],
                      capture_output=True).returncode != 0:
        check.plan(len(NAMES))
        for n in NAMES:
            check.skip(n, "lighttpd's mod_openssl is not installed (Debian package "
                       "lighttpd-mod-openssl; make test installs it)")
        check.exit()
    check.plan(len(NAMES))
    with Server(procs=1, server="lighttpd-tls") as srv:
        results = []
        for fn in (test_verified,
                   lambda s: expect_refused(s, ssl.create_default_context(), "127.0.0.1"),
                   lambda s: expect_refused(s, client_context(), "example.org"),
                   test_tls11):
            try:
                results.append(fn(srv))
            except Exception as e:  # a transport error is a failure with its reason
                results.append((False, "%s: %s" % (type(e).__name__, e)))
        for name, (ok, why) in zip(NAMES, results):
            if ok is None:
                check.skip(name, why)
            else:
                check(name, ok, why)
        for name, fn in zip(NAMES[4:7], (
                lambda s: test_plain_http(s, s.json("GET", "/rtc/status")[1]["sessions"]),
                test_page, test_held_poll)):
            try:
                ok, why = fn(srv)
            except Exception as e:
                ok, why = False, "%s: %s" % (type(e).__name__, e)
            check(name, ok, why)
        from lcclient import CRASH_MARKERS
        log = srv.log_text()
        bad = [m for m in CRASH_MARKERS if m in log]
        check(NAMES[7], not bad, "log shows: %s" % bad)
    check.exit()


if __name__ == "__main__":
    main()
