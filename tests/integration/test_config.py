#!/usr/bin/python3
"""Config files end to end: `triglav config` writes complete files that never overwrite;
a server and a client run from config files (two listen ports, the client on the
second), flags override the file, max_connections refuses a second client, and SIGHUP
changes the strategy while a ping runs without losing a packet (a broken edit keeps the
running settings).

usage: test_config.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys
import threading
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402


def edit(path, pattern, repl):
    with open(path) as f:
        text = f.read()
    new, n = re.subn(pattern, repl, text, flags=re.M)
    check(n == 1, f"{path}: '{pattern}' matched {n} times")
    with open(path, "w") as f:
        f.write(new)


def body(lab, checks):
    ns_s, ns_c, ns_d = lab.netns("s"), lab.netns("c"), lab.netns("d")
    _, _, ip_s, _ = lab.veth(ns_s, ns_c, subnet=51)
    _, _, ip_s2, _ = lab.veth(ns_s, ns_d, subnet=52)

    # Generated files: complete, and never overwritten.
    srv_cfg = os.path.join(lab.tmp, "server.toml")
    cli_cfg = os.path.join(lab.tmp, "client.toml")
    run([lab.binary, "config", "--server", "--output", srv_cfg])
    run([lab.binary, "config", "--client", "--output", cli_cfg])
    r = run([lab.binary, "config", "--client", "--output", cli_cfg], check=False)
    check(r.returncode == 1 and "refusing to overwrite" in r.stderr, f"overwrite: {r.returncode} {r.stderr}")
    checks.append("triglav config --server/--client wrote complete files and refused to overwrite one")

    key = os.path.join(lab.tmp, "server.key")
    authkey = run([lab.binary, "keygen", "--output", key, "--address", f"{ip_s}:7443"]).stdout.strip()
    edit(srv_cfg, r'^key_file = .*$', f'key_file = "{key}"')
    edit(srv_cfg, r'^listen = \[.*$', 'listen = ["0.0.0.0:7443", "0.0.0.0:7444"]')
    edit(srv_cfg, r'^max_connections = .*$', 'max_connections = 1')
    server = lab.start("server", [lab.binary, "server", "--config", srv_cfg], ns_s)
    server.wait_for(r"server listening on 0\.0\.0\.0:7443, 0\.0\.0\.0:7444,", timeout=10)

    edit(cli_cfg, r'^auth_key = .*$', f'auth_key = "{authkey}"')
    edit(cli_cfg, r'^endpoint = .*$', f'endpoint = "{ip_s}:7444"')
    edit(cli_cfg, r'^mtu = .*$', 'mtu = 1300')
    edit(cli_cfg, r'^strategy = .*$', 'strategy = "lowest_latency"')
    client = lab.start("client", [lab.binary, "tun", "--config", cli_cfg, "--mtu", "1280"], ns_c)
    client.wait_for(rf"handshake complete with {re.escape(ip_s)}:7444 ", timeout=10)
    mtu = run(tglib.ns_cmd(ns_c, ["cat", "/sys/class/net/tg0/mtu"])).stdout.strip()
    check(mtu == "1280", f"tg0 mtu {mtu}: the --mtu flag should override the file's 1300")
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5)
    check(rx == 5, f"ping through the config-made tunnel: {rx}/5\n{out}")
    checks.append("server and client from config files: the client reached the second listen port, "
                  "--mtu 1280 overrode the file's 1300, ping 5/5")

    # max_connections = 1: a second client (another address) is refused.
    other = lab.start("client2", [lab.binary, "tun", authkey, "--endpoint", f"{ip_s2}:7443", "--ipv4",
                                  "10.0.85.3/24", "--handshake-timeout", "2"], ns_d)
    rc = other.wait_exit(timeout=8)
    check(rc == 1 and "the server is full" in other.stderr(), f"second client: rc {rc}\n{other.describe()}")
    server.wait_for(r"refused: 1 clients connected \(max_connections\)", timeout=2)
    checks.append("max_connections = 1: the second client was refused and said 'the server is full'")

    # SIGHUP mid-ping: the strategy changes, no packet is lost.
    result = {}

    def pinger():
        result["ping"] = lab.ping(ns_c, SERVER_TUN_IP, count=60, interval=0.05)
    t = threading.Thread(target=pinger)
    t.start()
    time.sleep(1.0)
    edit(cli_cfg, r'^strategy = .*$', 'strategy = "redundant"')
    client.send_signal(signal.SIGHUP)
    client.wait_for(r"SIGHUP: reloaded; strategy redundant", timeout=3)
    t.join(timeout=20)
    _, rx, _, out = result["ping"]
    check(rx == 60, f"ping across the reload: {rx}/60\n{out}")
    checks.append("SIGHUP switched the client to redundant while a 60-packet ping ran: 60/60 answered")

    size = client.stderr_size()
    edit(cli_cfg, r'^strategy = .*$', 'strategy = "nonsense"')
    client.send_signal(signal.SIGHUP)
    client.wait_for(r"SIGHUP: config .* strategy: expected one of .*; keeping the running settings",
                    timeout=3, after=size)
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5)
    check(client.poll() is None and rx == 5, f"after a broken reload: alive {client.poll() is None}, ping {rx}/5")
    checks.append("a broken edit on SIGHUP was reported with its line and key; the client kept running")

    # Metrics switched on and off again by SIGHUP.
    edit(cli_cfg, r'^strategy = .*$', 'strategy = "redundant"')
    edit(cli_cfg, r'^enabled = .*$', 'enabled = true')
    edit(cli_cfg, r'^listen = "127.0.0.1:9090"$', 'listen = "127.0.0.1:9095"')
    size = client.stderr_size()
    client.send_signal(signal.SIGHUP)
    client.wait_for(r"metrics at http://127\.0\.0\.1:9095/metrics", timeout=3, after=size)
    r = run(tglib.ns_cmd(ns_c, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9095/metrics"]), check=False)
    check(r.returncode == 0 and "triglav_uplink_health" in r.stdout, f"metrics after SIGHUP: {r.returncode} {r.stderr}")
    edit(cli_cfg, r'^enabled = .*$', 'enabled = false')
    size = client.stderr_size()
    client.send_signal(signal.SIGHUP)
    client.wait_for(r"metrics off", timeout=3, after=size)
    r = run(tglib.ns_cmd(ns_c, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9095/metrics"]), check=False)
    check(r.returncode != 0, "metrics still served after SIGHUP turned them off")
    checks.append("SIGHUP turned metrics on (curl /metrics answered) and off again")

    server.send_signal(signal.SIGHUP)
    server.wait_for(r"SIGHUP: reloaded; strategy adaptive", timeout=3)
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    checks.append("the server reloads on SIGHUP too; both exited 0")


if __name__ == "__main__":
    tglib.main("config", body, "config files, flag overrides, max_connections, SIGHUP reload")
