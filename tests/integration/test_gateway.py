#!/usr/bin/python3
"""--gateway: a client that routes for a LAN (its own namespace behind the client) bonds
the LAN's traffic. What the LAN sends into the tunnel is masqueraded to the client's
tunnel address with source ports from [nat] port_range; answers find their way back;
UDP mappings expire after [nat] udp_timeout; triglav_nat_active_entries counts the
mappings; IP forwarding and the nftables table are undone on exit. Then the whole chain
of a bonded site: full tunnel with the LAN excluded, the server masquerading onwards
(--nat-outbound), a host beyond the server reached from the LAN, and the server's own
entry count. Last, without NAT: the server routes the LAN's prefix to the client whose
key it names (--client-route), the LAN's packets arrive with their own addresses, the
server reaches the LAN host, a restarted run of the key takes the prefix over once it is
confirmed, and another key may not send from that prefix.

usage: test_gateway.py /path/to/triglav; root; exit 0/1/77
"""
import json
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check, run  # noqa: E402

PORTS = (40000, 40099)
UDP_TIMEOUT = 2  # s
BEYOND = "198.18.9.1"
TCP_BYTES = 4 << 20


def forwarding(ns):
    return run(tglib.ns_cmd(ns, ["cat", "/proc/sys/net/ipv4/ip_forward"])).stdout.strip()


def tables(ns):
    return run(tglib.ns_cmd(ns, ["nft", "list", "tables"])).stdout


def nat_entries(ns, port):
    """triglav_nat_active_entries from GET /metrics (curl inside ns)."""
    r = run(tglib.ns_cmd(ns, ["curl", "-sS", "--max-time", "5", f"http://127.0.0.1:{port}/metrics"]), check=False)
    m = re.search(r"^triglav_nat_active_entries (\S+)$", r.stdout, re.M)
    check(m is not None, f"no triglav_nat_active_entries sample in the metrics:\n{r.stdout[-400:]}{r.stderr}")
    check(re.search(r"^# TYPE triglav_nat_active_entries gauge$", r.stdout, re.M) is not None,
          "triglav_nat_active_entries is not typed as a gauge")
    return int(float(m.group(1)))


def wait_entries(ns, port, pred, timeout):
    deadline = time.monotonic() + timeout
    n = nat_entries(ns, port)
    for _ in range(200):
        if pred(n) or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
        n = nat_entries(ns, port)
    return n


def udp_pair(lab, ns_s, port, ns_l, host_ip, lan_port):
    """A UDP socket on the server's tunnel address and one on the LAN host (3 s timeouts)."""
    srv = lab.socket(ns_s)
    srv.bind((SERVER_TUN_IP, port))
    lan = lab.socket(ns_l)
    lan.bind((host_ip, lan_port))
    for s in (srv, lan):
        s.settimeout(3)
    return srv, lan


def lan_network(lab):
    """Server and client namespaces (one uplink) and a LAN namespace behind the client,
    whose default route is the client. Returns (ns_s, ns_c, ns_l, lan_prefix, lan_host_ip)."""
    ns_s, ns_c, ns_l = lab.netns("s"), lab.netns("c"), lab.netns("l")
    lab.veth(ns_s, ns_c, subnet=131)
    _, _, gw_ip, host_ip = lab.veth(ns_c, ns_l, subnet=132)
    run(tglib.ns_cmd(ns_l, ["ip", "route", "add", "default", "via", gw_ip]))
    return ns_s, ns_c, ns_l, "10.201.132.0/24", host_ip


