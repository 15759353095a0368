#!/usr/bin/python3
"""A server listening on IPv4 and IPv6, both ways a config file may say it:

- `--listen 0.0.0.0:7443 --listen [::]:7443`, with --tcp-fallback (a TCP listener
  beside each): all bind (the IPv6 sockets then serve IPv6 alone); a client that
  reaches the server's IPv4 address and one that reaches its IPv6 address both
  handshake and ping through the tunnel.
- `--listen [::]:7443` alone: the same two clients (IPv4 arrives on the IPv6 socket).

Each client's AuthKey names one family's address: `triglav server --print-key` on the
server's key file with that family's --address, which prints it without serving.
`--generate-key --print-key` without a key file (the README's one-off form) serves its
key, printed as always: a client connects with it.

usage: test_listen.py [/path/to/triglav]; root; exit 0 pass, 1 fail, 77 skip
"""
import os
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

V6_SERVER, V6_CLIENT = "fd00:201:62::1", "fd00:201:62::2"


def body(lab, checks):
    ns_s, ns_4, ns_6 = lab.netns("s"), lab.netns("a"), lab.netns("b")
    _, _, ip4, _ = lab.veth(ns_s, ns_4, subnet=61)
    if_s6, if_c6, _, _ = lab.veth(ns_s, ns_6, subnet=62)
    run(["ip", "-n", ns_s, "addr", "add", f"{V6_SERVER}/64", "dev", if_s6, "nodad"])
    run(["ip", "-n", ns_6, "addr", "add", f"{V6_CLIENT}/64", "dev", if_c6, "nodad"])

    keyfile = os.path.join(lab.tmp, "server.key")
    made = run([lab.binary, "keygen", "--output", keyfile, "--address", f"{ip4}:7443"], check=False)
    check(made.returncode == 0, f"keygen: {made.stderr}")
    keys = {}
    for fam, addr in (("IPv4", f"{ip4}:7443"), ("IPv6", f"[{V6_SERVER}]:7443")):
        r = run([lab.binary, "server", "--print-key", "--key", keyfile, "--address", addr], check=False)
        check(r.returncode == 0 and r.stdout.startswith("tg1_"), f"--print-key --address {addr}: {r.stderr}")
        keys[fam] = r.stdout.strip()
    check(keys["IPv4"] != keys["IPv6"], "the two AuthKeys name the same address")
    checks.append("server --print-key --key FILE --address A prints one AuthKey per family, serving nothing")

    for form, listens in (("0.0.0.0:7443 with [::]:7443", ["0.0.0.0:7443", "[::]:7443"]),
                          ("[::]:7443 alone", ["[::]:7443"])):
        extra = ["--key", keyfile] + (["--tcp-fallback"] if len(listens) > 1 else [])
        for addr in listens[1:]:
            extra += ["--listen", addr]
        server, _ = lab.triglav_server(ns_s, *extra, label=f"server {form}", listen=listens[0])
        clients = []
        for fam, ns in (("IPv4", ns_4), ("IPv6", ns_6)):
            client, _ = lab.start_client(ns, keys[fam], "--handshake-timeout", "10", label=f"client {fam} {form}",
                                         timeout=15)
            _, rx, _, out = lab.ping(ns, SERVER_TUN_IP, count=5)
            check(rx >= 4, f"--listen {form}: the {fam} client's pings through the tunnel: {rx} of 5\n{out}")
            clients.append(client)
        for p in (*clients, server):
            rc, _ = p.stop(signal.SIGTERM, timeout=5)
            check(rc == 0, f"{p.label} exited {rc} after SIGTERM\n{p.describe()}")
        lab.wait_gone(ns_s, f"server {form}", grace=2.0)
        checks.append(f"--listen {form}{' (and TCP beside each)' if len(listens) > 1 else ''}: an IPv4 and an "
                      "IPv6 client handshake and ping through the tunnel")

    server, key = lab.triglav_server(ns_s, "--print-key", label="server one-off", listen=f"{ip4}:7443")
    client, _ = lab.start_client(ns_4, key, "--handshake-timeout", "10", label="client one-off", timeout=15)
    _, rx, _, out = lab.ping(ns_4, SERVER_TUN_IP, count=5)
    check(rx >= 4, f"the one-off server's key: {rx} of 5 pings\n{out}")
    checks.append("server --generate-key --print-key without a key file serves the key it printed")


if __name__ == "__main__":
    tglib.main("listen", body, "a server on IPv4 and IPv6: two listen addresses, or [::] alone")
