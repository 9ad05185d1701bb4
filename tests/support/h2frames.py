"""ONE raw HTTP/2 client for the conformance suite (tests/e2e/test_h2_conformance.py), built on
``hyperframe`` (frames) and ``hpack`` (field blocks). Every read has a deadline.

``H2Conn`` connects over plain TCP (h2c with prior knowledge, RFC 9113 3.3) or TLS with ALPN
"h2" (RFC 9113 3.2), sends the client preface and exchanges SETTINGS. It sends well-formed
frames (hyperframe) and anything else as raw bytes (``send_raw``: any length, type, flags and
stream id). Everything the server sends goes through ``_observe``, which keeps the connection
state (settings, windows, HPACK, streams), answers PING and SETTINGS, and fails the test at
once when the server breaks one of the rules a sender MUST follow (``H2Violation``).

The ``wait_error``/``expect_*`` helpers end every wait with a PING barrier where one is safe:
a server handles frames in order, so when the PING's ACK comes back (and a short grace after
it) without an error, the server let the frame before it pass.
"""

from __future__ import annotations

import itertools
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

import hpack
from hpack.hpack import encode_integer
from hyperframe.exceptions import HyperframeError
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    ExtensionFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PushPromiseFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

#: RFC 9113 3.4: the client connection preface
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: default deadline of one wait
TIMEOUT = 2.0
#: how long after a barrier PING's ACK an error may still arrive (servers that check a
#: request in another task than the frame reader)
GRACE = 0.1
#: how long to wait for an immediate answer before sending a barrier PING: a server that
#: closes with the PING unread resets the connection, which can drop its GOAWAY
PATIENCE = 0.05
FRAME_HEADER = struct.Struct(">HBBBL")  # length as 16 + 8 bits, type, flags, stream id
HEADER_LEN = FRAME_HEADER.size
MAX_WINDOW = 2**31 - 1  # RFC 9113 6.9.1
DEFAULT_WINDOW = 65_535  # RFC 9113 6.9.2
DEFAULT_MAX_FRAME = 16_384  # RFC 9113 4.2
MAX_FRAME_LIMIT = 2**24 - 1  # RFC 9113 6.5.2
DEFAULT_TABLE_SIZE = 4_096  # RFC 9113 6.5.2


class FrameType(IntEnum):
    DATA = 0x0
    HEADERS = 0x1
    PRIORITY = 0x2
    RST_STREAM = 0x3
    SETTINGS = 0x4
    PUSH_PROMISE = 0x5
    PING = 0x6
    GOAWAY = 0x7
    WINDOW_UPDATE = 0x8
    CONTINUATION = 0x9


class Flag(IntEnum):
    END_STREAM = 0x1
    ACK = 0x1
    END_HEADERS = 0x4
    PADDED = 0x8
    PRIORITY = 0x20


class ErrorCode(IntEnum):
    """RFC 9113 7."""

    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


class Setting(IntEnum):
    """RFC 9113 6.5.2."""

    HEADER_TABLE_SIZE = 0x1
    ENABLE_PUSH = 0x2
    MAX_CONCURRENT_STREAMS = 0x3
    INITIAL_WINDOW_SIZE = 0x4
    MAX_FRAME_SIZE = 0x5
    MAX_HEADER_LIST_SIZE = 0x6


#: RFC 9113 4.1: the flags each frame type defines; the others MUST be left unset when sending
DEFINED_FLAGS = {
    FrameType.DATA: Flag.END_STREAM | Flag.PADDED,
    FrameType.HEADERS: Flag.END_STREAM | Flag.END_HEADERS | Flag.PADDED | Flag.PRIORITY,
    FrameType.PRIORITY: 0,
    FrameType.RST_STREAM: 0,
    FrameType.SETTINGS: Flag.ACK,
    FrameType.PUSH_PROMISE: Flag.END_HEADERS | Flag.PADDED,
    FrameType.PING: Flag.ACK,
    FrameType.GOAWAY: 0,
    FrameType.WINDOW_UPDATE: 0,
    FrameType.CONTINUATION: Flag.END_HEADERS,
}
#: RFC 9113 8.2.2: fields a server MUST NOT generate
CONNECTION_SPECIFIC = {
    b"connection",
    b"keep-alive",
    b"proxy-connection",
    b"transfer-encoding",
    b"upgrade",
    b"te",
}
_STREAM_FRAMES = {
    FrameType.DATA,
    FrameType.HEADERS,
    FrameType.RST_STREAM,
    FrameType.PUSH_PROMISE,
    FrameType.CONTINUATION,
}

Headers = list[tuple[bytes, bytes]]


class H2Violation(AssertionError):
    """The server broke a rule of RFC 9113 / RFC 7541 that binds a sender."""


class FrameTimeout(AssertionError):
    """A deadline passed before the awaited frame came."""


