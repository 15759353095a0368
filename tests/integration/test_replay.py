#!/usr/bin/python3
"""A captured initiation replayed from another address gets nothing but, at most, the
handshake response: no Ping, no return traffic, no session that anything is sent on.

The client's first initiation is captured with a packet socket on the server's veth (in
the test's own namespace). Then, from a second address of the client's namespace:
  1. replayed after the client left (its group removed): refused (at most a 16-byte
     Error, never a response);
  2. replayed after a server restart with the same key, within the clock window: the
     response and nothing else for 6 s (before, it got the response and a Ping every
     second); the session stays unrouted and goes after its 10 s;
  3. replayed to a server restarted again, now that the timestamp is older than its
     --max-clock-skew: refused for the clock.
A new run of the client then connects and pings as usual.

usage: test_replay.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import select
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_PORT, SERVER_TUN_IP, TestFailure, check, run  # noqa: E402

ETH_P_IP = 0x0800
INIT_LEN = 16 + 48 + 44 + 32  # header + Noise (e.pub + tag) + init payload + mac1 + mac2
RESPONSE_LEN = 106
ERROR_LEN = 16
STALE_TIMESTAMP = 8  # the Error code for a replayed or stale initiation
SKEW_S = 4  # the servers' --max-clock-skew
LISTEN_S = 6.0


def capture_initiation(raw, timeout=5.0):
    """The first client->server initiation seen on the packet socket, or TestFailure."""
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline and seen < 10000:
        try:
            ip = raw.recv(65535)
        except socket.timeout:
            continue
        seen += 1
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        dport = struct.unpack("!H", ip[ihl + 2:ihl + 4])[0]
        payload = ip[ihl + 8:]
        if dport == SERVER_PORT and len(payload) == INIT_LEN and payload[0] == 0x17 and payload[3] == 1:
            return bytes(payload)
    raise TestFailure(f"no initiation captured within {timeout} s ({seen} IPv4 packets seen)")


def replay(sock, dst, init, listen_s):
    """Sends init from sock, then returns every datagram sock receives in listen_s
    seconds (bounded in count too)."""
    sock.sendto(init, dst)
    sizes = []
    deadline = time.monotonic() + listen_s
    while len(sizes) < 1000:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([sock], [], [], left)
        if r:
            sizes.append(sock.recv(65535))
    return sizes


def refused(attacker, dst, init, what):
    """Replays init and checks that it got at most one Error, code 8 (stale timestamp),
    and no response; their count."""
    got = replay(attacker, dst, init, 1.0)
    sizes = [len(d) for d in got]
    check(all(n == ERROR_LEN for n in sizes) and len(sizes) <= 1,
          f"{what}: the attacker received datagrams of {sizes} bytes")
    check(all(d[3] == STALE_TIMESTAMP for d in got),
          f"{what}: the Error carries code {[d[3] for d in got]}, want {STALE_TIMESTAMP} (stale timestamp)")
    return len(sizes)


def start_server(lab, ns, key, label):
    return lab.start_server(ns, "--key", key, "--max-clock-skew", str(SKEW_S), "--control-socket",
                            os.path.join(lab.tmp, "server.sock"), label=label)


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    if_s, if_c, ip_s, ip_c = lab.veth(ns_s, ns_c, subnet=151)
    attacker_ip = ip_c.rsplit(".", 1)[0] + ".3"
    run(["ip", "-n", ns_c, "addr", "add", f"{attacker_ip}/24", "dev", if_c])
    key = os.path.join(lab.tmp, "server.key")
    dst = (ip_s, SERVER_PORT)

    server, authkey = start_server(lab, ns_s, key, "server1")
    raw = lab.socket(ns_s, socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    raw.bind((if_s, ETH_P_IP))
    raw.settimeout(0.2)
    client, _ = lab.start_client(ns_c, authkey, label="client1")
    init = capture_initiation(raw)
    captured_at = time.monotonic()
    raw.close()
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3)
    check(rx == 3, f"the real client's ping: {rx}/{tx}\n{out}")
    attacker = lab.socket(ns_c)
    attacker.bind((attacker_ip, 0))
    check(client.stop()[0] == 0, "client1 did not exit 0")
    server.wait_for(r"closed its session on uplink 0", timeout=5)

    # 1. The client is gone, its group removed: the replay is still refused.
    errors = refused(attacker, dst, init, "replay after the client left")
    server.wait_for(r"rejected: stale timestamp \(a replayed initiation", timeout=2)
    checks.append(f"a replay after the client left (group removed) is refused: {errors} Error(s) of "
                  f"{ERROR_LEN} bytes, no response")

    # 2. A restarted server remembers nothing, but the session never goes live.
    check(server.stop()[0] == 0, "server1 did not exit 0")
    lab.wait_gone(ns_s, "server1")
    server, _ = start_server(lab, ns_s, key, "server2")
    check(time.monotonic() - captured_at < SKEW_S, "too slow: the capture is already outside the clock window")
    sizes = [len(d) for d in replay(attacker, dst, init, LISTEN_S)]
    check(sizes == [RESPONSE_LEN], f"replay to a restarted server: the attacker received {len(sizes)} datagrams "
          f"({sizes} bytes) in {LISTEN_S:.0f} s, want only the {RESPONSE_LEN}-byte response")
    server.wait_for(rf"session up: client \S+ from {attacker_ip}:", timeout=1)
    c = server.dump_counters()
    check(c["tx_packets"] == 0, f"the server sent {c['tx_packets']} Data packets")
    r = run([lab.binary, "status", "--json", "--socket", os.path.join(lab.tmp, "server.sock")], check=False)
    check(r.returncode == 0, f"status: exit {r.returncode}\n{r.stderr}")
    ups = [u for cl in json.loads(r.stdout)["clients"] for u in cl["uplinks"]]
    check(not ups, f"the replayed session shows as an active uplink: {ups}")
    checks.append(f"a replay to a restarted server from {attacker_ip}: only the {RESPONSE_LEN}-byte response in "
                  f"{LISTEN_S:.0f} s (no Ping, no Data); the session is not routed")

    # 3. Restarted again, the timestamp is now older than the clock window.
    check(server.stop()[0] == 0, "server2 did not exit 0")
    lab.wait_gone(ns_s, "server2")
    server, _ = start_server(lab, ns_s, key, "server3")
    time.sleep(max(0.0, SKEW_S + 0.5 - (time.monotonic() - captured_at)))
    errors = refused(attacker, dst, init, "a stale replay")
    server.wait_for(rf"its clock is [\d.]+ s behind the server's \(max_clock_skew {SKEW_S} s\)", timeout=2)
    checks.append(f"a replay older than --max-clock-skew {SKEW_S} to a restarted server is refused for its "
                  f"clock: {errors} Error(s), no response")

    client, _ = lab.start_client(ns_c, authkey, label="client2")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3)
    check(rx == 3, f"a new client run after the replays: ping {rx}/{tx}\n{out}")
    checks.append("a new run of the client connects and pings 3/3")


if __name__ == "__main__":
    tglib.main("replay", body, "a replayed initiation from another address gets the response and nothing more")
