#!/usr/bin/env python3
"""Fuzz one whole upgraded WebSocket connection in-process: the HTTP/1.1 core hands the
upgrade over, WebSocketProtocol (websocket.py) answers the handshake and decides closes,
failures, pings and shutdown, and its compiled base WsConn (_http/wsconn.pxi) runs the
per-message path (delivery to receive() or the queue with read back-pressure, send()'s fast
path, the write batching, reading and writing flow control).

``decode()`` turns the input into a Plan: the websocket settings (ws_max_size, ws_max_queue,
ping interval and timeout, permessage-deflate and its level), the handshake request (valid,
with deflate offers, or broken: key, version, Upgrade, Origin, extension and subprotocol
syntax, or an extension offer taken from the input), what the app does (a Behaviour: echo,
read slowly, not read for a while, send many messages, close with a code, raise or return
after accept, send from a loop that yields to the events, deny with websocket.http.response.*,
refuse, raise or return before accept, receive() from a second task) and up to MAX_OPS events:
client frames (text, binary, continuation, ping, pong, close or any first byte; masked or
not, FIN or not, RSV1 with a real deflate payload), raw bytes, the client's bytes delivered in
pieces of any size, loop iterations, clock jumps (past the ping timeout, FAIL_DELAY and
CLOSE_TIMEOUT), app timers, pause/resume writing, the peer's EOF and reset, a pong to the
server's ping, ctx.begin_shutdown(), the protocol's shutdown() and abort().

``run()`` plays a Plan over tests/support/inproc.py, delivers what the client has left, runs
timers until the connection is closed or only the app's receive() waits, then the client
leaves. The invariants, each a Violation:

- no exception escapes a protocol method; nothing reaches the loop's exception handler; the
  core logs no internal error or failed upgrade; what the app sees raised is its own doing;
- nothing is written after the transport was closed;
- after a 101 (whose upgrade, connection and sec-websocket-accept are right), the output is
  whole unmasked server frames (RFC 6455 5.2: minimal lengths, no RSV2/RSV3, RSV1 only on
  data frames of a deflate connection, known opcodes, control frames of at most 125 bytes, a
  close payload empty or a code a server may send and a UTF-8 reason), nothing after the
  close frame; the data frames (inflated, with a fresh inflater per message when
  server_no_context_takeover was negotiated) are exactly the messages whose send() returned
  when the close frame went out, a prefix of them otherwise; the pongs answer the client's
  pings in order; any other answer is one HTTP response that closes (400/426 for a broken
  handshake, and the app is then never called; 403, 500, 503 or the app's denial, whose
  status and body are the app's when its last body message was sent);
- the app sees websocket.connect first, then messages that are a prefix of what the client
  sent (a reference WsCodec over the client's bytes after the request, with the negotiated
  parameters), exactly all of them when the client's close or protocol error reached an open
  connection and the app read until its disconnect (with two readers: each a subsequence,
  together all of them); exactly one websocket.disconnect (the next receive() returns it
  again, never a message), with the code of the server's close frame when there is one, and
  the client's close code (RFC 6455 7.1.5) or its protocol error's when that reached an open
  connection (1006 when the connection was lost before a protocol error was acted on);
- reading is never left paused while the app waits in receive() with nothing queued on an
  open connection;
- once timers have run, a connection that is not open with the app waiting in receive() is
  closed (after a close, a failure, a deferred close, an app that returned); when the client
  leaves, every app task ends, active_requests is 0 and the protocol is CLOSED.

Run it with fuzz/run.sh fuzz_wsconn SECONDS; ``one_input(data)`` replays an input without
atheris (tests/unit/test_fuzz_findings.py); ``python3 fuzz/fuzz_wsconn.py --show FILE...``
prints what inputs mean.
"""

from __future__ import annotations

import asyncio
import collections
import os
import struct
import sys
import types
import zlib
from dataclasses import dataclass, field

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fastasgi._http._core import (  # noqa: E402
    WS_CLOSE,
    WS_CLOSED,
    WS_ERROR,
    WS_OPEN,
    WS_PING,
    WsCodec,
)
from fastasgi._wshandshake import accept_key  # noqa: E402
from fastasgi.websocket import create_ws_upgrade  # noqa: E402
from fuzz._common import (  # noqa: E402
    FIELD_VALUE,
    TOKEN,
    FuzzAppError,
    FuzzedDataProvider,
    Violation,
    advance,
    check,
    in_loop,
    parse_responses,
    run_timers,
    run_watched,
    settle,
    step,
)
from support.inproc import connect, make_ctx  # noqa: E402

# Findings reported and not fixed yet (FUZZ_IGNORE=name,...; fuzz/README.md): each would have
# an `if ignored(name)` where its invariant is checked. None now: the four this harness found
# (ws-accept-after-close, ws-concurrent-receive, ws-deferred-ping-timeout,
# ws-deferred-close-lost) are fixed and are regression tests in
# tests/unit/test_fuzz_findings.py.
KNOWN: tuple[str, ...] = ()


def ignored(name: str) -> bool:
    assert name in KNOWN, name
    return name in os.environ.get("FUZZ_IGNORE", "").split(",")


# --------------------------------------------------------------------------- the plan

MAX_SIZES = [None, 1, 125, 126, 1000, 65536]
MAX_QUEUES = [1, 2, 3, 4, 32]
#: (ws_ping_interval, ws_ping_timeout)
PINGS = [(None, None), (1.0, None), (5.0, 2.0), (20.0, 20.0), (2.0, 30.0)]
#: None: permessage-deflate off; else on, with this level
DEFLATES = [None, 0, 1, 6, 9]

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_BASE = [
    "Upgrade: websocket",
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
]
_EXT = "Sec-WebSocket-Extensions: "


def _without(prefix: str) -> list[str]:
    return [line for line in _BASE if not line.startswith(prefix)]


