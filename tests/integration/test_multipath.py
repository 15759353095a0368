#!/usr/bin/python3
"""Two uplinks bonded into one tunnel: the client (-i A -i B) handshakes on both, the
server groups them into one client; weighted_round_robin splits new flows 3:1; the
server spreads the download over both uplinks; redundant delivers every packet exactly
once, also while one uplink is taken down mid-stream.

usage: test_multipath.py /path/to/triglav; root; exit 0/1/77
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check, run  # noqa: E402

FLOWS = 400
PER_FLOW = 3


def counters(ns, ifs, what):
    out = {}
    for i in ifs:
        r = run(tglib.ns_cmd(ns, ["cat", f"/sys/class/net/{i}/statistics/{what}"]))
        out[i] = int(r.stdout.strip())
    return out


def udp_flows(lab, ns, src_ip, dst_ip):
    """FLOWS flows (distinct source ports), PER_FLOW 1000-byte datagrams each."""
    code = (
        "import socket\n"
        f"for p in range({FLOWS}):\n"
        "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"    s.bind(('{src_ip}', 20000 + p))\n"
        f"    for k in range({PER_FLOW}):\n"
        f"        s.sendto(bytes(1000), ('{dst_ip}', 9))\n"
        "    s.close()\n")
    run(tglib.ns_cmd(ns, [sys.executable, "-c", code]), timeout=30)
    time.sleep(0.3)


def stop_all(lab, procs):
    for p in procs:
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc}\n{p.describe()}")


def body(lab, checks):
    # 1. weighted_round_robin 3:1 upload, and the download spread by the server.
    ns_s, ns_c, ifs, server, client = lab.bonded(
        1, [], ["--strategy", "weighted_round_robin", "--weights", "3,1"])
    checks.append("client handshook on both uplinks; the server grouped them into one client")
    before = counters(ns_c, ifs, "tx_packets")
    udp_flows(lab, ns_c, CLIENT_TUN_IP, SERVER_TUN_IP)
    after = counters(ns_c, ifs, "tx_packets")
    a, b = (after[i] - before[i] for i in ifs)
    share = a / max(1, a + b)
    check(abs(share - 0.75) <= 0.10 * 0.75, f"weighted_round_robin 3:1: uplink packets {a}:{b} (share {share:.2f})")
    checks.append(f"weighted_round_robin 3:1 over {FLOWS} flows: uplinks carried {a}:{b} packets (share {share:.3f})")
    before = counters(ns_c, ifs, "rx_packets")
    udp_flows(lab, ns_s, SERVER_TUN_IP, CLIENT_TUN_IP)
    after = counters(ns_c, ifs, "rx_packets")
    a, b = (after[i] - before[i] for i in ifs)
    check(min(a, b) >= 0.25 * (a + b), f"download not spread over both uplinks: {a}:{b}")
    checks.append(f"download bonded: the server spread {FLOWS} flows over both uplinks {a}:{b}")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=20, interval=0.02)
    check(rx == 20, f"ping over two uplinks: {rx}/{tx}\n{out}")
    stop_all(lab, [client, server])

    # 2. redundant: exactly once, and no loss when an uplink dies mid-stream.
    ns_s, ns_c, ifs, server, client = lab.bonded(2, ["--strategy", "redundant"], ["--strategy", "redundant"])
    argv = tglib.ns_cmd(ns_c, ["ping", "-n", "-c", "300", "-i", "0.01", "-W", "1", SERVER_TUN_IP])
    ping = lab.start("ping", argv)
    time.sleep(1.0)
    run(["ip", "-n", ns_c, "link", "set", ifs[1], "down"])
    ping.wait_exit(timeout=20)
    out = ping.stdout()
    tx, rx, _ = tglib.parse_ping(out)
    check("DUP!" not in out, f"redundant delivered a duplicate:\n{out[-600:]}")
    check(tx == 300 and rx == 300, f"redundant with uplink B taken down mid-stream: {rx}/{tx} received\n{out[-400:]}")
    checks.append("redundant: 300/300 pings answered exactly once (no DUP!) while uplink B was taken down after 1 s")
    stop_all(lab, [client, server])
    c = server.counters()
    check(c["drop_duplicate"] >= 20, f"server counted {c['drop_duplicate']} duplicate copies while both uplinks were up")
    checks.append(f"server dropped {c['drop_duplicate']} duplicate copies (the second uplink's) and delivered each once")


if __name__ == "__main__":
    tglib.main("multipath", body, "two uplinks: split ratios, bonded download, redundant exactly-once")
