#!/usr/bin/python3
"""Helpers for triglav's integration tests (Python 3 standard library only).

A test builds a `Lab`, which owns everything the test creates: network namespaces,
veth pairs, processes, and a temporary directory for their logs. `Lab.cleanup()` undoes
all of it; it runs from the test's `finally`, from atexit, and from the SIGTERM / SIGINT
/ SIGHUP handlers, and it is idempotent. Every wait is bounded in time.

Conventions
  * namespace names: "tgt" + test name + pid + suffix, e.g. tgtping4711s; only
    namespaces created by this process are ever deleted (plus, with
    `reap_stale_namespaces`, ones whose creating pid no longer exists).
  * veth pair: server side 10.201.N.1/24, client side 10.201.N.2/24.
  * exit codes: 0 pass, 1 fail, 77 skip (not root).

Run as a script, this file also provides small helpers that tests start inside a
namespace with `ip netns exec` (`tcp-sink`, `tcp-source`); see `_helper_main`.
"""

import atexit
import base64
import ctypes
import hashlib
import ipaddress
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

EXIT_PASS = 0
EXIT_FAIL = 1
EXIT_SKIP = 77

HERE = os.path.dirname(os.path.abspath(__file__))
THIS_FILE = os.path.abspath(__file__)
PYTHON = "/usr/bin/python3"
SERVER_PORT = 7443
SERVER_TUN_IP = "10.0.85.1"
CLIENT_TUN_IP = "10.0.85.2"

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class TestFailure(Exception):
    """A check failed; the message says what and why."""


# --------------------------------------------------------------------------------------
# Small utilities


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


def tail(path, lines=25):
    try:
        with open(path, "r", errors="replace") as f:
            data = f.readlines()
    except OSError as e:
        return f"    (cannot read {path}: {e})"
    if not data:
        return "    (empty)"
    return "".join("    " + line if line.endswith("\n") else "    " + line + "\n"
                   for line in data[-lines:]).rstrip("\n")


