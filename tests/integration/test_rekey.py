#!/usr/bin/python3
"""Rekeying: with --rekey-after 1 every uplink handshakes again each second while the
tunnel carries a full-speed TCP transfer and then a 1000-per-second ping; the transfer
arrives whole, the ping loses nothing, and no packet is dropped for an unknown index,
a failed tag or a replay on either side. A session that cannot rekey (handshakes
blocked by nftables) is dropped by both ends after reject_after, and comes back once
handshakes pass again.

usage: test_rekey.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

TOTAL = 256 << 20
SEED = 7
TCP_PORT = 5202
KEY_DROPS = ("drop_unknown_index", "drop_auth", "drop_replay", "drop_keys_used_up")


def rekeys(client):
    return client.stderr().count(": rekeyed")


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    lab.veth(ns_s, ns_c, subnet=61)
    server, authkey = lab.start_server(ns_s)
    client = lab.start("client", [lab.binary, "-v", "tun", authkey, "--rekey-after", "1", "--reject-after", "3"], ns_c)
    client.wait_for(r"info handshake complete", timeout=10)
    checks.append("tunnel up with --rekey-after 1")

    # 1. Full-speed TCP transfers across several rekeys: as many (up to 6) as it takes for
    # two rekeys to happen while data flows, however fast the machine moves it.
    start = rekeys(client)
    expected = tglib.pattern_sha256(TOTAL, SEED)
    seconds = 0.0
    transfers = 0
    while transfers < 6 and rekeys(client) - start < 2:
        port = TCP_PORT + transfers
        sink = lab.helper(f"tcp-sink{transfers}", ns_s, "tcp-sink", SERVER_TUN_IP, str(port), "30")
        sink.wait_for(r"^listening$", timeout=10, stream="stdout")
        source = lab.helper(f"tcp-source{transfers}", ns_c, "tcp-source", SERVER_TUN_IP, str(port), str(TOTAL),
                            str(SEED), "30")
        check(source.wait_exit(timeout=60) == 0, f"sender failed\n{source.describe()}")
        check(sink.wait_exit(timeout=10) == 0, f"receiver failed\n{sink.describe()}")
        got = json.loads(sink.stdout().strip().splitlines()[-1])
        sent = json.loads(source.stdout().strip().splitlines()[-1])
        check(got["bytes"] == TOTAL and got["sha256"] == expected, f"transfer damaged: {got}")
        seconds += sent["seconds"]
        transfers += 1
    n_tcp = rekeys(client) - start
    check(n_tcp >= 2, f"only {n_tcp} rekeys during {transfers} transfers ({seconds:.1f} s)\n{client.describe()}")
    checks.append(f"{transfers} x {TOTAL >> 20} MiB over TCP at {transfers * TOTAL * 8 / seconds / 1e6:.0f} Mbit/s "
                  f"arrived whole (sha256 equal) across {n_tcp} rekeys")

    # 2. 5000 pings at 1 ms intervals across rekeys: not one lost.
    start = rekeys(client)
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5000, interval=0.001, wait=2, timeout=40)
    n_ping = rekeys(client) - start
    check(tx == 5000 and rx == tx, f"ping across rekeys: {rx}/{tx}\n{out}")
    check(n_ping >= 3, f"only {n_ping} rekeys during the ping run")
    checks.append(f"{tx} pings at 1000/s across {n_ping} rekeys: {rx} answered, none lost")

    c, s = client.dump_counters(), server.dump_counters()
    bad = {f"{who}.{k}": v[k] for who, v in (("client", c), ("server", s)) for k in KEY_DROPS if v.get(k)}
    check(not bad, f"packets dropped around rekeys: {bad}")
    checks.append("no packet dropped for an unknown index, a bad tag, a replay or used-up keys on either side")

    # 3. Handshakes blocked: after reject_after (3 s) the client drops its session.
    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
    check(server.stop(signal.SIGTERM)[0] == 0, "server did not exit 0")
    server, authkey = lab.start_server(ns_s, "--reject-after", "3", label="server2")
    client, _ = lab.start_client(ns_c, authkey, "--rekey-after", "1", "--reject-after", "3", label="client2")
    nft = [["add", "table", "inet", "tgr"],
           ["add", "chain", "inet", "tgr", "in", "{ type filter hook input priority 0 ; }"],
           ["add", "rule", "inet", "tgr", "in", "udp", "dport", "7443", "@th,64,8", "0x17", "drop"]]  # Handshake
    for cmd in nft:
        run(tglib.ns_cmd(ns_s, ["nft", *cmd]))
    blocked = time.monotonic()
    client.wait_for(r"no rekey within 3(\.0)? s; dropping the session", timeout=8)
    waited = time.monotonic() - blocked
    server.wait_for(r"not rekeyed within 3 s: removed", timeout=5)
    checks.append(f"with handshakes blocked the client dropped its session {waited:.1f} s later (reject_after 3 s), "
                  "and the server its own")
    run(tglib.ns_cmd(ns_s, ["nft", "delete", "table", "inet", "tgr"]))
    rx, out = lab.ping_after_handshake(client, ns_c, client.stderr_size())
    check(rx == 5, f"ping after handshakes pass again: {rx}/5\n{out}")
    checks.append("handshakes allowed again: the uplink came back and pings pass")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")


if __name__ == "__main__":
    tglib.main("rekey", body, "rekeying under load loses nothing; a session that cannot rekey is dropped")
