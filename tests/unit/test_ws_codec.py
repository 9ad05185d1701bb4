"""The WebSocket frame codec (WsCodec, _http/ws.pxi and wsdeflate.pxi) on raw frames.

One table of wire cases: client bytes in, the events WsCodec.feed returns out. Every case is
delivered whole, byte by byte, and cut in two at every split point; the events must be the
same each time (RFC 6455 rules are checked as bytes arrive, so where a case fails does not
depend on how the bytes were cut).
"""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from fastasgi._http._core import WS_CLOSE, WS_ERROR, WS_PING, WS_PONG, WsCodec

MASK = b"\x37\xfa\x21\x3d"


def frame(
    opcode: int,
    payload: bytes = b"",
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
    mask: bytes = MASK,
) -> bytes:
    """A client frame (RFC 6455 5.2), masked unless told otherwise."""
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    b1 = 0x80 if masked else 0
    if n < 126:
        head = bytes((b0, b1 | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, b1 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, b1 | 127, n)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflated(data: bytes) -> bytes:
    z = zlib.compressobj(wbits=-15)
    return (z.compress(data) + z.flush(zlib.Z_SYNC_FLUSH))[:-4]


TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10
BIG = os.urandom(70000)

# (id, client bytes, expected events, codec options)
CASES = [
    ("text", frame(TEXT, b"hello"), ["hello"], {}),
    ("binary", frame(BINARY, b"\x00\xff"), [b"\x00\xff"], {}),
    ("empty-text", frame(TEXT), [""], {}),
    ("len16", frame(BINARY, b"x" * 300), [b"x" * 300], {}),
    ("len64", frame(BINARY, BIG), [BIG], {}),
    ("utf8", frame(TEXT, "κόσμε €𝄞".encode()), ["κόσμε €𝄞"], {}),
    (
        "fragments",
        frame(TEXT, b"he", fin=False) + frame(CONT, b"ll", fin=False) + frame(CONT, b"o"),
        ["hello"],
        {},
    ),
    (
        "utf8-split-across-fragments",
        frame(TEXT, "€".encode()[:1], fin=False) + frame(CONT, "€".encode()[1:]),
        ["€"],
        {},
    ),
    (
        "ping-inside-fragments",
        frame(TEXT, b"a", fin=False) + frame(PING, b"p") + frame(CONT, b"b"),
        [(WS_PING, b"p"), "ab"],
        {},
    ),
    ("pong", frame(PONG, b"x" * 125), [(WS_PONG, b"x" * 125)], {}),
    ("two-messages", frame(TEXT, b"a") + frame(BINARY, b"b"), ["a", b"b"], {}),
    ("close-empty", frame(CLOSE) + frame(TEXT, b"ignored"), [(WS_CLOSE, 1005, "")], {}),
    ("close-code-reason", frame(CLOSE, b"\x03\xe8bye"), [(WS_CLOSE, 1000, "bye")], {}),
    ("close-3000", frame(CLOSE, b"\x0b\xb8"), [(WS_CLOSE, 3000, "")], {}),
    # Autobahn 7.1.5: a close between fragments is a normal close
    (
        "close-mid-message",
        frame(TEXT, b"a", fin=False) + frame(CLOSE, b"\x03\xe8") + frame(CONT, b"b"),
        [(WS_CLOSE, 1000, "")],
        {},
    ),
    # the messages before a bad frame come out first
    (
        "message-then-rsv",
        frame(TEXT, b"ok") + frame(TEXT, b"x", rsv=2),
        ["ok", (WS_ERROR, 1002, "reserved bits must be 0")],
        {},
    ),
    ("rsv1-without-deflate", frame(TEXT, b"x", rsv=4), [(WS_ERROR, 1002, "reserved bits must be 0")], {}),
    ("opcode-3", frame(3), [(WS_ERROR, 1002, "invalid opcode")], {}),
    ("opcode-11", frame(11), [(WS_ERROR, 1002, "invalid opcode")], {}),
    ("unmasked", frame(TEXT, b"x", masked=False), [(WS_ERROR, 1002, "incorrect masking")], {}),
    ("fragmented-ping", frame(PING, b"", fin=False), [(WS_ERROR, 1002, "fragmented control frame")], {}),
    ("long-ping", frame(PING, b"x" * 126), [(WS_ERROR, 1002, "control frame too long")], {}),
    ("lone-continuation", frame(CONT, b"x"), [(WS_ERROR, 1002, "unexpected continuation frame")], {}),
    (
        "text-inside-text",
        frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),
        [(WS_ERROR, 1002, "expected a continuation frame")],
        {},
    ),
    ("close-1-byte", frame(CLOSE, b"\x03"), [(WS_ERROR, 1002, "close frame with a 1-byte payload")], {}),
    ("close-1005", frame(CLOSE, b"\x03\xed"), [(WS_ERROR, 1002, "invalid close code")], {}),
    ("close-999", frame(CLOSE, b"\x03\xe7"), [(WS_ERROR, 1002, "invalid close code")], {}),
    ("close-5000", frame(CLOSE, b"\x13\x88"), [(WS_ERROR, 1002, "invalid close code")], {}),
    (
        "close-bad-utf8",
        frame(CLOSE, b"\x03\xe8\xff"),
        [(WS_ERROR, 1007, "invalid UTF-8 in the close reason")],
        {},
    ),
    ("bad-utf8", frame(TEXT, b"ok\xc0\xafok"), [(WS_ERROR, 1007, "invalid UTF-8 in a text message")], {}),
    ("surrogate", frame(TEXT, b"\xed\xa0\x80"), [(WS_ERROR, 1007, "invalid UTF-8 in a text message")], {}),
    (
        "above-10ffff",
        frame(TEXT, b"\xf4\x90\x80\x80"),
        [(WS_ERROR, 1007, "invalid UTF-8 in a text message")],
        {},
    ),
    ("truncated-utf8", frame(TEXT, b"\xe2\x82"), [(WS_ERROR, 1007, "invalid UTF-8 in a text message")], {}),
    # the bad byte fails the message though its frame is not complete
    (
        "bad-utf8-early",
        frame(TEXT, b"\xff", fin=False)[:7],
        [(WS_ERROR, 1007, "invalid UTF-8 in a text message")],
        {},
    ),
    ("max-size", frame(BINARY, b"x" * 11), [(WS_ERROR, 1009, "message too big")], {"max_size": 10}),
    (
        "max-size-fragments",
        frame(BINARY, b"x" * 6, fin=False) + frame(CONT, b"x" * 5),
        [(WS_ERROR, 1009, "message too big")],
        {"max_size": 10},
    ),
    ("max-size-exact", frame(BINARY, b"x" * 10), [b"x" * 10], {"max_size": 10}),
    (
        "length-msb",
        bytes((0x82, 0xFF)) + b"\x80" + b"\x00" * 7 + MASK,
        [(WS_ERROR, 1002, "frame length has its most significant bit set")],
        {},
    ),
]

