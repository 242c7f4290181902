#!/usr/bin/env python3
"""The Debian package (`make deb`, conf/debian/): built in a clean copy of
the tree (nothing written outside its build/), inspected (dpkg-deb -c and
-I, lintian --fail-on error), then installed with dpkg into a throwaway
root and used there, never on this machine:

  a keeper process in a mount namespace of its own (unshare --mount
  --propagation private) mounts an overlay over / (lower /, upper and work
  on a tmpfs of the namespace) with /proc and /dev bound in; every command
  of the test runs inside it through nsenter + chroot, and the test reads
  its files through /proc/KEEPER/root. dpkg there sees a copy-on-write of
  this machine's dpkg database; the overlay's upper layer is exactly what
  the package changed. Closing the keeper's stdin (or the test dying) ends
  the keeper and with it the namespace, its mounts and the tmpfs.

Inside: dpkg -i (files in place, /etc/default/longcall a conffile, the
socket unit enabled, nothing started, no database); the backend started as
longcall.socket + longcall.service would start it (the listening socket on
fd 0, ExecStart, Environment=, EnvironmentFile=/etc/default/longcall with a
setting the test adds, a user of its own, StateDirectory=) and nginx from
the installed example with the test's port: a full call, as test_install.py
does for make install; dpkg -r (binaries gone, conffile and database kept);
dpkg -P (conffile and database gone). Finally this machine has no trace."""
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the work tree clean
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
sys.path.insert(0, HERE)

import harness  # noqa: E402
from harness import ROOT, Server  # noqa: E402
from lcclient import Runner, Skip, check, short  # noqa: E402

import test_call  # noqa: E402

EXAMPLES = ["lighttpd.conf", "lighttpd-tls.conf", "lighttpd-cgi.conf", "apache-proxy-fcgi.conf",
            "apache-fcgid.conf", "nginx.conf", "turnserver.conf"]
# What the package must hold (dpkg-deb -c paths, without the leading "./").
# The units go to /lib/systemd/system, which is /usr/lib/systemd/system on
# Debian 12 (merged /usr): bookworm's dh_installsystemd handles only that
# folder (README "Debian package").
WANT = ["usr/lib/longcall/longcall", "lib/systemd/system/longcall.service",
        "lib/systemd/system/longcall.socket", "etc/default/longcall",
        "usr/share/longcall/www/index.html", "usr/share/doc/longcall/README.md",
        "usr/share/doc/longcall/copyright"] + \
       ["usr/share/doc/longcall/examples/" + e for e in EXAMPLES]
DEPENDS = ["libfcgi0ldbl", "libsqlite3-0", "libjansson4", "libssl3", "libpq5"]
# On this machine, before and after: none of these may appear.
HOST_PATHS = ["/usr/lib/longcall", "/etc/default/longcall", "/usr/share/longcall",
              "/usr/share/doc/longcall", "/var/lib/dpkg/info/longcall.list",
              "/etc/systemd/system/sockets.target.wants/longcall.socket"]

S = {}  # what the tests pass on: deb, version, root (the throwaway root), ...


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def makefile_version():
    with open(os.path.join(ROOT, "Makefile")) as f:
        m = re.search(r"^VERSION\s*=\s*(\S+)", f.read(), re.M)
    return m.group(1)


def tree_files(top):
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, _, fs in os.walk(top) for f in fs)


