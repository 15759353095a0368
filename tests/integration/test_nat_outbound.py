#!/usr/bin/python3
"""--nat-outbound: a host beyond the server (its own namespace, no route back to the
tunnel prefixes) answers a client's IPv4 and IPv6 pings only when the server
masquerades; the server switches IPv4 and IPv6 forwarding on and puts them back, counts
the NATed connections of both families, and its nftables table is gone on exit and
replaced after a crash.

usage: test_nat_outbound.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

BEYOND = "198.18.7.1"
BEYOND6 = "fd7e:78::1"


def forwarding(ns):
    return run(tglib.ns_cmd(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"])).stdout.strip()


def forwarding6(ns):
    return run(tglib.ns_cmd(ns, ["cat", "/proc/sys/net/ipv6/conf/all/forwarding"])).stdout.strip()


def accept_ra(ns, dev):
    return run(tglib.ns_cmd(ns, ["cat", f"/proc/sys/net/ipv6/conf/{dev}/accept_ra"])).stdout.strip()


def nat_entries(ns, port):
    r = run(tglib.ns_cmd(ns, ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/metrics"]), check=False)
    m = re.search(r"^triglav_nat_active_entries (\S+)$", r.stdout, re.M)
    check(m is not None, f"no triglav_nat_active_entries sample in the metrics:\n{r.stdout[-400:]}{r.stderr}")
    return int(float(m.group(1)))


def tables(ns):
    return run(tglib.ns_cmd(ns, ["nft", "list", "tables"])).stdout


def body(lab, checks):
    ns_s, ns_c, ns_i = lab.netns("s"), lab.netns("c"), lab.netns("i")
    lab.veth(ns_s, ns_c, subnet=111)
    if_i, if_s, ip_i, _ = lab.veth(ns_i, ns_s, subnet=112)  # the "internet" side of the server
    run(tglib.ns_cmd(ns_i, ["ip", "addr", "add", f"{BEYOND}/32", "dev", "lo"]))
    run(tglib.ns_cmd(ns_s, ["ip", "route", "add", f"{BEYOND}/32", "via", ip_i]))
    run(tglib.ns_cmd(ns_i, ["ip", "addr", "add", "fd7e:77::2/64", "dev", if_i, "nodad"]))
    run(tglib.ns_cmd(ns_s, ["ip", "addr", "add", "fd7e:77::1/64", "dev", if_s, "nodad"]))
    run(tglib.ns_cmd(ns_i, ["ip", "addr", "add", f"{BEYOND6}/128", "dev", "lo"]))
    run(tglib.ns_cmd(ns_s, ["ip", "route", "add", f"{BEYOND6}/128", "via", "fd7e:77::2"]))
    check(forwarding(ns_s) == "0" and forwarding6(ns_s) == "0", "a new namespace should start without forwarding")

    # The client sends everything into the tunnel (--full-tunnel), IPv6 included.
    server, authkey = lab.start_server(ns_s)
    client, _ = lab.start_client(ns_c, authkey, "--full-tunnel")
    client.wait_for(r"IPv6 tunnel address", timeout=5)
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        run(tglib.ns_cmd(ns_s, ["sysctl", "-qw", f"{key}=1"]))
    for dst in (BEYOND, BEYOND6):
        _, rx, _, _ = lab.ping(ns_c, dst, count=3, wait=1)
        check(rx == 0, f"without NAT the host beyond has no route back, yet {rx}/3 answered {dst}")
    for key in ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding"):
        run(tglib.ns_cmd(ns_s, ["sysctl", "-qw", f"{key}=0"]))
    for p in (client, server):
        p.stop(signal.SIGTERM)
    checks.append(f"without --nat-outbound neither {BEYOND} nor {BEYOND6} (no route back to the tunnel) answers")

    server, authkey = lab.start_server(ns_s, "--nat-outbound", "--metrics-listen", "127.0.0.1:9091",
                                       label="server-nat")
    server.wait_for(r"outbound NAT: 10\.0\.85\.0/24 and fd[0-9a-f:]+::/64 masqueraded", timeout=5)
    client, _ = lab.start_client(ns_c, authkey, "--full-tunnel", label="client-nat")
    client.wait_for(r"IPv6 tunnel address", timeout=5)
    for dst in (BEYOND, BEYOND6):
        _, rx, _, out = lab.ping(ns_c, dst, count=5)
        check(rx == 5, f"with --nat-outbound: ping {dst} {rx}/5\n{out}")
    check(forwarding(ns_s) == "1" and forwarding6(ns_s) == "1" and "triglav_tg0" in tables(ns_s),
          f"with --nat-outbound: forwarding {forwarding(ns_s)}/{forwarding6(ns_s)}, tables {tables(ns_s)!r}")
    check(accept_ra(ns_s, if_s) == "2", f"accept_ra of {if_s} while forwarding: {accept_ra(ns_s, if_s)}")
    n = nat_entries(ns_s, 9091)
    check(n == 2, f"triglav_nat_active_entries {n}, expected 2 (the IPv4 and the IPv6 ping)")
    checks.append(f"--nat-outbound: {BEYOND} and {BEYOND6} answered 5/5 through the server's masquerade; "
                  "triglav_nat_active_entries 2 (one ping of each family)")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    check(forwarding(ns_s) == "0" and forwarding6(ns_s) == "0" and "triglav_tg0" not in tables(ns_s) and
          accept_ra(ns_s, if_s) == "1",
          f"after exit: forwarding {forwarding(ns_s)}/{forwarding6(ns_s)}, accept_ra {accept_ra(ns_s, if_s)}, "
          f"tables {tables(ns_s)!r}")
    checks.append("IPv6 forwarding kept router advertisements working (accept_ra 1 -> 2 while running); on exit "
                  "IPv4 and IPv6 forwarding back to 0, accept_ra back to 1, the nftables table gone")

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
