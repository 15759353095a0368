#!/usr/bin/python3
"""The shipped systemd units pass `systemd-analyze verify` (with ExecStart pointed at the
built binary) and start the commands the docs describe. Skipped (77) without
systemd-analyze.

usage: test_systemd.py /path/to/triglav; exit 0/1/77
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = os.path.join(HERE, "..", "..", "tools", "systemd")


def main():
    binary = os.path.abspath(sys.argv[1]) if len(sys.argv) > 1 else None
    tool = shutil.which("systemd-analyze")
    if tool is None or binary is None:
        print("SKIP: systemd: systemd-analyze not installed" if tool is None else "usage: test_systemd.py TRIGLAV")
        return 77
    failures = []
    with tempfile.TemporaryDirectory() as d:
        for name, instance in (("triglav-server.service", "triglav-server.service"),
                               ("triglav-client@.service", "triglav-client@office.service")):
            text = open(os.path.join(UNITS, name)).read()
            if "ExecStart=/usr/local/bin/triglav " not in text or "ExecReload=/bin/kill -HUP $MAINPID" not in text:
                failures.append(f"{name}: ExecStart/ExecReload not as documented")
            path = os.path.join(d, instance)
            with open(path, "w") as f:
                f.write(text.replace("/usr/local/bin/triglav", binary))
            r = subprocess.run([tool, "verify", path], capture_output=True, text=True, timeout=60)
            out = (r.stdout + r.stderr).strip()
            if r.returncode != 0 or out:
                failures.append(f"{name}: systemd-analyze verify: exit {r.returncode}\n{out}")
            else:
                print(f"  ok  {name}: systemd-analyze verify is clean")
    if failures:
        print("FAIL: systemd:\n" + "\n".join(failures))
        return 1
    print("PASS: systemd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