def test_build(_srv=None):
    tmp = S["tmp"]
    src = os.path.join(tmp, "src")
    # A clean copy of the tree: git's files (tracked, and new ones not
    # ignored) as they are in the work tree, without builds or test output.
    g = run(["git", "-C", ROOT, "ls-files", "-z", "-c", "-o", "--exclude-standard"])
    if g.returncode == 0:
        for rel in sorted(set(g.stdout.split("\0")) - {""}):
            if os.path.lexists(os.path.join(ROOT, rel)):
                os.makedirs(os.path.dirname(os.path.join(src, rel)), exist_ok=True)
                shutil.copy2(os.path.join(ROOT, rel), os.path.join(src, rel),
                             follow_symlinks=False)
    else:  # not a git checkout
        shutil.copytree(ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
            "build", "var", ".git", "node_modules", "__pycache__", "out", "artifacts"))
    before = [f for f in tree_files(src)]
    import resource
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    p = run(["nice", "-n", "10", "make", "--no-print-directory", "deb"], cwd=src, timeout=600)
    took = time.monotonic() - t
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    print("# make deb took %.1f s, %.1f s of CPU (dpkg-buildpackage -b from clean sources; "
          "load average %.1f)" % (took, cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime -
                                  cpu0.ru_stime, os.getloadavg()[0]), flush=True)
    check(p.returncode == 0, "make deb failed: %s" % short(p.stdout + p.stderr, 1500))
    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    S["version"] = makefile_version()
    rel = "build/longcall_%s_%s.deb" % (S["version"], arch)
    lines = p.stdout.strip().splitlines()
    check(lines and lines[-1] == rel, "make deb's last line is %r, expected the package's "
          "path %s" % (lines[-1] if lines else "", rel))
    check(os.path.isfile(os.path.join(src, rel)), "%s was not made" % rel)
    after = [f for f in tree_files(src) if not f.startswith("build/")]
    check(after == before, "make deb wrote outside build/: %s" % sorted(set(after) - set(before)))
    check(not os.path.exists(os.path.join(src, "debian")), "make deb left a debian/ at the top")
    S["deb"] = os.path.join(tmp, os.path.basename(rel))
    shutil.copy(os.path.join(src, rel), S["deb"])
    shutil.rmtree(src, ignore_errors=True)


def need_deb():
    check("deb" in S, "no package (the build failed)")
    return S["deb"]


def test_contents(_srv=None):
    p = run(["dpkg-deb", "-c", need_deb()])
    check(p.returncode == 0, "dpkg-deb -c: %s" % p.stderr)
    paths = []
    for ln in p.stdout.splitlines():
        name = ln.split(None, 5)[5].split(" -> ")[0]
        paths.append(name[2:] if name.startswith("./") else name)
    missing = [w for w in WANT if w not in paths]
    check(not missing, "not in the package: %s" % missing)
    check(not [x for x in paths if x.startswith("usr/local")],
          "files in /usr/local: %s" % [x for x in paths if x.startswith("usr/local")])
    check(not [x for x in paths if x.startswith("var/")],
          "files under /var (the state is made by systemd at first start): %s"
          % [x for x in paths if x.startswith("var/")])
    check(not [x for x in paths if re.search(r"\.(db|db-wal|db-shm|wake)$", x)],
          "a database in the package: %s" % [x for x in paths if x.endswith(".db")])
    www = sorted(os.path.relpath(os.path.join(d, f), os.path.join(ROOT, "www"))
                 for d, _, fs in os.walk(os.path.join(ROOT, "www")) for f in fs
                 if not f.startswith("."))
    gone = [w for w in www if "usr/share/longcall/www/" + w not in paths]
    check(not gone, "page files not in the package: %s" % gone)


def test_info(_srv=None):
    p = run(["dpkg-deb", "-f", need_deb(), "Package", "Version", "Depends", "Recommends",
             "Suggests"])
    check(p.returncode == 0, "dpkg-deb -f: %s" % p.stderr)
    f = dict(ln.split(": ", 1) for ln in p.stdout.splitlines() if ": " in ln)
    print("# Depends: %s" % f.get("Depends"), flush=True)
    check(f.get("Package") == "longcall", "Package: %r" % f.get("Package"))
    check(f.get("Version") == S["version"], "Version %r, the Makefile's VERSION is %s"
          % (f.get("Version"), S["version"]))
    deps = [d.strip().split()[0] for d in f.get("Depends", "").split(",")]
    missing = [d for d in DEPENDS if d not in deps]
    check(not missing, "Depends lacks %s: %s" % (missing, f.get("Depends")))
    check(set(f.get("Recommends", "").replace("|", ",").replace(" ", "").split(",")) >=
          {"lighttpd", "apache2", "nginx"}, "Recommends: %r" % f.get("Recommends"))
    check("coturn" in f.get("Suggests", ""), "Suggests: %r" % f.get("Suggests"))
    p = run(["dpkg-deb", "-I", need_deb()])
    check("conffiles" in p.stdout, "no conffiles in the control archive: %s" % p.stdout)


