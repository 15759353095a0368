#!/usr/bin/python3
"""64 MiB of deterministic pseudo-random data over TCP through the tunnel; sha256 must
match on both sides (and the expected digest of the pattern). Then one UDP GSO send
(UDP_SEGMENT) through the tunnel: the TUN hands it over whole, and the server side
receives every datagram intact. Last, a tunnel with a jumbo MTU (8920) over a veth of
9000 bytes carries 16 MiB intact in segments of that size, batched.

usage: test_tcp_transfer.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import json
import os
import signal
import socket
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import run, SERVER_TUN_IP, check  # noqa: E402

TOTAL = 64 << 20
SEED = 20261127
TCP_PORT = 5201
IO_TIMEOUT = 30  # seconds without progress before a side gives up
UDP_SEGMENT = 103  # linux/udp.h


def cpu_has_aes():
    with open("/proc/cpuinfo") as f:
        return any(line.startswith("flags") and " aes " in line + " " and " pclmulqdq" in line for line in f)


def body(lab, checks):
    # AES-256-GCM where the CPU has it (the ping test and others cover the automatic
    # choice, test_multipath ChaCha20-Poly1305).
    aes = ["--cipher", "aes-256-gcm"] if cpu_has_aes() else []
    # Unequal worker counts: three server workers (more than this machine may have CPUs:
    # three TUN queues and three sockets sharing the port), one on the client.
    t = lab.tunnel(subnet=2, server_args=aes + ["--workers", "3"], client_args=aes + ["--workers", "1"])
    checks.append("tunnel up" + (", AES-256-GCM" if aes else " (no AES-NI: ChaCha20-Poly1305)") +
                  "; 3 server workers, 1 client worker")

    sink = lab.helper("tcp-sink", t["ns_s"], "tcp-sink", SERVER_TUN_IP, str(TCP_PORT), str(IO_TIMEOUT))
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    source = lab.helper("tcp-source", t["ns_c"], "tcp-source", SERVER_TUN_IP, str(TCP_PORT), str(TOTAL),
                        str(SEED), str(IO_TIMEOUT))
    expected = tglib.pattern_sha256(TOTAL, SEED)  # meanwhile

    rc_src = source.wait_exit(timeout=50)
    rc_sink = sink.wait_exit(timeout=10)
    check(rc_src == 0, f"sender exited {rc_src}\n{source.describe()}")
    check(rc_sink == 0, f"receiver exited {rc_sink}\n{sink.describe()}")
    sent = json.loads(source.stdout().strip().splitlines()[-1])
    got = json.loads(sink.stdout().strip().splitlines()[-1])

    check(sent["bytes"] == TOTAL, f"sender sent {sent['bytes']} bytes, expected {TOTAL}")
    check(sent["sha256"] == expected, f"sender digest {sent['sha256']} != pattern digest {expected}")
    check(got["bytes"] == TOTAL, f"receiver got {got['bytes']} bytes, expected {TOTAL}")
    check(got["sha256"] == sent["sha256"],
          f"sha256 mismatch: sent {sent['sha256']}, received {got['sha256']}")
    mbit = TOTAL * 8 / sent["seconds"] / 1e6
    checks.append(f"{TOTAL >> 20} MiB client -> {SERVER_TUN_IP}:{TCP_PORT} over TCP, sha256 "
                  f"{got['sha256'][:16]}... identical on both sides")

    # The same over IPv6 (the tunnel's /64): TCP over IPv6 through the offloaded paths.
    out = run(tglib.ns_cmd(t["ns_s"], ["ip", "-6", "-o", "addr", "show", "dev", "tg0", "scope", "global"])).stdout
    v6 = next((w.split("/")[0] for w in out.split() if "/" in w and ":" in w), None)
    check(v6 is not None, f"the server's tg0 has no IPv6 address: {out!r}")
    total6 = TOTAL // 4
    sink6 = lab.helper("tcp-sink6", t["ns_s"], "tcp-sink", v6, str(TCP_PORT + 1), str(IO_TIMEOUT))
    sink6.wait_for(r"^listening$", timeout=10, stream="stdout")
    source6 = lab.helper("tcp-source6", t["ns_c"], "tcp-source", v6, str(TCP_PORT + 1), str(total6), str(SEED + 1),
                         str(IO_TIMEOUT))
    check(source6.wait_exit(timeout=50) == 0, f"IPv6 sender failed\n{source6.describe()}")
    check(sink6.wait_exit(timeout=10) == 0, f"IPv6 receiver failed\n{sink6.describe()}")
    got6 = json.loads(sink6.stdout().strip().splitlines()[-1])
    check(got6["bytes"] == total6 and got6["sha256"] == tglib.pattern_sha256(total6, SEED + 1),
          f"IPv6 transfer damaged: {got6}")
    checks.append(f"{total6 >> 20} MiB over TCP/IPv6 to [{v6}]:{TCP_PORT + 1}, sha256 identical")
    checks.append(f"throughput {mbit:.0f} Mbit/s ({sent['seconds']:.2f} s, Python sender/receiver)")

    # UDP GSO from an application: one send of 4 datagrams (3 x 1200 bytes and 17).
    before = t["client"].dump_counters()
    rx = lab.socket(t["ns_s"])
    rx.bind((SERVER_TUN_IP, 5202))
    rx.settimeout(3)
    tx = lab.socket(t["ns_c"])
    tx.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1200)
    blob = os.urandom(3 * 1200 + 17)
    tx.sendto(blob, (SERVER_TUN_IP, 5202))
    got_dgrams = []
    for _ in range(4):
        try:
            got_dgrams.append(rx.recv(4096))
        except socket.timeout:
            break
    check([len(d) for d in got_dgrams] == [1200, 1200, 1200, 17] and b"".join(got_dgrams) == blob,
          f"UDP GSO send: received datagrams of {[len(d) for d in got_dgrams]} bytes, "
          f"content equal {b''.join(got_dgrams) == blob}")
    after = t["client"].counters_until(lambda c: c["tun_gso_reads"] > before["tun_gso_reads"])
    check(after["tun_gso_reads"] > before["tun_gso_reads"],
          "the UDP GSO send did not reach the client's TUN as one super-packet (USO)")
    checks.append("one UDP GSO send (UDP_SEGMENT 1200, 3617 bytes) read from the TUN whole and arrived as "
                  "4 datagrams, intact")

    for p in (t["client"], t["server"]):
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc} after SIGTERM\n{p.describe()}")
    s, c = t["server"].counters(), t["client"].counters()
    check(s["rx_bytes"] >= TOTAL, f"server rx_bytes={s['rx_bytes']} < {TOTAL}")
    bad = {f"{n}.{k}": v[k] for n, v in (("server", s), ("client", c))
           for k in ("drop_auth", "drop_replay", "drop_malformed", "drop_bad_inner", "tun_write_errors")
           if v.get(k)}
    check(not bad, f"unexpected non-zero counters: {bad}")
    check(c["tx_gso_sends"] > 0, "the client never sent several datagrams at once (UDP GSO)")
    check(s["rx_gro_receives"] > 0, "the server never received several datagrams at once (UDP GRO)")
    check(c["tun_gso_reads"] > 0, "the client never read a TCP super-packet from its TUN (TUN offloads)")
    check(s["tun_gro_writes"] > 0, "the server never wrote joined TCP segments to its TUN (TUN offloads)")
    checks.append(f"server rx_packets={s['rx_packets']} rx_bytes={s['rx_bytes']}; "
                  f"client udp_send_errors={c['udp_send_errors']} rx_no_buffers={c['rx_no_buffers']}; "
                  f"client GSO sends {c['tx_gso_sends']} for {c['tx_packets']} packets; "
                  f"server GRO receives {s['rx_gro_receives']}; "
                  f"client TUN reads of TCP super-packets {c['tun_gso_reads']} for {c['tun_read_packets']} segments; "
                  f"server TUN writes of joined segments {s['tun_gro_writes']}; "
                  "no auth/replay/malformed drops; both exited 0")

    jumbo(lab, checks)


def jumbo(lab, checks):
    """Jumbo frames: links of 9000 bytes, TUN MTU 8920 at both ends."""
    ns_s, ns_c = lab.netns("j"), lab.netns("k")
    if_s, if_c, _, _ = lab.veth(ns_s, ns_c, subnet=3)
    run(["ip", "-n", ns_s, "link", "set", if_s, "mtu", "9000"])
    run(["ip", "-n", ns_c, "link", "set", if_c, "mtu", "9000"])
    server, authkey = lab.start_server(ns_s, "--mtu", "8920", label="server-jumbo")
    client, _ = lab.start_client(ns_c, authkey, "--mtu", "8920", label="client-jumbo")
    out = run(tglib.ns_cmd(ns_c, ["ip", "-o", "link", "show", "dev", "tg0"])).stdout
    check(" mtu 8920 " in out, f"the client's tg0 is not at MTU 8920: {out!r}")
    total = 16 << 20
    sink = lab.helper("tcp-sink-jumbo", ns_s, "tcp-sink", SERVER_TUN_IP, str(TCP_PORT + 2), str(IO_TIMEOUT))
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    source = lab.helper("tcp-source-jumbo", ns_c, "tcp-source", SERVER_TUN_IP, str(TCP_PORT + 2), str(total),
                        str(SEED + 2), str(IO_TIMEOUT))
    check(source.wait_exit(timeout=50) == 0, f"jumbo sender failed\n{source.describe()}")
    check(sink.wait_exit(timeout=10) == 0, f"jumbo receiver failed\n{sink.describe()}")
    got = json.loads(sink.stdout().strip().splitlines()[-1])
    check(got["bytes"] == total and got["sha256"] == tglib.pattern_sha256(total, SEED + 2),
          f"jumbo transfer damaged: {got}")
    for p in (client, server):
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc} after SIGTERM\n{p.describe()}")
    s, c = server.counters(), client.counters()
    per_packet = s["rx_bytes"] / max(s["rx_packets"], 1)
    check(per_packet > 4000, f"inner packets of {per_packet:.0f} bytes on average: not jumbo segments")
    check(c["tx_gso_sends"] > 0 and s["tun_gro_writes"] > 0,
          f"jumbo datagrams were not batched: client tx_gso_sends={c['tx_gso_sends']}, "
          f"server tun_gro_writes={s['tun_gro_writes']}")
    bad = {f"{n}.{k}": v[k] for n, v in (("server", s), ("client", c))
           for k in ("drop_auth", "drop_malformed", "drop_bad_inner", "tun_write_errors", "udp_send_errors") if v.get(k)}
    check(not bad, f"unexpected non-zero counters with jumbo frames: {bad}")
    checks.append(f"jumbo: TUN MTU 8920 over a 9000-byte veth, {total >> 20} MiB intact, {per_packet:.0f} bytes "
                  f"per inner packet on average, {c['tx_gso_sends']} GSO sends, "
                  f"{s['tun_gro_writes']} joined TUN writes")


if __name__ == "__main__":
    tglib.main("tcp", body, "64 MiB over TCP through the tunnel, sha256 compared")
