#!/usr/bin/python3
"""--daemon and --pid-file: `triglav server --daemon` returns once it serves and prints
the AuthKey; the pid file names the running server; a client connects through it; a
second start with the same pid file is refused; SIGTERM to the pid ends it and removes
the pid file and tg0; a start-up error of a daemon (busy port) is reported by the
command that started it.

usage: test_daemon.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    lab.veth(ns_s, ns_c, subnet=93)
    pid_file = os.path.join(lab.tmp, "server.pid")
    argv = [lab.binary, "server", "--generate-key", "--daemon", "--pid-file", pid_file, "--control-socket", "none"]
    t0 = time.monotonic()
    r = run(tglib.ns_cmd(ns_s, argv), check=False, timeout=20)
    took = time.monotonic() - t0
    m = re.match(r"^(tg1_\S+)\n$", r.stdout)
    check(r.returncode == 0 and m, f"server --daemon: exit {r.returncode}, stdout {r.stdout!r}, stderr {r.stderr!r}")
    authkey = m.group(1)
    pid = int(open(pid_file).read())
    try:
        cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
        check(cmdline[0].endswith(b"triglav") and b"server" in cmdline, f"pid {pid} is {cmdline}")
        check(lab.tg_links(ns_s) == ["tg0"], f"no tg0 in the server namespace: {lab.links(ns_s)}")
        checks.append(f"server --daemon returned in {took:.2f} s with the AuthKey; pid file {pid} is the server")

        client, _ = lab.start_client(ns_c, authkey)
        _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5)
        check(rx == 5, f"ping through the daemon: {rx}/5\n{out}")
        checks.append("a client connected to the daemon and pinged 5/5")

        again = run(tglib.ns_cmd(ns_s, argv[:-2] + ["--control-socket", "none", "--tun-name", "tgsecond",
                                                    "--listen", "0.0.0.0:7450"]), check=False, timeout=20)
        check(again.returncode == 1 and f"already running (pid {pid})" in again.stderr,
              f"second daemon with the same pid file: {again.returncode} {again.stderr!r}")
        busy = run(tglib.ns_cmd(ns_s, [lab.binary, "server", "--generate-key", "--daemon", "--tun-name", "tgbusy",
                                       "--control-socket", "none"]), check=False, timeout=20)
        check(busy.returncode == 1 and "Address already in use" in busy.stderr and "tgbusy" not in lab.links(ns_s),
              f"daemon on a busy port: {busy.returncode} {busy.stderr!r}")
        checks.append("a second daemon with the same pid file, and one on a busy port: exit 1 with the reason")
        client.stop(signal.SIGTERM)
    finally:
        os.kill(pid, signal.SIGTERM)
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.05)
    check(not os.path.exists(f"/proc/{pid}"), "the daemon did not exit on SIGTERM")
    check(not os.path.exists(pid_file), "the pid file is left after exit")
    lab.wait_gone(ns_s, "daemon")
    checks.append("SIGTERM to the pid: the daemon exited, its pid file and tg0 are gone")


if __name__ == "__main__":
    tglib.main("daemon", body, "--daemon and --pid-file")
