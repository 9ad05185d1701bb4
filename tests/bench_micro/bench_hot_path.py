"""Micro-benchmarks of fastasgi's hot path (pytest-benchmark), outside the normal test run.

Run them (from the repository root) with:

    python -m pytest tests/bench_micro -o python_files='bench_*.py'

The files are named bench_*.py, so a plain ``pytest`` never collects them.

Each benchmark feeds raw request bytes to ``HttpProtocol.data_received`` over a fake
transport that only collects what is written, with an app that never really suspends, so
the whole request cycle runs synchronously, with no event loop turn, exactly as the server's
eager path does. The pieces are measured by difference:

- parse + build the scope: ``cycle_minimal`` vs ``cycle_browser_headers`` (13 more request
  headers), and ``cycle_scope_escapes`` (percent-decoded path, long query string);
- serialise the response head: ``cycle_minimal`` vs ``cycle_many_response_headers``;
- bodies: a small POST read by the app, a chunked request body, a streamed (chunked) response;
- ``pipelined_16``: 16 requests in one ``data_received``;
- ``format_date`` (once a second in the server, measured for completeness);
- ``httptools_parse_*``: httptools (uvicorn's parser) parsing the same bytes with Python
  callbacks, for scale: it is parsing only, no scope, no app, no response.
"""

import asyncio
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
if list((SRC / "fastasgi" / "_http").glob("_core*.so")) and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))  # built in place: prefer it to an installed copy

core = pytest.importorskip("fastasgi._http._core", reason="fastasgi's extension is not built")

MINIMAL = b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"
BROWSER = (
    b"GET /static/app.js HTTP/1.1\r\n"
    b"Host: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Referer: http://localhost:8000/index.html\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: script\r\n"
    b"Sec-Fetch-Mode: no-cors\r\n"
    b"Sec-Fetch-Site: same-origin\r\n"
    b"Priority: u=2\r\n"
    b"Cache-Control: max-age=0\r\n"
    b"\r\n"
)
ESCAPES = (
    b"GET /caf%C3%A9/menu%20items/%E2%9C%93?q=hello+world&page=2&sort=price%2Cdesc&tags=a&tags=b"
    b"&filter=%7B%22x%22%3A1%7D HTTP/1.1\r\nHost: localhost:8000\r\n\r\n"
)
POST_JSON = (
    b"POST /items HTTP/1.1\r\nHost: localhost:8000\r\nContent-Type: application/json\r\n"
    b'Content-Length: 27\r\n\r\n{"message":"Hello, World!"}'
)
POST_CHUNKED = (
    b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nTransfer-Encoding: chunked\r\n\r\n"
    + b"".join(b"%x\r\n" % 256 + b"z" * 256 + b"\r\n" for _ in range(4))
    + b"0\r\n\r\n"
)

START = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
BODY = {"type": "http.response.body", "body": b"Hello, World!"}
MANY = {
    "type": "http.response.start",
    "status": 200,
    "headers": [
        (b"content-type", b"application/json"),
        (b"cache-control", b"no-store, max-age=0"),
        (b"x-request-id", b"6f1c2a9e-5b3d-4e0f-9a7c-1d2e3f405162"),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
        (b"vary", b"Accept-Encoding"),
        (b"etag", b'W/"5e15153d-120f"'),
        (b"set-cookie", b"session=0123456789abcdef; Path=/; HttpOnly; SameSite=Lax"),
        (b"content-length", b"13"),
    ],
}


class FakeTransport:
    """Collects writes; everything else an asyncio transport offers is a no-op."""

    def __init__(self):
        self.out = []
        self.closing = False

    def get_extra_info(self, name, default=None):
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 54321)}.get(name, default)

    def write(self, data):
        self.out.append(data)

    def writelines(self, chunks):
        self.out.extend(chunks)

    def is_closing(self):
        return self.closing

    def close(self):
        self.closing = True

    abort = close

    def pause_reading(self):
        pass

    def resume_reading(self):
        pass

    def set_protocol(self, protocol):
        pass


async def app_plain(scope, receive, send):
    await send(START)
    await send(BODY)


async def app_scope(scope, receive, send):
    # touch what a router reads
    if scope["path"] and scope["query_string"] and scope["headers"]:
        await send(START)
        await send(BODY)


async def app_many_headers(scope, receive, send):
    await send(MANY)
    await send(BODY)


async def app_read_body(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(START)
    await send({"type": "http.response.body", "body": b"%d" % len(body)})


async def app_stream(scope, receive, send):
    await send(START)
    for _ in range(4):
        await send({"type": "http.response.body", "body": b"x" * 256, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def connection(loop, app):
    ctx = core.ServerContext(app, loop)
    transport = FakeTransport()
    proto = core.HttpProtocol(ctx)
    proto.connection_made(transport)
    return proto, transport


def run_cycle(benchmark, loop, app, request, responses=1):
    proto, transport = connection(loop, app)
    out = transport.out

    def one():
        out.clear()
        proto.data_received(request)

    benchmark(one)
    wire = b"".join(out)
    assert wire.count(b"HTTP/1.1 200 OK\r\n") == responses, wire[:300]
    assert not loop._ready, "the cycle scheduled loop callbacks: not the eager path"
    return wire


def test_cycle_minimal(benchmark, loop):
    assert run_cycle(benchmark, loop, app_plain, MINIMAL).endswith(b"\r\n\r\nHello, World!")


def test_cycle_browser_headers(benchmark, loop):
    run_cycle(benchmark, loop, app_plain, BROWSER)


def test_cycle_scope_escapes(benchmark, loop):
    run_cycle(benchmark, loop, app_scope, ESCAPES)


def test_cycle_many_response_headers(benchmark, loop):
    assert b"x-request-id: 6f1c2a9e" in run_cycle(benchmark, loop, app_many_headers, MINIMAL)


def test_cycle_post_small_body(benchmark, loop):
    assert run_cycle(benchmark, loop, app_read_body, POST_JSON).endswith(b"27")


def test_cycle_chunked_request_body(benchmark, loop):
    assert run_cycle(benchmark, loop, app_read_body, POST_CHUNKED).endswith(b"1024")


def test_cycle_streamed_response(benchmark, loop):
    assert run_cycle(benchmark, loop, app_stream, MINIMAL).endswith(b"0\r\n\r\n")


def test_pipelined_16(benchmark, loop):
    run_cycle(benchmark, loop, app_plain, MINIMAL * 16, responses=16)


def test_format_date(benchmark):
    assert benchmark(core.format_date, 1795000000.0).endswith(b" GMT")


class _Collect:
    """What uvicorn's protocol does per callback: keep the URL and header pairs."""

    def __init__(self):
        self.url = b""
        self.headers = []
        self.done = 0

    def on_url(self, url):
        self.url += url

    def on_header(self, name, value):
        self.headers.append((name.lower(), value))

    def on_message_complete(self):
        self.done += 1


@pytest.mark.parametrize("request_bytes", [MINIMAL, BROWSER], ids=["minimal", "browser_headers"])
def test_httptools_parse(benchmark, request_bytes):
    httptools = pytest.importorskip("httptools")
    sink = _Collect()
    parser = httptools.HttpRequestParser(sink)

    def one():
        sink.headers = []
        sink.url = b""
        parser.feed_data(request_bytes)

    benchmark(one)
    assert sink.done > 0 and sink.url
