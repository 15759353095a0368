#!/usr/bin/python3
"""Helpers for triglav's integration tests (Python 3 standard library only).

The lab itself (namespaces, processes, traffic) is tools/lablib, shared with the lab and
benchmark tools; this file adds the tests' conventions. A test builds a `Lab`, which owns everything the test creates: network namespaces,
veth pairs, processes, and a temporary directory for their logs. `Lab.cleanup()` undoes
all of it; it runs from the test's `finally`, from atexit, and from the SIGTERM / SIGINT
/ SIGHUP handlers, and it is idempotent. Every wait is bounded in time.

Conventions
  * namespace names: "tgt" + test name + pid + suffix, e.g. tgtping4711s; only
    namespaces created by this process are ever deleted (plus, at start, ones whose
    creating pid no longer exists).
  * veth pair: server side 10.201.N.1/24, client side 10.201.N.2/24.
  * exit codes: 0 pass, 1 fail, 77 skip (not root).

Run as a script, this file also provides small helpers that tests start inside a
namespace with `ip netns exec` (`tcp-sink`, `tcp-source`); see `_helper_main`.
"""

import base64
import hashlib
import ipaddress
import json
import os
import random
import re
import socket
import sys
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import lablib  # noqa: E402
from lablib import iface_counters, in_netns, ns_cmd, parse_ping, run  # noqa: E402,F401

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77

HERE = os.path.dirname(os.path.abspath(__file__))
THIS_FILE = os.path.abspath(__file__)
PYTHON = "/usr/bin/python3"
SERVER_PORT = 7443
SERVER_TUN_IP = "10.0.85.1"
CLIENT_TUN_IP = "10.0.85.2"

TestFailure = lablib.LabError  # a check failed, or the lab could not do something: the message says which


def log(msg):
    print(msg, flush=True)


def binary_from_argv():
    """The triglav binary: argv[1], else $TRIGLAV_BIN, else ../../build/triglav."""
    path = None
    if len(sys.argv) > 1 and sys.argv[1]:
        path = sys.argv[1]
    elif os.environ.get("TRIGLAV_BIN"):
        path = os.environ["TRIGLAV_BIN"]
    else:
        path = os.path.join(HERE, "..", "..", "build", "triglav")
    path = os.path.abspath(path)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        print(f"FAIL: triglav binary not found or not executable: {path} "
              "(give it as argv[1] or in TRIGLAV_BIN)", flush=True)
        sys.exit(EXIT_FAIL)
    return path


def require_root(test_name):
    if os.geteuid() != 0:
        print(f"SKIP: {test_name} needs root (network namespaces, TUN devices)", flush=True)
        sys.exit(EXIT_SKIP)


def ns_socket(ns, family=socket.AF_INET, type_=socket.SOCK_DGRAM, proto=0):
    return in_netns(ns, lambda: socket.socket(family, type_, proto))


def udp_flows(ns, src_ip, dst_ip, flows, per_flow=1, size=500, base_port=20000):
    """`flows` new UDP flows from src_ip (one source port each, from base_port), each
    `per_flow` datagrams of `size` bytes to dst_ip port 9; bounded at 30 s."""
    code = ("import socket\n"
            f"for p in range({flows}):\n"
            "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"    s.bind(('{src_ip}', {base_port} + p))\n"
            f"    for k in range({per_flow}):\n"
            f"        s.sendto(bytes({size}), ('{dst_ip}', 9))\n"
            "    s.close()\n")
    run(ns_cmd(ns, [PYTHON, "-c", code]), timeout=30)


def decode_authkey(text):
    """(server public key bytes, [(ip string, port)]) from a tg1_ AuthKey (no validation
    beyond what is needed to walk it)."""
    body = text[4:]
    raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    pub, pos, addrs = raw[:32], 32, []
    while pos < len(raw):
        n = 4 if raw[pos] == 1 else 16
        ip = str(ipaddress.ip_address(raw[pos + 1:pos + 1 + n]))
        addrs.append((ip, int.from_bytes(raw[pos + 1 + n:pos + 3 + n], "big")))
        pos += 3 + n
    return pub, addrs


# --------------------------------------------------------------------------------------
# The lab (tools/lablib) with the tests' conventions


