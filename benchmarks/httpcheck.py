"""Before any load: is the server up, and does it answer the scenario correctly?

``wait_ready`` polls until the server answers an HTTP request at all (any status). The
precheck (``verify``) then sends the scenario's own request once and checks the answer in
full: 2xx, the exact body, the Server and Date headers where the scenario requires them, 16
pipelined requests answered in order for the pipelined scenario, and one websocket echo for
the websocket scenario. A server that fails here is reported with the reason and not loaded.
Every socket operation has a timeout.

The HTTP/2 scenarios are checked over HTTP/2 itself, cleartext with prior knowledge (h2c,
RFC 9113 3.3), by a real client: httpx with ``http1=False, http2=True`` when httpx and h2 are
installed, else curl ``--http2-prior-knowledge``. Both the readiness poll and the precheck go
that way (granian ``--http 2`` does not answer HTTP/1.1 at all), and the precheck also fails
an answer that came back in another HTTP version.
"""

from __future__ import annotations

import functools
import http.client
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass

from benchmarks.scenarios import Scenario


class ServerFailed(RuntimeError):
    """The server did not start, died, or answered wrongly."""


def wait_ready(host: str, port: int, proc, timeout: float, path: str = "/", http2: bool = False) -> float:
    """Return the seconds it took until ``host:port`` answered a ``GET path`` (``http2``: over
    h2c, see ``h2_request``); raise ServerFailed if the process exits first or ``timeout``
    passes. A server that accepts connections but never answers is told apart from one that
    never listens."""
    t0 = time.monotonic()
    last = "connection refused"
    accepted = False
    while True:
        code = proc.poll()
        if code is not None:
            raise ServerFailed(f"exited with code {code} before answering")
        left = timeout - (time.monotonic() - t0)
        if left <= 0:
            if accepted:
                raise ServerFailed(
                    f"accepted connections but gave no complete answer to GET {path} within "
                    f"{timeout:.0f}s (last: {last})"
                )
            raise ServerFailed(f"did not listen on {host}:{port} within {timeout:.0f}s")
        try:
            sock = socket.create_connection((host, port), timeout=min(2.0, left))
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
            continue
        accepted = True
        if http2:
            sock.close()
            try:
                h2_request(host, port, "GET", path, timeout=max(0.5, left))
                return time.monotonic() - t0
            except H2RequestFailed as exc:
                last = str(exc)
                time.sleep(0.05)
                continue
        # No "Connection: close": fastpysgi 0.6 fails every later connection after one
        # such request. The client closing the socket is enough.
        conn = http.client.HTTPConnection(host, port, timeout=max(0.5, left))
        conn.sock = sock
        try:
            conn.request("GET", path)
            conn.getresponse().read()
            return time.monotonic() - t0
        except (OSError, http.client.HTTPException) as exc:
            # e.g. a supervisor that accepts before its worker is ready, then resets
            last = f"{type(exc).__name__}: {exc}"
            time.sleep(0.05)
        finally:
            conn.close()


def verify(scenario: Scenario, host: str, port: int, timeout: float = 10.0) -> list[str]:
    """Problems with the server's answer to one request of ``scenario`` (empty: fine)."""
    try:
        if scenario.kind == "websocket":
            return _verify_websocket(scenario, host, port, timeout)
        if scenario.http2:
            return _verify_h2(scenario, host, port, timeout)
        problems = _verify_http(scenario, host, port, timeout)
        if not problems and scenario.pipeline > 1:
            problems = _verify_pipelined(scenario, host, port, timeout)
        return problems
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return [f"request failed: {type(exc).__name__}: {exc}"]


def _expected_body(scenario: Scenario) -> bytes | None:
    if scenario.check == "echo":
        return scenario.request_body()
    if scenario.check in ("eq", "len"):
        return scenario.expected
    return None


