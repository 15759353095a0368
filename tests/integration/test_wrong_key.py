#!/usr/bin/python3
"""A client whose AuthKey holds another server key: it must fail within its handshake
timeout with one clear error line and leave nothing behind; the server logs the
rejection and keeps serving.

usage: test_wrong_key.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_PORT, SERVER_TUN_IP, check, run  # noqa: E402

HANDSHAKE_TIMEOUT = 3.0
SLACK = 2.0  # seconds allowed past the timeout (process start, TUN setup, teardown)


def body(lab, checks):
    ns_s = lab.netns("s")
    ns_c = lab.netns("c")
    _, _, ip_s, ip_c = lab.veth(ns_s, ns_c, subnet=3)
    server, good_key = lab.start_server(ns_s)

    keyfile = os.path.join(lab.tmp, "other.key")
    res = run([lab.binary, "keygen", "--output", keyfile, "--address", f"{ip_s}:{SERVER_PORT}"])
    wrong_key = res.stdout.strip()
    check(wrong_key.startswith("tg1_") and wrong_key != good_key,
          f"keygen printed an unexpected AuthKey {wrong_key!r}")
    check(len(good_key) == len(wrong_key),
          "expected the same AuthKey shape (one IPv4 address) from server and keygen: "
          f"{good_key} vs {wrong_key}")
    checks.append(f"second key from `triglav keygen --address {ip_s}:{SERVER_PORT}`")

    links_before = lab.links(ns_c)
    t0 = time.monotonic()
    client, _ = lab.start_client(ns_c, wrong_key, "--handshake-timeout", str(HANDSHAKE_TIMEOUT),
                                 wait=False)
    rc = client.wait_exit(timeout=HANDSHAKE_TIMEOUT + 10)
    elapsed = time.monotonic() - t0
    err = client.stderr()
    lines = err.splitlines()
    check(rc != 0, f"client exited {rc} with a wrong key\n{client.describe()}")
    check(elapsed <= HANDSHAKE_TIMEOUT + SLACK,
          f"client took {elapsed:.2f} s to give up, handshake timeout {HANDSHAKE_TIMEOUT} s")
    check(elapsed >= HANDSHAKE_TIMEOUT * 0.9,
          f"client gave up after {elapsed:.2f} s, before its {HANDSHAKE_TIMEOUT} s handshake timeout")
    checks.append(f"client exited {rc} after {elapsed:.2f} s (--handshake-timeout {HANDSHAKE_TIMEOUT})")
    check(len(lines) == 1, f"expected exactly one stderr line, got {len(lines)}:\n{err}")
    line = lines[0]
    check(line.startswith("triglav: error: "), f"stderr does not start with 'triglav: error:': {line!r}")
    check("handshake" in line and "failed" in line, f"error does not mention a failed handshake: {line!r}")
    check(f"{ip_s}:{SERVER_PORT}" in line, f"error does not name the server {ip_s}:{SERVER_PORT}: {line!r}")
    check("could not decrypt" in line,
          f"error does not say the server could not decrypt the handshake: {line!r}")
    check(client.stdout() == "", f"client printed on stdout: {client.stdout()!r}")
    checks.append(f"one stderr line: {line}")

    lab.wait_gone(ns_c, "client with the wrong key")
    left = [n for n in lab.links(ns_c) if n not in links_before]
    check(not left and not lab.tg_links(ns_c), f"interfaces left in the client namespace: "
          f"new={left} tg*={lab.tg_links(ns_c)}")
    checks.append("no tg* (or any new) interface left in the client namespace")

    server.wait_for(rf"warn(?:ing)? handshake from {ip_c}:\d+ rejected: it is not encrypted to this server's key",
                    timeout=2)
    checks.append("server logged: handshake ... rejected: it is not encrypted to this server's key")

    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=2, interval=0.2, wait=1)
    check(rx == 0, f"ping to {SERVER_TUN_IP} from the client namespace got {rx} replies:\n{out}")
    how = f"{rx}/{tx} replies" if tx else out.splitlines()[-1] if out else "no output"
    checks.append(f"ping {SERVER_TUN_IP} from the client namespace fails: {how}")

    check(server.poll() is None, f"server died\n{server.describe()}")
    # The rejections must not have hurt the server: the right key still works.
    good, _ = lab.start_client(ns_c, good_key, "--handshake-timeout", "5", label="good-client")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5, interval=0.05)
    check(tx == 5 and rx == 5, f"after the rejections, a client with the right key: ping {rx}/{tx}\n{out}")
    rc, _ = good.stop(signal.SIGTERM)
    check(rc == 0, f"good client exited {rc}\n{good.describe()}")
    checks.append("afterwards a client with the right AuthKey connects and pings 5/5")

    rc, _ = server.stop(signal.SIGTERM)
    check(rc == 0, f"server exited {rc} after SIGTERM\n{server.describe()}")
    m = server.wait_for(r"sessions=(\d+) handshake_rejects=(\d+) .*counters:", timeout=1)
    check(m.group(1) == "0" and int(m.group(2)) >= 1,
          f"server final line: sessions={m.group(1)} handshake_rejects={m.group(2)}, "
          "expected 0 sessions and >= 1 reject")
    checks.append(f"server still serving, exited 0; sessions=0 handshake_rejects={m.group(2)}")


if __name__ == "__main__":
    tglib.main("wrongkey", body, "client AuthKey with a different server key")
