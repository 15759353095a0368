#!/usr/bin/python3
"""Failover with a TCP flow running through a two-uplink tunnel: the uplink carrying the
flow (1) goes down (the kernel's link event makes it Down at once) or (2) silently
blackholes (probes detect it); either way the flow moves to the other uplink and the TCP
connection carries on without a reset; on a link down the client also tells the server
over the other uplink, which marks the uplink Down for return traffic at once. (3) A blackholed uplink that recovers is used
again. Detection times are measured from the client's log and printed; the asserted
bounds are generous (the targets are 200 ms and 1.5 s).

usage: test_failover.py /path/to/triglav; root; exit 0/1/77
"""
import datetime
import json
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

PORT = 5400
SECONDS = 5.0

SINK = """
import json, socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1); s.settimeout(20)
print("listening", flush=True)
c, _ = s.accept(); c.settimeout(20)
n, last, gap = 0, time.monotonic(), 0.0
while True:
    b = c.recv(1 << 16)
    now = time.monotonic()
    if not b: break
    if n > 0: gap = max(gap, now - last)
    n += len(b); last = now
print(json.dumps({"bytes": n, "max_gap": gap}), flush=True)
"""

SOURCE = """
import json, socket, sys, time
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
chunk = bytes(32768); n = 0; t0 = time.monotonic()
while time.monotonic() - t0 < float(sys.argv[3]):
    c.sendall(chunk); n += len(chunk); time.sleep(0.005)   # ~50 Mbit/s, paced
c.shutdown(socket.SHUT_WR); c.recv(1); c.close()
print(json.dumps({"bytes": n}), flush=True)
"""


def tx_bytes(ns, ifs):
    return {i: int(run(tglib.ns_cmd(ns, ["cat", f"/sys/class/net/{i}/statistics/tx_bytes"])).stdout) for i in ifs}


def log_time(client, pattern, after):
    """Wall-clock time of the first client log line matching pattern after byte offset."""
    client.wait_for(pattern, timeout=10, after=after)
    line = re.search(r"^.*" + pattern, client.stderr()[after:], re.M).group(0)
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S.%f")
    return stamp.timestamp()


def flow_run(lab, ns_s, ns_c, ifs, client, phase, breaker, expect_pattern):
    sink = lab.start(f"sink{phase}", tglib.ns_cmd(ns_s, [sys.executable, "-c", SINK, SERVER_TUN_IP, str(PORT)]))
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    src = lab.start(f"source{phase}", tglib.ns_cmd(ns_c, [sys.executable, "-c", SOURCE, SERVER_TUN_IP, str(PORT),
                                                         str(SECONDS)]))
    b0 = tx_bytes(ns_c, ifs)
    time.sleep(1.0)
    b1 = tx_bytes(ns_c, ifs)
    busy = max(ifs, key=lambda i: b1[i] - b0[i])  # the uplink carrying the flow
    uplink = ifs.index(busy)
    offset = client.stderr_size()
    t0 = time.time()
    breaker(busy)
    detected = log_time(client, rf"uplink {uplink} \({re.escape(busy)}\): \S+ -> {expect_pattern}", offset)
    check(src.wait_exit(timeout=30) == 0, f"TCP sender failed (reset?)\n{src.describe()}")
    check(sink.wait_exit(timeout=10) == 0, f"TCP receiver failed\n{sink.describe()}")
    got = json.loads(sink.stdout().strip().splitlines()[-1])
    sent = json.loads(src.stdout().strip().splitlines()[-1])
    check(got["bytes"] == sent["bytes"], f"receiver got {got['bytes']} of {sent['bytes']} bytes")
    b2 = tx_bytes(ns_c, ifs)
    other = ifs[1 - uplink]
    check(b2[other] - b1[other] > 1_000_000, f"the flow did not move to {other}")
    return uplink, busy, detected - t0, got, t0


def body(lab, checks):
    # 1. Link down: Down at once through the kernel's link event.
    ns_s, ns_c, ifs, server, client = lab.bonded(1)
    s_offset = server.stderr_size()
    uplink, busy, dt, got, t0 = flow_run(lab, ns_s, ns_c, ifs, client, 1,
                                         lambda i: run(["ip", "-n", ns_c, "link", "set", i, "down"]), "down")
    check(dt < 0.5, f"link down on {busy}: Down after {dt * 1000:.0f} ms")
    checks.append(f"link down under a TCP flow: uplink {uplink} Down after {dt * 1000:.0f} ms (target 200 ms); "
                  f"flow moved, no reset, longest receive gap {got['max_gap'] * 1000:.0f} ms")
    # The client told the server over the other uplink: return traffic left it too.
    ds = log_time(server, rf"uplink {uplink} reported down by the client", s_offset) - t0
    check(ds < 0.5, f"the server heard of the down uplink only after {ds * 1000:.0f} ms")
    checks.append(f"the server marked the client's uplink {uplink} Down {ds * 1000:.0f} ms after the link went down "
                  "(the client's UplinkDown message over the other uplink), so return traffic moved as fast")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")

    # 2. Blackhole: the link stays up, packets vanish; probes find out.
    ns_s, ns_c, ifs, server, client = lab.bonded(2)
    time.sleep(1.5)  # a few probe answers first, so the uplinks are Healthy with an RTT

    def blackhole(i):
        for cmd in (["add", "table", "inet", "tgt"],
                    ["add", "chain", "inet", "tgt", "out", "{ type filter hook output priority 0 ; }"],
                    ["add", "rule", "inet", "tgt", "out", "oifname", i, "udp", "dport", "7443", "drop"]):
            run(tglib.ns_cmd(ns_c, ["nft", *cmd]))

    uplink, busy, dt, got, _ = flow_run(lab, ns_s, ns_c, ifs, client, 2, blackhole, "unhealthy")
    check(dt < 3.0, f"blackhole on {busy}: Unhealthy after {dt * 1000:.0f} ms")
    checks.append(f"silent blackhole under a TCP flow: uplink {uplink} Unhealthy after {dt * 1000:.0f} ms "
                  f"(target 1.5 s); flow moved, no reset, longest receive gap {got['max_gap'] * 1000:.0f} ms")

    # 3. The blackhole ends: the uplink is probed back to Healthy and used again.
    offset = client.stderr_size()
    t0 = time.time()
    run(tglib.ns_cmd(ns_c, ["nft", "delete", "table", "inet", "tgt"]))
    back = log_time(client, rf"uplink {uplink} \({re.escape(busy)}\): \S+ -> healthy", offset) - t0
    checks.append(f"blackhole lifted: uplink {uplink} Healthy again after {back * 1000:.0f} ms")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10, interval=0.02)
    check(rx == 10, f"ping after recovery: {rx}/{tx}\n{out}")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")


if __name__ == "__main__":
    tglib.main("failover", body, "link down and blackhole under a running TCP flow")
