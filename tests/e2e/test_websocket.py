"""WebSockets against the real server: ``python -m fastasgi ws_echo:app`` (tests/apps/ws_echo.py)
and the FastAPI / Starlette apps, over loopback.

The ``websockets`` client drives the ordinary paths; raw sockets check the handshake bytes,
protocol violations (RFC 6455 close codes), keepalive and flow control, where a client library
would hide or refuse what is being tested. What the app saw (disconnect codes, message counts)
is read back from the app over HTTP ``GET /events``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import signal
import struct
import time
import uuid
import zlib
from dataclasses import dataclass

import pytest
from websockets.asyncio.client import connect as aconnect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from support.client import TIMEOUT, RawConn, http_get

APP = "ws_echo:app"

# RFC 6455 1.3: the sample key and the Sec-WebSocket-Accept the server must derive from it.
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

TEXT, BINARY, CONT, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def echo(serve):
    return serve(APP)


def url(server, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def token() -> str:
    return uuid.uuid4().hex[:12]


def client(server, path: str, **kwargs):
    kwargs.setdefault("open_timeout", TIMEOUT)
    kwargs.setdefault("close_timeout", TIMEOUT)
    kwargs.setdefault("max_size", None)
    return connect(url(server, path), **kwargs)


def events(server, key: str, pred=bool, timeout: float = 5.0) -> list:
    """What the app filed under ``key`` (path?query), once ``pred`` holds or the time is up."""
    deadline = time.monotonic() + timeout
    while True:
        found = http_get(server.port, "/events").json().get(key, [])
        if pred(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.03)


def upgrade_request(path: str, extra: bytes = b"", key: bytes = KEY, version: bytes = b"13") -> bytes:
    return (
        b"GET "
        + path.encode()
        + b" HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\nSec-WebSocket-Version: "
        + version
        + b"\r\n"
        + extra
        + b"\r\n"
    )


def open_raw(server, path: str = "/echo", extra: bytes = b"", after: bytes = b""):
    """A raw connection past a successful handshake: (RawConn, 101 response)."""
    conn = RawConn(server.port)
    conn.send(upgrade_request(path, extra) + after)
    resp = conn.read_response()
    assert resp.status == 101, resp.raw
    return conn, resp


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    mask: bool = True,
    rsv: int = 0,
    length: int | None = None,
) -> bytes:
    """A client frame (RFC 6455 5.2); masked unless told otherwise. ``length`` overrides the
    declared payload length."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


@dataclass
class Frame:
    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes


def read_frame(conn: RawConn, timeout: float = TIMEOUT) -> Frame:
    b1, b2 = conn.read_exact(2, timeout)
    assert not b2 & 0x80, "RFC 6455 5.1: a server never masks its frames"
    n = b2 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", conn.read_exact(2, timeout))
    elif n == 127:
        (n,) = struct.unpack("!Q", conn.read_exact(8, timeout))
    return Frame(bool(b1 & 0x80), bool(b1 & 0x40), b1 & 0x0F, conn.read_exact(n, timeout))


def read_close(conn: RawConn, timeout: float = TIMEOUT) -> tuple[int | None, bytes, list[Frame]]:
    """Frames up to the server's close frame: (code, reason, frames before it)."""
    before = []
    while True:
        f = read_frame(conn, timeout)
        if f.opcode == CLOSE:
            if not f.payload:
                return None, b"", before
            return struct.unpack("!H", f.payload[:2])[0], f.payload[2:], before
        before.append(f)


def deflate(data: bytes, wbits: int = 12) -> bytes:
    """RFC 7692 7.2.1: raw DEFLATE, sync-flushed, the 00 00 ff ff tail removed."""
    c = zlib.compressobj(wbits=-wbits)
    out = c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def inflate(data: bytes) -> bytes:
    return zlib.decompressobj(wbits=-15).decompress(data + b"\x00\x00\xff\xff")


