#!/usr/bin/python3
"""triglav lab: two network namespaces joined by a veth pair, a server in one, a client
in the other, and a short measurement report.

  sudo tools/lab.py [path/to/triglav] [--json] [-t SECONDS]

Measures: the client's handshake time (from its log), ping RTT through the tunnel (20
pings), TCP throughput through the tunnel with iperf3 (client->server and reverse), the
same iperf3 runs over the bare veth for reference, and the tunnel/raw ratio. Prints a
table, or one JSON object with --json. Needs root, iproute2, iputils-ping, iperf3.

Everything it creates (namespaces tglab-s / tglab-c, their veth, the processes) is
removed on every exit path, Ctrl-C included (tools/lablib). Leftover tglab-* namespaces
from a killed run are removed at start. Standard library only; takes about 25 s with
-t 5.
"""
import argparse
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lablib  # noqa: E402
from lablib import LabError  # noqa: E402

NS_S, NS_C = "tglab-s", "tglab-c"
IP_S, IP_C = "10.201.250.1", "10.201.250.2"
TUN_S = "10.0.85.1"
IPERF_PORT = 5201


def run_lab(lab, seconds, progress):
    r = {"triglav": lablib.run([lab.binary, "version"]).stdout.strip(), "kernel": os.uname().release,
         "iperf3_seconds": seconds}
    progress("setting up namespaces")
    ns_s, ns_c = lab.netns(NS_S), lab.netns(NS_C)
    lab.veth(ns_s, "tglab-vs", ns_c, "tglab-vc", f"{IP_S}/24", f"{IP_C}/24")
    progress("starting server and client")
    server, key = lab.triglav_server(ns_s)
    client, hs = lab.triglav_client(ns_c, key, "--handshake-timeout", "5")
    r["handshake_ms"] = float(hs.group(2))
    progress("ping through the tunnel")
    sent, received, rtt, _ = lablib.ping(ns_c, TUN_S, count=20)
    r["ping"] = {"sent": sent, "received": received}
    if rtt:
        r["ping"].update(min_ms=rtt[0], avg_ms=rtt[1], max_ms=rtt[2])
    if received == 0:
        raise LabError("no ping reply through the tunnel")
    lab.iperf3_server(ns_s, IPERF_PORT)
    r["tcp"] = {}
    for label, dst in (("tunnel", TUN_S), ("raw", IP_S)):
        for direction, rev in (("client_to_server", False), ("server_to_client", True)):
            progress(f"iperf3 {label} {direction.replace('_', ' ')} ({seconds} s)")
            res = lablib.iperf3(ns_c, dst, IPERF_PORT, seconds, reverse=rev)
            r["tcp"].setdefault(label, {})[direction] = {"mbit_s": res["mbit_s"], "retransmits": res["retransmits"]}
    r["ratio"] = {d: r["tcp"]["tunnel"][d]["mbit_s"] / r["tcp"]["raw"][d]["mbit_s"]
                  if r["tcp"]["raw"][d]["mbit_s"] else None for d in ("client_to_server", "server_to_client")}
    rc_c, _ = client.stop()
    rc_s, _ = server.stop()
    r["exit_codes"] = {"client": rc_c, "server": rc_s}
    r["counters"] = {"client": client.counters(), "server": server.counters()}
    return r


def print_table(r):
    p = r["ping"]
    t, raw, ratio = r["tcp"]["tunnel"], r["tcp"]["raw"], r["ratio"]
    print(f"triglav lab  ({r['triglav']}, kernel {r['kernel']}, veth between namespaces {NS_S} / {NS_C})")
    print()
    print(f"  handshake                 {r['handshake_ms']:9.3f} ms")
    if "avg_ms" in p:
        print(f"  ping RTT via tunnel       {p['min_ms']:.3f} / {p['avg_ms']:.3f} / {p['max_ms']:.3f} ms "
              f"(min/avg/max, {p['received']}/{p['sent']} replies)")
    print()
    print(f"  TCP, iperf3 -t {r['iperf3_seconds']}        tunnel Mbit/s   raw veth Mbit/s   tunnel/raw   retransmits (tunnel)")
    for d, name in (("client_to_server", "client -> server"), ("server_to_client", "server -> client (-R)")):
        rt = "-" if ratio[d] is None else f"{ratio[d] * 100:.1f} %"
        print(f"  {name:24} {t[d]['mbit_s']:12.0f} {raw[d]['mbit_s']:17.0f} {rt:>12}   {t[d]['retransmits']}")
    print()
    print(f"  exit codes: client {r['exit_codes']['client']}, server {r['exit_codes']['server']}")
    for side in ("client", "server"):
        c = r["counters"][side] or {}
        odd = {k: v for k, v in c.items()
               if v and (k.startswith("drop_") or k.endswith("_errors") or k == "rx_no_buffers")}
        print(f"  {side} counters: rx_packets={c.get('rx_packets')} tx_packets={c.get('tx_packets')}; "
              f"drops/errors: {' '.join(f'{k}={v}' for k, v in odd.items()) or 'none'}")


def main():
    ap = argparse.ArgumentParser(description="triglav namespace lab: handshake, RTT and throughput report")
    ap.add_argument("binary", nargs="?", default="./build/triglav", help="triglav binary (default ./build/triglav)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("-t", "--time", type=int, default=5, help="seconds per iperf3 run (default 5)")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("lab.py: needs root (network namespaces, TUN devices)", file=sys.stderr)
        return 77
    binary = os.path.abspath(a.binary)
    if not os.access(binary, os.X_OK):
        print(f"lab.py: {binary} is not an executable", file=sys.stderr)
        return 1
    for tool in ("ip", "ping", "iperf3", "ss"):
        if shutil.which(tool) is None:
            print(f"lab.py: {tool} is not installed", file=sys.stderr)
            return 1

    # Its signal handlers unwind through the finally below; counters lines are taken as
    # they are, so that an older binary can be measured too.
    lab = lablib.Lab(binary, tmp_prefix="tglab-", check_counters=False)
    progress = (lambda msg: print(f"... {msg}", file=sys.stderr, flush=True))
    try:
        report = run_lab(lab, a.time, progress)
    except LabError as e:
        print(f"lab.py: {e}", file=sys.stderr)
        return 1
    except SystemExit as e:
        print("lab.py: interrupted; cleaning up", file=sys.stderr)
        return e.code if isinstance(e.code, int) else 1
    finally:
        lab.cleanup()
    if a.json:
        print(json.dumps(report, indent=2))
    else:
        print_table(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
