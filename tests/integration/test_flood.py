#!/usr/bin/python3
"""Floods at the server's port while a tunnel transfer runs. An attacker namespace sends
(1) garbage: random datagrams of random length, a third with a valid header, and
(2) initiations with a valid mac1 but nothing behind it, which put the server under
load. Rounds alternate clean, blackhole (the same garbage flood, at a socket on the
server that never reads: what the flood costs the machine itself, with 2 cores shared
by flooder, kernel, both tunnel ends and iperf3), garbage and init, each an iperf3 TCP
run through the tunnel; the medians and their ratios are printed. The transfer must
never fail, garbage must be dropped by reason before any crypto, the init flood must
reach the control thread only while the load is being detected (at most about one
second's worth), and a client rekeying every second must keep rekeying through the init
flood (its cookie round trip works).

usage: test_flood.py /path/to/triglav [linkem] [/path/to/triglav-flood]; root; exit 0/1/77
"""
import json
import os
import signal
import statistics
import time
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

ROUNDS = 3
SECONDS = 3
FLOOD_RATE = 200000  # datagrams per second asked of the flooder
# Asserted (loose: the flooder takes one of the 2 cores); the goal is 0.8, printed. Under
# the sanitizers (tools/sanitized-tests) every packet costs several times more CPU: there
# the runs check that nothing breaks, and the bound only that traffic still flows.
MIN_RATIO = 0.05 if os.environ.get("TRIGLAV_SANITIZED") else 0.2


def flood_binary():
    if len(sys.argv) > 3:
        return os.path.abspath(sys.argv[3])
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "tools", "triglav-flood")


def iperf(lab, ns_c):
    r = run(tglib.ns_cmd(ns_c, ["iperf3", "-c", SERVER_TUN_IP, "-t", str(SECONDS), "-J"]), timeout=SECONDS + 20,
            check=False)
    check(r.returncode == 0, f"iperf3 failed (a reset or a stall?): {r.stdout[-400:]} {r.stderr[-300:]}")
    return json.loads(r.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6


def body(lab, checks):
    flood = flood_binary()
    check(os.access(flood, os.X_OK), f"triglav-flood not found at {flood}")
    ns_s, ns_c, ns_a = lab.netns("s"), lab.netns("c"), lab.netns("a")
    _, _, ip_s, _ = lab.veth(ns_s, ns_c, subnet=65)
    _, _, ip_sa, _ = lab.veth(ns_s, ns_a, subnet=66)
    server, authkey = lab.start_server(ns_s)
    client = lab.start("client", [lab.binary, "-v", "tun", authkey, "--rekey-after", "1"], ns_c)
    client.wait_for(r"info handshake complete", timeout=10)
    iperf_s = lab.start("iperf3-server", ["iperf3", "-s", "-B", SERVER_TUN_IP], ns_s)
    sink = lab.socket(ns_s)
    sink.bind((ip_sa, 7444))  # the blackhole: bound, never read
    del iperf_s  # stopped with the lab
    time.sleep(0.5)

    results = {"clean": [], "blackhole": [], "garbage": [], "init": []}
    sent = {"blackhole": [], "garbage": [], "init": []}
    before = server.dump_counters()
    for rnd in range(ROUNDS):
        for kind in ("clean", "blackhole", "garbage", "init"):
            f = None
            if kind != "clean":
                port = 7444 if kind == "blackhole" else 7443
                argv = [flood, "--to", f"{ip_sa}:{port}", "--kind", "garbage" if kind == "blackhole" else kind,
                        "--rate", str(FLOOD_RATE), "--duration", str(SECONDS + 1.5), "--seed", str(rnd + 1)]
                if kind == "init":
                    argv += ["--authkey", authkey]
                f = lab.start(f"flood-{kind}-{rnd}", argv, ns_a)
            rekeys0 = client.stderr().count(": rekeyed")
            mbit = iperf(lab, ns_c)
            results[kind].append(mbit)
            if f is not None:
                check(f.wait_exit(timeout=10) == 0, f"flooder failed\n{f.describe()}")
                m = f.wait_for(r"sent (\d+) datagrams in ([\d.]+) s \((\d+) per second\)", stream="stdout")
                sent[kind].append(int(m.group(3)))
            if kind == "init":
                n = client.stderr().count(": rekeyed") - rekeys0
                check(n >= 1, f"no rekey completed during the init flood (round {rnd})\n{client.describe()}")
            tglib.log(f"    round {rnd + 1} {kind}: {mbit:.0f} Mbit/s")
    after = server.dump_counters()

    clean = statistics.median(results["clean"])
    hole = statistics.median(results["blackhole"])
    checks.append(f"clean: median {clean:.0f} Mbit/s; the same garbage flood at a socket that never reads "
                  f"({statistics.median(sent['blackhole']):.0f} datagrams/s): {hole:.0f} Mbit/s = {hole / clean:.2f} "
                  "of clean (the flood's cost to this machine, before triglav sees a packet)")
    for kind in ("garbage", "init"):
        med = statistics.median(results[kind])
        ratio = med / clean
        check(ratio >= MIN_RATIO, f"{kind} flood: {med:.0f} vs clean {clean:.0f} Mbit/s ({ratio:.2f})")
        checks.append(f"{kind} flood at {statistics.median(sent[kind]):.0f} datagrams/s: goodput median "
                      f"{med:.0f} Mbit/s = {ratio:.2f} of clean, {med / hole:.2f} of blackhole "
                      f"(rounds {', '.join(f'{x:.0f}' for x in results[kind])}); no transfer failed")
    d = {k: after[k] - before[k] for k in ("drop_in_kernel", "drop_unknown_index", "drop_handshake_mac")}
    check(all(v > 0 for v in d.values()), f"garbage not dropped by reason: {d}")
    checks.append("garbage dropped before any crypto, by reason (most by the socket filter in the kernel): " +
                  ", ".join(f"{k} +{v}" for k, v in d.items()))
    check(server.wait_for(r"handshakes under load: initiations must carry a cookie now", timeout=1), "no load")
    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
    check(server.stop(signal.SIGTERM)[0] == 0, "server did not exit 0")
    fin = server.counters()
    inits = sum(sent["init"]) * (SECONDS + 1.5)
    check(fin["handshake_packets"] < 0.02 * inits,
          f"{fin['handshake_packets']} initiations reached the control thread of ~{inits:.0f} sent")
    check(fin["tx_cookie_replies"] > 0 and fin["drop_handshake_rate"] > 0, f"no cookies or limits: {fin}")
    checks.append(f"init floods (~{inits:.0f} initiations with a valid mac1): {fin['handshake_packets']} reached the "
                  f"control thread (while the load was being detected), {fin['tx_cookie_replies']} cookie replies "
                  f"(a few a second per source), {fin['drop_handshake_rate']} dropped by the workers; the client "
                  "kept rekeying through every init flood (its cookie round trip works)")


if __name__ == "__main__":
    tglib.main("flood", body, "floods at the server port: the tunnel keeps its goodput")
