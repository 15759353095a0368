#!/usr/bin/python3
"""Two uplinks bonded into one tunnel: the client (-i A -i B) handshakes on both, the
server groups them into one client; weighted_round_robin splits new flows 3:1; the
server spreads the download over both uplinks; redundant delivers every packet exactly
once, also while one uplink is taken down mid-stream; ecmp_aware maps the same flows to
the same uplinks every time; primary_backup uses the first uplink only, the backup
while the primary is down, and the primary again for new flows once it has been
healthy for its hysteresis time.

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
    return dict(zip(ifs, tglib.iface_counters(ns, ifs, what)))


def udp_flows(lab, ns, src_ip, dst_ip, base_port=20000):
    """FLOWS flows (distinct source ports), PER_FLOW 1000-byte datagrams each."""
    tglib.udp_flows(ns, src_ip, dst_ip, FLOWS, PER_FLOW, 1000, base_port)
    time.sleep(0.3)


def stop_all(lab, procs):
    for p in procs:
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc}\n{p.describe()}")


def body(lab, checks):
    # 1. weighted_round_robin 3:1 upload, and the download spread by the server.
    ns_s, ns_c, ifs, server, client = lab.bonded(
        1, [], ["--strategy", "weighted_round_robin", "--weights", "3,1", "--cipher", "chacha20-poly1305"])
    client.wait_for(r"handshake complete .* on uplink 1 \(\S+\), ChaCha20-Poly1305$", timeout=3)
    checks.append("client handshook on both uplinks (ChaCha20-Poly1305: the client offers nothing else); "
                  "the server grouped them into one client")
    before = counters(ns_c, ifs, "tx_bytes")
    udp_flows(lab, ns_c, CLIENT_TUN_IP, SERVER_TUN_IP)
    after = counters(ns_c, ifs, "tx_bytes")
    a, b = (after[i] - before[i] for i in ifs)
    share = a / max(1, a + b)
    check(abs(share - 0.75) <= 0.10 * 0.75, f"weighted_round_robin 3:1: uplink bytes {a}:{b} (share {share:.2f})")
    checks.append(f"weighted_round_robin 3:1 over {FLOWS} flows: uplinks carried {a}:{b} bytes (share {share:.3f})")
    before = counters(ns_c, ifs, "rx_bytes")
    udp_flows(lab, ns_s, SERVER_TUN_IP, CLIENT_TUN_IP)
    after = counters(ns_c, ifs, "rx_bytes")
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
    body_more(lab, checks)


def udp_flows_from(lab, ns, base_port):
    """New flows (other source ports than udp_flows' default) from the client."""
    udp_flows(lab, ns, CLIENT_TUN_IP, SERVER_TUN_IP, base_port)


def share_of(ns, ifs, sender):
    """Bytes each uplink interface sent (not packets: a GSO send is one packet to veth)."""
    before = counters(ns, ifs, "tx_bytes")
    sender()
    after = counters(ns, ifs, "tx_bytes")
    return tuple(after[i] - before[i] for i in ifs)


def one_tcp_flow(lab, ns_s, ns_c, phase, total=8 << 20):
    sink = lab.helper(f"sink{phase}", ns_s, "tcp-sink", SERVER_TUN_IP, "5301", "20")
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    src = lab.helper(f"source{phase}", ns_c, "tcp-source", SERVER_TUN_IP, "5301", str(total), "1", "20")
    check(src.wait_exit(timeout=30) == 0 and sink.wait_exit(timeout=10) == 0, "TCP transfer failed")


def body_more(lab, checks):
    # 3. ecmp_aware: flows spread over both uplinks, and one flow stays on one uplink.
    ns_s, ns_c, ifs, server, client = lab.bonded(3, ["--strategy", "ecmp_aware"], ["--strategy", "ecmp_aware"])
    a, b = share_of(ns_c, ifs, lambda: udp_flows(lab, ns_c, CLIENT_TUN_IP, SERVER_TUN_IP))
    check(min(a, b) >= 0.25 * (a + b), f"ecmp_aware left an uplink nearly idle: {a}:{b}")
    a2, b2 = share_of(ns_c, ifs, lambda: one_tcp_flow(lab, ns_s, ns_c, 3))
    check(max(a2, b2) >= 0.95 * (a2 + b2), f"ecmp_aware split one TCP flow over both uplinks: {a2}:{b2}")
    checks.append(f"ecmp_aware: {FLOWS} flows split {a}:{b}; one 8 MiB TCP flow stayed on one uplink ({a2}:{b2} bytes)")
    stop_all(lab, [client, server])

    # 4. primary_backup: the primary only; the backup while it is down; back after hysteresis.
    ns_s, ns_c, ifs, server, client = lab.bonded(4, ["--strategy", "primary_backup"],
                                                  ["--strategy", "primary_backup"])
    time.sleep(1.2)  # probe answers: both uplinks Healthy
    flows = lambda: udp_flows(lab, ns_c, CLIENT_TUN_IP, SERVER_TUN_IP)  # noqa: E731
    a, b = share_of(ns_c, ifs, flows)
    check(a >= 0.95 * (a + b), f"primary_backup with a healthy primary: {a}:{b}")
    run(["ip", "-n", ns_c, "link", "set", ifs[0], "down"])
    a2, b2 = share_of(ns_c, ifs, flows)
    check(b2 >= 0.95 * (a2 + b2), f"primary_backup with the primary down: {a2}:{b2}")
    offset = client.stderr_size()
    run(["ip", "-n", ns_c, "link", "set", ifs[0], "up"])
    client.wait_for(r"uplink 0 \(\S+\): \S+ -> healthy", timeout=10, after=offset)
    time.sleep(3.5)  # the hysteresis (3 s of Healthy) before new flows return to the primary
    udp = lambda: udp_flows_from(lab, ns_c, 21000)  # noqa: E731
    a3, b3 = share_of(ns_c, ifs, udp)
    check(a3 >= 0.95 * (a3 + b3), f"primary_backup after the primary came back: {a3}:{b3}")
    checks.append(f"primary_backup: primary {a}:{b}; primary down -> backup {a2}:{b2}; "
                  f"primary back and healthy 3 s -> new flows on it {a3}:{b3}")
    stop_all(lab, [client, server])


if __name__ == "__main__":
    tglib.main("multipath", body, "two uplinks: split ratios, bonded download, redundant exactly-once")