#: (name, header lines after Host, what the handshake is: 101 valid, 400/426 refused by the
#: server before the app runs, None: depends on the settings or the input)
HANDSHAKES = [
    ("plain", _BASE, 101),
    ("deflate", [*_BASE, _EXT + "permessage-deflate; client_max_window_bits"], 101),
    (
        "deflate-no-takeover",
        [
            *_BASE,
            _EXT + "permessage-deflate; client_no_context_takeover; server_no_context_takeover; "
            "server_max_window_bits=9; client_max_window_bits=9",
        ],
        101,
    ),
    (
        "deflate-second-offer",
        [
            *_BASE,
            _EXT
            + "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_max_window_bits=10",
        ],
        101,
    ),
    (
        "deflate-other-first",
        [
            *_BASE,
            _EXT + "x-webkit-deflate-frame",
            _EXT + 'permessage-deflate; client_max_window_bits="15"; server_no_context_takeover',
        ],
        101,
    ),
    ("subprotocols", [*_BASE, "Sec-WebSocket-Protocol: chat, superchat", _EXT + "permessage-deflate"], 101),
    ("fuzzed-extension", _BASE, None),  # + Sec-WebSocket-Extensions: the input's bytes
    (
        "case-and-origin",
        [
            "upgrade: WebSocket",
            "connection: keep-alive, Upgrade",
            f"sec-websocket-key: {KEY}",
            "sec-websocket-version: 13",
            "origin: http://t",
        ],
        101,
    ),
    ("bad-key", [*_without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: abc"], 400),
    ("short-key", [*_without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA"], 400),
    ("no-key", _without("Sec-WebSocket-Key"), 400),
    ("two-keys", [*_BASE, f"Sec-WebSocket-Key: {KEY}"], 400),
    ("version-8", [*_without("Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8"], 426),
    ("no-version", _without("Sec-WebSocket-Version"), 400),
    ("two-upgrades", [*_without("Upgrade"), "Upgrade: websocket, h2c"], 400),
    ("two-origins", [*_BASE, "Origin: http://a", "Origin: http://b"], 400),
    ("bad-extension", [*_BASE, _EXT + "permessage-deflate; =x"], None),
    ("bad-protocol", [*_BASE, "Sec-WebSocket-Protocol: a b"], 400),
]
FUZZED_EXTENSION = 6
MAX_EXT = 64

MODES = (
    "echo",
    "slow",
    "idle",
    "burst",
    "close",
    "raise",
    "return",
    "sender",
    "deny",
    "reject",
    "raise_before",
    "return_before",
    "concurrent",
)
WAITS = [0.0, 0.5, 3.0, 6.0, 30.0]  # fake seconds
COUNTS = [1, 3, 16, 300]
SIZES = [0, 1, 125, 126, 4000, 65536]
CODES = [None, 1000, 1001, 1011, 3000, 4999]
REASONS = ["", "bye", "\u00e9" * 61, "x" * 123]
DENY_STATUSES = [200, 403, 404, 500]
#: a slow reader sleeps before each of its first SLOW_MAX messages; a burst sends at most
#: BURST_BYTES in all
SLOW_MAX = 8
BURST_BYTES = 262144
DENY_PART = 5

KINDS = ("text", "binary", "cont", "ping", "pong", "close", "b0")
OPCODES = {"text": 0x1, "binary": 0x2, "cont": 0x0, "ping": 0x9, "pong": 0xA, "close": 0x8}
#: a frame's payload: 0 = bytes from the input, else this many bytes of PATTERN
BIG = [0, 125, 126, 1000, 65535, 65536]
PATTERN = b"0123456789abcdef" * 4096
#: a close frame's code (None: no payload at all); extra % len picks one
CLOSE_CODES = [None, 1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1011, 1015, 2999, 3000, 4999, 5000]
ADVANCES = [0.1, 1.0, 2.0, 4.9, 5.0, 5.1, 10.0, 20.0, 31.0, 61.0]
FLOODS = [8, 64, 1024]
OPS = (
    ("frame",) * 6
    + ("deliver",) * 4
    + (
        "raw",
        "step",
        "idle",
        "timers",
        "advance",
        "pause_writing",
        "resume_writing",
        "eof",
        "lose",
        "begin_shutdown",
        "shutdown",
        "abort",
        "pong",
        "flood",
    )
)
MAX_OPS = 64
MAX_PIECE = 65535
#: the client's bytes in all (request, frames, floods), and the payload bytes its frames carry
#: before compression (a flood of a compressed 64 KiB frame is small on the wire): later frames
#: are left out
MAX_CLIENT = 131072
MAX_VOLUME = 1048576
READ = 65536  # what one read delivers at most


@dataclass(frozen=True)
class Behaviour:
    mode: str = "echo"
    n: int = 0  # messages read (and echoed) before the act; deny: body parts before the last
    wait: float = 0.0
    count: int = 1
    size: int = 1
    code: int | None = 1000
    reason: str = ""
    variant: int = 0  # accept: 1 subprotocol, 2 a header, 3 both; deny: 0-2 headers, 3 unfinished
    status: int = 403  # deny
    text: bool = True


@dataclass(frozen=True)
class Plan:
    max_size: int | None = None
    max_queue: int = 32
    ping: tuple = (None, None)
    deflate: int | None = None
    handshake: int = 0
    ext: bytes = b""
    behaviour: Behaviour = Behaviour()
    ops: tuple = ()
    # ("frame", kind, flags, big, extra, mask, payload) / ("raw", bytes) / ("deliver", n) /
    # ("advance", seconds) / ("flood", times) / (name,)


def decode(fdp) -> Plan:
    max_size = fdp.PickValueInList(MAX_SIZES)
    max_queue = fdp.PickValueInList(MAX_QUEUES)
    ping = fdp.PickValueInList(PINGS)
    deflate = fdp.PickValueInList(DEFLATES)
    handshake = fdp.ConsumeIntInRange(0, len(HANDSHAKES) - 1)
    ext = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, MAX_EXT)) if handshake == FUZZED_EXTENSION else b""
    behaviour = Behaviour(
        MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)],
        fdp.ConsumeIntInRange(0, 3),
        fdp.PickValueInList(WAITS),
        fdp.PickValueInList(COUNTS),
        fdp.PickValueInList(SIZES),
        fdp.PickValueInList(CODES),
        fdp.PickValueInList(REASONS),
        fdp.ConsumeIntInRange(0, 3),
        fdp.PickValueInList(DENY_STATUSES),
        fdp.ConsumeIntInRange(0, 1) == 1,
    )
    ops = []
    while fdp.remaining_bytes() > 0 and len(ops) < MAX_OPS:
        name = OPS[fdp.ConsumeIntInRange(0, len(OPS) - 1)]
        if name == "frame":
            kind = KINDS[fdp.ConsumeIntInRange(0, len(KINDS) - 1)]
            flags = fdp.ConsumeIntInRange(0, 15)
            big = fdp.PickValueInList(BIG)
            extra = fdp.ConsumeIntInRange(0, 255)
            mask = fdp.ConsumeIntInRange(0, 0xFFFFFFFF)
            payload = fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 255)) if big == 0 else b""
            ops.append((name, kind, flags, big, extra, mask, payload))
        elif name == "raw":
            ops.append((name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 255))))
        elif name == "deliver":
            ops.append((name, fdp.ConsumeIntInRange(0, MAX_PIECE)))
        elif name == "advance":
            ops.append((name, fdp.PickValueInList(ADVANCES)))
        elif name == "flood":
            ops.append((name, fdp.PickValueInList(FLOODS)))
        else:
            ops.append((name,))
    return Plan(max_size, max_queue, ping, deflate, handshake, ext, behaviour, tuple(ops))


