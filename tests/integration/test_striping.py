#!/usr/bin/python3
"""One TCP flow striped over two shaped uplinks (strategy aggregate): (1) 64 MiB uploaded
arrive intact (sha256) with both uplinks carrying a large share of the one flow, and the
server's reorder buffer having put packets back in order; (2) 32 MiB downloaded the same
way, the server striping the return traffic; (3) an uplink taken down in the middle of
an upload: the transfer goes on over the other one and completes intact, without a
reset; (4) the other uplink silently blackholed in the middle of an upload: it is left
within a probe timeout, the transfer completes intact, and the longest pause of the
receiver is printed (the target is 300 ms; the bound asserted is generous); (5) uplink B
dropping 5 % of its packets at random in the middle of an upload: the client marks it
lossy (its Pongs' packet counts show the loss), the server's reorder buffer asks for the
lost packets and the client sends them again (loss repair), the transfer completes
intact.

usage: test_striping.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

CLIENT_TUN_IP = "10.0.85.2"
SEED = 20261206
IO_TIMEOUT = 30
RATES = (60, 40)  # Mbit/s, tbf on both ends of uplinks A and B
# Each uplink carries at least this share of the flow's bytes. Under a sanitizer the
# dataplane runs several times slower and its measurements lag (a tbf drop can then be
# taken for path loss, and the uplink left for 2 s): only the loosest bound is kept.
MIN_SHARE = 0.05 if os.environ.get("TRIGLAV_SANITIZED") else 0.2


def iface_bytes(ns, ifs, what):
    return [int(run(tglib.ns_cmd(ns, ["cat", f"/sys/class/net/{i}/statistics/{what}"])).stdout) for i in ifs]


def control_socket(lab, role):
    return os.path.join(lab.tmp, f"{role}.sock")  # not /run/triglav: other tests may run at once


def counters(lab, ns, role):
    r = run(tglib.ns_cmd(ns, [lab.binary, "status", "--json", "--detailed", "--socket", control_socket(lab, role)]))
    return json.loads(r.stdout).get("counters", {})


def transfer(lab, label, ns_from, ns_to, dst, port, total, during=None):
    """total bytes of the pattern from ns_from to dst:port (a sink in ns_to); `during`,
    if given, runs 1.5 s after the start. Returns the sink's report."""
    sink = lab.helper(f"sink-{label}", ns_to, "tcp-sink", dst, str(port), str(IO_TIMEOUT))
    sink.wait_for(r"^listening$", timeout=10, stream="stdout")
    source = lab.helper(f"source-{label}", ns_from, "tcp-source", dst, str(port), str(total), str(SEED),
                        str(IO_TIMEOUT))
    if during is not None:
        timer = threading.Timer(1.5, during)
        timer.start()
    expected = tglib.pattern_sha256(total, SEED)
    rc_src = source.wait_exit(timeout=90)
    rc_sink = sink.wait_exit(timeout=10)
    check(rc_src == 0, f"{label}: sender exited {rc_src} (a reset?)\n{source.describe()}")
    check(rc_sink == 0, f"{label}: receiver exited {rc_sink}\n{sink.describe()}")
    got = json.loads(sink.stdout().strip().splitlines()[-1])
    check(got["bytes"] == total, f"{label}: received {got['bytes']} bytes, expected {total}")
    check(got["sha256"] == expected, f"{label}: sha256 {got['sha256']} != the pattern's {expected}")
    return got


def shares(before, after):
    d = [a - b for a, b in zip(after, before)]
    total = sum(d) or 1
    return [x / total for x in d]


