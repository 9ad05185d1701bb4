"""HTTP/2 in-process: the compiled core over a fake transport, a real client state machine
(the ``h2`` library, python-hyper's) on the other end.

The connection starts as HTTP/1.1 (HttpProtocol) and is handed to H2Protocol by its first
bytes; everything the server writes is fed to the client, whose events the tests read. The
same exchanges are delivered whole and byte by byte. End-to-end tests with real clients
(curl, httpx, h2load) and the raw-frame conformance suite are in tests/e2e.
"""

from __future__ import annotations

import asyncio

import h2.config
import h2.connection
import h2.events
import h2.settings
import pytest
from hpack import Decoder, Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from support.inproc import advance, call, connect, feed, lose, make_ctx, run_until_idle


class Client:
    """An HTTP/2 client (h2's state machine) talking to one in-process connection."""

    def __init__(self, app, split=None, **ctx_kw) -> None:
        self.ctx = make_ctx(app, **ctx_kw)
        self.loop = self.ctx.loop
        self.proto, self.transport = connect(self.ctx)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        self.split = split
        self.events: list = []
        self.conn.initiate_connection()
        self.flush()

    def flush(self) -> None:
        """Send what the client has queued, then read what the server answered."""
        data = self.conn.data_to_send()
        if data:
            feed(self.proto, data, self.split)
        self.read()

    def read(self) -> None:
        run_until_idle(self.loop)
        out = self.transport.take()
        if out:
            self.events.extend(self.conn.receive_data(out))
            extra = self.conn.data_to_send()  # SETTINGS ACKs, WINDOW_UPDATEs of the client
            if extra:
                feed(self.proto, extra)
                self.read()

    def request(self, method="GET", path="/", headers=(), body=None, end=True) -> int:
        stream = self.conn.get_next_available_stream_id()
        fields = [
            (b":method", method.encode()),
            (b":scheme", b"http"),
            (b":authority", b"example.org"),
            (b":path", path.encode()),
            *headers,
        ]
        self.conn.send_headers(stream, fields, end_stream=body is None and end)
        if body is not None:
            self.send_body(stream, body, end)
        self.flush()
        return stream

    def send_body(self, stream: int, body: bytes, end: bool) -> None:
        size = self.conn.max_outbound_frame_size
        for i in range(0, max(len(body), 1), size):
            last = i + size >= len(body)
            self.conn.send_data(stream, body[i : i + size], end_stream=end and last)

    def of(self, stream: int, kind) -> list:
        return [e for e in self.events if isinstance(e, kind) and getattr(e, "stream_id", None) == stream]

    def response(self, stream: int) -> tuple[int, dict, bytes]:
        heads = self.of(stream, h2.events.ResponseReceived)
        assert heads, f"no response on stream {stream}: {self.events}"
        headers = dict(heads[0].headers)
        body = b"".join(e.data for e in self.of(stream, h2.events.DataReceived))
        for e in self.of(stream, h2.events.DataReceived):
            self.conn.acknowledge_received_data(e.flow_controlled_length, stream)
        return int(headers[b":status"]), headers, body

    def ended(self, stream: int) -> bool:
        return bool(self.of(stream, h2.events.StreamEnded))

    def reset(self, stream: int):
        resets = self.of(stream, h2.events.StreamReset)
        return resets[0].error_code if resets else None


