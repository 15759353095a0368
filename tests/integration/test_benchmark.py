#!/usr/bin/python3
"""triglav benchmark: the encrypted multipath transport measured without a TUN.

- A server without --allow-benchmark refuses: the benchmark exits 1 naming the flag.
- Upload over one uplink, run as `nobody` with no capabilities (setpriv): the JSON
  report has one record per interval, the server reports what it received, and nothing
  of it reached the server's TUN.
- --reverse over two uplinks (-i, as root: binding needs CAP_NET_RAW): both uplinks are
  in every record, with their RTT; what the server sent arrived.
- --bidir: both directions carry traffic; the text report ends with both totals.
- The server drops the benchmark's session once the client closes it.
The rates printed are this machine's and are not asserted.

usage: test_benchmark.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import shutil
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

DURATION = 2


def tun_rx_packets(ns, dev="tg0"):
    out = run(tglib.ns_cmd(ns, ["cat", f"/sys/class/net/{dev}/statistics/rx_packets"])).stdout
    return int(out.strip())


def bench(lab, ns, authkey, *args, as_nobody=False, label="bench", while_running=None):
    argv = [lab.binary, "benchmark", authkey, "-t", str(DURATION), *args]
    if as_nobody:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                "--bounding-set=-all", *argv]
    p = lab.start(label, argv, ns)
    if while_running:
        while_running()
    rc = p.wait_exit(timeout=DURATION + 25)
    return rc, p


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    _, if_a, _, _ = lab.veth(ns_s, ns_c, subnet=81)
    _, if_b, _, _ = lab.veth(ns_s, ns_c, subnet=82)

    # 1. Not enabled: refused with the reason.
    plain, key0 = lab.start_server(ns_s, label="server-plain")
    rc, p = bench(lab, ns_c, key0, "-i", if_a, "--handshake-timeout", "2", label="bench-refused")
    check(rc == 1 and "does not accept benchmark sessions (start it with --allow-benchmark)" in p.stderr(),
          f"refusal: exit {rc}\n{p.describe()}")
    plain.wait_for(r"rejected: a benchmark session \(not enabled here\)", timeout=5)
    plain.stop()
    checks.append("a server without --allow-benchmark refuses; the benchmark exits 1 naming the flag")

    server, authkey = lab.start_server(ns_s, "--allow-benchmark")
    tun_before = tun_rx_packets(ns_s)

    # 2. Upload, one uplink, no root.
    if shutil.which("setpriv") is None:
        raise tglib.TestFailure("setpriv (util-linux) is missing")
    rc, p = bench(lab, ns_c, authkey, "--streams", "4", "--json", as_nobody=True, label="bench-up")
    check(rc == 0, f"upload benchmark as nobody: exit {rc}\n{p.describe()}")
    j = json.loads(p.stdout())
    check(j["direction"] == "upload" and j["streams"] == 4, f"report header: {j}")
    check(len(j["intervals"]) == DURATION, f"{len(j['intervals'])} interval records for {DURATION} s")
    for rec in j["intervals"]:
        check(rec["upload"]["sent_bps"] > 0 and rec["cpu_percent"] > 0 and len(rec["uplinks"]) == 1,
              f"interval record: {rec}")
    t = j["total"]["upload"]
    check(0 < t["delivered_bytes"] <= t["sent_bytes"] and 0 <= t["loss"] < 1,
          f"the server's received count: {t}")
    server.wait_for(r"closed its session", timeout=5)
    tun_after = tun_rx_packets(ns_s)
    check(tun_after - tun_before < 10, f"benchmark packets reached the server's TUN: {tun_after - tun_before}")
    checks.append(f"upload, 4 streams, as nobody without capabilities: {t['sent_bps'] / 1e9:.2f} Gbit/s sent, "
                  f"{t['delivered_bps'] / 1e9:.2f} delivered ({t['loss'] * 100:.1f} % lost), "
                  f"{len(j['intervals'])} interval records; the server's TUN got {tun_after - tun_before} packets")

    # 3. Download over two uplinks.
    rc, p = bench(lab, ns_c, authkey, "--reverse", "--streams", "8", "-i", if_a, "-i", if_b, "--json",
                  label="bench-down")
    check(rc == 0, f"reverse benchmark: exit {rc}\n{p.describe()}")
    j = json.loads(p.stdout())
    check(j["direction"] == "download", f"direction {j['direction']}")
    for rec in j["intervals"]:
        names = sorted(u["name"] for u in rec["uplinks"])
        check(names == sorted([if_a, if_b]) and all(u["rtt_ms"] > 0 for u in rec["uplinks"]),
              f"uplinks of an interval: {rec['uplinks']}")
    d = j["total"]["download"]
    per = {u["name"]: u["received_bps"] for u in j["total"]["uplinks"]}
    check(d["received_bytes"] > 0, f"nothing received: {j['total']}")
    checks.append(f"--reverse, 8 streams over two uplinks: {d['received_bps'] / 1e9:.2f} Gbit/s received "
                  f"({', '.join(f'{n} {v / 1e9:.2f}' for n, v in sorted(per.items()))})")

    # 4. Both ways, the text report; the server's status shows the session for what it is.
    seen = {}
    at = server.stderr_size()

    def server_status():
        server.wait_for(r"session up: .*, benchmark session", timeout=10, after=at)
        r = run(tglib.ns_cmd(ns_s, [lab.binary, "status", "--json", "--socket", "/run/triglav/server-tg0.sock"]),
                check=False)
        seen["clients"] = json.loads(r.stdout)["clients"] if r.returncode == 0 else r.stderr

    rc, p = bench(lab, ns_c, authkey, "--bidir", "--streams", "2", "-i", if_a, label="bench-bidir",
                  while_running=server_status)
    check(isinstance(seen["clients"], list) and len(seen["clients"]) == 1 and seen["clients"][0]["benchmark"],
          f"server status during the benchmark: {seen['clients']}")
    check(rc == 0, f"bidir benchmark: exit {rc}\n{p.describe()}")
    out = p.stdout()
    lines = [ln for ln in out.splitlines() if " s  up " in ln]
    check(len(lines) == DURATION + 1 and all(" down " in ln for ln in lines), f"report:\n{out}")
    up = [ln for ln in out.splitlines() if ln.startswith("  upload: ")]
    down = [ln for ln in out.splitlines() if ln.startswith("  download: ")]
    check(len(up) == 1 and len(down) == 1 and " 0 kbit/s received" not in down[0], f"totals:\n{out}")
    checks.append(f"--bidir: {DURATION} interval lines and a total with both directions ({up[0].strip()}; "
                  f"{down[0].strip()}); the server's status marks it a benchmark session")
    server.wait_for(r"closed its session on uplink 0", timeout=5)
    rc, _ = server.stop()
    check(rc == 0, f"server exited {rc}\n{server.describe()}")


if __name__ == "__main__":
    tglib.main("bench", body, "triglav benchmark: transport measured without a TUN, server opt-in")
