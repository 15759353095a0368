#!/usr/bin/python3
"""Client authorisation: `triglav keygen --client` keys, a server with an
authorized_clients directory. The listed client connects and its traffic flows; a
client without a key and one with an unlisted key are refused with a one-line reason;
a key offered to an open server is refused too; removing the key's file ends the
client's session within seconds and its handshakes are then refused; putting it back
lets the client in again without a restart. A list others may read is refused at start.

usage: test_client_auth.py /path/to/triglav; root; exit 0/1/77
"""
import os
import shutil
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import SERVER_TUN_IP, check, run  # noqa: E402


def keygen(lab, path, name):
    out = run([lab.binary, "keygen", "--client", "-o", path, "--name", name]).stdout
    check(f"written to {path}" in out, f"keygen --client said: {out}")
    check(oct(os.stat(path).st_mode & 0o777) == "0o600", f"{path} is not mode 0600")
    with open(path) as f:
        line = f.read().strip()
    check(line.startswith("tgc1_") and line.endswith(" " + name), f"client key file holds: {line[:12]}...")


def refused(lab, ns, authkey, label, extra, reason):
    p = lab.start(label, [lab.binary, "tun", authkey, "--handshake-timeout", "2", *extra], ns)
    rc = p.wait_exit(timeout=10)
    err = p.stderr().strip().splitlines()
    check(rc == 1 and len(err) == 1 and reason in err[0], f"{label}: exit {rc}, expected one line with '{reason}'\n"
          f"{p.describe()}")
    return err[0]


def body(lab, checks):
    tmp = lab.tmp  # removed with the lab
    keys = os.path.join(tmp, "clients.d")
    os.mkdir(keys, 0o700)
    alice, bob = os.path.join(tmp, "alice.key"), os.path.join(tmp, "bob.key")
    keygen(lab, alice, "alice")
    keygen(lab, bob, "bob")
    shutil.copy(alice, os.path.join(keys, "alice"))
    os.chmod(os.path.join(keys, "alice"), 0o600)
    checks.append("keygen --client wrote two mode-0600 key files; alice's is copied into the server's directory")

    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    lab.veth(ns_s, ns_c, subnet=63)
    server, authkey = lab.start_server(ns_s, "--authorized-clients", keys)
    server.wait_for(r"clients need a client key: 1 authorised in ", timeout=5)
    client, _ = lab.start_client(ns_c, authkey, "--client-key", alice, label="alice")
    server.wait_for(r"session up: client 10\.0\.85\.2 .*key alice\)", timeout=5)
    _, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=5)
    check(rx == 5, f"alice's ping: {rx}/5\n{out}")
    checks.append("alice (listed) connected through NKpsk2; the server names her key; 5/5 pings")

    line = refused(lab, ns_c, authkey, "nokey", ["--tun-name", "tg1"], "only admits authorised clients")
    checks.append(f"a client without a key: {line!r}")
    line = refused(lab, ns_c, authkey, "bob", ["--tun-name", "tg1", "--client-key", bob],
                   "does not accept this client key")
    checks.append(f"bob (not listed): {line!r}")

    # Revoking: alice's file goes; her session ends within seconds.
    after_s, after_c = server.stderr_size(), client.stderr_size()
    t0 = time.monotonic()
    os.remove(os.path.join(keys, "alice"))
    server.wait_for(r"client key 'alice' is no longer authorised: closing client 10\.0\.85\.2", timeout=5,
                    after=after_s)
    took = time.monotonic() - t0
    client.wait_for(r"the server closed the session on uplink 0", timeout=5, after=after_c)
    client.wait_for(r"the server refused the handshake: the server does not accept this client key", timeout=5,
                    after=after_c)
    _, rx, _, _ = lab.ping(ns_c, SERVER_TUN_IP, count=3, wait=1)
    check(rx == 0, f"revoked alice still pings: {rx}/3")
    checks.append(f"alice's file removed: the server closed her session {took:.1f} s later; her handshakes are "
                  "refused and no ping passes")

    shutil.copy(alice, os.path.join(keys, "alice"))
    os.chmod(os.path.join(keys, "alice"), 0o600)
    rx, out = lab.ping_after_handshake(client, ns_c, client.stderr_size())
    check(rx == 5, f"alice back: {rx}/5\n{out}")
    checks.append("her file put back: the same client process got in again (5/5 pings), no restart")
    for p in (client, server):
        check(p.stop(signal.SIGTERM)[0] == 0, f"{p.label} did not exit 0")

    # An open server (no list) refuses a client key; a readable list stops the server.
    server, authkey = lab.start_server(ns_s, label="open-server")
    line = refused(lab, ns_c, authkey, "key-to-open", ["--client-key", alice], "does not accept this client key")
    checks.append(f"a client key offered to an open server: {line!r}")
    check(server.stop(signal.SIGTERM)[0] == 0, "open server did not exit 0")
    os.chmod(os.path.join(keys, "alice"), 0o644)
    p = lab.start("server-readable", [lab.binary, "server", "--generate-key", "--authorized-clients", keys], ns_s)
    rc = p.wait_exit(timeout=10)
    err = p.stderr().strip().splitlines()
    check(rc == 1 and len(err) == 1 and "chmod 600" in err[0], f"readable list: exit {rc}\n{p.describe()}")
    checks.append(f"a list others can read: {err[0]!r}")


if __name__ == "__main__":
    tglib.main("clientauth", body, "only listed client keys connect; revoking ends a session within seconds")
