"""A Lab owns what one run creates: namespaces (and the veths in them), processes and a
temporary directory for their logs. cleanup() removes all of it; it runs from atexit
too, and SIGTERM, SIGINT and SIGHUP unwind the run through its finally blocks first."""
import atexit
import os
import shutil
import signal
import tempfile
import time

from .core import LabError, delete_namespace, run
from .measure import counter_names
from .proc import Proc

SERVER_PORT = 7443


def taskset(cpus):
    """The argv prefix that runs a command on the CPUs `cpus` (a list such as "0" or "2-3")."""
    return ["taskset", "-c", str(cpus)] if cpus is not None else []


class Lab:
    def __init__(self, binary=None, tmp_prefix="tglab-", signals=True, check_counters=True):
        """check_counters: a counters line must name every counter `binary counters
        --list` names (the tests); off, any line is taken as it is (a tool measuring an
        older binary, which may not have that command)."""
        self.binary = binary
        self.check_counters = check_counters
        self.tmp = tempfile.mkdtemp(prefix=tmp_prefix)
        self.namespaces = []
        self.procs = []
        self.keep_tmp = bool(os.environ.get("TGT_KEEP"))  # keep logs even on success
        self._cleaned = False
        self._counter_names = None
        atexit.register(self.cleanup)
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, self._on_signal)

    def _on_signal(self, signum, frame):
        raise SystemExit(128 + signum)  # unwinds through finally blocks; cleanup also runs from atexit

    # -- namespaces and links ------------------------------------------------------

    def netns(self, name):
        """A new namespace `name` with lo up (one of that name left by a run that was
        killed is removed first)."""
        if os.path.exists(f"/run/netns/{name}"):
            delete_namespace(name)
        run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        return name

    def veth(self, ns_a, if_a, ns_b, if_b, addr_a=None, addr_b=None, mtu=None):
        """A veth pair, if_a in ns_a and if_b in ns_b, each with its address (CIDR) if
        given, and up."""
        run(["ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
        for ns, dev, addr in ((ns_a, if_a, addr_a), (ns_b, if_b, addr_b)):
            if addr:
                run(["ip", "-n", ns, "addr", "add", addr, "dev", dev])
            run(["ip", "-n", ns, "link", "set", dev, *(["mtu", str(mtu)] if mtu else []), "up"])

    # -- processes -----------------------------------------------------------------

    def start(self, label, argv, ns=None, env=None):
        p = Proc(self, label, argv, ns, env)
        self.procs.append(p)
        return p

    def counter_names(self):
        if not self.check_counters:
            return None
        if self._counter_names is None:
            if not self.binary:
                raise LabError("this lab has no triglav binary to ask for its counters")
            self._counter_names = counter_names(self.binary)
        return self._counter_names

    def triglav_server(self, ns, *extra, label="server", listen=f"0.0.0.0:{SERVER_PORT}", wait=True, cpus=None):
        """triglav server --generate-key in ns. Returns (proc, authkey) once it listens.
        cpus: a CPU list for taskset (the process then runs, and sizes its workers, on those)."""
        p = self.start(label, [*taskset(cpus), self.binary, "server", "--generate-key", "--listen", listen, *extra], ns)
        if not wait:
            return p, None
        m = p.wait_for(r"^(tg1_[A-Za-z0-9_-]+)$", timeout=10, stream="stdout")
        p.wait_for(r" info server listening on ", timeout=10)
        return p, m.group(1)

    def triglav_client(self, ns, authkey, *extra, label="client", wait=True, timeout=10, cpus=None):
        """triglav tun in ns. Returns (proc, match of its handshake line) once the first
        handshake completed: groups 1 server, 2 milliseconds, 3 TUN, 4 address, 5 server's.
        cpus: as for triglav_server."""
        p = self.start(label, [*taskset(cpus), self.binary, "tun", authkey, *extra], ns)
        if not wait:
            return p, None
        m = p.wait_for(r"info handshake complete with (\S+) in ([\d.]+) ms; tunnel (\S+) (\S+) "
                       r"\(server (\S+)\)", timeout=timeout)
        return p, m

    def iperf3_server(self, ns, port=5201, label=None, timeout=5):
        """An iperf3 server in ns, returned once it listens."""
        p = self.start(label or f"iperf3-server-{port}", ["iperf3", "-s", "-p", str(port)], ns)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if run(["ip", "netns", "exec", ns, "ss", "-Htln", f"sport = :{port}"], check=False).stdout.strip():
                return p
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise LabError(f"iperf3 server did not start\n{p.describe()}")

    def diagnostics(self, already=""):
        """Log tails of every process not already described in the text `already`."""
        procs = [p for p in self.procs if f"--- {p.label} (" not in already]
        skipped = 0
        if len(procs) > 8:  # many short-lived ones: show the unusual ones, then the last
            odd = [p for p in procs if p.poll() != 0]
            keep = odd[:6] + [p for p in procs[-2:] if p not in odd[:6]]
            skipped = len(procs) - len(keep)
            procs = keep
        parts = [p.describe() for p in procs]
        if skipped:
            parts.append(f"({skipped} more processes not shown)")
        return "\n".join(parts)

    # -- teardown ------------------------------------------------------------------

    def cleanup(self):
        """Ends every process, deletes every namespace and (unless keep_tmp) the logs.
        Idempotent; further signals are ignored while it runs, so it completes."""
        if self._cleaned:
            return
        self._cleaned = True
        old = {}
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            try:
                old[sig] = signal.signal(sig, signal.SIG_IGN)
            except (ValueError, OSError):
                pass
        try:
            self._release()
            for p in reversed(self.procs):
                try:
                    p.kill()
                except Exception:
                    pass
            for ns in reversed(self.namespaces):
                delete_namespace(ns)
            if not self.keep_tmp:
                shutil.rmtree(self.tmp, ignore_errors=True)
        finally:
            for sig, h in old.items():
                try:
                    signal.signal(sig, h)
                except (ValueError, OSError, TypeError):
                    pass

    def _release(self):
        """Subclasses: what to let go of before the processes are ended."""
