"""Helpers for the supervisor tests (tests/e2e/test_workers.py, test_reload.py,
test_gunicorn.py).

A supervisor starts processes of its own. The tests find them by scanning /proc for the
children of the supervisor's PID (no psutil). They are in the supervisor's process group,
which ServerProcess ends as a whole; a process seen as ours that is no longer in it is ended
by its PID, when that PID is still the same process (same start time).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import sys
import threading
import time

from support.server import HTTP_TIMEOUT, ServerProcess, fastasgi_command, server_env, start_ticks

STARTED = re.compile(r"Started server process \[(\d+)\]")


def children_of(pid: int) -> set[int]:
    """PIDs whose parent is ``pid`` (from /proc/<pid>/stat)."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                data = stat.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        fields = data[data.rindex(b")") + 2 :].split()
        if int(fields[1]) == pid:
            found.add(int(entry))
    return found


def is_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2 :].split()[0] != b"Z"


def get(
    port: int, path: str = "/", timeout: float = HTTP_TIMEOUT, host: str = "127.0.0.1"
) -> tuple[int, bytes]:
    """One request on a new connection (``Connection: close``): (status, body)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll ``predicate`` until it returns a true value; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def try_get(port: int, path: str) -> None:
    """A request whose outcome does not matter (the worker is about to be killed)."""
    with contextlib.suppress(OSError, http.client.HTTPException):
        get(port, path)


class Supervised(ServerProcess):
    """A supervisor (fastasgi --workers/--reload, or gunicorn) as a subprocess. Leaving the
    ``with`` block kills it and every process it started that is still there."""

    def __init__(self, command: list[str], **kwargs) -> None:
        kwargs.setdefault("env", server_env())
        super().__init__(command, **kwargs)
        #: pid -> start time of each process seen as the supervisor's
        self._known: dict[int, int] = {}

    def _remember(self, pids) -> None:
        for pid in pids:
            if pid not in self._known and (ticks := start_ticks(pid)) is not None:
                self._known[pid] = ticks

    @classmethod
    def cli(cls, *args: str, **kwargs) -> Supervised:
        return cls(fastasgi_command(*args), **kwargs)

    @classmethod
    def gunicorn(cls, *args: str, **kwargs) -> Supervised:
        return cls([sys.executable, "-m", "gunicorn", *args], **kwargs)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def children(self) -> set[int]:
        """The live child processes of the supervisor (zombies left out)."""
        found = {pid for pid in children_of(self.pid) if is_alive(pid)}
        self._remember(found)
        return found

    def started_pids(self) -> list[int]:
        """Worker PIDs in the order their "Started server process" lines appeared."""
        pids = [int(m.group(1)) for line in list(self.stderr_lines) if (m := STARTED.search(line))]
        self._remember(pids)
        return pids

    def wait_workers(self, count: int, timeout: float = 20.0, exclude: set[int] = frozenset()) -> set[int]:
        """Wait until the supervisor has ``count`` live children, none in ``exclude``, and
        every worker that logged "Started server process" has also logged "Application
        startup complete." (each worker logs its own pair, in that order); return them."""

        def ready() -> set[int] | None:
            children = self.children() - set(exclude)
            started = set(self.started_pids())
            complete = sum("Application startup complete." in line for line in list(self.stderr_lines))
            if len(children) == count and children <= started and complete >= len(started):
                return children
            return None

        return wait_until(ready, timeout, f"{count} workers of [{self.pid}]; log:\n{self._log()}")

    def __exit__(self, *exc_info) -> None:
        if self.proc.returncode is None:
            self.children()  # (the grandchildren are in the group too)
        super().__exit__(*exc_info)  # the supervisor's whole process group
        for pid, ticks in self._known.items():
            # one that left the group, if any; a PID whose start time differs is another process
            if is_alive(pid) and start_ticks(pid) == ticks:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


class SteadyClient(threading.Thread):
    """Requests in a loop, one new connection each, until stopped; counts what failed."""

    def __init__(self, port: int, path: str = "/") -> None:
        super().__init__(daemon=True)
        self.port = port
        self.path = path
        self.ok = 0
        self.failures: list[str] = []
        self.pids: list[int] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                status, body = get(self.port, self.path, timeout=5)
            except (OSError, http.client.HTTPException) as exc:
                self.failures.append(repr(exc))
                continue
            if status == 200:
                self.ok += 1
                self.pids.append(int(body))
            else:
                self.failures.append(f"status {status}")

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)
