#!/usr/bin/python3
"""On an open server, a tunnel address moves to another client run only once that run
has proven its session and the run holding the address has fallen silent.

Client A holds 10.0.85.5. Client B (any AuthKey holder) asks for the same address: its
handshake completes, but nothing it sends is delivered and A keeps its tunnel. Once A
dies without a word (SIGKILL: no Close), the address moves to B within a few probe
intervals and B's traffic flows.

usage: test_address_move.py /path/to/triglav; root; exit 0/1/77
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check  # noqa: E402

ADDRESS = "10.0.85.5"
PROBE_S = 0.2  # the server's --probe-interval: "silent" is 3 of them


def body(lab, checks):
    ns_s, ns_a, ns_b = lab.netns("s"), lab.netns("a"), lab.netns("b")
    lab.veth(ns_s, ns_a, subnet=161)
    lab.veth(ns_s, ns_b, subnet=162)
    server, authkey = lab.start_server(ns_s, "--probe-interval", str(PROBE_S))
    a, _ = lab.start_client(ns_a, authkey, "--ipv4", f"{ADDRESS}/24", label="client-a")
    tx, rx, _, out = lab.ping(ns_a, SERVER_TUN_IP, count=3)
    check(rx == 3, f"client a: ping {rx}/{tx}\n{out}")

    b, _ = lab.start_client(ns_b, authkey, "--ipv4", f"{ADDRESS}/24", label="client-b")
    server.wait_for(rf"session up: client {ADDRESS} .*; the address is another run's", timeout=3)
    base = server.dump_counters()
    tx, rx, _, out = lab.ping(ns_b, SERVER_TUN_IP, count=3, wait=1)
    check(rx == 0, f"client b reached the server through a's address: {rx}/{tx}")
    tx, rx, _, out = lab.ping(ns_a, SERVER_TUN_IP, count=5)
    check(rx == 5, f"client a lost its tunnel to b: ping {rx}/{tx}\n{out}")
    c = server.dump_counters()
    check(c["drop_bad_source"] - base["drop_bad_source"] >= 3,
          f"b's pings were not dropped as drop_bad_source: {c['drop_bad_source'] - base['drop_bad_source']}")
    checks.append(f"b's handshake for {ADDRESS} completes, but while a is live a keeps its tunnel (ping 5/5) and "
                  "b's packets are dropped (drop_bad_source)")

    a.send_signal(signal.SIGKILL)  # no Close: the server only sees it fall silent
    a.wait_exit(timeout=5)
    t0 = time.monotonic()
    server.wait_for(rf"client {ADDRESS}: the run that held it has been silent for 3 probe intervals", timeout=5)
    moved = time.monotonic() - t0
    got = 0
    for _ in range(20):  # bounded: 20 one-second pings at most
        _, got, _, _ = lab.ping(ns_b, SERVER_TUN_IP, count=1, wait=1)
        if got:
            break
    check(got == 1, "client b got no answer after the address moved to it")
    tx, rx, _, out = lab.ping(ns_b, SERVER_TUN_IP, count=3)
    check(rx == 3, f"client b after the move: ping {rx}/{tx}\n{out}")
    checks.append(f"a killed: the address moved to b {moved:.1f} s later (3 probe intervals of {PROBE_S} s), "
                  "and b's ping works 3/3")
    for p in (b, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")


if __name__ == "__main__":
    tglib.main("addressmove", body, "an address moves only to a proven run, once its holder is silent")