def error_name(code: int | None) -> str:
    try:
        return ErrorCode(code).name
    except ValueError:
        return f"0x{code:x}" if code is not None else "-"


# --------------------------------------------------------------------------- byte builders


def frame_bytes(
    ftype: int, flags: int, stream: int, payload: bytes = b"", length: int | None = None
) -> bytes:
    """Any frame, well-formed or not: the 9-octet header (RFC 9113 4.1) and the payload.
    ``length`` overrides the length field; ``stream`` may carry the reserved bit."""
    size = len(payload) if length is None else length
    return FRAME_HEADER.pack(size >> 8, size & 0xFF, ftype, flags, stream) + payload


def settings_payload(pairs: Iterable[tuple[int, int]]) -> bytes:
    """RFC 9113 6.5.1: identifier (16) and value (32) per setting, in the given order."""
    return b"".join(struct.pack(">HL", ident, value) for ident, value in pairs)


def padded(body: bytes, pad_length: int, actual_padding: int | None = None) -> bytes:
    """A PADDED payload: the Pad Length octet, the body, then ``actual_padding`` zeros
    (default: as many as the Pad Length says)."""
    pad = pad_length if actual_padding is None else actual_padding
    return bytes([pad_length]) + body + b"\0" * pad


def priority_fields(depends_on: int, weight: int = 16, exclusive: bool = False) -> bytes:
    """RFC 9113 6.3: exclusive bit, stream dependency (31), weight (8)."""
    return struct.pack(">LB", depends_on | (0x80000000 if exclusive else 0), weight - 1)


def hpack_int(value: int, prefix_bits: int, pattern: int = 0) -> bytes:
    """RFC 7541 5.1 integer with its first octet's high bits set to ``pattern``."""
    out = encode_integer(value, prefix_bits)
    out[0] |= pattern
    return bytes(out)


def hpack_string(data: bytes, huffman: bool = False) -> bytes:
    """RFC 7541 5.2 string literal; with ``huffman`` the bytes are sent as they are, as
    Huffman-coded octets (for hand-made, possibly invalid codes)."""
    return hpack_int(len(data), 7, 0x80 if huffman else 0) + data


def hpack_literal(name: bytes, value: bytes, indexing: bool = False) -> bytes:
    """RFC 7541 6.2.1/6.2.2: literal field with a new name, with or without indexing."""
    return (b"\x40" if indexing else b"\x00") + hpack_string(name) + hpack_string(value)


def hpack_literal_value(name_index: int, value: bytes) -> bytes:
    """RFC 7541 6.2.2: literal field without indexing, name from the table."""
    return hpack_int(name_index, 4) + hpack_string(value)


# --------------------------------------------------------------------------- state


@dataclass
class Response:
    """What the server sent on one stream."""

    stream: int
    status: int | None = None
    headers: Headers = field(default_factory=list)
    informational: list[int] = field(default_factory=list)
    body: bytes = b""
    trailers: Headers | None = None
    complete: bool = False  # the server's END_STREAM came
    reset: int | None = None  # the server's RST_STREAM error code

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def __repr__(self) -> str:
        state = (
            "complete"
            if self.complete
            else f"reset {error_name(self.reset)}"
            if self.reset is not None
            else "open"
        )
        return f"<Response stream={self.stream} status={self.status} body={self.body[:60]!r} {state}>"


@dataclass
class _Stream:
    recv_window: int
    send_window: int
    opened: bool = False  # we sent HEADERS on it
    method: str | None = None
    response: Response | None = None
    body: bytearray = field(default_factory=bytearray)
    raw_blocks: list[bytes] = field(default_factory=list)
    server_ended: bool = False
    final_seen: bool = False


@dataclass
class Outcome:
    """How a wait ended: the server's GOAWAY, its RST_STREAM, a complete response on the
    watched stream, the connection closing, or nothing (``kind == "none"``)."""

    kind: str
    code: int | None = None
    frame: Frame | None = None
    response: Response | None = None

    def __repr__(self) -> str:
        if self.kind in ("goaway", "rst"):
            return f"<{self.kind.upper()} {error_name(self.code)}>"
        if self.kind == "response":
            return f"<response {self.response}>"
        return f"<{self.kind}>"


# --------------------------------------------------------------------------- the client


