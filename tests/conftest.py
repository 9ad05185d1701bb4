"""Shared fixtures: the real fastasgi server as a subprocess, and raw-socket helpers.

Every test talks to ``python -m fastasgi`` over loopback. Servers are started once per
distinct (app, flags) pair for the whole session and stopped by PID at the end; tests that
need a process of their own ask for ``fresh=True``.

Everything here is bounded: socket reads carry deadlines, the readiness wait has a limit,
and an autouse watchdog kills a test run that hangs anyway.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
APPS = ROOT / "tests" / "apps"

#: default deadline for one socket exchange
TIMEOUT = 5.0
#: how long a server may take to accept its first connection (framework imports are slow)
STARTUP_TIMEOUT = 20.0

IMF_FIXDATE = re.compile(
    rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    rb"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


# --------------------------------------------------------------------------- server process


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env() -> dict[str, str]:
    """PYTHONPATH for the child: the test apps, and src/ when the extension was built there
    (``setup.py build_ext --inplace``); otherwise the installed fastasgi is used."""
    env = dict(os.environ)
    paths = [str(APPS)]
    if list((SRC / "fastasgi" / "_http").glob("_core*.so")) or list(
        (SRC / "fastasgi" / "_http").glob("_core*.pyd")
    ):
        paths.insert(0, str(SRC))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


class ServerProcess:
    """One ``python -m fastasgi APP --port N ...`` child with its stdout/stderr in files."""

    def __init__(self, app: str, args: tuple[str, ...], logdir: Path):
        self.app = app
        self.args = tuple(args)
        self.port = free_port()
        tag = uuid.uuid4().hex[:8]
        self.stderr_path = logdir / f"server-{tag}.stderr"
        self.stdout_path = logdir / f"server-{tag}.stdout"
        self.proc: subprocess.Popen | None = None

    @property
    def cmd(self) -> list[str]:
        return [sys.executable, "-m", "fastasgi", self.app,
                "--host", "127.0.0.1", "--port", str(self.port), *self.args]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> ServerProcess:
        self._err = open(self.stderr_path, "wb")
        self._out = open(self.stdout_path, "wb")
        self.proc = subprocess.Popen(
            self.cmd, cwd=str(ROOT), env=_server_env(),
            stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._err,
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode} before accepting:\n"
                    f"$ {' '.join(self.cmd)}\n{self.log()}{self.stdout()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"server did not accept within {STARTUP_TIMEOUT}s:\n"
                    f"$ {' '.join(self.cmd)}\n{self.log()}"
                )
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self._err.close()
        self._out.close()

    # ---- captured logs
    def log(self) -> str:
        """Everything the server wrote to stderr so far."""
        return self.stderr_path.read_bytes().decode("utf-8", "replace")

    def stdout(self) -> str:
        return self.stdout_path.read_bytes().decode("utf-8", "replace")

    def log_mark(self) -> int:
        return self.stderr_path.stat().st_size

    def log_since(self, mark: int) -> str:
        with open(self.stderr_path, "rb") as f:
            f.seek(mark)
            return f.read().decode("utf-8", "replace")

    def wait_log(self, mark: int, needle: str, timeout: float = 3.0, settle: float = 0.2) -> str:
        """Wait until ``needle`` shows up in the log after ``mark``; then wait ``settle``
        seconds more so that a duplicate record would show up too. Returns the new text."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_since(mark):
                time.sleep(settle)
                return self.log_since(mark)
            time.sleep(0.02)
        return self.log_since(mark)

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def __repr__(self) -> str:
        return f"<fastasgi pid={self.proc and self.proc.pid} {self.app} {' '.join(self.args)}>"


@pytest.fixture(scope="session")
def serve(tmp_path_factory):
    """``serve(app, *flags, fresh=False)`` -> a running ServerProcess.

    Servers with the same app and flags are shared by the whole session unless ``fresh``;
    every process is terminated by PID at the end of the session.
    """
    logdir = tmp_path_factory.mktemp("servers")
    shared: dict[tuple, ServerProcess] = {}
    broken: dict[tuple, str] = {}  # a server that would not start is not retried per test
    started: list[ServerProcess] = []

    def _serve(app: str, *args: str, fresh: bool = False) -> ServerProcess:
        key = (app, args)
        if key in broken:
            raise RuntimeError(broken[key])
        if not fresh and key in shared and shared[key].alive():
            return shared[key]
        proc = ServerProcess(app, args, logdir)
        started.append(proc)
        try:
            proc.start()
        except RuntimeError as exc:
            broken[key] = str(exc)
            raise
        if not fresh:
            shared[key] = proc
        return proc

    yield _serve
    for proc in started:
        proc.stop()