def _verify_http(scenario: Scenario, host: str, port: int, timeout: float) -> list[str]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        body = scenario.request_body() if scenario.body_bytes else None
        headers = {"Content-Type": "application/octet-stream"} if body is not None else {}
        conn.request(scenario.method, scenario.path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return check_response(scenario, resp.status, {k.lower(): v for k, v in resp.getheaders()}, data)
    finally:
        conn.close()


def _verify_h2(scenario: Scenario, host: str, port: int, timeout: float) -> list[str]:
    body = scenario.request_body() if scenario.body_bytes else None
    try:
        answer = h2_request(host, port, scenario.method, scenario.path, body, timeout)
    except H2RequestFailed as exc:
        return [f"HTTP/2 request failed: {exc}"]
    if answer.version != "HTTP/2":
        return [f"answered in {answer.version}, not HTTP/2 (h2c prior knowledge)"]
    return check_response(scenario, answer.status, answer.headers, answer.body)


def check_response(scenario: Scenario, status: int, headers: dict[str, str], body: bytes) -> list[str]:
    problems = []
    if not 200 <= status <= 299:
        problems.append(f"status {status} (body: {body[:80]!r})")
        return problems
    expected = _expected_body(scenario)
    if expected is not None and body != expected:
        problems.append(
            f"wrong body: {len(body)} bytes {body[:40]!r}..., expected {len(expected)} bytes {expected[:40]!r}..."
        )
    if scenario.require_server_date:
        missing = [h for h in ("server", "date") if h not in headers]
        if missing:
            problems.append(f"no {' and no '.join(h.title() for h in missing)} header (TechEmpower rules)")
    return problems


def _verify_pipelined(scenario: Scenario, host: str, port: int, timeout: float) -> list[str]:
    """Send ``pipeline`` requests in one write, each with a distinct query string, and read
    as many responses (Content-Length framed) back on the same connection."""
    n = scenario.pipeline
    reqs = b"".join(
        f"{scenario.method} {scenario.path}?n={i} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        for i in range(n)
    )
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(reqs)
        buf = b""
        for i in range(n):
            while b"\r\n\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    return [f"connection closed after {i} of {n} pipelined responses"]
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ", 2)
            status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if "content-length" not in headers:
                return [f"pipelined response {i + 1} has no Content-Length"]
            length = int(headers["content-length"])
            while len(buf) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    return [f"connection closed inside pipelined response {i + 1}"]
                buf += chunk
            body, buf = buf[:length], buf[length:]
            problems = check_response(scenario, status, headers, body)
            if problems:
                return [f"pipelined response {i + 1}: {p}" for p in problems]
    return []


def _verify_websocket(scenario: Scenario, host: str, port: int, timeout: float) -> list[str]:
    try:
        from websockets.sync.client import connect
    except ImportError:
        return []  # the load generator checks every echo anyway
    message = "x" * scenario.ws_size
    try:
        with connect(
            f"ws://{host}:{port}{scenario.path}", open_timeout=timeout, close_timeout=2, compression=None
        ) as ws:
            ws.send(message)
            answer = ws.recv(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - websockets raises its own hierarchy plus OSError
        return [f"websocket echo failed: {type(exc).__name__}: {exc}"]
    if answer != message:
        return [f"websocket echo differs: {answer[:40]!r}"]
    return []


# -- HTTP/2 over cleartext ---------------------------------------------------------------------

H2_CLIENTS = ("httpx", "curl")


class H2RequestFailed(RuntimeError):
    """No HTTP/2 answer came (refused, reset, timed out, or the client itself failed)."""


@dataclass(frozen=True)
class H2Answer:
    version: str  # "HTTP/2", or what the server answered in instead
    status: int
    headers: dict[str, str]  # names lowercased
    body: bytes


@functools.cache
def h2_clients() -> tuple[str, ...]:
    """The HTTP/2 clients usable here, preferred first: "httpx" when httpx and h2 import,
    "curl" when it is on PATH and built with HTTP/2 (nghttp2)."""
    found = []
    if all(importlib.util.find_spec(m) for m in ("httpx", "h2")):
        found.append("httpx")
    if shutil.which("curl"):
        done = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False)
        if "HTTP2" in done.stdout.split("Features:")[-1]:
            found.append("curl")
    return tuple(found)


def h2_client() -> str | None:
    """The client the precheck uses, None when there is none."""
    return next(iter(h2_clients()), None)


H2_CLIENT_MISSING = (
    "no HTTP/2 client for the precheck: pip install httpx h2, or install curl built with "
    "nghttp2 (Debian: apt-get install curl)"
)


def h2_request(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    timeout: float = 10.0,
    client: str | None = None,
) -> H2Answer:
    """One request over h2c with prior knowledge (no Upgrade, no HTTP/1.1 fallback)."""
    client = client or h2_client()
    if client is None:
        raise H2RequestFailed(H2_CLIENT_MISSING)
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}{path}"
    headers = {"content-type": "application/octet-stream"} if body is not None else {}
    if client == "httpx":
        return _h2_httpx(method, url, headers, body, timeout)
    return _h2_curl(method, url, headers, body, timeout)


def _h2_httpx(method, url, headers, body, timeout) -> H2Answer:
    import httpx

    try:
        # http1=False: HTTP/2 prior knowledge on an http:// URL (httpx's documented way)
        with httpx.Client(http1=False, http2=True, timeout=timeout) as c:
            r = c.request(method, url, content=body, headers=headers)
            return H2Answer(
                r.http_version, r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content
            )
    except httpx.HTTPError as exc:
        raise H2RequestFailed(f"httpx: {type(exc).__name__}: {exc}") from None


def _h2_curl(method, url, headers, body, timeout) -> H2Answer:
    with tempfile.TemporaryDirectory(prefix="bench-h2-") as tmp:
        out, head = os.path.join(tmp, "body"), os.path.join(tmp, "head")
        argv = ["curl", "-sS", "--http2-prior-knowledge", "-X", method, "-o", out, "-D", head]
        argv += ["--max-time", f"{timeout:g}", "-w", "%{http_version} %{http_code}"]
        for name, value in headers.items():
            argv += ["-H", f"{name}: {value}"]
        if body is not None:
            sent = os.path.join(tmp, "sent")
            with open(sent, "wb") as f:
                f.write(body)
            argv += ["--data-binary", f"@{sent}"]
        try:
            done = subprocess.run(
                [*argv, url], capture_output=True, text=True, timeout=timeout + 5, check=False
            )
        except subprocess.TimeoutExpired:
            raise H2RequestFailed(f"curl did not finish within {timeout + 5:.0f}s") from None
        if done.returncode != 0:
            raise H2RequestFailed(f"curl exit {done.returncode}: {done.stderr.strip()[-200:]}")
        version, _, code = done.stdout.strip().partition(" ")
        answer_headers = {}
        with open(head, "rb") as f:
            for line in f.read().decode("latin-1").split("\r\n")[1:]:
                name, sep, value = line.partition(":")
                if sep:
                    answer_headers[name.strip().lower()] = value.strip()
        try:
            with open(out, "rb") as f:
                data = f.read()
        except FileNotFoundError:  # curl creates no file for an empty body
            data = b""
    # curl's %{http_version}: "1.1", "2", "3"
    return H2Answer(f"HTTP/{version}", int(code) if code.isdigit() else 0, answer_headers, data)
