#!/usr/bin/env python3
"""Fuzz one HTTP/2 connection of the compiled core (H2Protocol over the vendored nghttp2),
in-process, app and client both chosen by the input.

``decode()`` turns the input into a Plan: the server settings (one of PROFILES: the defaults;
small windows, two streams at most and a small head limit; one request at a time with short
timeouts and a small body limit; a checking access log with the header map refusing), what
the app does on each stream it gets (a Behaviour per request: answer at once, stream a body
in parts, read the body then answer, raise before or after the start or mid-stream, send
trailers, return without answering, start and return, wait on the fake clock, wait for the
client to leave and send anyway, misuse send...), and a sequence of events (OPS). The
client's bytes are the connection preface, then frames built from the input with
hyperframe: HEADERS (an hpack.Encoder block of one of REQUESTS, or an invalid one; split
into CONTINUATIONs, left open, with PRIORITY or padding), DATA, CONTINUATION, RST_STREAM,
SETTINGS (ACK, odd identifiers and values), PING, WINDOW_UPDATE (0 and huge increments),
PRIORITY, GOAWAY, unknown types, raw bytes, a frame repeated (floods), open-and-reset bursts;
on any stream id (a new one, the last, an old one, 0, even, the largest, the reserved bit).
They are delivered in pieces of input-chosen sizes ("deliver"), between loop iterations,
clock jumps with ``ctx.tick()``, app timers, pause_writing/resume_writing, the client's
half-close or reset, graceful shutdown (``ctx.begin_shutdown()``) and abort.

``run()`` plays a Plan over tests/support/inproc.py (fake transport, fake clock): the
connection starts as HttpProtocol (``connect()``) and the preface hands it to H2Protocol.
Then the connection ends: the rest of the client's bytes goes, the client reads again, every
timeout passes, finally the client leaves. The invariants (each a Violation when broken):

- no exception escapes a protocol method, none reaches the loop's exception handler; the
  core logs no internal error ("Internal error on an HTTP/2 connection", and what
  fuzz._common.Watch checks: "Exception in ASGI application" only for what the app raised or
  its own misuse, no illegal state transition in the debug build, no failed access log);
- nothing is written after the transport was closed;
- everything written parses as HTTP/2 frames (hyperframe), the first the server's SETTINGS;
  no frame is on a stream id the client did not open with a HEADERS frame (an even one:
  never), none is larger than the client allows, of an unknown type or a PUSH_PROMISE, or
  has the reserved bit set; field blocks are HEADERS then CONTINUATIONs of the same stream
  and decode (hpack) to ``:status`` first and valid lowercase, non-connection-specific
  fields; on a stream DATA follows a final HEADERS, nothing but RST_STREAM follows END_STREAM,
  nothing follows RST_STREAM; GOAWAY's last stream id never grows; no more SETTINGS or PING
  ACKs than the client sent SETTINGS and PINGs;
- a response the app sent whole, its last send() returning, and that the server ended with
  END_STREAM, has the app's status, body (none for HEAD, 204, 304) and trailers;
- once every timeout has passed the connection is closed, unless an app is waiting in
  receive() for the client to leave (a long poll); when the client leaves every app task
  ends, no request stays counted, the connection is CLOSED.

Run it with fuzz/run.sh fuzz_h2 SECONDS; ``one_input(data)`` replays an input without
atheris (tests/unit/test_fuzz_findings.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import struct
import sys
from dataclasses import dataclass, field

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import hpack  # noqa: E402
from hyperframe.exceptions import HyperframeError  # noqa: E402
from hyperframe.frame import (  # noqa: E402
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from fuzz._common import (  # noqa: E402
    FuzzAppError,
    FuzzedDataProvider,
    Violation,
    advance,
    check,
    in_loop,
    run_timers,
    run_watched,
    settle,
    step,
)
from support.inproc import connect, make_ctx  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: what the client sends first (RFC 9113 3.4: the 24 octets, then its SETTINGS): one is chosen
PREFACES = (
    PREFACE + SettingsFrame(0).serialize(),
    PREFACE + SettingsFrame(0, settings={2: 0, 4: 65535, 5: 16384}).serialize(),
    PREFACE + SettingsFrame(0, settings={1: 0, 4: 0}).serialize(),  # no table, a zero window
    PREFACE,  # the frames that follow decide what comes first
)
MAX_STREAM = 0x7FFFFFFF
DEFAULT_MAX_FRAME = 16384

#: Findings reported and not fixed yet, which a long run may skip to look for others
#: (FUZZ_IGNORE=name,...; fuzz/README.md): each has an `if ignored(name)` where its invariant
#: is checked and a strict xfail test in tests/unit/test_fuzz_findings.py. None now: the
#: three this harness found (h2-open-head, h2-lost-sender, h2-empty-end-stall) are fixed and
#: are regression tests there.
KNOWN: tuple[str, ...] = ()


def ignored(name: str) -> bool:
    assert name in KNOWN, name
    return name in os.environ.get("FUZZ_IGNORE", "").split(",")


# --------------------------------------------------------------------------- the plan


def _access_log(scope, status, nbytes, duration):
    """An access log that checks what the core hands it (a failure is logged by the core as
    "Access log failed", which Watch reports)."""
    assert type(status) is int and 100 <= status <= 599, status
    assert type(nbytes) is int and nbytes >= 0, nbytes
    assert duration >= 0, duration
    assert scope["type"] == "http" and scope["http_version"] == "2", scope
    assert type(scope["headers"]) is list, scope


#: ServerContext settings, one chosen per input
PROFILES = (
    {},
    {
        "h2_max_concurrent_streams": 2,
        "h2_initial_stream_window_size": 100,
        "h2_initial_connection_window_size": 1000,
        "max_header_bytes": 256,
        "max_headers": 10,
    },
    {
        "limit_concurrency": 1,
        "max_body_size": 100,
        "keep_alive_timeout": 1.0,
        "timeout_request_head": 2.0,
        "timeout_request_body": 3.0,
        "timeout_request": 10.0,
    },
    {
        "access_log": _access_log,
        "header_map": "refuse",
        "root_path": "/root",
        "server_header": False,
        "date_header": True,
        "extra_headers": [(b"x-extra", b"1")],
        "h2_max_frame_size": 20000,
    },
)

MODES = (
    "respond",
    "stream",
    "read_respond",
    "raise_before",
    "raise_after_start",
    "raise_mid_stream",
    "trailers",
    "return_early",
    "start_only",
    "disconnect_then_send",
    "wrong_length",
    "trailers_unasked",
    "twice",
    "body_first",
    "bad_header",
)
STATUSES = [200, 201, 204, 304, 404, 500, 299, 599]  # lists: atheris picks from lists only
HEADER_SETS = 5
SIZES = [0, 1, 7, 1000, 20000, 70000]  # 70000: past the default stream window
WAITS = [0.0, 0.1, 3.0, 45.0, 100.0]  # fake seconds
TICKS = [0.5, 1.0, 2.0, 5.0, 31.0, 61.0]
MAX_BEHAVIOURS = 8
MAX_OPS = 200

#: stream ids a frame can be on: "new" (odd, above every id used), "last" and "prev" (the
#: streams of the last two HEADERS), "reserved" (the last with the reserved bit set), or fixed
STREAMS = ["new", "new", "last", "last", "prev", "reserved", 0, 1, 2, 3, MAX_STREAM]
#: what a HEADERS frame carries (request_block)
REQUESTS = (
    "get",
    "post",
    "post_length",
    "head",
    "cookies_host",
    "trailers",
    "big_field",
    "underscore",
    "uppercase",
    "connection",
    "no_path",
    "connect",
    "bad_authority",
    "host_differs",
    "te_trailers",
    "options_star",
    "pseudo_after",
    "huge_length",
    "many_fields",
    "hpack_overflow",
    "hpack_index_0",
    "hpack_table_size",
    "hpack_bad_huffman",
    "empty",
    "https_odd_path",
)
#: what a CONTINUATION frame carries by itself
FRAGMENTS = ("empty", "request", "indexed", "garbage")
DATA_SIZES = [0, 1, 7, 100, 1000, 16384, 16385, 70000]
ERROR_CODES = [0, 1, 2, 3, 5, 7, 8, 0xB, 0xFFFF]
SETTING_IDS = [1, 2, 3, 4, 5, 6, 8, 0x99]
SETTING_VALUES = [
    0,
    1,
    2,
    100,
    4096,
    16383,
    16384,
    65535,
    65536,
    16777215,
    16777216,
    MAX_STREAM,
    2**31,
    2**32 - 1,
]
INCREMENTS = [0, 1, 1000, 65535, 2**20, MAX_STREAM - 65535, MAX_STREAM]
WEIGHTS = [1, 16, 256]
EXTENSION_SIZES = [0, 1, 8, 100]
REPEATS = [2, 10, 100, 1001]
BURSTS = [2, 10, 100]
#: bytes a "deliver" hands the server: 0 is all the client has sent and not delivered yet
PIECES = [0, 0, 1, 9, 24, 100, 1000, 16384]
#: most bytes a "repeat" adds (a repeated 70000-byte DATA would otherwise make megabytes)
REPEAT_BYTES = 1 << 18
OPS = (
    ("headers",) * 4
    + ("data",) * 2
    + ("deliver",) * 4
    + (
        "continuation",
        "rst",
        "settings",
        "ping",
        "window",
        "priority",
        "goaway",
        "unknown",
        "raw",
        "repeat",
        "burst",
        "eof",
        "lose",
        "pause_writing",
        "resume_writing",
        "tick",
        "step",
        "idle",
        "timers",
        "shutdown",
        "abort",
    )
)


@dataclass(frozen=True)
class Behaviour:
    mode: str = "respond"
    status: int = 200
    headers: int = 0  # which of the header sets (app_headers)
    parts: int = 0  # body messages with more_body before the last
    size: int = 7  # bytes in each body message
    reads: int = 0  # receive() calls first: 0-2, 3 = until the body is complete
    wait: float = 0.0  # asyncio.sleep where the mode waits


DEFAULT = Behaviour()


@dataclass(frozen=True)
class Plan:
    profile: int = 0
    preface: int = 0  # which of PREFACES
    behaviours: tuple = ()
    # ("headers", stream, request, flags, continuations) flags: 1 END_STREAM, 2 PRIORITY,
    # 4 PADDED, 8 the block left open (no END_HEADERS); ("continuation", stream, fragment,
    # end_headers); ("data", stream, size, flags) flags: 1 END_STREAM, 2 PADDED; ("rst",
    # stream, code); ("settings", ack, ((id, value), ...)); ("ping", ack); ("window", stream,
    # increment); ("priority", stream, depends_on, weight, exclusive); ("goaway", last, code);
    # ("unknown", type, flags, stream, size); ("raw", bytes); ("repeat", times); ("burst", n);
    # ("deliver", size); ("tick", seconds); (event,)
    ops: tuple = ()


def _stream(fdp):
    return fdp.PickValueInList(STREAMS)


def decode(fdp) -> Plan:
    profile = fdp.ConsumeIntInRange(0, len(PROFILES) - 1)
    preface = fdp.ConsumeIntInRange(0, len(PREFACES) - 1)
    behaviours = []
    for _ in range(fdp.ConsumeIntInRange(0, MAX_BEHAVIOURS)):
        behaviours.append(
            Behaviour(
                MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)],
                fdp.PickValueInList(STATUSES),
                fdp.ConsumeIntInRange(0, HEADER_SETS - 1),
                fdp.ConsumeIntInRange(0, 3),
                fdp.PickValueInList(SIZES),
                fdp.ConsumeIntInRange(0, 3),
                fdp.PickValueInList(WAITS),
            )
        )
    ops = []
    while fdp.remaining_bytes() > 0 and len(ops) < MAX_OPS:
        name = OPS[fdp.ConsumeIntInRange(0, len(OPS) - 1)]
        if name == "headers":
            op = (
                name,
                _stream(fdp),
                REQUESTS[fdp.ConsumeIntInRange(0, len(REQUESTS) - 1)],
                fdp.ConsumeIntInRange(0, 15),
                fdp.ConsumeIntInRange(0, 3),
            )
        elif name == "continuation":
            op = (name, _stream(fdp), FRAGMENTS[fdp.ConsumeIntInRange(0, 3)], fdp.ConsumeIntInRange(0, 1))
        elif name == "data":
            op = (name, _stream(fdp), fdp.PickValueInList(DATA_SIZES), fdp.ConsumeIntInRange(0, 3))
        elif name == "rst":
            op = (name, _stream(fdp), fdp.PickValueInList(ERROR_CODES))
        elif name == "settings":
            ack = fdp.ConsumeIntInRange(0, 1)
            entries = []
            if not ack:
                for _ in range(fdp.ConsumeIntInRange(0, 3)):
                    entries.append((fdp.PickValueInList(SETTING_IDS), fdp.PickValueInList(SETTING_VALUES)))
            op = (name, ack, tuple(entries))
        elif name == "ping":
            op = (name, fdp.ConsumeIntInRange(0, 1))
        elif name == "window":
            op = (name, _stream(fdp), fdp.PickValueInList(INCREMENTS))
        elif name == "priority":
            op = (name, _stream(fdp), _stream(fdp), fdp.PickValueInList(WEIGHTS), fdp.ConsumeIntInRange(0, 1))
        elif name == "goaway":
            op = (name, _stream(fdp), fdp.PickValueInList(ERROR_CODES))
        elif name == "unknown":
            op = (
                name,
                fdp.ConsumeIntInRange(10, 255),
                fdp.ConsumeIntInRange(0, 255),
                _stream(fdp),
                fdp.PickValueInList(EXTENSION_SIZES),
            )
        elif name == "raw":
            op = (name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 255)))
        elif name == "repeat":
            op = (name, fdp.PickValueInList(REPEATS))
        elif name == "burst":
            op = (name, fdp.PickValueInList(BURSTS))
        elif name == "deliver":
            op = (name, fdp.PickValueInList(PIECES))
        elif name == "tick":
            op = (name, fdp.PickValueInList(TICKS))
        else:
            op = (name,)
        ops.append(op)
    return Plan(profile, preface, tuple(behaviours), tuple(ops))


def encode(plan: Plan, enc) -> None:
    """The inverse of decode (fuzz/make_corpus.py): ``enc`` is a fuzz._fdp.Encoder."""
    enc.int_in_range(0, len(PROFILES) - 1, plan.profile)
    enc.int_in_range(0, len(PREFACES) - 1, plan.preface)
    enc.int_in_range(0, MAX_BEHAVIOURS, len(plan.behaviours))
    for b in plan.behaviours:
        enc.int_in_range(0, len(MODES) - 1, MODES.index(b.mode))
        enc.pick(STATUSES, b.status)
        enc.int_in_range(0, HEADER_SETS - 1, b.headers)
        enc.int_in_range(0, 3, b.parts)
        enc.pick(SIZES, b.size)
        enc.int_in_range(0, 3, b.reads)
        enc.pick(WAITS, b.wait)
    for op in plan.ops:
        name = op[0]
        enc.int_in_range(0, len(OPS) - 1, OPS.index(name))
        if name == "headers":
            enc.pick(STREAMS, op[1])
            enc.int_in_range(0, len(REQUESTS) - 1, REQUESTS.index(op[2]))
            enc.int_in_range(0, 15, op[3])
            enc.int_in_range(0, 3, op[4])
        elif name == "continuation":
            enc.pick(STREAMS, op[1])
            enc.int_in_range(0, 3, FRAGMENTS.index(op[2]))
            enc.int_in_range(0, 1, op[3])
        elif name == "data":
            enc.pick(STREAMS, op[1])
            enc.pick(DATA_SIZES, op[2])
            enc.int_in_range(0, 3, op[3])
        elif name == "rst":
            enc.pick(STREAMS, op[1])
            enc.pick(ERROR_CODES, op[2])
        elif name == "settings":
            enc.int_in_range(0, 1, op[1])
            if not op[1]:
                enc.int_in_range(0, 3, len(op[2]))
                for ident, value in op[2]:
                    enc.pick(SETTING_IDS, ident)
                    enc.pick(SETTING_VALUES, value)
        elif name == "ping":
            enc.int_in_range(0, 1, op[1])
        elif name == "window":
            enc.pick(STREAMS, op[1])
            enc.pick(INCREMENTS, op[2])
        elif name == "priority":
            enc.pick(STREAMS, op[1])
            enc.pick(STREAMS, op[2])
            enc.pick(WEIGHTS, op[3])
            enc.int_in_range(0, 1, op[4])
        elif name == "goaway":
            enc.pick(STREAMS, op[1])
            enc.pick(ERROR_CODES, op[2])
        elif name == "unknown":
            enc.int_in_range(10, 255, op[1])
            enc.int_in_range(0, 255, op[2])
            enc.pick(STREAMS, op[3])
            enc.pick(EXTENSION_SIZES, op[4])
        elif name == "raw":
            enc.int_in_range(0, 255, len(op[1]))
            enc.bytes(op[1])
        elif name == "repeat":
            enc.pick(REPEATS, op[1])
        elif name == "burst":
            enc.pick(BURSTS, op[1])
        elif name == "deliver":
            enc.pick(PIECES, op[1])
        elif name == "tick":
            enc.pick(TICKS, op[1])


# --------------------------------------------------------------------------- the client


def _hpack_int(value: int, prefix_bits: int, pattern: int) -> bytes:
    """RFC 7541 5.1, the first octet's high bits set to ``pattern``."""
    out = hpack.hpack.encode_integer(value, prefix_bits)
    out[0] |= pattern
    return bytes(out)


