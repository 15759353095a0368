"""The lab: network namespaces, veths, processes in them (triglav among others), traffic
and measurements. One library for the integration tests (tests/integration/tglib.py),
tools/lab.py, tools/bench-e2e, tools/scenario, tools/soak and the bench/ scripts, so
that each starts, waits for, stops and cleans up the same way. Standard library only.

    import lablib
    lab = lablib.Lab(binary)            # cleanup() on every exit path (atexit, signals)
    a, b = lab.netns("tglab-a"), lab.netns("tglab-b")
    lab.veth(a, "va", b, "vb", "10.201.1.1/24", "10.201.1.2/24")
    server, key = lab.triglav_server(b)
    client, _ = lab.triglav_client(a, key)
    lab.iperf3_server(b)
    print(lablib.iperf3(a, "10.0.85.1")["mbit_s"])
"""
from .core import (LabError, delete_namespace, in_netns, kill_group, ns_cmd, reap_namespaces, run,  # noqa: F401
                   tail)
from .proc import Proc  # noqa: F401
from .lab import Lab  # noqa: F401
from .measure import (counter_names, cpu_jiffies, iface_counters, iperf3, parse_counters_line,  # noqa: F401
                      parse_ping, ping)
