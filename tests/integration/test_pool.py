#!/usr/bin/python3
"""Tunnel addresses from the server's pool: clients started without --ipv4 get the
lowest free addresses of the server's prefix (all uplinks of one client the same one),
reach the server through them, and a client that finds the pool exhausted is told so.

usage: test_pool.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402


def tg0_addr(ns):
    out = run(tglib.ns_cmd(ns, ["ip", "-4", "-o", "addr", "show", "dev", "tg0"])).stdout
    m = re.search(r"inet (\S+)", out)
    return m.group(1) if m else None


def body(lab, checks):
    ns_s, ns_a, ns_b = lab.netns("s"), lab.netns("a"), lab.netns("b")
    _, a1, ip_s1, _ = lab.veth(ns_s, ns_a, subnet=101)
    _, a2, _, _ = lab.veth(ns_s, ns_a, subnet=102)
    _, _, ip_s3, _ = lab.veth(ns_s, ns_b, subnet=103)
    server, authkey = lab.start_server(ns_s, "--ipv4", "10.0.86.1/30")  # a pool of one: 10.0.86.2
    a = lab.start("client-a", [lab.binary, "tun", authkey, "-i", a1, "-i", a2], ns_a)
    a.wait_for(r"tunnel address 10\.0\.86\.2/30 assigned by the server", timeout=10)
    a.wait_for(r"handshake complete .* on uplink 1 ", timeout=10)
    check(tg0_addr(ns_a) == "10.0.86.2/30", f"client a's tg0: {tg0_addr(ns_a)}")
    check(server.stderr().count("session up: client 10.0.86.2 ") == 2, "both uplinks of a should share 10.0.86.2")
    _, rx, _, out = lab.ping(ns_a, "10.0.86.1", count=5)
    check(rx == 5, f"client a ping: {rx}/5\n{out}")
    checks.append("a client without --ipv4 got 10.0.86.2/30 from the pool on both uplinks and pings the server")
    b = lab.start("client-b", [lab.binary, "tun", authkey, "--endpoint", f"{ip_s3}:7443", "--handshake-timeout", "2"],
                  ns_b)
    rc = b.wait_exit(timeout=10)
    check(rc == 1 and "the server has no free address in its pool" in b.stderr(), f"client b: {rc}\n{b.describe()}")
    checks.append("a second client found the pool exhausted and said so")
    for p in (a, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")

    server, authkey = lab.start_server(ns_s, "--ipv4", "10.0.87.1/24", label="server2")
    a = lab.start("client-a2", [lab.binary, "tun", authkey, "-i", a1], ns_a)
    a.wait_for(r"tunnel address 10\.0\.87\.2/24 assigned", timeout=10)
    b = lab.start("client-b2", [lab.binary, "tun", authkey, "--endpoint", f"{ip_s3}:7443"], ns_b)
    b.wait_for(r"tunnel address 10\.0\.87\.3/24 assigned", timeout=10)
    for ns, who in ((ns_a, "a"), (ns_b, "b")):
        _, rx, _, out = lab.ping(ns, "10.0.87.1", count=3)
        check(rx == 3, f"client {who} ping: {rx}/3\n{out}")
    checks.append("two clients got 10.0.87.2 and 10.0.87.3 and both reach the server")
    for p in (a, b, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")


if __name__ == "__main__":
    tglib.main("pool", body, "tunnel addresses assigned from the server's pool")