def request_block(kind: str, sid: int, encoder) -> bytes:
    """The field block of a HEADERS frame on stream ``sid``: a request (its path names the
    stream, /s<sid>, so the app's call can be matched to the stream's response), a malformed
    one, or an invalid HPACK block (those made by hand, without the encoder)."""
    path = b"/s%d" % sid

    def req(method=b"GET", extra=(), p=path, authority=b"t", scheme=b"http"):
        fields = [(b":method", method), (b":scheme", scheme), (b":authority", authority), (b":path", p)]
        return encoder.encode([*fields, *extra])

    if kind == "get":
        return req()
    if kind == "post":
        return req(b"POST", [(b"content-type", b"text/plain")])
    if kind == "post_length":
        return req(b"POST", [(b"content-length", b"10")])
    if kind == "head":
        return req(b"HEAD")
    if kind == "cookies_host":
        return req(extra=[(b"cookie", b"a=1"), (b"host", b"t"), (b"cookie", b"b=2"), (b"x-a", b"")])
    if kind == "trailers":  # a trailer section (no pseudo-header fields)
        return encoder.encode([(b"x-trailer", b"1")])
    if kind == "big_field":
        return req(extra=[(b"x-big", b"v" * 300)])
    if kind == "underscore":
        return req(extra=[(b"x_forwarded_for", b"1.2.3.4")])
    if kind == "uppercase":
        return req(extra=[(b"X-Upper", b"1")])
    if kind == "connection":
        return req(extra=[(b"connection", b"keep-alive")])
    if kind == "no_path":
        return encoder.encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t")])
    if kind == "connect":
        return encoder.encode([(b":method", b"CONNECT"), (b":authority", b"t:443")])
    if kind == "bad_authority":
        return req(authority=b"u@t t")
    if kind == "host_differs":
        return req(extra=[(b"host", b"other")])
    if kind == "te_trailers":
        return req(extra=[(b"te", b"trailers"), (b"accept", b"*/*")])
    if kind == "options_star":
        return req(b"OPTIONS", p=b"*")
    if kind == "pseudo_after":
        return encoder.encode(
            [
                (b":method", b"GET"),
                (b"x-a", b"1"),
                (b":scheme", b"http"),
                (b":authority", b"t"),
                (b":path", path),
            ]
        )
    if kind == "huge_length":
        return req(b"PUT", [(b"content-length", b"1000000")])
    if kind == "many_fields":
        return req(extra=[(b"x-%d" % i, b"v") for i in range(120)])
    if kind == "hpack_overflow":
        return b"\xff\xff\xff\xff\xff\xff\x7f"  # an index past every integer
    if kind == "hpack_index_0":
        return b"\x80"  # RFC 7541 6.1: index 0 is an error
    if kind == "hpack_table_size":
        return _hpack_int(100000, 5, 0x20) + b"\x82"  # a table size past the setting
    if kind == "hpack_bad_huffman":
        return b"\x00\x83\xff\xff\xff\x01a"  # a literal name whose Huffman code is EOS padding
    if kind == "empty":
        return b""
    if kind == "https_odd_path":
        return req(scheme=b"https", p=path + b"/%2F%zz/../a?x=1&y")
    raise AssertionError(kind)


