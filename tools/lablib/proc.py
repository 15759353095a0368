"""A long-running process of a lab, its stdout and stderr in files."""
import os
import re
import shlex
import signal
import subprocess
import time

from .core import LabError, kill_group, ns_cmd, tail
from .measure import parse_counters_line


class Proc:
    def __init__(self, lab, label, argv, ns=None, env=None):
        self.lab = lab
        self.label = label
        self.argv = ns_cmd(ns, argv)
        self.ns = ns
        self.out_path = os.path.join(lab.tmp, f"{label}.stdout")
        self.err_path = os.path.join(lab.tmp, f"{label}.stderr")
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        # Own session: a Ctrl-C on the terminal reaches the lab, which then stops these.
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._err, start_new_session=True, env=env)
        self.pid = self.popen.pid
        self.started = time.monotonic()

    def poll(self):
        return self.popen.poll()

    @property
    def returncode(self):
        return self.popen.returncode

    def stdout(self):
        with open(self.out_path, "r", errors="replace") as f:
            return f.read()

    def stderr(self):
        with open(self.err_path, "r", errors="replace") as f:
            return f.read()

    def describe(self, lines=25):
        state = "running" if self.poll() is None else f"exited with {self.returncode}"
        return (f"--- {self.label} ({state}): {shlex.join(self.argv)}\n"
                f"  stdout tail:\n{tail(self.out_path, lines)}\n"
                f"  stderr tail:\n{tail(self.err_path, lines)}")

    def wait_for(self, pattern, timeout=10, stream="stderr", after=0):
        """Waits until a line matching regex pattern appears (in stream, at or after
        character offset `after`). Returns the re.Match. Fails early if the process
        exits without printing it."""
        rx = re.compile(pattern)
        path = self.err_path if stream == "stderr" else self.out_path
        deadline = time.monotonic() + timeout
        while True:
            with open(path, "r", errors="replace") as f:
                text = f.read()[after:]
            text = text[:text.rfind("\n") + 1]  # complete lines only
            for line in text.splitlines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() >= deadline:
                raise LabError(f"{self.label}: no line matching /{pattern}/ on {stream} "
                               f"within {timeout} s\n{self.describe()}")
            if self.poll() is not None:
                # One more read: the line may have been written just before exiting.
                with open(path, "r", errors="replace") as f:
                    text = f.read()[after:]
                for line in text.splitlines():
                    m = rx.search(line)
                    if m:
                        return m
                raise LabError(f"{self.label} exited (code {self.returncode}) before printing "
                               f"a line matching /{pattern}/\n{self.describe()}")
            time.sleep(0.02)

    def stderr_size(self):
        try:
            return os.path.getsize(self.err_path)
        except OSError:
            return 0

    def send_signal(self, sig):
        if self.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def wait_exit(self, timeout=5):
        """Waits (bounded) for the process to exit; returns the exit code or raises."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"{self.label} did not exit within {timeout} s\n{self.describe()}")

    def stop(self, sig=signal.SIGTERM, timeout=5):
        """Sends sig and waits; returns (exit code, seconds taken)."""
        t0 = time.monotonic()
        self.send_signal(sig)
        rc = self.wait_exit(timeout)
        return rc, time.monotonic() - t0

    # triglav's counters: the `counters:` lines it logs (at exit, on SIGUSR1).

    def counters(self):
        """The last `counters:` line of stderr as a dict (None if there is none); every
        counter the binary names must be in it."""
        last = None
        for line in self.stderr().splitlines():
            if "counters:" in line:
                last = line
        return parse_counters_line(last, self.lab.counter_names()) if last else None

    def wait_counters(self, after, timeout=5):
        """After SIGUSR1: waits for a counters line written past offset `after`."""
        self.wait_for(r"counters: ", timeout=timeout, after=after)
        return self.counters()

    def dump_counters(self, timeout=3):
        """SIGUSR1, then the counters line it produces."""
        if self.poll() is not None:
            raise LabError(f"{self.label} is not running\n{self.describe()}")
        after = self.stderr_size()
        self.send_signal(signal.SIGUSR1)
        return self.wait_counters(after, timeout)

    def counters_until(self, pred, timeout=3):
        """Dumps counters (SIGUSR1) until pred(counters) holds or timeout; returns the
        last counters either way (the caller checks)."""
        deadline = time.monotonic() + timeout
        for _ in range(1000):
            c = self.dump_counters()
            if pred(c) or time.monotonic() >= deadline:
                return c
            time.sleep(0.05)
        return c

    def kill(self):
        """Ends the process group (SIGTERM, then SIGKILL) and closes the log files."""
        if self.poll() is None:
            kill_group(self.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=3)
            except subprocess.TimeoutExpired:
                kill_group(self.pid, signal.SIGKILL)
                try:
                    self.popen.wait(timeout=3)
                except subprocess.TimeoutExpired:
                    pass
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass
