"""ONE raw HTTP/1.1 client for the e2e tests: a socket with deadlines (RawConn), the
response reader, and the one-call helpers built on them. Every read has a deadline.

``registry``/``wait_registry`` ask the test app of tests/apps/core_app.py what it recorded.
"""

from __future__ import annotations

import json
import re
import select
import socket
import struct
import time
from dataclasses import dataclass, field

#: default deadline for one socket exchange
TIMEOUT = 5.0

IMF_FIXDATE = re.compile(
    rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    rb"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


class Closed(ConnectionError):
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
            if not self.send(data[i : i + 1]):
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


def wait_closed(conn: RawConn, timeout: float) -> tuple[float, bytes]:
    """Read until the server closes the connection: (seconds it took, bytes received).
    Fails when the connection is still open after ``timeout``."""
    start = time.monotonic()
    received, closed = conn.read_to_eof(timeout)
    if not closed:
        raise AssertionError(f"still open after {timeout}s; received {received!r}")
    return time.monotonic() - start, received
