#!/usr/bin/python3
"""A short subset of the scenario suite through tools/scenario (the real triglav, one
link-emulator namespace per link): a fibre cut and a total outage that recovers. The
TCP transfer must survive both without a reset; the stalls are bounded generously and
printed.

usage: test_scenarios.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

CASES = [  # scenario, seconds, longest TCP stall allowed
    ("fibre-cut", 26, 4.0),  # the cut is at 20 s
    # Every link is down for 8 s: TCP's own retransmission backoff (doubling from 200 ms)
    # then waits up to ~13 s before it tries again, whatever the tunnel does.
    ("all-fail-recover", 32, 25.0),
]


def main():
    if os.geteuid() != 0:
        print("SKIP: scenarios: needs root")
        return 77
    build = os.path.dirname(os.path.abspath(sys.argv[1])) if len(sys.argv) > 1 else os.path.join(ROOT, "build")
    print("scenarios: fibre cut and total outage through the link emulator")
    ok = True
    for name, seconds, max_stall in CASES:
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            p = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "scenario"), "run", name, "--duration",
                                str(seconds), "--json", out.name, "--build", build],
                               capture_output=True, text=True, timeout=seconds + 120)
            if p.returncode != 0:
                print(f"FAIL: {name}: runner exited {p.returncode}\n{p.stdout}\n{p.stderr[-1500:]}")
                return 1
            r = json.load(open(out.name))[0]
        line = (f"{name}: goodput {r['goodput_mbit']:.1f} Mbit/s, ping p50 {r['ping']['p50_ms']:.1f} ms "
                f"loss {r['ping']['loss_pct']:.1f} %, longest stall {r['longest_stall_s']:.1f} s, "
                f"reset {'yes' if r['reset'] else 'no'}; health changes {len(r['health'])}")
        # The tunnel itself is back as soon as the links are: the 20 ms ping loses little
        # more than the outage.
        good = (not r["reset"] and r["longest_stall_s"] <= max_stall and r["goodput_mbit"] > 1
                and r["ping"]["loss_pct"] < 40)
        print(("  ok  " if good else "  --  ") + line)
        ok &= good
    print("PASS: scenarios" if ok else "FAIL: scenarios")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