async def hello(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello"})


def scope_app(seen):
    async def app(scope, receive, send):
        seen.append(scope)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    return app


async def echo(scope, receive, send):
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("split", [None, "bytewise"], ids=["whole", "bytewise"])
def test_get_and_scope(split):
    seen = []
    client = Client(scope_app(seen), split=split)
    assert client.proto.state_name == "UPGRADED"
    assert client.transport.get_protocol().state_name == "OPEN"
    stream = client.request(
        path="/a%20b?x=1", headers=[(b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"x-y", b"z")]
    )
    status, headers, body = client.response(stream)
    assert (status, body) == (204, b"") and client.ended(stream)
    assert headers[b"server"] == b"fastasgi"
    scope = seen[0]
    assert scope["http_version"] == "2" and scope["method"] == "GET" and scope["scheme"] == "http"
    assert scope["path"] == "/a b" and scope["raw_path"] == b"/a%20b" and scope["query_string"] == b"x=1"
    # :authority becomes the host header; split cookies are joined (RFC 9113 8.2.3)
    assert scope["headers"] == [(b"host", b"example.org"), (b"x-y", b"z"), (b"cookie", b"a=1; b=2")]
    assert scope["extensions"] == {
        "http.response.early_hint": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
        "http.response.trailers": {},
    }
    assert scope["client"] == ("127.0.0.1", 50000)


def test_response_gets_content_length_and_several_streams_are_served():
    client = Client(hello)
    streams = [client.request(path=f"/{i}") for i in range(5)]
    for stream in streams:
        status, headers, body = client.response(stream)
        assert (status, body, headers[b"content-length"]) == (200, b"hello", b"5")


def test_connection_specific_fields_and_uppercase_names_from_the_app():
    async def app(scope, receive, send):
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"Connection", b"keep-alive"),
                    (b"Transfer-Encoding", b"chunked"),
                    (b"X-Thing", b"1"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"ok"})

    client = Client(app)
    status, headers, body = client.response(client.request())
    assert status == 200 and body == b"ok"
    assert b"connection" not in headers and b"transfer-encoding" not in headers
    assert headers[b"x-thing"] == b"1"


@pytest.mark.parametrize("split", [None, "bytewise"], ids=["whole", "bytewise"])
def test_request_body_is_echoed(split):
    client = Client(echo, split=split)
    stream = client.request("POST", "/echo", body=b"x" * 3000)
    assert client.response(stream)[2] == b"x" * 3000


def test_flow_control_follows_the_app():
    """The stream window is handed back only as the app takes the body: until then the
    server sends no WINDOW_UPDATE, and a client may send at most the window."""
    gate = asyncio.Event()
    got = []

    async def app(scope, receive, send):
        await gate.wait()
        message = await receive()
        got.append(len(message["body"]))
        while message.get("more_body"):
            message = await receive()
            got.append(len(message["body"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})

    client = Client(app, h2_initial_stream_window_size=65535, h2_initial_connection_window_size=1 << 20)
    stream = client.request("POST", "/", body=b"a" * 60000, end=False)
    assert not client.of(stream, h2.events.WindowUpdated)
    assert client.conn.local_flow_control_window(stream) <= 65535 - 60000
    gate.set()
    client.read()
    # the app took the 60000 bytes: the window is back (the client sees WINDOW_UPDATEs)
    assert client.conn.local_flow_control_window(stream) > 60000
    client.send_body(stream, b"b" * 100, True)
    client.flush()
    assert client.response(stream)[2] == b"done"
    assert sum(got) == 60100


def test_streaming_response_and_trailers():
    async def app(scope, receive, send):
        assert "http.response.trailers" in scope["extensions"]
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/grpc")],
                "trailers": True,
            }
        )
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        await send(
            {"type": "http.response.trailers", "headers": [(b"grpc-status", b"0")], "more_trailers": True}
        )
        await send({"type": "http.response.trailers", "headers": [(b"Grpc-Message", b"fine")]})

    client = Client(app)
    stream = client.request()
    status, headers, body = client.response(stream)
    assert status == 200 and body == b"one two three" and b"content-length" not in headers
    trailers = client.of(stream, h2.events.TrailersReceived)
    assert trailers and dict(trailers[0].headers) == {b"grpc-status": b"0", b"grpc-message": b"fine"}
    assert client.ended(stream)


def test_client_reset_is_a_disconnect_for_the_app():
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())

    client = Client(app)
    stream = client.request("POST", "/", body=b"part", end=False)
    client.conn.reset_stream(stream)
    client.flush()
    assert seen == [{"type": "http.request", "body": b"part", "more_body": True}, {"type": "http.disconnect"}]


