#!/usr/bin/python3
"""The shipped systemd units pass `systemd-analyze verify` (with ExecStart pointed at the
built binary) and start the commands the docs describe. Their ExecStartPre, `triglav
check`, passes a complete config file and stops (exit 1, naming the line) on a broken
one. Skipped (77) without systemd-analyze.

usage: test_systemd.py /path/to/triglav; exit 0/1/77
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
UNITS = os.path.join(HERE, "..", "..", "tools", "systemd")


def check_pre(binary, d, name, text):
    """Runs the unit's ExecStartPre on a good and on a broken config file."""
    m = re.search(r"^ExecStartPre=/usr/local/bin/triglav (check --config (\S+) .*)$", text, re.M)
    if m is None:
        return [f"{name}: no ExecStartPre running triglav check --config"]
    server = "server" in name
    key = os.path.join(d, "server.key")
    if not os.path.exists(key):
        subprocess.run([binary, "keygen", "--output", key, "--address", "192.0.2.1:7443"], check=True,
                       capture_output=True, timeout=30)
    authkey = subprocess.run([binary, "server", "--print-key", "--key", key], capture_output=True, text=True,
                             timeout=30).stdout.strip()
    cfg = subprocess.run([binary, "config", "--server" if server else "--client"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    if server:
        good = re.sub(r'^key_file = .*$', f'key_file = "{key}"', cfg, flags=re.M)
    else:
        good = re.sub(r'^auth_key = .*$', f'auth_key = "{authkey}"', cfg, flags=re.M)
    bad = re.sub(r'^mtu = .*$', 'mtu = 100', good, flags=re.M)
    bad_line = bad.splitlines().index("mtu = 100") + 1
    out = []
    for label, content, want in (("good", good, 0), ("broken", bad, 1)):
        path = os.path.join(d, f"{label}-{'server' if server else 'client'}.toml")
        with open(path, "w") as f:
            f.write(content)
        argv = [binary] + shlex.split(m.group(1).replace(m.group(2), path))
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != want or (want == 1 and f"line {bad_line}: [tun] mtu" not in r.stderr):
            out.append(f"{name}: ExecStartPre on a {label} file: exit {r.returncode}\n{r.stdout}{r.stderr}")
        else:
            print(f"  ok  {name}: ExecStartPre (triglav check) exits {want} on a {label} file")
    return out


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
            failures += check_pre(binary, d, name, text)
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
