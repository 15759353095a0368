#!/usr/bin/python3
"""The design README's config files, as a new user copies them (only the key, its path
and the client's address changed), and `triglav check`:

- The server example (both listen forms, tcp_fallback, the five [transport] keys,
  metrics) and the TUN client example (auto_discover over two uplinks, full_tunnel,
  exclude_routes, dns_servers, the [nat] keys, nat_penalty_weight) pass
  `triglav check` and `--check`, start in namespaces and carry a ping over both uplinks.
- The client example as written asks for 10.0.85.1, the server's own address: it stops
  with an error that says so and what to do instead.
- `triglav check` on a file with five mistakes prints five errors, in file order, with
  their lines, and exits 1.

The client namespace gets its own resolver file (/etc/netns/NS/resolv.conf, which
`ip netns exec` mounts over /etc/resolv.conf), so dns_servers touches only that.

usage: test_readme.py [/path/to/triglav]; root; exit 0 pass, 1 fail, 77 skip
"""
import os
import re
import shutil
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402

SERVER = """\
[server]
listen = ["0.0.0.0:7443", "[::]:7443"]
key_file = "{key}"
max_connections = 10000
idle_timeout = "5m"
tcp_fallback = true

[transport]
send_buffer_size = 2097152  # 2 MB
recv_buffer_size = 2097152
connect_timeout = "10s"
tcp_nodelay = true
tcp_keepalive = "30s"

[metrics]
enabled = true
listen = "127.0.0.1:9090"
"""

CLIENT = """\
[client]
auth_key = "{authkey}"
auto_discover = true

[tun]
name = "tg0"
ipv4_addr = "{addr}"
ipv4_netmask = 24
mtu = 1420

[routing]
full_tunnel = true
exclude_routes = ["192.168.1.0/24"]  # Local network bypass
dns_servers = ["1.1.1.1", "8.8.8.8"]

[nat]
tunnel_ipv4 = "{addr}"
udp_timeout = "3m"
tcp_timeout = "2h"
port_range_start = 32768
port_range_end = 61000

[multipath]
max_uplinks = 16
retry_delay = "100ms"
max_retries = 3

[multipath.scheduler]
strategy = "adaptive"
rtt_weight = 0.35
loss_weight = 0.35
bandwidth_weight = 0.2
nat_penalty_weight = 0.1
"""

# Five mistakes, on lines 3, 6, 9, 12 and 14; the table reads keys in name order, the
# report must not.
FIVE = """\
[client]
auth_key = "{authkey}"
uplinks = ["eth0", "a/b"]
handshake_timeout = "2s"
tcp_fallback = true
tcp_fallback_after = "5s"

[routing]
exclude_routes = ["10.1.0.0/16"]

[nat]
port_range_start = 60000
port_range_end = 40000
speed = 3
"""


def write(lab, name, text):
    path = os.path.join(lab.tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    _, _, ip_a, _ = lab.veth(ns_s, ns_c, subnet=71)
    lab.veth(ns_s, ns_c, subnet=72)

    key = os.path.join(lab.tmp, "server.key")
    authkey = run([lab.binary, "keygen", "--output", key, "--address", f"{ip_a}:7443"]).stdout.strip()
    srv_cfg = write(lab, "server.toml", SERVER.format(key=key))
    own_cfg = write(lab, "client-own.toml", CLIENT.format(authkey=authkey, addr="10.0.85.1"))
    cli_cfg = write(lab, "client.toml", CLIENT.format(authkey=authkey, addr="10.0.85.7"))

    for cfg, role in ((srv_cfg, "server"), (cli_cfg, "client")):
        r = run([lab.binary, "check", "--config", cfg], check=False)
        check(r.returncode == 0 and f"no mistakes found (a {role} config)" in r.stdout,
              f"triglav check {role}: rc {r.returncode}\n{r.stdout}{r.stderr}")
        cmd = "server" if role == "server" else "tun"
        r = run([lab.binary, cmd, "--config", cfg, "--check"], check=False)
        check(r.returncode == 0 and "no mistakes found" in r.stdout, f"{cmd} --check: rc {r.returncode}\n{r.stderr}")
    checks.append("the README's server and TUN client files pass `triglav check` and `--check`")

    netns_dir = f"/etc/netns/{ns_c}"
    os.makedirs(netns_dir, exist_ok=True)
    try:
        with open(f"{netns_dir}/resolv.conf", "w") as f:
            f.write("nameserver 192.0.2.53\n")
        server = lab.start("server", [lab.binary, "server", "--config", srv_cfg], ns_s)
        server.wait_for(r"server listening on 0\.0\.0\.0:7443, \[::\]:7443", timeout=10)

        own = lab.start("client own address", [lab.binary, "tun", "--config", own_cfg], ns_c)
        rc = own.wait_exit(timeout=20)
        check(rc == 1 and "10.0.85.1 is the server's own" in own.stderr(),
              f"the client asking for the server's address: rc {rc}\n{own.describe()}")
        checks.append("the README client as written (10.0.85.1, the server's own address) stops with an error "
                      "that says so and what to use instead")

        client = lab.start("client", [lab.binary, "tun", "--config", cli_cfg], ns_c)
        client.wait_for(r"handshake complete .* on uplink 0 ", timeout=15)
        client.wait_for(r"handshake complete .* on uplink 1 ", timeout=15)
        _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10)
        check(rx >= 9, f"ping through the README-configured tunnel: {rx} of 10\n{out}")
        resolv = run(tglib.ns_cmd(ns_c, ["cat", "/etc/resolv.conf"])).stdout
        check("nameserver 1.1.1.1" in resolv, f"dns_servers not in the namespace's resolver file:\n{resolv}")
        checks.append(f"both README files started: the client found both uplinks (auto_discover), ping {rx}/10 "
                      "through the full tunnel, its resolver file names 1.1.1.1")
        for p in (client, server):
            rc, _ = p.stop(signal.SIGTERM, timeout=5)
            check(rc == 0, f"{p.label} exited {rc} after SIGTERM\n{p.describe()}")
    finally:
        shutil.rmtree(netns_dir, ignore_errors=True)

    five = write(lab, "five.toml", FIVE.format(authkey=authkey))
    r = run([lab.binary, "check", "--config", five], check=False)
    lines = [int(m) for m in re.findall(r"^triglav: error: config \S+ line (\d+): ", r.stderr, re.M)]
    check(r.returncode == 1 and lines == [3, 6, 9, 12, 14],
          f"triglav check on five mistakes: rc {r.returncode}, lines {lines}\n{r.stderr}")
    checks.append("triglav check on a file with five mistakes: five errors, lines 3, 6, 9, 12, 14, exit 1")


if __name__ == "__main__":
    tglib.main("readme", body, "the design README's config files start and carry traffic; triglav check")