class H2Conn:
    """One HTTP/2 connection to the server under test."""

    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        ssl_context: ssl.SSLContext | None = None,
        timeout: float = TIMEOUT,
        server_hostname: str = "localhost",
    ) -> None:
        raw = socket.create_connection((host, port), timeout=timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock: socket.socket = raw
        self.tls = ssl_context is not None
        if ssl_context is not None:
            self.sock = ssl_context.wrap_socket(raw, server_hostname=server_hostname)
            # RFC 9113 3.2: HTTP/2 over TLS is selected with ALPN "h2"
            selected = self.sock.selected_alpn_protocol()
            if selected != "h2":
                self.sock.close()
                raise H2Violation(f"ALPN selected {selected!r}, not 'h2'")
        self.host, self.port, self.timeout = host, port, timeout
        self.authority = f"{host}:{port}"
        self.buf = bytearray()
        self.eof = False
        self.send_failed = False
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.decoder.max_header_list_size = 2**31  # the server's own limits are not ours
        # settings: the server's as received, ours as sent (applied leniently, see _apply_local)
        self.server_settings: dict[int, int] = {}
        self.local_iws = DEFAULT_WINDOW
        self.local_max_frame = DEFAULT_MAX_FRAME
        self.unacked_settings: deque[list[tuple[int, int]]] = deque()
        self.settings_acks = 0
        self.got_server_preface = False
        # flow control (RFC 9113 6.9): what we may send, what the server may send us
        self.send_window = DEFAULT_WINDOW
        self.recv_window = DEFAULT_WINDOW
        self.auto_window_update = True
        self.streams: dict[int, _Stream] = {}
        self.next_stream_id = 1
        self.block_open = False  # our field block is open (no END_HEADERS yet)
        self.block_stream = 0
        self.server_block: tuple[int, bytearray, bool] | None = None  # stream, fragments, END_STREAM
        self.goaways: list[GoAwayFrame] = []
        self.ping_acks: set[bytes] = set()
        self.received: list[Frame] = []
        self._ping_ids = itertools.count(1)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> H2Conn:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def handshake(
        self, settings: Sequence[tuple[int, int]] = (), preface: bytes = PREFACE, wait_ack: bool = True
    ) -> None:
        """RFC 9113 3.4: send the preface and our SETTINGS (ENABLE_PUSH 0 first, then
        ``settings``); read the server's SETTINGS, which MUST be its first frame, and ACK
        it; with ``wait_ack``, also wait for the ACK of ours."""
        pairs = [(Setting.ENABLE_PUSH, 0), *settings]
        self.send(preface + self._settings_bytes(pairs))
        deadline = time.monotonic() + self.timeout
        while not self.got_server_preface or (wait_ack and self.unacked_settings):
            if self.read_frame(deadline) is None:
                raise H2Violation(f"connection closed during the handshake; got {self._recent()}")

    # ------------------------------------------------------------------ sending
    def send(self, data: bytes) -> bool:
        """sendall; False (and nothing raised) when the server already closed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:  # reset, broken pipe, TLS alert
            self.send_failed = True
            return False

    def send_raw(
        self, ftype: int, flags: int, stream: int, payload: bytes = b"", length: int | None = None
    ) -> bool:
        """Any frame as bytes (see ``frame_bytes``); the client's own bookkeeping follows
        what was sent (opened streams, an open field block, flow control)."""
        self._track_sent(ftype, flags, stream & MAX_WINDOW, payload)
        return self.send(frame_bytes(ftype, flags, stream, payload, length))

    def send_frame(self, frame: Frame) -> bool:
        data = frame.serialize()
        ftype, flags = data[3], data[4]
        self._track_sent(ftype, flags, frame.stream_id, data[HEADER_LEN:])
        return self.send(data)

    def stream(self, sid: int) -> _Stream:
        """The state of stream ``sid`` (made on first use)."""
        if sid not in self.streams:
            self.streams[sid] = _Stream(recv_window=self.local_iws, send_window=self._server_iws())
        return self.streams[sid]

    def _track_sent(self, ftype: int, flags: int, stream: int, payload: bytes) -> None:
        st = self.stream(stream) if stream else None
        if self.block_open:
            # our field block stays open (and the connection broken) until its own
            # CONTINUATION with END_HEADERS: a PING barrier would be an error of its own
            if ftype == FrameType.CONTINUATION and stream == self.block_stream and flags & Flag.END_HEADERS:
                self.block_open = False
        elif ftype == FrameType.HEADERS and not flags & Flag.END_HEADERS:
            self.block_open, self.block_stream = True, stream
        if ftype == FrameType.HEADERS and st is not None:
            st.opened = True
            if stream >= self.next_stream_id:
                self.next_stream_id = stream + 2 if stream % 2 else stream + 1
        elif ftype == FrameType.DATA:
            self.send_window -= len(payload)
            if st is not None:
                st.send_window -= len(payload)
        elif ftype == FrameType.WINDOW_UPDATE and len(payload) == 4:
            increment = struct.unpack(">L", payload)[0] & MAX_WINDOW
            if st is None:
                self.recv_window += increment
            else:
                st.recv_window += increment

    def _settings_bytes(self, pairs: Sequence[tuple[int, int]], flags: int = 0) -> bytes:
        self._apply_local(pairs, acked=False)
        self.unacked_settings.append(list(pairs))
        return frame_bytes(FrameType.SETTINGS, flags, 0, settings_payload(pairs))

    def send_settings(self, pairs: Sequence[tuple[int, int]], wait_ack: bool = True, flags: int = 0) -> None:
        """SETTINGS (``flags`` may add unused flags; ACK is not for this method)."""
        self.send(self._settings_bytes(pairs, flags))
        if wait_ack:
            self.wait_settings_acked()

    def wait_settings_acked(self) -> None:
        deadline = time.monotonic() + self.timeout
        while self.unacked_settings:
            if self.read_frame(deadline) is None:
                raise H2Violation("connection closed before our SETTINGS were acknowledged")

    def ping(self, payload: bytes | None = None) -> bytes:
        """Send a PING (RFC 9113 6.7); returns its payload (its ACK is recorded in ``ping_acks``)."""
        data = payload if payload is not None else struct.pack(">Q", next(self._ping_ids))
        self.send_frame(PingFrame(0, data))
        return data

    def ping_roundtrip(self, payload: bytes | None = None) -> None:
        data = self.ping(payload)
        deadline = time.monotonic() + self.timeout
        while data not in self.ping_acks:
            if self.read_frame(deadline) is None:
                raise H2Violation(f"connection closed before the PING ACK; got {self._recent()}")

    def window_update(self, stream: int, increment: int) -> None:
        self.send_frame(WindowUpdateFrame(stream, window_increment=increment))

    def rst(self, stream: int, code: int = ErrorCode.CANCEL) -> None:
        self.send_frame(RstStreamFrame(stream, error_code=code))

    def request_fields(
        self, method: str = "GET", path: str = "/", extra: Iterable[tuple[str, str]] = ()
    ) -> list:
        """RFC 9113 8.3.1: the four request pseudo-header fields, then ``extra``."""
        return [
            (":method", method),
            (":scheme", "https" if self.tls else "http"),
            (":authority", self.authority),
            (":path", path),
            *extra,
        ]

    def new_stream(self) -> int:
        sid = self.next_stream_id
        self.next_stream_id += 2
        return sid

    def send_headers(
        self, stream: int, block: bytes, end_stream: bool = True, end_headers: bool = True, flags: int = 0
    ) -> None:
        flags |= (Flag.END_STREAM if end_stream else 0) | (Flag.END_HEADERS if end_headers else 0)
        self.send_raw(FrameType.HEADERS, flags, stream, block)

    def send_data(self, stream: int, data: bytes, end_stream: bool = True) -> None:
        """DATA within the server's windows and SETTINGS_MAX_FRAME_SIZE (RFC 9113 6.9.1,
        4.2): waits (bounded) for WINDOW_UPDATE when a window is exhausted."""
        view = memoryview(data)
        deadline = time.monotonic() + self.timeout
        while True:
            st = self.stream(stream)
            room = min(self.send_window, st.send_window, self._server_max_frame(), len(view))
            if room <= 0 and len(view) > 0:
                if self.eof or (st.response and (st.response.reset is not None)):
                    return
                try:
                    if self.read_frame(deadline) is None:
                        return
                except FrameTimeout:
                    raise FrameTimeout(
                        f"the server never opened its flow-control window (connection "
                        f"{self.send_window}, stream {st.send_window}); got {self._recent()}"
                    ) from None
                continue
            chunk, view = view[:room], view[room:]
            last = end_stream and len(view) == 0
            self.send_raw(FrameType.DATA, Flag.END_STREAM if last else 0, stream, bytes(chunk))
            deadline = time.monotonic() + self.timeout
            if len(view) == 0:
                return

    def request(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
        trailers: Iterable[tuple[str, str]] | None = None,
        end_stream: bool = True,
    ) -> int:
        """Send a request (HPACK-encoded with the connection's encoder); returns its stream."""
        sid = self.new_stream()
        has_more = bool(body) or trailers is not None or not end_stream
        self.send_headers(
            sid, self.encoder.encode(self.request_fields(method, path, headers)), end_stream=not has_more
        )
        self.stream(sid).method = method
        if body:
            self.send_data(sid, body, end_stream=trailers is None and end_stream)
        if trailers is not None:
            self.send_headers(sid, self.encoder.encode(list(trailers)), end_stream=True)
        return sid

    def fetch(self, method: str = "GET", path: str = "/", **kwargs) -> Response:
        """One whole exchange; fails unless a complete response comes."""
        sid = self.request(method, path, **kwargs)
        resp = self.response(sid)
        if not resp.complete:
            raise AssertionError(f"{method} {path}: no complete response: {resp!r}; got {self._recent()}")
        return resp

    # ------------------------------------------------------------------ receiving
    def read_frame(self, deadline: float | None = None) -> Frame | None:
        """The next frame (observed), or None once the server closed the connection.
        Raises FrameTimeout when ``deadline`` passes first."""
        deadline = deadline if deadline is not None else time.monotonic() + self.timeout
        while True:
            if len(self.buf) >= HEADER_LEN:
                hi, lo = FRAME_HEADER.unpack_from(self.buf)[:2]
                length = (hi << 8) | lo
                if len(self.buf) >= HEADER_LEN + length:
                    header = bytes(self.buf[:HEADER_LEN])
                    payload = bytes(self.buf[HEADER_LEN : HEADER_LEN + length])
                    del self.buf[: HEADER_LEN + length]
                    return self._observe(header, payload)
            if self.eof or not self._fill(deadline):
                return None

    def _fill(self, deadline: float) -> bool:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FrameTimeout(f"no frame within the deadline; got {self._recent()}")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65_536)
        except TimeoutError:
            raise FrameTimeout(f"no frame within the deadline; got {self._recent()}") from None
        except OSError:  # reset, TLS alert or abrupt end: the connection is over
            chunk = b""
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def response(self, stream: int, timeout: float | None = None) -> Response:
        """Read until the stream ends (END_STREAM or RST_STREAM from the server), the
        connection closes or the deadline passes; returns what came."""
        deadline = time.monotonic() + (timeout or self.timeout)
        st = self.stream(stream)
        while not st.server_ended and (st.response is None or st.response.reset is None):
            if self.read_frame(deadline) is None:
                break
        return st.response or Response(stream)

    def wait_error(
        self, stream: int | None = None, barrier: bool = True, timeout: float | None = None
    ) -> Outcome:
        """Wait for the server's verdict on what was just sent: the first GOAWAY, RST_STREAM
        (on ``stream`` when given), complete response on ``stream``, or the connection
        closing. With ``barrier`` (and no field block of ours open, where a PING would be an
        error of its own), a PING is sent when nothing came for ``PATIENCE`` seconds, and the
        wait ends ``GRACE`` seconds after its ACK; otherwise it ends at the deadline."""
        deadline = time.monotonic() + (timeout or self.timeout)
        payload = None
        use_barrier = barrier and not self.block_open
        seen = len(self.received)
        while True:
            for frame in self.received[seen:]:
                outcome = self._outcome_of(frame, stream)
                if outcome is not None:
                    return outcome
            seen = len(self.received)
            if payload is not None and payload in self.ping_acks:
                deadline = min(deadline, time.monotonic() + GRACE)
                payload = None
            wait_until = deadline
            if use_barrier:
                wait_until = min(deadline, time.monotonic() + PATIENCE)
            try:
                if self.read_frame(wait_until) is None:
                    return Outcome("closed")
            except FrameTimeout:
                if not use_barrier:
                    return Outcome("none")
                use_barrier = False
                payload = self.ping()

    def _outcome_of(self, frame: Frame, stream: int | None) -> Outcome | None:
        if isinstance(frame, GoAwayFrame):
            return Outcome("goaway", frame.error_code, frame)
        if isinstance(frame, RstStreamFrame) and stream in (None, frame.stream_id):
            return Outcome("rst", frame.error_code, frame, self.stream(frame.stream_id).response)
        if stream is not None and frame.stream_id == stream and self.stream(stream).server_ended:
            return Outcome("response", None, frame, self.streams[stream].response)
        return None

    def expect_goaway(self, *codes: int, barrier: bool = True) -> GoAwayFrame:
        """A connection error (RFC 9113 5.4.1): GOAWAY with one of ``codes``, then the
        connection closed."""
        outcome = self.wait_error(barrier=barrier)
        names = "/".join(error_name(c) for c in codes)
        if outcome.kind != "goaway":
            raise AssertionError(f"expected GOAWAY {names}, got {outcome!r}; frames {self._recent()}")
        if outcome.code not in codes:
            raise AssertionError(f"expected GOAWAY {names}, got GOAWAY {error_name(outcome.code)}")
        self.expect_closed()
        return outcome.frame

    def expect_rst(self, stream: int, *codes: int, barrier: bool = True) -> RstStreamFrame:
        """A stream error (RFC 9113 5.4.2): RST_STREAM on ``stream`` with one of ``codes``."""
        outcome = self.wait_error(stream, barrier=barrier)
        names = "/".join(error_name(c) for c in codes)
        if outcome.kind != "rst" or outcome.frame.stream_id != stream or outcome.code not in codes:
            raise AssertionError(
                f"expected RST_STREAM {names} on stream {stream}, got {outcome!r}; frames {self._recent()}"
            )
        return outcome.frame

    def expect_closed(self, timeout: float | None = None) -> None:
        """The server closes the connection (RFC 9113 5.4.1: after a GOAWAY for an error it
        MUST); frames before the end are allowed."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while self.read_frame(deadline) is not None:
                pass
        except FrameTimeout:
            raise AssertionError(
                f"the server did not close the connection; frames {self._recent()}"
            ) from None

    def read_until_closed(self, timeout: float | None = None) -> bytes:
        """Every raw byte until the server closes the connection (for answers that need not
        be HTTP/2 frames, such as to an invalid preface)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        try:
            while self._fill(deadline):
                pass
        except FrameTimeout:
            raise AssertionError(
                f"the server did not close the connection; got {bytes(self.buf[:200])!r}"
            ) from None
        return bytes(self.buf)

    def expect_no_error(self) -> None:
        """A PING round trip with no GOAWAY or RST_STREAM before its ACK (plus grace)."""
        outcome = self.wait_error()
        if outcome.kind != "none":
            raise AssertionError(f"expected no error, got {outcome!r}; frames {self._recent()}")

    # ------------------------------------------------------------------ the observer
    def _observe(self, header: bytes, payload: bytes) -> Frame:
        """Parse and check one frame from the server, update the connection state and
        answer what needs an answer."""
        hi, lo, ftype, flags, raw_stream = FRAME_HEADER.unpack(header)
        length, stream = (hi << 8) | lo, raw_stream & MAX_WINDOW
        known = ftype in DEFINED_FLAGS
        where = f"{FrameType(ftype).name if known else hex(ftype)} frame on stream {stream}"
        if length > self.local_max_frame:
            raise H2Violation(f"RFC 9113 4.2: {where} of {length} octets exceeds our SETTINGS_MAX_FRAME_SIZE")
        if raw_stream & 0x80000000:
            raise H2Violation(f"RFC 9113 4.1: {where} has the reserved bit set")
        if known and flags & ~DEFINED_FLAGS[ftype]:
            raise H2Violation(
                f"RFC 9113 4.1: {where} sets unused flags 0x{flags & ~DEFINED_FLAGS[ftype]:02x}"
            )
        if not self.got_server_preface and not (ftype == FrameType.SETTINGS and not flags & Flag.ACK):
            raise H2Violation(f"RFC 9113 3.4: the server's first frame is a {where}, not SETTINGS")
        if self.server_block is not None and (
            ftype != FrameType.CONTINUATION or stream != self.server_block[0]
        ):
            raise H2Violation(
                f"RFC 9113 4.3: {where} inside the server's field block on stream {self.server_block[0]}"
            )
        if (
            known
            and stream
            and ftype in _STREAM_FRAMES | {FrameType.WINDOW_UPDATE}
            and stream not in self.streams
        ):
            raise H2Violation(f"RFC 9113 5.1, 6.4: {where}, a stream we never used (idle)")
        try:
            frame, _ = Frame.parse_frame_header(memoryview(header))
            frame.parse_body(memoryview(payload))
        except (HyperframeError, ValueError, struct.error) as exc:
            raise H2Violation(f"RFC 9113 6: malformed {where}: {exc!r} (payload {payload[:40]!r})") from None
        self.received.append(frame)
        handler = getattr(self, f"_on_{type(frame).__name__}", None)
        if handler is not None:
            handler(frame, flags, payload)
        return frame

    def _on_SettingsFrame(self, frame: SettingsFrame, flags: int, payload: bytes) -> None:
        if flags & Flag.ACK:
            if not self.unacked_settings:
                raise H2Violation("RFC 9113 6.5.3: SETTINGS ACK for nothing we sent")
            self._apply_local(self.unacked_settings.popleft(), acked=True)
            self.settings_acks += 1
            return
        pairs = [struct.unpack_from(">HL", payload, i) for i in range(0, len(payload), 6)]
        for ident, value in pairs:  # RFC 9113 6.5.3: in the order they appear
            if ident == Setting.ENABLE_PUSH and value != 0:
                raise H2Violation(f"RFC 9113 6.5.2: the server sent SETTINGS_ENABLE_PUSH={value}")
            if ident == Setting.INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW:
                    raise H2Violation(f"RFC 9113 6.5.2: SETTINGS_INITIAL_WINDOW_SIZE={value}")
                delta = value - self._server_iws()
                for st in self.streams.values():
                    st.send_window += delta
            if ident == Setting.MAX_FRAME_SIZE and not DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                raise H2Violation(f"RFC 9113 6.5.2: SETTINGS_MAX_FRAME_SIZE={value}")
            self.server_settings[ident] = value
        self.got_server_preface = True
        self.send(frame_bytes(FrameType.SETTINGS, Flag.ACK, 0))

    def _apply_local(self, pairs: Sequence[tuple[int, int]], acked: bool) -> None:
        """Our settings as limits on the server: a larger window or frame size counts from
        the moment we send it, a smaller one from its ACK (the server may have sent under the
        old value until it processed ours, RFC 9113 6.9.3)."""
        for ident, value in pairs:
            if ident == Setting.INITIAL_WINDOW_SIZE and 0 <= value <= MAX_WINDOW:
                if (value > self.local_iws) != acked and value != self.local_iws:
                    delta = value - self.local_iws
                    self.local_iws = value
                    for st in self.streams.values():
                        st.recv_window += delta
            if ident == Setting.MAX_FRAME_SIZE and DEFAULT_MAX_FRAME <= value <= MAX_FRAME_LIMIT:
                if (value > self.local_max_frame) != acked:
                    self.local_max_frame = value

    def _on_PingFrame(self, frame: PingFrame, flags: int, payload: bytes) -> None:
        if flags & Flag.ACK:
            self.ping_acks.add(frame.opaque_data)
        else:  # RFC 9113 6.7
            self.send(frame_bytes(FrameType.PING, Flag.ACK, 0, frame.opaque_data))

    def _on_GoAwayFrame(self, frame: GoAwayFrame, flags: int, payload: bytes) -> None:
        if self.goaways and frame.last_stream_id > self.goaways[-1].last_stream_id:
            raise H2Violation("RFC 9113 6.8: a second GOAWAY increased the last stream identifier")
        self.goaways.append(frame)

    def _on_WindowUpdateFrame(self, frame: WindowUpdateFrame, flags: int, payload: bytes) -> None:
        if frame.stream_id == 0:
            self.send_window += frame.window_increment
        elif frame.stream_id in self.streams:
            self.streams[frame.stream_id].send_window += frame.window_increment

    def _on_PushPromiseFrame(self, frame: PushPromiseFrame, flags: int, payload: bytes) -> None:
        raise H2Violation("RFC 9113 6.5.2, 8.4: PUSH_PROMISE although we set SETTINGS_ENABLE_PUSH=0")

    def _on_RstStreamFrame(self, frame: RstStreamFrame, flags: int, payload: bytes) -> None:
        st = self.stream(frame.stream_id)
        if st.response is None:
            st.response = Response(frame.stream_id)
        st.response.reset = frame.error_code
        st.response.body = bytes(st.body)

    def _on_DataFrame(self, frame: DataFrame, flags: int, payload: bytes) -> None:
        st = self._open_stream(frame.stream_id, "DATA")
        if not st.final_seen:
            raise H2Violation(
                f"RFC 9113 8.1: DATA on stream {frame.stream_id} before the final response HEADERS"
            )
        # RFC 9113 6.9.1: the whole payload counts, padding included
        st.recv_window -= len(payload)
        self.recv_window -= len(payload)
        if st.recv_window < 0 or self.recv_window < 0:
            raise H2Violation(
                f"RFC 9113 6.9.1: DATA of {len(payload)} octets on stream {frame.stream_id} exceeds our window "
                f"(stream {st.recv_window + len(payload)}, connection {self.recv_window + len(payload)})"
            )
        st.body += frame.data
        if flags & Flag.END_STREAM:
            self._end_stream(frame.stream_id, st)
        elif self.auto_window_update and payload:
            self.window_update(0, len(payload))
            self.window_update(frame.stream_id, len(payload))

    def _on_HeadersFrame(self, frame: HeadersFrame, flags: int, payload: bytes) -> None:
        self._open_stream(frame.stream_id, "HEADERS")
        self.server_block = (frame.stream_id, bytearray(frame.data), bool(flags & Flag.END_STREAM))
        if flags & Flag.END_HEADERS:
            self._end_block()

    def _on_ContinuationFrame(self, frame: ContinuationFrame, flags: int, payload: bytes) -> None:
        if self.server_block is None:
            raise H2Violation(
                f"RFC 9113 6.10: CONTINUATION on stream {frame.stream_id} outside a field block"
            )
        self.server_block[1].extend(frame.data)
        if flags & Flag.END_HEADERS:
            self._end_block()

    def _open_stream(self, stream: int, what: str) -> _Stream:
        st = self.streams.get(stream)
        if st is None or not st.opened:
            raise H2Violation(f"RFC 9113 5.1.1: {what} on stream {stream}, which we never opened")
        if st.server_ended:
            raise H2Violation(f"RFC 9113 5.1: {what} on stream {stream} after the server's END_STREAM")
        return st

    def _end_block(self) -> None:
        stream, block, end_stream = self.server_block
        self.server_block = None
        st = self.streams[stream]
        st.raw_blocks.append(bytes(block))
        try:
            fields = self.decoder.decode(bytes(block), raw=True)
        except hpack.HPACKError as exc:
            raise H2Violation(
                f"RFC 7541: the server's field block on stream {stream} does not decode: {exc!r}"
            ) from None
        if st.response is None:
            st.response = Response(stream)
        resp = st.response
        if not st.final_seen:
            status = _check_response_fields(fields, stream)
            if 100 <= status < 200:
                if end_stream:
                    raise H2Violation(
                        f"RFC 9113 8.1: informational {status} with END_STREAM on stream {stream}"
                    )
                resp.informational.append(status)
            else:
                resp.status, resp.headers = status, [(k, v) for k, v in fields if not k.startswith(b":")]
                st.final_seen = True
        else:
            if not end_stream:
                raise H2Violation(f"RFC 9113 8.1: trailers without END_STREAM on stream {stream}")
            _check_trailer_fields(fields, stream)
            resp.trailers = [(bytes(k), bytes(v)) for k, v in fields]
        if end_stream:
            self._end_stream(stream, st)

    def _end_stream(self, stream: int, st: _Stream) -> None:
        st.server_ended = True
        resp = st.response
        resp.body = bytes(st.body)
        resp.complete = True
        no_content = st.method == "HEAD" or resp.status in (204, 304)
        if no_content and resp.body:
            raise H2Violation(
                f"RFC 9110 9.3.2, 15.3.5, 15.4.5: {resp.status} to {st.method} with content on stream {stream}"
            )
        declared = resp.header(b"content-length")
        if (
            declared is not None
            and not no_content
            and st.method is not None
            and declared != str(len(resp.body)).encode()
        ):
            raise H2Violation(
                f"RFC 9113 8.1.1: content-length {declared!r} but {len(resp.body)} octets of DATA on stream {stream}"
            )

    # ------------------------------------------------------------------ helpers
    def _server_iws(self) -> int:
        return self.server_settings.get(Setting.INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)

    def _server_max_frame(self) -> int:
        return self.server_settings.get(Setting.MAX_FRAME_SIZE, DEFAULT_MAX_FRAME)

    def server_setting(self, ident: int, default: int | None = None) -> int | None:
        return self.server_settings.get(ident, default)

    def _recent(self, count: int = 8) -> str:
        frames = [_describe(f) for f in self.received[-count:]]
        return "[" + ", ".join(frames) + ("]" if not self.eof else ", EOF]")


