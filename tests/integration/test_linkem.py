#!/usr/bin/python3
"""The link emulator measured back: in a router namespace between a client and a server
namespace, triglav-linkem's configured delay, rate, loss and outage are what ping and
iperf3 observe, its counters agree, and it removes its TUN devices and rules on exit.

usage: test_linkem.py /path/to/triglav [/path/to/triglav-linkem]; root; exit 0/1/77
"""
import json
import os
import signal
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

DELAY_MS = 25
RATE_MBIT = 20
LOSS_PCT = 10


def linkem_binary():
    if len(sys.argv) > 2:
        return os.path.abspath(sys.argv[2])
    return os.path.join(os.path.dirname(tglib.binary_from_argv()), "tools", "triglav-linkem")


def scenario(lab, name, body):
    path = os.path.join(lab.tmp, name + ".toml")
    with open(path, "w") as f:
        f.write(f'name = "{name}"\n[[links]]\nname = "l"\n[[links.segments]]\nat = "0s"\n{body}\n')
    return path


def start(lab, ns_r, if_a, if_b, path, label):
    p = lab.start(label, [linkem_binary(), "--a", if_a, "--b", if_b, "--scenario", path,
                          "--seed", "7", "--tun-prefix", "tle", "--stats-interval", "0.5"], ns_r)
    p.wait_for(r"triglav-linkem: link 'l' between", timeout=5)
    return p


def stop(lab, p, ns_r):
    rc, _ = p.stop(signal.SIGTERM, timeout=5)
    check(rc == 0, f"{p.label} exited {rc}\n{p.describe()}")
    lines = [json.loads(x) for x in p.stdout().splitlines() if x.startswith("{")]
    check(lines and lines[-1]["final"], f"{p.label}: no final stats line\n{p.describe()}")
    left = [n for n in lab.links(ns_r) if n.startswith("tle")]
    rules = run(["ip", "-n", ns_r, "rule", "show"]).stdout
    check(not left and "lookup 2001" not in rules and "lookup 2002" not in rules,
          f"{p.label} left {left} and rules:\n{rules}")
    return lines[-1]


def body(lab, checks):
    ns_c = lab.netns("c")
    ns_r = lab.netns("r")
    ns_s = lab.netns("s")
    if_ra, _, gw_c, ip_c = lab.veth(ns_r, ns_c, subnet=11)
    if_rb, _, gw_s, ip_s = lab.veth(ns_r, ns_s, subnet=12)
    run(["ip", "-n", ns_c, "route", "add", "default", "via", gw_c])
    run(["ip", "-n", ns_s, "route", "add", "default", "via", gw_s])

    # 1. Delay and rate.
    em = start(lab, ns_r, if_ra, if_rb,
               scenario(lab, "shape", f'rate = "{RATE_MBIT}mbit"\ndelay = "{DELAY_MS}ms"'), "linkem-shape")
    rtts = [float(x.split("=")[1]) for x in run(tglib.ns_cmd(ns_c, ["ping", "-n", "-c", "20", "-i", "0.05", ip_s]),
                                                   check=False).stdout.split() if x.startswith("time=")]
    check(len(rtts) >= 18, f"ping through the emulator: {len(rtts)}/20 answered")
    med = statistics.median(rtts)
    check(2 * DELAY_MS - 1 <= med <= 2 * DELAY_MS + 5,
          f"median RTT {med:.2f} ms, expected about {2 * DELAY_MS} ms (2 x {DELAY_MS} ms)")
    checks.append(f"delay {DELAY_MS} ms each way: median ping RTT {med:.2f} ms (min {min(rtts):.2f}, max {max(rtts):.2f})")
    run(tglib.ns_cmd(ns_s, ["iperf3", "-s", "-1", "-D", "-p", "5311"]))
    res = None
    for _ in range(20):  # the daemon needs a moment to listen
        res = run(tglib.ns_cmd(ns_c, ["iperf3", "-c", ip_s, "-p", "5311", "-t", "4", "--json"]), check=False,
                  timeout=30)
        if res.returncode == 0:
            break
        time.sleep(0.1)
    check(res.returncode == 0, f"iperf3 failed: {res.stdout[-500:]} {res.stderr[-500:]}")
    mbit = json.loads(res.stdout)["end"]["sum_received"]["bits_per_second"] / 1e6
    check(0.75 * RATE_MBIT <= mbit <= 1.02 * RATE_MBIT,
          f"iperf3 through a {RATE_MBIT} Mbit/s link: {mbit:.1f} Mbit/s")
    checks.append(f"rate {RATE_MBIT} Mbit/s: iperf3 TCP measured {mbit:.1f} Mbit/s")
    st = stop(lab, em, ns_r)
    check(st["up"]["delivered"] > 1000 and st["down"]["delivered"] > 100, f"counters: {st}")
    checks.append(f"emulator counters: up {st['up']['delivered']} delivered, max queueing "
                  f"{st['up']['max_queued_ms']:.1f} ms; latest write {st['late_max_ms']:.2f} ms after its time; "
                  "TUN devices and rules removed on SIGTERM")

    # 2. Random loss, both directions: a ping survives with (1 - p)^2.
    em = start(lab, ns_r, if_ra, if_rb, scenario(lab, "loss", f'loss = "{LOSS_PCT}%"'), "linkem-loss")
    tx, rx, _, out = lab.ping(ns_c, ip_s, count=300, interval=0.005, wait=1, timeout=30)
    lost = 100.0 * (tx - rx) / tx if tx else 100.0
    expect = 100.0 * (1 - (1 - LOSS_PCT / 100) ** 2)
    check(abs(lost - expect) <= 8, f"ping loss {lost:.1f} % through {LOSS_PCT} % loss each way, expected about "
          f"{expect:.1f} %\n{out}")
    st = stop(lab, em, ns_r)
    seen = st["up"]["drop_loss"] / max(1, st["up"]["packets"]) * 100
    check(abs(seen - LOSS_PCT) <= 5, f"emulator dropped {seen:.1f} % upstream, configured {LOSS_PCT} %")
    checks.append(f"loss {LOSS_PCT} % each way: ping lost {lost:.1f} % (expected {expect:.1f} %), emulator "
                  f"counted {seen:.1f} % upstream")

    # 3. Outage: nothing crosses, every packet counted.
    em = start(lab, ns_r, if_ra, if_rb, scenario(lab, "outage", "outage = true"), "linkem-outage")
    tx, rx, _, out = lab.ping(ns_c, ip_s, count=10, interval=0.02, wait=1)
    check(rx == 0, f"ping crossed an outage: {rx}/{tx}")
    st = stop(lab, em, ns_r)
    check(st["up"]["drop_outage"] >= tx, f"outage drops {st['up']['drop_outage']} < {tx} pings")
    checks.append(f"outage: 0/{tx} pings crossed, {st['up']['drop_outage']} counted as outage drops")


if __name__ == "__main__":
    tglib.main("linkem", body, "triglav-linkem's delay, rate, loss and outage measured back")