class Lab(lablib.Lab):
    """Namespaces, veths, processes and a temp dir for one test; cleaned up on every path."""

    def __init__(self, test_name, binary):
        if not re.fullmatch(r"[a-z]+", test_name):
            raise ValueError("test name: lowercase letters only (used in namespace names)")
        lablib.reap_namespaces(r"tgt[a-z]+?(\d+)[a-z]")  # left by tests killed outright
        super().__init__(binary, tmp_prefix=f"tgt-{test_name}-")
        self.test_name = test_name
        self.pid = os.getpid()
        self.prefix = f"tgt{test_name}{self.pid}"
        self.sockets = []
        self._veth_count = 0

    # -- namespaces and links ------------------------------------------------------

    def netns(self, suffix):
        if not re.fullmatch(r"[a-z]", suffix):
            raise ValueError("namespace suffix: one lowercase letter")
        return super().netns(self.prefix + suffix)

    def veth(self, ns_server, ns_client, subnet=201):
        """A veth pair with 10.201.<subnet>.1/24 in ns_server and 10.201.<subnet>.2/24 in
        ns_client. Returns (server_if, client_if, server_ip, client_ip)."""
        self._veth_count += 1
        # Created directly inside the namespaces; the pid keeps names unique anyway.
        base = f"v{self.pid}{self._veth_count}"[:12]
        s_if, c_if = base + "s", base + "c"
        s_ip, c_ip = f"10.201.{subnet}.1", f"10.201.{subnet}.2"
        super().veth(ns_server, s_if, ns_client, c_if, f"{s_ip}/24", f"{c_ip}/24")
        return s_if, c_if, s_ip, c_ip

    def links(self, ns):
        """Interface names in ns."""
        out = run(["ip", "-n", ns, "-o", "link", "show"]).stdout
        names = []
        for line in out.splitlines():
            m = re.match(r"\d+: ([^:@]+)[@:]", line)
            if m:
                names.append(m.group(1))
        return names

    def tg_links(self, ns):
        return [n for n in self.links(ns) if n.startswith("tg")]

    def routes(self, ns, prefix):
        return run(["ip", "-n", ns, "-4", "route", "show", prefix]).stdout.strip()

    def wait_gone(self, ns, what, grace=1.0, prefixes=()):
        """After a process exited: waits up to `grace` s until ns holds no tg* interface
        and none of the route prefixes. Returns the seconds it took (0.0 if already gone
        at the first look) or raises TestFailure naming what is left.

        A non-zero result means the device outlived the process; test_restart.py is the
        test for that, the others only require removal within `grace`."""
        t0 = time.monotonic()
        for i in range(1000):
            tg = self.tg_links(ns)
            rts = {p: r for p in prefixes if (r := self.routes(ns, p))}
            if not tg and not rts:
                return 0.0 if i == 0 else time.monotonic() - t0
            if time.monotonic() - t0 > grace:
                raise TestFailure(f"{what}: {grace} s after the process exited, namespace {ns} still has "
                                  f"interfaces {tg} routes {rts}")
            time.sleep(0.01)
        raise TestFailure(f"{what}: gave up waiting for removal")

    # -- processes -----------------------------------------------------------------

    def start_server(self, ns, *extra, label="server", wait=True):
        """triglav server --generate-key in ns. Returns (proc, authkey) once it listens."""
        return self.triglav_server(ns, *extra, label=label, wait=wait)

    def start_client(self, ns, authkey, *extra, label="client", wait=True, timeout=10):
        """triglav tun in ns. Returns (proc, handshake match) once the handshake completes."""
        return self.triglav_client(ns, authkey, *extra, label=label, wait=wait, timeout=timeout)

    def tunnel(self, subnet, server_args=(), client_args=()):
        """Two namespaces, a veth, a server and a connected client.
        Returns a dict with ns_s, ns_c, if_s, if_c, ip_s, ip_c, server, client, authkey."""
        ns_s = self.netns("s")
        ns_c = self.netns("c")
        if_s, if_c, ip_s, ip_c = self.veth(ns_s, ns_c, subnet)
        server, authkey = self.start_server(ns_s, *server_args)
        client, hs = self.start_client(ns_c, authkey, *client_args)
        return dict(ns_s=ns_s, ns_c=ns_c, if_s=if_s, if_c=if_c, ip_s=ip_s, ip_c=ip_c,
                    server=server, client=client, authkey=authkey, handshake=hs)

    def bonded(self, phase, server_args=(), client_args=()):
        """Server and client namespaces joined by two veth pairs, the client bonding both
        (-i A -i B); returns (ns_s, ns_c, (if_a, if_b), server, client) once both uplinks
        have handshaken. phase (1-4) keeps names and subnets apart within one test."""
        ns_s = self.netns("stuv"[phase - 1])
        ns_c = self.netns("cdef"[phase - 1])
        _, c_a, _, _ = self.veth(ns_s, ns_c, subnet=20 + 2 * phase)
        _, c_b, _, _ = self.veth(ns_s, ns_c, subnet=21 + 2 * phase)
        server, authkey = self.start_server(ns_s, *server_args, label=f"server{phase}")
        client = self.start(f"client{phase}", [self.binary, "tun", authkey, "-i", c_a, "-i", c_b, *client_args],
                            ns_c)
        client.wait_for(r"handshake complete .* on uplink 0 ", timeout=10)
        client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10)
        server.wait_for(r"session up: client 10.0.85.2 .*uplink 1,", timeout=5)
        return ns_s, ns_c, (c_a, c_b), server, client

    def ping_after_handshake(self, client, ns, after, count=5):
        """Waits for the client's next completed handshake (after log offset `after`), then
        pings the server's tunnel address from ns; returns (received, ping output)."""
        client.wait_for(r"info handshake complete", timeout=8, after=after)
        _, rx, _, out = self.ping(ns, SERVER_TUN_IP, count=count)
        return rx, out

    def ping(self, ns, dst, count=20, interval=0.05, wait=2, timeout=None):
        """Runs ping in ns; returns (transmitted, received, rtt, output)."""
        return lablib.ping(ns, dst, count, interval, wait, timeout)

    def socket(self, ns, family=socket.AF_INET, type_=socket.SOCK_DGRAM, proto=0):
        s = ns_socket(ns, family, type_, proto)
        self.sockets.append(s)
        return s

    def helper(self, label, ns, *args):
        """Starts one of this file's script helpers inside ns."""
        return self.start(label, [PYTHON, THIS_FILE, *args], ns)

    def _release(self):
        for sk in self.sockets:
            try:
                sk.close()
            except OSError:
                pass