def test_scripts(_srv=None):
    """The maintainer scripts (dh_installsystemd's parts and postrm's purge):
    where systemd runs, installing starts longcall.socket and nothing else."""
    ctl = os.path.join(S["tmp"], "control")
    p = run(["dpkg-deb", "-e", need_deb(), ctl])
    check(p.returncode == 0, "dpkg-deb -e: %s" % p.stderr)
    scripts = {n: open(os.path.join(ctl, n)).read() for n in ("preinst", "postinst", "prerm",
                                                               "postrm")
               if os.path.exists(os.path.join(ctl, n))}
    started = [ln.strip() for ln in scripts.get("postinst", "").splitlines()
               if "deb-systemd-invoke" in ln]
    check(started and all("longcall.socket" in ln and "longcall.service" not in ln
                          for ln in started),
          "postinst's deb-systemd-invoke lines must start longcall.socket only: %s" % started)
    enabled = [ln.strip() for ln in scripts.get("postinst", "").splitlines()
               if "deb-systemd-helper enable" in ln]
    check(enabled and all("longcall.socket" in ln for ln in enabled),
          "postinst enables %s, expected longcall.socket" % enabled)
    check("adduser" not in "".join(scripts.values()) and
          "useradd" not in "".join(scripts.values()),
          "a maintainer script makes a user (the unit has DynamicUser=yes)")
    check(re.search(r'"purge".*?rm -rf "?(\$\{DPKG_ROOT:-\})?/var/lib/longcall',
                    scripts.get("postrm", ""), re.S),
          "postrm does not remove /var/lib/longcall on purge")
    stop = [ln.strip() for ln in scripts.get("prerm", "").splitlines() if "stop" in ln]
    check(any("longcall.socket" in ln for ln in stop),
          "prerm does not stop longcall.socket on removal: %s" % stop)


def test_lintian(_srv=None):
    if not shutil.which("lintian"):
        raise Skip("lintian not installed (make deb-deps installs it)")
    p = run(["nice", "-n", "10", "lintian", "--fail-on", "error", "--pedantic", "-I",
             need_deb()], timeout=300)
    tags = [ln for ln in p.stdout.splitlines() if re.match(r"^[EWIPX]: ", ln)]
    for ln in tags:
        print("#   lintian %s" % ln, flush=True)
    errors = [ln for ln in tags if ln.startswith("E: ")]
    check(p.returncode == 0 and not errors, "lintian: exit %d, %s %s" % (
        p.returncode, errors, short(p.stderr, 500)))