#: the server most tests use: the raw ASGI app of tests/apps/core_app.py, exact bytes
#: (no Date header)
CORE = "core_app:app"


@pytest.fixture(scope="session")
def core(serve) -> ServerProcess:
    return serve(CORE, "--no-date-header")


@pytest.fixture(autouse=True)
def _watchdog():
    """A test that hangs despite the socket deadlines dumps its stack and ends the run."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- raw sockets


class Closed(Exception):
    pass


class RawConn:
    """A client socket with deadlines; reads keep what arrived in ``self.buf``."""

    def __init__(self, port: int, timeout: float = TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False  # FIN or RST seen
        self.reset = False
        self.send_failed = False

    @property
    def local_port(self) -> int:
        return self.sock.getsockname()[1]

    def __enter__(self) -> RawConn:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def abort(self) -> None:
        """Close with RST (SO_LINGER 0)."""
        import struct
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close()

    # ---- sending
    def send(self, data: bytes) -> bool:
        """sendall; False (and nothing raised) when the peer already closed."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            self.send_failed = True
            return False

    def send_bytewise(self, data: bytes, pause: float | None = None) -> bool:
        """Send one byte per segment, collecting whatever the server answers meanwhile;
        stops when the server closes. ``pause`` between bytes lets the server read each
        byte on its own (default: 0.2 ms for short inputs, none for long ones)."""
        if pause is None:
            pause = 0.0002 if len(data) <= 4096 else 0.0
        for i in range(len(data)):
            self._drain_ready()
            if self.eof:
                return False
            if not self.send(data[i:i + 1]):
                return False
            if pause:
                time.sleep(pause)
        return True

    def send_mode(self, data: bytes, mode: str) -> bool:
        if mode == "whole":
            return self.send(data)
        if mode == "bytewise":
            return self.send_bytewise(data)
        raise ValueError(mode)

    # ---- receiving
    def _recv_once(self, timeout: float) -> bytes:
        self.sock.settimeout(max(timeout, 0.001))
        try:
            chunk = self.sock.recv(1 << 20)
        except ConnectionResetError:
            self.eof = self.reset = True
            return b""
        if not chunk:
            self.eof = True
        self.buf += chunk
        return chunk

    def _drain_ready(self) -> None:
        while not self.eof:
            r, _, _ = select.select([self.sock], [], [], 0)
            if not r:
                return
            self._recv_once(0.001)

    def fill(self, n: int, timeout: float | None = None) -> None:
        """Until ``len(self.buf) >= n``; raises Closed or TimeoutError."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            if self.eof:
                raise Closed(f"closed after {bytes(self.buf)!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"waited for {n} bytes, have {bytes(self.buf)!r}")
            try:
                self._recv_once(left)
            except TimeoutError:
                pass

    def read_until(self, marker: bytes, timeout: float | None = None) -> bytes:
        """Consume and return up to and including ``marker``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            if self.eof:
                raise Closed(f"closed before {marker!r}; have {bytes(self.buf)!r}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {marker!r} within deadline; have {bytes(self.buf)[:300]!r}")
            try:
                self._recv_once(left)
            except TimeoutError:
                pass

    def read_exact(self, n: int, timeout: float | None = None) -> bytes:
        self.fill(n, timeout)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_to_eof(self, timeout: float | None = None) -> tuple[bytes, bool]:
        """Consume everything until the server closes. Returns (data, closed) where
        ``closed`` is False when the deadline passed with the connection still open."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._recv_once(left)
            except TimeoutError:
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out, self.eof

    def idle_for(self, seconds: float) -> bytes:
        """Read for ``seconds``; returns what arrived (expected: nothing)."""
        deadline = time.monotonic() + seconds
        start = len(self.buf)
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                self._recv_once(left)
            except TimeoutError:
                break
        return bytes(self.buf[start:])

    def is_closed(self, timeout: float = TIMEOUT) -> bool:
        """True if the server closes (FIN or RST) within ``timeout`` with no further data."""
        data, closed = self.read_to_eof(timeout)
        assert data == b"", f"unexpected bytes before close: {data[:300]!r}"
        return closed

    def read_response(self, method: str = "GET", timeout: float | None = None) -> Response:
        return read_response(self, method, timeout)

    def request(self, data: bytes, method: str = "GET") -> Response:
        self.send(data)
        return self.read_response(method)


@dataclass
class Response:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes  # the exact bytes of this response on the wire
    chunks: list[bytes] = field(default_factory=list)
    http_version: bytes = b"HTTP/1.1"
    close_delimited: bool = False

    def header(self, name: bytes | str) -> bytes | None:
        if isinstance(name, str):
            name = name.encode()
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: bytes | str) -> list[bytes]:
        if isinstance(name, str):
            name = name.encode()
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def names(self) -> list[bytes]:
        return [k for k, _ in self.headers]

    def json(self):
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[bytes, int, bytes, list[tuple[bytes, bytes]]]:
    lines = head[:-4].split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    headers = []
    for line in lines[1:]:
        k, sep, v = line.partition(b":")
        assert sep, f"malformed header line {line!r} in {head!r}"
        headers.append((k, v.strip(b" \t")))
    return version, int(code), reason, headers


def read_response(conn: RawConn, method: str = "GET", timeout: float | None = None) -> Response:
    """Read one complete response (1xx interim responses are returned on their own)."""
    head = conn.read_until(b"\r\n\r\n", timeout)
    version, status, reason, headers = parse_head(head)
    resp = Response(status, reason, headers, b"", head, http_version=version)
    if 100 <= status < 200 or status in (204, 304) or method == "HEAD":
        return resp
    te = resp.header(b"transfer-encoding")
    cl = resp.header(b"content-length")
    raw = bytearray(head)
    if te is not None:
        assert te.lower() == b"chunked", te
        body = bytearray()
        while True:
            line = conn.read_until(b"\r\n", timeout)
            raw += line
            size = int(line[:-2].split(b";")[0], 16)
            if size == 0:
                trailer = conn.read_until(b"\r\n", timeout)
                raw += trailer
                while trailer != b"\r\n":
                    trailer = conn.read_until(b"\r\n", timeout)
                    raw += trailer
                break
            data = conn.read_exact(size + 2, timeout)
            assert data.endswith(b"\r\n"), f"chunk not CRLF-terminated: {data[-10:]!r}"
            raw += data
            body += data[:-2]
            resp.chunks.append(data[:-2])
        resp.body = bytes(body)
    elif cl is not None:
        resp.body = conn.read_exact(int(cl), timeout)
        raw += resp.body
    else:
        body, closed = conn.read_to_eof(timeout)
        assert closed, "close-delimited body did not end"
        resp.body = body
        resp.close_delimited = True
        raw += body
    resp.raw = bytes(raw)
    return resp


def exchange(port: int, data: bytes, mode: str = "whole", timeout: float = TIMEOUT) -> tuple[bytes, bool]:
    """Open a connection, deliver ``data`` whole or byte by byte, read until the server
    closes. Returns (everything received, closed-within-deadline)."""
    with RawConn(port, timeout) as c:
        c.send_mode(data, mode)
        out, closed = c.read_to_eof(timeout)
        return out, closed


def http_get(port: int, path: str, headers: bytes = b"") -> Response:
    """One GET on a fresh connection (Connection: close)."""
    with RawConn(port) as c:
        c.send(f"GET {path} HTTP/1.1\r\nHost: t\r\n".encode() + headers + b"Connection: close\r\n\r\n")
        return c.read_response()


def registry(port: int, tok: str) -> list:
    """What the test app recorded under ``tok`` (see tests/apps/core_app.py)."""
    return http_get(port, f"/registry/{tok}").json()


def wait_registry(port: int, tok: str, pred, timeout: float = 3.0) -> list:
    deadline = time.monotonic() + timeout
    entries = registry(port, tok)
    while not pred(entries) and time.monotonic() < deadline:
        time.sleep(0.03)
        entries = registry(port, tok)
    return entries


def error_response(code: int, server: bool = True, extra: bytes = b"") -> bytes:
    """The exact bytes of a server-generated error (WIRE.md), without a Date header."""
    reason = HTTPStatus(code).phrase.encode()
    return (
        b"HTTP/1.1 %d %s\r\n" % (code, reason)
        + (b"server: fastasgi\r\n" if server else b"")
        + extra
        + b"content-type: text/plain; charset=utf-8\r\n"
        + b"content-length: %d\r\n" % len(reason)
        + b"connection: close\r\n\r\n"
        + reason
    )
