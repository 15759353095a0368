#!/usr/bin/python3
"""Throughput side by side: triglav (tools/lab.py) and wireguard-go
(../shared/lab/netns-wggo.sh), alternating in one sitting, single TCP stream over veth
between two namespaces. Prints every run, the medians and the ratio.

  sudo bench/compare_wggo.py [path/to/triglav] [--rounds N] [-t SECONDS]

Needs root, iperf3, wireguard-go and wireguard-tools (apt-get install wireguard-go
wireguard-tools). Exits 77 with a message when the anchor script or tools are absent.
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WGGO = os.path.join(ROOT, "..", "shared", "lab", "netns-wggo.sh")


def ours(binary, seconds):
    p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "lab.py"), binary, "--json",
                        "-t", str(seconds)], capture_output=True, text=True, timeout=30 * seconds + 120)
    if p.returncode != 0:
        raise RuntimeError(f"lab.py failed ({p.returncode}): {p.stderr.strip()[-400:]}")
    r = json.loads(p.stdout)
    return r["tcp"]["tunnel"]["client_to_server"]["mbit_s"], r["tcp"]["raw"]["client_to_server"]["mbit_s"]


def wireguard_go(seconds):
    env = dict(os.environ, T=str(seconds), ARGS="")
    p = subprocess.run(["bash", WGGO], capture_output=True, text=True, timeout=10 * seconds + 60, env=env)
    m = re.search(r"([\d.]+)\s+([KMG])bits/sec\s+receiver", p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError(f"netns-wggo.sh failed ({p.returncode}): {(p.stdout + p.stderr).strip()[-400:]}")
    scale = {"K": 1e-3, "M": 1.0, "G": 1e3}[m.group(2)]
    return float(m.group(1)) * scale


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", nargs="?", default=os.path.join(ROOT, "build", "triglav"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-t", "--time", type=int, default=5, help="seconds per iperf3 run")
    a = ap.parse_args()
    if os.geteuid() != 0:
        print("SKIP: compare_wggo.py needs root", file=sys.stderr)
        return 77
    if not os.path.exists(WGGO):
        print(f"SKIP: anchor script {WGGO} not found (../shared/lab absent)", file=sys.stderr)
        return 77
    for tool in ("wireguard-go", "wg", "iperf3"):
        if shutil.which(tool) is None:
            print(f"SKIP: {tool} is not installed (apt-get install wireguard-go wireguard-tools iperf3)",
                  file=sys.stderr)
            return 77
    binary = os.path.abspath(a.binary)
    tg, wg, raw = [], [], []
    print(f"{'round':>5}  {'triglav Mbit/s':>14}  {'wireguard-go Mbit/s':>19}  {'raw veth Mbit/s':>15}", flush=True)
    for i in range(1, a.rounds + 1):
        t, r = ours(binary, a.time)
        w = wireguard_go(a.time)
        tg.append(t)
        raw.append(r)
        wg.append(w)
        print(f"{i:>5}  {t:14.0f}  {w:19.0f}  {r:15.0f}", flush=True)
    mt, mw, mr = statistics.median(tg), statistics.median(wg), statistics.median(raw)
    print(f"median {mt:13.0f}  {mw:19.0f}  {mr:15.0f}")
    print(f"triglav / wireguard-go (Debian) = {mt / mw:.2f}x; triglav / raw veth = {mt / mr * 100:.1f} %")
    print(f"triglav / (5.5 x Debian wireguard-go, the stand-in for current wireguard-go with offloads) "
          f"= {mt / (5.5 * mw):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