def body(lab, checks):
    ns_s, ns_c, ifs, server, client = lab.bonded(
        1, server_args=["--strategy", "aggregate", "--control-socket", control_socket(lab, "server")],
        client_args=["--strategy", "aggregate", "--control-socket", control_socket(lab, "client")])
    for ifname, rate in zip(ifs, RATES):  # both directions: the server's ends are named ...s
        for ns, dev in ((ns_c, ifname), (ns_s, ifname[:-1] + "s")):
            run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", f"{rate}mbit", "burst", "32kb",
                 "latency", "50ms"])
    time.sleep(1.0)  # a few probe rounds over the shaped paths

    # (1) upload: one flow, both uplinks
    before = iface_bytes(ns_c, ifs, "tx_bytes")
    got = transfer(lab, "up", ns_c, ns_s, SERVER_TUN_IP, 5501, 64 << 20)
    up = shares(before, iface_bytes(ns_c, ifs, "tx_bytes"))
    mbit = (64 << 20) * 8 / got["seconds"] / 1e6
    check(min(up) >= MIN_SHARE, f"upload: uplink shares {up}: one uplink carried less than {MIN_SHARE:.0%}")
    srv = counters(lab, ns_s, "server")
    cli = counters(lab, ns_c, "client")
    check(cli.get("tx_striped", 0) > 0, f"the client striped nothing: {cli}")
    check(srv.get("rx_reordered", 0) > 0, f"the server's reorder buffer held nothing back: {srv}")
    checks.append(f"64 MiB uploaded intact as one flow over tbf {RATES[0]}+{RATES[1]} Mbit/s at {mbit:.1f} Mbit/s; "
                  f"uplink shares {up[0]:.0%}/{up[1]:.0%}; server reordered {srv['rx_reordered']} packets, "
                  f"gaps given up: {srv.get('rx_reorder_lost_gaps', 0)} lost, "
                  f"{srv.get('rx_reorder_timeout_gaps', 0)} on timeout")

    # (2) download: the server stripes the return traffic over the client's uplinks
    before = iface_bytes(ns_c, ifs, "rx_bytes")
    got = transfer(lab, "down", ns_s, ns_c, CLIENT_TUN_IP, 5502, 32 << 20)
    down = shares(before, iface_bytes(ns_c, ifs, "rx_bytes"))
    check(min(down) >= MIN_SHARE, f"download: uplink shares {down}: one uplink carried less than {MIN_SHARE:.0%}")
    srv = counters(lab, ns_s, "server")
    check(srv.get("tx_striped", 0) > 0, f"the server striped nothing: {srv}")
    checks.append(f"32 MiB downloaded intact, striped by the server: uplink shares {down[0]:.0%}/{down[1]:.0%}")

    # (3) uplink B goes down mid-upload: the flow finishes over A, intact, no reset
    def cut():
        run(["ip", "-n", ns_c, "link", "set", ifs[1], "down"])
    got = transfer(lab, "cut", ns_c, ns_s, SERVER_TUN_IP, 5503, 48 << 20, during=cut)
    client.wait_for(rf"uplink 1 \({ifs[1]}\): \S+ -> down", timeout=5)
    checks.append(f"uplink B down 1.5 s into a 48 MiB upload: completed intact in {got['seconds']:.1f} s, no reset")

    # (4) B back; then A silently blackholed mid-upload (probes must find out)
    offset = client.stderr_size()
    run(["ip", "-n", ns_c, "link", "set", ifs[1], "up"])
    client.wait_for(rf"uplink 1 \({ifs[1]}\): \S+ -> healthy", timeout=15, after=offset)
    time.sleep(1.0)

    def blackhole():
        for cmd in (["add", "table", "inet", "tgt"],
                    ["add", "chain", "inet", "tgt", "out", "{ type filter hook output priority 0 ; }"],
                    ["add", "rule", "inet", "tgt", "out", "oifname", ifs[0], "udp", "dport", "7443", "drop"]):
            run(tglib.ns_cmd(ns_c, ["nft", *cmd]))
    got = transfer(lab, "blackhole", ns_c, ns_s, SERVER_TUN_IP, 5504, 48 << 20, during=blackhole)
    offset = client.stderr_size()
    run(tglib.ns_cmd(ns_c, ["nft", "delete", "table", "inet", "tgt"]))
    check(got["max_gap"] < 2.0, f"blackhole: the receiver paused {got['max_gap'] * 1000:.0f} ms")
    checks.append(f"uplink A blackholed 1.5 s into a 48 MiB upload: completed intact in {got['seconds']:.1f} s; "
                  f"longest receive pause {got['max_gap'] * 1000:.0f} ms (target 300 ms)")

    # (5) A back; B loses 5 % of its packets at random: the client sees it in the
    # server's Pongs
    client.wait_for(rf"uplink 0 \({ifs[0]}\): \S+ -> healthy", timeout=15, after=offset)
    time.sleep(1.0)
    seen = {}

    def watch():
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and "loss" not in seen:
            r = run(tglib.ns_cmd(ns_c, [lab.binary, "status", "--json", "--socket", control_socket(lab, "client")]))
            for u in json.loads(r.stdout).get("uplinks", []):
                if u["id"] == 1:
                    seen["max"] = max(seen.get("max", 0.0), u.get("packet_loss", 0.0))
                    if u.get("lossy"):
                        seen["loss"] = u["packet_loss"]
            time.sleep(0.1)
    watcher = threading.Thread(target=watch)
    cli_before, srv_before = counters(lab, ns_c, "client"), counters(lab, ns_s, "server")

    def lossy():
        for cmd in (["add", "table", "inet", "tgl"],
                    ["add", "chain", "inet", "tgl", "out", "{ type filter hook output priority 0 ; }"],
                    ["add", "rule", "inet", "tgl", "out", "oifname", ifs[1], "udp", "dport", "7443",
                     "numgen", "random", "mod", "100", "<", "5", "drop"]):
            run(tglib.ns_cmd(ns_c, ["nft", *cmd]))
        watcher.start()
    got = transfer(lab, "lossy", ns_c, ns_s, SERVER_TUN_IP, 5505, 64 << 20, during=lossy)
    if watcher.ident is not None:  # started (the transfer outlasted 1.5 s)
        watcher.join(timeout=20)
    run(tglib.ns_cmd(ns_c, ["nft", "delete", "table", "inet", "tgl"]))
    check("loss" in seen, f"uplink B dropping 5 % of its packets was never marked lossy (its packet loss "
                          f"measured at most {seen.get('max', 0) * 100:.1f} %)")
    cli = counters(lab, ns_c, "client")  # first: what the server asked later only adds
    srv = counters(lab, ns_s, "server")
    delta = lambda now, before, k: now.get(k, 0) - before.get(k, 0)  # noqa: E731
    asked, repaired = delta(srv, srv_before, "rx_reorder_repair_asked"), delta(srv, srv_before, "rx_reorder_repaired")
    requests, resent = delta(cli, cli_before, "rx_repair_requests"), delta(cli, cli_before, "tx_repairs")
    check(asked > 0 and requests > 0 and resent > 0,
          f"lossy: no loss repair (server asked {asked}, client got {requests} requests, sent {resent} again)")
    check(delta(srv, srv_before, "tx_repair_requests") >= requests,
          "lossy: the client got more repair requests than the server sent")
    checks.append(f"uplink B dropping 5 % at random 1.5 s into a 64 MiB upload: marked lossy (measured "
                  f"{seen['loss'] * 100:.1f} %), completed intact in {got['seconds']:.1f} s; the server asked "
                  f"for {asked} lost gaps, the client sent {resent} packets again, {repaired} arrived in time")


if __name__ == "__main__":
    tglib.main("striping", body, "one TCP flow striped over two uplinks, both ways, and an uplink lost mid-flow")