@pytest.mark.parametrize("streaming", [False, True], ids=["before-start", "while-streaming"])
def test_app_exception(streaming, error_log):
    async def app(scope, receive, send):
        if scope["path"] == "/ok":
            return await hello(scope, receive, send)
        if streaming:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom")

    client = Client(app)
    stream = client.request()
    assert "Exception in ASGI application\n" in error_log.messages()
    if streaming:
        assert client.reset(stream) == 2  # INTERNAL_ERROR: what was sent stays sent
    else:
        status, _, body = client.response(stream)
        assert (status, body) == (500, b"Internal Server Error")
    # the connection serves on
    assert client.response(client.request(path="/ok"))[2] == b"hello"


def test_limits_are_answered_on_the_stream():
    client = Client(echo, max_body_size=10, header_map="refuse", max_header_bytes=300)
    too_big = client.request("POST", "/", body=b"x" * 11)
    assert client.response(too_big)[0] == 413
    declared = client.request("POST", "/", headers=[(b"content-length", b"20")], body=b"x" * 20)
    assert client.response(declared)[0] == 413
    underscore = client.request(headers=[(b"x_forwarded_for", b"1.2.3.4")])
    assert client.response(underscore)[0] == 400
    large = client.request(headers=[(b"x-big", b"v" * 400)])
    assert client.response(large)[0] == 431
    assert client.response(client.request("POST", "/", body=b"fine"))[2] == b"fine"


def test_request_timeout_gives_504():
    async def app(scope, receive, send):
        await asyncio.sleep(3600)

    client = Client(app, timeout_request=2.0)
    stream = client.request()
    advance(client.loop, client.ctx, 3.0)
    client.read()
    assert client.response(stream)[0] == 504


def test_zero_window_stall_resets_the_stream():
    """A client that never opens its window cannot hold a stream for ever."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"z" * 200_000})

    client = Client(app, timeout_request_body=5.0)
    client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    client.flush()
    stream = client.request()
    assert not client.of(stream, h2.events.DataReceived)
    for _ in range(8):
        advance(client.loop, client.ctx, 1.0)
    client.read()
    assert client.reset(stream) == 8  # CANCEL


def test_shutdown_sends_goaway_and_closes_after_the_streams():
    gate = asyncio.Event()

    async def app(scope, receive, send):
        await gate.wait()
        await hello(scope, receive, send)

    client = Client(app)
    stream = client.request()
    call(client.ctx, "begin_shutdown")
    frames = frames_of(client.transport.take())
    assert [(type(f).__name__, f.error_code, f.last_stream_id) for f in frames] == [
        ("GoAwayFrame", 0, stream)
    ]
    assert not client.transport.closed  # the stream in flight finishes first
    gate.set()
    run_until_idle(client.loop)
    frames = frames_of(client.transport.take())
    assert [type(f).__name__ for f in frames] == ["HeadersFrame", "DataFrame"]
    assert frames[1].data == b"hello" and "END_STREAM" in frames[1].flags
    run_until_idle(client.loop)
    assert client.transport.closed


def frames_of(data: bytes) -> list:
    """The frames in ``data`` (hyperframe), for a client that can no longer parse them
    (h2's client closes itself on GOAWAY)."""
    frames = []
    while data:
        frame, length = Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def test_idle_connection_is_closed_after_keep_alive_timeout():
    client = Client(hello, keep_alive_timeout=5)
    client.response(client.request())
    advance(client.loop, client.ctx, 6.0)
    client.read()
    assert [e for e in client.events if isinstance(e, h2.events.ConnectionTerminated)]
    assert client.transport.closed


def test_lost_connection_disconnects_every_stream():
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())

    client = Client(app)
    client.request("POST", "/", body=b"a", end=False)
    client.request("POST", "/", body=b"b", end=False)
    lose(client.proto)  # the transport's protocol is the H2Protocol now
    run_until_idle(client.loop)
    assert seen.count({"type": "http.disconnect"}) == 2


