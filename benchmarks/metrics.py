"""Metrics on vs off: throughput of fastasgi serving the raw ASGI plaintext app, with and
without ``--admin-bind`` (counting happens only when an admin listener can read it).

    python -m benchmarks.metrics [--rounds 5] [--duration 5] [--connections 64]

The server runs pinned to one core (``taskset -c 0``), wrk to the other (``taskset -c 1``),
rounds alternating off/on so that drift in the machine hits both alike. Each "on" run is
checked: after the load, the admin listener's ``fastasgi_requests_total`` must count at
least the requests wrk completed (it also counts the warm-up and the ones in flight when wrk
stopped). Prints requests/s and the server's CPU time per request per round, the medians and
the ratio on/off; the target is on/off >= 0.97.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import urllib.request

from benchmarks.access_log import APP, REPO, cpu_seconds, free_port, on_off, stop, wait_until_up, wrk


def requests_counted(admin_port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return sum(
        int(float(value)) for value in re.findall(r"^fastasgi_requests_total\{[^}]*\} (\S+)$", text, re.M)
    )


def measure(metrics: bool, duration: int, connections: int) -> tuple[float, float]:
    port = free_port()
    command = [
        "taskset",
        "-c",
        "0",
        sys.executable,
        "-m",
        "fastasgi",
        APP,
        "--port",
        str(port),
        "--no-access-log",
    ]
    admin_port = 0
    if metrics:
        admin_port = free_port()
        command += ["--admin-bind", f"127.0.0.1:{admin_port}"]
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, proc)
        wrk(port, 1, connections)  # warm-up
        cpu_before = cpu_seconds(proc.pid)
        rate, total = wrk(port, duration, connections)
        cpu_per_request = (cpu_seconds(proc.pid) - cpu_before) / total
        if metrics:
            counted = requests_counted(admin_port)
            if counted < total:
                raise RuntimeError(f"/metrics counted {counted} requests, wrk completed {total}")
    finally:
        stop(proc)
    return rate, cpu_per_request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed")
    on_off(lambda on: measure(on, args.duration, args.connections), args.rounds, "metrics", 0.97)


if __name__ == "__main__":
    main()