def encode(plan: Plan, enc) -> None:
    """The inverse of decode (fuzz/make_corpus.py): ``enc`` is a fuzz._fdp.Encoder."""
    enc.pick(MAX_SIZES, plan.max_size)
    enc.pick(MAX_QUEUES, plan.max_queue)
    enc.pick(PINGS, plan.ping)
    enc.pick(DEFLATES, plan.deflate)
    enc.int_in_range(0, len(HANDSHAKES) - 1, plan.handshake)
    if plan.handshake == FUZZED_EXTENSION:
        enc.int_in_range(0, MAX_EXT, len(plan.ext))
        enc.bytes(plan.ext)
    b = plan.behaviour
    enc.int_in_range(0, len(MODES) - 1, MODES.index(b.mode))
    enc.int_in_range(0, 3, b.n)
    enc.pick(WAITS, b.wait)
    enc.pick(COUNTS, b.count)
    enc.pick(SIZES, b.size)
    enc.pick(CODES, b.code)
    enc.pick(REASONS, b.reason)
    enc.int_in_range(0, 3, b.variant)
    enc.pick(DENY_STATUSES, b.status)
    enc.int_in_range(0, 1, int(b.text))
    for op in plan.ops:
        name = op[0]
        enc.int_in_range(0, len(OPS) - 1, OPS.index(name))
        if name == "frame":
            _, kind, flags, big, extra, mask, payload = op
            enc.int_in_range(0, len(KINDS) - 1, KINDS.index(kind))
            enc.int_in_range(0, 15, flags)
            enc.pick(BIG, big)
            enc.int_in_range(0, 255, extra)
            enc.int_in_range(0, 0xFFFFFFFF, mask)
            if big == 0:
                enc.int_in_range(0, 255, len(payload))
                enc.bytes(payload)
        elif name == "raw":
            enc.int_in_range(0, 255, len(op[1]))
            enc.bytes(op[1])
        elif name == "deliver":
            enc.int_in_range(0, MAX_PIECE, op[1])
        elif name == "advance":
            enc.pick(ADVANCES, op[1])
        elif name == "flood":
            enc.pick(FLOODS, op[1])


def request_bytes(plan: Plan) -> bytes:
    _, lines, _ = HANDSHAKES[plan.handshake]
    if plan.handshake == FUZZED_EXTENSION:
        # a field value llhttp takes: visible ASCII, space and tab
        value = bytes(c for c in plan.ext if c == 9 or 32 <= c < 127).decode("ascii")
        lines = [*lines, _EXT + value]
    return ("GET /ws?q=1 HTTP/1.1\r\nHost: t\r\n" + "".join(line + "\r\n" for line in lines) + "\r\n").encode(
        "latin-1"
    )


# --------------------------------------------------------------------------- the client's bytes


def mask_payload(payload: bytes, key: bytes) -> bytes:
    n = len(payload)
    if not n:
        return payload
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame_bytes(b0: int, payload: bytes, key: bytes | None) -> bytes:
    """A client frame (RFC 6455 5.2): masked with ``key``, unmasked when it is None."""
    n = len(payload)
    bit = 0x80 if key is not None else 0
    if n < 126:
        head = bytes((b0, bit | n))
    elif n < 65536:
        head = struct.pack("!BBH", b0, bit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, bit | 127, n)
    if key is None:
        return head + payload
    return head + key + mask_payload(payload, key)