DEFLATE = (False, False, 15, 15, -1, 8)
CASES += [
    (
        "deflate-text",
        frame(TEXT, deflated(b"hello hello hello"), rsv=4),
        ["hello hello hello"],
        {"deflate": DEFLATE},
    ),
    (
        "deflate-fragments",
        frame(BINARY, deflated(BIG)[:100], rsv=4, fin=False) + frame(CONT, deflated(BIG)[100:]),
        [BIG],
        {"deflate": DEFLATE},
    ),
    ("deflate-uncompressed-message", frame(TEXT, b"plain"), ["plain"], {"deflate": DEFLATE}),
    (
        "deflate-rsv1-continuation",
        frame(TEXT, b"a", fin=False) + frame(CONT, b"b", rsv=4),
        [(WS_ERROR, 1002, "reserved bits must be 0")],
        {"deflate": DEFLATE},
    ),
    (
        "deflate-rsv1-ping",
        frame(PING, rsv=4),
        [(WS_ERROR, 1002, "reserved bits must be 0")],
        {"deflate": DEFLATE},
    ),
    (
        "deflate-max-size",
        frame(BINARY, deflated(b"x" * 1000), rsv=4),
        [(WS_ERROR, 1009, "message too big")],
        {"deflate": DEFLATE, "max_size": 999},
    ),
    (
        "deflate-bad-utf8",
        frame(TEXT, deflated(b"ok\xff"), rsv=4),
        [(WS_ERROR, 1007, "invalid UTF-8 in a text message")],
        {"deflate": DEFLATE},
    ),
    (
        "deflate-garbage",
        frame(BINARY, b"\xff\xff\xff", rsv=4),
        [(WS_ERROR, 1007, "invalid compressed data")],
        {"deflate": DEFLATE},
    ),
]


