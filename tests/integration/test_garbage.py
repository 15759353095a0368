#!/usr/bin/python3
"""Hostile datagrams at the server's UDP port: random garbage, truncated headers, junk
handshakes, data packets for unknown sessions, a tampered copy and a replayed copy of a
real captured Data packet. Every one must be dropped and counted under the right
counter, and the tunnel must keep working (and must not roam to the attacker's port).

usage: test_garbage.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import os
import random
import signal
import socket
import struct
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_PORT, SERVER_TUN_IP, TestFailure, check  # noqa: E402

SEED = 7443
N_RANDOM = 400
ETH_P_IP = 0x0800
HEADER_LEN, TAG_LEN = 16, 16
INIT_LEN = 16 + 48 + 44 + 32  # header + Noise (e.pub + tag) + init payload + mac1 + mac2


def classify(pkt):
    """Which server counter a datagram that is not from a real session lands in
    (mirrors the documented wire rules): 'in_kernel' (the server's socket filter: too
    short for a header and a tag, another version or type, an Error, a handshake packet
    other than a whole initiation), 'handshake_mac' (an initiation with a bad mac1) or
    'unknown_index'."""
    if len(pkt) < HEADER_LEN + TAG_LEN:
        return "in_kernel"
    version, ptype = pkt[0] >> 4, pkt[0] & 0x0F
    if version != 1 or not 1 <= ptype <= 8:
        return "in_kernel"
    if ptype == 7:
        return "handshake_mac" if pkt[3] == 1 and len(pkt) % INIT_LEN == 0 else "in_kernel"
    return "unknown_index"


def header(ptype, receiver, counter, flags=0x10, uplink=0, aux=0):
    return bytes([0x10 | ptype, flags, uplink, aux]) + struct.pack("<IQ", receiver, counter)


def delta(after, before, *keys):
    return sum(after[k] - before[k] for k in keys)


def send_paced(sock, dst, packets):
    for i, p in enumerate(packets):
        sock.sendto(p, dst)
        if i % 50 == 49:
            time.sleep(0.005)


def capture_data_packet(lab, t, real_index):
    """Captures one client->server Data packet on the server's veth while pinging."""
    raw = lab.socket(t["ns_s"], socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    raw.bind((t["if_s"], ETH_P_IP))
    raw.settimeout(0.2)
    pinger = lab.start("ping-bg", ["ping", "-n", "-c", "10", "-i", "0.1", SERVER_TUN_IP], t["ns_c"])
    found = None
    deadline = time.monotonic() + 5
    seen = 0
    while found is None and time.monotonic() < deadline and seen < 10000:
        try:
            ip = raw.recv(65535)
        except socket.timeout:
            continue
        seen += 1
        if len(ip) < 28 or ip[0] >> 4 != 4 or ip[9] != 17:
            continue
        ihl = (ip[0] & 0x0F) * 4
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        payload = ip[ihl + 8:]
        if dport == SERVER_PORT and len(payload) > HEADER_LEN + TAG_LEN and payload[0] == 0x11:
            found = bytes(payload)
    pinger.wait_exit(timeout=10)
    raw.close()
    if found is None:
        raise TestFailure(f"no client->server Data packet captured on {t['if_s']} within 5 s "
                          f"({seen} IPv4 packets seen)")
    receiver = struct.unpack("<I", found[4:8])[0]
    check(receiver == real_index, f"captured Data packet has receiver index {receiver:08x}, "
          f"the server logged index {real_index:08x}")
    return found


def body(lab, checks):
    t = lab.tunnel(subnet=4)
    server, client = t["server"], t["client"]
    m = server.wait_for(r"session up: client \S+ from (\S+) \(uplink \d+, index ([0-9a-f]{8})\)", timeout=3)
    client_addr, real_index = m.group(1), int(m.group(2), 16)
    dst = (t["ip_s"], SERVER_PORT)
    rng = random.Random(SEED)

    attacker = lab.socket(t["ns_c"])
    attacker.bind((t["ip_c"], 0))
    attacker.settimeout(0.5)
    attacker_addr = "%s:%d" % attacker.getsockname()
    check(attacker_addr != client_addr, "attacker socket got the client's own address")

    base = server.dump_counters()

    # 1. Random garbage, sizes 0..1500 (plus both ends).
    packets = [b"", rng.randbytes(1500)] + [rng.randbytes(rng.randint(0, 1500)) for _ in range(N_RANDOM)]
    # 2. Truncated headers: a valid Data header cut short, and header + less than a tag.
    good_hdr = header(1, real_index, 1 << 40)
    packets += [good_hdr[:n] for n in range(1, HEADER_LEN)]
    packets += [good_hdr + rng.randbytes(n) for n in range(0, TAG_LEN)]
    # 3. Data packets with random receiver indexes (never the real one) and random bodies.
    for _ in range(100):
        idx = rng.getrandbits(32)
        if idx == real_index:
            idx ^= 1
        packets.append(header(1, idx, rng.getrandbits(56)) + rng.randbytes(rng.randint(TAG_LEN, 1400)))
    # Other transport types (Close, Ping, ...) for unknown sessions.
    for ptype in (2, 3, 4, 5, 6, 8):
        packets.append(header(ptype, rng.getrandbits(32) | 1, 5) + rng.randbytes(40))
    rng.shuffle(packets)
    kinds = ("in_kernel", "unknown_index", "handshake_mac")
    expect = dict.fromkeys(kinds, 0)
    for p in packets:
        expect[classify(p)] += 1
    names = [f"drop_{k}" for k in kinds]
    send_paced(attacker, dst, packets)
    c1 = server.counters_until(lambda c: delta(c, base, *names) >= len(packets))
    got = {k: delta(c1, base, f"drop_{k}") for k in kinds}
    check(got == expect, f"{len(packets)} garbage datagrams: expected {expect}, counters moved {got}")
    others = {k: c1[k] - base[k] for k in ("drop_auth", "drop_replay", "drop_bad_inner", "drop_bad_source",
                                           "tun_write_errors") if c1[k] != base[k]}
    check(not others, f"garbage moved unexpected counters: {others}")
    checks.append(f"{len(packets)} garbage datagrams (0..1500 bytes, truncated headers, unknown indexes): "
                  + ", ".join(f"drop_{k} +{v}" for k, v in got.items()) + ", exactly as classified")

    # 4. Junk handshakes: the right length (bad mac1; the few that go on to the control
    #    thread fail to decrypt and get an unauthenticated Error hint), and wrong lengths
    #    or message numbers (dropped in the kernel).
    before_hs = server.stderr_size()
    base_k = server.dump_counters()
    sender_idx = 0x5EED0001
    junk_inits = [header(7, 0, sender_idx, flags=0, aux=1) + rng.randbytes(INIT_LEN - HEADER_LEN)
                  for _ in range(3)]
    junk_other = [header(7, 0, sender_idx, flags=0, aux=1) + rng.randbytes(n) for n in (0, 10, 300)]
    junk_other += [header(7, 0, sender_idx, flags=0, aux=2) + rng.randbytes(INIT_LEN - HEADER_LEN)]
    for p in junk_inits + junk_other:
        attacker.sendto(p, dst)
    server.wait_for(rf"handshake from {attacker_addr} rejected: it is not encrypted to this server's key",
                    timeout=3, after=before_hs)
    # Kernel drops and the worker's mac1 drops are counted on different paths: wait for both.
    ck = server.counters_until(lambda c: delta(c, base_k, "drop_in_kernel") >= len(junk_other) and
                               delta(c, base_k, "drop_handshake_mac") >= len(junk_inits))
    check(delta(ck, base_k, "drop_in_kernel") == len(junk_other) and
          delta(ck, base_k, "drop_handshake_mac") == len(junk_inits),
          f"junk handshakes: drop_in_kernel +{delta(ck, base_k, 'drop_in_kernel')} (want {len(junk_other)}), "
          f"drop_handshake_mac +{delta(ck, base_k, 'drop_handshake_mac')} (want {len(junk_inits)})")
    replies = []
    for _ in range(10):
        try:
            replies.append(attacker.recv(2048))
        except socket.timeout:
            break
    errors = [r for r in replies if len(r) == 16 and r[0] == 0x19]
    check(errors, f"no Error packet came back for the junk initiations (got {len(replies)} datagrams)")
    e = errors[0]
    check(e[3] == 1 and struct.unpack("<I", e[4:8])[0] == sender_idx,
          f"Error reply: code {e[3]} (want 1 = handshake failed), receiver "
          f"{struct.unpack('<I', e[4:8])[0]:08x} (want {sender_idx:08x})")
    check(len(errors) <= len(junk_inits), f"{len(errors)} Error replies for {len(junk_inits)} junk initiations")
    check(server.poll() is None and client.poll() is None, "a triglav process died")
    checks.append(f"junk handshakes: {len(junk_other)} of wrong length or message number dropped in the kernel, "
                  f"{len(junk_inits)} with a bad mac1 counted; the server logged 'not encrypted to this server's key'; "
                  f"{len(errors)} Error hint(s) back for {len(junk_inits)} junk initiations (code 1, our sender index)")

    # 5. A real Data packet, captured on the wire, then tampered and replayed.
    pkt = capture_data_packet(lab, t, real_index)
    checks.append(f"captured a real {len(pkt)}-byte Data packet (index {real_index:08x}) on {t['if_s']}")
    c2 = server.counters_until(lambda c: True)
    tampered = bytearray(pkt)
    tampered[HEADER_LEN + 3] ^= 0x40
    attacker.sendto(bytes(tampered), dst)
    c3 = server.counters_until(lambda c: c["drop_auth"] > c2["drop_auth"])
    check(delta(c3, c2, "drop_auth") == 1, f"tampered copy: drop_auth moved by {delta(c3, c2, 'drop_auth')}, want 1")
    check(delta(c3, c2, "rx_packets") == 0, "tampered copy was delivered to the TUN")
    attacker.sendto(pkt, dst)
    c4 = server.counters_until(lambda c: c["drop_replay"] > c3["drop_replay"])
    check(delta(c4, c3, "drop_replay") == 1, f"replayed copy: drop_replay moved by {delta(c4, c3, 'drop_replay')}, want 1")
    check(delta(c4, c3, "rx_packets") == 0, "replayed copy was delivered to the TUN")
    checks.append("tampered copy (1 bit flipped after the header): drop_auth +1; "
                  "unchanged copy (replay): drop_replay +1; neither delivered")

    # 6. The tunnel still works, and the session did not move to the attacker's port.
    tx, rx, _, out = lab.ping(t["ns_c"], SERVER_TUN_IP, count=10, interval=0.05)
    check(tx == 10 and rx == 10, f"ping after the attack: {rx}/{tx}\n{out}")
    try:
        stray = attacker.recv(2048)
        raise TestFailure(f"the attacker's socket received {len(stray)} bytes: the session roamed to it")
    except socket.timeout:
        pass
    checks.append("tunnel still carries ping 10/10; nothing was sent to the attacker's socket (no roaming)")

    # 7. An authenticated packet with a spoofed inner source (another tunnel address,
    #    added to the client's tg0) must be dropped as drop_bad_source.
    tglib.run(["ip", "-n", t["ns_c"], "addr", "add", "10.0.85.99/32", "dev", "tg0"])
    c5 = server.counters_until(lambda c: True)
    argv = tglib.ns_cmd(t["ns_c"], ["ping", "-n", "-q", "-c", "3", "-i", "0.05", "-W", "1",
                                    "-I", "10.0.85.99", SERVER_TUN_IP])
    res = tglib.run(argv, timeout=10, check=False)
    stx, srx, _ = tglib.parse_ping(res.stdout + res.stderr)
    c6 = server.counters_until(lambda c: c["drop_bad_source"] - c5["drop_bad_source"] >= stx)
    tglib.run(["ip", "-n", t["ns_c"], "addr", "del", "10.0.85.99/32", "dev", "tg0"])
    check(srx == 0, f"pings from spoofed inner source 10.0.85.99 got {srx} replies")
    check(stx > 0 and delta(c6, c5, "drop_bad_source") == stx,
          f"{stx} pings from inner source 10.0.85.99: drop_bad_source moved by "
          f"{delta(c6, c5, 'drop_bad_source')}")
    checks.append(f"{stx} pings with inner source 10.0.85.99 (not the client's address): "
                  f"drop_bad_source +{delta(c6, c5, 'drop_bad_source')}, no replies")

    # 8. Final counters after SIGTERM.
    rc, _ = client.stop(signal.SIGTERM)
    check(rc == 0, f"client exited {rc}\n{client.describe()}")
    rc, _ = server.stop(signal.SIGTERM)
    check(rc == 0, f"server exited {rc} after SIGTERM\n{server.describe()}")
    f = server.counters()
    check(f["drop_malformed"] + f["drop_unknown_index"] > 0, f"final counters: {f}")
    check(f["drop_auth"] >= 1 and f["drop_replay"] >= 1, f"final counters: {f}")
    checks.append(f"server exited 0; final drop_malformed={f['drop_malformed']} "
                  f"drop_unknown_index={f['drop_unknown_index']} drop_auth={f['drop_auth']} "
                  f"drop_replay={f['drop_replay']} handshake_packets={f['handshake_packets']}")


if __name__ == "__main__":
    tglib.main("garbage", body, "hostile datagrams at the server port")
