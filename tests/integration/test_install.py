#!/usr/bin/env python3
"""make install / make uninstall, and servers started from the installed
files: install with DESTDIR into a temporary folder (the right files, paths
filled in, nothing outside DESTDIR), uninstall with the same DESTDIR (no file
of ours left); then install into a temporary PREFIX and run the full call
through lighttpd from the installed example, and through nginx from the
installed example with the backend started the way the installed systemd
units start it (socket on fd 0, ExecStart, Environment=, StateDirectory=),
after `systemd-analyze verify` of those units where it is available."""
import os
import shutil
import subprocess
import sys
import tempfile

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

from harness import ROOT, Server  # noqa: E402
from lcclient import Runner, Skip, check, short  # noqa: E402

import test_call  # noqa: E402

EXAMPLES = ["lighttpd.conf", "lighttpd-tls.conf", "lighttpd-cgi.conf", "apache-proxy-fcgi.conf",
            "apache-fcgid.conf", "nginx.conf", "turnserver.conf"]


def make(*args):
    p = subprocess.run(["make", "--no-print-directory", "-s"] + list(args), cwd=ROOT,
                       capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, "make %s failed: %s" % (" ".join(args), short(p.stderr, 800)))
    return p.stdout


def files_under(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs)


def test_destdir_install_uninstall(_srv=None):
    tmp = tempfile.mkdtemp(prefix="longcall-install-")
    try:
        dest = os.path.join(tmp, "dest")
        make("install", "DESTDIR=" + dest, "PREFIX=/usr/local")
        got = files_under(dest)
        want = ["usr/local/lib/longcall/longcall",
                "usr/local/lib/systemd/system/longcall.service",
                "usr/local/lib/systemd/system/longcall.socket",
                "usr/local/share/doc/longcall/README.md",
                "usr/local/share/longcall/www/index.html"]
        want += ["usr/local/share/doc/longcall/examples/" + e for e in EXAMPLES]
        for sub in ("db", "db/pg"):  # the SQLite migrations, the PostgreSQL ones
            want += ["usr/local/share/longcall/%s/%s" % (sub, f)
                     for f in os.listdir(os.path.join(ROOT, sub)) if f.endswith(".sql")]
        missing = sorted(set(want) - set(got))
        check(not missing, "not installed: %s" % missing)
        check(all(g.startswith("usr/local/") for g in got), "written outside PREFIX: %s" % got)
        check(os.access(os.path.join(dest, "usr/local/lib/longcall/longcall"), os.X_OK),
              "the binary is not executable")
        unit = open(os.path.join(dest, "usr/local/lib/systemd/system/longcall.service")).read()
        check("ExecStart=/usr/local/lib/longcall/longcall\n" in unit,
              "the service's ExecStart is not the installed binary")
        for e in EXAMPLES:
            text = open(os.path.join(dest, "usr/local/share/doc/longcall/examples", e)).read()
            body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
            for left in ("LONGCALL_ROOT", "LONGCALL_BIN", "LONGCALL_STATE", "LONGCALL_SOCKET",
                         "@LIBDIR@", "@DOCDIR@"):
                check(left not in body, "%s still has %s" % (e, left))
        make("uninstall", "DESTDIR=" + dest, "PREFIX=/usr/local")
        left = files_under(dest)
        check(left == [], "uninstall left files: %s" % left)
        dirs = [os.path.relpath(d, dest) for d, _, _ in os.walk(dest)
                if "longcall" in os.path.relpath(d, dest)]
        check(dirs == [], "uninstall left longcall folders: %s" % dirs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_systemd_verify(_srv=None):
    if not shutil.which("systemd-analyze"):
        raise Skip("systemd-analyze not installed (Debian package systemd): the units are "
                   "not verified")
    tmp = tempfile.mkdtemp(prefix="longcall-units-")
    try:
        prefix = os.path.join(tmp, "prefix")
        make("install", "PREFIX=" + prefix)
        units = os.path.join(prefix, "lib/systemd/system")
        p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                            os.path.join(units, "longcall.socket"),
                            os.path.join(units, "longcall.service")],
                           capture_output=True, text=True, timeout=60)
        # Without a running systemd, verify may only complain that it cannot
        # talk to it; anything about our units is a failure.
        ours = [ln for ln in (p.stdout + p.stderr).splitlines() if "longcall" in ln]
        print("# systemd-analyze verify: exit %d%s" % (p.returncode, "".join(
            "\n#   " + ln for ln in (p.stdout + p.stderr).splitlines()[:10])))
        check(not ours, "systemd-analyze verify: %s" % " | ".join(ours))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def installed(tmp):
    """make install into tmp/prefix; the examples' state and socket folder
    is tmp/state (the harness's state folder)."""
    prefix, state = os.path.join(tmp, "prefix"), os.path.join(tmp, "state")
    os.makedirs(state)
    make("install", "PREFIX=" + prefix, "STATEDIR=" + state, "RUNDIR=" + state)
    # The servers' users must reach the installed files and the state folder.
    for d in (tmp, prefix):
        os.chmod(d, 0o755)
    return prefix, state


def run_call(label, **server_kwargs):
    srv = Server(**server_kwargs)
    srv.start()
    try:
        test_call.test_full_call(srv)
        bad = [ln for ln in srv.log_text().splitlines() if "child exited" in ln or
               "signalled" in ln]
        check(not bad, "%s: the log shows a crash: %s" % (label, bad[:3]))
    finally:
        srv.cleanup()


def test_installed_lighttpd(_srv=None):
    tmp = tempfile.mkdtemp(prefix="longcall-inst-")
    try:
        prefix, state = installed(tmp)
        run_call("lighttpd", server="lighttpd", keep_state=state,
                 conf=os.path.join(prefix, "share/doc/longcall/examples/lighttpd.conf"),
                 bin_path=os.path.join(prefix, "lib/longcall/longcall"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_installed_nginx_systemd(_srv=None):
    tmp = tempfile.mkdtemp(prefix="longcall-inst-")
    try:
        prefix, state = installed(tmp)
        run_call("nginx + units", server="nginx", keep_state=state,
                 conf=os.path.join(prefix, "share/doc/longcall/examples/nginx.conf"),
                 bin_path=os.path.join(prefix, "lib/longcall/longcall"),
                 unit=os.path.join(prefix, "lib/systemd/system/longcall.service"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    t = Runner("test_install")
    t.plan(4)
    t.run("make install DESTDIR=tmp: the right files, paths filled in; make uninstall "
          "removes them all", test_destdir_install_uninstall)
    t.run("the installed systemd units pass systemd-analyze verify", test_systemd_verify)
    t.run("full call through lighttpd from the installed example and binary",
          test_installed_lighttpd)
    t.run("full call through nginx from the installed example, the backend started as the "
          "installed systemd units start it", test_installed_nginx_systemd)
    t.done()


if __name__ == "__main__":
    main()