def deliveries(data: bytes):
    yield "whole", [data]
    yield "bytewise", [data[i : i + 1] for i in range(len(data))]
    if len(data) < 400:
        for cut in range(1, len(data)):
            yield f"cut {cut}", [data[:cut], data[cut:]]


@pytest.mark.parametrize("name,data,expected,options", CASES, ids=[c[0] for c in CASES])
def test_wire(name, data, expected, options):
    for how, pieces in deliveries(data):
        codec = WsCodec(**options)
        events = []
        for piece in pieces:
            events += codec.feed(piece)
        assert events == expected, how


def test_context_takeover_across_messages():
    z = zlib.compressobj(wbits=-15)
    wire = b""
    for text in (b"the same words again", b"the same words again"):
        wire += frame(TEXT, (z.compress(text) + z.flush(zlib.Z_SYNC_FLUSH))[:-4], rsv=4)
    assert WsCodec(deflate=DEFLATE).feed(wire) == ["the same words again"] * 2


@pytest.mark.parametrize("no_takeover", [False, True])
@pytest.mark.parametrize("bits", [9, 12, 15])
def test_deflate_frames_inflate_back(no_takeover, bits):
    codec = WsCodec(deflate=(False, no_takeover, 15, bits, -1, 5))
    z = zlib.decompressobj(wbits=-bits)
    for data in (b"abc" * 1000, "text €", b"", BIG):
        out = codec.message(data)
        assert out[0] & 0x40 and out[0] & 0x80
        assert out[0] & 0x0F == (1 if isinstance(data, str) else 2)
        n = out[1]
        head = 2 if n < 126 else (4 if n == 126 else 10)
        if no_takeover:
            z = zlib.decompressobj(wbits=-bits)
        got = z.decompress(out[head:] + b"\x00\x00\xff\xff")
        assert got == (data.encode() if isinstance(data, str) else data)


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_plain_frames(size):
    codec = WsCodec()
    data = b"y" * size
    out = codec.message(data)
    assert out == frame(BINARY, data, masked=False)
    assert codec.message(bytearray(data)) == out
    assert codec.message("é") == frame(TEXT, "é".encode(), masked=False)


def test_control_frames():
    codec = WsCodec()
    assert codec.control(WS_PING, b"abc") == b"\x89\x03abc"
    assert codec.control(WS_PONG) == b"\x8a\x00"
    assert codec.close_frame(1000, "bye") == b"\x88\x05\x03\xe8bye"
    assert codec.close_frame(1005) == b"\x88\x00"
    with pytest.raises(ValueError):
        codec.control(WS_PING, b"x" * 126)


def test_unmask_every_alignment():
    # the word-at-a-time unmask, for every payload length mod 8 and mask phase
    for n in range(1, 40):
        data = os.urandom(n)
        mask = os.urandom(4)
        wire = frame(BINARY, data, mask=mask)
        for cut in range(6, len(wire)):
            codec = WsCodec()
            assert codec.feed(wire[:cut]) + codec.feed(wire[cut:]) == [data]
