#!/usr/bin/python3
"""One TCP flow over two uplinks, side by side: triglav striping it (strategy aggregate),
one kernel MPTCP connection over the same paths, and triglav over the faster path alone,
in one sitting, alternating, medians of --rounds. Each as a fraction of the summed link
rates, with the reorder delay the receiving triglav added (p50, p99) and each row's target.

  sudo bench/compare_single_flow.py [path/to/triglav] [--rows NAME,...] [-t SECONDS] [--rounds N]
                                    [--cc ALGORITHM] [--split-cpus]

Rows (--rows, default all, in this order):
  tbf-50-30      tbf 50 + 30 Mbit/s on veth, same RTT (MPTCP: ../shared/lab/netns-mptcp.sh)
  delay-10-40    linkem 50 Mbit/s 10 ms + 30 Mbit/s 40 ms
  delay-8-40     linkem 300 Mbit/s 8 ms + 30 Mbit/s 40 ms
  loss-2         linkem 50 + 30 Mbit/s, 5 ms each, 2 % random loss on the second
  tbf-400-300    tbf 400 + 300 Mbit/s on veth

The linkem rows put one router namespace per path between the client and the server,
with build/tools/triglav-linkem playing the path (delays are one way, in each direction;
each direction's queue holds 50 ms at its rate, as tbf's `latency 50ms` does). MPTCP
crosses the same routers: one connection on the first path, a subflow on the second.

The reorder delay is read from the server's rx_reorder_wait_* histogram after the
upload (doubling buckets; a quantile is placed linearly inside its bucket, as
Prometheus's histogram_quantile does), over the packets that waited behind a gap. Each
striped run also prints what the receiver did with its gaps: given up as lost or on
timeout, asked for again (loss repair), repaired in time, and packets that came late.

TCP's congestion control is the machine's default (printed), or --cc for the run (the
default namespace's net.ipv4.tcp_congestion_control, which new namespaces take, is set
for the run and put back after).

Both ends of the tunnel run on this one machine. By default each triglav process has
every CPU and pins one worker to each; the worker that sends the flow (the client's, by
the kernel's hash of the flow onto a TUN queue) and the one that receives it (the
server's, by the receiver index it chose) then share a CPU in about half the runs, and
where the machine has few CPUs that costs the CPU-bound rows much. --split-cpus runs
the client on the first allowed CPU and the server on the last (taskset: one worker
each), as two machines would keep them apart; the kernel's work, iperf3 and MPTCP keep
every CPU.

Needs root, iperf3, mptcpd (mptcpize), the built triglav-linkem. Exits 77 with a message
when the anchor script or tools are absent.
"""
import argparse
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)
import lablib  # noqa: E402
from lablib import ns_cmd, run  # noqa: E402
import compare_mptcp  # noqa: E402

NS_C, NS_S = "tgsfc", "tgsfs"
# Striped TCP segment through the tunnel on a 1500-byte link: 1368 bytes of payload in a
# 1502-byte frame (PERFORMANCE.md).
CEILING = 1368 / 1502

# name: (kind, [(rate Mbit/s, one-way delay ms, loss %)] per path, target text)
ROWS = {
    "tbf-50-30": ("tbf", [(50, 0, 0), (30, 0, 0)], "sum"),
    "delay-10-40": ("linkem", [(50, 10, 0), (30, 40, 0)], "sum"),
    "delay-8-40": ("linkem", [(300, 8, 0), (30, 40, 0)], "alone"),
    "loss-2": ("linkem", [(50, 5, 0), (30, 5, 2)], "alone-any"),
    "tbf-400-300": ("tbf", [(400, 0, 0), (300, 0, 0)], "ceiling"),
}
TARGETS = {
    "sum": ">= 85 % of the sum and >= MPTCP",
    "alone": ">= 95 % of the faster path alone",
    "alone-any": ">= the faster path alone",
    "ceiling": f">= 90 % of the ceiling ({CEILING * 90:.1f} % of the sum)",
}
# Upper bounds (ms) of the rx_reorder_wait_* buckets, in counter order; the last bucket is
# closed at the reorder buffer's longest wait.
WAIT_BUCKETS = [("rx_reorder_wait_under_1ms", 1), ("rx_reorder_wait_1_2ms", 2), ("rx_reorder_wait_2_4ms", 4),
                ("rx_reorder_wait_4_8ms", 8), ("rx_reorder_wait_8_16ms", 16), ("rx_reorder_wait_16_32ms", 32),
                ("rx_reorder_wait_32_64ms", 64), ("rx_reorder_wait_64_128ms", 128),
                ("rx_reorder_wait_128ms_or_more", 250)]