def run(argv, timeout=20, check=True, input_bytes=None, env=None, cwd=None):
    """Runs a command to completion (bounded). Returns CompletedProcess with text output.

    On timeout the whole process group is killed and TestFailure raised."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         env=env, cwd=cwd)
    try:
        out, err = p.communicate(input=input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=5)
        raise TestFailure(f"command timed out after {timeout} s: {shlex.join(argv)}\n"
                          f"  stdout: {out.decode(errors='replace')[-2000:]!r}\n"
                          f"  stderr: {err.decode(errors='replace')[-2000:]!r}")
    res = subprocess.CompletedProcess(argv, p.returncode, out.decode(errors="replace"),
                                      err.decode(errors="replace"))
    if check and res.returncode != 0:
        raise TestFailure(f"command failed (exit {res.returncode}): {shlex.join(argv)}\n"
                          f"  stdout: {res.stdout[-2000:]!r}\n  stderr: {res.stderr[-2000:]!r}")
    return res


def _kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def ns_cmd(ns, argv):
    """argv prefixed to run inside namespace ns (no prefix if ns is None)."""
    return (["ip", "netns", "exec", ns] if ns else []) + list(argv)


def in_netns(ns, fn, timeout=10):
    """Calls fn() on a short-lived thread that has joined namespace ns and returns its
    result. Sockets created by fn stay in ns and can be used from any thread."""
    box = {}

    def target():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise TestFailure(f"operation in namespace {ns} did not finish within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def ns_socket(ns, family=socket.AF_INET, type_=socket.SOCK_DGRAM, proto=0):
    return in_netns(ns, lambda: socket.socket(family, type_, proto))


_counter_names = None


def counter_names():
    """Every counter the binary reports, as `triglav counters --list` names them (the
    binary's own table, dataplane/counters.h: no copy to drift)."""
    global _counter_names
    if _counter_names is None:
        out = subprocess.run([binary_from_argv(), "counters", "--list"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
        _counter_names = [line.split("\t", 1)[0] for line in out.splitlines() if line.strip()]
        if not _counter_names:
            raise TestFailure("`triglav counters --list` printed no counters")
    return _counter_names


def parse_counters_line(line):
    """The `counters: k=v ...` part of a log line as a dict; every documented counter
    must be there (TestFailure otherwise)."""
    m = re.search(r"counters: (.*)$", line)
    if not m:
        return None
    out = {}
    for item in m.group(1).split():
        k, _, v = item.partition("=")
        if v.isdigit():
            out[k] = int(v)
    missing = [k for k in counter_names() if k not in out]
    if missing:
        raise TestFailure(f"counters line lacks {missing}: {line!r}")
    return out


def iface_counters(ns, ifs, what):
    """An interface statistics counter (tx_bytes, rx_bytes, ...) of each of ifs in ns.
    Count bytes to compare uplinks: veth counts a GSO send as one packet."""
    return [int(run(ns_cmd(ns, ["cat", f"/sys/class/net/{i}/statistics/{what}"])).stdout) for i in ifs]


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


def parse_ping(output):
    """(transmitted, received, (min, avg, max) or None) from iputils ping output."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    if not m:
        raise TestFailure(f"cannot parse ping output:\n{output}")
    rtt = None
    r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", output)
    if r:
        rtt = (float(r.group(1)), float(r.group(2)), float(r.group(3)))
    return int(m.group(1)), int(m.group(2)), rtt


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


def reap_stale_namespaces():
    """Deletes namespaces left by earlier runs that were killed with SIGKILL: names
    tgt<letters><pid><s|c|n> whose pid is not a live process."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        m = re.fullmatch(r"tgt[a-z]+?(\d+)[a-z]", name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        _delete_namespace(name)


def _delete_namespace(name):
    # Processes still inside would keep the namespace alive: they are ours (started in a
    # namespace this process created), so end them first.
    try:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                              timeout=10).stdout.split()
    except (subprocess.SubprocessError, OSError):
        pids = []
    for p in pids:
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass
    try:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError):
        pass


# --------------------------------------------------------------------------------------
# Processes


class Proc:
    """A long-running process with stdout/stderr in files."""

    def __init__(self, lab, label, argv, ns=None):
        self.lab = lab
        self.label = label
        self.argv = ns_cmd(ns, argv)
        self.ns = ns
        self.out_path = os.path.join(lab.tmp, f"{label}.stdout")
        self.err_path = os.path.join(lab.tmp, f"{label}.stderr")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        # Own session: a Ctrl-C on the terminal reaches the test, which then stops these.
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._err, start_new_session=True)
        self.pid = self.popen.pid
        self.started = time.monotonic()

    def poll(self):
        return self.popen.poll()

    @property
    def returncode(self):
        return self.popen.returncode

    def stdout(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def describe(self, lines=25):
        state = "running" if self.poll() is None else f"exited with {self.returncode}"
        return (f"--- {self.label} ({state}): {shlex.join(self.argv)}\n"
                f"  stdout tail:\n{tail(self.out_path, lines)}\n"
                f"  stderr tail:\n{tail(self.err_path, lines)}")

    def wait_for(self, pattern, timeout=10, stream="stderr", after=0):
        """Waits until a line matching regex pattern appears (in stream, at or after
        character offset `after`). Returns the re.Match. Fails early if the process
        exits without printing it."""
        rx = re.compile(pattern)
        path = self.err_path if stream == "stderr" else self.out_path
        deadline = time.monotonic() + timeout
        while True:
            with open(path, "r", errors="replace") as f:
                text = f.read()[after:]
            text = text[:text.rfind("\n") + 1]  # complete lines only
            for line in text.splitlines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline:
                raise TestFailure(f"{self.label}: no line matching /{pattern}/ on {stream} "
                                  f"within {timeout} s\n{self.describe()}")
            if self.poll() is not None:
                # One more read: the line may have been written just before exiting.
                with open(path, "r", errors="replace") as f:
                    text = f.read()[after:]
                for line in text.splitlines():
                    m = rx.search(line)
                    if m:
                        return m
                raise TestFailure(f"{self.label} exited (code {self.returncode}) before printing "
                                  f"a line matching /{pattern}/\n{self.describe()}")
            time.sleep(0.02)

    def stderr_size(self):
        try:
            return os.path.getsize(self.err_path)
        except OSError:
            return 0

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait_exit(self, timeout=5):
        """Waits (bounded) for the process to exit; returns the exit code or raises."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure(f"{self.label} did not exit within {timeout} s\n{self.describe()}")

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Sends sig and waits; returns (exit code, seconds taken)."""
        t0 = time.monotonic()
        self.send_signal(sig)
        rc = self.wait_exit(timeout)
        return rc, time.monotonic() - t0

    def counters(self):
        """The last `counters:` line of stderr as a dict (None if there is none)."""
        last = None
        for line in self.stderr().splitlines():
            if "counters:" in line:
                last = line
        return parse_counters_line(last) if last else None

    def wait_counters(self, after, timeout=5):
        """After SIGUSR1: waits for a counters line written past offset `after`."""
        self.wait_for(r"counters: ", timeout=timeout, after=after)
        return self.counters()

    def dump_counters(self, timeout=3):
        """SIGUSR1, then the counters line it produces."""
        check(self.poll() is None, f"{self.label} is not running\n{self.describe()}")
        after = self.stderr_size()
        self.send_signal(signal.SIGUSR1)
        return self.wait_counters(after, timeout)

    def counters_until(self, pred, timeout=3):
        """Dumps counters (SIGUSR1) until pred(counters) holds or timeout; returns the
        last counters either way (the caller checks)."""
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            c = self.dump_counters()
            if pred(c) or time.monotonic() >= deadline:
                return c
            time.sleep(0.05)
        return c

    def kill(self):
        if self.poll() is None:
            _kill_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=3)
            except subprocess.TimeoutExpired:
                _kill_group(self.pid, signal.SIGKILL)
                try:
                    self.popen.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass


