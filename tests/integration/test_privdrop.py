#!/usr/bin/python3
"""--user: server and client drop root after set-up and keep working; they exit cleanly
and undo everything as that user; mistakes are refused before anything is set up.

Both run as `nobody` with only CAP_NET_ADMIN and CAP_NET_RAW (effective, permitted and
bounding sets, read from /proc/PID/status); a ping crosses the tunnel both ways; the
control socket answers; the client's --dns resolver file comes back on exit; the TUN,
the routes and the control sockets are gone after SIGTERM. A user that does not exist,
is a one-line error with nothing left behind. What the user may not remove (control
sockets, a pid file in a root-only directory, the resolver copy) a root helper removes
once the process has ended; /run/triglav stays root's.

usage: test_privdrop.py /path/to/triglav; root; exit 0/1/77
"""
import os
import pwd
import shutil
import signal
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tglib  # noqa: E402
from tglib import CLIENT_TUN_IP, SERVER_TUN_IP, check, run  # noqa: E402

USER = "nobody"
KEEP = (1 << 12) | (1 << 13)  # CAP_NET_ADMIN, CAP_NET_RAW
ORIGINAL = "nameserver 192.0.2.53\n"


def status_of(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def body(lab, checks):
    pw = pwd.getpwnam(USER)  # main() checks that it exists
    ns_s, ns_c = lab.netns("s"), lab.netns("c")
    netns_dir = f"/etc/netns/{ns_c}"
    os.makedirs(netns_dir, exist_ok=True)
    run_dir = "/run/triglav"
    owner = os.stat(run_dir).st_uid if os.path.isdir(run_dir) else None
    try:
        with open(f"{netns_dir}/resolv.conf", "w") as f:
            f.write(ORIGINAL)
        lab.veth(ns_s, ns_c, subnet=73)

        # Mistakes first: refused before any set-up.
        bad = lab.start("bad-user", [lab.binary, "server", "--generate-key", "--user", "no-such-user-tg"], ns_s)
        rc = bad.wait_exit(timeout=10)
        check(rc == 1 and "--user no-such-user-tg: no such user" in bad.stderr(),
              f"unknown user: exit {rc}\n{bad.describe()}")
        lab.wait_gone(ns_s, "server with an unknown user")
        checks.append("an unknown user: exit 1 with the reason before anything is set up, no TUN left")

        locked = tempfile.mkdtemp(prefix="tgpriv-")  # root's, 0700: the user cannot remove files here
        pid_file = os.path.join(locked, "server.pid")
        # --tcp-fallback: the TCP relay's thread, too, must start after the drop.
        server, authkey = lab.start_server(ns_s, "--user", USER, "--pid-file", pid_file, "--tcp-fallback")
        check(os.path.exists(pid_file), "no pid file while the server runs")
        client, _ = lab.start_client(ns_c, authkey, "--user", USER, "--dns", SERVER_TUN_IP, "--tcp-fallback")
        for p in (server, client):
            p.wait_for(rf"running as {USER} \(uid {pw.pw_uid}", timeout=5)
            st = status_of(p.pid)
            uids, gids = {int(x) for x in st["Uid"]}, {int(x) for x in st["Gid"]}
            caps = {k: int(st[k][0], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapInh")}
            check(uids == {pw.pw_uid} and gids == {pw.pw_gid}, f"{p.label}: Uid {st['Uid']} Gid {st['Gid']}")
            check(caps["CapEff"] == KEEP and caps["CapPrm"] == KEEP and caps["CapBnd"] == KEEP
                  and caps["CapInh"] == 0, f"{p.label}: capabilities {caps}")
            check(st["NoNewPrivs"] == ["1"], f"{p.label}: NoNewPrivs {st['NoNewPrivs']}")
            names = []
            for task in os.listdir(f"/proc/{p.pid}/task"):  # every thread, workers and relay included
                t = status_of(f"{p.pid}/task/{task}")
                names.append(t["Name"][0] if t.get("Name") else "?")
                tcaps = {k: int(t[k][0], 16) for k in ("CapEff", "CapPrm", "CapBnd", "CapInh")}
                check(tcaps["CapEff"] == KEEP and tcaps["CapPrm"] == KEEP and tcaps["CapBnd"] == KEEP
                      and tcaps["CapInh"] == 0 and {int(x) for x in t["Uid"]} == {pw.pw_uid}
                      and t["NoNewPrivs"] == ["1"],
                      f"{p.label} thread {task} ({names[-1]}): Uid {t['Uid']} caps {tcaps} NoNewPrivs {t['NoNewPrivs']}")
            check("triglav-tcp" in names, f"{p.label}: no TCP relay thread among {names}")
        checks.append(f"server and client run as {USER} (uid {pw.pw_uid}) in every thread, the TCP relay's "
                      "included, with only CAP_NET_ADMIN and CAP_NET_RAW (effective, permitted, bounding) "
                      "and no new privileges")

        tx, rx, _, out = lab.ping(ns_c, SERVER_TUN_IP, count=10)
        check(rx == tx == 10, f"ping client -> server {rx}/{tx}\n{out}")
        tx, rx, _, out = lab.ping(ns_s, CLIENT_TUN_IP, count=10)
        check(rx == tx == 10, f"ping server -> client {rx}/{tx}\n{out}")
        r = run(tglib.ns_cmd(ns_c, [lab.binary, "status", "--json", "--socket", f"{run_dir}/client-tg0.sock"]),
                check=False)
        check(r.returncode == 0 and '"state"' in r.stdout, f"status over the control socket: {r.stdout}{r.stderr}")
        resolv = run(tglib.ns_cmd(ns_c, ["cat", "/etc/resolv.conf"])).stdout
        check(f"nameserver {SERVER_TUN_IP}" in resolv, f"--dns not in place: {resolv}")
        checks.append("ping both ways through the tunnel; status answers on the control socket; --dns in place")

        for p in (client, server):
            rc, _ = p.stop(signal.SIGTERM, timeout=5)
            check(rc == 0, f"{p.label} exited {rc} after SIGTERM\n{p.describe()}")
        lab.wait_gone(ns_c, "client")
        lab.wait_gone(ns_s, "server")
        resolv = run(tglib.ns_cmd(ns_c, ["cat", "/etc/resolv.conf"])).stdout
        check(resolv == ORIGINAL, f"resolv.conf not restored by the unprivileged client:\n{resolv}")
        # The root helper removes what the user may not, right after the process ended.
        left = []
        for _ in range(200):  # bounded: 2 s
            left = [f for f in (f"{run_dir}/client-tg0.sock", f"{run_dir}/server-tg0.sock", pid_file)
                    if os.path.exists(f)]
            left += [n for n in os.listdir(run_dir) if n.startswith("resolv-")]
            if not left:
                break
            time.sleep(0.01)
        check(not left, f"left behind: {left}")
        check(os.stat(run_dir).st_uid == 0, f"{run_dir} no longer belongs to root")
        shutil.rmtree(locked, ignore_errors=True)
        checks.append("SIGTERM: both exited 0 as the user; TUNs gone, resolv.conf restored byte for byte; "
                      f"the root helper removed the control sockets, the resolver copy and a pid file in a "
                      f"root-only directory; {run_dir} stays root's")
    finally:
        shutil.rmtree(netns_dir, ignore_errors=True)
        if os.path.isdir(run_dir) and owner is not None and os.stat(run_dir).st_uid != owner:
            os.chown(run_dir, owner, 0)


if __name__ == "__main__":
    try:
        pwd.getpwnam(USER)
    except KeyError:
        print(f"SKIP: privdrop needs a user named {USER}", flush=True)
        sys.exit(tglib.EXIT_SKIP)
    tglib.main("privdrop", body, "--user: root dropped after set-up, everything still works and is undone")