def test_default_file(_srv=None):
    """/etc/default/longcall (conf/longcall.default) lists every setting of
    README's Configuration table, each commented out."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    table = readme[readme.index("## Configuration"):]
    table = table[:table.index("\n## ", 3)]
    names = sorted(set(re.findall(r"^\| `(LONGCALL_[A-Z0-9_]+)`", table, re.M)))
    check(len(names) > 20, "README's Configuration table not found (%d names)" % len(names))
    with open(os.path.join(ROOT, "conf", "longcall.default")) as f:
        text = f.read()
    listed = set(re.findall(r"^#(LONGCALL_[A-Z0-9_]+)=", text, re.M))
    missing = [n for n in names if n not in listed]
    check(not missing, "conf/longcall.default lacks %s (README's Configuration table)" % missing)
    active = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    check(not active, "conf/longcall.default sets something: %s" % active)


# ---- the throwaway root -----------------------------------------------------

KEEPER = r'''set -e
mkdir -p "$1/layer" "$1/root"
mount -t tmpfs -o mode=0755 longcall-deb-test "$1/layer"
mkdir "$1/layer/upper" "$1/layer/work"
mount -t overlay -o lowerdir=/,upperdir="$1/layer/upper",workdir="$1/layer/work" \
    longcall-deb-test "$1/root"
mount --rbind /proc "$1/root/proc"
mount --rbind /dev "$1/root/dev"
echo ready
read _ || true
'''


class Root:
    """The overlay root in a private mount namespace (module docstring)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.keeper = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", KEEPER, "keeper",
             tmp], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True)
        line = self.keeper.stdout.readline()
        if line.strip() != "ready":
            err = self.keeper.stderr.read() if self.keeper.wait(10) is not None else ""
            self.keeper = None
            raise Skip("cannot make a throwaway root here (mount namespace + overlayfs "
                       "need root and CAP_SYS_ADMIN): %s" % short(err, 300))
        self.root = os.path.join(tmp, "root")                 # inside the namespace
        self.view = "/proc/%d/root%s" % (self.keeper.pid, self.root)  # from here
        self.upper = "/proc/%d/root%s" % (self.keeper.pid, os.path.join(tmp, "layer/upper"))

    def path(self, p):
        """Path, seen from this process, of the root's absolute path p."""
        return self.view + p

    def argv(self, argv, user=None):
        spec = ["--userspec=%s" % user] if user else []
        return ["nsenter", "-t", str(self.keeper.pid), "-m", "--", "chroot"] + spec + \
               [self.root] + list(argv)

    def run(self, argv, timeout=120):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
               "LC_ALL": "C"}
        return run(self.argv(argv), timeout=timeout, env=env)

    def close(self):
        """Ends the keeper: the namespace, its mounts and tmpfs go with it."""
        if self.keeper is None:
            return
        try:
            self.keeper.stdin.close()
            self.keeper.wait(10)
        except subprocess.TimeoutExpired:
            self.keeper.kill()
            self.keeper.wait(10)
        self.keeper = None


def upper_files(root):
    top = root.upper
    return sorted(os.path.relpath(os.path.join(d, f), top)
                  for d, ds, fs in os.walk(top) for f in fs + [x for x in ds if
                  os.path.islink(os.path.join(d, x))])


def longcall_processes():
    """PIDs of processes running the package's backend, on this machine or
    in the throwaway root (whose processes' exe links read, from here,
    <tmp>/root/usr/lib/longcall/longcall)."""
    bins = ("/usr/lib/longcall/longcall",
            os.path.join(S["tmp"], "root", "usr/lib/longcall/longcall"))
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if os.readlink("/proc/%s/exe" % pid).startswith(bins):
                    out.append(int(pid))
            except OSError:
                pass
    return out


