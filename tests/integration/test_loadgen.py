#!/usr/bin/python3
"""A concentrator with thousands of clients: the real server against triglav-loadgen's
virtual clients (2,000 of 2 uplinks each, all at once, from 128 source addresses),
every uplink rekeying every 10 s and probing every second for 60 s. Every session must
be held to the end, none lost or closed, the server must count every client, and its
memory must stay bounded. Under the sanitizers (tools/sanitized-tests), 500 clients for
30 s, and no memory bound (the sanitizer's quarantine and shadow dominate it).

usage: test_loadgen.py /path/to/triglav [linkem] [flood] [/path/to/triglav-loadgen];
root; exit 0 pass, 1 fail, 77 skip
"""
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

SANITIZED = bool(os.environ.get("TRIGLAV_SANITIZED"))
CLIENTS = 500 if SANITIZED else 2000
UPLINKS = 2
SECONDS = 30 if SANITIZED else 60
REKEY = 10
SOURCES = 128
# Resident memory the server may add per client, all told (sessions through rekeys,
# routes, snapshots waiting to be freed, the allocator's slack): a bound against
# anything that grows with clients squared or with time, not the per-client target
# (docs/PERFORMANCE.md measures that).
MAX_RSS_PER_CLIENT = 64 << 10


def loadgen_binary(triglav):
    if len(sys.argv) > 4:
        return os.path.abspath(sys.argv[4])
    return os.path.join(os.path.dirname(os.path.abspath(triglav)), "tools", "triglav-loadgen")


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    s_if, c_if, ip_s, _ = lab.veth(ns_s, ns_c, subnet=77)
    prefix = ip_s.rsplit(".", 1)[0]
    # The virtual clients' source addresses: .100 to .227 of the link's /24.
    for i in range(SOURCES):
        run(["ip", "-n", ns_c, "addr", "add", f"{prefix}.{100 + i}/24", "dev", c_if])
    sock = os.path.join(lab.tmp, "server.sock")
    server, authkey = lab.triglav_server(ns_s, "--ipv4", "10.120.0.1/16", "--max-connections", str(4 * CLIENTS),
                                         "--control-socket", sock, listen=f"{ip_s}:7443")
    r = run(tglib.ns_cmd(ns_c, [loadgen_binary(lab.binary), "--authkey", authkey, "--clients", str(CLIENTS),
                                "--uplinks", str(UPLINKS), "--source", f"{prefix}.100", "--sources", str(SOURCES),
                                "--duration", str(SECONDS), "--rekey", str(REKEY), "--server-pid",
                                str(server.pid)]),
            timeout=SECONDS + 60)
    j = json.loads(r.stdout.strip().splitlines()[-1])
    sessions = CLIENTS * UPLINKS
    progress = "\n".join(r.stderr.strip().splitlines()[-5:])
    check(j["sessions_held"] == sessions and j["clients_whole"] == CLIENTS,
          f"sessions held {j['sessions_held']} of {sessions}, clients whole {j['clients_whole']}\n{j}\n{progress}")
    check(j["sessions_lost"] == 0 and j["sessions_closed"] == 0, f"sessions lost or closed: {j}")
    rekeys = sessions * (SECONDS // REKEY - 1)  # the first comes after 2-10 s, then every 10 s
    check(j["handshakes_completed"] >= sessions + rekeys, f"rekeys missing: {j['handshakes_completed']} handshakes, "
                                                          f"at least {sessions + rekeys} expected")
    status = json.loads(run(tglib.ns_cmd(ns_s, [lab.binary, "status", "--json", "--socket", sock])).stdout)
    check(len(status["clients"]) == CLIENTS, f"the server counts {len(status['clients'])} clients, not {CLIENTS}")
    grown = j["server_rss_kb_after"] - j["server_rss_kb_before"]
    # Under AddressSanitizer freed memory waits in its quarantine (256 MB) and every
    # byte has shadow: resident memory says nothing of the server's own there.
    if not SANITIZED:
        check(0 < grown * 1024 <= MAX_RSS_PER_CLIENT * CLIENTS,
              f"server memory grew {grown} kB for {CLIENTS} clients (at most {MAX_RSS_PER_CLIENT * CLIENTS >> 10} kB)")
    checks.append(f"{CLIENTS} clients x {UPLINKS} uplinks joined at once and held {SECONDS} s with rekeys every "
                  f"{REKEY} s: {j['handshakes_completed']} handshakes (p50 {j['handshake_p50_ms']:.0f} ms, p99 "
                  f"{j['handshake_p99_ms']:.0f} ms), every session held, none lost; the server counts every client; "
                  f"its memory grew {grown / 1024:.1f} MB ({grown * 1024 / CLIENTS / 1024:.1f} KB a client), "
                  f"{j['server_cpu_s']:.1f} s of CPU")


if __name__ == "__main__":
    tglib.main("loadgen", body, "thousands of virtual clients against the real server, rekeying")
