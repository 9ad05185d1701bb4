"""The real server as a subprocess: ONE ServerProcess, the environment it runs in, and
free_port. Every wait is bounded.

Each process starts in a session (so a process group) of its own, and is ended by signalling
that group: the workers and helpers a server starts go with it, and nothing outside it is
touched (the group's id is the PID started here, never a name). Every ServerProcess not yet
closed is in ``LIVE``; ``sweep`` ends what is left there: tests/conftest.py runs it after each
test for the servers that test started, and at the end of the session for all; an atexit
hook runs it too, for a run that ends without that.

``ServerProcess`` starts a command (usually ``python -m fastasgi ...``) with its stdout and
stderr in files, so a test can read the log at any time, mark a point in it and wait for a
line after it, also after the process has exited. Readiness is either the "running on" line
(``wait_started``, the port read from it: ``--port 0``) or the port accepting connections
(``wait_listening``, for a port chosen up front).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
APPS = TESTS / "apps"
REPO = TESTS.parent
SRC = REPO / "src"

#: the app most e2e tests serve (tests/apps/core_app.py)
CORE = "core_app:app"

#: how long a server may take to be ready (framework imports are slow)
START_TIMEOUT = 20.0
#: default bound for one HTTP exchange of the CLI/ops tests
HTTP_TIMEOUT = 10.0

_RUNNING = re.compile(r"running on https?://(\[[^\]]+\]|[^:\s]+):(\d+)")


def package_root() -> str:
    """The directory holding the ``fastasgi`` package this test process uses: the installed
    one when there is one, else the source tree (built in place)."""
    try:
        import fastasgi
    except ImportError:
        return str(SRC)
    return str(Path(fastasgi.__file__).resolve().parent.parent)


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a server process: PYTHONPATH gives it the same fastasgi as this
    process and the test apps (tests/apps); no WEB_CONCURRENCY; unbuffered output."""
    env = dict(os.environ)
    paths = [package_root(), str(APPS)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("WEB_CONCURRENCY", None)
    if extra:
        env.update(extra)
    return env


def fastasgi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastasgi", *args]


def run_cli(
    *args: str, cwd: str | Path | None = None, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for the paths that must exit by themselves)."""
    return run_to_end(fastasgi_command(*args), cwd=cwd or APPS, env=server_env(), timeout=timeout)


def run_to_end(command: list[str], timeout: float, **kwargs) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(command, capture_output=True, text=True, timeout=timeout)``, the
    command in a session of its own; when the wait ends early (the timeout, the test's
    budget, Ctrl-C) its whole group is killed, not only the process run would kill."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True, **kwargs
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # not reaped yet: the group is still its
            proc.communicate()
            raise
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def free_port() -> int:
    """A loopback port that was free a moment ago (for tests that cannot use --port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


_logdir: Path | None = None


def _default_logdir() -> Path:
    """One temporary directory for the logs of servers started without a logdir, removed
    when the test process exits."""
    global _logdir
    if _logdir is None:
        _logdir = Path(tempfile.mkdtemp(prefix="fastasgi-test-logs-"))
        atexit.register(shutil.rmtree, _logdir, True)
    return _logdir


#: every ServerProcess whose files are not closed yet (a set: its objects hash by identity)
LIVE: set[ServerProcess] = set()
#: the scope a new ServerProcess belongs to: "function" (the test's) unless a fixture of a
#: wider scope is being set up (tests/conftest.py keeps this up to date)
_scopes: list[str] = ["function"]


@contextlib.contextmanager
def scope(name: str):
    """New ServerProcess objects belong to ``name`` ("session", "module"...) meanwhile."""
    _scopes.append(name)
    try:
        yield
    finally:
        _scopes.pop()


def _stat_fields(pid: int) -> list[bytes] | None:
    """/proc/<pid>/stat after the command name: state, ppid, pgrp, session, ... or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    return data[data.rindex(b")") + 2 :].split()  # the name may hold spaces and parentheses


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22 of stat(5): start time


def group_members(pgid: int, since: int | None = None) -> list[int]:
    """Live (not zombie) processes in process group ``pgid`` that started at ``since`` (clock
    ticks after boot) or later."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            if int(fields[2]) == pgid and fields[0] != b"Z":
                if since is None or int(fields[19]) >= since:
                    found.append(int(entry))
    return found


def sweep(procs=None, grace: float = 2.0) -> list[ServerProcess]:
    """End the processes of ``procs`` (default: every live ServerProcess) and close their
    files, all at once: SIGTERM to each group first, SIGKILL for what is left after ``grace``
    seconds. Returns those that still had processes running."""
    procs = list(LIVE if procs is None else procs)
    running = [proc for proc in procs if proc.running()]
    for proc in running:
        proc._signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in running:
        proc._wait_unreaped(max(deadline - time.monotonic(), 0.0))
    for proc in procs:
        proc.kill()
        proc._close_files()
    return running


atexit.register(sweep)


def _lines(text: str) -> list[str]:
    """Lines as a text-mode pipe reads them (universal newlines), without line ends."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class ServerProcess:
    """A server (or any script that starts one) running as a subprocess in a session of its
    own, its stdout and stderr in files under ``logdir``. ``send_signal()`` and ``stop()``
    signal the process itself (what a test checks the server does with a signal); ``kill()``,
    ``close()`` and the context manager end its whole process group.

    ``new_session``: None (default) starts one unless the command makes its own (``python
    -c`` code calling ``os.setsid()``, which fails in a process that already leads a group);
    once it has, its group is still the one its PID names, which is what ``kill()`` ends."""

    def __init__(
        self,
        command: list[str],
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
        logdir: str | Path | None = None,
        new_session: bool | None = None,
    ) -> None:
        self.command = list(command)
        if new_session is None:
            new_session = not (len(command) > 2 and command[1] == "-c" and "os.setsid()" in command[2])
        tag = uuid.uuid4().hex[:8]
        logdir = Path(logdir) if logdir is not None else _default_logdir()
        self.stderr_path = logdir / f"server-{tag}.stderr"
        self.stdout_path = logdir / f"server-{tag}.stdout"
        # the server's output files stay open while it runs: _close_files() closes them
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115
        try:
            self.proc = subprocess.Popen(
                self.command,
                cwd=cwd or APPS,
                env=env or server_env(),
                stdin=subprocess.DEVNULL,
                stdout=self._out,
                stderr=self._err,
                pass_fds=pass_fds,
                start_new_session=new_session,
            )
        except BaseException:
            self._close_files()
            raise
        #: the group's processes start after its first one (a check of ``_members``)
        self.started_ticks = start_ticks(self.proc.pid)
        #: who ends it: "function" (the sweep after the test that started it) or a wider scope
        self.scope = _scopes[-1]
        #: the sweep after a test stops it without reporting it (a fixture's, e.g. ``fresh``)
        self.quiet = False
        LIVE.add(self)
        self.port: int | None = None
        self.host: str | None = None

    @classmethod
    def cli(
        cls, *args: str, cwd: str | Path | None = None, env: dict[str, str] | None = None, **kwargs
    ) -> ServerProcess:
        """``python -m fastasgi ARGS``."""
        return cls(fastasgi_command(*args), cwd=cwd, env=env, **kwargs)

    # ---- the log
    @staticmethod
    def _read(path: Path, start: int = 0) -> str:
        with open(path, "rb") as f:
            f.seek(start)
            return f.read().decode("utf-8", "replace")

    def log(self) -> str:
        """Everything the process wrote to stderr so far."""
        return self._read(self.stderr_path)

    def stdout(self) -> str:
        """Everything the process wrote to stdout so far."""
        return self._read(self.stdout_path)

    @property
    def stderr(self) -> str:
        """stderr so far as lines joined by "\\n" (no final line end)."""
        return "\n".join(self.stderr_lines)

    @property
    def stderr_lines(self) -> list[str]:
        return _lines(self.log())

    @property
    def stdout_lines(self) -> list[str]:
        return _lines(self.stdout())

    def log_mark(self) -> int:
        """A point in stderr, for ``log_since`` and ``wait_log``."""
        return self.stderr_path.stat().st_size

    def log_since(self, mark: int) -> str:
        return self._read(self.stderr_path, mark)

    def wait_log(self, mark: int, needle: str, timeout: float = 3.0, settle: float = 0.2) -> str:
        """Wait until ``needle`` shows up in stderr after ``mark``; then wait ``settle``
        seconds more so that a duplicate record would show up too. Returns the new text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_since(mark):
                time.sleep(settle)
                return self.log_since(mark)
            time.sleep(0.02)
        return self.log_since(mark)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT, stream: str = "stderr") -> re.Match[str]:
        """Wait until a line of ``stream`` matches ``pattern`` (a regex); fail with the log
        when the process exits first or the time is up."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.proc.poll() is not None  # read after: nothing more can come
            lines = self.stderr_lines if stream == "stderr" else self.stdout_lines
            for line in lines:
                match = regex.search(line)
                if match:
                    return match
            if exited:
                raise AssertionError(
                    f"process exited ({self.proc.returncode}) before {pattern!r}; log:\n{self._log()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s; log:\n{self._log()}")
            time.sleep(0.02)

    # ---- readiness
    def wait_started(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the "running on" line; take host and port from it."""
        match = self.wait_for(_RUNNING.pattern, timeout)
        self.host = match.group(1).strip("[]")
        self.port = int(match.group(2))
        return self.port

    def wait_listening(self, port: int, host: str = "127.0.0.1", timeout: float = START_TIMEOUT) -> int:
        """Wait until ``host:port`` accepts a connection; fail with the log when the process
        exits first or the time is up."""
        self.host, self.port = host, port
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before accepting:\n"
                    f"$ {' '.join(self.command)}\n{self._log()}"
                )
            try:
                socket.create_connection((host, port), timeout=0.5).close()
                return port
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"server did not accept within {timeout}s:\n$ {' '.join(self.command)}\n{self._log()}"
                )
            time.sleep(0.05)

    @property
    def url(self) -> str:
        assert self.port is not None, "wait_started() or wait_listening() first"
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "127.0.0.1")
        return f"http://{host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    # ---- ending it
    def send_signal(self, sig: int) -> None:
        """Signal the process itself (not its group): what a test checks the server does."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not exit within {timeout}s; log:\n{self._log()}") from None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``sig`` and wait for the exit (fails when it does not come)."""
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def running(self) -> bool:
        """The process, or any process of its group, is still there."""
        return not self._exited() or bool(self._members())

    def _exited(self) -> bool | None:
        """True once the process has exited, without reaping it (a zombie keeps its PID, so
        the group's id cannot be handed to another process meanwhile); None while it runs."""
        if self.proc.returncode is not None:
            return True
        try:
            info = os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # reaped meanwhile (another thread's poll)
            return True
        return True if info is not None else None

    def _wait_unreaped(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.02)
        return True

    def _members(self) -> list[int]:
        """The live processes of the group. While the process is not reaped (alive or a
        zombie), its PID, so the group's id, is its own. Once reaped, the id stays taken while
        one of the group lives, and is handed out again only after the PID counter wraps: then
        a process of that PID is not ours (ours is gone), and neither is its group."""
        if self.proc.returncode is not None and _stat_fields(self.proc.pid) is not None:
            return []
        return group_members(self.proc.pid, self.started_ticks)

    def _signal_group(self, sig: int) -> None:
        if self.proc.returncode is not None and not self._members():
            return  # nothing of ours is left in a group of that number
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # ESRCH: the group is gone, or the process never made one (it was to make its own)
            os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL the process group, then reap the process. Never fails."""
        self._signal_group(signal.SIGKILL)
        if self.proc.returncode is None:
            # a process that was to make its own group may not have yet: then only its PID
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(10)

    def close(self, grace: float = 5.0) -> None:
        """SIGTERM, SIGKILL to the group after ``grace`` seconds (at once for a group whose
        process has exited); then close the log files. Never fails."""
        if self.proc.returncode is None and not self._exited():
            self.proc.send_signal(signal.SIGTERM)
            self._wait_unreaped(grace)
        self.kill()
        self._close_files()

    def _close_files(self) -> None:
        self._err.close()
        self._out.close()
        LIVE.discard(self)

    def _log(self) -> str:
        return f"--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout()}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()
        self._close_files()

    def __repr__(self) -> str:
        return f"<ServerProcess pid={self.proc.pid} {' '.join(self.command[2:])}>"
