#!/usr/bin/python3
"""Stop and immediately start again, many times: once a server or client has exited
(SIGTERM, exit 0, reaped), its TUN device and UDP port must already be free, so that the
next start (a service manager's restart, a script's `kill; wait; start`) succeeds.

usage: test_restart.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import collections
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import TestFailure, check  # noqa: E402

CYCLES = 60


def linger_ms(lab, ns):
    t0 = time.monotonic()
    for i in range(300):
        if not lab.tg_links(ns):
            return 0.0 if i == 0 else (time.monotonic() - t0) * 1000
        time.sleep(0.005)
    return float("inf")


def cycle(lab, what, ns, start, problems):
    """start() -> (proc, ok); stops each instance with SIGTERM and starts the next at once."""
    ok = 0
    lingers = []
    for i in range(CYCLES):
        p, started = start(i)
        if not started:
            err = p.stderr().strip().splitlines()
            problems[f"{what}: {err[-1] if err else f'exit {p.returncode}, no message'}"] += 1
            lingers.append(linger_ms(lab, ns))  # how long the predecessor's device stayed
            continue
        ok += 1
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{what} {i}: exit {rc} after SIGTERM\n{p.describe()}")
        p.kill()  # closes our log files
    return ok, lingers


def body(lab, checks):
    ns_s = lab.netns("s")
    ns_c = lab.netns("c")
    _, _, ip_s, _ = lab.veth(ns_s, ns_c, subnet=10)
    problems = collections.Counter()

    def start_server(i):
        p, _ = lab.start_server(ns_s, label=f"server{i}", wait=False)
        try:
            p.wait_for(r" info server listening on ", timeout=10)
            key = p.stdout().strip()
            addrs = tglib.decode_authkey(key)[1]
            if addrs != [(ip_s, tglib.SERVER_PORT)]:
                problems[f"server restart: AuthKey advertises {addrs}, expected only "
                         f"[('{ip_s}', {tglib.SERVER_PORT})]"] += 1
            return p, True
        except TestFailure:
            if p.poll() is None:
                raise
            return p, False

    ok_s, lingers_s = cycle(lab, "server restart", ns_s, start_server, problems)
    if ok_s == CYCLES:
        checks.append(f"server: {CYCLES}/{CYCLES} immediate restarts succeeded")
    else:
        print(f"  --  server: {ok_s}/{CYCLES} immediate restarts succeeded", flush=True)

    server, authkey = lab.start_server(ns_s, label="server")

    def start_client(i):
        p, _ = lab.start_client(ns_c, authkey, "--handshake-timeout", "3", label=f"client{i}", wait=False)
        try:
            p.wait_for(r"info handshake complete", timeout=10)
            return p, True
        except TestFailure:
            if p.poll() is None:
                raise
            return p, False

    ok_c, lingers_c = cycle(lab, "client restart", ns_c, start_client, problems)
    if ok_c == CYCLES:
        checks.append(f"client: {CYCLES}/{CYCLES} immediate restarts succeeded")
    else:
        print(f"  --  client: {ok_c}/{CYCLES} immediate restarts succeeded", flush=True)
    rc, _ = server.stop(signal.SIGTERM)
    check(rc == 0, f"server exited {rc}")

    if problems:
        lingers = [x for x in lingers_s + lingers_c if 0 < x != float("inf")]
        detail = "; ".join(f"{n}x {msg}" for msg, n in problems.items())
        span = (f" (after {len(lingers)} of the failed starts the predecessor's tg0 was still there; it "
                f"vanished {min(lingers):.0f}-{max(lingers):.0f} ms later)" if lingers else "")
        raise TestFailure(f"a start right after the previous instance exited 0 failed: {detail}{span}")


if __name__ == "__main__":
    tglib.main("restart", body, f"{CYCLES} x (SIGTERM, reap, start again at once), server then client")