class Client:
    """The client's side of the connection: everything it sends (the preface first), what is
    delivered of it, its HPACK encoder and the stream ids it used."""

    def __init__(self, preface: bytes) -> None:
        self.encoder = hpack.Encoder()
        self.sent = bytearray(preface)
        self.delivered = 0
        self.last = b""  # the bytes of the last frame (or burst) sent: what "repeat" repeats
        self.ids: list[int] = []  # the streams HEADERS went on, in order ("last", "prev")
        self.top = 0  # the largest odd stream id used ("new" is above it)

    def stream(self, sel, opens: bool = False) -> int:
        """The stream id ``sel`` names; ``opens``: a HEADERS frame goes on it."""
        if sel == "new":
            sid = min(self.top + 2, MAX_STREAM) if self.top else 1
        elif sel in ("last", "reserved"):
            sid = self.ids[-1] if self.ids else 1
            if sel == "reserved":
                sid |= 0x80000000
        elif sel == "prev":
            sid = self.ids[-2] if len(self.ids) > 1 else 1
        else:
            sid = sel
        plain = sid & MAX_STREAM
        if opens and plain and (not self.ids or self.ids[-1] != plain):
            self.ids.append(plain)
        if plain & 1 and plain > self.top:
            self.top = plain
        return sid

    def send(self, *frames) -> None:
        """Frames (a hyperframe frame and the stream id it goes on, or bytes) to send."""
        data = b"".join(f if isinstance(f, bytes) else _on_stream(*f) for f in frames)
        self.sent += data
        self.last = data

    def pending(self) -> int:
        return len(self.sent) - self.delivered

    def take(self, size: int) -> bytes:
        end = len(self.sent) if size == 0 else min(len(self.sent), self.delivered + size)
        data = bytes(self.sent[self.delivered : end])
        self.delivered = end
        return data


