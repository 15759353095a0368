#!/usr/bin/python3
"""triglav lab: two network namespaces joined by a veth pair, a server in one, a client
in the other, and a short measurement report.

  sudo tools/lab.py [path/to/triglav] [--json] [-t SECONDS]

Measures: the client's handshake time (from its log), ping RTT through the tunnel (20
pings), TCP throughput through the tunnel with iperf3 (client->server and reverse), the
same iperf3 runs over the bare veth for reference, and the tunnel/raw ratio. Prints a
table, or one JSON object with --json. Needs root, iproute2, iputils-ping, iperf3.

Everything it creates (namespaces tglab-s / tglab-c, their veth, the processes) is
removed on every exit path, Ctrl-C included. Leftover tglab-* namespaces from a killed
run are removed at start. Standard library only; takes about 25 s with -t 5.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

NS_S, NS_C = "tglab-s", "tglab-c"
IF_S, IF_C = "tglab-vs", "tglab-vc"
IP_S, IP_C = "10.201.250.1", "10.201.250.2"
TUN_S, TUN_C = "10.0.85.1", "10.0.85.2"
PORT = 7443
IPERF_PORT = 5201


class LabError(Exception):
    pass


class Lab:
    def __init__(self, binary):
        self.binary = binary
        self.tmp = tempfile.mkdtemp(prefix="tglab-")
        self.procs = []
        self.created = []
        self.done = False

    # -- helpers -------------------------------------------------------------------

    def sh(self, argv, timeout=20, check=True):
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, start_new_session=True)
        if check and p.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed ({p.returncode}): {p.stderr.strip() or p.stdout.strip()}")
        return p

    def start(self, label, ns, argv):
        out = open(os.path.join(self.tmp, f"{label}.out"), "wb")
        err = open(os.path.join(self.tmp, f"{label}.err"), "wb")
        p = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, start_new_session=True)
        p.label, p.files = label, (out, err)
        self.procs.append(p)
        return p

    def read(self, p, which="err"):
        with open(os.path.join(self.tmp, f"{p.label}.{which}"), errors="replace") as f:
            return f.read()

    def wait_line(self, p, pattern, which="err", timeout=10):
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.read(p, which))
            if m:
                return m
            if p.poll() is not None or time.monotonic() > deadline:
                why = f"exited with {p.returncode}" if p.poll() is not None else f"nothing within {timeout} s"
                raise LabError(f"{p.label}: waiting for /{pattern}/: {why}\n"
                               f"  stderr: {self.read(p)[-1500:]}")
            time.sleep(0.02)

    # -- set-up --------------------------------------------------------------------

    def setup(self):
        for ns in (NS_S, NS_C):  # from a run that was killed outright
            if os.path.exists(f"/run/netns/{ns}"):
                delete_namespace(ns)
        for ns in (NS_S, NS_C):
            self.sh(["ip", "netns", "add", ns])
            self.created.append(ns)
            self.sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        self.sh(["ip", "link", "add", IF_S, "netns", NS_S, "type", "veth", "peer", "name", IF_C, "netns", NS_C])
        self.sh(["ip", "-n", NS_S, "addr", "add", f"{IP_S}/24", "dev", IF_S])
        self.sh(["ip", "-n", NS_C, "addr", "add", f"{IP_C}/24", "dev", IF_C])
        self.sh(["ip", "-n", NS_S, "link", "set", IF_S, "up"])
        self.sh(["ip", "-n", NS_C, "link", "set", IF_C, "up"])

    def start_tunnel(self):
        self.server = self.start("server", NS_S, [self.binary, "server", "--generate-key",
                                                   "--listen", f"0.0.0.0:{PORT}"])
        key = self.wait_line(self.server, r"^(tg1_[A-Za-z0-9_-]+)$", which="out").group(1)
        self.wait_line(self.server, r" server listening on ")
        self.client = self.start("client", NS_C, [self.binary, "tun", key, "--handshake-timeout", "5"])
        m = self.wait_line(self.client, r"handshake complete with \S+ in ([\d.]+) ms")
        return float(m.group(1))

    def start_iperf_server(self):
        p = self.start("iperf3-server", NS_S, ["iperf3", "-s", "-p", str(IPERF_PORT)])
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            ss = self.sh(["ip", "netns", "exec", NS_S, "ss", "-Htln", f"sport = :{IPERF_PORT}"], check=False)
            if ss.stdout.strip():
                return p
            if p.poll() is not None:
                break
            time.sleep(0.05)
        raise LabError(f"iperf3 server did not start: {self.read(p)[-500:]}")

    # -- measurements --------------------------------------------------------------

    def ping(self, count=20):
        p = self.sh(["ip", "netns", "exec", NS_C, "ping", "-n", "-q", "-c", str(count), "-i", "0.05",
                     "-W", "2", TUN_S], timeout=count * 0.05 + 15, check=False)
        m = re.search(r"(\d+) packets transmitted, (\d+) received", p.stdout)
        r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", p.stdout)
        if not m:
            raise LabError(f"ping failed: {p.stdout.strip()} {p.stderr.strip()}")
        out = {"sent": int(m.group(1)), "received": int(m.group(2))}
        if r:
            out.update(min_ms=float(r.group(1)), avg_ms=float(r.group(2)), max_ms=float(r.group(3)))
        return out

    def iperf(self, dst, seconds, reverse):
        argv = ["ip", "netns", "exec", NS_C, "iperf3", "-c", dst, "-p", str(IPERF_PORT), "-t", str(seconds),
                "--json"] + (["-R"] if reverse else [])
        p = self.sh(argv, timeout=seconds + 20, check=False)
        try:
            j = json.loads(p.stdout)
        except json.JSONDecodeError:
            raise LabError(f"iperf3 to {dst}: no JSON ({p.returncode}): {p.stderr.strip()[:500]}")
        if "error" in j:
            raise LabError(f"iperf3 to {dst}: {j['error']}")
        end = j["end"]
        return {"mbit_s": end["sum_received"]["bits_per_second"] / 1e6,
                "retransmits": end["sum_sent"].get("retransmits")}

    def counters(self, p):
        last = None
        for line in self.read(p).splitlines():
            if "counters:" in line:
                last = line
        if not last:
            return None
        return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", last.split("counters:", 1)[1])}

    def stop(self, p, sig=signal.SIGTERM, timeout=5):
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    # -- tear-down -----------------------------------------------------------------

    def cleanup(self):
        if self.done:
            return
        self.done = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(3)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                        p.wait(3)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass
            for f in p.files:
                f.close()
        for ns in reversed(self.created):
            delete_namespace(ns)
        shutil.rmtree(self.tmp, ignore_errors=True)


def delete_namespace(ns):
    # Processes still inside are ours (this lab's names); end them so the namespace goes.
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True, timeout=10).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


def run_lab(lab, seconds, progress):
    r = {"triglav": lab.sh([lab.binary, "version"]).stdout.strip(), "kernel": os.uname().release,
         "iperf3_seconds": seconds}
    progress("setting up namespaces")
    lab.setup()
    progress("starting server and client")
    r["handshake_ms"] = lab.start_tunnel()
    progress("ping through the tunnel")
    r["ping"] = lab.ping(20)
    if r["ping"]["received"] == 0:
        raise LabError("no ping reply through the tunnel")
    lab.start_iperf_server()
    r["tcp"] = {}
    for label, dst in (("tunnel", TUN_S), ("raw", IP_S)):
        for direction, rev in (("client_to_server", False), ("server_to_client", True)):
            progress(f"iperf3 {label} {direction.replace('_', ' ')} ({seconds} s)")
            r["tcp"].setdefault(label, {})[direction] = lab.iperf(dst, seconds, rev)
    r["ratio"] = {d: r["tcp"]["tunnel"][d]["mbit_s"] / r["tcp"]["raw"][d]["mbit_s"]
                  if r["tcp"]["raw"][d]["mbit_s"] else None for d in ("client_to_server", "server_to_client")}
    rc_c = lab.stop(lab.client)
    rc_s = lab.stop(lab.server)
    r["exit_codes"] = {"client": rc_c, "server": rc_s}
    r["counters"] = {"client": lab.counters(lab.client), "server": lab.counters(lab.server)}
    return r


def print_table(r):
    p = r["ping"]
    t, raw, ratio = r["tcp"]["tunnel"], r["tcp"]["raw"], r["ratio"]
    print(f"triglav lab  ({r['triglav']}, kernel {r['kernel']}, veth between namespaces {NS_S} / {NS_C})")
    print()
    print(f"  handshake                 {r['handshake_ms']:9.3f} ms")
    if "avg_ms" in p:
        print(f"  ping RTT via tunnel       {p['min_ms']:.3f} / {p['avg_ms']:.3f} / {p['max_ms']:.3f} ms "
              f"(min/avg/max, {p['received']}/{p['sent']} replies)")
    print()
    print(f"  TCP, iperf3 -t {r['iperf3_seconds']}        tunnel Mbit/s   raw veth Mbit/s   tunnel/raw   retransmits (tunnel)")
    for d, name in (("client_to_server", "client -> server"), ("server_to_client", "server -> client (-R)")):
        rt = "-" if ratio[d] is None else f"{ratio[d] * 100:.1f} %"
        print(f"  {name:24} {t[d]['mbit_s']:12.0f} {raw[d]['mbit_s']:17.0f} {rt:>12}   {t[d]['retransmits']}")
    print()
    print(f"  exit codes: client {r['exit_codes']['client']}, server {r['exit_codes']['server']}")
    for side in ("client", "server"):
        c = r["counters"][side] or {}
        odd = {k: v for k, v in c.items()
               if v and (k.startswith("drop_") or k.endswith("_errors") or k == "rx_no_buffers")}
        print(f"  {side} counters: rx_packets={c.get('rx_packets')} tx_packets={c.get('tx_packets')}; "
              f"drops/errors: {' '.join(f'{k}={v}' for k, v in odd.items()) or 'none'}")


def main():
    ap = argparse.ArgumentParser(description="triglav namespace lab: handshake, RTT and throughput report")
    ap.add_argument("binary", nargs="?", default="./build/triglav", help="triglav binary (default ./build/triglav)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("-t", "--time", type=int, default=5, help="seconds per iperf3 run (default 5)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("lab.py: needs root (network namespaces, TUN devices)", file=sys.stderr)
        return 77
    binary = os.path.abspath(a.binary)
    if not os.access(binary, os.X_OK):
        print(f"lab.py: {binary} is not an executable", file=sys.stderr)
        return 1
    for tool in ("ip", "ping", "iperf3", "ss"):
        if shutil.which(tool) is None:
            print(f"lab.py: {tool} is not installed", file=sys.stderr)
            return 1

    def on_signal(signum, frame):
        raise SystemExit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    lab = Lab(binary)
    progress = (lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    try:
        report = run_lab(lab, a.time, progress)
    except LabError as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:
        print("lab.py: interrupted; cleaning up", file=sys.stderr)
        return e.code if isinstance(e.code, int) else 1
    finally:
        lab.cleanup()
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
