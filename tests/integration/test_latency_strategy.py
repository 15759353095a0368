#!/usr/bin/python3
"""Scheduling on measured latency: the client has a direct uplink and one through a
router namespace where triglav-linkem adds 30 ms each way. The probes measure both;
lowest_latency puts new flows on the direct uplink, and adaptive gives the slow uplink
the smaller share; with a few of the direct uplink's probes dropped, lowest_loss puts new
flows on the slow but lossless one.

usage: test_latency_strategy.py /path/to/triglav [/path/to/triglav-linkem]; root; exit 0/1/77
"""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check, run  # noqa: E402

FLOWS = 200


def linkem_binary():
    if len(sys.argv) > 2:
        return os.path.abspath(sys.argv[2])
    return os.path.join(os.path.dirname(tglib.binary_from_argv()), "tools", "triglav-linkem")


def split(ns, ifs, base):
    """Bytes each uplink carried for FLOWS new flows of 3 datagrams."""
    before = tglib.iface_counters(ns, ifs, "tx_bytes")
    tglib.udp_flows(ns, CLIENT_TUN_IP, SERVER_TUN_IP, FLOWS, 3, 500, base)
    time.sleep(0.3)
    after = tglib.iface_counters(ns, ifs, "tx_bytes")
    return [a - b for a, b in zip(after, before)]


def topology(lab):
    ns_s, ns_c, ns_r = lab.netns("s"), lab.netns("c"), lab.netns("r")
    _, c_a, _, _ = lab.veth(ns_s, ns_c, subnet=41)                   # direct
    r_c, c_b, gw_b, _ = lab.veth(ns_r, ns_c, subnet=42)              # client side of the slow path
    r_s, _, r_addr, s_addr = lab.veth(ns_r, ns_s, subnet=43)         # server side of the slow path
    run(["ip", "-n", ns_c, "route", "add", "10.201.43.0/24", "via", gw_b, "dev", c_b])
    run(["ip", "-n", ns_s, "route", "add", "10.201.42.0/24", "via", r_addr])
    path = os.path.join(lab.tmp, "slow.toml")
    with open(path, "w") as f:
        f.write('name = "slow"\n[[links]]\nname = "slow"\n[[links.segments]]\nat = "0s"\ndelay = "30ms"\n')
    em = lab.start("linkem", [linkem_binary(), "--a", r_c, "--b", r_s, "--scenario", path, "--tun-prefix", "tls"],
                   ns_r)
    em.wait_for(r"triglav-linkem: link", timeout=5)
    return ns_s, ns_c, (c_a, c_b), em


def body(lab, checks):
    ns_s, ns_c, ifs, em = topology(lab)
    server, authkey = lab.start_server(ns_s)
    client = lab.start("client", [lab.binary, "tun", authkey, "-i", ifs[0], "-i", ifs[1], "--strategy",
                                  "lowest_latency"], ns_c)
    client.wait_for(r"handshake complete .* on uplink 0 ", timeout=10)
    client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10)
    m0 = client.wait_for(r"uplink 0 \(\S+\): \S+ -> healthy \(srtt ([\d.]+) ms", timeout=5)
    m1 = client.wait_for(r"uplink 1 \(\S+\): \S+ -> healthy \(srtt ([\d.]+) ms", timeout=5)
    r0, r1 = float(m0.group(1)), float(m1.group(1))
    check(r1 >= 55 and r0 < 10, f"probe RTTs: direct {r0} ms, emulated {r1} ms (expected < 10 and >= 55)")
    checks.append(f"probes measured the direct uplink at {r0:.2f} ms and the emulated one at {r1:.2f} ms")
    time.sleep(1.5)  # a published measurement round for the workers
    a, b = split(ns_c, ifs, 22000)
    check(a >= 0.95 * (a + b), f"lowest_latency: direct {a}, slow {b}")
    checks.append(f"lowest_latency: {FLOWS} new flows went to the direct uplink ({a}:{b} bytes)")
    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")

    client = lab.start("client-adaptive", [lab.binary, "tun", authkey, "-i", ifs[0], "-i", ifs[1]], ns_c)
    client.wait_for(r"uplink 1 \(\S+\): \S+ -> healthy", timeout=10)
    client.wait_for(r"uplink 0 \(\S+\): \S+ -> healthy", timeout=10)
    time.sleep(1.5)
    a, b = split(ns_c, ifs, 23000)
    check(0 < b < a, f"adaptive: direct {a}, slow {b} (the slow uplink should get less, but some)")
    checks.append(f"adaptive: the slower uplink got the smaller share of {FLOWS} new flows ({a}:{b} bytes)")
    check(client.stop(signal.SIGTERM)[0] == 0, "client-adaptive did not exit 0")

    # lowest_loss: the direct (fast) uplink loses exactly every 20th of its probes (5 %,
    # below the 10 % Degraded floor, so it stays Healthy); the slow one loses none.
    for cmd in (["add", "table", "inet", "tgt"],
                ["add", "chain", "inet", "tgt", "out", "{ type filter hook output priority 0 ; }"],
                ["add", "rule", "inet", "tgt", "out", "oifname", ifs[0], "udp", "dport", "7443",
                 "@th,64,8", "0x15", "numgen", "inc", "mod", "20", "19", "drop"]):  # 0x15: version 1, Ping
        run(tglib.ns_cmd(ns_c, ["nft", *cmd]))
    client = lab.start("client-loss", [lab.binary, "tun", authkey, "-i", ifs[0], "-i", ifs[1], "--strategy",
                                       "lowest_loss", "--probe-interval", "0.1"], ns_c)
    client.wait_for(r"uplink 0 \(\S+\): \S+ -> healthy", timeout=10)
    client.wait_for(r"uplink 1 \(\S+\): \S+ -> healthy", timeout=10)
    time.sleep(4.0)  # 40 probes: the direct uplink has lost 2, and the measurement is published
    a, b = split(ns_c, ifs, 24000)
    check(b >= 0.95 * (a + b), f"lowest_loss: direct (lossy) {a}, slow (lossless) {b}")
    check("-> degraded" not in client.stderr(), f"8 % probe loss must not degrade the uplink\n{client.describe()}")
    checks.append(f"lowest_loss: with every 20th probe of the fast uplink dropped, {FLOWS} new flows went to the "
                  f"slower lossless one ({a}:{b} bytes)")
    run(tglib.ns_cmd(ns_c, ["nft", "delete", "table", "inet", "tgt"]))
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    check(em.stop(signal.SIGTERM)[0] == 0, "linkem did not exit 0")


if __name__ == "__main__":
    tglib.main("latency", body, "lowest_latency on probe-measured RTT (one uplink through the link emulator)")