def _on_stream(frame: Frame, sid: int) -> bytes:
    """The frame's bytes with ``sid`` as its stream id (any: 0, even, the reserved bit),
    which hyperframe would refuse for some types."""
    data = frame.serialize()
    return data[:5] + struct.pack(">L", sid & 0xFFFFFFFF) + data[9:]


def send_op(client: Client, op: tuple) -> None:
    """Add the frames of one op to what the client sends."""
    name = op[0]
    if name == "headers":
        _, sel, kind, flags, continuations = op
        sid = client.stream(sel, opens=True)
        block = request_block(kind, sid & MAX_STREAM, client.encoder)
        cut = [len(block) * i // (continuations + 1) for i in range(continuations + 2)]
        parts = [block[cut[i] : cut[i + 1]] for i in range(continuations + 1)]
        closed = not flags & 8
        head_flags = ["END_STREAM"] * (flags & 1) + ["END_HEADERS"] * (closed and not continuations)
        kw = {}
        if flags & 2:
            head_flags.append("PRIORITY")
            kw.update(depends_on=max(0, (sid & MAX_STREAM) - 2), stream_weight=15, exclusive=False)
        if flags & 4:
            head_flags.append("PADDED")
            kw["pad_length"] = 5
        frames = [(HeadersFrame(1, parts[0], flags=head_flags, **kw), sid)]
        for i, part in enumerate(parts[1:], 1):
            last = i == continuations and closed
            frames.append((ContinuationFrame(1, part, flags=["END_HEADERS"] * last), sid))
        client.send(*frames)
    elif name == "continuation":
        _, sel, fragment, end = op
        sid = client.stream(sel)
        data = {
            "empty": b"",
            "request": request_block("get", sid & MAX_STREAM, client.encoder),
            "indexed": b"\x82",
            "garbage": b"\xff\xff",
        }[fragment]
        client.send((ContinuationFrame(1, data, flags=["END_HEADERS"] * end), sid))
    elif name == "data":
        _, sel, size, flags = op
        sid = client.stream(sel)
        chunks = (
            [size] if size <= DEFAULT_MAX_FRAME + 1 else [DEFAULT_MAX_FRAME] * (size // DEFAULT_MAX_FRAME)
        )
        if size > DEFAULT_MAX_FRAME + 1 and size % DEFAULT_MAX_FRAME:
            chunks.append(size % DEFAULT_MAX_FRAME)
        frames = []
        for i, n in enumerate(chunks):
            last = i == len(chunks) - 1
            fl = ["END_STREAM"] * (last and flags & 1)
            kw = {}
            if flags & 2:
                fl.append("PADDED")
                kw["pad_length"] = 10
            frames.append((DataFrame(1, b"d" * n, flags=fl, **kw), sid))
        client.send(*frames)
    elif name == "rst":
        client.send((RstStreamFrame(1, error_code=op[2]), client.stream(op[1])))
    elif name == "settings":
        frame = SettingsFrame(0, flags=["ACK"]) if op[1] else SettingsFrame(0)
        # hyperframe keeps settings in a dict: the entries go in order, repeats included
        payload = b"".join(struct.pack(">HL", ident, value) for ident, value in op[2])
        data = frame.serialize()
        client.send(struct.pack(">L", len(payload))[1:] + data[3:9] + payload)
    elif name == "ping":
        client.send(PingFrame(0, opaque_data=b"fuzz-h2!", flags=["ACK"] * op[1]).serialize())
    elif name == "window":
        sid = client.stream(op[1])
        data = WindowUpdateFrame(1, window_increment=1).serialize()
        client.send(data[:5] + struct.pack(">LL", sid & 0xFFFFFFFF, op[2]))
    elif name == "priority":
        sid = client.stream(op[1])
        dep = client.stream(op[2]) & MAX_STREAM
        frame = PriorityFrame(1, depends_on=dep, stream_weight=op[3] - 1, exclusive=bool(op[4]))
        client.send((frame, sid))
    elif name == "goaway":
        last = client.stream(op[1]) & MAX_STREAM
        client.send(GoAwayFrame(0, last_stream_id=last, error_code=op[2], additional_data=b"bye").serialize())
    elif name == "unknown":
        _, ftype, flags, sel, size = op
        sid = client.stream(sel)
        client.send((ExtensionFrame(ftype, 1, flag_byte=flags, body=b"u" * size), sid))
    elif name == "raw":
        client.send(op[1])
    elif name == "repeat":
        if client.last:
            times = max(1, min(op[1], REPEAT_BYTES // len(client.last)))
            client.send(client.last * times)
    elif name == "burst":
        # rapid reset (CVE-2023-44487): streams opened and cancelled at once
        frames = []
        for _ in range(op[1]):
            sid = client.stream("new", opens=True)
            block = request_block("get", sid, client.encoder)
            frames.append((HeadersFrame(1, block, flags=["END_STREAM", "END_HEADERS"]), sid))
            frames.append((RstStreamFrame(1, error_code=8), sid))
        client.send(*frames)
    else:
        raise AssertionError(name)


FRAME_OPS = frozenset(
    ("headers", "continuation", "data", "rst", "settings", "ping", "window", "priority", "goaway")
) | {"unknown", "raw", "repeat", "burst"}


# --------------------------------------------------------------------------- the app


@dataclass
class Call:
    """One request as the app got it, and what became of its response."""

    method: str
    stream: int | None  # the client's stream id, from the path /s<sid>
    behaviour: Behaviour
    sent: bool = False  # the last message's send() returned
    status: int = 0
    body: bytes = b""
    trailers: list | None = None
    long_poll: bool = False  # waiting in receive() for the client to leave
    in_send: bool = False  # waiting in send()
    ended: bool = False


PATH_STREAM = re.compile(r"/s([0-9]+)(?:/|\Z)")
TRAILERS = [(b"x-t", b"1"), (b"x-u", b"2")]


def app_headers(b: Behaviour, total: int) -> list:
    return [
        [],
        [(b"content-type", b"text/plain")],
        [(b"content-length", b"%d" % total)],
        [(b"connection", b"keep-alive"), (b"Transfer-Encoding", b"chunked"), (b"x-a", b"1")],
        [(b"X-Mixed-Case", b""), (b"server", b"app"), (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")],
    ][b.headers]


@dataclass
class App:
    behaviours: tuple
    calls: list = field(default_factory=list)

    async def __call__(self, scope, receive, send):
        assert scope["type"] == "http" and scope["http_version"] == "2", scope
        k = len(self.calls)
        b = self.behaviours[k] if k < len(self.behaviours) else DEFAULT
        m = PATH_STREAM.search(scope["raw_path"].decode("latin-1"))
        call = Call(scope["method"], int(m.group(1)) if m else None, b)
        self.calls.append(call)

        async def sending(message):
            call.in_send = True
            try:
                await send(message)
            finally:
                call.in_send = False

        try:
            await self.play(b, call, receive, sending)
        finally:
            call.ended = True

    async def read(self, receive, n: int) -> None:
        for i in range(10000):
            if n < 3 and i >= n:
                return
            msg = await receive()
            if msg["type"] == "http.disconnect" or not msg.get("more_body", False):
                return

    async def wait(self, seconds: float) -> None:
        if seconds:
            await asyncio.sleep(seconds)

    async def play(self, b: Behaviour, call: Call, receive, send) -> None:
        mode = b.mode
        total = b.size * (b.parts + 1)
        headers = app_headers(b, total)
        if mode == "wrong_length":
            headers = [(b"content-length", b"%d" % (total + 1 if b.parts % 2 == 0 else max(total - 1, 0)))]
        elif mode == "bad_header":
            headers = [*headers, (b"x-evil", b"a\r\nx-injected: 1")]
        start = {"type": "http.response.start", "status": b.status, "headers": headers}
        if mode == "trailers":
            start["trailers"] = True
        parts = [bytes([0x61 + i % 26]) * b.size for i in range(b.parts + 1)]

        async def body(i: int, more: bool) -> None:
            await send({"type": "http.response.body", "body": parts[i], "more_body": more})

        async def respond() -> None:
            await send(start)
            for i in range(b.parts):
                await body(i, True)
                if mode in ("stream", "trailers"):
                    await self.wait(b.wait)
            await body(b.parts, False)
            if mode in ("trailers", "trailers_unasked"):
                await send({"type": "http.response.trailers", "headers": TRAILERS[:1], "more_trailers": True})
                await send({"type": "http.response.trailers", "headers": [(b"X-U", b"2")]})
                call.trailers = TRAILERS
            call.sent, call.status, call.body = True, b.status, b"".join(parts)

        if mode == "body_first":
            await body(0, False)
        elif mode == "raise_mid_stream":
            await send(start)
            await body(0, True)
            await self.wait(b.wait)
            raise FuzzAppError("mid-stream")
        elif mode == "start_only":
            await send(start)
            await self.wait(b.wait)
            return
        await self.read(receive, 3 if mode == "read_respond" else b.reads)
        if mode == "disconnect_then_send":
            call.long_poll = True
            for _ in range(10000):
                if (await receive())["type"] == "http.disconnect":
                    break
            call.long_poll = False
            await respond()
            return
        if mode not in ("stream", "trailers", "raise_after_start"):
            await self.wait(b.wait)
        if mode == "raise_before":
            raise FuzzAppError("before start")
        if mode == "return_early":
            return
        if mode == "raise_after_start":
            await send(start)
            await self.wait(b.wait)
            raise FuzzAppError("after start")
        await respond()
        if mode == "twice":
            await send(start)


# --------------------------------------------------------------------------- running a plan


def run(plan: Plan) -> None:
    run_watched(
        play, plan, "Internal error on an HTTP/2 connection", "an internal error on the HTTP/2 connection"
    )


def play(loop, plan: Plan) -> None:
    app = App(plan.behaviours)
    ctx = make_ctx(app, loop, **PROFILES[plan.profile])
    _, transport = connect(ctx)  # the transport's protocol is the one served
    client = Client(PREFACES[plan.preface])
    write_paused = False

    def deliver(size: int) -> None:
        if client.pending() and not transport.closed:
            step(loop)  # a real loop runs what is ready between two reads
            transport.feed(client.take(size))

    for op in plan.ops:
        name = op[0]
        if name in FRAME_OPS:
            send_op(client, op)
        elif name == "deliver":
            deliver(op[1])
        elif name == "eof":
            deliver(0)  # the client half-closes after what it sent
            if not transport.eof_pending and transport.eof_result == "not delivered":
                transport.feed_eof()
        elif name == "lose":
            transport.peer_lost(None)
        elif name == "pause_writing":
            # asyncio reports the change only, and not once the connection is lost
            if not write_paused and not transport.closed:
                write_paused = True
                transport.set_write_paused(True)
        elif name == "resume_writing":
            if write_paused and not transport.lost:
                write_paused = False
                transport.set_write_paused(False)
        elif name == "tick":
            advance(loop, ctx, op[1])
        elif name == "step":
            step(loop)
        elif name == "idle":
            settle(loop)
        elif name == "timers":
            run_timers(loop, 10.0)
        elif name == "shutdown":
            in_loop(loop, ctx.begin_shutdown)
        elif name == "abort":
            in_loop(loop, transport.get_protocol().abort)

    # the end: what the client sent arrives, it reads what it is sent, every timeout passes
    deliver(0)
    settle(loop)
    if write_paused and not transport.lost:
        transport.set_write_paused(False)
    for _ in range(8):
        run_timers(loop, 200.0)  # app sleeps end, whether or not the connection is open
        if transport.lost:
            break
        advance(loop, ctx, 31.0)
    conn = transport.get_protocol()
    if not transport.lost:
        waiting = [c for c in app.calls if not c.ended]
        check(
            waiting and all(c.long_poll for c in waiting),
            "the connection is still open after every timeout passed: %s %s, app calls waiting %r, "
            "reading paused %s",
            type(conn).__name__,
            conn.state_name,
            waiting[-3:],
            transport.reading_paused,
        )
        transport.peer_lost(None)  # a long poll ends when the client leaves
        settle(loop)
        run_timers(loop, 200.0)
    check(
        conn.state_name == "CLOSED",
        "%s state %s after the connection was lost",
        type(conn).__name__,
        conn.state_name,
    )
    stuck = [c for c in app.calls if not c.ended]
    check(not ctx.tasks, "app tasks left after the connection ended: %r (calls %r)", ctx.tasks, stuck[:3])
    check(not stuck, "an app call never ended: %r", stuck[:3])
    check(ctx.active_requests == 0, "active_requests is %d at the end", ctx.active_requests)
    check_output(transport, client, app.calls)


# --------------------------------------------------------------------------- the output


@dataclass
class ClientView:
    """What the client's bytes said, read as the server reads them (frame by frame after the
    preface; raw bytes may make any frame): the streams it opened with HEADERS, the SETTINGS
    and PINGs that ask for an ACK, the limits it set."""

    opened: set = field(default_factory=set)
    settings: int = 0
    pings: int = 0
    max_frame: int = DEFAULT_MAX_FRAME
    table_size: int = 4096
    open_head: bool = False  # the bytes end inside a field block (or a HEADERS frame)


def client_view(sent: bytes) -> ClientView:
    view = ClientView()
    pos = len(PREFACE)
    while pos + 9 <= len(sent):
        length = int.from_bytes(sent[pos : pos + 3], "big")
        ftype, flags = sent[pos + 3], sent[pos + 4]
        sid = int.from_bytes(sent[pos + 5 : pos + 9], "big") & MAX_STREAM
        payload = sent[pos + 9 : pos + 9 + length]
        if ftype in (0x1, 0x9):
            view.open_head = not flags & 0x4 or len(payload) < length
        else:
            view.open_head = False
        if ftype == 0x1:
            view.opened.add(sid)
        elif ftype == 0x4 and not flags & 1:
            view.settings += 1
            for i in range(0, len(payload) - 5, 6):
                ident, value = struct.unpack(">HL", payload[i : i + 6])
                if ident == 5 and DEFAULT_MAX_FRAME <= value < 1 << 24:
                    view.max_frame = max(view.max_frame, value)
                elif ident == 1:
                    view.table_size = max(view.table_size, value)
        elif ftype == 0x6 and not flags & 1:
            view.pings += 1
        pos += 9 + length
    return view


@dataclass
class Answer:
    """What the server sent on one stream."""

    status: int | None = None
    headers: list = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list | None = None
    ended: bool = False  # END_STREAM
    reset: int | None = None  # its RST_STREAM's code


CONNECTION_SPECIFIC = {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
BAD_VALUE = re.compile(rb"[\r\n\x00]")


def read_frames(out: bytes) -> list:
    """``out`` as HTTP/2 frames (hyperframe); Violation when it is not."""
    frames = []
    pos = 0
    while pos < len(out):
        check(len(out) - pos >= 9, "the output ends inside a frame header: %r", out[pos:])
        try:
            frame, length = Frame.parse_frame_header(memoryview(out[pos : pos + 9]))
            check(len(out) - pos - 9 >= length, "the output ends inside a frame: %r", frame)
            frame.parse_body(memoryview(out[pos + 9 : pos + 9 + length]))
        except HyperframeError as exc:
            raise Violation(
                f"frame {len(frames)} does not parse: {exc!r} in {out[pos : pos + 40]!r}"
            ) from None
        check(not out[pos + 5] & 0x80, "frame %d has the reserved bit set: %r", len(frames), frame)
        frames.append((frame, length, out[pos + 4]))
        pos += 9 + length
    return frames


def check_fields(fields: list, stream: int, what: str) -> None:
    for name, value in fields:
        check(
            name == name.lower() and name not in CONNECTION_SPECIFIC and not BAD_VALUE.search(name + value),
            "stream %d: field %r: %r in the %s",
            stream,
            name,
            value,
            what,
        )


def check_output(transport, client: Client, calls: list) -> None:
    check(
        not transport.writes_after_close,
        "written after the transport was closed: %r",
        b"".join(transport.writes_after_close)[:300],
    )
    frames = read_frames(transport.output())
    if not frames:
        return
    view = client_view(bytes(client.sent))
    first = frames[0][0]
    check(
        isinstance(first, SettingsFrame) and "ACK" not in first.flags,
        "the server's first frame is %r, not its SETTINGS",
        first,
    )
    decoder = hpack.Decoder(max_header_list_size=1 << 30)
    decoder.max_allowed_table_size = view.table_size
    answers: dict[int, Answer] = {}
    block = None  # an open field block: stream, bytearray, END_STREAM
    goaway_last = MAX_STREAM
    acks = {"settings": 0, "pings": 0}
    for i, (frame, length, flags) in enumerate(frames):
        sid = frame.stream_id
        check(
            not isinstance(frame, (ExtensionFrame, PushPromiseFrame)),
            "frame %d: the server sent %r",
            i,
            frame,
        )
        check(length <= view.max_frame, "frame %d: %r of %d bytes, over the client's limit", i, frame, length)
        check(
            sid == 0 or (sid & 1 and sid in view.opened),
            "frame %d: %r on stream %d, which the client did not open (it opened %r)",
            i,
            frame,
            sid,
            sorted(view.opened)[:20],
        )
        if block is not None:
            check(
                isinstance(frame, ContinuationFrame) and sid == block[0],
                "frame %d: %r inside the field block of stream %d",
                i,
                frame,
                block[0],
            )
        elif isinstance(frame, ContinuationFrame):
            raise Violation(f"frame {i}: {frame!r} outside a field block")
        answer = answers.setdefault(sid, Answer()) if sid else None
        if sid and not isinstance(frame, (ContinuationFrame, PriorityFrame, WindowUpdateFrame)):
            check(answer.reset is None, "frame %d: %r after the server reset stream %d", i, frame, sid)
            check(
                not answer.ended or isinstance(frame, RstStreamFrame),
                "frame %d: %r after the server's END_STREAM on stream %d",
                i,
                frame,
                sid,
            )
        if isinstance(frame, HeadersFrame):
            block = (sid, bytearray(frame.data), "END_STREAM" in frame.flags)
        elif isinstance(frame, ContinuationFrame):
            block[1].extend(frame.data)
        elif isinstance(frame, DataFrame):
            check(
                answer.status is not None, "frame %d: DATA on stream %d before the response's HEADERS", i, sid
            )
            answer.body += frame.data
            answer.ended = "END_STREAM" in frame.flags
        elif isinstance(frame, RstStreamFrame):
            answer.reset = frame.error_code
        elif isinstance(frame, GoAwayFrame):
            check(
                frame.last_stream_id <= goaway_last,
                "frame %d: GOAWAY's last stream id went up from %d to %d",
                i,
                goaway_last,
                frame.last_stream_id,
            )
            goaway_last = frame.last_stream_id
        elif isinstance(frame, SettingsFrame) and "ACK" in frame.flags:
            acks["settings"] += 1
        elif isinstance(frame, PingFrame) and "ACK" in frame.flags:
            acks["pings"] += 1
        if block is not None and flags & 0x4:  # END_HEADERS
            stream, data, end = block
            block = None
            try:
                fields = decoder.decode(bytes(data), raw=True)
            except hpack.HPACKError as exc:
                raise Violation(
                    f"frame {i}: the field block on stream {stream} does not decode: {exc!r}"
                ) from None
            answer = answers[stream]
            if answer.status is None:
                check(
                    fields and fields[0][0] == b":status" and re.fullmatch(rb"[1-5][0-9][0-9]", fields[0][1]),
                    "stream %d: a response head without :status first: %r",
                    stream,
                    fields,
                )
                check(int(fields[0][1]) >= 200, "stream %d: an informational response %r", stream, fields)
                check(
                    not any(n.startswith(b":") for n, _ in fields[1:]),
                    "stream %d: pseudo-header fields after :status: %r",
                    stream,
                    fields,
                )
                check_fields(fields[1:], stream, "response head")
                answer.status, answer.headers = int(fields[0][1]), fields[1:]
            else:
                check(end, "stream %d: trailers without END_STREAM", stream)
                check(
                    not any(n.startswith(b":") for n, _ in fields),
                    "stream %d: pseudo-headers in trailers",
                    stream,
                )
                check_fields(fields, stream, "trailers")
                answer.trailers = fields
            answer.ended = end
    check(block is None, "the output ends inside the field block of stream %d", block and block[0])
    check(
        acks["settings"] <= view.settings, "%d SETTINGS ACKs for %d SETTINGS", acks["settings"], view.settings
    )
    check(acks["pings"] <= view.pings, "%d PING ACKs for %d PINGs", acks["pings"], view.pings)

    # the responses the app completed, as it sent them
    by_stream: dict[int, list] = {}
    for c in calls:
        by_stream.setdefault(c.stream, []).append(c)
    for sid, answer in answers.items():
        mine = by_stream.get(sid, [])
        if len(mine) != 1 or not mine[0].sent or not answer.ended or answer.reset is not None:
            continue
        c = mine[0]
        check(
            answer.status == c.status, "stream %d: status %d, the app sent %d", sid, answer.status, c.status
        )
        bodiless = c.method == "HEAD" or c.status in (204, 304)
        body = b"" if bodiless else c.body
        check(
            bytes(answer.body) == body,
            "stream %d: body %r (%d bytes), the app sent %r (%d bytes)",
            sid,
            bytes(answer.body[:60]),
            len(answer.body),
            body[:60],
            len(body),
        )
        if c.trailers is not None and not bodiless:
            check(
                answer.trailers == c.trailers,
                "stream %d: trailers %r, the app sent %r",
                sid,
                answer.trailers,
                c.trailers,
            )


def one_input(data: bytes) -> None:
    """atheris's TestOneInput: decode, run, check."""
    run(decode(FuzzedDataProvider(data)))


def main() -> None:
    import atheris

    import fastasgi._http._core as core

    print(f"fuzz_h2: fastasgi._http._core from {core.__file__} (debug build: {core.DEBUG})", file=sys.stderr)
    if not core.DEBUG:
        # the normal build has no coverage instrumentation: steer by the Python side instead
        # (this harness's checks of the output, hpack, hyperframe, asyncio's tasks)
        atheris.instrument_all()
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
