"""Helpers for the production-operations tests (tests/test_ops_*.py): start ``ops_app`` with
the real CLI, talk to it over raw sockets with a deadline on every read."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

from _util_cli import HTTP_TIMEOUT, ServerProcess

APP = "ops_app:app"


@contextlib.contextmanager
def serve(*args: str, env: dict[str, str] | None = None, started: bool = True, **kwargs) -> Iterator[ServerProcess]:
    """``fastasgi ops_app:app --port 0 ARGS``, stopped (SIGTERM, then SIGKILL) at the end."""
    server = ServerProcess.cli(APP, "--port", "0", *args, env=env, **kwargs)
    with server:
        if started:
            server.wait_started()
        yield server


def connect(server: ServerProcess, timeout: float = HTTP_TIMEOUT) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    sock.settimeout(timeout)
    return sock


def read_response(sock: socket.socket, deadline: float = HTTP_TIMEOUT) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response (Content-Length framed or closed by the server)."""
    end = time.monotonic() + deadline
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, end)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        length = int(headers["content-length"])
        while len(body) < length:
            body += _recv(sock, end)
    return status, headers, body


def _recv(sock: socket.socket, end: float) -> bytes:
    remaining = end - time.monotonic()
    if remaining <= 0:
        raise AssertionError("no complete response in time")
    sock.settimeout(remaining)
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("closed by the server")
    return chunk


def wait_closed(sock: socket.socket, timeout: float) -> tuple[float, bytes]:
    """Read until the server closes the connection; (seconds it took, bytes received).
    Fails when the connection is still open after ``timeout``."""
    start = time.monotonic()
    received = b""
    sock.settimeout(timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        except TimeoutError:
            raise AssertionError(f"still open after {timeout}s; received {received!r}") from None
        if not chunk:
            break
        received += chunk
        sock.settimeout(max(0.01, timeout - (time.monotonic() - start)))
    return time.monotonic() - start, received
