#!/usr/bin/python3
"""tcp_fallback: with every UDP packet to the server dropped (nftables in the client's
namespace), a client with --tcp-fallback reaches a server with --tcp-fallback over TCP
on the same port, from a pinned uplink and from an unbound one: pings and 4 MiB of TCP
through the tunnel arrive intact, and status says "tcp". Garbage on the server's TCP
port (a zero-length frame, random bytes) closes only that connection. Against a server
without it the client says why TCP failed, goes back to UDP and ends with a clear error.

usage: test_tcp_fallback.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import random
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_PORT, SERVER_TUN_IP, check, run  # noqa: E402

TOTAL = 4 << 20
SEED = 20261128
TCP_PORT = 5301


def block_udp(ns):
    """Drops every UDP packet to the server's port leaving ns (a network that blocks UDP)."""
    run(tglib.ns_cmd(ns, ["nft", "-f", "-"]), input_bytes=(
        "table inet blockudp {\n"
        "  chain out {\n"
        "    type filter hook output priority filter; policy accept;\n"
        f"    udp dport {SERVER_PORT} counter drop\n"
        "  }\n"
        "}\n").encode())


def dropped(ns):
    out = run(tglib.ns_cmd(ns, ["nft", "list", "table", "inet", "blockudp"])).stdout
    return int(out.split("packets ")[1].split()[0])


def status(lab, sock):
    r = run([lab.binary, "status", "--socket", sock, "--json"], check=False, timeout=15)
    check(r.returncode == 0, f"status: exit {r.returncode}\n{r.stderr}")
    return json.loads(r.stdout)


def transfer(lab, ns_s, ns_c, port, seed):
    sink = lab.helper("tcp-sink", ns_s, "tcp-sink", SERVER_TUN_IP, str(port), "20")
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    source = lab.helper("tcp-source", ns_c, "tcp-source", SERVER_TUN_IP, str(port), str(TOTAL), str(seed), "20")
    check(source.wait_exit(timeout=40) == 0, f"sender failed\n{source.describe()}")
    check(sink.wait_exit(timeout=10) == 0, f"receiver failed\n{sink.describe()}")
    got = json.loads(sink.stdout().strip().splitlines()[-1])
    check(got["bytes"] == TOTAL and got["sha256"] == tglib.pattern_sha256(TOTAL, seed),
          f"transfer through the TCP fallback damaged: {got}")
    got["mbit"] = TOTAL * 8 / json.loads(source.stdout().strip().splitlines()[-1])["seconds"] / 1e6
    return got


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    _, if_c, ip_s, _ = lab.veth(ns_s, ns_c, subnet=141)
    block_udp(ns_c)
    sock_c = os.path.join(lab.tmp, "client.sock")
    sock_s = os.path.join(lab.tmp, "server.sock")

    # A pinned uplink (-i): its TCP connection leaves through the interface.
    server, authkey = lab.start_server(ns_s, "--tcp-fallback", "--control-socket", sock_s)
    server.wait_for(r"tcp fallback: accepting clients over TCP", timeout=5)
    client, hs = lab.start_client(ns_c, authkey, "-i", if_c, "--tcp-fallback", "--tcp-fallback-after", "1",
                                  "--control-socket", sock_c, timeout=15)
    client.wait_for(rf"uplink 0 \({if_c}\): no answer over UDP for 1\.0 s; trying TCP to {ip_s}:{SERVER_PORT}",
                    timeout=1)
    check(dropped(ns_c) > 0, "no UDP packet was dropped: the test blocks nothing")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10)
    check(rx == 10, f"ping through the TCP fallback: {rx}/10\n{out}")
    got = transfer(lab, ns_s, ns_c, TCP_PORT, SEED)
    up = status(lab, sock_c)["uplinks"][0]
    check(up["transport"] == "tcp" and up["connected"] and up["peer"] == f"{ip_s}:{SERVER_PORT}",
          f"client status of the uplink: {up}")
    js = status(lab, sock_s)
    peers = [u["peer"] for c in js["clients"] for u in c["uplinks"]]
    check(len(peers) == 1 and peers[0].startswith("127.0.0.1:") and js.get("tcp_connections") == 1,
          f"server sees peers {peers}, tcp_connections {js.get('tcp_connections')}")
    checks.append(f"UDP to port {SERVER_PORT} dropped ({dropped(ns_c)} packets): uplink {if_c} fell back to TCP "
                  f"after 1 s; 10/10 pings, {TOTAL >> 20} MiB TCP intact ({got['sha256'][:12]}..., {got['mbit']:.0f} "
                  "Mbit/s with Python at both ends); status says "
                  "tcp, the server sees the client from loopback and counts 1 TCP connection")

    # Garbage on the TCP port: each bad connection is closed, the tunnel carries on.
    for payload in (b"\x00\x00", bytes(random.Random(7).getrandbits(8) for _ in range(4096))):
        def poke(payload=payload):
            s = socket.create_connection((ip_s, SERVER_PORT), timeout=5)
            s.sendall(payload)
            s.settimeout(3)
            try:
                data = s.recv(100)  # the server answers garbage with nothing but, at most, a close
            except (socket.timeout, ConnectionResetError):
                data = b""
            s.close()
            return data
        check(tglib.in_netns(ns_c, poke) == b"", "the server answered garbage on its TCP port")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5)
    check(rx == 5 and server.poll() is None, f"after garbage on the TCP port: ping {rx}/5, server "
                                             f"{'running' if server.poll() is None else 'gone'}\n{out}")
    checks.append("a zero-length frame and 4 KiB of random bytes on the TCP port: nothing answered, the tunnel "
                  "still carries pings")
    for p in (client, server):
        check(p.stop()[0] == 0, f"{p.label} did not exit 0\n{p.describe()}")

    # An unbound uplink (no -i): its relay sits on loopback.
    server, authkey = lab.start_server(ns_s, "--tcp-fallback", label="server2")
    client, _ = lab.start_client(ns_c, authkey, "--tcp-fallback", "--tcp-fallback-after", "0.5", label="client2",
                                 timeout=15)
    client.wait_for(r"uplink 0 \(\S+\): no answer over UDP for 0\.5 s; trying TCP", timeout=1)
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10)
    check(rx == 10, f"ping through the TCP fallback of an unbound uplink: {rx}/10\n{out}")
    checks.append("an unbound uplink fell back after 0.5 s: 10/10 pings")
    for p in (client, server):
        check(p.stop()[0] == 0, f"{p.label} did not exit 0\n{p.describe()}")

    # A server without tcp_fallback: nothing listens on TCP.
    server, authkey = lab.start_server(ns_s, label="server3")
    client, _ = lab.start_client(ns_c, authkey, "--tcp-fallback", "--tcp-fallback-after", "0.5",
                                 "--handshake-timeout", "3", label="client3", wait=False)
    client.wait_for(r"warning uplink 0 \(\S+\): tcp connect: Connection refused over TCP to .*; trying UDP "
                    r"again", timeout=5)
    rc = client.wait_exit(timeout=8)
    check(rc == 1 and "failed: no valid answer within 3.00 s" in client.stderr() and
          "; over TCP: tcp connect: Connection refused" in client.stderr(),
          f"client against a server without TCP: exit {rc}\n{client.describe()}")
    checks.append("against a server without --tcp-fallback: 'tcp connect: Connection refused', back to UDP, "
                  "then the handshake timeout's one-line error naming it (exit 1)")
    check(server.stop()[0] == 0, "server3 did not exit 0")


if __name__ == "__main__":
    tglib.main("tcpfallback", body, "tcp_fallback: the tunnel over TCP where UDP is blocked")
