#!/usr/bin/python3
"""Does a running client's tunnel come back after the server loses its session?

  A. graceful server restart (SIGTERM, then a new server with the same key file):
     the client is told (Close), keeps tg0 and handshakes again (docs/OPERATIONS.md);
  B. a client killed without a Close is removed after --idle-timeout (a live one, probed,
     never is), and a new client on its address is served;
  C. the server is killed (SIGKILL, so no Close) and restarted with the same key.

In every case traffic through the client's tunnel must flow again within RECOVER_WITHIN
seconds of the client sending, without restarting the client. All three cases run even
if one fails. In C nothing tells the client: its uplink probes go unanswered until the
uplink is Down (about 2 s at the default 1 s probe interval) and it handshakes again.

usage: test_recovery.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_PORT, SERVER_TUN_IP, TestFailure, check, run  # noqa: E402

IDLE_TIMEOUT = 2
RECOVER_WITHIN = 10.0


def start_keyed_server(lab, ns, keyfile, label, *extra, retry_for=0.0):
    """triglav server --key keyfile; retries while the port is still held by a killed
    predecessor (io_uring releases its socket asynchronously), at most retry_for s."""
    deadline = time.monotonic() + retry_for
    for attempt in range(100):
        p = lab.start(f"{label}" if attempt == 0 else f"{label}-retry{attempt}",
                      [lab.binary, "server", "--key", keyfile, *extra], ns)
        try:
            p.wait_for(r" info server listening on ", timeout=10)
            return p
        except TestFailure:
            if "Address already in use" in p.stderr() and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise
    raise TestFailure(f"{label}: could not start")


def wait_recovered(lab, ns, within):
    """Pings once a second-ish until 3 in a row are answered. Returns seconds until the
    first answer of that streak, or None if not within `within` seconds."""
    t0 = time.monotonic()
    streak, first_ok = 0, None
    for _ in range(200):
        if time.monotonic() - t0 > within:
            return None
        _, rx, _, _ = lab.ping(ns, SERVER_TUN_IP, count=1, wait=1)
        if rx == 1:
            if streak == 0:
                first_ok = time.monotonic() - t0
            streak += 1
            if streak == 3:
                return first_ok
        else:
            streak = 0
            time.sleep(0.1)
    return None


def scenario_graceful(lab, ns_s, ns_c, keyfile, authkey):
    server = start_keyed_server(lab, ns_s, keyfile, "A-server")
    client, _ = lab.start_client(ns_c, authkey, label="A-client")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3, interval=0.05)
    check(rx == 3, f"A: initial ping {rx}/3\n{out}")
    rc, _ = server.stop(signal.SIGTERM)
    check(rc == 0, f"A: server exited {rc}")
    client.wait_for(r"the server closed the session", timeout=3)
    time.sleep(1.0)
    check(client.poll() is None and lab.tg_links(ns_c) == ["tg0"],
          f"A: client did not keep running with tg0 while the server was away\n{client.describe()}")
    server2 = start_keyed_server(lab, ns_s, keyfile, "A-server2", retry_for=3)
    took = wait_recovered(lab, ns_c, RECOVER_WITHIN)
    check(took is not None, f"A: no traffic through the tunnel within {RECOVER_WITHIN} s of the "
          f"server's restart\n{client.describe()}\n{server2.describe()}")
    n = client.stderr().count("handshake complete")
    check(n == 2, f"A: client logged {n} completed handshakes, expected 2")
    for p in (client, server2):
        p.stop(signal.SIGTERM)
    return f"A. graceful server restart: client kept tg0, handshook again, ping answered after {took:.1f} s"


def scenario_idle(lab, ns_s, ns_c, keyfile, authkey):
    """A client that vanishes without a Close (SIGKILL) is removed after --idle-timeout,
    and a new client on the same address is served at once."""
    server = start_keyed_server(lab, ns_s, keyfile, "B-server", "--idle-timeout", str(IDLE_TIMEOUT),
                                retry_for=3)
    client, _ = lab.start_client(ns_c, authkey, label="B-client")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3, interval=0.05)
    check(rx == 3, f"B: initial ping {rx}/3\n{out}")
    time.sleep(IDLE_TIMEOUT + 0.5)  # probes keep a live client's session: nothing is removed
    check("removed" not in server.stderr(), f"B: the server dropped a live client\n{server.describe()}")
    client.stop(signal.SIGKILL)
    lab.wait_gone(ns_c, "B-client after SIGKILL", grace=2.0)
    server.wait_for(rf"idle for {IDLE_TIMEOUT} s: removed", timeout=IDLE_TIMEOUT + 4)
    client2, _ = lab.start_client(ns_c, authkey, label="B-client2")
    took = wait_recovered(lab, ns_c, RECOVER_WITHIN)
    check(took is not None, f"B: a new client was not served after the old one was removed\n{server.describe()}")
    for p in (client2, server):
        p.stop(signal.SIGTERM)
    return (f"B. a live client is never idle (probes); a killed one is removed after --idle-timeout "
            f"{IDLE_TIMEOUT}, and its successor pings after {took:.1f} s")


def scenario_crash(lab, ns_s, ns_c, keyfile, authkey):
    server = start_keyed_server(lab, ns_s, keyfile, "C-server", retry_for=3)
    client, _ = lab.start_client(ns_c, authkey, label="C-client")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=3, interval=0.05)
    check(rx == 3, f"C: initial ping {rx}/3\n{out}")
    server.stop(signal.SIGKILL)
    server2 = start_keyed_server(lab, ns_s, keyfile, "C-server2", retry_for=3)
    took = wait_recovered(lab, ns_c, RECOVER_WITHIN)
    if took is None:
        c = server2.dump_counters()
        raise TestFailure(
            f"C: after the server was killed and restarted with the same key, the client's tunnel "
            f"stayed dead for {RECOVER_WITHIN} s of pinging: new server drop_unknown_index="
            f"{c['drop_unknown_index']} sessions=0, client handshakes="
            f"{client.stderr().count('handshake complete')}")
    for p in (client, server2):
        p.stop(signal.SIGTERM)
    return f"C. server killed and restarted: traffic flowed again after {took:.1f} s"


def body(lab, checks):
    ns_s = lab.netns("s")
    ns_c = lab.netns("c")
    _, _, ip_s, _ = lab.veth(ns_s, ns_c, subnet=7)
    keyfile = os.path.join(lab.tmp, "server.key")
    authkey = run([lab.binary, "keygen", "--output", keyfile, "--address", f"{ip_s}:{SERVER_PORT}"]).stdout.strip()
    failures = []
    for scenario in (scenario_graceful, scenario_idle, scenario_crash):
        try:
            checks.append(scenario(lab, ns_s, ns_c, keyfile, authkey))
        except TestFailure as e:
            failures.append(str(e))
            print(f"  --  {str(e).splitlines()[0]}", flush=True)
        # Whatever happened, the next scenario starts from scratch.
        for p in lab.procs:
            p.kill()
        lab.wait_gone(ns_s, f"server after {scenario.__name__}")
        lab.wait_gone(ns_c, f"client after {scenario.__name__}")
    if failures:
        raise TestFailure(f"{len(failures)} scenario(s) failed:\n" + "\n".join(failures))


if __name__ == "__main__":
    tglib.main("recovery", body, "does the client's tunnel come back after the server loses its session?")
