#!/usr/bin/python3
"""Aggregation side by side: triglav bonding two tbf-shaped veth uplinks (8 TCP streams
through the tunnel, or --streams N) and kernel MPTCP over the same shaping (one
connection, ../shared/lab/netns-mptcp.sh), in one sitting, alternating. Prints each as a
fraction of the summed link rates, and with --alone triglav over the faster path only.

  sudo bench/compare_mptcp.py [path/to/triglav] [--rates 50+30,400+300] [-t SECONDS] [--rounds N]
                              [--link-mtu 9000] [--streams N] [--strategy S] [--alone]

One TCP flow striped over both paths: --streams 1 --strategy aggregate --alone.

--link-mtu sets the MTU of both paths (jumbo frames) and triglav's TUN MTU to 80 bytes
less; MPTCP then runs over the same paths set up here the way the anchor script does
(that script knows only 1500-byte links).

Needs root, iperf3, mptcpd (mptcpize). Exits 77 with a message when the anchor script or
tools are absent.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import lablib  # noqa: E402
from lablib import LabError, ns_cmd, run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MPTCP = os.path.join(ROOT, "..", "shared", "lab", "netns-mptcp.sh")
NS_C, NS_S = "tgbmc", "tgbms"


def make_paths(lab, r1, r2, link_mtu, mptcp=False):
    """The two namespaces and two veth paths between them (10.210.N.2 client side,
    10.210.N.1 server side), each shaped with tbf on the client's egress as the MPTCP
    anchor does; with mptcp, MPTCP on and the second path announced as a subflow
    endpoint. Returns the client's interfaces."""
    for ns in (NS_C, NS_S):
        lab.netns(ns)
        if mptcp:
            run(ns_cmd(ns, ["sysctl", "-qw", "net.mptcp.enabled=1"]))
            run(["ip", "-n", ns, "mptcp", "limits", "set", "subflow", "4", "add_addr_accepted", "4"])
    ifs = []
    for i, rate in ((1, r1), (2, r2)):
        c, s = f"bmc{i}", f"bms{i}"
        lab.veth(NS_C, c, NS_S, s, f"10.210.{i}.2/24", f"10.210.{i}.1/24", mtu=link_mtu)
        run(["tc", "-n", NS_C, "qdisc", "add", "dev", c, "root", "tbf", "rate", f"{rate}mbit", "burst", "32kb",
             "latency", "50ms"])
        ifs.append(c)
    if mptcp:
        run(["ip", "-n", NS_C, "mptcp", "endpoint", "add", "10.210.2.2", "dev", "bmc2", "subflow"])
        run(["ip", "-n", NS_S, "mptcp", "endpoint", "add", "10.210.2.1", "dev", "bms2", "signal"])
    return ifs


def triglav(binary, r1, r2, seconds, strategy, link_mtu=1500, streams=8, alone=False):
    """iperf3 through triglav over both shaped paths, or (alone) over the faster one only."""
    lab = lablib.Lab(binary, tmp_prefix="tgbm-")
    try:
        ifs = make_paths(lab, r1, r2, link_mtu)
        mtu = ["--mtu", str(link_mtu - 80)]
        _, key = lab.triglav_server(NS_S, "--strategy", strategy, *mtu)
        uplinks = ["-i", ifs[0] if r1 >= r2 else ifs[1]] if alone else ["-i", ifs[0], "-i", ifs[1]]
        client, _ = lab.triglav_client(NS_C, key, *uplinks, "--strategy", strategy, *mtu, timeout=15)
        if not alone:
            client.wait_for(r"handshake complete .* on uplink 1 ", timeout=15)
        time.sleep(1.5)  # a few probe rounds
        lab.iperf3_server(NS_S, 5203)
        return lablib.iperf3(NS_C, "10.0.85.1", 5203, seconds, streams=streams)["mbit_s"]
    finally:
        lab.cleanup()


def mptcp(r1, r2, seconds):
    env = dict(os.environ, R1=str(r1), R2=str(r2), T=str(seconds))
    p = run(["bash", MPTCP], env=env, timeout=seconds + 60, check=False)
    m = re.search(r"([\d.]+)\s+([KMG])bits/sec\s+receiver", p.stdout)
    if not m:
        raise LabError(f"netns-mptcp.sh failed: {(p.stdout + p.stderr)[-400:]}")
    return float(m.group(1)) * {"K": 1e-3, "M": 1.0, "G": 1e3}[m.group(2)]


