#!/usr/bin/python3
"""triglav diagnose names what is wrong: strict rp_filter on an uplink (a warning), no
/dev/net/tun and an unknown interface (failures, exit 1); with --connectivity it tells a
server that answers with the right key from one that holds another key and from one that
does not answer at all, and it finds the path MTU to the server with padded probes (a
hop that silently drops big packets is named, with the --mtu that fits).

usage: test_diagnose.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import check, run  # noqa: E402

NO_TUN = ["unshare", "-m", "sh", "-c", 'mount -t tmpfs none /dev/net && exec "$0" "$@"']


def diagnose(lab, ns, *args, wrap=()):
    return run(tglib.ns_cmd(ns, [*wrap, lab.binary, "diagnose", *args]), check=False, timeout=30)


def body(lab, checks):
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    s_if, c_if, ip_s, _ = lab.veth(ns_s, ns_c, subnet=91)
    run(tglib.ns_cmd(ns_c, ["sysctl", "-qw", f"net.ipv4.conf.{c_if}.rp_filter=1"]))
    r = diagnose(lab, ns_c, "-i", c_if)
    check(r.returncode == 0 and re.search(rf"^ok\s+tun\s", r.stdout, re.M) and
          re.search(rf"^warn\s+uplink {c_if}\s+rp_filter is strict", r.stdout, re.M) and
          f"net.ipv4.conf.{c_if}.rp_filter=2" in r.stdout, f"rp_filter: exit {r.returncode}\n{r.stdout}{r.stderr}")
    checks.append("strict rp_filter on the uplink: a warning with the sysctl that fixes it; exit 0")

    r = diagnose(lab, ns_c, "-i", c_if, wrap=NO_TUN)
    check(r.returncode == 1 and re.search(r"^FAIL\s+tun\s+/dev/net/tun does not exist", r.stdout, re.M) and
          "modprobe tun" in r.stdout, f"no TUN: exit {r.returncode}\n{r.stdout}{r.stderr}")
    r = diagnose(lab, ns_c, "-i", "nosuch0")
    check(r.returncode == 1 and re.search(r"^FAIL\s+uplink nosuch0\s+no such interface", r.stdout, re.M),
          f"unknown interface: exit {r.returncode}\n{r.stdout}")
    checks.append("no /dev/net/tun and an unknown uplink: FAIL lines with their fixes, exit 1")

    server, authkey = lab.start_server(ns_s)
    r = diagnose(lab, ns_c, "-i", c_if, "--connectivity", authkey)
    check(r.returncode == 0 and re.search(rf"^ok\s+server {re.escape(ip_s)}:7443 via {c_if}\s+answers in [\d.]+ ms; "
                                          r"the key is right", r.stdout, re.M), f"good key:\n{r.stdout}")
    check(re.search(rf"^ok\s+server {re.escape(ip_s)}:7443 via {c_if}\s+path MTU 1500 \(UDP payloads of 1472 bytes "
                    r"arrive\): carries tunnel MTU 1420$", r.stdout, re.M), f"path MTU over a 1500-byte link:\n{r.stdout}")
    # The server's end of the link now takes only 1300-byte packets (and a few bytes of
    # slack): bigger ones vanish on the way, with no ICMP to say so.
    run(["ip", "-n", ns_s, "link", "set", s_if, "mtu", "1300"])
    r = diagnose(lab, ns_c, "-i", c_if, "--connectivity", authkey)
    m = re.search(rf"^warn\s+server {re.escape(ip_s)}:7443 via {c_if}\s+path MTU (\d+) \(UDP payloads of (\d+) bytes "
                  r"arrive\): tunnel MTU 1420 needs 1460, so full-size tunnel packets are lost on the way\n"
                  r"\s+fix: --mtu (\d+) ", r.stdout, re.M)
    check(r.returncode == 0 and m and 1300 <= int(m.group(1)) <= 1304 and int(m.group(3)) == int(m.group(2)) - 40,
          f"path MTU behind a 1300-byte hop:\n{r.stdout}")
    run(["ip", "-n", ns_s, "link", "set", s_if, "mtu", "1500"])
    checks.append(f"path MTU: 1500 over the plain link; {m.group(1)} behind the server's 1300-byte end, with the "
                  f"fix --mtu {m.group(3)}")
    other = run([lab.binary, "keygen", "--output", os.path.join(lab.tmp, "other.key"), "--address",
                 f"{ip_s}:7443"]).stdout.strip()
    # Without the AuthKey: the running client's (its control socket), or a config file's.
    sock = os.path.join(lab.tmp, "client.sock")
    client, _ = lab.start_client(ns_c, authkey, "--control-socket", sock)
    r = diagnose(lab, ns_c, "--full", "--connectivity", "-i", c_if, "--socket", sock)
    check(re.search(r"^ok\s+connectivity\s+AuthKey of the running client", r.stdout, re.M) and
          re.search(rf"^ok\s+server {re.escape(ip_s)}:7443 via {c_if}\s+answers in [\d.]+ ms; the key is right",
                    r.stdout, re.M), f"--full --connectivity beside a running client:\n{r.stdout}{r.stderr}")
    check(client.stop(signal.SIGTERM)[0] == 0, "client did not exit 0")
    cfg = os.path.join(lab.tmp, "client.toml")
    with open(cfg, "w") as f:
        f.write(f'[client]\nauth_key = "{authkey}"\n')
    r = diagnose(lab, ns_c, "--connectivity", "-i", c_if, "--config", cfg)
    check(r.returncode == 0 and re.search(rf"^ok\s+connectivity\s+AuthKey from {re.escape(cfg)}", r.stdout, re.M) and
          "the key is right" in r.stdout, f"--connectivity --config:\n{r.stdout}{r.stderr}")
    r = diagnose(lab, ns_c, "--connectivity", "-i", c_if, "--socket", sock)
    check(r.returncode == 1 and re.search(r"^FAIL\s+connectivity\s+no AuthKey: cannot connect", r.stdout, re.M),
          f"--connectivity without a key or a client:\n{r.stdout}{r.stderr}")
    checks.append("--full --connectivity without a key: the running client's AuthKey, or --config's; neither: "
                  "a FAIL saying how to give one")
    r = diagnose(lab, ns_c, "-i", c_if, "--connectivity", other)
    check(r.returncode == 1 and "holds another key" in r.stdout, f"wrong key:\n{r.stdout}")
    check(server.stop(signal.SIGTERM)[0] == 0, "server did not exit 0")
    r = diagnose(lab, ns_c, "-i", c_if, "--connectivity", authkey)
    check(r.returncode == 1 and "no answer within 2 s" in r.stdout, f"server gone:\n{r.stdout}")
    checks.append("--connectivity: the right key answered, a wrong key is named as such, a stopped server "
                  "does not answer")
    # A client told the server's address with --endpoint (its AuthKey names one nobody
    # can reach): diagnose beside it tries the address the client uses.
    second, far_key = lab.triglav_server(ns_s, "--address", "192.0.2.1:7443", label="server far",
                                         listen="0.0.0.0:7443")
    client, _ = lab.start_client(ns_c, far_key, "--endpoint", f"{ip_s}:7443", "--control-socket", sock)
    r = diagnose(lab, ns_c, "--connectivity", "-i", c_if, "--socket", sock)
    check(r.returncode == 0 and re.search(rf"^ok\s+server {re.escape(ip_s)}:7443 via {c_if}\s+answers in [\d.]+ ms; "
                                          r"the key is right", r.stdout, re.M) and "192.0.2.1" not in r.stdout,
          f"beside a client with --endpoint:\n{r.stdout}{r.stderr}")
    for p in (client, second):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")
    checks.append("beside a client given the server with --endpoint (its AuthKey names an address nobody "
                  "reaches): diagnose tries the client's address, and the key is right")


if __name__ == "__main__":
    tglib.main("diagnose", body, "triglav diagnose names the problem and its fix")