def assert_echo_alive(server) -> None:
    with client(server, "/echo") as ws:
        ws.send("still alive")
        assert ws.recv(timeout=TIMEOUT) == "still alive"


# --------------------------------------------------------------------------- handshake & scope


def test_handshake_response_bytes(echo):
    conn, resp = open_raw(echo)
    with conn:
        assert resp.raw.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        # RFC 6455 4.2.2; header order as on every fastasgi response (notes/WIRE.md)
        assert resp.names() == [b"server", b"date", b"upgrade", b"connection", b"sec-websocket-accept"]
        assert resp.header("server") == b"fastasgi"
        assert resp.header("upgrade") == b"websocket"
        assert resp.header("connection").lower() == b"upgrade"
        assert resp.header("sec-websocket-accept") == ACCEPT
        # the accept value is derived as RFC 6455 4.2.2 says, not just copied from the RFC
        guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
        assert base64.b64encode(hashlib.sha1(KEY + guid).digest()) == ACCEPT


def test_scope(echo):
    with client(
        echo,
        "/scope/caf%C3%A9%20x?a=1&b=%20",
        subprotocols=["one", "two"],
        additional_headers={"X-Custom": "yes"},
    ) as ws:
        scope = json.loads(ws.recv(timeout=TIMEOUT))
        local_port = ws.socket.getsockname()[1]
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/scope/café x"
    assert scope["raw_path"] == "/scope/caf%C3%A9%20x"
    assert scope["query_string"] == "a=1&b=%20"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == ["one", "two"]
    assert scope["client"] == ["127.0.0.1", local_port]
    assert scope["server"] == ["127.0.0.1", echo.port]
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["has_state"] is True
    assert ["x-custom", "yes"] in scope["headers"]
    assert "method" not in scope


def test_scope_root_path_matches_http_scope(serve):
    server = serve(APP, "--root-path", "/api")
    with client(server, "/scope/x") as ws:
        scope = json.loads(ws.recv(timeout=TIMEOUT))
    plain = http_get(server.port, "/scope/x")
    assert scope["root_path"] == "/api"
    # the websocket scope carries the path exactly as the http scope of the same request does
    assert plain.body == b"plain http " + scope["path"].encode()


