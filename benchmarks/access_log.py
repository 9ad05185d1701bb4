"""The access log on vs off: throughput of fastasgi serving the raw ASGI plaintext app.

    python -m benchmarks.access_log [--rounds 3] [--duration 5] [--connections 64]

The server runs pinned to one core (``taskset -c 0``) with its stdout (the access log) going
to a file, as it would to a log file or a container's log pipe; wrk runs pinned to the other
core (``taskset -c 1``). Rounds alternate off/on so that drift in the machine hits both alike.
Each run is checked: the access log file must hold one line per request wrk counted (the
"on" runs) or be empty (the "off" runs). Prints requests/s per round, the medians and the
ratio on/off; the target is on/off >= 0.85. It also prints the server's CPU time per request
(from /proc), which other load on the machine disturbs less than requests/s.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
APP = "benchmarks.apps.raw:plaintext"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("server did not answer")


def wrk(port: int, duration: int, connections: int) -> tuple[float, int]:
    command = [
        "taskset",
        "-c",
        "1",
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{duration}s",
        f"http://127.0.0.1:{port}/",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 30, check=True)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))
    if "Non-2xx" in done.stdout or "Socket errors" in done.stdout:
        raise RuntimeError(f"wrk saw errors:\n{done.stdout}")
    return rate, total


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server we started, by its PID; kill it if it has not exited in 10 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as file:
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(
    access_log: bool, duration: int, connections: int, workdir: str, devnull: bool = False
) -> tuple[float, float]:
    port = free_port()
    log_path = os.devnull if devnull else os.path.join(workdir, f"access-{access_log}-{port}.log")
    command = ["taskset", "-c", "0", sys.executable, "-m", "fastasgi", APP, "--port", str(port)]
    if not access_log:
        command.append("--no-access-log")
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log_path, "w") as log_file:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.DEVNULL)
    try:
        wait_until_up(port, proc)
        wrk(port, 1, connections)  # warm-up
        with open(log_path) as file:
            before = sum(1 for _ in file)
        cpu_before = cpu_seconds(proc.pid)
        rate, total = wrk(port, duration, connections)
        cpu_per_request = (cpu_seconds(proc.pid) - cpu_before) / total
    finally:
        stop(proc)
    if devnull:
        return rate, cpu_per_request
    with open(log_path) as file:
        lines = sum(1 for _ in file) - before
    os.remove(log_path)
    # wrk counts the responses it completed; lines also cover the ones in flight at its end.
    if access_log and not total <= lines <= total + connections:
        raise RuntimeError(f"{lines} access lines for {total} requests")
    if not access_log and lines:
        raise RuntimeError(f"{lines} access lines with --no-access-log")
    return rate, cpu_per_request


def on_off(measure_one, rounds: int, feature: str, target: float) -> None:
    """Measure with ``feature`` off and on, alternating which goes first round by round so
    drift hits both alike; print each round, the medians and the ratio on/off (``target``
    is the least it should be). ``measure_one(on)`` returns (req/s, server CPU s/request)."""
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    for round_number in range(1, rounds + 1):
        for on in (False, True) if round_number % 2 else (True, False):
            rate, cpu_per_request = measure_one(on)
            rates[on].append(rate)
            cpu[on].append(cpu_per_request)
            print(
                f"round {round_number}  {feature} {'on ' if on else 'off'}  {rate:10.0f} req/s"
                f"  {cpu_per_request * 1e6:6.2f} us server CPU per request",
                flush=True,
            )
    off, on_rate = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"median off {off:.0f} req/s, on {on_rate:.0f} req/s, on/off = {on_rate / off:.3f} (target >= {target})"
    )
    # CPU time per request is less disturbed by other load on the machine than req/s.
    cpu_off, cpu_on = statistics.median(cpu[False]), statistics.median(cpu[True])
    print(
        f"median server CPU per request: off {cpu_off * 1e6:.2f} us, on {cpu_on * 1e6:.2f} us;"
        f" throughput ratio it implies (off/on) = {cpu_off / cpu_on:.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--devnull", action="store_true", help="send the access log to /dev/null, not a file")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed")
    with tempfile.TemporaryDirectory() as workdir:
        on_off(
            lambda on: measure(on, args.duration, args.connections, workdir, args.devnull),
            args.rounds,
            "access log",
            0.85,
        )


if __name__ == "__main__":
    main()
