"""The machine record stored with every result: numbers mean little without it."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def cpu_model() -> str:
    info = _read("/proc/cpuinfo") or ""
    for line in info.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_revision(repo: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", repo, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        dirty = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def record(
    *,
    repo: str,
    server_cpus: str | None,
    client_cpus: str | None,
    versions: dict[str, str],
    tools: dict[str, str],
) -> dict:
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    uname = platform.uname()
    return {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": affinity,
        "server_cpus": server_cpus,
        "client_cpus": client_cpus,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "memory_total": _meminfo_total(),
        "kernel": f"{uname.system} {uname.release}",
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "load_average_at_start": _read("/proc/loadavg"),
        "fastasgi_git": git_revision(repo),
        "server_versions": versions,
        "tools": tools,
    }


def _meminfo_total() -> str | None:
    info = _read("/proc/meminfo") or ""
    for line in info.splitlines():
        if line.startswith("MemTotal:"):
            kib = int(line.split()[1])
            return f"{kib / 1024 / 1024:.1f} GiB"
    return None


def summary_line(m: dict) -> str:
    return (
        f"{m['cpu_model']}, {m['logical_cpus']} logical CPUs (server on {m['server_cpus']}, "
        f"load generator on {m['client_cpus']}), {m['kernel']}, Python {m['python']}"
    )