class Client:
    """What the client sends: the request, then frames built from the ops (with one deflate
    context, as a permessage-deflate client keeps), queued until delivered."""

    def __init__(self, request: bytes) -> None:
        self.stream = bytearray(request)  # everything sent, delivered or not
        self.sent = 0  # delivered up to here
        self.request_len = len(request)
        self.compressor = None
        self.last = b""
        self.volume = 0  # payload bytes before compression
        self.last_volume = 0

    def add(self, data: bytes, volume: int = 0) -> None:
        volume = max(volume, len(data))
        if len(self.stream) + len(data) <= MAX_CLIENT and self.volume + volume <= MAX_VOLUME:
            self.stream += data
            self.volume += volume
            self.last, self.last_volume = data, volume

    def flood(self, times: int) -> None:
        """The last frame (an empty ping if none) ``times`` times over, within the budgets."""
        if not self.last:
            self.last, self.last_volume = frame_bytes(0x89, b"", b"\0\0\0\0"), 6
        times = min(
            times,
            (MAX_CLIENT - len(self.stream)) // len(self.last),
            (MAX_VOLUME - self.volume) // self.last_volume,
        )
        self.add(self.last * max(times, 1), self.last_volume * max(times, 1))

    def frame(self, op: tuple) -> None:
        _, kind, flags, big, extra, mask, payload = op
        if big:
            payload = PATTERN[:big]
        fin = not flags & 1
        compress = flags & 2
        key = None if flags & 4 else struct.pack("!I", mask)
        if kind == "b0":
            b0 = extra
        else:
            b0 = OPCODES[kind] | (0x80 if fin else 0)
        volume = len(payload)
        if kind == "close":
            code = CLOSE_CODES[extra % len(CLOSE_CODES)]
            payload = b"" if code is None else struct.pack("!H", code) + payload[:123]
        elif kind in ("text", "binary", "cont") and compress:
            if flags & 8 or self.compressor is None:
                self.compressor = zlib.compressobj(6, zlib.DEFLATED, -9)
            payload = self.compressor.compress(payload) + self.compressor.flush(zlib.Z_SYNC_FLUSH)
            if fin:
                payload = payload[:-4]  # RFC 7692 7.2.1: the 00 00 ff ff tail goes
            if kind != "cont":
                b0 |= 0x40
        self.add(frame_bytes(b0, payload, key), volume)

    def pending(self) -> int:
        return len(self.stream) - self.sent

    def take(self, n: int) -> bytes:
        data = bytes(self.stream[self.sent : self.sent + n])
        self.sent += len(data)
        return data

    def ws_stream(self) -> bytes:
        return bytes(self.stream[self.request_len :])


# --------------------------------------------------------------------------- the app


@dataclass
class Reader:
    """What one task of the app read: the messages' text or bytes in order, the disconnect."""

    got: list = field(default_factory=list)
    disconnect: dict | None = None