def test_install(_srv=None):
    root = S.get("root")
    check(root is not None, "no throwaway root")
    # Into the root (its /tmp may not be this machine's, a tmpfs of its own).
    deb = "/var/tmp/test_deb-" + os.path.basename(need_deb())
    shutil.copy(need_deb(), root.path(deb))
    S["deb_in_root"] = deb
    p = root.run(["dpkg", "-i", deb], timeout=300)
    print("# dpkg -i: exit %d%s" % (p.returncode, "".join(
        "\n#   " + ln for ln in (p.stdout + p.stderr).splitlines()[-8:])), flush=True)
    check(p.returncode == 0, "dpkg -i failed: %s" % short(p.stdout + p.stderr, 1200))
    S["installed"] = True
    # Merged /usr: the units are in /usr/lib/systemd/system.
    for w in ["/usr/lib/longcall/longcall", "/usr/lib/systemd/system/longcall.service",
              "/usr/lib/systemd/system/longcall.socket", "/etc/default/longcall",
              "/usr/share/longcall/www/index.html", "/usr/share/doc/longcall/README.md"] + \
             ["/usr/share/doc/longcall/examples/" + e for e in EXAMPLES]:
        check(os.path.exists(root.path(w)), "%s not installed" % w)
    check(os.access(root.path("/usr/lib/longcall/longcall"), os.X_OK), "binary not executable")
    unit = open(root.path("/usr/lib/systemd/system/longcall.service")).read()
    check("ExecStart=/usr/lib/longcall/longcall\n" in unit,
          "the installed service's ExecStart is not /usr/lib/longcall/longcall")
    check("EnvironmentFile=-/etc/default/longcall\n" in unit, "the service does not read "
          "/etc/default/longcall")
    for e in EXAMPLES:
        text = open(root.path("/usr/share/doc/longcall/examples/" + e)).read()
        body = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
        for left in ("LONGCALL_ROOT", "LONGCALL_BIN", "LONGCALL_STATE", "LONGCALL_SOCKET",
                     "@LIBDIR@", "@DOCDIR@", "/usr/local"):
            check(left not in body, "installed example %s still has %s" % (e, left))
        # The web server's own files (pid, logs, temporary files) stay out of
        # the service's state folder, private to its dynamic user.
        if e in ("nginx.conf", "apache-proxy-fcgi.conf"):
            check("/var/lib/longcall" not in body, "installed example %s puts the web "
                  "server's files in /var/lib/longcall" % e)
    # The installed units as systemd would read them (test_install.py does
    # the same for make install's).
    if shutil.which("systemd-analyze"):
        v = root.run(["systemd-analyze", "verify", "--man=no",
                      "/usr/lib/systemd/system/longcall.socket",
                      "/usr/lib/systemd/system/longcall.service"])
        ours = [ln for ln in (v.stdout + v.stderr).splitlines() if "longcall" in ln]
        check(not ours, "systemd-analyze verify: %s" % " | ".join(ours))
    else:
        print("# systemd-analyze not installed (package systemd): units not verified",
              flush=True)
    q = root.run(["dpkg-query", "-W", "-f=${Status}\n${Conffiles}\n", "longcall"])
    check(q.returncode == 0 and "install ok installed" in q.stdout,
          "dpkg-query: %s %s" % (q.stdout, q.stderr))
    check(re.search(r"^\s*/etc/default/longcall [0-9a-f]{32}", q.stdout, re.M),
          "/etc/default/longcall is not a conffile: %r" % q.stdout)
    # The socket unit is enabled (deb-systemd-helper; no systemd runs here,
    # so nothing is started), the service is not.
    check(os.path.islink(root.path("/etc/systemd/system/sockets.target.wants/longcall.socket")),
          "longcall.socket not enabled")
    check(not longcall_processes(), "a longcall process runs after dpkg -i: %s"
          % longcall_processes())
    changed = upper_files(root)
    stray = [f for f in changed if "longcall" in f and re.search(r"\.(db|wake)|var/lib/longcall|"
                                                                 r"var/lib/private", f)]
    check(not stray, "dpkg -i made state: %s" % stray)
    check(not os.path.exists(root.path("/var/lib/longcall")), "/var/lib/longcall exists "
          "(systemd makes it at first start)")
    check(not [f for f in changed if f.startswith("usr/local/")],
          "dpkg -i wrote to /usr/local: %s" % [f for f in changed if f.startswith("usr/local/")])