def quantile(counts, q):
    """The q-quantile of a histogram given as counts per WAIT_BUCKETS bucket (None if empty)."""
    total = sum(counts)
    if total == 0:
        return None
    want, seen, lo = q * total, 0, 0.0
    for n, (_, hi) in zip(counts, WAIT_BUCKETS):
        if n and seen + n >= want:
            return lo + (hi - lo) * (want - seen) / n
        seen, lo = seen + n, hi
    return float(WAIT_BUCKETS[-1][1])


def scenario_file(lab, i, rate, delay, loss):
    """A one-link scenario for triglav-linkem: the path held for the whole run."""
    queue_kb = max(64, int(rate * 1e6 / 8 * 0.05 / 1000))
    path = os.path.join(lab.tmp, f"path{i}.toml")
    with open(path, "w") as f:
        f.write(f'name = "bench-path{i}"\nduration = "3600s"\n\n[[links]]\nname = "path{i}"\n'
                f'[[links.segments]]\nat = "0s"\nrate = "{rate}mbit"\ndelay = "{delay}ms"\n'
                f'queue = "{queue_kb}kb"\nloss = "{loss}%"\n')
    return path


def routed_paths(lab, paths, mptcp=False):
    """Client and server namespaces joined by one router namespace per path, each running
    triglav-linkem. Client side 10.212.i.2 (router 10.212.i.1), server side 10.213.i.2
    (router 10.213.i.1). Packets from 10.212.i.2 always take router i (policy routing),
    whatever server address they go to. Returns the client's interfaces."""
    linkem = os.path.join(ROOT, "build", "tools", "triglav-linkem")
    c, s = lab.netns(NS_C), lab.netns(NS_S)
    ifs = []
    for i, (rate, delay, loss) in enumerate(paths):
        rt = lab.netns(f"tgsfr{i}")
        lab.veth(c, f"sfc{i}", rt, "ra", f"10.212.{i}.2/24", f"10.212.{i}.1/24")
        lab.veth(rt, "rb", s, f"sfs{i}", f"10.213.{i}.1/24", f"10.213.{i}.2/24")
        run(["ip", "-n", c, "route", "add", f"10.213.{i}.0/24", "via", f"10.212.{i}.1", "dev", f"sfc{i}"])
        run(["ip", "-n", c, "rule", "add", "from", f"10.212.{i}.2", "lookup", str(300 + i)])
        run(["ip", "-n", c, "route", "add", "10.213.0.0/16", "via", f"10.212.{i}.1", "dev", f"sfc{i}",
             "table", str(300 + i)])
        run(["ip", "-n", rt, "route", "add", "10.213.0.0/16", "via", f"10.213.{i}.2", "dev", "rb"])
        run(["ip", "-n", s, "route", "add", f"10.212.{i}.0/24", "via", f"10.213.{i}.1", "dev", f"sfs{i}"])
        p = lab.start(f"linkem{i}", [linkem, "--a", "ra", "--b", "rb", "--scenario",
                                     scenario_file(lab, i, rate, delay, loss), "--seed", str(11 + i),
                                     "--stats-interval", "60"], rt)
        p.wait_for(r"triglav-linkem: link", timeout=5)
        ifs.append(f"sfc{i}")
    for ns in (c, s):
        run(ns_cmd(ns, ["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"]))
    if mptcp:
        for ns in (c, s):
            run(ns_cmd(ns, ["sysctl", "-qw", "net.mptcp.enabled=1"]))
        run(["ip", "-n", c, "mptcp", "limits", "set", "subflow", "1", "add_addr_accepted", "0"])
        run(["ip", "-n", s, "mptcp", "limits", "set", "subflow", "1", "add_addr_accepted", "0"])
        run(["ip", "-n", c, "mptcp", "endpoint", "add", "10.212.1.2", "dev", "sfc1", "subflow"])
    return ifs