def nat_phase(lab, checks, ns_s, ns_c, ns_l, host_ip):
    cfg = os.path.join(lab.tmp, "client.toml")
    with open(cfg, "w") as f:
        f.write(f'[nat]\nudp_timeout = "{UDP_TIMEOUT}s"\nport_range = "{PORTS[0]}-{PORTS[1]}"\n')
    sock = os.path.join(lab.tmp, "client.sock")
    check(forwarding(ns_c) == "0", "a new namespace should start without forwarding")
    server, authkey = lab.start_server(ns_s)
    client, _ = lab.start_client(ns_c, authkey, "--gateway", "--config", cfg, "--control-socket", sock,
                                 "--metrics-listen", "127.0.0.1:9091")
    client.wait_for(r"gateway: traffic forwarded into tg0 masqueraded", timeout=5)
    check(forwarding(ns_c) == "1" and "triglav_tg0" in tables(ns_c),
          f"gateway on: forwarding {forwarding(ns_c)}, tables {tables(ns_c)!r}")
    check(nat_entries(ns_c, 9091) == 0, "NAT entries before any LAN traffic")

    # UDP from the LAN: the server sees the tunnel address and a port from the range;
    # its answer comes back to the LAN host.
    srv_udp, lan_udp = udp_pair(lab, ns_s, 5002, ns_l, host_ip, 0)
    lan_udp.sendto(b"hello from the LAN", (SERVER_TUN_IP, 5002))
    data, (src_ip, src_port) = srv_udp.recvfrom(2048)
    check(data == b"hello from the LAN", f"server got {data!r}")
    check(src_ip == CLIENT_TUN_IP and PORTS[0] <= src_port <= PORTS[1],
          f"the LAN's UDP arrived from {src_ip}:{src_port}; want {CLIENT_TUN_IP} and a port in {PORTS}")
    srv_udp.sendto(b"answer", (src_ip, src_port))
    data, frm = lan_udp.recvfrom(2048)
    check(data == b"answer" and frm == (SERVER_TUN_IP, 5002), f"LAN host got {data!r} from {frm}")
    checks.append(f"UDP from the LAN host {host_ip} reached the server from {src_ip}:{src_port} "
                  f"(port_range {PORTS[0]}-{PORTS[1]}); the answer came back")

    # TCP from the LAN, kept open: 4 MiB each way.
    srv_tcp = lab.socket(ns_s, type_=socket.SOCK_STREAM)
    srv_tcp.bind((SERVER_TUN_IP, 5001))
    srv_tcp.listen(1)
    srv_tcp.settimeout(5)
    lan_tcp = lab.socket(ns_l, type_=socket.SOCK_STREAM)
    lan_tcp.settimeout(10)
    lan_tcp.connect((SERVER_TUN_IP, 5001))
    conn, (tsrc_ip, tsrc_port) = srv_tcp.accept()
    lab.sockets.append(conn)
    conn.settimeout(10)
    check(tsrc_ip == CLIENT_TUN_IP and PORTS[0] <= tsrc_port <= PORTS[1],
          f"the LAN's TCP connection came from {tsrc_ip}:{tsrc_port}")
    payload = os.urandom(1 << 16) * (TCP_BYTES >> 16)
    for a, b in ((lan_tcp, conn), (conn, lan_tcp)):
        sender = threading.Thread(target=a.sendall, args=(payload,), daemon=True)  # the socket times out
        sender.start()
        got = bytearray()
        deadline = time.monotonic() + 20
        while len(got) < TCP_BYTES and time.monotonic() < deadline:
            chunk = b.recv(1 << 20)
            if not chunk:
                break
            got += chunk
        sender.join(timeout=5)
        check(bytes(got) == payload, f"TCP through the gateway: {len(got)} of {TCP_BYTES} bytes, "
                                     f"equal {bytes(got) == payload}")
    checks.append(f"TCP from the LAN: connection from {tsrc_ip}:{tsrc_port}, {TCP_BYTES >> 20} MiB "
                  "each way arrived intact")

    n = nat_entries(ns_c, 9091)
    check(n == 2, f"triglav_nat_active_entries {n} with one UDP and one TCP mapping")
    st = json.loads(run([lab.binary, "status", "--socket", sock, "--json"]).stdout)
    check(st.get("nat_entries") == 2, f"status --json nat_entries {st.get('nat_entries')!r}")
    t0 = time.monotonic()
    n = wait_entries(ns_c, 9091, lambda v: v <= 1, timeout=UDP_TIMEOUT + 8)
    waited = time.monotonic() - t0
    check(n == 1, f"{waited:.1f} s after the UDP exchange ({UDP_TIMEOUT} s udp_timeout), {n} entries left")
    lan_tcp.sendall(b"x")
    check(conn.recv(1) == b"x", "the TCP connection stopped working")
    checks.append(f"triglav_nat_active_entries (metrics) and nat_entries (status): 2; the UDP mapping expired "
                  f"{waited:.1f} s later (udp_timeout {UDP_TIMEOUT} s), the TCP one stayed and still works")

    lan_tcp.close()
    conn.close()
    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
    check(forwarding(ns_c) == "0" and "triglav_tg0" not in tables(ns_c),
          f"after exit: forwarding {forwarding(ns_c)}, tables {tables(ns_c)!r}")
    checks.append("on exit: IP forwarding back to 0 and the nftables table gone")
    return server, authkey


