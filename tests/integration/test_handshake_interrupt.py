#!/usr/bin/python3
"""SIGTERM / SIGINT to a client whose first handshake is still pending (no server
answers). docs/OPERATIONS.md: SIGINT / SIGTERM remove routes and the TUN device and
exit 0; the counters line is logged at exit. At the very least the process must not
exit non-zero without saying why ("every start-up failure prints one line").

usage: test_handshake_interrupt.py [/path/to/triglav]   (or TRIGLAV_BIN); root; exit 0/1/77
"""
import os
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_PORT, TestFailure, check, run  # noqa: E402

ROUTE = "10.123.0.0/16"


def body(lab, checks):
    ns = lab.netns("c")
    run(["ip", "-n", ns, "addr", "add", "10.201.8.1/24", "dev", "lo"])
    keyfile = os.path.join(lab.tmp, "server.key")
    # Nobody listens on this address: the handshake never completes.
    authkey = run([lab.binary, "keygen", "--output", keyfile, "--address", f"10.201.8.1:{SERVER_PORT}"]).stdout.strip()
    failures = []
    # Counts the initiations the client sends (to port SERVER_PORT).
    run(tglib.ns_cmd(ns, ["nft", "-f", "-"]), input_bytes=(
        "table inet count {\n  chain out {\n    type filter hook output priority filter; policy accept;\n"
        f"    udp dport {SERVER_PORT} counter\n  }}\n}}\n").encode())
    for sig in (signal.SIGTERM, signal.SIGINT):
        name = signal.Signals(sig).name
        # SIGINT's client retries every 0.1 s, and after 3 unanswered handshakes less and
        # less often (--max-retries).
        backoff = ["--retry-delay", "0.1", "--max-retries", "3"] if sig == signal.SIGINT else []
        run(tglib.ns_cmd(ns, ["nft", "reset", "counters", "table", "inet", "count"]))
        client, _ = lab.start_client(ns, authkey, "--route", ROUTE, "--handshake-timeout", "30", *backoff,
                                     label=f"client-{name}", wait=False)
        deadline = time.monotonic() + 5
        while "tg0" not in lab.tg_links(ns) and time.monotonic() < deadline and client.poll() is None:
            time.sleep(0.05)
        check(client.poll() is None and "tg0" in lab.tg_links(ns),
              f"client did not come up\n{client.describe()}")
        time.sleep(1.5)  # at least one retry
        rc, dt = client.stop(sig, timeout=5)
        out = run(tglib.ns_cmd(ns, ["nft", "list", "table", "inet", "count"])).stdout
        sent = int(out.split("packets ")[1].split()[0])
        if backoff:
            # At 0.1 s for ~2 s that would be ~20; backing off after 3: 3 + 0.2, 0.4, 0.8 s...
            check("no answer to 3 handshakes in a row; trying less often, up to every 30 s" in client.stderr() and
                  4 <= sent <= 12, f"--max-retries 3: {sent} initiations sent\n{client.describe()}")
            checks.append(f"--retry-delay 0.1 --max-retries 3: {sent} initiations in ~2 s, then it slowed down "
                          "(and said so)")
        linger = lab.wait_gone(ns, f"{name} during the first handshake", prefixes=(ROUTE,))
        checks.append(f"{name} during the first handshake: process gone in {dt:.2f} s, no tg0, no {ROUTE} "
                      f"route ({'at exit' if linger == 0 else f'{linger * 1000:.0f} ms after exit'})")
        err = client.stderr()
        if rc == 0 and client.counters() is not None:
            checks.append(f"{name} during the first handshake: exit 0, counters logged")
        else:
            failures.append(f"{name} while the first handshake is pending: exit {rc}, stderr {err!r}; "
                            "expected exit 0 and a counters line (docs/OPERATIONS.md 'Logs, counters, "
                            "signals')" + ("" if err.strip() else " -- it exited non-zero saying nothing"))
    if failures:
        raise TestFailure("\n".join(failures))


if __name__ == "__main__":
    tglib.main("hsinterrupt", body, "SIGTERM/SIGINT while the first handshake is pending")
