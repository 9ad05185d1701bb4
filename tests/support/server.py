"""The real server as a subprocess: ONE ServerProcess, the environment it runs in, and
free_port. Every wait is bounded; a process is only ever stopped by its own PID.

``ServerProcess`` starts a command (usually ``python -m fastasgi ...``) with its stdout and
stderr in files, so a test can read the log at any time, mark a point in it and wait for a
line after it, also after the process has exited. Readiness is either the "running on" line
(``wait_started``, the port read from it: ``--port 0``) or the port accepting connections
(``wait_listening``, for a port chosen up front).
"""

from __future__ import annotations

import atexit
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
    return subprocess.run(
        fastasgi_command(*args),
        cwd=cwd or APPS,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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


def _lines(text: str) -> list[str]:
    """Lines as a text-mode pipe reads them (universal newlines), without line ends."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


class ServerProcess:
    """A server (or any script that starts one) running as a subprocess, its stdout and
    stderr in files under ``logdir``. ``stop()``, ``close()`` and the context manager end
    the process by its PID only."""

    def __init__(
        self,
        command: list[str],
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
        logdir: str | Path | None = None,
    ) -> None:
        self.command = list(command)
        tag = uuid.uuid4().hex[:8]
        logdir = Path(logdir) if logdir is not None else _default_logdir()
        self.stderr_path = logdir / f"server-{tag}.stderr"
        self.stdout_path = logdir / f"server-{tag}.stdout"
        # the server's output files stay open while it runs: _close_files() closes them
        self._err = open(self.stderr_path, "wb")  # noqa: SIM115
        self._out = open(self.stdout_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.command,
            cwd=cwd or APPS,
            env=env or server_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            pass_fds=pass_fds,
        )
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

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self, grace: float = 5.0) -> None:
        """SIGTERM, SIGKILL after ``grace`` seconds; then close the log files. Never fails."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_files()

    def _close_files(self) -> None:
        self._err.close()
        self._out.close()

    def _log(self) -> str:
        return f"--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout()}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()
        self._close_files()

    def __repr__(self) -> str:
        return f"<ServerProcess pid={self.proc.pid} {' '.join(self.command[2:])}>"
