"""Processes the harness starts: pinned, tracked, bounded in time, always stopped.

Every child is started in its own session (so its process group id is its pid) and
registered with one ``ProcessTracker``. ``stop()`` signals that group and, after a grace
period, kills it together with any descendant recorded before, matching each pid with its
start time so a recycled pid is never hit. ``stop_all()`` runs on normal exit, on Ctrl-C
and on SIGTERM (see ``install_signal_handlers``).

Memory and CPU of a server are read from /proc for the whole process tree: granian and
h2corn run the app in a child process, so the parent alone would flatter them.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (field 3 onwards, 0-based here)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name is in parentheses and may itself contain spaces or parentheses.
    return data[data.rfind(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of proc(5): starttime


def children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process visible in /proc."""
    kids: dict[int, list[int]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return kids
    for name in names:
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields:
            kids.setdefault(int(fields[1]), []).append(int(name))
    return kids


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants."""
    kids = children_map()
    tree, todo = [], [pid]
    while todo:
        p = todo.pop()
        if p in tree:
            continue
        tree.append(p)
        todo.extend(kids.get(p, ()))
    return [p for p in tree if os.path.exists(f"/proc/{p}")]


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its living descendants."""
    total = 0
    for p in process_tree(pid):
        fields = _stat_fields(p)
        if fields:
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)
    return total / CLK_TCK


def tree_peak_rss_kib(pid: int) -> int:
    """Peak resident set size of the tree: the sum of each process's VmHWM (its own
    high-water mark), an upper bound of the tree's peak that is exact for one process."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def cpu_busy_seconds(cpus: list[int]) -> tuple[float, float]:
    """(user + nice + system, steal) seconds the given CPUs have spent since boot, from
    /proc/stat. Compared with the CPU time of our own processes over the same window, it
    shows how much other work shared the pinned cores (the run is then noisy)."""
    busy = steal = 0
    try:
        with open("/proc/stat") as f:
            for line in f:
                if not line.startswith("cpu") or line.startswith("cpu "):
                    continue
                name, *vals = line.split()
                if int(name[3:]) in cpus:
                    v = [int(x) for x in vals]
                    busy += v[0] + v[1] + v[2]
                    steal += v[7] if len(v) > 7 else 0
    except (OSError, ValueError):
        return 0.0, 0.0
    return busy / CLK_TCK, steal / CLK_TCK


def pin_prefix(cpus: str | None) -> list[str]:
    """``taskset -c CPUS`` (the process and all it forks stay on those cores)."""
    if not cpus:
        return []
    taskset = shutil.which("taskset")
    if taskset is None:
        raise RuntimeError(
            "taskset not found; it is in util-linux (apt-get install util-linux), or run with --no-pin"
        )
    return [taskset, "-c", cpus]


@dataclass
class Finished:
    """What ``run_bounded`` returns."""

    returncode: int
    stdout: str
    stderr: str
    cpu_seconds: float  # user + system time of the child (and its reaped children)
    timed_out: bool
    wall_seconds: float


class ProcessTracker:
    """Registry of every child process; see the module docstring."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._live: dict[int, subprocess.Popen] = {}
        # pid -> (start time, pids of descendants with their start times) seen so far
        self._family: dict[int, set[tuple[int, int]]] = {}

    def spawn(self, argv: list[str], *, cwd=None, env=None, stdout=None, stderr=None) -> subprocess.Popen:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout if stdout is not None else subprocess.DEVNULL,
            stderr=stderr if stderr is not None else subprocess.DEVNULL,
            start_new_session=True,
        )
        with self._lock:
            self._live[proc.pid] = proc
            self._family[proc.pid] = set()
        return proc

    def remember_family(self, proc: subprocess.Popen) -> None:
        """Record the descendants of ``proc`` now, so ``stop`` can reach them even if they
        leave its process group or lose their parent."""
        found = set()
        for p in process_tree(proc.pid):
            st = start_time(p)
            if p != proc.pid and st is not None:
                found.add((p, st))
        with self._lock:
            self._family.setdefault(proc.pid, set()).update(found)

    def live(self) -> list[subprocess.Popen]:
        with self._lock:
            return list(self._live.values())

    def _forget(self, proc: subprocess.Popen) -> set[tuple[int, int]]:
        with self._lock:
            self._live.pop(proc.pid, None)
            return self._family.pop(proc.pid, set())

    def stop(self, proc: subprocess.Popen, grace: float = 3.0) -> None:
        """SIGTERM the group, wait up to ``grace`` seconds, then SIGKILL what is left, and
        wait (briefly) until it is gone: the next server must not share the core with a
        dying one."""
        if proc.returncode is None:
            self.remember_family(proc)
            _signal_group(proc.pid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
        _signal_group(proc.pid, signal.SIGKILL)  # stragglers in the group, if any
        if proc.poll() is None:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        family = [(pid, st) for pid, st in self._forget(proc) if start_time(pid) == st]
        for pid, _ in family:  # still the same processes
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and any(_running(pid, st) for pid, st in family):
            time.sleep(0.01)

    def stop_all(self, grace: float = 1.0) -> None:
        for proc in self.live():
            self.stop(proc, grace=grace)

    def run_bounded(self, argv: list[str], timeout: float, *, cwd=None, env=None) -> Finished:
        """Run ``argv`` to completion, killed after ``timeout`` seconds; its output is kept
        in temporary files (no pipe to fill up) and its CPU time taken from wait4()."""
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            t0 = time.monotonic()
            proc = self.spawn(argv, cwd=cwd, env=env, stdout=out, stderr=err)
            timed_out = False
            status, usage = 0, None
            try:
                while True:
                    pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                    if pid:
                        proc.returncode = os.waitstatus_to_exitcode(status)
                        break
                    if time.monotonic() - t0 > timeout:
                        timed_out = True
                        _signal_group(proc.pid, signal.SIGKILL)
                        pid, status, usage = os.wait4(proc.pid, 0)
                        proc.returncode = os.waitstatus_to_exitcode(status)
                        break
                    time.sleep(0.02)
            finally:
                self.stop(proc, grace=0.5)
            wall = time.monotonic() - t0
            out.seek(0)
            err.seek(0)
            return Finished(
                returncode=proc.returncode,
                stdout=out.read().decode("utf-8", "replace"),
                stderr=err.read().decode("utf-8", "replace"),
                cpu_seconds=(usage.ru_utime + usage.ru_stime) if usage else 0.0,
                timed_out=timed_out,
                wall_seconds=wall,
            )


def _running(pid: int, started: int) -> bool:
    """``pid`` is still the process that started at ``started`` and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] != "Z" and int(fields[19]) == started


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


TRACKER = ProcessTracker()
atexit.register(TRACKER.stop_all)


def install_signal_handlers():
    """SIGTERM and SIGHUP raise KeyboardInterrupt in the main thread, so the same
    clean-up path as Ctrl-C runs (``finally`` blocks, then ``stop_all``). Returns a
    function that puts the previous handlers back."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {}
    for sig in (signal.SIGTERM, signal.SIGHUP):
        try:
            previous[sig] = signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread / unsupported
            pass

    def restore():
        for sig, old in previous.items():
            try:
                signal.signal(sig, old)
            except (ValueError, OSError, TypeError):
                pass

    return restore
