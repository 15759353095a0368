#!/usr/bin/python3
"""--auto-discover: the client uses every interface that is up with an IPv4 address (not
loopback, not its own TUN, not a bridge) as an uplink, picks up an interface created while it runs
within 2 s, and drops one that is deleted, while traffic carries on. With -i as well
(the README's `uplinks` beside `auto_discover = true`), only the named interfaces are
followed: one created later is added, one that was there all along is not.

usage: test_autodiscover.py /path/to/triglav; root; exit 0/1/77
"""
import os
import re
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402


def body(lab, checks):
    ns_s = lab.netns("s")
    ns_c = lab.netns("c")
    _, c_a, _, _ = lab.veth(ns_s, ns_c, subnet=31)
    # A LAN bridge with an address and a port that is up (so it runs): never an uplink.
    bridge = f"br{lab.pid}"[:15]
    run(["ip", "-n", ns_c, "link", "add", bridge, "type", "bridge"])
    run(["ip", "-n", ns_c, "link", "add", f"bp{lab.pid}a"[:15], "type", "veth", "peer", "name", f"bp{lab.pid}b"[:15]])
    run(["ip", "-n", ns_c, "link", "set", f"bp{lab.pid}a"[:15], "master", bridge])
    for dev in (f"bp{lab.pid}a"[:15], f"bp{lab.pid}b"[:15], bridge):
        run(["ip", "-n", ns_c, "link", "set", dev, "up"])
    run(["ip", "-n", ns_c, "addr", "add", "10.77.0.1/24", "dev", bridge])
    server, authkey = lab.start_server(ns_s)
    # -v: the first scan's uplinks are logged at debug level (the handshake line names them)
    client = lab.start("client", [lab.binary, "-v", "tun", authkey, "--auto-discover"], ns_c)
    client.wait_for(rf"uplink 0 \({c_a}\) added", timeout=5)
    client.wait_for(r"handshake complete .* on uplink 0 ", timeout=10)
    log = client.stderr()
    check(not re.search(rf"\((lo|tg0|{bridge})\) added", log), f"loopback, the TUN or the bridge became an uplink:\n{log}")
    checks.append(f"started with one interface: uplink 0 ({c_a}); lo, tg0 and the LAN bridge {bridge} ignored")

    offset = client.stderr_size()
    t0 = time.monotonic()
    _, c_b, _, _ = lab.veth(ns_s, ns_c, subnet=32)
    client.wait_for(rf"uplink 1 \({c_b}\) added", timeout=5, after=offset)
    added = time.monotonic() - t0
    client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10, after=offset)
    up = time.monotonic() - t0
    check(added <= 2.0, f"new interface {c_b} became an uplink after {added:.2f} s (target 2 s)")
    server.wait_for(r"session up: client 10.0.85.2 .*uplink 1,", timeout=5)
    checks.append(f"interface {c_b} created at run time: uplink after {added * 1000:.0f} ms, "
                  f"handshake done after {up * 1000:.0f} ms")

    offset = client.stderr_size()
    run(["ip", "-n", ns_c, "link", "del", c_b])
    client.wait_for(rf"uplink 1 \({c_b}\) removed", timeout=5, after=offset)
    tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10, interval=0.02)
    check(rx == 10, f"ping after the second uplink went away: {rx}/{tx}\n{out}")
    checks.append(f"interface {c_b} deleted: uplink removed, traffic goes on ({rx}/{tx} pings)")

    # Recreated under the same name: a new uplink again.
    offset = client.stderr_size()
    lab.veth(ns_s, ns_c, subnet=33)
    client.wait_for(r"uplink \d+ \(\S+\) added", timeout=5, after=offset)
    client.wait_for(r"handshake complete .* on uplink 1 ", timeout=10, after=offset)
    checks.append("a new interface afterwards is picked up again")
    # By now the bridge has been up and running through several scans.
    link = run(["ip", "-n", ns_c, "link", "show", bridge]).stdout
    check("LOWER_UP" in link, f"the bridge never ran: {link}")
    check(f"({bridge}) added" not in client.stderr(), f"the bridge became an uplink:\n{client.stderr()}")
    rc, _ = client.stop(signal.SIGTERM, timeout=5)
    check(rc == 0, f"client exited {rc}\n{client.describe()}")

    # -i NAME with --auto-discover: that name only, though it does not exist yet.
    named = f"v{lab.pid}{lab._veth_count + 1}"[:12] + "c"  # the client end of the next veth
    client = lab.start("client named", [lab.binary, "tun", authkey, "--auto-discover", "-i", named], ns_c)
    time.sleep(0.3)  # a scan or more with only the unnamed interfaces present
    _, made, _, _ = lab.veth(ns_s, ns_c, subnet=34)
    check(made == named, f"the veth is {made}, the test expected {named}")
    client.wait_for(rf"uplink 0 \({named}\) added", timeout=5)
    client.wait_for(r"handshake complete .* on uplink 0 ", timeout=10)
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5, interval=0.02)
    check(rx == 5, f"ping over the named uplink: {rx}/5\n{out}")
    log = client.stderr()
    others = [m for m in re.findall(r"uplink \d+ \((\S+)\) added", log) if m != named]
    check(not others, f"with -i {named} the client also took {others}:\n{log}")
    checks.append(f"--auto-discover -i {named}: the named interface, created later, became the only uplink")
    for p in (client, server):
        rc, _ = p.stop(signal.SIGTERM, timeout=5)
        check(rc == 0, f"{p.label} exited {rc}\n{p.describe()}")


if __name__ == "__main__":
    tglib.main("autodiscover", body, "uplinks follow the client's interfaces")
