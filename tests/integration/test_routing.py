#!/usr/bin/python3
"""Full tunnel by policy routing: with --full-tunnel, a ping to an address outside every
tunnel prefix (a host behind the server) goes through tg0, the --exclude'd LAN does not,
and the uplink's own packets still reach the server (no loop). `ip rule` and the routing
tables are exactly as before once the client exits; after a SIGKILL the next start
cleans up the leftovers. Split tunnel (--route) only routes its prefixes.

usage: test_routing.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

BEYOND = "198.18.5.1"  # a host "on the internet" behind the server (on the server's lo)


# Link-local and multicast routes the kernel adds to the test's own veths whenever IPv6
# address configuration finishes on them: not ours, and their timing is the kernel's.
VETH_IPV6 = re.compile(r"^(fe80::/64|multicast ff00::/8|local fe80::\S+|anycast fe80::\S*) dev v\S+ ")


def snapshot(ns):
    out = []
    for argv in (["ip", "rule", "show"], ["ip", "-6", "rule", "show"], ["ip", "route", "show", "table", "all"],
                 ["ip", "-6", "route", "show", "table", "all"]):
        lines = run(tglib.ns_cmd(ns, argv)).stdout.splitlines()
        out.append("\n".join(sorted(line for line in lines if not VETH_IPV6.match(line))) + "\n")
    return out


def tg0_tx(ns):
    return int(run(tglib.ns_cmd(ns, ["cat", "/sys/class/net/tg0/statistics/tx_packets"])).stdout)


def ping_via(lab, ns, dst, count=5):
    before = tg0_tx(ns)
    _, rx, _, out = lab.ping(ns, dst, count=count, interval=0.05)
    return rx, tg0_tx(ns) - before, out


def body(lab, checks):
    ns_s, ns_c, ns_l = lab.netns("s"), lab.netns("c"), lab.netns("l")
    _, _, ip_s, _ = lab.veth(ns_s, ns_c, subnet=61)
    _, lan_if, ip_l, _ = lab.veth(ns_l, ns_c, subnet=62)  # the client's LAN
    run(tglib.ns_cmd(ns_c, ["ip", "addr", "add", "fd7e:62::2/64", "dev", lan_if, "nodad"]))  # and its IPv6
    run(tglib.ns_cmd(ns_s, ["ip", "addr", "add", f"{BEYOND}/32", "dev", "lo"]))
    run(tglib.ns_cmd(ns_c, ["ip", "route", "add", "default", "via", ip_s]))
    before = snapshot(ns_c)
    server, authkey = lab.start_server(ns_s)

    client, _ = lab.start_client(ns_c, authkey, "--full-tunnel", "--exclude", "10.201.62.0/24",
                                 "--exclude", "fd7e:62::/64")
    rx, via, out = ping_via(lab, ns_c, BEYOND)
    check(rx == 5 and via >= 5, f"full tunnel: ping {BEYOND} {rx}/5, {via} packets through tg0\n{out}")
    rx, via, out = ping_via(lab, ns_c, ip_l)
    check(rx == 5 and via < 5, f"excluded LAN: ping {ip_l} {rx}/5, {via} packets through tg0\n{out}")
    rx, _, out = ping_via(lab, ns_c, SERVER_TUN_IP)
    check(rx == 5, f"tunnel address: {rx}/5\n{out}")
    rules = run(tglib.ns_cmd(ns_c, ["ip", "rule", "show"])).stdout
    check("29700:" in rules and "not from all fwmark 0x7467 lookup 29799" in rules, f"rules:\n{rules}")
    checks.append(f"--full-tunnel: {BEYOND} (outside every tunnel prefix) answered through tg0, the excluded "
                  f"LAN {ip_l} directly, and the uplink (marked 0x7467) still reaches the server")
    # IPv6: everything into tg0 but the excluded prefix, which stays with the main table.
    rules6 = run(tglib.ns_cmd(ns_c, ["ip", "-6", "rule", "show"])).stdout
    via6 = run(tglib.ns_cmd(ns_c, ["ip", "-6", "route", "get", "2001:db8:77::1"]), check=False).stdout
    ex6 = run(tglib.ns_cmd(ns_c, ["ip", "-6", "route", "get", "fd7e:62::5"]), check=False)
    check("to fd7e:62::/64 lookup main" in rules6 and "dev tg0" in via6 and f"dev {lan_if}" in ex6.stdout,
          f"IPv6 full tunnel: rules\n{rules6}\nroute get 2001:db8:77::1: {via6}\nroute get fd7e:62::5: "
          f"{ex6.stdout}{ex6.stderr}")
    checks.append("IPv6 in full tunnel: 2001:db8:77::1 is routed into tg0, the excluded LAN fd7e:62::/64 to the LAN")

    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
    after = snapshot(ns_c)
    check(after == before, "rules/routes differ after exit:\n" + "\n".join(
        f"--- before\n{b}--- after\n{a}" for b, a in zip(before, after) if a != b))
    checks.append("after SIGTERM: ip rule, ip -6 rule and every routing table exactly as before")

    crashed, _ = lab.start_client(ns_c, authkey, "--full-tunnel", label="client-crash")
    crashed.stop(signal.SIGKILL)
    lab.wait_gone(ns_c, "killed client")
    left = run(tglib.ns_cmd(ns_c, ["ip", "rule", "show"])).stdout
    check("29700:" in left, f"expected leftover rules after SIGKILL:\n{left}")
    _, rx, _, out = lab.ping(ns_c, ip_l, count=3)
    check(rx == 3, f"after the crash the leftovers must not blackhole the LAN: {rx}/3\n{out}")
    again, _ = lab.start_client(ns_c, authkey, "--full-tunnel", label="client-again")
    rx, via, out = ping_via(lab, ns_c, BEYOND)
    check(rx == 5 and via >= 5, f"after restart: {rx}/5, {via} through tg0\n{out}")
    check(again.stop(signal.SIGTERM)[0] == 0, "client-again did not exit 0")
    after = snapshot(ns_c)
    check(after == before, "rules/routes differ after the crash and a clean run:\n" + "\n".join(
        f"--- before\n{b}--- after\n{a}" for b, a in zip(before, after) if a != b))
    checks.append("after SIGKILL the leftover rules fall through harmlessly; the next start removed them and "
                  "its exit left everything as before")

    split, _ = lab.start_client(ns_c, authkey, "--route", f"{BEYOND}/32", "--route", "fd7e:55::/48",
                                label="client-split")
    r6 = run(tglib.ns_cmd(ns_c, ["ip", "-6", "route", "show", "fd7e:55::/48"])).stdout
    check("dev tg0" in r6, f"split: no IPv6 route fd7e:55::/48 via tg0: {r6!r}")
    rx, via, out = ping_via(lab, ns_c, BEYOND)
    check(rx == 5 and via >= 5, f"split: {BEYOND} {rx}/5, {via} through tg0\n{out}")
    rx, via, out = ping_via(lab, ns_c, ip_s)
    check(rx == 5 and via < 5, f"split: {ip_s} {rx}/5, {via} through tg0 (should be direct)\n{out}")
    check(split.stop(signal.SIGTERM)[0] == 0, "client-split did not exit 0")
    check(snapshot(ns_c) == before, "split tunnel left routes behind")
    check(server.stop(signal.SIGTERM)[0] == 0, "server did not exit 0")
    checks.append(f"--route {BEYOND}/32 --route fd7e:55::/48: only those prefixes through tg0; cleaned up on exit")


if __name__ == "__main__":
    tglib.main("routing", body, "full tunnel (policy routing) with LAN exclusion, split tunnel, cleanup")
