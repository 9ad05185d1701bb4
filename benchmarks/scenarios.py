"""The scenarios: what each server is asked to do, and what a correct answer is.

Every scenario names one app (``module:attr``) that all servers serve unchanged. HTTP/1.1
scenarios are driven by wrk with benchmarks/lua/bench.lua, which checks every response
(status, body, and for the TechEmpower-style ones the Server and Date headers), or by h2load
``--h1``; the HTTP/2 scenarios (``h2-*``, ``http2=True``) by h2load over cleartext with
prior knowledge (h2c, RFC 9113 3.3), whatever the HTTP/1.1 generator; the websocket scenario
by the C client in benchmarks/wsload/.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from benchmarks.apps import raw

FRAMEWORK_JSON = b'{"message":"Hello, World!"}'


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    app: str
    kind: str = "http"  # "http" (wrk or h2load) or "websocket" (wsload)
    #: HTTP/2 over cleartext with prior knowledge (h2c), driven by h2load without --h1;
    #: ``pipeline`` is then the streams in flight per connection (h2load -m)
    http2: bool = False
    method: str = "GET"
    path: str = "/"
    body_bytes: int = 0  # request body size (a repeating 16-byte pattern)
    connections: int = 64
    pipeline: int = 1  # requests written back to back on a connection (h2: concurrent streams)
    #: how bench.lua checks each body: "eq" (== expected), "len", "echo", "none"
    check: str = "eq"
    expected: bytes = b""
    #: TechEmpower rules: every response carries Server and Date
    require_server_date: bool = False
    #: websocket scenario: messages in flight per connection, and message size
    ws_window: int = 8
    ws_size: int = 32
    #: binary messages instead of text; permessage-deflate negotiated (RFC 7692)
    ws_binary: bool = False
    ws_deflate: bool = False
    #: pipelined latency from wrk is per batch, not per request: not reported
    latency_meaningful: bool = True

    @property
    def unit(self) -> str:
        return "msg/s" if self.kind == "websocket" else "req/s"

    def request_body(self) -> bytes:
        return make_body(self.body_bytes)


def make_body(n: int) -> bytes:
    """The request body bench.lua sends (same pattern, so the precheck agrees with it)."""
    pattern = b"0123456789abcdef"
    return (pattern * (n // len(pattern) + 1))[:n]


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="plaintext",
            description="GET, 13-byte text/plain answer, 64 keep-alive connections",
            app="benchmarks.apps.raw:plaintext",
            expected=raw.PLAINTEXT,
        ),
        Scenario(
            name="json",
            description="GET, JSON serialised per request, 64 connections",
            app="benchmarks.apps.raw:json_app",
            path="/json",
            expected=json.dumps(raw.JSON_MESSAGE).encode(),
        ),
        Scenario(
            name="pipelined",
            description="plaintext, 16 requests pipelined per write, 128 connections; "
            "Server and Date headers required (TechEmpower rules)",
            app="benchmarks.apps.raw:plaintext",
            path="/plaintext",
            connections=128,
            pipeline=16,
            expected=raw.PLAINTEXT,
            require_server_date=True,
            latency_meaningful=False,
        ),
        Scenario(
            name="echo-64k",
            description="POST of a 64 KiB body, echoed back, 32 connections",
            app="benchmarks.apps.raw:echo",
            method="POST",
            path="/echo",
            body_bytes=64 * 1024,
            connections=32,
            check="echo",
        ),
        Scenario(
            name="echo-1m",
            description="POST of a 1 MiB body, echoed back, 16 connections",
            app="benchmarks.apps.raw:echo",
            method="POST",
            path="/echo",
            body_bytes=1024 * 1024,
            connections=16,
            check="echo",
        ),
        Scenario(
            name="stream",
            description=f"GET, {raw.STREAM_CHUNKS} body messages of {raw.STREAM_CHUNK_SIZE} bytes "
            "(chunked transfer coding), 64 connections",
            app="benchmarks.apps.raw:stream",
            path="/stream",
            check="len",
            expected=raw.STREAM_BODY,
        ),
        Scenario(
            name="conns-1k",
            description="plaintext over 1,000 keep-alive connections",
            app="benchmarks.apps.raw:plaintext",
            connections=1000,
            expected=raw.PLAINTEXT,
        ),
        Scenario(
            name="websocket",
            description="websocket echo: 8 connections x 8 messages in flight, 32-byte text "
            "messages (msgs/s)",
            app="benchmarks.apps.raw:ws_echo",
            kind="websocket",
            path="/ws",
            connections=8,
            ws_window=8,
            ws_size=32,
        ),
        Scenario(
            name="websocket-64k",
            description="websocket echo: 8 connections x 2 messages in flight, 64 KiB binary "
            "messages (msgs/s)",
            app="benchmarks.apps.raw:ws_echo",
            kind="websocket",
            path="/ws",
            connections=8,
            ws_window=2,
            ws_size=65536,
            ws_binary=True,
        ),
        Scenario(
            name="websocket-deflate",
            description="websocket echo with permessage-deflate: 8 connections x 8 messages in "
            "flight, 1 KiB text messages (msgs/s)",
            app="benchmarks.apps.raw:ws_echo",
            kind="websocket",
            path="/ws",
            connections=8,
            ws_window=8,
            ws_size=1024,
            ws_deflate=True,
        ),
        Scenario(
            name="fastapi",
            description="FastAPI app, async JSON endpoint, 64 connections",
            app="benchmarks.apps.fastapi_app:app",
            path="/json",
            expected=FRAMEWORK_JSON,
        ),
        Scenario(
            name="starlette",
            description="Starlette app, JSONResponse endpoint, 64 connections",
            app="benchmarks.apps.starlette_app:app",
            path="/json",
            expected=FRAMEWORK_JSON,
        ),
        # HTTP/2: the same apps as plaintext and echo-64k, over h2c.
        Scenario(
            name="h2-plaintext-m16",
            description="HTTP/2 (h2c): GET, 13-byte text/plain answer, 64 connections x 16 "
            "concurrent streams",
            app="benchmarks.apps.raw:plaintext",
            http2=True,
            pipeline=16,
            expected=raw.PLAINTEXT,
        ),
        Scenario(
            name="h2-plaintext-m1",
            description="HTTP/2 (h2c): GET, 13-byte text/plain answer, 64 connections x 1 stream",
            app="benchmarks.apps.raw:plaintext",
            http2=True,
            expected=raw.PLAINTEXT,
        ),
        Scenario(
            name="h2-echo-64k",
            description="HTTP/2 (h2c): POST of a 64 KiB body, echoed back, 32 connections x 1 stream",
            app="benchmarks.apps.raw:echo",
            http2=True,
            method="POST",
            path="/echo",
            body_bytes=64 * 1024,
            connections=32,
            check="echo",
        ),
    )
}