def test_subprotocol_negotiation(echo):
    with client(echo, "/subprotocol", subprotocols=["a", "chat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["X-Accept"] == "yes"  # headers from websocket.accept
        assert ws.recv(timeout=TIMEOUT) == '["a", "chat"]'
    with client(echo, "/subprotocol", subprotocols=["a"]) as ws:
        assert ws.subprotocol is None
        assert "Sec-WebSocket-Protocol" not in ws.response.headers


def test_bad_handshakes_get_http_errors(echo):
    with RawConn(echo.port) as conn:
        conn.send(upgrade_request("/echo", version=b"8"))
        resp = conn.read_response()
        # RFC 6455 4.4: an unsupported version gets the versions the server speaks
        assert resp.status == 426
        assert resp.header("sec-websocket-version") == b"13"
        assert resp.header("connection") == b"close"
        assert conn.is_closed()
    with RawConn(echo.port) as conn:
        conn.send(upgrade_request("/echo", key=b"not-base64-16-bytes"))
        resp = conn.read_response()
        assert resp.status == 400
        assert conn.is_closed()
    assert_echo_alive(echo)


def test_early_frames_are_kept_until_accept(echo):
    # RFC 6455 lets a client send frames right behind its handshake request.
    conn, _ = open_raw(echo, after=frame(TEXT, b"early") + frame(PING, b"p"))
    with conn:
        got = [read_frame(conn) for _ in range(2)]
        # the pong comes from the server at once, the echo from the app
        assert sorted((f.opcode, f.payload) for f in got) == [(TEXT, b"early"), (PONG, b"p")]


# --------------------------------------------------------------------------- messages


def test_echo_text_and_binary(echo):
    with client(echo, "/echo") as ws:
        for message in ["hello", "", "héllo wörld ✓ 🎉", "x" * 200]:
            ws.send(message)
            assert ws.recv(timeout=TIMEOUT) == message
        for message in [b"\x00\x01\x02", b"", bytes(range(256))]:
            ws.send(message)
            got = ws.recv(timeout=TIMEOUT)
            assert isinstance(got, bytes) and got == message


@pytest.mark.parametrize("compression", ["deflate", None])
def test_one_megabyte_messages(echo, compression):
    text = "".join(chr(0x20 + i % 90) for i in range(1 << 20))
    data = os.urandom(1 << 20)
    with client(echo, "/echo", compression=compression) as ws:
        ws.send(text)
        assert ws.recv(timeout=TIMEOUT) == text
        ws.send(data)
        assert ws.recv(timeout=TIMEOUT) == data


def test_many_messages_in_order(echo):
    with client(echo, "/echo") as ws:
        for i in range(3000):
            ws.send(f"message {i}")
        got = [ws.recv(timeout=TIMEOUT) for _ in range(3000)]
    assert got == [f"message {i}" for i in range(3000)]


def test_fragmented_message_is_delivered_whole(echo):
    with client(echo, "/echo") as ws:
        ws.send(["frag", "ment", "ed ✓"])
        assert ws.recv(timeout=TIMEOUT) == "fragmented ✓"
        ws.send([b"\x01", b"\x02\x03"])
        assert ws.recv(timeout=TIMEOUT) == b"\x01\x02\x03"


def test_many_concurrent_connections(echo):
    async def one(n):
        async with aconnect(url(echo, "/echo"), open_timeout=TIMEOUT) as ws:
            for i in range(50):
                await ws.send(f"{n}:{i}")
            return [await ws.recv() for _ in range(50)]

    async def main():
        return await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(50))), 30)

    results = asyncio.run(main())
    for n, got in enumerate(results):
        assert got == [f"{n}:{i}" for i in range(50)]


# --------------------------------------------------------------------------- deny & errors


def test_close_before_accept_is_403(echo):
    t = token()
    with RawConn(echo.port) as conn:
        conn.send(upgrade_request(f"/deny?t={t}"))
        resp = conn.read_response()
        assert resp.status == 403
        assert resp.header("connection") == b"close"
        assert resp.body == b"Forbidden"
        assert conn.is_closed()
    # the app gets its websocket.disconnect after the denial
    assert events(echo, f"/deny?t={t}") == [{"after_deny": "websocket.disconnect", "code": 1006}]
    with pytest.raises(InvalidStatus) as info, client(echo, "/deny"):
        pass
    assert info.value.response.status_code == 403


def test_denial_response_extension(echo):
    with RawConn(echo.port) as conn:
        conn.send(upgrade_request("/deny-http"))
        resp = conn.read_response()
        assert resp.status == 401
        assert resp.header("www-authenticate") == b"Bearer"
        assert resp.header("content-type") == b"text/plain"
        # streamed body (more_body=True first): chunked, then the connection closes
        assert resp.header("transfer-encoding") == b"chunked"
        assert resp.body == b"no entry"
        assert conn.is_closed()
    with pytest.raises(InvalidStatus) as info, client(echo, "/deny-http-single"):
        pass
    assert info.value.response.status_code == 418
    assert info.value.response.body == b"short and stout"
    assert info.value.response.headers["Content-Length"] == "15"


@pytest.mark.parametrize(
    "path, needle",
    [
        ("/error-before-accept", "Exception in ASGI application"),
        ("/return-before-accept", "ASGI callable returned without sending handshake"),
    ],
)
def test_app_failure_before_accept_is_500(echo, path, needle):
    mark = echo.log_mark()
    with RawConn(echo.port) as conn:
        conn.send(upgrade_request(path))
        resp = conn.read_response()
        assert resp.status == 500
        assert resp.body == b"Internal Server Error"
        assert conn.is_closed()
    log = echo.wait_log(mark, needle)
    assert log.count(needle) == 1, log
    if path == "/error-before-accept":
        assert "RuntimeError: boom before accept" in log
    assert_echo_alive(echo)


