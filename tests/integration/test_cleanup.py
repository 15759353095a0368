#!/usr/bin/python3
"""SIGTERM and SIGINT: both sides exit 0 promptly, log their final counters, and remove
their TUN device and the routes they added (--route).

Round 1 (SIGTERM): client first, then server (the server sees the client's Close).
Round 2 (SIGINT):  server first (the client sees the server's Close), then client.

usage: test_cleanup.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check  # noqa: E402

CLIENT_ROUTE = "10.123.0.0/16"
SERVER_ROUTE = "10.124.0.0/16"
EXIT_WITHIN = 3.0


def assert_running(lab, ns_s, ns_c, when):
    for ns, route, side in ((ns_s, SERVER_ROUTE, "server"), (ns_c, CLIENT_ROUTE, "client")):
        tg = lab.tg_links(ns)
        check(tg == ["tg0"], f"{when}: {side} namespace has tg interfaces {tg}, want ['tg0']")
        r = lab.routes(ns, route)
        check("dev tg0" in r, f"{when}: {side} namespace lacks route {route} dev tg0 (ip route: {r!r})")


def assert_gone(lab, ns, side, when):
    """Device and routes gone (within the grace period; see test_restart.py)."""
    linger = lab.wait_gone(ns, f"{when}: {side}", prefixes=(CLIENT_ROUTE, SERVER_ROUTE))
    return f"{side} {'gone at exit' if linger == 0 else f'gone {linger * 1000:.0f} ms after exit'}"


def round_(lab, checks, ns_s, ns_c, sig, order, n):
    name = signal.Signals(sig).name
    server, authkey = lab.start_server(ns_s, "--route", SERVER_ROUTE, label=f"server{n}")
    client, _ = lab.start_client(ns_c, authkey, "--route", CLIENT_ROUTE, "--handshake-timeout", "5",
                                 label=f"client{n}")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3, interval=0.05)
    check(rx == 3, f"ping over the tunnel before {name}: {rx}/{tx}\n{out}")
    assert_running(lab, ns_s, ns_c, f"while running ({name} round)")

    procs = {"server": server, "client": client}
    first, second = procs[order[0]], procs[order[1]]
    rc, dt = first.stop(sig, timeout=EXIT_WITHIN + 2)
    check(rc == 0, f"{first.label} exited {rc} after {name}\n{first.describe()}")
    check(dt <= EXIT_WITHIN, f"{first.label} took {dt:.2f} s to exit after {name}")
    ns_of = {"server": ns_s, "client": ns_c}
    gone = [assert_gone(lab, ns_of[order[0]], order[0], f"after {name}")]
    if first is client:
        server.wait_for(rf"client {CLIENT_TUN_IP} \(\S+\) closed its session", timeout=3)
        saw = "server logged the client's Close"
    else:
        client.wait_for(r"the server closed the session", timeout=3)
        saw = "client logged the server's Close"
    time.sleep(0.3)  # the survivor keeps running and keeps its device meanwhile
    check(second.poll() is None, f"{second.label} exited after its peer stopped\n{second.describe()}")
    rc2, dt2 = second.stop(sig, timeout=EXIT_WITHIN + 2)
    check(rc2 == 0, f"{second.label} exited {rc2} after {name}\n{second.describe()}")
    check(dt2 <= EXIT_WITHIN, f"{second.label} took {dt2:.2f} s to exit after {name}")
    for p in (server, client):
        check(p.counters() is not None, f"{p.label} logged no final counters line\n{p.describe()}")
        check(p.stdout().count("\n") <= 1, f"{p.label} stdout: {p.stdout()!r}")
    gone.append(assert_gone(lab, ns_of[order[1]], order[1], f"after {name}"))
    checks.append(f"{name}: {order[0]} exited 0 in {dt:.2f} s ({saw}), {order[1]} exited 0 in "
                  f"{dt2:.2f} s; both logged final counters")
    checks.append(f"{name}: no tg* device, no {CLIENT_ROUTE} / {SERVER_ROUTE} route left in either namespace "
                  f"({'; '.join(gone)})")


def body(lab, checks):
    ns_s = lab.netns("s")
    ns_c = lab.netns("c")
    lab.veth(ns_s, ns_c, subnet=5)
    round_(lab, checks, ns_s, ns_c, signal.SIGTERM, ("client", "server"), 1)
    round_(lab, checks, ns_s, ns_c, signal.SIGINT, ("server", "client"), 2)
    # Same namespaces, third time: nothing left over blocks a restart.
    server, authkey = lab.start_server(ns_s, label="server3")
    client, _ = lab.start_client(ns_c, authkey, "--route", CLIENT_ROUTE, label="client3")
    tx, rx, _, out = lab.ping(ns_s, CLIENT_TUN_IP, count=3, interval=0.05)
    check(rx == 3, f"restart after two rounds: ping server -> client {rx}/{tx}\n{out}")
    for p in (client, server):
        rc, _ = p.stop(signal.SIGTERM)
        check(rc == 0, f"{p.label} exited {rc}")
    assert_gone(lab, ns_s, "server", "after the restart round")
    assert_gone(lab, ns_c, "client", "after the restart round")
    checks.append("restart in the same namespaces works (ping 3/3), and cleans up again")


if __name__ == "__main__":
    tglib.main("cleanup", body, "SIGTERM/SIGINT remove TUN devices and --route routes")