def _describe(frame: Frame) -> str:
    name = type(frame).__name__.removesuffix("Frame")
    if isinstance(frame, (GoAwayFrame, RstStreamFrame)):
        return f"{name}({frame.stream_id}, {error_name(frame.error_code)})"
    if isinstance(frame, ExtensionFrame):
        return f"Extension(type={frame.type})"
    return f"{name}({frame.stream_id}{', ' + ','.join(sorted(frame.flags)) if frame.flags else ''})"


# --------------------------------------------------------------------------- response checks


def _check_field(name: bytes, value: bytes, stream: int) -> None:
    """RFC 9113 8.2, 8.2.1, 8.2.2: what a server's field lines MUST look like."""
    if name.lower() != name:
        raise H2Violation(f"RFC 9113 8.2: uppercase field name {name!r} on stream {stream}")
    if any(c <= 0x20 or c >= 0x7F or c == 0x3A for c in name):
        raise H2Violation(f"RFC 9113 8.2.1: invalid field name {name!r} on stream {stream}")
    if any(c in (0, 0x0A, 0x0D) for c in value) or value[:1] in (b" ", b"\t") or value[-1:] in (b" ", b"\t"):
        raise H2Violation(f"RFC 9113 8.2.1: invalid value {value!r} of {name!r} on stream {stream}")
    if name in CONNECTION_SPECIFIC:
        raise H2Violation(f"RFC 9113 8.2.2: connection-specific field {name!r} on stream {stream}")


def _check_response_fields(fields: Sequence[tuple[bytes, bytes]], stream: int) -> int:
    """RFC 9113 8.3, 8.3.2: exactly one :status, first, three digits; no other pseudo-header
    fields. Returns the status."""
    if not fields or fields[0][0] != b":status":
        raise H2Violation(
            f"RFC 9113 8.3.2: response on stream {stream} does not start with :status: {fields!r}"
        )
    status = fields[0][1]
    if len(status) != 3 or not status.isdigit():
        raise H2Violation(f"RFC 9113 8.3.2: invalid :status {status!r} on stream {stream}")
    for name, value in fields[1:]:
        if name.startswith(b":"):
            raise H2Violation(f"RFC 9113 8.3: pseudo-header {name!r} in the response on stream {stream}")
        _check_field(name, value, stream)
    return int(status)


def _check_trailer_fields(fields: Sequence[tuple[bytes, bytes]], stream: int) -> None:
    for name, value in fields:
        if name.startswith(b":"):
            raise H2Violation(f"RFC 9113 8.1: pseudo-header {name!r} in trailers on stream {stream}")
        _check_field(name, value, stream)
