#!/usr/bin/python3
"""A network behind the server: the client routes a prefix into the tunnel (--route) and
reaches a host in a third namespace that the server forwards to; replies come back
through the tunnel. After SIGTERM the client's route is gone.

usage: test_behind_server.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check, run  # noqa: E402

PINGS = 10


def body(lab, checks):
    ns_s = lab.netns("s")
    ns_c = lab.netns("c")
    ns_b = lab.netns("b")  # a host on the server's LAN
    lab.veth(ns_s, ns_c, subnet=9)
    _, _, gw_ip, host_ip = lab.veth(ns_s, ns_b, subnet=10)
    lan = "10.201.10.0/24"
    run(tglib.ns_cmd(ns_s, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
    run(["ip", "-n", ns_b, "route", "add", "10.0.85.0/24", "via", gw_ip])

    server, authkey = lab.start_server(ns_s)
    client, _ = lab.start_client(ns_c, authkey, "--route", lan)
    check(lab.routes(ns_c, lan), f"client has no route for {lan}")
    checks.append(f"client routed {lan} into tg0 with --route")

    tx, rx, rtt, out = lab.ping(ns_c, host_ip, count=PINGS, interval=0.05)
    check(rx == PINGS, f"ping {host_ip} (behind the server) from the client: {rx}/{tx}\n{out}")
    checks.append(f"ping client -> {host_ip} behind the server: {rx}/{tx}, rtt min/avg/max {rtt} ms")
    tx, rx, rtt, out = lab.ping(ns_b, CLIENT_TUN_IP, count=PINGS, interval=0.05)
    check(rx == PINGS, f"ping {CLIENT_TUN_IP} from the host behind the server: {rx}/{tx}\n{out}")
    checks.append(f"ping host behind the server -> client {CLIENT_TUN_IP}: {rx}/{tx}")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3, interval=0.05)
    check(rx == 3, f"ping {SERVER_TUN_IP}: {rx}/{tx}\n{out}")

    for p in (client, server):
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc}\n{p.describe()}")
    lab.wait_gone(ns_c, "client", prefixes=(lan,))
    lab.wait_gone(ns_s, "server")
    checks.append(f"SIGTERM: both exited 0, tg0 and the {lan} route are gone")


if __name__ == "__main__":
    tglib.main("behind", body, "the client reaches a network behind the server through --route")