def tbf_paths(lab, paths):
    return compare_mptcp.make_paths(lab, paths[0][0], paths[1][0], 1500)


def split_cpus():
    """(client's, server's) CPU for --split-cpus: the first and the last this process may
    use; None where there is only one."""
    cpus = sorted(os.sched_getaffinity(0))
    return (str(cpus[0]), str(cpus[-1])) if len(cpus) > 1 else None


def triglav(binary, kind, paths, seconds, alone=False, cpus=None):
    """One iperf3 TCP flow through triglav (aggregate) over both paths, or over the faster
    alone; cpus: (client's, server's) CPU list, or None for every CPU. Returns (Mbit/s,
    the server's reorder histogram counts)."""
    lab = lablib.Lab(binary, tmp_prefix="tgsf-")
    try:
        if kind == "linkem":
            nc, ns, ifs = NS_C, NS_S, routed_paths(lab, paths)
        else:
            nc, ns, ifs = compare_mptcp.NS_C, compare_mptcp.NS_S, tbf_paths(lab, paths)
        server, key = lab.triglav_server(ns, "--strategy", "aggregate", "--mtu", "1420",
                                         cpus=cpus[1] if cpus else None)
        faster = 0 if paths[0][0] >= paths[1][0] else 1
        uplinks = ["-i", ifs[faster]] if alone else ["-i", ifs[0], "-i", ifs[1]]
        client, _ = lab.triglav_client(nc, key, *uplinks, "--strategy", "aggregate", "--mtu", "1420",
                                       "--handshake-timeout", "20", timeout=20, cpus=cpus[0] if cpus else None)
        if not alone:
            client.wait_for(r"handshake complete .* on uplink 1 ", timeout=20)
        time.sleep(1.5)  # a few probe rounds
        lab.iperf3_server(ns, 5207)
        mbit = lablib.iperf3(nc, "10.0.85.1", 5207, seconds)["mbit_s"]
        c = server.dump_counters()
        if not alone:  # what the receiver's reorder buffer did with this run's gaps
            print(f"    {mbit:.1f} Mbit/s; gaps: " + ", ".join(f"{k.replace('rx_reorder_', '')} {c.get(k, 0)}" for k in (
                "rx_reorder_lost_gaps", "rx_reorder_timeout_gaps", "rx_reorder_repair_asked",
                "rx_reorder_repaired", "rx_reorder_late")), flush=True)
        return mbit, [c.get(name, 0) for name, _ in WAIT_BUCKETS]
    finally:
        lab.cleanup()


def mptcp(kind, paths, seconds):
    """One MPTCP connection (mptcpize'd iperf3) over the same two paths."""
    if kind == "tbf":
        return compare_mptcp.mptcp(paths[0][0], paths[1][0], seconds)
    lab = lablib.Lab(tmp_prefix="tgsf-")
    try:
        routed_paths(lab, paths, mptcp=True)
        return compare_mptcp.mptcp_iperf3(lab, NS_C, NS_S, "10.213.0.2", 5208, seconds)
    finally:
        lab.cleanup()


