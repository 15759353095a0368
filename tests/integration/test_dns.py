#!/usr/bin/python3
"""--dns: the client's resolver file points at the tunnel's DNS server while it runs (given
without a value: the server's tunnel address, from the handshake), a
query to that server travels through the tunnel, and the previous file comes back byte
for byte on exit, and after a SIGKILL at the next start.

The test gives the client namespace its own resolver file (/etc/netns/NS/resolv.conf,
which `ip netns exec` mounts over /etc/resolv.conf), and checks that the machine's own
/etc/resolv.conf is untouched.

usage: test_dns.py /path/to/triglav; root; exit 0/1/77
"""
import os
import shutil
import signal
import sys
import threading

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

ORIGINAL = "# the LAN's resolver\nnameserver 192.0.2.53\nsearch example.test\n"
QUERY = bytes.fromhex("12340100000100000000000007747269676c617604746573740000010001")  # A triglav.test


def host_resolv():
    try:
        with open("/etc/resolv.conf", "rb") as f:
            return f.read()
    except OSError:
        return None


def resolv_in(ns):
    return run(tglib.ns_cmd(ns, ["cat", "/etc/resolv.conf"])).stdout


def ask_dns(ns):
    """Sends a DNS query to the first nameserver of the namespace's resolver file and
    returns the answer (the test's responder echoes the id)."""
    code = ("import socket\n"
            "ns = [l.split()[1] for l in open('/etc/resolv.conf') if l.startswith('nameserver')][0]\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)\n"
            f"s.sendto(bytes.fromhex('{QUERY.hex()}'), (ns, 53))\n"
            "print(ns, s.recvfrom(512)[0].hex())\n")
    r = run(tglib.ns_cmd(ns, [sys.executable, "-c", code]), check=False, timeout=10)
    return r.stdout.strip(), r.stderr.strip()


def body(lab, checks):
    host_before = host_resolv()
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    netns_dir = f"/etc/netns/{ns_c}"
    os.makedirs(netns_dir, exist_ok=True)
    try:
        with open(f"{netns_dir}/resolv.conf", "w") as f:
            f.write(ORIGINAL)
        lab.veth(ns_s, ns_c, subnet=71)
        server, authkey = lab.start_server(ns_s)
        check(resolv_in(ns_c) == ORIGINAL, "the namespace's own resolver file is not in place")

        # A DNS responder on the server's tunnel address: answers with the query's id.
        srv = lab.socket(ns_s)
        stop = threading.Event()

        def respond():
            srv.settimeout(0.2)
            for _ in range(300):  # bounded: 60 s at most
                if stop.is_set():
                    return
                try:
                    data, peer = srv.recvfrom(512)
                except OSError:
                    continue
                srv.sendto(data[:2] + b"\x81\x80" + data[4:], peer)
        # --dns without a value: the server's tunnel address, learnt in the handshake.
        client, _ = lab.start_client(ns_c, authkey, "--dns")
        srv.bind((SERVER_TUN_IP, 53))
        t = threading.Thread(target=respond, daemon=True)
        t.start()
        now = resolv_in(ns_c)
        check(f"nameserver {SERVER_TUN_IP}\n" in now and "192.0.2.53" not in now, f"resolver while running:\n{now}")
        out, err = ask_dns(ns_c)
        check(out.startswith(f"{SERVER_TUN_IP} 1234818000010000"), f"DNS query through the tunnel: {out!r} {err}")
        checks.append(f"--dns without a value: resolv.conf names only the server's tunnel address "
                      f"{SERVER_TUN_IP}, and a query got its answer through the tunnel")

        check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
        check(resolv_in(ns_c) == ORIGINAL, f"not restored on exit:\n{resolv_in(ns_c)}")
        checks.append("SIGTERM: resolv.conf restored byte for byte")

        crashed, _ = lab.start_client(ns_c, authkey, "--dns", SERVER_TUN_IP, label="client-crash")
        crashed.stop(signal.SIGKILL)
        lab.wait_gone(ns_c, "killed client")
        check(SERVER_TUN_IP in resolv_in(ns_c), "expected the killed client's resolver file to remain")
        again, _ = lab.start_client(ns_c, authkey, label="client-again")  # no --dns: restores only
        check(resolv_in(ns_c) == ORIGINAL, f"the next start did not restore the file:\n{resolv_in(ns_c)}")
        check(again.stop(signal.SIGTERM)[0] == 0, "client-again did not exit 0")
        check(resolv_in(ns_c) == ORIGINAL, "changed by a client without --dns")
        checks.append("after SIGKILL the next start (even without --dns) restored the previous file")
        stop.set()
        t.join(timeout=2)
        check(server.stop(signal.SIGTERM)[0] == 0, "server did not exit 0")
    finally:
        shutil.rmtree(netns_dir, ignore_errors=True)
    check(host_resolv() == host_before, "the machine's own /etc/resolv.conf changed")
    checks.append("the machine's own /etc/resolv.conf is untouched")


if __name__ == "__main__":
    tglib.main("dns", body, "--dns points the resolver through the tunnel and restores it")
