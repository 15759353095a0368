#!/usr/bin/python3
"""Start-up errors: not root, no /dev/net/tun, port in use, bad addresses, bad AuthKeys,
bad key files, failures after the TUN device exists. For every case: exit code != 0,
exactly one stderr line `triglav: error: ...` naming the problem (CLI11's own message
for command-line syntax errors), nothing on stdout, and no interface or route left.

Runs in a fresh namespace of its own, so port checks are isolated.

usage: test_bad_input.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import base64
import os
import shutil
import re
import shlex
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
# tmpfs over /dev/net in a private mount namespace (inside the test's netns): no TUN node.
NO_TUN = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /dev/net && exec "$0" "$@"']
# /dev/net/tun exists but is a regular file.
FAKE_TUN = ["unshare", "-m", "sh", "-c",
            'mount -t tmpfs none /dev/net && : > /dev/net/tun && exec "$0" "$@"']


def b64(raw):
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Cases:
    def __init__(self, lab, ns, checks):
        self.lab, self.ns, self.checks = lab, ns, checks
        self.n = 0
        self.baseline_links = set(lab.links(ns))

    def leftovers(self):
        links = set(self.lab.links(self.ns))
        new = sorted(links - self.baseline_links)
        tg = sorted(n for n in links - self.baseline_links if n.startswith("tg"))
        routes = run(["ip", "-n", self.ns, "-4", "route", "show"]).stdout
        return new, tg, routes

    def expect(self, what, argv, *want, wrap=(), cli11=False, timeout=15):
        """Runs triglav argv (inside the namespace, under wrap) and checks the error."""
        self.n += 1
        _, _, routes_before = self.leftovers()
        full = tglib.ns_cmd(self.ns, [*wrap, self.lab.binary, *argv])
        res = run(full, timeout=timeout, check=False, cwd="/")
        ctx = f"case {self.n} ({what}): {shlex.join(full)}\n  exit {res.returncode}\n" \
              f"  stdout: {res.stdout!r}\n  stderr: {res.stderr!r}"
        check(res.returncode != 0, f"exit code 0 for a start-up error\n{ctx}")
        err = res.stderr.rstrip("\n")
        check(err.strip() != "", f"nothing on stderr\n{ctx}")
        if cli11:
            summary = err.splitlines()[0]
        else:
            lines = err.split("\n")
            check(len(lines) == 1, f"expected one stderr line, got {len(lines)}\n{ctx}")
            check(err.startswith("triglav: error: "), f"stderr does not start with 'triglav: error: '\n{ctx}")
            check(res.stdout == "", f"stdout not empty\n{ctx}")
            summary = err
        for w in want:
            check(re.search(w, err, re.IGNORECASE), f"stderr does not match /{w}/\n{ctx}")
        new, tg, routes_after = self.leftovers()
        check(not new and not tg, f"interfaces left behind: {new}\n{ctx}")
        check(routes_after == routes_before,
              f"routes changed:\n  before: {routes_before!r}\n  after: {routes_after!r}\n{ctx}")
        self.checks.append(f"{what}: exit {res.returncode}: {summary}")
        return res


def body(lab, checks):
    ns = lab.netns("n")
    run(["ip", "-n", ns, "addr", "add", "10.201.6.1/24", "dev", "lo"])
    c = Cases(lab, ns, checks)
    keyfile = os.path.join(lab.tmp, "server.key")
    good = run([lab.binary, "keygen", "--output", keyfile, "--address", "10.201.6.1:7443"]).stdout.strip()
    check(good.startswith("tg1_"), f"keygen printed {good!r}")
    raw = base64.urlsafe_b64decode(good[4:] + "=" * (-len(good[4:]) % 4))
    check(len(raw) == 32 + 7, f"AuthKey from keygen decodes to {len(raw)} bytes, expected 39")
    pub = raw[:32]
    hs = ["--handshake-timeout", "1"]

    # (a) not root
    c.expect("server as nobody", ["server", "--generate-key"], r"root", r"CAP_NET_ADMIN", wrap=NOBODY)
    c.expect("client as nobody", ["tun", good, *hs], r"root", r"CAP_NET_ADMIN", wrap=NOBODY)
    c.expect("client as root without CAP_NET_ADMIN", ["tun", good, *hs], r"CAP_NET_ADMIN",
             wrap=["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"])

    # (b) no /dev/net/tun
    c.expect("server, no /dev/net/tun", ["server", "--generate-key"], r"/dev/net/tun is not available",
             wrap=NO_TUN)
    c.expect("client, no /dev/net/tun", ["tun", good, *hs], r"/dev/net/tun is not available", wrap=NO_TUN)
    c.expect("server, /dev/net/tun a regular file", ["server", "--generate-key"], r"/dev/net/tun",
             wrap=FAKE_TUN)

    # (c) port in use
    blocker = lab.socket(ns)
    blocker.bind(("0.0.0.0", 7443))
    c.expect("server, UDP port in use", ["server", "--generate-key", "--listen", "0.0.0.0:7443"],
             r"cannot listen on 0\.0\.0\.0:7443: Address already in use")
    c.expect("server, port in use on a specific address",
             ["server", "--generate-key", "--listen", "10.201.6.1:7443"], r"Address already in use")
    blocker.close()
    c.expect("server, address not on this host", ["server", "--generate-key", "--listen", "10.9.9.9:7443"],
             r"cannot listen on 10\.9\.9\.9:7443")

    # (d) bad addresses and prefixes
    c.expect("--listen 300.1.1.1:7443", ["server", "--generate-key", "--listen", "300.1.1.1:7443"],
             r"'300\.1\.1\.1' is not an IPv4 address")
    c.expect("--listen 1.2.3.4 (no port)", ["server", "--generate-key", "--listen", "1.2.3.4"],
             r"1\.2\.3\.4", r"IP:PORT")
    c.expect("--listen 1.2.3.4:70000", ["server", "--generate-key", "--listen", "1.2.3.4:70000"], r"port")
    c.expect("--listen [::1 (bad IPv6)", ["server", "--generate-key", "--listen", "[::1"], r"\[IPv6\]:PORT")
    c.expect("server --ipv4 abc", ["server", "--generate-key", "--ipv4", "abc"], r"'abc' is not an IPv4 address")
    c.expect("server --ipv4 10.0.85.1/33", ["server", "--generate-key", "--ipv4", "10.0.85.1/33"],
             r"prefix length")
    c.expect("server --route nope", ["server", "--generate-key", "--route", "nope"], r"nope")
    c.expect("server --address 1.2.3.4:x", ["server", "--generate-key", "--address", "1.2.3.4:x"], r"port")
    c.expect("server --tun-name of 16 characters", ["server", "--generate-key", "--tun-name", "tg0123456789abcd"],
             r"1-15 characters")
    c.expect("client --endpoint nope", ["tun", good, "--endpoint", "nope", *hs], r"nope", r"IP:PORT")
    c.expect("client --endpoint 1.2.3.4:0", ["tun", good, "--endpoint", "1.2.3.4:0", *hs], r"port")
    c.expect("client --ipv4 abc", ["tun", good, "--ipv4", "abc", *hs], r"'abc' is not an IPv4 address")
    c.expect("client --route 10.0.0.0/40", ["tun", good, "--route", "10.0.0.0/40", *hs], r"prefix length")
    c.expect("keygen --address 0.0.0.0:7443", ["keygen", "--output", os.path.join(lab.tmp, "k2"),
                                               "--address", "0.0.0.0:7443"], r"unspecified")
    check(not os.path.exists(os.path.join(lab.tmp, "k2")), "keygen left a key file after an address error")

    # (e) bad AuthKeys
    c.expect("AuthKey with wrong prefix", ["tun", "tg2_" + good[4:], *hs],
             r"bad AuthKey: AuthKey must start with 'tg1_'")
    c.expect("empty AuthKey", ["tun", "", *hs], r"the client needs the server's AuthKey")
    c.expect("AuthKey truncated (10 bytes)", ["tun", "tg1_" + b64(os.urandom(10)), *hs],
             r"bad AuthKey: .*truncated")
    c.expect("AuthKey with invalid base64url characters", ["tun", "tg1_" + good[4:20] + "$%+/" + good[24:], *hs],
             r"bad AuthKey: .*not valid base64url")
    c.expect("AuthKey with unknown address type 7",
             ["tun", "tg1_" + b64(pub + bytes([7, 10, 201, 6, 1, 0x1D, 0x13])), *hs],
             r"bad AuthKey: .*unknown type 7")
    c.expect("AuthKey truncated inside an address", ["tun", "tg1_" + b64(pub + bytes([1, 10, 201])), *hs],
             r"bad AuthKey: .*truncated")
    c.expect("AuthKey with port 0", ["tun", "tg1_" + b64(pub + bytes([1, 10, 201, 6, 1, 0, 0])), *hs],
             r"bad AuthKey: .*port 0")
    c.expect("AuthKey without addresses (and no --endpoint)", ["tun", "tg1_" + b64(pub), *hs],
             r"no server address")

    # Key files
    c.expect("server --key missing file", ["server", "--key", os.path.join(lab.tmp, "missing.key")],
             r"missing\.key")
    bad_toml = os.path.join(lab.tmp, "bad.key")
    with open(bad_toml, "w") as f:
        f.write("private_key = \"unterminated\nthis is not toml\n")
    os.chmod(bad_toml, 0o600)
    c.expect("server --key with a malformed file", ["server", "--key", bad_toml], r"bad\.key")
    short_key = os.path.join(lab.tmp, "short.key")
    with open(short_key, "w") as f:
        f.write(f'private_key = "{b64(os.urandom(16))}"\n')
    os.chmod(short_key, 0o600)
    c.expect("server --key with a 16-byte private key", ["server", "--key", short_key], r"32 bytes")
    c.expect("server without --key or --generate-key", ["server"], r"needs a key")
    open_key = os.path.join(lab.tmp, "open.key")
    shutil.copy(keyfile, open_key)
    os.chmod(open_key, 0o644)
    c.expect("server --key readable by others", ["server", "--key", open_key],
             r"readable or writable by group or others \(mode 0644\): chmod 600 ")
    before = open(keyfile).read()
    c.expect("keygen onto an existing file", ["keygen", "--output", keyfile], r"already exists")
    check(open(keyfile).read() == before, "keygen changed an existing key file")
    c.expect("keygen without --output", ["keygen"], r"--output")
    c.expect("--log-level bogus", ["--log-level", "bogus", "server", "--generate-key"], r"bogus")

    # Failures after the TUN device exists: it must be gone again.
    c.expect("client, second --route fails (duplicate)",
             ["tun", good, "--endpoint", "10.201.6.1:7443", "--route", "10.77.0.0/16", "--route", "10.77.0.0/16", *hs],
             r"cannot add route 10\.77\.0\.0/16")
    run(["ip", "-n", ns, "link", "add", "tgdup", "type", "veth", "peer", "name", "tgdup2"])
    c.baseline_links.update(("tgdup", "tgdup2"))
    c.expect("server --tun-name of an existing interface", ["server", "--generate-key", "--tun-name", "tgdup"],
             r"tgdup already exists")
    check("tgdup" in lab.links(ns), "triglav deleted a pre-existing interface it refused to use")
    run(["ip", "-n", ns, "link", "del", "tgdup"])
    c.baseline_links.difference_update(("tgdup", "tgdup2"))

    # A client whose server never answers: exits 1 after its handshake timeout, nothing left.
    c.expect("client, server does not answer (1 s timeout)", ["tun", good, *hs],
             r"handshake with 10\.201\.6\.1:7443 failed: no valid answer within 1")

    # CLI11 parse errors: its own message is fine, but exit != 0 and nothing left behind.
    c.expect("no subcommand", [], cli11=True)
    c.expect("unknown option", ["server", "--generate-key", "--bogus"], r"bogus", cli11=True)
    c.expect("tun without AuthKey", ["tun"], r"authkey", cli11=True)
    c.expect("--mtu 100", ["server", "--generate-key", "--mtu", "100"], r"mtu|576", cli11=True)
    c.expect("--handshake-timeout 0", ["tun", good, "--handshake-timeout", "0"], r"timeout|0\.1", cli11=True)
    c.expect("--idle-timeout x", ["server", "--generate-key", "--idle-timeout", "x"], r"idle", cli11=True)


if __name__ == "__main__":
    tglib.main("badinput", body, "start-up errors: one clear line, non-zero exit, nothing left behind")