@dataclass
class App:
    b: Behaviour
    calls: int = 0
    scope: dict | None = None
    receive: object = None
    send: object = None
    main: Reader = field(default_factory=Reader)
    other: Reader | None = None  # the second task's, in the concurrent mode
    sent: list = field(default_factory=list)  # what each websocket.send that returned carried
    subprotocol: str | None = None
    accept_called: bool = False
    deny_done: tuple | None = None  # (status, body) once the last body message was sent
    tasks: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    @property
    def got(self) -> list:
        return self.main.got

    @property
    def disconnect(self) -> dict | None:
        return self.main.disconnect

    async def __call__(self, scope, receive, send):
        self.calls += 1
        if scope["type"] != "websocket":
            self.problems.append(f"the app got a {scope['type']!r} scope")
            return
        self.scope, self.receive, self.send = scope, receive, send
        first = await receive()
        if first != {"type": "websocket.connect"}:
            self.problems.append(f"first message {first!r}")
        b = self.b
        mode = b.mode
        if mode == "raise_before":
            raise FuzzAppError("before accept")
        if mode == "return_before":
            return
        if mode == "reject":
            await send({"type": "websocket.close"})
            await self.drain(False)
            return
        if mode == "deny":
            if await self.deny():
                await self.drain(False)
            return
        if not await self.accept():
            await self.drain(False)
            return
        if mode == "echo":
            await self.drain(True)
        elif mode == "slow":
            await self.drain(True, slow=True)
        elif mode == "idle":
            await asyncio.sleep(b.wait)
            await self.drain(True)
        elif mode == "burst":
            for i in range(self.burst()):
                await self.send_data(self.data(i))
            await self.drain(True)
        elif mode == "sender":
            for i in range(self.burst()):
                await self.send_data(self.data(i))
                await asyncio.sleep(min(b.wait, 1.0) if i % 8 == 7 else 0)
            await self.drain(True)
        elif mode == "close":
            if await self.read_some(b.n):
                message = {"type": "websocket.close"}
                if b.code is not None:
                    message["code"] = b.code
                if b.reason:
                    message["reason"] = b.reason
                await send(message)
            await self.drain(False)
        elif mode == "raise":
            await self.read_some(b.n)
            raise FuzzAppError("after accept")
        elif mode == "return":
            await self.read_some(b.n)
        elif mode == "concurrent":
            self.other = Reader()
            self.tasks.append(asyncio.get_running_loop().create_task(self.concurrent(False, self.other)))
            await self.concurrent(True, self.main)

    def burst(self) -> int:
        return min(self.b.count, max(1, BURST_BYTES // max(self.b.size, 1)))

    def data(self, i: int):
        size = self.b.size
        if self.b.text:
            return (f"{i}:" + "t" * size)[: max(size, len(str(i)) + 1)]
        return bytes((i + j) & 0xFF for j in range(min(size, 8))) + PATTERN[: max(size - 8, 0)]

    async def accept(self) -> bool:
        message = {"type": "websocket.accept"}
        if self.b.variant & 1 and self.scope["subprotocols"]:
            self.subprotocol = message["subprotocol"] = self.scope["subprotocols"][0]
        if self.b.variant & 2:
            message["headers"] = [(b"x-app", b"1")]
        self.accept_called = True
        try:
            await self.send(message)
        except OSError:
            return False
        return True

    async def deny(self) -> bool:
        """The denial response; False when the app leaves it unfinished and returns."""
        b = self.b
        parts = [bytes([0x61 + i]) * DENY_PART for i in range(b.n + 1)]
        body = b"".join(parts)
        headers = [[], [(b"content-length", b"%d" % len(body))], [(b"content-type", b"text/plain")], []][
            b.variant
        ]
        try:
            await self.send({"type": "websocket.http.response.start", "status": b.status, "headers": headers})
            for part in parts[:-1]:
                await self.send({"type": "websocket.http.response.body", "body": part, "more_body": True})
                if b.wait:
                    await asyncio.sleep(b.wait)
            if b.variant == 3:  # the denial is left unfinished
                if b.text:
                    raise FuzzAppError("mid-denial")
                return False
            await self.send({"type": "websocket.http.response.body", "body": parts[-1]})
        except OSError:
            return True
        self.deny_done = (b.status, body)
        return True

    async def send_data(self, data) -> None:
        key = "text" if type(data) is str else "bytes"
        try:
            await self.send({"type": "websocket.send", key: data})
        except OSError:
            return
        self.sent.append(data)

    async def recv(self, reader: Reader | None = None) -> dict:
        reader = reader or self.main
        message = await self.receive()
        kind = message.get("type")
        if kind == "websocket.receive":
            if reader.disconnect is not None:
                self.problems.append(f"a message after the disconnect: {message!r:.100}")
            text, data = message.get("text"), message.get("bytes")
            if (text is None) == (data is None) or not (type(text) is str or type(data) is bytes):
                self.problems.append(f"a malformed message {message!r:.100}")
            reader.got.append(text if text is not None else data)
        elif kind == "websocket.disconnect":
            code, reason = message.get("code"), message.get("reason")
            if reader.disconnect is None:
                reader.disconnect = dict(message)
                if type(code) is not int or type(reason) is not str:
                    self.problems.append(f"a malformed disconnect {message!r}")
            elif (code, reason) != (reader.disconnect["code"], reader.disconnect["reason"]):
                self.problems.append(f"a second disconnect {message!r} after {reader.disconnect!r}")
        else:
            self.problems.append(f"an unexpected message {message!r:.100}")
        return message

    async def read_some(self, n: int) -> bool:
        """Read and echo ``n`` messages; False when a disconnect came first."""
        for _ in range(n):
            message = await self.recv()
            if message["type"] == "websocket.disconnect":
                await self.recv()  # and it stays so
                return False
            await self.reply(message)
        return True

    async def drain(self, echo: bool, slow: bool = False, reader: Reader | None = None) -> None:
        """Read until the disconnect (echoing, sleeping first for the first messages when
        slow), then once more: the disconnect again, never a message."""
        k = 0
        while True:
            message = await self.recv(reader)
            if message["type"] == "websocket.disconnect":
                await self.recv(reader)
                return
            if slow and k < SLOW_MAX and self.b.wait:
                await asyncio.sleep(self.b.wait)
            k += 1
            if echo:
                await self.reply(message)

    async def concurrent(self, echo: bool, reader: Reader) -> None:
        """One of two tasks in receive() at once: either is served, or refused."""
        try:
            await self.drain(echo, reader=reader)
        except RuntimeError:
            pass

    async def reply(self, message: dict) -> None:
        text = message.get("text")
        await self.send_data(text if text is not None else message.get("bytes"))


# --------------------------------------------------------------------------- running a plan


class Seen:
    """The websocket protocol the upgrade made, and the first close or error event its codec
    reported, with the state the protocol was in then (the instance's _control is wrapped:
    the protocol under test stays fastasgi.websocket.WebSocketProtocol)."""

    def __init__(self) -> None:
        self.ws = None
        self.terminal = None
        self.terminal_state = None


def observe(settings, seen: Seen):
    make = create_ws_upgrade(settings)

    def ws_upgrade(ctx, transport, scope, leftover):
        proto = make(ctx, transport, scope, leftover)
        seen.ws = proto
        control = proto._control

        def observed(event):
            if event[0] in (WS_CLOSE, WS_ERROR) and seen.terminal is None:
                seen.terminal, seen.terminal_state = event, proto.state
            control(event)

        proto._control = observed
        return proto

    return ws_upgrade


def run(plan: Plan) -> None:
    run_watched(play, plan, "WebSocket upgrade failed", "the upgrade failed")


def guarded(what: str, fn, *args) -> None:
    """A protocol method (through the transport or the loop): nothing may escape it."""
    try:
        fn(*args)
    except Violation:
        raise
    except Exception as exc:
        raise Violation(f"{what} raised {exc!r}") from exc


def play(loop, plan: Plan) -> None:
    interval, timeout = plan.ping
    settings = types.SimpleNamespace(
        ws_max_size=plan.max_size,
        ws_max_queue=plan.max_queue,
        ws_ping_interval=interval,
        ws_ping_timeout=timeout,
        ws_per_message_deflate=plan.deflate is not None,
        ws_per_message_deflate_level=6 if plan.deflate is None else plan.deflate,
        reset_contextvars=False,
    )
    seen = Seen()
    app = App(plan.behaviour)
    ctx = make_ctx(app, loop, ws_upgrade=observe(settings, seen))
    _, transport = connect(ctx)
    client = Client(request_bytes(plan))
    state = types.SimpleNamespace(write_paused=False, eof=False, aborted=False)

    def deliver(n: int) -> None:
        while n > 0 and client.pending() and not transport.closed and not state.eof:
            step(loop)  # a real loop runs what is ready between two reads
            piece = client.take(min(n, READ))
            n -= len(piece)
            guarded("data_received", transport.feed, piece)

    for op in plan.ops:
        name = op[0]
        if name == "frame":
            client.frame(op)
        elif name == "raw":
            client.add(op[1])
        elif name == "flood":
            client.flood(op[1])
        elif name == "pong":
            ws = seen.ws
            payload = ws._ping_payload if ws is not None and ws._ping_payload is not None else b""
            client.add(frame_bytes(0x8A, payload, b"\x01\x02\x03\x04"))
        elif name == "deliver":
            deliver(op[1] or MAX_CLIENT)
        elif name == "step":
            guarded("a loop iteration", step, loop)
        elif name == "idle":
            settle(loop)
            check_flow(seen, transport)
        elif name == "timers":
            run_timers(loop, 10.0)
            check_flow(seen, transport)
        elif name == "advance":
            advance(loop, ctx, op[1])
            check_flow(seen, transport)
        elif name == "pause_writing":
            # asyncio reports changes only, and none once the connection is lost
            if not state.write_paused and not transport.closed:
                state.write_paused = True
                guarded("pause_writing", transport.set_write_paused, True)
        elif name == "resume_writing":
            if state.write_paused and not transport.lost:
                state.write_paused = False
                guarded("resume_writing", transport.set_write_paused, False)
        elif name == "eof":
            if not state.eof and not transport.closed:
                state.eof = True
                guarded("eof_received", transport.feed_eof)
        elif name == "lose":
            guarded("connection_lost", transport.peer_lost, None)
        elif name == "begin_shutdown":
            guarded("begin_shutdown", in_loop, loop, ctx.begin_shutdown)
        elif name == "shutdown":
            if seen.ws is not None:
                guarded("shutdown", in_loop, loop, seen.ws.shutdown)
        elif name == "abort":
            state.aborted = True
            guarded("abort", in_loop, loop, transport.protocol.abort)

    # the end: what the client has left arrives, it reads what it is sent, timers run until
    # the connection is closed or only the app's receive() waits on an open connection
    deliver(MAX_CLIENT)
    settle(loop)
    if state.write_paused and not transport.lost:
        state.write_paused = False
        guarded("resume_writing", transport.set_write_paused, False)
    for _ in range(12):
        run_timers(loop, 40.0)
        if transport.lost or quiet(seen, app):
            break
        advance(loop, ctx, 31.0)
    ws = seen.ws
    if not transport.lost:
        check(
            quiet(seen, app),
            "the connection is still open after the timers ran: %s",
            describe(seen, transport, app),
        )
        check_flow(seen, transport)
        transport.peer_lost(None)  # the client leaves
        settle(loop)
    run_timers(loop, 100000.0)  # the app's own sleeps end
    check(ws is None or ws.state == WS_CLOSED, "state %s after the connection was lost", ws and ws.state)
    task = ws._task if ws is not None else None
    hung = [t for t in (task, *app.tasks) if t is not None and not t.done()]
    check(not hung, "app tasks left after the connection ended: %r", hung)
    check(ctx.active_requests == 0, "active_requests is %d at the end", ctx.active_requests)
    check(ws is None or ws not in ctx.connections, "the protocol is still in ctx.connections")
    check(ws is not None or app.calls == 0, "the app was called without an upgrade")
    check(not app.problems, "the app saw: %s", "; ".join(app.problems[:3]))
    late = transport.writes_after_close
    check(not late, "written after the transport was closed: %r", b"".join(late)[:200])
    check_output(plan, seen, app, transport, client)


def quiet(seen: Seen, app: App) -> bool:
    """An open websocket whose app waits in receive() with nothing queued or pending."""
    ws = seen.ws
    if ws is None or ws.state != WS_OPEN or ws._failure is not None or ws._queue:
        return False
    return any(not waiter.done() for waiter in ws._waiters)


def check_flow(seen: Seen, transport) -> None:
    if quiet(seen, None) and not transport.closed:
        check(
            not transport.reading_paused,
            "reading is paused while the app waits in receive() on an open connection: %s",
            describe(seen, transport, None),
        )


def describe(seen: Seen, transport, app) -> str:
    ws = seen.ws
    if ws is None:
        return f"no upgrade, transport closed {transport.closed}"
    return (
        f"state {ws.state}, queue {len(ws._queue)}, waiters {ws._waiters!r}, failure {ws._failure!r}, "
        f"read paused {ws._read_paused}/{transport.reading_paused}, write paused {ws._write_paused}, "
        f"task {ws._task!r}"
    )


# --------------------------------------------------------------------------- the output

SERVER_CLOSE_CODES = (
    frozenset(range(1000, 1004)) | frozenset(range(1007, 1015)) | frozenset(range(3000, 5000))
)


def parse_deflate(value: bytes) -> tuple:
    """The codec's deflate tuple for a 101's sec-websocket-extensions value (RFC 7692 7.1)."""
    parts = [p.strip() for p in value.decode("latin-1").split(";")]
    check(parts[0] == "permessage-deflate", "negotiated extension %r", value)
    params = {}
    for p in parts[1:]:
        name, _, bits = p.partition("=")
        flag = name in ("server_no_context_takeover", "client_no_context_takeover") and not bits
        window = name in ("server_max_window_bits", "client_max_window_bits") and bits.isdigit()
        check(flag or (window and 8 <= int(bits) <= 15), "extension parameter %r", p)
        check(name not in params, "repeated extension parameter %r", p)
        params[name] = int(bits) if bits else True
    server_bits = params.get("server_max_window_bits", 15)
    check(server_bits >= 9, "server_max_window_bits %d (zlib deflates with 9 at least)", server_bits)
    return (
        bool(params.get("client_no_context_takeover")),
        bool(params.get("server_no_context_takeover")),
        params.get("client_max_window_bits", 15),
        server_bits,
    )


def parse_frames(data: bytes, deflate: tuple | None) -> list:
    """The server's frames (RFC 6455 5.2): a list of (opcode, payload), data payloads
    inflated and text decoded."""
    frames = []
    pos, n = 0, len(data)
    inflater = None
    while pos < n:
        check(n - pos >= 2, "a frame head cut short: %r", data[pos:])
        b0, b1 = data[pos], data[pos + 1]
        opcode = b0 & 0x0F
        check(b0 & 0x80, "a fragmented server frame (b0 %#x)", b0)
        check(not b0 & 0x30, "RSV2/RSV3 set (b0 %#x)", b0)
        check(not b1 & 0x80, "a masked server frame (RFC 6455 5.1)")
        length = b1 & 0x7F
        pos += 2
        if length == 126:
            check(n - pos >= 2, "a frame head cut short")
            (length,) = struct.unpack_from("!H", data, pos)
            check(length >= 126, "a 16-bit length %d (RFC 6455 5.2: the minimal encoding)", length)
            pos += 2
        elif length == 127:
            check(n - pos >= 8, "a frame head cut short")
            (length,) = struct.unpack_from("!Q", data, pos)
            check(65536 <= length < 1 << 63, "a 64-bit length %d (the minimal encoding)", length)
            pos += 8
        check(n - pos >= length, "a frame cut short: %d of %d bytes", n - pos, length)
        payload = data[pos : pos + length]
        pos += length
        check(opcode in (0x1, 0x2, 0x8, 0x9, 0xA), "a server frame with opcode %#x", opcode)
        if opcode >= 0x8:
            check(not b0 & 0x40, "RSV1 on a control frame")
            check(length <= 125, "a control frame of %d bytes", length)
        elif b0 & 0x40:
            check(deflate is not None, "RSV1 without permessage-deflate")
            _, server_no_ctx, _, server_bits = deflate
            if inflater is None or server_no_ctx:
                inflater = zlib.decompressobj(-server_bits)
            try:
                payload = inflater.decompress(payload + b"\x00\x00\xff\xff")
            except zlib.error as exc:
                raise Violation(f"a server message that does not inflate: {exc}") from exc
            check(
                not inflater.eof and not inflater.unconsumed_tail, "a server message ended its deflate stream"
            )
        if opcode == 0x1:
            try:
                payload = payload.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise Violation(f"a text message that is not UTF-8: {exc}") from exc
        elif opcode == 0x8:
            check(length != 1, "a close frame with a 1-byte payload")
            if length:
                (code,) = struct.unpack_from("!H", payload)
                check(code in SERVER_CLOSE_CODES, "a server close frame with code %d", code)
                try:
                    payload[2:].decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise Violation(f"a close reason that is not UTF-8: {exc}") from exc
            check(pos == n, "frames after the close frame: %r", data[pos : pos + 100])
        frames.append((opcode, payload))
    return frames


def close_code(payload: bytes) -> int:
    return struct.unpack_from("!H", payload)[0] if payload else 1005


def subsequence(a: list, b: list) -> bool:
    rest = iter(b)
    return all(any(type(x) is type(y) and x == y for y in rest) for x in a)


def multiset(messages: list) -> collections.Counter:
    return collections.Counter((type(m), m) for m in messages)


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))