def test_header_injection_in_accept_is_refused(echo):
    mark = echo.log_mark()
    with RawConn(echo.port) as conn:
        conn.send(upgrade_request("/bad-accept-header"))
        resp = conn.read_response()
        assert resp.status == 500
        assert b"injected" not in resp.raw
        assert conn.is_closed()
    assert "Invalid header value" in echo.wait_log(mark, "Invalid header value")


def test_invalid_close_code_from_app_is_an_app_error(echo):
    mark = echo.log_mark()
    with client(echo, "/bad-close-code") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011
    assert "Invalid WebSocket close code 1005" in echo.wait_log(mark, "Invalid WebSocket close code")


def test_app_error_after_accept_closes_1011_and_logs(echo):
    mark = echo.log_mark()
    with client(echo, "/error-after-accept") as ws:
        ws.send("trigger")
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        # RFC 6455 7.4.1: 1011, an unexpected condition on the server
        assert ws.close_code == 1011
    log = echo.wait_log(mark, "boom after accept")
    assert log.count("Exception in ASGI application") == 1, log
    assert "Traceback" in log and "RuntimeError: boom after accept" in log
    assert_echo_alive(echo)


def test_app_return_after_accept_closes_1000(echo):
    with client(echo, "/return-after-accept") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1000


# --------------------------------------------------------------------------- close codes


def test_server_close_code_and_reason(echo):
    t = token()
    with client(echo, f"/close?code=4001&reason=bye&t={t}") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert (ws.close_code, ws.close_reason) == (4001, "bye")
    assert events(echo, f"/close?code=4001&reason=bye&t={t}") == [{"disconnect": 4001, "reason": "bye"}]


def test_server_close_handshake_on_the_wire(echo):
    conn, _ = open_raw(echo, "/close?code=1001&reason=away")
    with conn:
        code, reason, _ = read_close(conn)
        assert (code, reason) == (1001, b"away")
        # RFC 6455 7.1.2: the server waits for the client's close frame, then closes TCP
        assert conn.idle_for(0.3) == b""
        conn.send(frame(CLOSE, close_payload(1001)))
        assert conn.is_closed()


def test_client_close_code_reaches_app(echo):
    t = token()
    with client(echo, f"/record-close?t={t}") as ws:
        ws.close(4005, "client bye")
        assert ws.close_code == 4005  # echoed by the server
    assert events(echo, f"/record-close?t={t}") == [{"disconnect": 4005, "reason": "client bye"}]


def test_client_close_without_code_is_1005(echo):
    t = token()
    conn, _ = open_raw(echo, f"/record-close?t={t}")
    with conn:
        conn.send(frame(CLOSE))
        f = read_frame(conn)
        assert (f.opcode, f.payload) == (CLOSE, b"")
        assert conn.is_closed()
    assert events(echo, f"/record-close?t={t}") == [{"disconnect": 1005, "reason": ""}]


def test_abrupt_disconnect_is_1006_and_send_raises_oserror(echo):
    t = token()
    conn, _ = open_raw(echo, f"/send-after-close?t={t}")
    conn.abort()
    found = events(echo, f"/send-after-close?t={t}", lambda e: len(e) == 2)
    assert found[0] == {"disconnect": 1006, "reason": ""}
    # ASGI spec 2.4: send() on a closed connection raises an OSError subclass
    assert found[1]["is_oserror"] is True


# --------------------------------------------------------------------------- protocol violations

