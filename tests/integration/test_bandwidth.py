#!/usr/bin/python3
"""bandwidth_proportional on measured throughput: two uplinks shaped with tbf to 20 and
5 Mbit/s. Eight TCP streams (iperf3 -P 8) fill both; the server reports in its Pongs
what each uplink delivered, so the client measures 4:1 (within 10 points), and places
new flows in that proportion.

usage: test_bandwidth.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check, run  # noqa: E402

RATES = (20, 5)  # Mbit/s
FLOWS = 400


def body(lab, checks):
    sock = os.path.join(lab.tmp, "client.sock")
    ns_s, ns_c, ifs, server, client = lab.bonded(1, ["--strategy", "bandwidth_proportional"],
                                                 ["--strategy", "bandwidth_proportional", "--control-socket", sock])
    for i, rate in zip(ifs, RATES):
        run(tglib.ns_cmd(ns_c, ["tc", "qdisc", "add", "dev", i, "root", "tbf", "rate", f"{rate}mbit",
                                "burst", "32kb", "latency", "50ms"]))
    iperf_s = lab.start("iperf3-server", ["iperf3", "-s", "-1", "-B", SERVER_TUN_IP], ns_s)
    time.sleep(0.5)
    before = tglib.iface_counters(ns_c, ifs, "tx_bytes")
    r = run(tglib.ns_cmd(ns_c, ["iperf3", "-c", SERVER_TUN_IP, "-P", "8", "-t", "6", "-J"]), timeout=40,
            check=False)
    after = tglib.iface_counters(ns_c, ifs, "tx_bytes")
    check(r.returncode == 0, f"iperf3 failed: {r.stderr[-300:]}")
    iperf_s.wait_exit(timeout=10)
    carried = [(b - a) * 8 / 6 / 1e6 for a, b in zip(before, after)]
    check(all(c > 0.5 * rate for c, rate in zip(carried, RATES)),
          f"the 8 streams should fill both uplinks: {carried[0]:.1f} and {carried[1]:.1f} Mbit/s")
    checks.append(f"8 TCP streams filled both shaped uplinks: {carried[0]:.1f} and {carried[1]:.1f} Mbit/s "
                  f"(shaped to {RATES[0]} and {RATES[1]})")

    # The uplinks' throughput as the client measured it (the peer reports what arrived),
    # and where new flows go right after.
    st = json.loads(run([lab.binary, "status", "--socket", sock, "--json"]).stdout)
    tp = [u["throughput_bps"] / 1e6 for u in st["uplinks"]]
    measured = tp[0] / max(1e-9, sum(tp))
    want = RATES[0] / sum(RATES)
    check(abs(measured - want) <= 0.10, f"measured throughput {tp[0]:.1f} and {tp[1]:.1f} Mbit/s: share "
                                        f"{measured:.2f}, the links' is {want:.2f}")
    # Counted as the tunnel's Data packets per uplink (status "tx_packets"), not as bytes on
    # the links: those also carry the prober's padded path-MTU probes, tens of kilobytes
    # at moments of their own, as large as the flows' whole traffic here.
    before = [u["tx_packets"] for u in st["uplinks"]]
    tglib.udp_flows(ns_c, CLIENT_TUN_IP, SERVER_TUN_IP, FLOWS, base_port=26000)
    time.sleep(0.3)
    st = json.loads(run([lab.binary, "status", "--socket", sock, "--json"]).stdout)
    a, b = (u["tx_packets"] - x for u, x in zip(st["uplinks"], before))
    check(a + b >= FLOWS, f"new flows: {a}:{b} Data packets sent for {FLOWS} flows of one datagram")
    share = a / (a + b)
    check(abs(share - measured) <= 0.10, f"new flows: {a}:{b} packets, share {share:.2f} on the faster uplink "
                                         f"(measured throughput share {measured:.2f})")
    checks.append(f"measured throughput {tp[0]:.1f} : {tp[1]:.1f} Mbit/s (share {measured:.2f}, links {want:.2f}); "
                  f"bandwidth_proportional placed {FLOWS} new flows {a}:{b} packets (share {share:.2f})")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")


if __name__ == "__main__":
    tglib.main("bandwidth", body, "bandwidth_proportional follows measured throughput (tbf-shaped uplinks)")
