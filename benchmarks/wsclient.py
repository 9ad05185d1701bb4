"""The websocket load generator: benchmarks/wsload/wsload.c, compiled on first use.

The binary is cached per source hash under $XDG_CACHE_HOME/fastasgi-bench (or
~/.cache/fastasgi-bench), so editing the C file rebuilds it and nothing is written into the
source tree.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

from benchmarks.wrk import LoadGeneratorMissing

SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsload", "wsload.c")

INSTALL_HINT = (
    "the websocket scenario compiles its C load generator (benchmarks/wsload/wsload.c) and "
    "needs a C compiler: apt-get install gcc (Debian/Ubuntu), xcode-select --install (macOS), "
    "or set CC"
)


def cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastasgi-bench")


def ensure_built(cc: str | None = None) -> str:
    """Path of the compiled wsload, building it if needed; LoadGeneratorMissing if no
    compiler is available."""
    with open(SOURCE, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    target = os.path.join(cache_dir(), f"wsload-{digest}")
    if os.access(target, os.X_OK):
        return target
    compiler = (
        cc or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    )
    if not compiler or not shutil.which(compiler.split()[0]):
        raise LoadGeneratorMissing(INSTALL_HINT)
    os.makedirs(cache_dir(), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir(), prefix=".wsload-")
    os.close(fd)
    try:
        done = subprocess.run(
            [*compiler.split(), "-O2", "-o", tmp, SOURCE, "-lz"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise LoadGeneratorMissing(f"compiling {SOURCE} failed:\n{done.stderr.strip()[-2000:]}")
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)  # atomic: a concurrent run sees the old or the new file
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def command(
    binary: str,
    host: str,
    port: int,
    path: str,
    *,
    connections: int,
    window: int,
    size: int,
    warmup: float,
    duration: float,
    timeout: float = 5.0,
    binary_messages: bool = False,
    deflate: bool = False,
) -> list[str]:
    return [
        binary,
        "--host",
        host,
        "--port",
        str(port),
        "--path",
        path,
        "--conns",
        str(connections),
        "--window",
        str(window),
        "--size",
        str(size),
        "--warmup",
        f"{warmup:g}",
        "--duration",
        f"{duration:g}",
        "--timeout",
        f"{timeout:g}",
        "--binary",
        "1" if binary_messages else "0",
        "--deflate",
        "1" if deflate else "0",
    ]


@dataclass
class WsResult:
    messages: int
    duration_s: float
    rate: float
    latency_ms: dict[str, float]
    errors: int
    first_error: str
    connections_alive: int


def parse(stdout: str) -> WsResult:
    """Read wsload's one JSON line; ValueError if there is none."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            d = json.loads(line)
            return WsResult(
                messages=d["messages"],
                duration_s=d["duration"],
                rate=d["msgs_per_sec"],
                latency_ms={k: d[f"{k}_us"] / 1e3 for k in ("p50", "p90", "p99", "max")},
                errors=d["errors"],
                first_error=d.get("first_error", ""),
                connections_alive=d["connections_alive"],
            )
    raise ValueError(f"wsload printed no result: {stdout.strip()[-300:]!r}")