VIOLATIONS = [
    # (name, frames sent after the handshake, close code the server must send)
    ("reserved data opcode", frame(0x3, b"x"), 1002),
    ("reserved control opcode", frame(0xB, b"x"), 1002),
    ("unmasked client frame", frame(TEXT, b"hi", mask=False), 1002),  # RFC 6455 5.1
    ("invalid utf-8 text", frame(TEXT, b"\xff\xfe"), 1007),  # RFC 6455 8.1
    ("truncated utf-8 text", frame(TEXT, b"ok \xe2\x82"), 1007),
    ("invalid utf-8 across fragments", frame(TEXT, b"ok", fin=False) + frame(CONT, b"\xc3\x28"), 1007),
    ("control frame over 125 bytes", frame(PING, b"x" * 126), 1002),  # RFC 6455 5.5
    ("fragmented control frame", frame(PING, b"x", fin=False), 1002),
    ("rsv1 without extension", frame(TEXT, b"x", rsv=0x40), 1002),  # RFC 6455 5.2
    ("rsv2 set", frame(BINARY, b"x", rsv=0x20), 1002),
    ("continuation without start", frame(CONT, b"x"), 1002),  # RFC 6455 5.4
    ("new message inside fragmented one", frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"), 1002),
    ("close code below 1000", frame(CLOSE, close_payload(999)), 1002),  # RFC 6455 7.4
    ("close code 1005 on the wire", frame(CLOSE, close_payload(1005)), 1002),
    ("close code 1006 on the wire", frame(CLOSE, close_payload(1006)), 1002),
    ("close code 1015 on the wire", frame(CLOSE, close_payload(1015)), 1002),
    ("unassigned close code 2000", frame(CLOSE, close_payload(2000)), 1002),
    ("close code 5000", frame(CLOSE, close_payload(5000)), 1002),
    ("one-byte close payload", frame(CLOSE, b"\x03"), 1002),
    ("close reason not utf-8", frame(CLOSE, close_payload(1000, b"\xff")), 1007),
    ("64-bit length beyond max size", frame(BINARY, b"", length=1 << 62), 1009),
]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("name, data, code", VIOLATIONS, ids=[v[0] for v in VIOLATIONS])
def test_protocol_violation_close_code(echo, name, data, code, mode):
    conn, _ = open_raw(echo)
    with conn:
        conn.send_mode(data, mode)
        got, _, before = read_close(conn)
        assert before == []
        assert got == code, name
        # the server then closes the TCP connection itself, without waiting for the client
        data_after, closed = conn.read_to_eof(3.0)
        assert closed and data_after == b""
    assert_echo_alive(echo)


GOOD = [
    # (name, frames sent, frames expected back as (opcode, payload))
    ("ping gets pong", frame(PING, b"hello"), [(PONG, b"hello")]),
    ("empty ping", frame(PING), [(PONG, b"")]),
    (
        "ping inside fragmented message",
        frame(TEXT, b"ab", fin=False) + frame(PING, b"p") + frame(CONT, b"cd"),
        [(PONG, b"p"), (TEXT, b"abcd")],
    ),
    ("unsolicited pong ignored", frame(PONG, b"x") + frame(TEXT, b"after"), [(TEXT, b"after")]),
    ("empty binary", frame(BINARY), [(BINARY, b"")]),
    (
        "utf-8 split across fragments",
        frame(TEXT, b"\xe2\x82", fin=False) + frame(CONT, b"\xac"),
        [(TEXT, "€".encode())],
    ),
    ("126-byte payload (16-bit length)", frame(BINARY, b"y" * 126), [(BINARY, b"y" * 126)]),
    ("65536-byte payload (64-bit length)", frame(BINARY, b"z" * 65536), [(BINARY, b"z" * 65536)]),
]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("name, data, expected", GOOD, ids=[g[0] for g in GOOD])
def test_valid_frames(echo, name, data, expected, mode):
    if mode == "bytewise" and len(data) > 4096:
        pytest.skip("long input: whole delivery only")
    conn, _ = open_raw(echo)
    with conn:
        conn.send_mode(data, mode)
        got = [read_frame(conn) for _ in expected]
        assert [(f.opcode, f.payload) for f in got] == expected
        assert all(f.fin and not f.rsv1 for f in got)
        conn.send(frame(CLOSE, close_payload(1000)))
        code, _, _ = read_close(conn)
        assert code == 1000
        assert conn.is_closed()


# --------------------------------------------------------------------------- limits


@pytest.fixture(scope="module")
def small(serve):
    return serve(APP, "--ws-max-size", "65536")


def send_past_the_limit(ws, message) -> None:
    """Send a message over --ws-max-size. The server fails the connection as soon as a frame
    head says the message is too big, so its close may arrive while the client is still
    inside send() (the second fragment's head comes before its payload): websockets' send()
    then raises ConnectionClosed; the close code is checked by the caller either way."""
    try:
        ws.send(message)
    except ConnectionClosed:
        pass


def test_max_size(small):
    with client(small, "/echo", compression=None) as ws:
        ws.send(b"a" * 65536)  # exactly the limit passes
        assert ws.recv(timeout=TIMEOUT) == b"a" * 65536
        send_past_the_limit(ws, b"a" * 65537)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009  # RFC 6455 7.4.1: message too big
    # the limit is on the whole message, not on each fragment
    with client(small, "/echo", compression=None) as ws:
        send_past_the_limit(ws, ["b" * 40000, "b" * 40000])
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009
    assert_echo_alive(small)


def test_max_size_applies_after_decompression(small):
    # A compression bomb: 1 MB of zeros is about a kilobyte on the wire.
    conn, resp = open_raw(small, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    with conn:
        assert resp.header("sec-websocket-extensions").startswith(b"permessage-deflate")
        bomb = deflate(b"\0" * 1_000_000)
        assert len(bomb) < 65536
        conn.send(frame(BINARY, bomb, rsv=0x40))
        code, _, _ = read_close(conn)
        assert code == 1009


@pytest.fixture(scope="module")
def pinging(serve):
    return serve(APP, "--ws-ping-interval", "0.3", "--ws-ping-timeout", "0.4")


def test_ping_timeout_closes_silent_peer(pinging):
    t = token()
    conn, _ = open_raw(pinging, f"/hold?t={t}")
    with conn:
        start = time.monotonic()
        code, reason, before = read_close(conn, timeout=5.0)
        elapsed = time.monotonic() - start
        assert before and all(f.opcode == PING and len(f.payload) <= 125 for f in before)
        assert (code, reason) == (1011, b"keepalive ping timeout")
        assert 0.5 < elapsed < 5.0, elapsed
        assert conn.is_closed(3.0)
    assert events(pinging, f"/hold?t={t}") == [{"disconnect": 1011, "reason": "keepalive ping timeout"}]


def test_ping_answered_keeps_connection(pinging):
    with client(pinging, "/echo", ping_interval=None) as ws:  # the client still answers pings
        time.sleep(1.5)
        ws.send("alive after pings")
        assert ws.recv(timeout=TIMEOUT) == "alive after pings"
    conn, _ = open_raw(pinging)
    with conn:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            f = read_frame(conn, timeout=2.0)
            assert f.opcode == PING
            conn.send(frame(PONG, f.payload))
        conn.send(frame(TEXT, b"still here"))
        while (f := read_frame(conn)).opcode == PING:
            conn.send(frame(PONG, f.payload))
        assert (f.opcode, f.payload) == (TEXT, b"still here")


# --------------------------------------------------------------------------- deflate


def test_deflate_negotiated_by_default(echo):
    with client(echo, "/echo") as ws:  # the websockets client offers permessage-deflate
        assert ws.response.headers["Sec-WebSocket-Extensions"] == (
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        ws.send("compress me " * 1000)
        assert ws.recv(timeout=TIMEOUT) == "compress me " * 1000
    # on the wire: compressed frames (RSV1, RFC 7692 6) in both directions
    conn, resp = open_raw(
        echo, extra=b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    )
    with conn:
        assert resp.header("sec-websocket-extensions") == (
            b"permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
        )
        text = b"deflate on the wire " * 50
        conn.send(frame(TEXT, deflate(text), rsv=0x40))
        f = read_frame(conn)
        assert f.opcode == TEXT and f.rsv1
        assert len(f.payload) < len(text)
        assert inflate(f.payload) == text


@pytest.fixture(scope="module")
def deflate_level_0(serve):
    return serve(APP, "--ws-per-message-deflate-level", "0")


def test_deflate_level(echo, deflate_level_0):
    """--ws-per-message-deflate-level reaches zlib: level 0 stores (the echo is as long as the
    text and more), the default level compresses."""
    text = b"the same words again and again " * 40
    sizes = {}
    for name, server in (("default", echo), ("level 0", deflate_level_0)):
        conn, resp = open_raw(server, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        with conn:
            assert resp.header("sec-websocket-extensions").startswith(b"permessage-deflate")
            conn.send(frame(TEXT, deflate(text), rsv=0x40))
            f = read_frame(conn)
            assert f.opcode == TEXT and f.rsv1
            assert inflate(f.payload) == text
            sizes[name] = len(f.payload)
    assert sizes["level 0"] >= len(text) > 10 * sizes["default"], sizes


@pytest.fixture(scope="module")
def no_deflate(serve):
    return serve(APP, "--ws-per-message-deflate", "false")


def test_deflate_off(no_deflate):
    with client(no_deflate, "/echo") as ws:
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        ws.send("plain " * 1000)
        assert ws.recv(timeout=TIMEOUT) == "plain " * 1000
    conn, resp = open_raw(no_deflate, extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
    with conn:
        assert resp.header("sec-websocket-extensions") is None
        conn.send(frame(TEXT, b"x" * 300))
        f = read_frame(conn)
        assert (f.opcode, f.rsv1, f.payload) == (TEXT, False, b"x" * 300)
        # not negotiated: a compressed frame is a protocol error (RFC 6455 5.2)
        conn.send(frame(TEXT, deflate(b"x"), rsv=0x40))
        code, _, _ = read_close(conn)
        assert code == 1002


# --------------------------------------------------------------------------- flow control


def test_read_flow_control(echo):
    """An app that does not read: the server stops reading, so the client blocks and the
    server's memory stays flat; then every message arrives once the app reads again."""
    t = token()
    conn, _ = open_raw(echo, f"/slow-reader?sleep=3&t={t}")
    with conn:
        rss_before = echo.rss_kib()
        message = frame(BINARY, os.urandom(64 * 1024))
        conn.sock.settimeout(1.0)
        sent = 0
        deadline = time.monotonic() + 10
        try:
            while sent < 1024 and time.monotonic() < deadline:  # at most 64 MiB
                conn.sock.sendall(message)
                sent += 1
        except TimeoutError:
            pass  # the kernel buffers are full: the server stopped reading
        else:
            pytest.fail(f"the server read {sent} messages of 64 KiB without the app reading")
        rss_blocked = echo.rss_kib()
        assert rss_blocked - rss_before < 32 * 1024, (rss_before, rss_blocked)
        # Closing now: the timed-out sendall may have sent part of one more frame, which the
        # app never gets; the `sent` whole ones must all arrive, then the disconnect.
    found = events(echo, f"/slow-reader?sleep=3&t={t}", timeout=10)
    assert found == [{"received": sent}], (sent, found)


def test_write_flow_control(echo):
    """A client that does not read: the app's send() waits instead of buffering."""
    t = token()
    conn, _ = open_raw(echo, f"/flood?seconds=2&t={t}")
    with conn:
        rss_before = echo.rss_kib()
        found = events(echo, f"/flood?seconds=2&t={t}", timeout=6)
        rss_after = echo.rss_kib()
    assert found, "the flood app did not finish"
    # 256 KiB messages: kernel socket buffers hold a few dozen; without flow control the
    # app would have sent thousands in two seconds
    assert found[0]["sent"] < 100, found
    assert rss_after - rss_before < 48 * 1024, (rss_before, rss_after)


# --------------------------------------------------------------------------- --ws none, shutdown


def test_ws_none_serves_upgrade_as_http(serve):
    server = serve(APP, "--ws", "none")
    with RawConn(server.port) as conn:
        conn.send(upgrade_request("/echo"))
        resp = conn.read_response()
        assert resp.status == 200
        assert resp.body == b"plain http /echo"
    with pytest.raises(InvalidStatus) as info, client(server, "/echo"):
        pass
    assert info.value.response.status_code == 200


def test_shutdown_closes_with_1012(serve):
    server = serve(APP, fresh=True)
    with client(server, "/hold?t=shutdown") as ws:
        deadline = time.monotonic() + TIMEOUT
        while "accepted /hold" not in server.stdout() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.proc.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1012  # RFC 6455 7.4.1 (IANA registry): service restart
    assert server.proc.wait(timeout=10) == 0
    # the app saw its websocket.disconnect with the same code
    assert "disconnect /hold?t=shutdown 1012" in server.stdout()


def test_plain_asyncio_loop(serve):
    """The same protocol on asyncio's own transports (--loop asyncio) instead of uvloop's."""
    server = serve(APP, "--loop", "asyncio")
    with client(server, "/echo") as ws:
        ws.send("on asyncio")
        assert ws.recv(timeout=TIMEOUT) == "on asyncio"
        big = os.urandom(1 << 20)
        ws.send(big)
        assert ws.recv(timeout=TIMEOUT) == big
    conn, _ = open_raw(server, after=frame(TEXT, b"early"))
    with conn:
        assert read_frame(conn).payload == b"early"
        conn.send(frame(TEXT, b"\xff"))
        code, _, _ = read_close(conn)
        assert code == 1007
        assert conn.is_closed()
    t = token()
    with client(server, f"/close?code=4002&reason=x&t={t}") as ws:
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 4002
    assert events(server, f"/close?code=4002&reason=x&t={t}") == [{"disconnect": 4002, "reason": "x"}]


# --------------------------------------------------------------------------- frameworks


def test_fastapi_websockets(serve):
    server = serve("ws_fastapi:app")
    with client(server, "/items/42?q=find") as ws:
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"item_id": 42, "q": "find"}
        ws.send(json.dumps({"b": 1, "a": [1, 2]}))
        assert json.loads(ws.recv(timeout=TIMEOUT)) == {"echo": {"b": 1, "a": [1, 2]}, "keys": ["a", "b"]}
        ws.close(4100, "done here")
    with client(server, "/bytes") as ws:
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=TIMEOUT) == b"\x03\x02\x01"
    with client(server, "/guarded?token=secret") as ws:
        assert ws.recv(timeout=TIMEOUT) == "welcome"
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert (ws.close_code, ws.close_reason) == (4000, "bye")
    with pytest.raises(InvalidStatus) as info, client(server, "/guarded?token=wrong"):
        pass
    assert info.value.response.status_code == 403
    deadline = time.monotonic() + TIMEOUT
    while not (found := http_get(server.port, "/events").json()) and time.monotonic() < deadline:
        time.sleep(0.03)
    assert {"endpoint": "items", "code": 4100, "reason": "done here"} in found


def test_starlette_websockets(serve):
    server = serve("ws_starlette:app")
    with client(server, "/shout", subprotocols=["chat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["X-Endpoint"] == "shout"
        ws.send("quiet words")
        assert ws.recv(timeout=TIMEOUT) == "QUIET WORDS"
        ws.close(4200)
    with pytest.raises(InvalidStatus) as info, client(server, "/denied"):
        pass
    assert info.value.response.status_code == 401
    assert info.value.response.body == b"members only"
    assert info.value.response.headers["WWW-Authenticate"] == "Basic"
    deadline = time.monotonic() + TIMEOUT
    while 4200 not in http_get(server.port, "/events").json() and time.monotonic() < deadline:
        time.sleep(0.03)
    assert 4200 in http_get(server.port, "/events").json()
