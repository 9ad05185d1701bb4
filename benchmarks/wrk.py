"""wrk: finding it, its command line, and reading its output.

``parse()`` reads wrk's own text report (requests/s, latency distribution, socket errors,
non-2xx count) and the two lines benchmarks/lua/bench.lua adds (``BENCH-CHECKS``: every
response checked; ``BENCH-SUMMARY``: the same numbers in microseconds). When both give a
number, the Lua one wins (it is exact); the text alone is enough for everything but the
checks, and a run without the checks line is treated as failed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

LUA_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lua", "bench.lua")

INSTALL_HINT = (
    "wrk is needed to load HTTP servers and was not found.\n"
    "  Debian/Ubuntu: sudo apt-get install wrk\n"
    "  Fedora:        sudo dnf install wrk\n"
    "  macOS:         brew install wrk\n"
    "  from source:   git clone https://github.com/wg/wrk && make -C wrk  (then --wrk PATH)\n"
    "A Python client is not fast enough to measure a fast server, so there is no fallback."
)


class LoadGeneratorMissing(RuntimeError):
    """A load generator the selected scenarios need is not installed."""


def find_generator(name: str, explicit: str | None, hint: str) -> str:
    """The path of load generator ``name`` (or of ``explicit``, a name or a path), or
    LoadGeneratorMissing with the install ``hint``."""
    path = shutil.which(explicit) if explicit else shutil.which(name)
    if explicit and path is None and os.path.isfile(explicit) and os.access(explicit, os.X_OK):
        path = explicit
    if path is None:
        where = f" (looked for {explicit!r})" if explicit else ""
        raise LoadGeneratorMissing(hint.replace("was not found", f"was not found{where}"))
    return path


def find_wrk(explicit: str | None = None) -> str:
    return find_generator("wrk", explicit, INSTALL_HINT)


def generator_version(path: str) -> str:
    """The first line a load generator prints for --version."""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


wrk_version = generator_version


def command(
    wrk: str,
    url: str,
    *,
    threads: int,
    connections: int,
    duration: float,
    method: str,
    path: str,
    body_bytes: int,
    pipeline: int,
    check: str,
    expected: str,
    require_headers: bool,
    timeout: float = 8.0,
) -> list[str]:
    """The wrk argv (without the taskset prefix). ``duration`` is rounded up to whole
    seconds, wrk's resolution."""
    seconds = max(1, int(-(-duration // 1)))
    return [
        wrk,
        f"-t{max(1, min(threads, connections))}",
        f"-c{connections}",
        f"-d{seconds}s",
        f"--timeout={int(timeout)}s",
        "--latency",
        "-s",
        LUA_SCRIPT,
        url,
        "--",
        method,
        path,
        str(body_bytes),
        str(pipeline),
        check,
        expected if expected else "-",
        "hdr" if require_headers else "-",
    ]


@dataclass
class WrkResult:
    requests: int = 0
    duration_s: float = 0.0
    rps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)  # "avg", "max", "p50", "p75", ...
    socket_errors: dict[str, int] = field(default_factory=dict)  # connect, read, write, timeout
    non2xx_3xx: int = 0  # wrk's own count (it only counts statuses above 399)
    checks: dict[str, int] | None = None  # from bench.lua: responses, non2xx, badbody, nohdr
    summary: dict[str, int] | None = None  # from bench.lua, microseconds and counts

    @property
    def responses(self) -> int:
        """Responses bench.lua checked (0 without its checks line)."""
        return (self.checks or {}).get("responses", 0)

    def p(self, name: str) -> float | None:
        return self.latency_ms.get(name)

    def error_count(self, require_headers: bool = False) -> int:
        """Every failed request: socket errors, non-2xx, bad bodies, missing headers."""
        sock = sum(self.socket_errors.values())
        non2xx = self.non2xx_3xx
        bad = 0
        if self.checks is not None:
            non2xx = max(non2xx, self.checks.get("non2xx", 0))
            bad = self.checks.get("badbody", 0)
            if require_headers:
                bad += self.checks.get("nohdr", 0)
        return sock + non2xx + bad

    def error_detail(self, require_headers: bool = False) -> str:
        parts = [f"{k} errors: {v}" for k, v in self.socket_errors.items() if v]
        non2xx = max(self.non2xx_3xx, (self.checks or {}).get("non2xx", 0))
        if non2xx:
            parts.append(f"non-2xx responses: {non2xx}")
        if self.checks:
            if self.checks.get("badbody"):
                parts.append(f"wrong bodies: {self.checks['badbody']}")
            if require_headers and self.checks.get("nohdr"):
                parts.append(f"responses without Server/Date: {self.checks['nohdr']}")
        return ", ".join(parts)


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([0-9.]+)(us|ms|s|m|h)"


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


_SIZE_UNITS = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}


def parse(text: str) -> WrkResult:
    """Read one wrk run's stdout (see the module docstring)."""
    r = WrkResult()
    m = re.search(r"^\s*(\d+) requests in " + _TIME + r", ([0-9.]+)([KMGT]?B) read", text, re.MULTILINE)
    if m:
        r.requests = int(m.group(1))
        r.duration_s = _ms(m.group(2), m.group(3)) / 1e3
    m = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.MULTILINE)
    if m:
        r.rps = float(m.group(1))
    m = re.search(r"^\s+Latency\s+" + _TIME + r"\s+" + _TIME + r"\s+" + _TIME, text, re.MULTILINE)
    if m:
        r.latency_ms["avg"] = _ms(m.group(1), m.group(2))
        r.latency_ms["max"] = _ms(m.group(5), m.group(6))
    dist = re.search(r"Latency Distribution\s*\n((?:\s+[0-9.]+%\s+\S+\s*\n)+)", text)
    if dist:
        for pct, val, unit in re.findall(r"([0-9.]+)%\s+" + _TIME, dist.group(1)):
            r.latency_ms[f"p{int(float(pct))}"] = _ms(val, unit)
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    r.socket_errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    if m:
        r.socket_errors = dict(
            zip(("connect", "read", "write", "timeout"), map(int, m.groups()), strict=True)
        )
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        r.non2xx_3xx = int(m.group(1))
    m = re.search(r"^BENCH-CHECKS (.*)$", text, re.MULTILINE)
    if m:
        r.checks = _pairs(m.group(1))
    m = re.search(r"^BENCH-SUMMARY (.*)$", text, re.MULTILINE)
    if m:
        s = r.summary = _pairs(m.group(1))
        r.requests = s["requests"]
        if s.get("duration_us"):
            r.duration_s = s["duration_us"] / 1e6
            r.rps = s["requests"] / r.duration_s
        for key in ("connect", "read", "write", "timeout"):
            r.socket_errors[key] = s.get(key, r.socket_errors.get(key, 0))
        for key in ("p50", "p90", "p99", "max"):
            if f"{key}_us" in s:
                r.latency_ms[key] = s[f"{key}_us"] / 1e3
    return r


def _pairs(text: str) -> dict[str, int]:
    return {k: int(v) for k, v in re.findall(r"(\w+)=(-?\d+)", text)}
