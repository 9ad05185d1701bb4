"""WebSocket connections in-process: the upgrade request, then raw client frames, over the
fake transport, against the echo app (tests/apps/ws_echo.py). One table: client frames in, the
server's frames out (after the 101 response) and the disconnect the app saw. Every case is
delivered whole and byte by byte (handshake included)."""

from __future__ import annotations

import gc
import types
import uuid
import weakref

import pytest
from test_ws_codec import BINARY, CLOSE, CONT, PING, TEXT, frame

from apps import ws_echo
from fastasgi.websocket import create_ws_upgrade
from support.inproc import connect, eof, feed, make_ctx, run_timers


def settings(**kw):
    base = dict(
        ws_max_size=16 * 1024 * 1024,
        ws_max_queue=32,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        ws_per_message_deflate=False,
        ws_per_message_deflate_level=6,
        reset_contextvars=False,
    )
    base.update(kw)
    return types.SimpleNamespace(**base)


def upgrade(token: str) -> bytes:
    return (
        f"GET /echo?t={token} HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
    ).encode()


def server_close(code: int, reason: bytes = b"") -> bytes:
    payload = code.to_bytes(2, "big") + reason
    return bytes((0x88, len(payload))) + payload


BYE = frame(CLOSE, b"\x03\xe8")

# (id, client frames, server frames, the app's disconnect code, settings)
CASES = [
    ("echo-text", frame(TEXT, b"hi") + BYE, b"\x81\x02hi" + server_close(1000), 1000, {}),
    ("echo-binary", frame(BINARY, b"\x00\x01") + BYE, b"\x82\x02\x00\x01" + server_close(1000), 1000, {}),
    ("ping-pong", frame(PING, b"p") + BYE, b"\x8a\x01p" + server_close(1000), 1000, {}),
    (
        "fragments",
        frame(TEXT, b"a", fin=False) + frame(PING) + frame(CONT, b"b") + BYE,
        b"\x8a\x00\x81\x02ab" + server_close(1000),
        1000,
        {},
    ),
    ("close-empty", frame(CLOSE), b"\x88\x00", 1005, {}),
    ("close-4000-reason", frame(CLOSE, b"\x0f\xa0ok"), server_close(4000), 4000, {}),
    # Autobahn 7.1.5: a close frame between two fragments is a normal close
    (
        "close-mid-message",
        frame(TEXT, b"a", fin=False) + BYE + frame(CONT, b"b"),
        server_close(1000),
        1000,
        {},
    ),
    # Autobahn 3.2: the message before the bad frame is echoed before the close
    (
        "message-then-bad-frame",
        frame(TEXT, b"ok") + frame(TEXT, b"x", rsv=2) + frame(PING),
        b"\x81\x02ok" + server_close(1002, b"reserved bits must be 0"),
        1002,
        {},
    ),
    ("unmasked", frame(TEXT, b"x", masked=False), server_close(1002, b"incorrect masking"), 1002, {}),
    ("bad-utf8", frame(TEXT, b"\xff"), server_close(1007, b"invalid UTF-8 in a text message"), 1007, {}),
    ("bad-close-code", frame(CLOSE, b"\x03\xed"), server_close(1002, b"invalid close code"), 1002, {}),
    ("too-big", frame(BINARY, b"x" * 20), server_close(1009, b"message too big"), 1009, {"ws_max_size": 10}),
    (
        "messages-then-too-big",
        frame(BINARY, b"a") + frame(BINARY, b"b") + frame(BINARY, b"x" * 20),
        b"\x82\x01a\x82\x01b" + server_close(1009, b"message too big"),
        1009,
        {"ws_max_size": 10},
    ),
]


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
@pytest.mark.parametrize("name,frames,expected,code,options", CASES, ids=[c[0] for c in CASES])
def test_wire(loop, name, frames, expected, code, options, mode):
    token = uuid.uuid4().hex
    ctx = make_ctx(ws_echo.app, loop, ws_upgrade=create_ws_upgrade(settings(**options)))
    proto, transport = connect(ctx)
    feed(proto, upgrade(token) + frames, mode)
    run_timers(loop, 1.0)
    if not transport.closed:
        eof(proto)  # after failing, the server reads until the client closes
        run_timers(loop, 1.0)
    head, _, out = transport.output().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert out == expected
    assert transport.closed
    assert ws_echo.EVENTS[f"/echo?t={token}"] == [
        {"disconnect": code, "reason": ws_echo.EVENTS[f"/echo?t={token}"][0]["reason"]}
    ]


def test_no_timer_outlives_the_connection(loop):
    """A close that waited for the app (a message, then the client's close, in one read) is
    carried out by receive(); its FAIL_DELAY timer goes with it. It stayed scheduled before,
    keeping every such connection alive for 5 s after it was gone."""
    ctx = make_ctx(ws_echo.app, loop, ws_upgrade=create_ws_upgrade(settings()))
    proto, transport = connect(ctx)
    feed(proto, upgrade(uuid.uuid4().hex) + frame(TEXT, b"hi") + BYE)
    ws = weakref.ref(transport.protocol)
    assert type(ws()).__name__ == "WebSocketProtocol"
    eof(proto)
    run_timers(loop, 1.0)
    assert transport.closed
    assert loop.next_timer() is None
    del proto, transport
    gc.collect()
    assert ws() is None
