"""Helpers for the CLI, lifespan and API tests: start the real server as a subprocess on a
free loopback port, follow its log, stop it by its own PID. Every wait is bounded."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent
APPS = TESTS / "apps"
REPO = TESTS.parent

# Default bound for "the server is up" and for one HTTP exchange.
START_TIMEOUT = 20.0
HTTP_TIMEOUT = 10.0

_RUNNING = re.compile(r"running on https?://(\[[^\]]+\]|[^:\s]+):(\d+)")


def _package_root() -> str:
    """The directory holding the ``fastasgi`` package this test process uses: the
    installed one when there is one, else the source tree (built in place)."""
    try:
        import fastasgi
    except ImportError:
        return str(REPO / "src")
    return str(Path(fastasgi.__file__).resolve().parent.parent)


# The in-process tests (Config, the click command) import the same package the servers run.
if _package_root() == str(REPO / "src") and str(REPO / "src") not in sys.path:
    sys.path.insert(0, str(REPO / "src"))


def server_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [_package_root(), str(APPS)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("WEB_CONCURRENCY", None)
    if extra:
        env.update(extra)
    return env


def fastasgi_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fastasgi", *args]


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """Run the CLI to completion (for the paths that must exit by themselves)."""
    return subprocess.run(
        fastasgi_command(*args),
        cwd=cwd or APPS,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class ServerProcess:
    """A server (or any script that starts one) running as a subprocess.

    stdout and stderr are read by two threads into line lists so that the test can wait
    for a log line with a deadline. ``stop()`` and the context manager end the process by
    its PID only.
    """

    def __init__(
        self,
        command: list[str],
        cwd: str | Path | None = None,
        env: dict[str, str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        self.command = command
        self.proc = subprocess.Popen(
            command,
            cwd=cwd or APPS,
            env=env or server_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            pass_fds=pass_fds,
        )
        self.stdout_lines: list[str] = []
        self.stderr_lines: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.port: int | None = None
        self.host: str | None = None

    @classmethod
    def cli(
        cls, *args: str, cwd: str | Path | None = None, env: dict[str, str] | None = None, **kwargs
    ) -> ServerProcess:
        return cls(fastasgi_command(*args), cwd=cwd, env=env, **kwargs)

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stderr(self) -> str:
        with self._changed:
            return "\n".join(self.stderr_lines)

    @property
    def stdout(self) -> str:
        with self._changed:
            return "\n".join(self.stdout_lines)

    def wait_for(self, pattern: str, timeout: float = START_TIMEOUT, stream: str = "stderr") -> re.Match[str]:
        """Wait until a line of ``stream`` matches ``pattern`` (a regex); fail with the log
        when the process exits first or the time is up."""
        regex = re.compile(pattern)
        lines = self.stderr_lines if stream == "stderr" else self.stdout_lines
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in lines[seen:]:
                    match = regex.search(line)
                    if match:
                        return match
                seen = len(lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s; log:\n{self._log()}")
                if self.proc.poll() is not None and not any(r.is_alive() for r in self._readers):
                    raise AssertionError(
                        f"process exited ({self.proc.returncode}) before {pattern!r}; log:\n{self._log()}"
                    )
                self._changed.wait(min(remaining, 0.2))

    def wait_started(self, timeout: float = START_TIMEOUT) -> int:
        match = self.wait_for(_RUNNING.pattern, timeout)
        self.host = match.group(1).strip("[]")
        self.port = int(match.group(2))
        return self.port

    @property
    def url(self) -> str:
        assert self.port is not None, "wait_started() first"
        host = f"[{self.host}]" if self.host and ":" in self.host else (self.host or "127.0.0.1")
        return f"http://{host}:{self.port}"

    def send_signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout: float = 15.0) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"process did not exit within {timeout}s; log:\n{self._log()}") from None
        for reader in self._readers:
            reader.join(5)
        return code

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def _log(self) -> str:
        return f"--- stderr ---\n{self.stderr}\n--- stdout ---\n{self.stdout}"

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info) -> None:
        self.kill()
        for reader in self._readers:
            reader.join(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def free_port() -> int:
    """A port that was free a moment ago (for the few tests that cannot use --port 0)."""
    with socket.socket() as probe:
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