def check_output(plan: Plan, seen: Seen, app: App, transport, client: Client) -> None:
    out = transport.output()
    _, _, expect = HANDSHAKES[plan.handshake]
    ws = seen.ws
    if expect in (400, 426):
        check(
            app.calls == 0, "the app was called for a refused handshake (%s)", HANDSHAKES[plan.handshake][0]
        )
    if not out.startswith(b"HTTP/1.1 101 "):
        check_refusal(plan, seen, app, out)
        return
    check(ws is not None and app.accept_called, "a 101 the app did not ask for")
    check(expect not in (400, 426), "a 101 to a refused handshake (%s)", HANDSHAKES[plan.handshake][0])
    end = out.find(b"\r\n\r\n")
    check(end > 0, "the 101's head is incomplete: %r", out[:200])
    lines = out[:end].split(b"\r\n")
    check(lines[0] == b"HTTP/1.1 101 Switching Protocols", "status line %r", lines[0])
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        value = value.strip(b" \t")
        check(sep and TOKEN.match(name) and FIELD_VALUE.match(value), "a bad header line %r", line)
        headers.setdefault(name.lower(), []).append(value)
    check(headers.get(b"upgrade") == [b"websocket"], "upgrade %r", headers.get(b"upgrade"))
    check(headers.get(b"connection") == [b"Upgrade"], "connection %r", headers.get(b"connection"))
    check(
        headers.get(b"sec-websocket-accept") == [accept_key(KEY).encode()],
        "sec-websocket-accept %r",
        headers.get(b"sec-websocket-accept"),
    )
    protocol = headers.get(b"sec-websocket-protocol")
    check(
        protocol == ([app.subprotocol.encode()] if app.subprotocol else None),
        "sec-websocket-protocol %r",
        protocol,
    )
    extensions = headers.get(b"sec-websocket-extensions")
    deflate = None
    if extensions is not None:
        check(len(extensions) == 1 and plan.deflate is not None, "sec-websocket-extensions %r", extensions)
        deflate = parse_deflate(extensions[0])

    frames = parse_frames(out[end + 4 :], deflate)
    messages = [p for op, p in frames if op in (0x1, 0x2)]
    pongs = [p for op, p in frames if op == 0xA]
    closes = [p for op, p in frames if op == 0x8]
    for op, p in frames:
        if op == 0x9:
            check(len(p) == 4 and plan.ping[0] is not None, "a server ping %r", p)
    closed = bool(closes)
    # what the server framed, in order: every websocket.send that returned (framing happens
    # in send(), or in _send() before it returns), all of it once the close frame went out
    if closed:
        check(same(messages, app.sent), "the server sent %r, the app %r", messages[:4], app.sent[:4])
    else:
        check(
            same(messages, app.sent[: len(messages)]),
            "the server sent %r, not a prefix of the app's %r",
            messages[:4],
            app.sent[:4],
        )

    # what the client sent, read by a reference codec with the negotiated parameters
    level = 6 if plan.deflate is None else plan.deflate
    codec = WsCodec(plan.max_size, None if deflate is None else (*deflate, level, 5))
    events = codec.feed(client.ws_stream())
    ref_messages, ref_pings, terminal = [], [], None
    for event in events:
        if type(event) in (str, bytes):
            ref_messages.append(event)
        elif event[0] == WS_PING:
            ref_pings.append(event[1])
        elif event[0] in (WS_CLOSE, WS_ERROR):
            terminal = event
            break
    if seen.terminal is not None:
        check(
            seen.terminal == terminal,
            "the protocol's codec reported %r, the client sent %r",
            seen.terminal,
            terminal,
        )
    in_open = seen.terminal is not None and seen.terminal_state == WS_OPEN
    if app.other is None:
        check(
            same(app.got, ref_messages[: len(app.got)]),
            "the app got %r, not a prefix of what the client sent %r",
            app.got[:4],
            ref_messages[:4],
        )
        if in_open and app.disconnect is not None:
            check(
                same(app.got, ref_messages),
                "the app read to its disconnect %r and got %d of the %d messages before %r",
                app.disconnect,
                len(app.got),
                len(ref_messages),
                terminal,
            )
    else:
        # two readers: each got a subsequence, together at most what was sent, all of it when
        # one read to its disconnect after the client's close reached an open connection
        readers = (app.main, app.other)
        for r in readers:
            check(subsequence(r.got, ref_messages), "a reader got %r, not in the client's order", r.got[:4])
        together = multiset(app.main.got + app.other.got)
        check(not together - multiset(ref_messages), "the readers got messages the client did not send")
        if in_open and any(r.disconnect is not None for r in readers):
            check(together == multiset(ref_messages), "the readers missed messages before %r", terminal)
    if in_open:
        check_close_code(seen.terminal, app.disconnect, closes)
    check(
        pongs == ref_pings[: len(pongs)], "the pongs %r do not answer the pings %r", pongs[:4], ref_pings[:4]
    )
    if in_open and closed:
        check(pongs == ref_pings, "%d pongs for the %d pings before %r", len(pongs), len(ref_pings), terminal)
    if closed and app.disconnect is not None:
        check(
            app.disconnect["code"] == close_code(closes[0]),
            "the server's close frame has code %d, the app's disconnect %r",
            close_code(closes[0]),
            app.disconnect,
        )
        if close_code(closes[0]) == 1005:
            check(
                terminal is not None and terminal[:2] == (WS_CLOSE, 1005),
                "an empty close frame that echoes no empty close frame",
            )


