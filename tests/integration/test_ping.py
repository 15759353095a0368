#!/usr/bin/python3
"""Ping both ways through the tunnel and round-trip UDP datagrams of several sizes.

usage: test_ping.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0 pass, 1 fail, 77 skip
"""
import os
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, TestFailure, check  # noqa: E402

PINGS = 20
UDP_PORT = 5599
# Inner UDP payload sizes: tiny, typical, the largest that fits the 1420 MTU, and one the
# kernel fragments before the TUN (each fragment travels as its own tunnel packet).
UDP_SIZES = [1, 64, 512, 1000, 1392, 3000]


def udp_round_trip(lab, ns_s, ns_c, checks):
    srv = lab.socket(ns_s)
    srv.bind((SERVER_TUN_IP, UDP_PORT))
    srv.settimeout(0.2)
    cli = lab.socket(ns_c)
    cli.bind((CLIENT_TUN_IP, 0))
    cli.settimeout(3)
    stop = False

    def echo():
        deadline = time.monotonic() + 30
        while not stop and time.monotonic() < deadline:
            try:
                data, peer = srv.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            srv.sendto(data, peer)

    t = threading.Thread(target=echo, daemon=True)
    t.start()
    try:
        for i, size in enumerate(UDP_SIZES):
            payload = bytes((i * 31 + k) & 0xFF for k in range(size))
            cli.sendto(payload, (SERVER_TUN_IP, UDP_PORT))
            try:
                data, peer = cli.recvfrom(65535)
            except socket.timeout:
                raise TestFailure(f"UDP round trip: no echo of the {size}-byte datagram within 3 s")
            check(data == payload, f"UDP round trip: {size}-byte datagram came back changed "
                  f"({len(data)} bytes)")
            check(peer == (SERVER_TUN_IP, UDP_PORT), f"UDP echo from unexpected peer {peer}")
    finally:
        stop = True
        t.join(2)
    checks.append(f"UDP datagrams of {UDP_SIZES} bytes echoed unchanged by {SERVER_TUN_IP}:{UDP_PORT} "
                  "in the server namespace")


def body(lab, checks):
    t = lab.tunnel(subnet=1)
    hs = t["handshake"]
    checks.append(f"client handshake complete in {hs.group(2)} ms, tunnel {hs.group(3)} {hs.group(4)}")
    check(hs.group(5) == SERVER_TUN_IP, f"client reports server tunnel address {hs.group(5)}")
    up = t["server"].wait_for(rf"session up: client {CLIENT_TUN_IP} from {t['ip_c']}:\d+ .*\) (\S+)$", timeout=3)
    mine = t["client"].wait_for(r"handshake complete .* on uplink 0 \(\S+\), (\S+)$", timeout=3)
    check(up.group(1) == mine.group(1) and up.group(1) in ("ChaCha20-Poly1305", "AES-256-GCM"),
          f"transport cipher: server {up.group(1)}, client {mine.group(1)}")
    checks.append(f"server logged the session from {t['ip_c']}; both ends use {up.group(1)} (auto: the faster here)")

    tx, rx, rtt, out = lab.ping(t["ns_c"], SERVER_TUN_IP, count=PINGS, interval=0.05)
    check(tx == PINGS and rx == PINGS,
          f"ping client -> {SERVER_TUN_IP}: {rx}/{tx} received, expected {PINGS}/{PINGS}\n{out}")
    checks.append(f"ping client -> server {SERVER_TUN_IP}: {rx}/{tx}, rtt min/avg/max {rtt} ms")

    tx, rx, rtt, out = lab.ping(t["ns_s"], CLIENT_TUN_IP, count=PINGS, interval=0.05)
    check(tx == PINGS and rx == PINGS,
          f"ping server -> {CLIENT_TUN_IP}: {rx}/{tx} received, expected {PINGS}/{PINGS}\n{out}")
    checks.append(f"ping server -> client {CLIENT_TUN_IP}: {rx}/{tx}, rtt min/avg/max {rtt} ms")

    udp_round_trip(lab, t["ns_s"], t["ns_c"], checks)

    # IPv6 in the tunnel: the server's /64 (a ULA from its key), prefix::1 for it and
    # prefix::10.0.85.2 for the client; pings both ways.
    addrs = {}
    for ns, side in ((t["ns_s"], "server"), (t["ns_c"], "client")):
        out = tglib.run(tglib.ns_cmd(ns, ["ip", "-6", "-o", "addr", "show", "dev", "tg0", "scope", "global"])).stdout
        found = [w for w in out.split() if "/" in w and ":" in w]
        check(len(found) == 1 and found[0].startswith("fd") and found[0].endswith("/64"),
              f"{side}: tg0's IPv6 addresses: {out!r}")
        addrs[side] = found[0].split("/")[0]
    check(addrs["server"].endswith("::1") and addrs["client"].endswith("::a00:5502") and
          addrs["server"].rsplit(":", 2)[0] == addrs["client"].rsplit(":", 3)[0],
          f"tunnel IPv6 addresses: {addrs}")
    for ns, dst in ((t["ns_c"], addrs["server"]), (t["ns_s"], addrs["client"])):
        tx, rx, rtt, out = lab.ping(ns, dst, count=10)
        check(tx == 10 and rx == 10, f"ping {dst}: {rx}/{tx}\n{out}")
    checks.append(f"IPv6 through the tunnel: server {addrs['server']}, client {addrs['client']} (its IPv4 address "
                  "in the server's /64); pings both ways")

    for p in (t["client"], t["server"]):
        rc, dt = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc} after SIGTERM\n{p.describe()}")
        c = p.counters()
        check(c is not None, f"{p.label} logged no counters line on exit\n{p.describe()}")
        # 40 pings (requests one way, replies the other) + the UDP datagrams, each way.
        want = 2 * PINGS + len(UDP_SIZES)
        check(c["rx_packets"] >= want and c["tx_packets"] >= want,
              f"{p.label} counters rx_packets={c['rx_packets']} tx_packets={c['tx_packets']}, "
              f"expected >= {want}")
        # drop_bad_source too: the kernel's IPv6 chatter on tg0 (multicast listener reports)
        # stays on the client (tun_local_ignored). (drop_no_route is benign and not checked.)
        bad = {k: c[k] for k in ("drop_malformed", "drop_unknown_index", "drop_auth", "drop_replay",
                                 "drop_bad_inner", "drop_bad_source", "tun_write_errors",
                                 "udp_send_errors") if c.get(k)}
        check(not bad, f"{p.label}: unexpected non-zero counters in a clean run: {bad}")
    checks.append("SIGTERM: both exited 0; counters show the traffic and no drops/errors")


if __name__ == "__main__":
    tglib.main("ping", body, "server and client in two namespaces; ping and UDP through the tunnel")