def verdict(target, ours, theirs, alone, total):
    if target == "sum":
        return ours >= 0.85 * total and ours >= theirs
    if target == "alone":
        return ours >= 0.95 * alone
    if target == "alone-any":
        return ours >= alone
    return ours >= 0.90 * CEILING * total


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "triglav"))
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("-t", "--time", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cc", help="TCP congestion control for the run (e.g. cubic, bbr)")
    ap.add_argument("--split-cpus", action="store_true",
                    help="the client's triglav on the first CPU, the server's on the last")
    a = ap.parse_args()
    rows = a.rows.split(",")
    for r in rows:
        if r not in ROWS:
            print(f"compare_single_flow.py: error: unknown row '{r}' (rows: {', '.join(ROWS)})", file=sys.stderr)
            return 2
    why = compare_mptcp.missing("compare_single_flow.py", anchor=any(ROWS[r][0] == "tbf" for r in rows))
    if why:
        print(why, file=sys.stderr)
        return 77
    if not os.path.exists(os.path.join(ROOT, "build", "tools", "triglav-linkem")):
        print("SKIP: build/tools/triglav-linkem is not built (tools/build)", file=sys.stderr)
        return 77
    binary = os.path.abspath(a.binary)
    a.cpus = split_cpus() if a.split_cpus else None
    if a.split_cpus and a.cpus is None:
        print("compare_single_flow.py: error: --split-cpus needs at least two CPUs", file=sys.stderr)
        return 2
    cc_path = "/proc/sys/net/ipv4/tcp_congestion_control"
    with open(cc_path) as f:
        cc_before = f.read().strip()
    if a.cc and a.cc != cc_before:
        with open("/proc/sys/net/ipv4/tcp_available_congestion_control") as f:
            if a.cc not in f.read().split():
                print(f"compare_single_flow.py: error: congestion control '{a.cc}' is not available", file=sys.stderr)
                return 2
        with open(cc_path, "w") as f:
            f.write(a.cc)
    try:
        return measure(a, rows, binary, a.cc or cc_before)
    finally:
        if a.cc and a.cc != cc_before:
            with open(cc_path, "w") as f:
                f.write(cc_before)


def measure(a, rows, binary, cc):
    where = f", triglav's client on CPU {a.cpus[0]} and server on CPU {a.cpus[1]}" if a.cpus else ""
    print(f"one TCP flow ({cc}{where}), medians of {a.rounds}, alternating; Mbit/s (fraction of the summed rates)",
          flush=True)
    print(f"{'row':>12}  {'triglav aggregate':>17}  {'MPTCP 1 conn':>15}  {'faster path alone':>17}  "
          f"{'reorder p50/p99 ms':>18}  {'ours/MPTCP':>10}  target", flush=True)
    for name in rows:
        kind, paths, target = ROWS[name]
        total = paths[0][0] + paths[1][0]
        ours, theirs, single, hist = [], [], [], [0] * len(WAIT_BUCKETS)
        for _ in range(a.rounds):
            mbit, h = triglav(binary, kind, paths, a.time, cpus=a.cpus)
            ours.append(mbit)
            hist = [x + y for x, y in zip(hist, h)]
            theirs.append(mptcp(kind, paths, a.time))
            single.append(triglav(binary, kind, paths, a.time, alone=True, cpus=a.cpus)[0])
        o, t, s = statistics.median(ours), statistics.median(theirs), statistics.median(single)
        p50, p99 = quantile(hist, 0.5), quantile(hist, 0.99)
        reorder = "-" if p50 is None else f"{p50:.1f} / {p99:.1f}"
        ok = "met" if verdict(target, o, t, s, total) else "NOT met"
        pct = lambda x: f"{x:6.1f} ({x / total * 100:4.1f} %)"  # noqa: E731
        print(f"{name:>12}  {pct(o):>17}  {pct(t):>15}  {pct(s):>17}  {reorder:>18}  {o / t:10.2f}  "
              f"{TARGETS[target]}: {ok}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
