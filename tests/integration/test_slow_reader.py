#!/usr/bin/python3
"""A reader that takes /metrics one byte every 150 ms does not slow the server down:
while it reads, the client keeps rekeying every second (each rekey is a handshake the
server's control thread answers), pings cross the tunnel, and another /metrics request
and a `triglav status` are answered at once. The slow reader's connection is closed at
its deadline.

The server's namespace gets small TCP buffers (net.ipv4.tcp_wmem) and the reader a small
receive buffer, so that the answer cannot simply wait in the kernel.

usage: test_slow_reader.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

METRICS_PORT = 9109
READ_S = 6.0        # how long slow readers keep coming (the server closes each after 5 s)
BYTE_EVERY_S = 0.15
SLOW = 8            # slow readers at once (the server serves 16 connections)
HOLD = 24           # idle connections that fill every metrics slot


def status(lab, sock):
    r = run([lab.binary, "status", "--json", "--socket", sock], check=False, timeout=5)
    check(r.returncode == 0, f"status: exit {r.returncode}\n{r.stderr}")
    return json.loads(r.stdout)


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    _, _, ip_s, _ = lab.veth(ns_s, ns_c, subnet=171)
    run(tglib.ns_cmd(ns_s, ["sysctl", "-q", "-w", "net.ipv4.tcp_wmem=4096 4096 4096"]))
    sock_s = os.path.join(lab.tmp, "server.sock")
    sock_c = os.path.join(lab.tmp, "client.sock")
    server, authkey = lab.start_server(ns_s, "--metrics-listen", f"{ip_s}:{METRICS_PORT}",
                                       "--control-socket", sock_s)
    client, _ = lab.start_client(ns_c, authkey, "--rekey-after", "1", "--control-socket", sock_c)

    # Slow readers, in the client's namespace (the metrics listen on the veth): SLOW of
    # them at once for READ_S seconds, each opened again when the server closes it.
    got = {"bytes": 0, "reset": 0, "fin": 0, "opened": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + READ_S

    def read_slowly():
        while time.monotonic() < stop_at:
            try:
                s_ = tglib.ns_socket(ns_c, socket.AF_INET, socket.SOCK_STREAM)
                s_.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                s_.settimeout(2)
                s_.connect((ip_s, METRICS_PORT))
                s_.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            except OSError:
                time.sleep(0.05)
                continue
            with lock:
                got["opened"] += 1
            for _ in range(200):  # bounded: 30 s of bytes at most
                # The server's close shows in the TCP state at once (what the kernel had
                # queued for us would take minutes at this pace): 7 closed (a reset at
                # the deadline), 8 close-wait (a FIN: the whole answer was sent).
                state = s_.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
                if state in (7, 8):
                    with lock:
                        got["reset" if state == 7 else "fin"] += 1
                    break
                try:
                    b = s_.recv(1)
                except socket.timeout:
                    break
                except OSError:
                    b = b""
                if not b:
                    with lock:
                        got["reset"] += 1
                    break
                with lock:
                    got["bytes"] += 1
                time.sleep(BYTE_EVERY_S)
            s_.close()

    before = status(lab, sock_c)["uplinks"][0]["handshakes"]
    readers = [threading.Thread(target=read_slowly, daemon=True) for _ in range(SLOW)]
    t0 = time.monotonic()
    for r in readers:
        r.start()
    time.sleep(0.5)  # the readers hold their answers by now
    # Meanwhile: a fast reader, the control socket, pings, rekeys.
    fast = lab.socket(ns_c, socket.AF_INET, socket.SOCK_STREAM)
    fast.settimeout(2)
    t_fast = time.monotonic()
    fast.connect((ip_s, METRICS_PORT))
    fast.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
    body_ = b""
    while len(body_) < 1 << 20:
        b = fast.recv(65536)
        if not b:
            break
        body_ += b
    fast_s = time.monotonic() - t_fast
    check(b"triglav_handshakes_total" in body_ and fast_s < 0.5,
          f"a second /metrics took {fast_s:.2f} s ({len(body_)} bytes) while the slow one read")
    t_st = time.monotonic()
    js = status(lab, sock_s)
    st_s = time.monotonic() - t_st
    check(js["state"] == "serving" and st_s < 0.5, f"status took {st_s:.2f} s")
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=15, interval=0.2)
    check(rx == tx == 15, f"ping during the slow read: {rx}/{tx}\n{out}")
    for r in readers:
        r.join(READ_S + 35)
    elapsed = time.monotonic() - t0
    after = status(lab, sock_c)["uplinks"][0]["handshakes"]
    check(after - before >= 3, f"the client rekeyed {after - before} times in {elapsed:.1f} s (every 1 s wanted)")
    check(got["bytes"] > 0 and got["opened"] >= SLOW, f"slow readers: {got}")
    check(got["reset"] >= SLOW, f"the server cut off only {got['reset']} slow connections at their deadline "
          f"(the answer is {len(body_)} bytes): {got}")
    checks.append(f"while {SLOW} readers took /metrics one byte every {BYTE_EVERY_S * 1000:.0f} ms ({got['opened']} "
                  f"connections, each closed at its deadline; the answer is {len(body_)} bytes): {after - before} "
                  f"rekeys answered, ping 15/15, another /metrics in {fast_s * 1000:.0f} ms, status in "
                  f"{st_s * 1000:.0f} ms")

    # Whoever reaches the metrics port cannot lock out `triglav status`: idle connections
    # that fill every metrics slot (opened again as the server closes them) leave the
    # control socket its own.
    hold_until = time.monotonic() + 3.0
    held = {"opened": 0}

    def hold_slots():
        conns = []
        for _ in range(2000):  # bounded: opens at most this many in all
            if time.monotonic() >= hold_until:
                break
            conns = [c for c in conns if c.fileno() >= 0 and not closed(c)]
            while len(conns) < HOLD:
                c = tglib.ns_socket(ns_c, socket.AF_INET, socket.SOCK_STREAM)
                c.settimeout(1)
                try:
                    c.connect((ip_s, METRICS_PORT))
                except OSError:
                    c.close()
                    break
                conns.append(c)
                held["opened"] += 1
            time.sleep(0.02)
        for c in conns:
            c.close()

    def closed(c):
        state = c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        if state in (7, 8):
            c.close()
            return True
        return False

    holder = threading.Thread(target=hold_slots, daemon=True)
    holder.start()
    time.sleep(0.5)
    answered = 0
    for _ in range(5):
        answered += status(lab, sock_s)["state"] == "serving"
        time.sleep(0.2)
    holder.join(10)
    check(answered == 5, f"status answered {answered}/5 while the metrics slots were full")
    checks.append(f"{HOLD} idle connections held on the metrics port ({held['opened']} opened in 3 s): "
                  f"`triglav status` answered 5/5 meanwhile")


if __name__ == "__main__":
    tglib.main("slowreader", body, "a slow /metrics reader stalls nothing")
