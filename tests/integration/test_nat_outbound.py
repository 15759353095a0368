#!/usr/bin/python3
"""--nat-outbound: a host beyond the server (its own namespace, no route back to the
tunnel prefix) answers a client's ping only when the server masquerades; the server
switches IP forwarding on and puts it back, and its nftables table is gone on exit and
replaced after a crash.

usage: test_nat_outbound.py /path/to/triglav; root; exit 0/1/77
"""
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

BEYOND = "198.18.7.1"


def forwarding(ns):
    return run(tglib.ns_cmd(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"])).stdout.strip()


def tables(ns):
    return run(tglib.ns_cmd(ns, ["nft", "list", "tables"])).stdout


def body(lab, checks):
    ns_s, ns_c, ns_i = lab.netns("s"), lab.netns("c"), lab.netns("i")
    lab.veth(ns_s, ns_c, subnet=111)
    _, _, ip_i, _ = lab.veth(ns_i, ns_s, subnet=112)  # the "internet" side of the server
    run(tglib.ns_cmd(ns_i, ["ip", "addr", "add", f"{BEYOND}/32", "dev", "lo"]))
    run(tglib.ns_cmd(ns_s, ["ip", "route", "add", f"{BEYOND}/32", "via", ip_i]))
    check(forwarding(ns_s) == "0", "a new namespace should start without forwarding")

    server, authkey = lab.start_server(ns_s)
    client, _ = lab.start_client(ns_c, authkey, "--route", f"{BEYOND}/32")
    run(tglib.ns_cmd(ns_s, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    _, rx, _, _ = lab.ping(ns_c, BEYOND, count=3, wait=1)
    check(rx == 0, f"without NAT the host beyond has no route back, yet {rx}/3 answered")
    run(tglib.ns_cmd(ns_s, ["sysctl", "-qw", "net.ipv4.ip_forward=0"]))
    for p in (client, server):
        p.stop(signal.SIGTERM)
    checks.append(f"without --nat-outbound {BEYOND} (no route back to 10.0.85.0/24) does not answer")

    server, authkey = lab.start_server(ns_s, "--nat-outbound", label="server-nat")
    server.wait_for(r"outbound NAT: 10\.0\.85\.0/24 masqueraded", timeout=5)
    client, _ = lab.start_client(ns_c, authkey, "--route", f"{BEYOND}/32", label="client-nat")
    _, rx, _, out = lab.ping(ns_c, BEYOND, count=5)
    check(rx == 5 and forwarding(ns_s) == "1" and "triglav_tg0" in tables(ns_s),
          f"with --nat-outbound: ping {rx}/5, forwarding {forwarding(ns_s)}\n{out}")
    checks.append(f"--nat-outbound: {BEYOND} answered 5/5 through the server's masquerade")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    check(forwarding(ns_s) == "0" and "triglav_tg0" not in tables(ns_s),
          f"after exit: forwarding {forwarding(ns_s)}, tables {tables(ns_s)!r}")
    checks.append("on exit: IP forwarding back to 0 and the nftables table gone")

    crashed, authkey = lab.start_server(ns_s, "--nat-outbound", label="server-crash")
    crashed.stop(signal.SIGKILL)
    lab.wait_gone(ns_s, "killed server")
    check("triglav_tg0" in tables(ns_s), "a killed server cannot remove its table")
    again, authkey = lab.start_server(ns_s, "--nat-outbound", label="server-again")
    check(tables(ns_s).count("triglav_tg0") == 1, f"tables after a restart: {tables(ns_s)!r}")
    check(again.stop(signal.SIGTERM)[0] == 0, "server-again did not exit 0")
    check("triglav_tg0" not in tables(ns_s), "table left after the clean exit")
    checks.append("after a SIGKILL the next start replaced the left-over table, and removed it on exit")


if __name__ == "__main__":
    tglib.main("natout", body, "--nat-outbound: forwarding and masquerade, undone on exit")
