#!/usr/bin/python3
"""Status and metrics while traffic flows: a client bonding two uplinks and its server,
each with a control socket and a metrics listener. `triglav status` (table, --json,
--watch), `triglav uplink list|show` and GET /metrics (curl) must show the uplinks,
their health and the traffic; the socket is root-only and goes away on exit; a stale
socket is replaced; a busy metrics port is a one-line error.

usage: test_status.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import re
import shutil
import signal
import socket
import stat
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

REQUIRED = ["triglav_uplink_health", "triglav_uplink_rtt_seconds", "triglav_uplink_loss_ratio",
            "triglav_bytes_sent_total", "triglav_bytes_received_total", "triglav_packets_sent_total",
            "triglav_packets_retransmitted_total", "triglav_tun_packets_read_total",
            "triglav_tun_packets_written_total", "triglav_connection_state", "triglav_active_uplinks",
            "triglav_drops_total", "triglav_handshakes_total", "triglav_nat_active_entries"]
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*",?)*\})? '
                    r'(-?[0-9.eE+-]+|NaN|\+Inf|-Inf)$')


def exposition(text):
    """Checks the text format line by line (HELP and TYPE before a family's samples);
    returns {name: [(labels, value)]}."""
    typed, out = set(), {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            check(len(parts) == 4, f"bad comment line {line!r}")
            if parts[1] == "TYPE":
                check(parts[3] in ("counter", "gauge"), f"bad type {line!r}")
                typed.add(parts[2])
            continue
        m = SAMPLE.match(line)
        check(m is not None, f"not a sample line: {line!r}")
        check(m.group(1) in typed, f"{m.group(1)} has no TYPE before its samples")
        out.setdefault(m.group(1), []).append((m.group(2) or "", float(m.group(5))))
    return out


def curl(ns, url):
    r = run(tglib.ns_cmd(ns, ["curl", "-sS", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}", url]),
            check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def tg(lab, *args, check_rc=True):
    r = run([lab.binary, *args], check=False, timeout=15)
    if check_rc:
        check(r.returncode == 0, f"triglav {' '.join(args)}: exit {r.returncode}\n{r.stderr}")
    return r


def body(lab, checks):
    sock_s = os.path.join(lab.tmp, "server.sock")
    sock_c = os.path.join(lab.tmp, "client.sock")
    ns_s, ns_c, ifs, server, client = lab.bonded(
        1, ["--control-socket", sock_s, "--metrics-listen", "127.0.0.1:9090"],
        ["--control-socket", sock_c, "--metrics-listen", "127.0.0.1:9091"])
    client.wait_for(r"uplink 1 \(\S+\): \S+ -> healthy", timeout=5)
    client.wait_for(r"uplink 0 \(\S+\): \S+ -> healthy", timeout=5)
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=30, interval=0.02)
    check(rx == 30, f"ping {rx}/30\n{out}")
    mode = stat.S_IMODE(os.stat(sock_c).st_mode)
    check(stat.S_ISSOCK(os.stat(sock_c).st_mode) and mode == 0o600, f"control socket mode {oct(mode)}")

    j = json.loads(tg(lab, "status", "--socket", sock_c, "--json").stdout)
    check(j["role"] == "client" and j["state"] == "connected", f"client status: {j['role']} {j['state']}")
    check(j["aead"] in ("libsodium", "openssl"), f"status names no AEAD implementation: {j.get('aead')!r}")
    # One worker per CPU unless told otherwise.
    check(j.get("workers") == min(15, len(os.sched_getaffinity(0))),
          f"status says {j.get('workers')!r} workers, not one per CPU ({len(os.sched_getaffinity(0))})")
    names = [u["name"] for u in j["uplinks"]]
    check(names == list(ifs), f"uplinks {names}, expected {list(ifs)}")
    for u in j["uplinks"]:
        check(u["state"] == "healthy" and u["connected"] and u["srtt_ms"] > 0, f"uplink {u}")
    sent = sum(u["tx_bytes"] for u in j["uplinks"])
    check(sent > 0 and j["counters"]["tx_packets"] >= 30 and j["counters"]["rx_packets"] >= 30,
          f"traffic: uplink bytes {sent}, counters {j['counters']}")
    rtts = ", ".join(f"{u['srtt_ms']:.2f}" for u in j["uplinks"])
    checks.append(f"status --json: connected, uplinks {names} healthy (srtt {rtts} ms), {sent} bytes sent, "
                  "socket mode 0600")

    table = tg(lab, "status", "--socket", sock_c).stdout
    for name in ifs:
        check(re.search(rf"^\d+\s+{name}\s+healthy\s", table, re.M), f"status table lacks {name}:\n{table}")
    watch = tg(lab, "status", "--socket", sock_c, "--watch", "--count", "2", "--interval", "0.2").stdout
    check(watch.count("\x1b[H\x1b[2J") == 2 and watch.count("strategy adaptive") == 2, f"watch output:\n{watch!r}")
    listed = tg(lab, "uplink", "list", "--socket", sock_c).stdout
    check(all(n in listed for n in ifs), f"uplink list:\n{listed}")
    shown = tg(lab, "uplink", "show", ifs[1], "--socket", sock_c).stdout
    check(re.search(r"^state\s+healthy$", shown, re.M) and ifs[1] in shown, f"uplink show:\n{shown}")
    r = tg(lab, "uplink", "show", "nosuch0", "--socket", sock_c, check_rc=False)
    check(r.returncode == 1 and "no uplink 'nosuch0'" in r.stderr, f"uplink show nosuch0: {r.returncode} {r.stderr}")
    checks.append("status table, --watch (2 redraws), uplink list and uplink show agree; an unknown uplink is an error")

    js = json.loads(tg(lab, "status", "--socket", sock_s, "--json").stdout)
    check(js["role"] == "server" and len(js["clients"]) == 1 and js["clients"][0]["address"] == "10.0.85.2"
          and len(js["clients"][0]["uplinks"]) == 2, f"server status: {js['clients']}")
    checks.append("server status: one client (10.0.85.2) with both uplinks")

    # A request and the end of the stream at once (the writer half-closes before the
    # server reads): answered all the same, with or without the closing newline.
    for req in (b'{"cmd":"status"}\n', b'{"cmd":"status"}'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as u:  # a path: no namespace
            u.settimeout(5)
            u.connect(sock_s)
            u.sendall(req)
            u.shutdown(socket.SHUT_WR)
            got = b""
            for _ in range(1000):  # bounded: the answer is a few KiB
                chunk = u.recv(65536)
                if not chunk:
                    break
                got += chunk
        check(json.loads(got).get("role") == "server", f"half-closed request {req!r}: answer {got[:200]!r}")
    checks.append("a request written and half-closed at once is answered, with or without its newline")

    for ns, port, role in ((ns_c, 9091, "client"), (ns_s, 9090, "server")):
        code, text = curl(ns, f"http://127.0.0.1:{port}/metrics")
        check(code == 200, f"{role} /metrics: HTTP {code}\n{text[:300]}")
        m = exposition(text)
        missing = [k for k in REQUIRED if k not in m]
        check(not missing, f"{role} metrics lack {missing}")
        health = {lbl: v for lbl, v in m["triglav_uplink_health"]}
        check(len(health) == 2 and all(v == 1 for v in health.values()), f"{role} uplink health {health}")
        check(m["triglav_connection_state"][0][1] == 1 and m["triglav_active_uplinks"][0][1] == 2,
              f"{role} connection/active: {m['triglav_connection_state']} {m['triglav_active_uplinks']}")
        check(m["triglav_packets_sent_total"][0][1] >= 30, f"{role} packets sent {m['triglav_packets_sent_total']}")
        check(any('reason="auth"' in lbl for lbl, _ in m["triglav_drops_total"]), "no drops_total{reason=auth}")
        if role == "client":
            check(all(f'uplink="{n}"' in " ".join(lbl for lbl, _ in m["triglav_uplink_rtt_seconds"]) for n in ifs),
                  f"rtt labels {m['triglav_uplink_rtt_seconds']}")
        # The README's per-uplink traffic counters, beside the total without labels.
        for fam in ("triglav_bytes_sent_total", "triglav_packets_sent_total", "triglav_bytes_received_total",
                    "triglav_packets_retransmitted_total"):
            total = [v for lbl, v in m[fam] if lbl == ""]
            per = [v for lbl, v in m[fam] if 'id="' in lbl]
            check(len(total) == 1 and len(per) == 2, f"{role} {fam}: {m[fam]}")
            if fam == "triglav_packets_sent_total":
                check(0.9 * total[0] <= sum(per) <= total[0],
                      f"{role} {fam}: the uplinks' samples {per} against the total {total[0]}")
    # Every metric the shipped Grafana dashboard queries exists.
    seen = set()
    for ns, port in ((ns_c, 9091), (ns_s, 9090)):
        seen |= set(exposition(curl(ns, f"http://127.0.0.1:{port}/metrics")[1]))
    dash = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                                       "grafana-dashboard.json")))
    used = {n for p in dash["panels"] for t in p["targets"] for n in re.findall(r"triglav_[a-z_]+", t["expr"])}
    check(used and used <= seen, f"the dashboard queries metrics that do not exist: {sorted(used - seen)}")
    promtool = shutil.which("promtool")
    if promtool:
        code, text = curl(ns_c, "http://127.0.0.1:9091/metrics")
        r = run([promtool, "check", "metrics"], check=False, input_bytes=text.encode())
        check(r.returncode == 0, f"promtool check metrics:\n{r.stdout}{r.stderr}")
    code, _ = curl(ns_c, "http://127.0.0.1:9091/other")
    check(code == 404, f"/other: HTTP {code}")
    checks.append("GET /metrics (curl) on both: every required family, valid text format, health 1 for both "
                  "uplinks, 2 active; /other is 404; the Grafana dashboard's metrics exist" + ("; promtool agrees" if promtool else
                                                         " (promtool not installed: format checked by the test)"))

    # A busy metrics port is a clear error, and the second server cleans up its TUN.
    other = lab.start("server-busy", [lab.binary, "server", "--generate-key", "--listen", "0.0.0.0:7450",
                                      "--tun-name", "tgbusy", "--ipv4", "10.0.86.1/24", "--control-socket", "none",
                                      "--metrics-listen", "127.0.0.1:9090"], ns_s)
    rc = other.wait_exit(timeout=10)
    check(rc == 1 and "metrics listen 127.0.0.1:9090: Address already in use" in other.stderr()
          and "tgbusy" not in lab.links(ns_s), f"busy metrics port: rc {rc}\n{other.describe()}")
    checks.append("a busy metrics port: exit 1, 'metrics listen 127.0.0.1:9090: Address already in use', no TUN left")

    # The socket goes on a clean exit; a killed process's stale socket is replaced.
    authkey = re.search(r"^(tg1_\S+)$", server.stdout(), re.M).group(1)
    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
    check(not os.path.exists(sock_c), "client socket left after a clean exit")
    client2 = lab.start("client-2", [lab.binary, "tun", authkey, "-i", ifs[0],
                                     "--control-socket", sock_c], ns_c)
    client2.wait_for(r"handshake complete", timeout=10)
    client2.stop(signal.SIGKILL)
    lab.wait_gone(ns_c, "client killed")
    check(os.path.exists(sock_c), "a SIGKILLed client cannot remove its socket")
    client3 = lab.start("client-3", [lab.binary, "tun", authkey, "-i", ifs[0],
                                     "--control-socket", sock_c], ns_c)
    client3.wait_for(r"handshake complete", timeout=10)
    j = json.loads(tg(lab, "status", "--socket", sock_c, "--json").stdout)
    check(j["state"] == "connected", f"status after replacing a stale socket: {j['state']}")
    for p in (client3, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    checks.append("the socket is removed on exit; a killed client's stale socket is replaced by the next one")


if __name__ == "__main__":
    tglib.main("status", body, "status, uplink list/show and Prometheus metrics while traffic flows")