class Checks(list):
    """The passed checks; each is printed as it is added, so output follows the test."""

    def append(self, item):
        log(f"  ok  {item}")
        super().append(item)


def main(test_name, body, description=""):
    """Standard wrapper: root check, binary, Lab, result and exit code.

    body(lab, checks) runs the test; checks is a list the body appends one-line
    descriptions of passed checks to (printed at once). It raises TestFailure (or
    anything else) to fail; the failure, the tails of the processes' logs and the
    kept log directory are printed after the passed checks."""
    require_root(test_name)
    binary = binary_from_argv()
    t0 = time.monotonic()
    lab = Lab(test_name, binary)
    checks = Checks()
    code = EXIT_FAIL
    failure = None
    try:
        if description:
            log(f"{test_name}: {description}")
        body(lab, checks)
        code = EXIT_PASS
    except TestFailure as e:
        lab.keep_tmp = True
        failure = f"{e}\n{lab.diagnostics(already=str(e))}"
    except SystemExit as e:
        failure = f"interrupted ({e.code})"
        code = e.code if isinstance(e.code, int) and e.code not in (0, EXIT_SKIP) else EXIT_FAIL
    except Exception:
        lab.keep_tmp = True
        failure = f"unexpected error\n{traceback.format_exc()}\n{lab.diagnostics()}"
    finally:
        lab.cleanup()
    dt = time.monotonic() - t0
    if code == EXIT_PASS:
        log(f"PASS: {test_name} ({len(checks)} checks, {dt:.1f} s)")
    else:
        log(f"FAIL: {test_name}: {failure}")
        if lab.keep_tmp:
            log(f"  (logs kept in {lab.tmp})")
        log(f"FAIL: {test_name} ({len(checks)} checks passed before the failure, {dt:.1f} s)")
    sys.exit(code)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# --------------------------------------------------------------------------------------
# Deterministic data and script helpers (run inside a namespace via `ip netns exec`)


def pattern_chunks(total, seed, chunk=1 << 20):
    """Yields `total` bytes of deterministic pseudo-random data in chunks."""
    rng = random.Random(seed)
    left = total
    while left > 0:
        n = min(chunk, left)
        yield rng.randbytes(n)
        left -= n


def pattern_sha256(total, seed):
    h = hashlib.sha256()
    for c in pattern_chunks(total, seed):
        h.update(c)
    return h.hexdigest()


def _helper_tcp_sink(host, port, timeout):
    """Accepts one connection, reads to EOF, prints JSON {bytes, sha256, seconds, max_gap}
    (max_gap: the longest time between two reads that brought data, in seconds)."""
    srv = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(1)
    srv.settimeout(float(timeout))
    print("listening", flush=True)
    conn, peer = srv.accept()
    conn.settimeout(float(timeout))
    h = hashlib.sha256()
    n = 0
    t0 = time.monotonic()
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    last, gap = None, 0.0
    while True:
        k = conn.recv_into(buf)
        if k == 0:
            break
        now = time.monotonic()
        if last is not None:
            gap = max(gap, now - last)
        last = now
        h.update(view[:k])
        n += k
    dt = time.monotonic() - t0
    conn.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "seconds": dt, "max_gap": gap,
                      "peer": f"{peer[0]}:{peer[1]}"}), flush=True)


def _helper_tcp_source(host, port, total, seed, timeout):
    total = int(total)
    c = socket.create_connection((host, int(port)), timeout=float(timeout))
    c.settimeout(float(timeout))
    h = hashlib.sha256()
    t0 = time.monotonic()
    n = 0
    for chunk in pattern_chunks(total, int(seed)):
        c.sendall(chunk)
        h.update(chunk)
        n += len(chunk)
    c.shutdown(socket.SHUT_WR)
    # Wait for the receiver's close so "seconds" covers delivery, not just buffering.
    while c.recv(4096):
        pass
    dt = time.monotonic() - t0
    c.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "seconds": dt}), flush=True)


def _helper_main(argv):
    cmd, args = argv[0], argv[1:]
    if cmd == "tcp-sink":
        _helper_tcp_sink(*args)
    elif cmd == "tcp-source":
        _helper_tcp_source(*args)
    else:
        print(f"unknown helper {cmd}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    _helper_main(sys.argv[1:])
