"""Instructions per request of fastasgi builds, counted by valgrind's callgrind:
``python -m benchmarks.callgrind --before /tmp/fastasgi-before [--after .]``.

Wall-clock figures on a shared machine move with whatever else runs; the number of
instructions a server executes for the same requests does not (callgrind counts them, it does
not time them). So this is the check that a change to the hot path costs nothing: each build
serves the same app under ``valgrind --tool=callgrind`` twice, once for N1 and once for N2
requests from h2load (one connection, so the same request sequence every time), and the
instructions per request are (I(N2) - I(N1)) / (N2 - N1): start-up, import and shutdown cancel
out. Trees are laid out as for compare_builds (``<tree>/src`` holds fastasgi built in place).

Output: a markdown table, per scenario: instructions per request before and after, and the
ratio after/before.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: name -> (app, h2load arguments besides -n and the URL)
SCENARIOS: dict[str, tuple[str, tuple[str, ...]]] = {
    "plaintext": ("benchmarks.apps.raw:plaintext", ("--h1", "-c", "1", "-m", "1")),
    "pipelined": ("benchmarks.apps.raw:plaintext", ("--h1", "-c", "1", "-m", "16")),
    "plaintext-suspend": ("benchmarks.apps.raw:plaintext_suspend", ("--h1", "-c", "1", "-m", "1")),
    "h2-plaintext-m1": ("benchmarks.apps.raw:plaintext", ("-c", "1", "-m", "1")),
    "h2-plaintext-m16": ("benchmarks.apps.raw:plaintext", ("-c", "1", "-m", "16")),
}

_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.M)


@dataclass
class Count:
    scenario: str
    tree: str
    requests: tuple[int, int]
    instructions: tuple[int, int]

    @property
    def per_request(self) -> float:
        return (self.instructions[1] - self.instructions[0]) / (self.requests[1] - self.requests[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"the server did not listen on {port} within {timeout:.0f} s")


def count(tree: Path, scenario: str, requests: int, workdir: Path, timeout: float) -> int:
    """Instructions the server under callgrind executes to start, serve ``requests`` and stop."""
    app, load = SCENARIOS[scenario]
    port = _free_port()
    out = workdir / f"callgrind.{scenario}.{tree.name}.{requests}.out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tree / "src"), str(REPO)]))
    cmd = [
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
        sys.executable, "-m", "fastasgi", app, "--host", "127.0.0.1", "--port", str(port),
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        _wait_port(port, proc, timeout)
        subprocess.run(
            ["h2load", *load, "-n", str(requests), f"http://127.0.0.1:{port}/"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    match = _TOTALS.search(out.read_bytes())
    if match is None:
        raise RuntimeError(f"no instruction total in {out}")
    return int(match.group(1))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.callgrind", description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="the 'before' tree")
    p.add_argument("--after", default=str(REPO), help="the 'after' tree (default: this repository)")
    p.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    p.add_argument("--requests", type=int, nargs=2, default=(2000, 12000), metavar=("N1", "N2"))
    p.add_argument("--timeout", type=float, default=300.0, help="bound on each step (default: 300 s)")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("h2load") is None:
        print("valgrind and h2load are needed", file=sys.stderr)
        return 2
    trees = {"before": Path(args.before).resolve(), "after": Path(args.after).resolve()}
    rows = []
    with tempfile.TemporaryDirectory(prefix="fastasgi-callgrind-") as tmp:
        for scenario in args.scenario or list(SCENARIOS):
            counts = {}
            for label, tree in trees.items():
                n1, n2 = args.requests
                i1 = count(tree, scenario, n1, Path(tmp), args.timeout)
                i2 = count(tree, scenario, n2, Path(tmp), args.timeout)
                counts[label] = Count(scenario, label, (n1, n2), (i1, i2))
            before, after = counts["before"].per_request, counts["after"].per_request
            rows.append(f"| {scenario} | {before:,.0f} | {after:,.0f} | {after / before:.3f} |")
            print(rows[-1], flush=True)
    print("\n| scenario | instructions/request before | after | after/before |")
    print("|---|---:|---:|---:|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