def site_phase(lab, checks, ns_s, ns_c, ns_l, lan, server, authkey):
    # Without --exclude, the LAN's answers would be routed into the tunnel: refused.
    r = run(tglib.ns_cmd(ns_c, [lab.binary, "tun", authkey, "--gateway", "--full-tunnel"]), check=False)
    check(r.returncode != 0 and "--exclude" in r.stderr and len(r.stderr.strip().splitlines()) == 1,
          f"--gateway --full-tunnel without --exclude: exit {r.returncode}, {r.stderr!r}")
    checks.append("--gateway --full-tunnel without --exclude is a one-line error: " + r.stderr.strip())

    server.stop(signal.SIGTERM)
    ns_i = lab.netns("i")
    _, _, ip_i, _ = lab.veth(ns_i, ns_s, subnet=133)
    run(tglib.ns_cmd(ns_i, ["ip", "addr", "add", f"{BEYOND}/32", "dev", "lo"]))
    run(tglib.ns_cmd(ns_s, ["ip", "route", "add", f"{BEYOND}/32", "via", ip_i]))
    server, authkey = lab.start_server(ns_s, "--nat-outbound", "--metrics-listen", "127.0.0.1:9090",
                                       label="server-nat")
    client, _ = lab.start_client(ns_c, authkey, "--gateway", "--full-tunnel", "--exclude", lan,
                                 "--metrics-listen", "127.0.0.1:9091", label="client-site")
    _, rx, _, out = lab.ping(ns_l, BEYOND, count=5)
    check(rx == 5, f"LAN -> {BEYOND} through gateway, tunnel and the server's NAT: {rx}/5\n{out}")
    _, rx, _, out = lab.ping(ns_l, "10.201.132.1", count=3)
    check(rx == 3, f"the LAN still reaches the gateway itself: {rx}/3\n{out}")
    nc, ns_ = nat_entries(ns_c, 9091), nat_entries(ns_s, 9090)
    check(nc >= 1 and ns_ >= 1, f"NAT entries while the LAN pings beyond: client {nc}, server {ns_}")
    checks.append(f"full tunnel, LAN excluded: the LAN host pinged {BEYOND} behind the server 5/5 "
                  f"(masqueraded twice: NAT entries client {nc}, server {ns_}); the LAN still reaches the gateway")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    check(forwarding(ns_c) == "0" and "triglav_tg0" not in tables(ns_c), "client left forwarding or its table")