def mptcp_jumbo(r1, r2, seconds, link_mtu):
    """The anchor script's steps, on links of link_mtu bytes: two veth paths, the
    second announced as an MPTCP subflow endpoint, tbf on the sender's egress, one
    mptcpize'd iperf3 connection."""
    lab = lablib.Lab(tmp_prefix="tgbm-")
    try:
        make_paths(lab, r1, r2, link_mtu, mptcp=True)
        return mptcp_iperf3(lab, NS_C, NS_S, "10.210.1.1", 5204, seconds)
    finally:
        lab.cleanup()


def mptcp_iperf3(lab, ns_c, ns_s, dst, port, seconds):
    """One mptcpize'd iperf3 connection from ns_c to an iperf3 server started in ns_s;
    returns the goodput received, Mbit/s."""
    lab.start("iperf3-server", ["mptcpize", "run", "iperf3", "-s", "-p", str(port)], ns_s)
    time.sleep(0.5)
    r = run(ns_cmd(ns_c, ["mptcpize", "run", "iperf3", "-c", dst, "-p", str(port), "-t", str(seconds), "--json"]),
            timeout=seconds + 60, check=False)
    if r.returncode != 0:
        raise LabError(f"iperf3 over MPTCP failed: {r.stdout[-300:]} {r.stderr[-300:]}")
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6


def missing(script, anchor=True):
    """Why this benchmark cannot run here (a SKIP line for exit 77), or None: root, the
    anchor script (when the run needs it), mptcpize, iperf3 and tc."""
    if os.geteuid() != 0:
        return f"SKIP: {script} needs root"
    if anchor and not os.path.exists(MPTCP):
        return f"SKIP: anchor script {MPTCP} not found (../shared/lab absent)"
    for tool in ("mptcpize", "iperf3", "tc"):
        if shutil.which(tool) is None:
            return f"SKIP: {tool} is not installed (apt-get install mptcpd iperf3 iproute2)"
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "triglav"))
    ap.add_argument("--rates", default="50+30,400+300")
    ap.add_argument("-t", "--time", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--strategy", default="adaptive")
    ap.add_argument("--streams", type=int, default=8, help="TCP streams through the tunnel (default 8)")
    ap.add_argument("--alone", action="store_true",
                    help="also measure triglav over the faster path alone (the best single uplink)")
    ap.add_argument("--link-mtu", type=int, default=1500, help="MTU of both paths (default 1500)")
    a = ap.parse_args()
    why = missing("compare_mptcp.py")
    if why:
        print(why, file=sys.stderr)
        return 77
    binary = os.path.abspath(a.binary)
    alone_col = f"  {'faster path alone':>18}" if a.alone else ""
    print(f"{'paths (Mbit/s)':>15}  {f'triglav {a.streams} streams':>18}  {'MPTCP 1 conn':>13}{alone_col}"
          f"   (fraction of the summed rates; links of {a.link_mtu} bytes; medians of {a.rounds}, alternating)")
    for pair in a.rates.split(","):
        r1, r2 = (int(x) for x in pair.split("+"))
        total = r1 + r2
        ours, theirs, single = [], [], []
        for _ in range(a.rounds):
            ours.append(triglav(binary, r1, r2, a.time, a.strategy, a.link_mtu, a.streams))
            theirs.append(mptcp(r1, r2, a.time) if a.link_mtu == 1500 else mptcp_jumbo(r1, r2, a.time, a.link_mtu))
            if a.alone:
                single.append(triglav(binary, r1, r2, a.time, a.strategy, a.link_mtu, a.streams, alone=True))
        o, t = statistics.median(ours), statistics.median(theirs)
        line = f"{pair:>15}  {o:8.1f} ({o / total * 100:5.1f} %)  {t:6.1f} ({t / total * 100:5.1f} %)"
        if single:
            s = statistics.median(single)
            line += f"  {s:8.1f} ({s / total * 100:5.1f} %)"
        print(line + f"   triglav/MPTCP {o / t:.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
