#!/usr/bin/python3
"""NAT detection: a client with a direct uplink and one through a router namespace that
masquerades (nftables). The server reports the source it saw in the handshake response;
the client marks only the second uplink as behind NAT (log, status, metrics), which the
adaptive strategy then scores 10 % worse, and traffic flows over both.

usage: test_nat.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402


def body(lab, checks):
    ns_s, ns_c, ns_r = lab.netns("s"), lab.netns("c"), lab.netns("r")
    _, c_a, _, _ = lab.veth(ns_s, ns_c, subnet=81)                # direct
    _, c_b, gw_b, _ = lab.veth(ns_r, ns_c, subnet=82)             # client -> router
    r_s, _, r_addr, _ = lab.veth(ns_r, ns_s, subnet=83)           # router -> server
    run(["ip", "-n", ns_c, "route", "add", "10.201.83.0/24", "via", gw_b, "dev", c_b])
    run(tglib.ns_cmd(ns_r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    for cmd in (["add", "table", "ip", "tgnat"],
                ["add", "chain", "ip", "tgnat", "post", "{ type nat hook postrouting priority 100 ; }"],
                ["add", "rule", "ip", "tgnat", "post", "oifname", r_s, "masquerade"]):
        run(tglib.ns_cmd(ns_r, ["nft", *cmd]))
    server, authkey = lab.start_server(ns_s)
    sock = os.path.join(lab.tmp, "client.sock")
    client = lab.start("client", [lab.binary, "tun", authkey, "-i", c_a, "-i", c_b, "--control-socket", sock], ns_c)
    client.wait_for(r"handshake complete .* on uplink 0 ", timeout=10)
    client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10)
    server.wait_for(rf"session up: client 10.0.85.2 from {r_addr.replace('.', '[.]')}:\d+ \(uplink 1,", timeout=5)
    client.wait_for(rf"uplink 1 \({c_b}\) is behind NAT", timeout=2)
    check(f"uplink 0 ({c_a}) is behind NAT" not in client.stderr(), "the direct uplink was taken for NATed")
    j = json.loads(run([lab.binary, "status", "--socket", sock, "--json"]).stdout)
    nat = {u["name"]: u["behind_nat"] for u in j["uplinks"]}
    check(nat == {c_a: False, c_b: True}, f"behind_nat in status: {nat}")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10)
    check(rx == 10, f"ping {rx}/10\n{out}")
    checks.append(f"the server saw uplink 1 from the router ({r_addr}); the client marked only it as behind NAT "
                  f"(log and status {nat}); traffic flows")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")


if __name__ == "__main__":
    tglib.main("nat", body, "NAT detection from the handshake response")
