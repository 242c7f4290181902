"""coturn for the tests (test_turn.py, tests/browser/test_media.py): the
shipped conf/turnserver.conf with the test's listener, ports, certificate,
log and secret, everything else as shipped; and its log. The caller starts
and stops turnserver (by PID)."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def coturn_conf(tmp, secret, port, tls_port, ip="127.0.0.1", loopback_peers=False,
                verbose=False):
    """Writes tmp/turnserver.conf and returns its path. The certificate and
    key are tmp/cert.pem and tmp/key.pem, the log tmp/turn*.log. With
    loopback_peers the relay may reach ip (the shipped denial of
    127.0.0.0/8 is dropped: a test's peers are on loopback); with verbose
    coturn logs each allocation with its username."""
    out = []
    with open(os.path.join(ROOT, "conf", "turnserver.conf")) as f:
        for line in f:
            key = line.split("=", 1)[0].strip()
            value = line.split("=", 1)[1].strip() if "=" in line else ""
            if key == "listening-port":
                line = "listening-port=%d\n" % port
            elif key == "tls-listening-port":
                line = "tls-listening-port=%d\n" % tls_port
            elif key == "cert":
                line = "cert=%s\n" % os.path.join(tmp, "cert.pem")
            elif key == "pkey":
                line = "pkey=%s\n" % os.path.join(tmp, "key.pem")
            elif key == "static-auth-secret":
                line = "static-auth-secret=%s\n" % secret
            elif key == "syslog":
                line = "log-file=%s\n" % os.path.join(tmp, "turn.log")
            elif key in ("min-port", "max-port"):
                line = ""  # the default range: no clash with the free ports picked
            elif loopback_peers and key == "denied-peer-ip" and value.startswith("127."):
                line = ""
            out.append(line)
    out.append("listening-ip=%s\nrelay-ip=%s\npidfile=%s\n"
               % (ip, ip, os.path.join(tmp, "turnserver.pid")))
    if loopback_peers:
        out.append("allow-loopback-peers\nallowed-peer-ip=%s\n" % ip)
    if verbose:
        out.append("verbose\n")
    path = os.path.join(tmp, "turnserver.conf")
    with open(path, "w") as f:
        f.write("".join(out))
    return path


def coturn_logs(tmp):
    """Everything coturn logged in tmp."""
    text = ""
    for name in sorted(os.listdir(tmp)):
        if name.startswith("turn") and name.endswith(".log"):
            with open(os.path.join(tmp, name), errors="replace") as f:
                text += f.read()
    return text
