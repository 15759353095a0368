#!/usr/bin/python3
"""A path whose MTU is below what the tunnel needs, with no ICMP to say so:

    client --(uplink A, 1500)-- router --(1280-byte link)-- server
    client --(uplink B, 1500)---------------------------------- server

The router drops the ICMP "fragmentation needed" it would send, so the kernel never
learns of the 1280-byte hop. The client finds it with padded probes (about 1280 on A,
all of the tunnel's 1460-byte datagrams on B), reports it in `status --json`, and clamps
the MSS of TCP SYNs both ways, so that one TCP flow striped over both uplinks
(strategy aggregate; each uplink shaped to 150 Mbit/s) carries 64 MiB intact, with both
uplinks taking a share of it. With uplink B's link down, UDP datagrams of 1400 bytes
and more (larger than A carries whole) cross A both ways in tunnel fragments, intact.
With the router's ICMP let through, the client takes the path MTU the kernel learnt
from it.

usage: test_path_mtu.py [/path/to/triglav]; root; exit 0 pass, 1 fail, 77 skip
"""
import json
import os
import random
import re
import signal
import socket
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

TOTAL = 64 << 20
SEED = 20261207
PORT = 5301
SERVER_IP = "10.9.9.1"  # on the server's loopback: reached over either uplink
# UDP payloads: inner packets of 1400 and 1420 bytes (the tunnel MTU), and one the
# sender's kernel cuts into IP fragments inside the tunnel, the first of 1420 bytes.
UDP_SIZES = (1372, 1392, 1400)
UDP_COUNT = 60  # of each size, each way


def udp_across(lab, ns_from, ns_to, dst, port):
    """UDP_COUNT datagrams of each UDP_SIZES from ns_from to dst:port (bound in ns_to),
    2 ms apart. Returns how many arrived byte for byte, and how many were sent."""
    rng = random.Random(port)
    want = {}
    for i in range(UDP_COUNT * len(UDP_SIZES)):
        size = UDP_SIZES[i % len(UDP_SIZES)]
        want[i] = i.to_bytes(4, "big") + rng.randbytes(size - 4)
    rx = lab.socket(ns_to)
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    rx.bind(("0.0.0.0", port))
    tx = lab.socket(ns_from)
    for data in want.values():
        tx.sendto(data, (dst, port))
        time.sleep(0.002)
    sent, got = len(want), 0
    deadline = time.monotonic() + 5
    rx.settimeout(0.5)
    while want and time.monotonic() < deadline:
        try:
            data = rx.recv(65535)
        except socket.timeout:
            continue
        i = int.from_bytes(data[:4], "big")
        if want.get(i) == data:
            got += 1
            del want[i]
    return got, sent


def counters(lab, ns, sock):
    r = run(tglib.ns_cmd(ns, [lab.binary, "status", "--json", "--detailed", "--socket", sock]))
    return json.loads(r.stdout)["counters"]