def test_http11_is_unchanged_with_http2_on():
    ctx = make_ctx(hello)
    proto, transport = connect(ctx)
    feed(proto, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", "bytewise")
    assert transport.take().startswith(b"HTTP/1.1 200 OK\r\n")
    assert proto.state_name == "IDLE"


def test_no_http2_serves_the_preface_as_http11():
    ctx = make_ctx(hello, http2=False)
    proto, transport = connect(ctx)
    feed(proto, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    # llhttp refuses "PRI * HTTP/2.0" as an HTTP/1.1 request (the version): not HTTP/2
    assert transport.output().startswith(b"HTTP/1.1 505 ") or transport.output().startswith(b"HTTP/1.1 400 ")
    assert proto.state_name in ("CLOSING", "CLOSED")


# -- defences, with raw frames (hyperframe, hpack) ------------------------------------------------
# Each one is bounded: the connection ends with GOAWAY and the code RFC 9113 gives, or the
# stream is refused, and nothing grows without limit.

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ENHANCE_YOUR_CALM = 0xB
REFUSED_STREAM = 0x7
PROTOCOL_ERROR = 0x1


class Raw:
    """A client of raw frames: the preface and an empty SETTINGS, then whatever a test sends."""

    def __init__(self, app=hello, **ctx_kw) -> None:
        self.ctx = make_ctx(app, **ctx_kw)
        self.loop = self.ctx.loop
        self.proto, self.transport = connect(self.ctx)
        self.encoder = Encoder()
        self.frames = self.send(PREFACE + SettingsFrame(0).serialize())

    def send(self, data: bytes) -> list:
        if not self.transport.closed:
            feed(self.proto, data)
        run_until_idle(self.loop)
        frames = frames_of(self.transport.take())
        self.frames_seen = getattr(self, "frames_seen", []) + frames
        return frames

    def headers(self, stream: int, end_stream: bool = True, end_headers: bool = True, extra=()) -> bytes:
        block = self.encoder.encode(
            [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/"), *extra]
        )
        flags = ["END_STREAM"] * end_stream + ["END_HEADERS"] * end_headers
        return HeadersFrame(stream, block, flags=flags).serialize()

    def goaway(self):
        found = [f for f in self.frames_seen if isinstance(f, GoAwayFrame)]
        return found[0].error_code if found else None


def test_ping_flood_ends_the_connection():
    raw = Raw()
    raw.send(b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(1200)))
    assert raw.goaway() == ENHANCE_YOUR_CALM
    run_until_idle(raw.loop)
    assert raw.transport.closed
    # under the budget, every PING is answered, once a second
    raw = Raw()
    raw.send(b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(500)))
    advance(raw.loop, raw.ctx, 1.0)
    frames = raw.send(b"".join(PingFrame(0, opaque_data=b"12345678").serialize() for _ in range(500)))
    assert raw.goaway() is None
    assert sum(isinstance(f, PingFrame) and "ACK" in f.flags for f in raw.frames_seen) == 1000
    assert frames


def test_settings_and_empty_data_floods_end_the_connection():
    raw = Raw()
    raw.send(b"".join(SettingsFrame(0).serialize() for _ in range(1100)))
    assert raw.goaway() == ENHANCE_YOUR_CALM
    raw = Raw(app=echo)
    raw.send(raw.headers(1, end_stream=False))
    raw.send(b"".join(DataFrame(1, b"").serialize() for _ in range(1100)))
    assert raw.goaway() == ENHANCE_YOUR_CALM


def test_rapid_reset_ends_the_connection():
    """CVE-2023-44487: streams opened and reset at once, faster than nghttp2's limit (a burst
    of 1000, then 33 a second)."""
    started = []

    async def app(scope, receive, send):
        started.append(1)
        await asyncio.sleep(3600)

    raw = Raw(app=app)
    data = b"".join(
        raw.headers(i) + RstStreamFrame(i, error_code=8).serialize() for i in range(1, 2 * 1200, 2)
    )
    raw.send(data)
    # the 1001st RST_STREAM in a second ends it before nghttp2's own limit (which would
    # answer INTERNAL_ERROR) and before any more of the read starts an app
    assert raw.goaway() == ENHANCE_YOUR_CALM
    run_until_idle(raw.loop)
    assert raw.transport.closed
    assert len(started) <= 1001


def test_continuation_flood_ends_the_connection():
    """CVE-2024-27316 family: a header block that never ends, in CONTINUATION frames."""
    raw = Raw()
    data = raw.headers(1, end_headers=False)
    data += b"".join(ContinuationFrame(1, b"").serialize() for _ in range(20))
    raw.send(data)
    assert raw.goaway() is not None
    run_until_idle(raw.loop)
    assert raw.transport.closed


def test_hpack_bomb_is_a_431_not_memory():
    """A 4 KiB field put in the dynamic table once, then referenced by its 1-byte index many
    times: the decoded list would be megabytes. Past the header-list limit the request is
    answered 431 and no field is kept."""
    raw = Raw(max_header_bytes=16384)
    big = ("x-bomb", "b" * 4000)
    first = raw.encoder.encode(
        [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/"), big]
    )
    raw.send(HeadersFrame(1, first, flags=["END_STREAM", "END_HEADERS"]).serialize())
    block = raw.encoder.encode([(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/")])
    index = raw.encoder.encode([big])  # now an index into the dynamic table: one byte
    assert len(index) <= 2
    raw.send(HeadersFrame(3, block + index * 3000, flags=["END_STREAM", "END_HEADERS"]).serialize())
    decoder = Decoder()  # the server's encoder is one for the connection: decode in order
    statuses = {
        f.stream_id: decoder.decode(f.data)[0] for f in raw.frames_seen if isinstance(f, HeadersFrame)
    }
    assert statuses == {1: (":status", "200"), 3: (":status", "431")}


def test_max_concurrent_streams():
    """RFC 9113 5.1.2: a stream beyond the limit is refused. Before the client acknowledged
    the SETTINGS that set the limit, with RST_STREAM(REFUSED_STREAM); after, nghttp2 treats
    it as a connection error (GOAWAY PROTOCOL_ERROR; the RFC asks for a stream error, and
    nghttp2 chooses the stronger answer to a client that knew the limit)."""

    async def app(scope, receive, send):
        await asyncio.sleep(3600)

    raw = Raw(app=app, h2_max_concurrent_streams=3)
    raw.send(b"".join(raw.headers(i) for i in (1, 3, 5, 7)))
    resets = [f for f in raw.frames_seen if isinstance(f, RstStreamFrame)]
    assert [(f.stream_id, f.error_code) for f in resets] == [(7, REFUSED_STREAM)]
    assert raw.goaway() is None

    raw = Raw(app=app, h2_max_concurrent_streams=3)
    raw.send(SettingsFrame(0, flags=["ACK"]).serialize())
    raw.send(b"".join(raw.headers(i) for i in (1, 3, 5, 7)))
    assert raw.goaway() == PROTOCOL_ERROR


def test_settings_advertised():
    raw = Raw(
        h2_max_concurrent_streams=7,
        h2_initial_stream_window_size=12345,
        h2_max_frame_size=20000,
        max_header_bytes=4321,
    )
    settings = next(f for f in raw.frames if isinstance(f, SettingsFrame) and "ACK" not in f.flags).settings
    assert settings == {
        SettingsFrame.MAX_CONCURRENT_STREAMS: 7,
        SettingsFrame.INITIAL_WINDOW_SIZE: 12345,
        SettingsFrame.MAX_FRAME_SIZE: 20000,
        SettingsFrame.MAX_HEADER_LIST_SIZE: 4321,
    }
    updates = [f for f in raw.frames if isinstance(f, WindowUpdateFrame)]
    assert updates[0].stream_id == 0 and updates[0].window_increment == 4 * 1024 * 1024 - 65535