class DebServer(Server):
    """nginx from the installed example and the installed backend started as
    longcall.socket + longcall.service would, both inside the throwaway root
    (Server.stop stops them by PID; the log is read through the root)."""

    def __init__(self, root):
        super().__init__(server="nginx", keep_state=S["tmp"])
        self.root = root

    def start(self, timeout=15):
        import grp
        import pwd
        r = self.root
        self.port = harness.free_port()
        conf = {}
        with open(r.path("/usr/lib/systemd/system/longcall.service")) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith(("#", "[")) and "=" in line:
                    k, v = line.split("=", 1)
                    conf.setdefault(k.strip(), []).append(v.strip())
        check(conf.get("StandardInput") == ["socket"], "the unit has no StandardInput=socket")
        # Environment=, then EnvironmentFile= (it wins), as systemd does.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for assignments in conf.get("Environment", []):
            for a in shlex.split(assignments):
                k, v = a.split("=", 1)
                env[k] = v.replace("%S", "/var/lib").replace("%t", "/run")
        for ef in conf.get("EnvironmentFile", []):
            path = ef.lstrip("-")
            with open(r.path(path)) as f:
                for ln in f:
                    ln = ln.strip()
                    if ln and not ln.startswith("#") and "=" in ln:
                        k, v = ln.split("=", 1)
                        env[k.strip()] = v.strip()
        self.backend_env = env
        # StateDirectory=longcall, StateDirectoryMode=0750, for the service's
        # own user (nobody here, as DynamicUser= gives one).
        user = pwd.getpwnam("nobody")
        for d in conf.get("StateDirectory", []):
            path = r.path("/var/lib/" + d)
            os.makedirs(path, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
            os.chmod(path, int((conf.get("StateDirectoryMode") or ["0755"])[-1], 8))
        self.state = r.path("/var/lib/longcall")
        self.log_path = os.path.join(self.state, "server.log")
        self.error_log = r.path("/var/lib/nginx/nginx-error.log")  # absolute: _logs
        self.log = open(self.log_path, "ab")
        # longcall.socket: ListenStream=%t/longcall/longcall.sock, group
        # www-data, mode 0660, DirectoryMode=0755.
        with open(r.path("/usr/lib/systemd/system/longcall.socket")) as f:
            listen = re.search(r"^ListenStream=(\S+)", f.read(), re.M).group(1)
        sock_path = listen.replace("%t", "/run")
        os.makedirs(os.path.dirname(r.path(sock_path)), mode=0o755, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(r.path(sock_path))
            os.chown(r.path(sock_path), 0, grp.getgrnam("www-data").gr_gid)
            os.chmod(r.path(sock_path), 0o660)
            sock.listen(4096)
        except BaseException:
            sock.close()
            raise
        self.unit_sock = sock
        argv = shlex.split(conf["ExecStart"][-1])
        self.spawner = subprocess.Popen(r.argv(argv, user="nobody:nogroup"),
                                        stdin=sock.fileno(), stdout=self.log,
                                        stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        # nginx from the installed example: only the port is left to fill in.
        with open(r.path("/usr/share/doc/longcall/examples/nginx.conf")) as f:
            text = f.read()
        check(sock_path in text, "the installed nginx example does not use %s" % sock_path)
        with open(r.path("/etc/nginx/longcall-test.conf"), "w") as f:
            f.write(text.replace("@LONGCALL_PORT@", str(self.port)))
        self.proc = subprocess.Popen(
            r.argv(["nginx", "-c", "/etc/nginx/longcall-test.conf", "-e",
                    "/var/lib/nginx/nginx-error.log", "-g", "daemon off;"]),
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None or self.spawner.poll() is not None:
                self.stop()
                raise RuntimeError("nginx or the backend exited: %s" % self.read_log())
            try:
                st, _, _ = self.request("GET", "/rtc/status", timeout=2)
                if st == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("no /rtc/status answer in time: " + self.read_log())


def test_call_installed(_srv=None):
    root = S.get("root")
    check(S.get("installed"), "not installed (dpkg -i failed)")
    # A setting in /etc/default/longcall, as an operator would add one: the
    # backend must read it (a foreign Host then gets a 421).
    with open(root.path("/etc/default/longcall"), "a") as f:
        f.write("\n# added by test_deb.py\nLONGCALL_ALLOWED_HOSTS=127.0.0.1 localhost\n")
    check(not os.path.exists(root.path("/var/lib/longcall")),
          "/var/lib/longcall exists before the service's first start")
    srv = DebServer(root)
    try:
        srv.start()
        db = srv.backend_env.get("LONGCALL_DB")
        check(db == "/var/lib/longcall/longcall.db", "the unit's LONGCALL_DB is %r" % db)
        st, _, body = srv.request("GET", "/", timeout=10)
        check(st == 200 and b"<html" in body.lower(), "the installed page: %d %s" % (
            st, short(body)))
        test_call.test_full_call(srv)
        # What test_install's "nothing started" relies on: the backend in
        # the root is seen as running /usr/lib/longcall/longcall.
        check(srv.spawner.pid in longcall_processes(), "the running backend (PID %d) is not "
              "found by its binary's path: %s (its exe: %r)" % (
                  srv.spawner.pid, longcall_processes(),
                  os.readlink("/proc/%d/exe" % srv.spawner.pid)))
        st, _, body = srv.request("POST", "/rtc/session", body=b"",
                                  headers={"Host": "evil.example"}, timeout=10)
        check(st == 421, "a foreign Host got %d (LONGCALL_ALLOWED_HOSTS from "
              "/etc/default/longcall not applied?): %s" % (st, short(body)))
        check(os.path.exists(root.path(db)), "no database at %s after the call" % db)
        bad = [ln for ln in srv.log_text().splitlines() if "signalled" in ln or
               "AddressSanitizer" in ln or "Segmentation" in ln]
        check(not bad, "the log shows a crash: %s" % bad[:3])
    finally:
        srv.stop()
    check(not longcall_processes(), "a backend still runs after stop: %s" % longcall_processes())
    S["used"] = True


def test_reinstall(_srv=None):
    """dpkg -i over the installed package (dpkg's upgrade path: postinst
    configure with the old version) keeps the operator's conffile and the
    database."""
    root = S.get("root")
    check(S.get("used"), "the installed package was not used (an earlier test failed)")
    db = root.path("/var/lib/longcall/longcall.db")
    size = os.path.getsize(db)
    p = root.run(["dpkg", "-i", S["deb_in_root"]], timeout=300)
    check(p.returncode == 0, "dpkg -i again failed: %s" % short(p.stdout + p.stderr, 1200))
    with open(root.path("/etc/default/longcall")) as f:
        check("added by test_deb.py" in f.read(), "the upgrade lost the operator's change "
              "to /etc/default/longcall")
    check(os.path.exists(db) and os.path.getsize(db) == size,
          "the upgrade changed the database (%d bytes before)" % size)
    check(not longcall_processes(), "the upgrade started a backend: %s" % longcall_processes())


def test_remove(_srv=None):
    root = S.get("root")
    check(S.get("installed"), "not installed (dpkg -i failed)")
    p = root.run(["dpkg", "-r", "longcall"], timeout=300)
    check(p.returncode == 0, "dpkg -r failed: %s" % short(p.stdout + p.stderr, 1200))
    for gone in ["/usr/lib/longcall/longcall", "/usr/lib/systemd/system/longcall.service",
                 "/usr/share/longcall/www/index.html"]:
        check(not os.path.exists(root.path(gone)), "%s left after dpkg -r" % gone)
    check(os.path.exists(root.path("/etc/default/longcall")), "dpkg -r removed the conffile")
    with open(root.path("/etc/default/longcall")) as f:
        check("added by test_deb.py" in f.read(), "the operator's change to the conffile is lost")
    if S.get("used"):
        check(os.path.exists(root.path("/var/lib/longcall/longcall.db")),
              "dpkg -r removed the database")
    q = root.run(["dpkg-query", "-W", "-f=${Status}", "longcall"])
    check("config-files" in q.stdout, "status after dpkg -r: %r" % q.stdout)
    S["removed"] = True


def test_purge(_srv=None):
    root = S.get("root")
    check(S.get("removed"), "not removed (dpkg -r failed)")
    p = root.run(["dpkg", "-P", "longcall"], timeout=300)
    check(p.returncode == 0, "dpkg -P failed: %s" % short(p.stdout + p.stderr, 1200))
    for gone in ["/etc/default/longcall", "/var/lib/longcall",
                 "/etc/systemd/system/sockets.target.wants/longcall.socket"]:
        check(not os.path.lexists(root.path(gone)), "%s left after dpkg -P" % gone)
    q = root.run(["dpkg-query", "-W", "-f=${Status}", "longcall"])
    check("install ok installed" not in q.stdout and "config-files" not in q.stdout,
          "dpkg still knows longcall after -P: %r" % q.stdout)
    # Left aside: the test's own nginx file, the package file it copied in,
    # nginx's files and the socket it bound in /run (systemd's part).
    left = [f for f in upper_files(root) if "longcall" in f and "longcall-test.conf" not in f
            and not f.startswith(("run/", "var/tmp/test_deb-", "var/lib/nginx/"))]
    check(not left, "files of longcall left in the root after purge: %s" % left)


def host_state():
    return {p: os.path.lexists(p) for p in HOST_PATHS}


def test_host_untouched(_srv=None):
    check("host_before" in S, "the host was not looked at before")
    after = host_state()
    changed = {p: (S["host_before"][p], after[p]) for p in HOST_PATHS
               if S["host_before"][p] != after[p]}
    check(not changed, "this machine changed (before, after): %s" % changed)
    m = run(["findmnt", "-rn", "-o", "TARGET"]).stdout
    check(S["tmp"] not in m, "a mount of the test is left on this machine")
    check(S.get("keeper_gone"), "the namespace's keeper process did not end")
    if any(S["host_before"].values()):
        raise Skip("longcall is installed on this machine (%s): unchanged, but that cannot "
                   "show the test left nothing" % [p for p, e in S["host_before"].items() if e])


def main():
    t = Runner("test_deb")
    t.plan(12)
    tmp = tempfile.mkdtemp(prefix="longcall-deb-")
    os.chmod(tmp, 0o755)
    S["tmp"] = tmp
    S["host_before"] = host_state()
    try:
        t.run("make deb builds build/longcall_VERSION_ARCH.deb in a clean copy, prints its "
              "path, writes nothing outside build/", test_build)
        t.run("dpkg-deb -c: backend, page, units, /etc/default/longcall, examples, README; "
              "nothing in /usr/local or /var, no database", test_contents)
        t.run("dpkg-deb -I/-f: version, Depends (libfcgi, SQLite, Jansson, OpenSSL, libpq), "
              "Recommends a front end, Suggests coturn, conffiles", test_info)
        t.run("maintainer scripts: postinst enables and starts longcall.socket only, no "
              "user made, prerm stops the socket, postrm purge removes the database",
              test_scripts)
        t.run("lintian --fail-on error: no errors", test_lintian)
        t.run("/etc/default/longcall lists every setting of README's Configuration table, "
              "commented out", test_default_file)
        root = None
        try:
            if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
                raise Skip("needs root, unshare and nsenter (util-linux)")
            root = Root(tmp)
            S["root"] = root
        except Skip as e:
            for name in ("dpkg -i", "a call", "dpkg -i again", "dpkg -r", "dpkg -P"):
                t.skip("%s in a throwaway root" % name, e)
        if root:
            try:
                t.run("dpkg -i in a throwaway root: files in place, a conffile, the socket unit "
                      "enabled, nothing started, no database", test_install)
                t.run("full call through nginx from the installed example, the installed "
                      "backend started as its units would, a setting from "
                      "/etc/default/longcall applied", test_call_installed)
                t.run("dpkg -i again (an upgrade to the same version): the changed conffile "
                      "and the database kept, nothing started", test_reinstall)
                t.run("dpkg -r: the files gone, the conffile (with the change) and the "
                      "database kept", test_remove)
                t.run("dpkg -P: the conffile and the database gone, nothing of longcall left",
                      test_purge)
            finally:
                root.close()
        S["keeper_gone"] = True
        t.run("this machine untouched: no longcall files, no mount, the namespace gone",
              test_host_untouched)
    finally:
        if S.get("root") is not None:
            S["root"].close()
        shutil.rmtree(tmp, ignore_errors=True)
    t.done()


if __name__ == "__main__":
    main()
