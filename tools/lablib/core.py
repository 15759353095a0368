"""Commands, namespaces and process groups."""
import ctypes
import os
import re
import shlex
import signal
import subprocess
import threading

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class LabError(Exception):
    """Something the lab could not do, or a check that failed; the message says what."""


def run(argv, timeout=20, check=True, input_bytes=None, env=None, cwd=None):
    """Runs a command to completion in its own process group (bounded by timeout).
    Returns a CompletedProcess with text output. On timeout the whole group is killed
    and LabError raised; with check, a non-zero exit raises LabError too."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                         env=env, cwd=cwd)
    try:
        out, err = p.communicate(input=input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(p.pid, signal.SIGKILL)
        out, err = p.communicate(timeout=5)
        raise LabError(f"command timed out after {timeout} s: {shlex.join(argv)}\n"
                       f"  stdout: {out.decode(errors='replace')[-2000:]!r}\n"
                       f"  stderr: {err.decode(errors='replace')[-2000:]!r}")
    res = subprocess.CompletedProcess(argv, p.returncode, out.decode(errors="replace"),
                                      err.decode(errors="replace"))
    if check and res.returncode != 0:
        raise LabError(f"command failed (exit {res.returncode}): {shlex.join(argv)}\n"
                       f"  stdout: {res.stdout[-2000:]!r}\n  stderr: {res.stderr[-2000:]!r}")
    return res


def kill_group(pid, sig):
    """sig to the process group led by pid (or to pid alone if it leads none)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def ns_cmd(ns, argv):
    """argv prefixed to run inside namespace ns (no prefix if ns is None)."""
    return (["ip", "netns", "exec", ns] if ns else []) + list(argv)


def in_netns(ns, fn, timeout=10):
    """Calls fn() on a short-lived thread that has joined namespace ns and returns its
    result. Sockets created by fn stay in ns and can be used from any thread."""
    box = {}

    def target():
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, _CLONE_NEWNET) != 0:
                    e = ctypes.get_errno()
                    raise OSError(e, f"setns({ns}): {os.strerror(e)}")
            finally:
                os.close(fd)
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name=f"netns-{ns}", daemon=True)
    t.start()
    t.join(timeout)
    if t.is_alive():
        raise LabError(f"operation in namespace {ns} did not finish within {timeout} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def delete_namespace(name):
    """Deletes a namespace, ending the processes still in it first (they would keep it
    alive; whoever calls this created it, so they are its own)."""
    try:
        pids = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True,
                              timeout=10).stdout.split()
    except (subprocess.SubprocessError, OSError):
        pids = []
    for p in pids:
        try:
            os.kill(int(p), signal.SIGKILL)
        except (ProcessLookupError, ValueError, PermissionError):
            pass
    try:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)
    except (subprocess.SubprocessError, OSError):
        pass


def reap_namespaces(pattern):
    """Deletes namespaces left by runs that were killed outright: names matching the
    regex `pattern`, whose first group is the pid of the run that made them and is no
    longer a live process."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        m = re.fullmatch(pattern, name)
        if not m:
            continue
        pid = int(m.group(1))
        if pid == os.getpid() or os.path.exists(f"/proc/{pid}"):
            continue
        delete_namespace(name)


def tail(path, lines=25):
    try:
        with open(path, "r", errors="replace") as f:
            data = f.readlines()
    except OSError as e:
        return f"    (cannot read {path}: {e})"
    if not data:
        return "    (empty)"
    return "".join("    " + line if line.endswith("\n") else "    " + line + "\n"
                   for line in data[-lines:]).rstrip("\n")