def routed_phase(lab, checks, ns_s, ns_c, ns_l, lan, host_ip):
    keys = os.path.join(lab.tmp, "clients.d")
    os.mkdir(keys, 0o700)
    paths = {}
    for name in ("office", "other"):
        paths[name] = os.path.join(lab.tmp, name + ".key")
        run([lab.binary, "keygen", "--client", "-o", paths[name], "--name", name])
        shutil.copy(paths[name], os.path.join(keys, name))
        os.chmod(os.path.join(keys, name), 0o600)
    server, authkey = lab.start_server(ns_s, "--authorized-clients", keys, "--client-route", f"office={lan}",
                                       label="server-routes")
    check(lan in lab.routes(ns_s, lan), f"the server has no route for {lan}: {lab.routes(ns_s, lan)!r}")
    client, _ = lab.start_client(ns_c, authkey, "--client-key", paths["office"], "--gateway", "--no-gateway-nat",
                                 label="client-routed")
    server.wait_for(rf"client key 'office' routes {re.escape(lan)} through its tunnel", timeout=5)
    srv_udp, lan_udp = udp_pair(lab, ns_s, 5003, ns_l, host_ip, 41000)
    lan_udp.sendto(b"routed, not NATed", (SERVER_TUN_IP, 5003))
    data, src = srv_udp.recvfrom(2048)
    check(data == b"routed, not NATed" and src == (host_ip, 41000),
          f"the LAN's UDP arrived as {data!r} from {src}; want its own address {host_ip}:41000")
    _, rx, _, out = lab.ping(ns_s, host_ip, count=5)
    check(rx == 5, f"server -> LAN host {host_ip} through the client: {rx}/5\n{out}")
    checks.append(f"no NAT: the server routes {lan} to the client holding key 'office'; the LAN host's UDP "
                  f"arrived from {src[0]}:{src[1]} (its own address), and the server pinged the LAN host 5/5")

    # A second, live run of the key (another machine holding the same key) gets a session
    # and an address of its own, but not the office's prefix while the first run is heard.
    ns_x = lab.netns("x")
    _, _, gw_x, _ = lab.veth(ns_s, ns_x, subnet=134)
    server_ip = "10.201.131.1"
    run(tglib.ns_cmd(ns_x, ["ip", "route", "add", f"{server_ip}/32", "via", gw_x]))
    mark = server.stderr_size()
    twin, hs = lab.start_client(ns_x, authkey, "--client-key", paths["office"], label="client-twin")
    time.sleep(5)  # more than 3 probe intervals (1 s) with both runs alive
    moved = re.search(r"client key 'office': its networks (go|move)", server.stderr()[mark:])
    check(moved is None, f"the prefix moved to a second live run of the key: {moved and moved.group(0)}")
    _, rx, _, out = lab.ping(ns_s, host_ip, count=5)
    check(rx == 5, f"server -> LAN host {host_ip} with a second live run of the key: {rx}/5\n{out}")
    checks.append(f"a second live run of key 'office' (tunnel address {hs.group(4)}) left {lan} with the first run for 5 s: "
                  "the server still pinged the LAN host 5/5 through it")
    check(twin.stop(signal.SIGTERM)[0] == 0, "client-twin did not exit 0")

    # The office's client dies without a word (SIGKILL: no Close) and starts again, a new
    # run of the same key: the prefix moves to it once its session is confirmed and the
    # dead run has been silent for 3 probe intervals.
    client.send_signal(signal.SIGKILL)
    client.wait_exit(timeout=5)
    client, _ = lab.start_client(ns_c, authkey, "--client-key", paths["office"], "--gateway", "--no-gateway-nat",
                                 label="client-routed-again")
    server.wait_for(r"client key 'office': its networks move from client [0-9a-f]+, silent for 3 probe intervals, "
                    r"to the newly confirmed", timeout=10)
    _, rx, _, out = lab.ping(ns_s, host_ip, count=5)
    check(rx == 5, f"server -> LAN host {host_ip} through the restarted client: {rx}/5\n{out}")
    checks.append(f"the office's client killed and restarted: {lan} moved to the new run once it was confirmed "
                  "and the dead run silent, and the server pinged the LAN host 5/5 through it")
    check(client.stop(signal.SIGTERM)[0] == 0, "client-routed-again did not exit 0")

    # Another key may not send from the office's prefix.
    before = server.dump_counters()
    other, _ = lab.start_client(ns_c, authkey, "--client-key", paths["other"], "--gateway", "--no-gateway-nat",
                                label="client-other")
    lan_udp.sendto(b"not yours", (SERVER_TUN_IP, 5003))
    after = server.counters_until(lambda c: c["drop_bad_source"] > before["drop_bad_source"])
    check(after["drop_bad_source"] > before["drop_bad_source"],
          "a client whose key does not own the prefix sent from it and the server did not drop it")
    try:
        stray = srv_udp.recv(2048)
        raise tglib.TestFailure(f"the server delivered {stray!r} from a client that does not own {lan}")
    except socket.timeout:
        pass
    checks.append(f"key 'other' sending from {lan}: dropped by the server (drop_bad_source), nothing delivered")
    for p in (other, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    lab.wait_gone(ns_s, "server-routes", prefixes=(lan,))


def body(lab, checks):
    ns_s, ns_c, ns_l, lan, host_ip = lan_network(lab)
    server, authkey = nat_phase(lab, checks, ns_s, ns_c, ns_l, host_ip)
    site_phase(lab, checks, ns_s, ns_c, ns_l, lan, server, authkey)
    routed_phase(lab, checks, ns_s, ns_c, ns_l, lan, host_ip)


if __name__ == "__main__":
    tglib.main("gateway", body, "--gateway: a LAN bonded through the client, NATed in the kernel")