def body(lab, checks):
    ns_c, ns_r, ns_s = lab.netns("c"), lab.netns("r"), lab.netns("s")
    pid = lab.pid
    c_a, r_a, r_s, s_r, c_b, s_b = (f"p{pid}{x}"[:15] for x in ("ca", "ra", "rs", "sr", "cb", "sb"))
    lablib_veth = super(tglib.Lab, lab).veth
    lablib_veth(ns_c, c_a, ns_r, r_a, "10.201.81.2/24", "10.201.81.1/24")
    lablib_veth(ns_r, r_s, ns_s, s_r, "10.201.82.1/24", "10.201.82.2/24", mtu=1280)
    lablib_veth(ns_c, c_b, ns_s, s_b, "10.201.83.2/24", "10.201.83.1/24")
    run(["ip", "-n", ns_s, "addr", "add", f"{SERVER_IP}/32", "dev", "lo"])
    # 150 Mbit/s each way out of the client: one flow needs both uplinks to go faster.
    for dev in (c_a, c_b):
        run(["tc", "-n", ns_c, "qdisc", "add", "dev", dev, "root", "tbf", "rate", "150mbit", "burst", "64kb",
             "latency", "50ms"])
    run(tglib.ns_cmd(ns_r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]))
    run(["ip", "-n", ns_r, "route", "add", f"{SERVER_IP}/32", "via", "10.201.82.2"])
    run(["ip", "-n", ns_s, "route", "add", "10.201.81.0/24", "via", "10.201.82.1"])
    # Each uplink's own way to the server (its socket is bound to its interface).
    run(["ip", "-n", ns_c, "route", "add", f"{SERVER_IP}/32", "via", "10.201.81.1", "dev", c_a, "metric", "10"])
    run(["ip", "-n", ns_c, "route", "add", f"{SERVER_IP}/32", "via", "10.201.83.1", "dev", c_b, "metric", "20"])
    # No "fragmentation needed" leaves the router: the hop drops big packets silently.
    run(tglib.ns_cmd(ns_r, ["nft", "-f", "-"]), input_bytes=(
        "table inet blackhole {\n  chain out {\n    type filter hook output priority filter; policy accept;\n"
        "    icmp type destination-unreachable drop\n  }\n}\n").encode())
    checks.append("uplink A through a router whose 1280-byte link drops big packets without ICMP; uplink B direct")

    server_sock = os.path.join(lab.tmp, "server.sock")
    server, authkey = lab.triglav_server(ns_s, "--control-socket", server_sock, listen=f"{SERVER_IP}:7443")
    sock = os.path.join(lab.tmp, "client.sock")
    client = lab.start("client", [lab.binary, "tun", authkey, "-i", c_a, "-i", c_b, "--strategy", "aggregate",
                                  "--control-socket", sock], ns_c)
    client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10)
    m = client.wait_for(r"uplink 0 \(\S+\): path MTU: datagrams of (\d+) bytes arrive, the tunnel MTU needs (\d+); "
                        r"TCP is clamped", timeout=15)
    got, need = int(m.group(1)), int(m.group(2))
    check(1244 <= got <= 1252 and need == 1460, f"uplink A's path: {got} of {need} bytes")
    status = json.loads(run(tglib.ns_cmd(ns_c, [lab.binary, "status", "--json", "--socket", sock])).stdout)
    mtus = {u["name"]: u["path_mtu"] for u in status["uplinks"]}
    check(1272 <= mtus.get(c_a, 0) <= 1280, f"status path_mtu of {c_a}: {mtus}")
    check(mtus.get(c_b, 0) == need + 28, f"status path_mtu of {c_b}: {mtus}")
    checks.append(f"padded probes found uplink A's path: {got}-byte datagrams arrive (path MTU {mtus[c_a]}), "
                  f"uplink B carries the tunnel's {need}; the log and status --json say so")

    # A TCP connection both ways agrees on segments that fit uplink A: the client's SYN was
    # clamped on its way into the tunnel, the server's SYN-ACK on its way out of it.
    fit = got - 40  # the largest inner packet: the datagram less the tunnel's 40 bytes
    listener = lab.socket(ns_s, socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((SERVER_TUN_IP, PORT + 1))
    listener.listen(1)
    conn = lab.socket(ns_c, socket.AF_INET, socket.SOCK_STREAM)
    conn.settimeout(5)
    conn.connect((SERVER_TUN_IP, PORT + 1))
    listener.settimeout(5)
    accepted, _ = listener.accept()
    lab.sockets.append(accepted)
    mss_c = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    mss_s = accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG)
    check(0 < mss_c <= fit - 40 and 0 < mss_s <= fit - 40,
          f"MSS client {mss_c}, server {mss_s}: both should be at most {fit - 40} (unclamped: 1380)")
    checks.append(f"a TCP connection's MSS: {mss_c} at the client, {mss_s} at the server (at most {fit - 40}; "
                  "1380 unclamped)")

    before = {u["name"]: u["tx_bytes"] for u in status["uplinks"]}
    sink = lab.helper("tcp-sink", ns_s, "tcp-sink", SERVER_TUN_IP, str(PORT), "30")
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    source = lab.helper("tcp-source", ns_c, "tcp-source", SERVER_TUN_IP, str(PORT), str(TOTAL), str(SEED), "30")
    expected = tglib.pattern_sha256(TOTAL, SEED)
    check(source.wait_exit(timeout=90) == 0, f"sender failed\n{source.describe()}")
    check(sink.wait_exit(timeout=10) == 0, f"receiver failed\n{sink.describe()}")
    got_sink = json.loads(sink.stdout().strip().splitlines()[-1])
    check(got_sink["bytes"] == TOTAL and got_sink["sha256"] == expected, f"transfer damaged: {got_sink}")
    status = json.loads(run(tglib.ns_cmd(ns_c, [lab.binary, "status", "--json", "--socket", sock])).stdout)
    sent = {u["name"]: u["tx_bytes"] - before.get(u["name"], 0) for u in status["uplinks"]}
    total = sum(sent.values())
    shares = {n: v / total for n, v in sent.items()} if total else {}
    check(total >= TOTAL and all(s >= 0.05 for s in shares.values()) and len(shares) == 2,
          f"both uplinks should carry the flow: {sent}")
    checks.append(f"{TOTAL >> 20} MiB over one TCP flow striped on both uplinks, sha256 identical; shares "
                  + ", ".join(f"{n} {s:.0%}" for n, s in sorted(shares.items())))

    # Uplink B down: everything crosses A, and what A cannot carry whole goes in fragments.
    run(["ip", "-n", ns_c, "link", "set", c_b, "down"])
    client.wait_for(r"uplink 1 \(\S+\) is down", timeout=10)
    _, received, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5)
    check(received > 0, f"no ping over uplink A alone\n{out}")
    client_ip = status["address"].split("/")[0]
    c0, s0 = counters(lab, ns_c, sock), counters(lab, ns_s, server_sock)
    up = udp_across(lab, ns_c, ns_s, SERVER_TUN_IP, PORT + 2)
    down = udp_across(lab, ns_s, ns_c, client_ip, PORT + 3)
    c1, s1 = counters(lab, ns_c, sock), counters(lab, ns_s, server_sock)
    d = {k: c1[k] - c0[k] for k in ("tx_fragmented", "rx_reassembled", "drop_bad_fragment")}
    d.update({"server_" + k: s1[k] - s0[k] for k in ("tx_fragmented", "rx_reassembled", "drop_bad_fragment")})
    check(up[0] == up[1] and down[0] == down[1],
          f"UDP over uplink A: {up[0]} of {up[1]} up, {down[0]} of {down[1]} down arrived intact; counters {d}")
    check(d["tx_fragmented"] >= up[1] and d["server_rx_reassembled"] >= up[1] and
          d["server_tx_fragmented"] >= down[1] and d["rx_reassembled"] >= down[1] and
          d["drop_bad_fragment"] == 0 and d["server_drop_bad_fragment"] == 0,
          f"every datagram should have crossed in fragments: {d}")
    checks.append(f"uplink B down: UDP payloads of {', '.join(map(str, UDP_SIZES))} bytes over uplink A, "
                  f"{up[0]}/{up[1]} up and {down[0]}/{down[1]} down intact, in tunnel fragments "
                  f"(client sent {d['tx_fragmented']} packets in fragments, server {d['server_tx_fragmented']})")
    run(["ip", "-n", ns_c, "link", "set", c_b, "up"])
    run(["ip", "-n", ns_c, "route", "replace", f"{SERVER_IP}/32", "via", "10.201.83.1", "dev", c_b, "metric", "20"])
    rc, _ = client.stop(signal.SIGTERM, timeout=5)
    check(rc == 0, f"client exited {rc}\n{client.describe()}")

    # With the router's ICMP let through, the kernel hears of the 1280-byte hop at the
    # first big probe (and would cut later ones into fragments): the client takes the
    # kernel's figure and clamps all the same.
    run(tglib.ns_cmd(ns_r, ["nft", "delete", "table", "inet", "blackhole"]))
    run(["ip", "-n", ns_c, "route", "flush", "cache"])
    client = lab.start("client icmp", [lab.binary, "tun", authkey, "-i", c_a, "-i", c_b, "--strategy", "aggregate",
                                       "--control-socket", sock], ns_c)
    client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10)
    m = client.wait_for(r"uplink 0 \(\S+\): path MTU: datagrams of (\d+) bytes arrive", timeout=15)
    check(int(m.group(1)) == 1252, f"with ICMP: {m.group(1)} bytes, the kernel's 1280 less 28 expected")
    checks.append("with ICMP let through: the kernel's path MTU (1280) is taken, 1252-byte datagrams, TCP clamped")
    for p in (client, server):
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc}\n{p.describe()}")


if __name__ == "__main__":
    tglib.main("pathmtu", body, "a 1280-byte hop without ICMP: found by probes, TCP clamped to fit")
