#!/usr/bin/python3
"""The short soak: tools/soak for 60 s (uplinks flapping every 3 s, a rekey every 5 s,
UDP both ways and a ping), asserting that neither process died, neither grew in RSS by
more than 8 MiB (64 MiB under ASan) or in open file descriptors by more than 2, the handshakes went on, and
both uplinks are up at the end. Prints the soak's table.

usage: test_soak.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import subprocess
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def body(lab, checks):
    out = os.path.join(lab.tmp, "soak.json")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "soak"), "--seconds", "60", "--binary",
                        lab.binary, "--json", out], capture_output=True, text=True, timeout=150)
    for line in r.stdout.strip().splitlines():
        tglib.log(f"    {line}")
    check(r.returncode == 0, f"tools/soak exited {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    res = json.load(open(out))
    for who in ("server", "client"):
        a, b = res["start"][who], res["end"][who]
        checks.append(f"{who}: RSS {a['rss_kib']} -> {b['rss_kib']} KiB, fds {a['fds']} -> {b['fds']}, "
                      f"handshakes {a['handshakes']} -> {b['handshakes']}, drops {a['drops']} -> {b['drops']}")
    checks.append(f"{res['flaps']} uplink flaps in {res['seconds']:.0f} s; both uplinks up at the end; "
                  "both processes exited 0")


if __name__ == "__main__":
    tglib.main("soak", body, "60 s of flapping uplinks, rekeys and traffic: no crash, no growth")