def check_close_code(terminal: tuple, disconnect: dict | None, closes: list) -> None:
    """The client's close frame (or its protocol error) reached an open connection: that is
    the connection's close code (RFC 6455 7.1.5), the app's disconnect and the server's close
    frame (its echo, or the failure's code) carry it, whenever the app was still busy with
    earlier messages and the close waited for it. 1006 when the connection ended before the
    server failed it: no close frame had been received then."""
    kind, code, reason = terminal
    if disconnect is not None:
        got = (disconnect["code"], disconnect["reason"])
        lost = got == (1006, "")
        check(
            got == (code, reason) or (lost and kind == WS_ERROR),
            "the client's %r reached an open connection, the app's disconnect is %r",
            terminal,
            disconnect,
        )
    if closes:
        sent = close_code(closes[0])
        check(
            sent == code,
            "the client's %r reached an open connection, the server closed with %d",
            terminal,
            sent,
        )


def check_refusal(plan: Plan, seen: Seen, app: App, out: bytes) -> None:
    """No 101: at most one HTTP response, which closes."""
    responses = parse_responses(out, lambda k, r: False)
    check(len(responses) <= 1, "%d responses to one upgrade request", len(responses))
    if not responses:
        check(app.deny_done is None, "the app's denial response is not on the wire")
        return
    r = responses[0]
    check(r.closes, "a refusal that keeps the connection: %d", r.status)
    _, _, expect = HANDSHAKES[plan.handshake]
    if app.calls == 0:
        check(
            r.status in (400, 408, 426, 503),
            "status %d to %s without the app",
            r.status,
            HANDSHAKES[plan.handshake][0],
        )
        if expect in (400, 426) and seen.ws is not None:
            check(r.status == expect, "status %d to %s", r.status, HANDSHAKES[plan.handshake][0])
        return
    if app.deny_done is not None:
        status, body = app.deny_done
        check(
            r.status == status and r.complete, "the app denied with %d, the response is %d", status, r.status
        )
        check(r.body == body, "the denial's body %r, the app sent %r", r.body[:100], body[:100])
        return
    allowed = {403, 500, 503} | ({plan.behaviour.status} if plan.behaviour.mode == "deny" else set())
    check(r.status in allowed, "status %d to a %s app", r.status, plan.behaviour.mode)


# --------------------------------------------------------------------------- entry points


def one_input(data: bytes) -> None:
    """atheris's TestOneInput: decode, run, check."""
    run(decode(FuzzedDataProvider(data)))


def show(paths: list[str]) -> None:
    for path in paths:
        with open(path, "rb") as f:
            plan = decode(FuzzedDataProvider(f.read()))
        print(f"== {path}")
        print(
            f"max_size {plan.max_size}, max_queue {plan.max_queue}, ping {plan.ping}, deflate {plan.deflate}, "
            f"handshake {HANDSHAKES[plan.handshake][0]} {plan.ext!r}"
        )
        print(f"app: {plan.behaviour}")
        for op in plan.ops:
            print(" ".join([op[0]] + [repr(x) for x in op[1:]]))


def main() -> None:
    if sys.argv[1:2] == ["--show"]:
        show(sys.argv[2:])
        return
    import atheris

    import fastasgi._http._core as core

    print(
        f"fuzz_wsconn: fastasgi._http._core from {core.__file__} (debug build: {core.DEBUG})", file=sys.stderr
    )
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