# --------------------------------------------------------------------------------------
# The lab


class Lab:
    """Namespaces, veths, processes and a temp dir for one test; cleaned up on every path."""

    def __init__(self, test_name, binary):
        if not re.fullmatch(r"[a-z]+", test_name):
            raise ValueError("test name: lowercase letters only (used in namespace names)")
        self.test_name = test_name
        self.binary = binary
        self.pid = os.getpid()
        self.prefix = f"tgt{test_name}{self.pid}"
        self.tmp = tempfile.mkdtemp(prefix=f"tgt-{test_name}-")
        self.namespaces = []
        self.procs = []
        self.sockets = []
        self.keep_tmp = bool(os.environ.get("TGT_KEEP"))  # keep logs even on success
        self._cleaned = False
        self._veth_count = 0
        reap_stale_namespaces()
        atexit.register(self.cleanup)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        # Unwinds the test through its finally blocks; cleanup also runs from atexit.
        raise SystemExit(128 + signum)

    # -- namespaces and links ------------------------------------------------------

    def netns(self, suffix):
        if not re.fullmatch(r"[a-z]", suffix):
            raise ValueError("namespace suffix: one lowercase letter")
        name = self.prefix + suffix
        if os.path.exists(f"/run/netns/{name}"):
            _delete_namespace(name)  # ours from an earlier lab in this process
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def veth(self, ns_server, ns_client, subnet=201):
        """A veth pair with 10.201.<subnet>.1/24 in ns_server and 10.201.<subnet>.2/24 in
        ns_client. Returns (server_if, client_if, server_ip, client_ip)."""
        self._veth_count += 1
        # Created directly inside the namespaces; the pid keeps names unique anyway.
        base = f"v{self.pid}{self._veth_count}"[:12]
        s_if, c_if = base + "s", base + "c"
        s_ip, c_ip = f"10.201.{subnet}.1", f"10.201.{subnet}.2"
        run(["ip", "link", "add", s_if, "netns", ns_server, "type", "veth",
             "peer", "name", c_if, "netns", ns_client])
        run(["ip", "-n", ns_server, "addr", "add", f"{s_ip}/24", "dev", s_if])
        run(["ip", "-n", ns_client, "addr", "add", f"{c_ip}/24", "dev", c_if])
        run(["ip", "-n", ns_server, "link", "set", s_if, "up"])
        run(["ip", "-n", ns_client, "link", "set", c_if, "up"])
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

    def start(self, label, argv, ns=None):
        p = Proc(self, label, argv, ns)
        self.procs.append(p)
        return p

    def start_server(self, ns, *extra, label="server", wait=True):
        """triglav server --generate-key in ns. Returns (proc, authkey) once it listens."""
        argv = [self.binary, "server", "--generate-key", "--listen", f"0.0.0.0:{SERVER_PORT}",
                *extra]
        p = self.start(label, argv, ns)
        if not wait:
            return p, None
        m = p.wait_for(r"^(tg1_[A-Za-z0-9_-]+)$", timeout=10, stream="stdout")
        p.wait_for(r" info server listening on ", timeout=10)
        return p, m.group(1)

    def start_client(self, ns, authkey, *extra, label="client", wait=True, timeout=10):
        """triglav tun in ns. Returns (proc, handshake match) once the handshake completes."""
        argv = [self.binary, "tun", authkey, *extra]
        p = self.start(label, argv, ns)
        if not wait:
            return p, None
        m = p.wait_for(r"info handshake complete with (\S+) in ([\d.]+) ms; tunnel (\S+) (\S+) "
                       r"\(server (\S+)\)", timeout=timeout)
        return p, m

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
        argv = ns_cmd(ns, ["ping", "-n", "-q", "-c", str(count), "-i", str(interval),
                           "-W", str(wait), dst])
        t = timeout if timeout is not None else count * interval + wait + 10
        res = run(argv, timeout=t, check=False)
        out = res.stdout + res.stderr
        if res.returncode != 0 and "packets transmitted" not in out:
            return 0, 0, None, out.strip()  # e.g. "connect: Network is unreachable"
        tx, rx, rtt = parse_ping(out)
        return tx, rx, rtt, out

    def socket(self, ns, family=socket.AF_INET, type_=socket.SOCK_DGRAM, proto=0):
        s = ns_socket(ns, family, type_, proto)
        self.sockets.append(s)
        return s

    def helper(self, label, ns, *args):
        """Starts one of this file's script helpers inside ns."""
        return self.start(label, [PYTHON, THIS_FILE, *args], ns)

    def diagnostics(self, already=""):
        """Log tails of every process not already described in the text `already`."""
        procs = [p for p in self.procs if f"--- {p.label} (" not in already]
        if len(procs) > 8:  # many short-lived ones: show the unusual ones, then the last
            odd = [p for p in procs if p.poll() != 0]
            keep = (odd[:6] + [p for p in procs[-2:] if p not in odd[:6]])
            skipped = len(procs) - len(keep)
            procs = keep
        else:
            skipped = 0
        parts = [p.describe() for p in procs]
        if skipped:
            parts.append(f"({skipped} more processes not shown)")
        return "\n".join(parts)

    # -- teardown ------------------------------------------------------------------

    def cleanup(self):
        if self._cleaned:
            return
        self._cleaned = True
        # Ignore further Ctrl-C / SIGTERM while tearing down, so it completes.
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                old[sig] = signal.signal(sig, signal.SIG_IGN)
            except (ValueError, OSError):
                pass
        try:
            for s in self.sockets:
                try:
                    s.close()
                except OSError:
                    pass
            for p in reversed(self.procs):
                try:
                    p.kill()
                except Exception:
                    pass
            for ns in reversed(self.namespaces):
                _delete_namespace(ns)
            if not self.keep_tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            for sig, h in old.items():
                try:
                    signal.signal(sig, h)
                except (ValueError, OSError, TypeError):
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
    """Accepts one connection, reads to EOF, prints JSON {bytes, sha256, seconds}."""
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
    while True:
        k = conn.recv_into(buf)
        if k == 0:
            break
        h.update(view[:k])
        n += k
    dt = time.monotonic() - t0
    conn.close()
    print(json.dumps({"bytes": n, "sha256": h.hexdigest(), "seconds": dt,
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
