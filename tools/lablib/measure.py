"""Traffic and what it measured: ping, iperf3, interface and CPU counters, triglav's
counter lines."""
import json
import re
import subprocess
import time

from .core import LabError, ns_cmd, run


def parse_ping(output):
    """(transmitted, received, (min, avg, max) or None) from iputils ping output."""
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", output)
    if not m:
        raise LabError(f"cannot parse ping output:\n{output}")
    rtt = None
    r = re.search(r"= ([\d.]+)/([\d.]+)/([\d.]+)/([\d.]+) ms", output)
    if r:
        rtt = (float(r.group(1)), float(r.group(2)), float(r.group(3)))
    return int(m.group(1)), int(m.group(2)), rtt


def ping(ns, dst, count=20, interval=0.05, wait=2, timeout=None):
    """Pings dst from ns. Returns (transmitted, received, rtt or None, output)."""
    argv = ns_cmd(ns, ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(wait), dst])
    res = run(argv, timeout=timeout if timeout is not None else count * interval + wait + 10, check=False)
    text = res.stdout + res.stderr
    if res.returncode != 0 and "packets transmitted" not in text:
        return 0, 0, None, text.strip()  # e.g. "connect: Network is unreachable"
    tx, rx, rtt = parse_ping(text)
    return tx, rx, rtt, text


def iperf3(ns, dst, port=5201, seconds=5, streams=1, reverse=False, extra=(), busy_retries=4):
    """An iperf3 client run from ns to dst (TCP unless extra says otherwise). Returns
    mbit_s (received), bytes, retransmits and the whole report (json). iperf3's server
    takes one test at a time and may still be closing the last one: a "busy" answer is
    tried again after a second, up to busy_retries times."""
    argv = ns_cmd(ns, ["iperf3", "-c", dst, "-p", str(port), "-t", str(seconds), "-P", str(streams), "--json",
                       *(["-R"] if reverse else []), *extra])
    for attempt in range(busy_retries + 1):
        p = run(argv, timeout=seconds * 4 + 30, check=False)
        try:
            j = json.loads(p.stdout)
        except json.JSONDecodeError:
            raise LabError(f"iperf3 to {dst}: no report (exit {p.returncode}): {p.stderr.strip()[:400]}")
        if "error" in j and "busy" in j["error"] and attempt < busy_retries:
            time.sleep(1)
            continue
        if "error" in j:
            raise LabError(f"iperf3 to {dst}: {j['error']}")
        break
    end = j["end"]
    received = end.get("sum_received") or end.get("sum", {})
    return {"mbit_s": received.get("bits_per_second", 0) / 1e6, "bytes": received.get("bytes", 0),
            "retransmits": end.get("sum_sent", {}).get("retransmits"), "json": j}


def cpu_jiffies():
    """(busy, total) jiffies over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def iface_counters(ns, ifs, what):
    """An interface statistics counter (tx_bytes, rx_bytes, ...) of each of ifs in ns.
    Count bytes to compare uplinks: veth counts a GSO send as one packet."""
    return [int(run(ns_cmd(ns, ["cat", f"/sys/class/net/{i}/statistics/{what}"])).stdout) for i in ifs]


def counter_names(binary):
    """Every counter the binary reports, as `triglav counters --list` names them (the
    binary's own table, dataplane/counters.h: no copy to drift)."""
    out = subprocess.run([binary, "counters", "--list"], capture_output=True, text=True, timeout=10)
    names = [line.split("\t", 1)[0] for line in out.stdout.splitlines() if line.strip()]
    if out.returncode != 0 or not names:
        raise LabError(f"`{binary} counters --list` failed ({out.returncode}): {out.stderr.strip()[:300]}")
    return names


def parse_counters_line(line, names=None):
    """The `counters: k=v ...` part of a log line as a dict (None without one); with
    names, every one of them must be there (LabError otherwise)."""
    m = re.search(r"counters: (.*)$", line)
    if not m:
        return None
    out = {}
    for item in m.group(1).split():
        k, _, v = item.partition("=")
        if v.isdigit():
            out[k] = int(v)
    missing = [k for k in names or () if k not in out]
    if missing:
        raise LabError(f"counters line lacks {missing}: {line!r}")
    return out
