"""RFC 9113 (HTTP/2) and RFC 7541 (HPACK): every MUST a server owns, against the real server,
over h2c with prior knowledge and over TLS with ALPN "h2", with the raw frame client of
tests/support/h2frames.py. That client also checks every frame the server sends against the
sender's MUSTs (frame sizes, flags, windows, field blocks, response fields), in every test.

The server under test serves tests/apps/h2_app.py. ``H2_CONFORMANCE_SERVER`` picks it:
``fastasgi`` (default: ``--http2``; skipped while the server refuses it as not supported yet),
or a peer to validate the suite with: ``hypercorn``, ``h2corn``, ``granian``.

Where the RFC lets a server choose, the suite accepts every allowed answer unless
``H2_CONFORMANCE_STRICT=1`` (which demands the specific answer; fastasgi, whose nghttp2
chooses connection errors where the RFC allows them, is held to the RFC's own latitude):

- RFC 9113 5.4: "a generic error code (such as PROTOCOL_ERROR or INTERNAL_ERROR) can always
  be used in place of more specific error codes": accepted in place of the specific code.
- RFC 9113 5.4.1: "an endpoint MAY choose to treat a stream error as a connection error":
  a GOAWAY with the stream error's code is accepted, and a new connection must be served.
- RFC 9113 8.1.1: "For malformed requests, a server MAY send an HTTP response prior to
  closing or resetting the stream": a 4xx response is accepted (strict: 400, the status
  8.2.1 recommends), and the app never sees the request.

Where the RFC itself allows two answers, both always pass: DATA on an idle stream (5.1
connection PROTOCOL_ERROR, 6.1 stream STREAM_CLOSED), a GOAWAY omitted after an invalid
preface (3.4), PROTOCOL_ERROR or REFUSED_STREAM over the concurrency limit (5.1.2), a reset
stream or a 5xx where the app asks for a response HTTP/2 cannot carry (8.1.1, 8.2.2).

Sending GOAWAY before closing is a SHOULD (5.4.1); the suite requires it for every
connection error except an invalid preface (3.4: "MAY be omitted").
"""

from __future__ import annotations

import json
import os
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from support.h2frames import (
    DEFAULT_MAX_FRAME,
    DEFAULT_TABLE_SIZE,
    DEFAULT_WINDOW,
    MAX_WINDOW,
    PREFACE,
    ErrorCode,
    Flag,
    FrameTimeout,
    FrameType,
    H2Conn,
    Response,
    Setting,
    frame_bytes,
    hpack_int,
    hpack_literal,
    hpack_literal_value,
    hpack_string,
    padded,
    priority_fields,
    settings_payload,
)
from support.server import START_TIMEOUT, ServerProcess, fastasgi_command, free_port, server_env

SERVER = os.environ.get("H2_CONFORMANCE_SERVER", "fastasgi")
STRICT = os.environ.get("H2_CONFORMANCE_STRICT", "0") == "1"
APP = "h2_app:app"
GENERIC = (ErrorCode.PROTOCOL_ERROR, ErrorCode.INTERNAL_ERROR)

# short names for the tables
E, T, F, S = ErrorCode, FrameType, Flag, Setting
CONN, STREAM, EITHER = "connection", "stream", "either"
FRAME_SIZE, PROTOCOL, CLOSED = (E.FRAME_SIZE_ERROR,), (E.PROTOCOL_ERROR,), (E.STREAM_CLOSED,)
FLOW, COMPRESSION = (E.FLOW_CONTROL_ERROR,), (E.COMPRESSION_ERROR,)

trustme = pytest.importorskip("trustme")
if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")


# =========================================================================== the server


def _command(kind: str, port: int, tls: dict[str, str] | None) -> list[str]:
    """How each server is started on 127.0.0.1:port, with TLS when ``tls`` is given."""
    if kind == "fastasgi":
        tls_args = ["--ssl-certfile", tls["cert"], "--ssl-keyfile", tls["key"]] if tls else []
        return fastasgi_command(APP, "--host", "127.0.0.1", "--port", str(port), "--http2", *tls_args)
    if kind == "hypercorn":
        tls_args = ["--certfile", tls["cert"], "--keyfile", tls["key"]] if tls else []
        return [sys.executable, "-m", "hypercorn", APP, "--bind", f"127.0.0.1:{port}", *tls_args]
    if kind == "h2corn":
        tls_args = ["--certfile", tls["cert"], "--keyfile", tls["key"]] if tls else []
        return ["h2corn", APP, "--bind", f"127.0.0.1:{port}", "--no-access-log", *tls_args]
    if kind == "granian":
        tls_args = ["--ssl-certificate", tls["cert"], "--ssl-keyfile", tls["key"]] if tls else []
        return [
            "granian",
            "--interface",
            "asgi",
            "--http",
            "2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *tls_args,
            APP,
        ]
    raise ValueError(f"H2_CONFORMANCE_SERVER={kind!r}: not one of fastasgi, hypercorn, h2corn, granian")


@dataclass
class Server:
    """The server under test on one transport; ``connect()`` opens a client connection,
    closed after the test."""

    kind: str
    transport: str
    pki: dict[str, str]
    logdir: str
    proc: ServerProcess | None = None
    port: int = 0
    conns: list[H2Conn] = field(default_factory=list)

    @property
    def tls(self) -> bool:
        return self.transport == "tls"

    def start(self) -> None:
        self.port = free_port()
        command = _command(self.kind, self.port, self.pki if self.tls else None)
        self.proc = ServerProcess(command, env=server_env(), logdir=self.logdir)
        self.proc.wait_listening(self.port)
        # listening is not serving yet (worker processes): one request must succeed
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with self.connect(register=False) as h2:
                    h2.fetch("GET", "/")
                return
            except (AssertionError, OSError) as exc:
                if time.monotonic() > deadline or not self.proc.alive():
                    raise AssertionError(
                        f"{self.kind} does not serve HTTP/2 on {self.transport}:\n{self.proc.stderr}"
                    ) from exc
                time.sleep(0.1)

    def context(self) -> ssl.SSLContext | None:
        if not self.tls:
            return None
        ctx = ssl.create_default_context(cafile=self.pki["ca"])
        ctx.set_alpn_protocols(["h2"])
        return ctx

    def connect(self, handshake: bool = True, settings=(), register: bool = True) -> H2Conn:
        h2 = H2Conn(self.port, ssl_context=self.context())
        if register:
            self.conns.append(h2)
        if handshake:
            h2.handshake(settings)
        return h2

    def close_conns(self) -> None:
        for h2 in self.conns:
            h2.close()
        self.conns.clear()


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict[str, str]:
    from cryptography.hazmat.primitives import serialization

    base = tmp_path_factory.mktemp("h2pki")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    files = {name: str(base / f"{name}.pem") for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(files["ca"])
    for index, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(files["cert"], append=index > 0)
    # PKCS#8: the one key format every server here reads (granian reads no other)
    key = serialization.load_pem_private_key(cert.private_key_pem.bytes(), password=None)
    with open(files["key"], "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    return files


@pytest.fixture(scope="module", params=["h2c", "tls"])
def server(request, pki, tmp_path_factory):
    """The server under test on one transport, shared by the module; restarted when a test
    killed it (that test fails: see ``_server_survives``)."""
    srv = Server(SERVER, request.param, pki, str(tmp_path_factory.mktemp(f"h2-{request.param}")))
    try:
        srv.start()
    except AssertionError:
        srv.proc.close()
        if SERVER == "fastasgi" and "not supported yet" in srv.proc.stderr:
            pytest.skip(
                "fastasgi refuses --http2 (not supported yet): set H2_CONFORMANCE_SERVER to try a peer"
            )
        raise
    yield srv
    srv.close_conns()
    srv.proc.close()


@pytest.fixture(autouse=True)
def _server_survives(server):
    if not server.proc.alive():
        server.proc.close()
        server.start()
    yield
    server.close_conns()
    assert server.proc.alive(), f"the server died:\n{server.proc.stderr[-3000:]}"


@pytest.fixture
def h2(server) -> H2Conn:
    """A connection after the handshake (RFC 9113 3.4)."""
    return server.connect()


# =========================================================================== the verdicts


def codes(*wanted: int) -> tuple[int, ...]:
    """The error codes accepted for ``wanted``: RFC 9113 5.4 lets a generic code stand in for
    a specific one (not in strict mode)."""
    return wanted if STRICT else tuple(dict.fromkeys((*wanted, *GENERIC)))


def usable(h2: H2Conn, sync: str = "") -> None:
    """The connection still serves a request, and its HPACK state is in step: ``x-sync`` was
    sent (and indexed) in the violating field block too (RFC 9113 4.3: the server MUST
    decode every field block)."""
    resp = h2.fetch("GET", "/scope", headers=[("x-sync", sync or "none")])
    assert resp.status == 200, resp
    assert ["x-sync", sync or "none"] in json.loads(resp.body)["headers"]


def registry(server: Server, token: str) -> list[str]:
    """Which requests with ``x-mark: <token>`` reached the app (asked on a new connection)."""
    with server.connect(register=False) as h2:
        return json.loads(h2.fetch("GET", f"/registry/{token}").body)


def connection_error(h2: H2Conn, *wanted: int, barrier: bool = True) -> None:
    """RFC 9113 5.4.1: GOAWAY with the error code, then the connection closed."""
    h2.expect_goaway(*codes(*wanted), barrier=barrier)


def stream_error(
    server: Server, h2: H2Conn, sid: int, *wanted: int, sync: str = "", malformed: bool = False
) -> None:
    """RFC 9113 5.4.2: RST_STREAM with the error code on ``sid``, the connection still usable.
    Not strict: a connection error with that code instead (5.4.1 MAY), a new connection
    usable. ``malformed`` (8.1.1 MAY): a 4xx response (strict: 400) counts as well."""
    outcome = h2.wait_error(sid)
    resp = outcome.response
    if malformed and resp is not None and resp.status is not None:
        allowed = resp.status == 400 if STRICT else 400 <= resp.status < 500
        assert allowed, f"malformed request answered with {resp!r}"
        if outcome.kind == "response" or outcome.kind == "rst":
            usable(h2, sync)
            return
    if outcome.kind == "rst":
        assert outcome.code in codes(*wanted), (
            f"RST_STREAM {outcome!r}, expected {[E(c).name for c in wanted]}"
        )
        usable(h2, sync)
        return
    if outcome.kind == "goaway" and not STRICT:
        assert outcome.code in codes(*wanted), f"GOAWAY {outcome!r}, expected {[E(c).name for c in wanted]}"
        h2.expect_closed()
        usable(server.connect())
        return
    raise AssertionError(
        f"expected RST_STREAM {[E(c).name for c in wanted]} on stream {sid}, got {outcome!r}; frames {h2._recent()}"
    )


# =========================================================================== builders

HOLD = "/hold?ms=5000"


def held(h2: H2Conn) -> int:
    """A stream the server holds in "half-closed (remote)": request complete, no response yet."""
    return h2.request("GET", HOLD)


def upload(h2: H2Conn) -> int:
    """An "open" stream: request headers sent, body still to come."""
    return h2.request("POST", "/echo", end_stream=False)


def done(h2: H2Conn) -> int:
    """A "closed" stream: a whole exchange."""
    sid = h2.request("GET", "/")
    assert h2.response(sid).complete
    return sid


def static_block(h2: H2Conn, path: bytes = b"/") -> bytes:
    """A GET request's field block by hand, from the static table and literals only (RFC 7541
    Appendix A: 2 = :method GET, 6/7 = :scheme http/https, 4 = :path /, 1 = :authority), so
    that it leaves the dynamic tables alone."""
    scheme = b"\x87" if h2.tls else b"\x86"
    path_field = b"\x84" if path == b"/" else hpack_literal_value(4, path)
    return b"\x82" + scheme + path_field + hpack_literal_value(1, h2.authority.encode())


def block(h2: H2Conn, method: str = "GET", path: str = "/", extra=()) -> bytes:
    return h2.encoder.encode(h2.request_fields(method, path, extra))


def big_literal(h2: H2Conn) -> bytes:
    """A GET's field block one octet longer than the server's SETTINGS_MAX_FRAME_SIZE."""
    return static_block(h2) + hpack_literal(b"x-big", b"a" * max_frame(h2))


def max_frame(h2: H2Conn) -> int:
    return h2.server_setting(Setting.MAX_FRAME_SIZE, DEFAULT_MAX_FRAME)


def raw(ftype: int, flags: int = 0, stream: int = 0, payload: bytes = b"") -> Callable[[H2Conn], None]:
    def send(h2: H2Conn) -> None:
        h2.send_raw(ftype, flags, stream, payload)

    return send


def on_held(ftype: int, flags: int, payload: bytes) -> Callable[[H2Conn], int]:
    def send(h2: H2Conn) -> int:
        sid = held(h2)
        h2.send_raw(ftype, flags, sid, payload)
        return sid

    return send


def on_upload(ftype: int, flags: int, payload: bytes) -> Callable[[H2Conn], int]:
    def send(h2: H2Conn) -> int:
        sid = upload(h2)
        h2.send_raw(ftype, flags, sid, payload)
        return sid

    return send


def on_done(ftype: int, flags: int, payload: bytes) -> Callable[[H2Conn], int]:
    def send(h2: H2Conn) -> int:
        sid = done(h2)
        h2.send_raw(ftype, flags, sid, payload)
        return sid

    return send


def in_field_block(ftype: int, flags: int, payload: bytes, offset: int = 0) -> Callable[[H2Conn], None]:
    """HEADERS without END_HEADERS, then a frame that is not its CONTINUATION (RFC 9113 4.3,
    6.2), on the block's stream plus ``offset``."""

    def send(h2: H2Conn) -> None:
        sid = h2.new_stream()
        h2.send_headers(sid, static_block(h2), end_stream=False, end_headers=False)
        h2.send_raw(ftype, flags, sid + offset, payload)

    return send


def new_stream(ftype: int, flags: int, payload: bytes) -> Callable[[H2Conn], None]:
    def send(h2: H2Conn) -> None:
        h2.send_raw(ftype, flags, h2.new_stream(), payload)

    return send


def hpack_request(build: Callable[[H2Conn], bytes]) -> Callable[[H2Conn], None]:
    """HEADERS on a new stream carrying a hand-made field block."""

    def send(h2: H2Conn) -> None:
        h2.send_headers(h2.new_stream(), build(h2))

    return send


def after_get(representations: bytes) -> Callable[[H2Conn], None]:
    """HEADERS on a new stream: a GET's fields (``static_block``), then ``representations``."""
    return hpack_request(lambda h2: static_block(h2) + representations)


def u32(value: int) -> bytes:
    return struct.pack(">L", value)


PING8 = b"pingpong"


# =========================================================================== 3.4 preface


def test_server_preface_and_settings_ack(server):
    """RFC 9113 3.4: the server's first frame is SETTINGS (H2Conn checks it), its values are
    valid (6.5.2: ENABLE_PUSH absent or 0, windows and frame size in range), and it
    acknowledges the client's SETTINGS (6.5.3)."""
    h2 = server.connect(handshake=False)
    h2.handshake(wait_ack=True)
    assert h2.got_server_preface and h2.settings_acks == 1


def _assert_refused_preface(h2: H2Conn) -> None:
    """RFC 9113 3.4: an invalid preface is a connection error of type PROTOCOL_ERROR; the
    GOAWAY MAY be omitted. Accepted: the connection closed, with nothing before, or the
    server's SETTINGS and a GOAWAY PROTOCOL_ERROR; over h2c also an HTTP/1.1 4xx/5xx (a server
    that serves HTTP/1.1 on the port cannot tell a broken preface from an HTTP/1.1 request)."""
    data = h2.read_until_closed()
    if data.startswith(b"HTTP/1."):
        assert not h2.tls, data[:100]
        assert data[9:10] in (b"4", b"5"), data[:100]
        return
    offset, frames = 0, []
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        frames.append((data[offset + 3], data[offset + 9 : offset + 9 + length]))
        offset += 9 + length
    for ftype, payload in frames:
        assert ftype not in (T.HEADERS, T.DATA, T.PUSH_PROMISE, T.CONTINUATION), (
            f"a response to an invalid preface: {data!r}"
        )
        if ftype == FrameType.GOAWAY:
            assert int.from_bytes(payload[4:8], "big") in codes(E.PROTOCOL_ERROR), payload


BAD_PREFACES = [
    ("garbled_magic", b"PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n" + frame_bytes(FrameType.SETTINGS, 0, 0), False),
    ("ping_instead_of_settings", PREFACE + frame_bytes(FrameType.PING, 0, 0, PING8), False),
    ("headers_instead_of_settings", PREFACE + frame_bytes(FrameType.HEADERS, 5, 1, b"\x82\x86\x84"), False),
    ("http11_request_after_alpn_h2", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", True),
]


@pytest.mark.parametrize("name,data,tls_only", BAD_PREFACES, ids=[c[0] for c in BAD_PREFACES])
def test_invalid_client_preface(server, name, data, tls_only):
    """RFC 9113 3.4: the client preface is the magic and then a SETTINGS frame."""
    if tls_only and not server.tls:
        pytest.skip("over h2c this is a valid HTTP/1.1 request")
    h2 = server.connect(handshake=False)
    h2.send(data)
    _assert_refused_preface(h2)


def test_tls_version_and_alpn(server):
    """RFC 9113 9.2: TLS 1.2 or higher; 9.2.1: no TLS compression; 3.2: ALPN "h2" (H2Conn
    checks it on every TLS connection)."""
    if not server.tls:
        pytest.skip("TLS only")
    h2 = server.connect()
    assert h2.sock.version() in ("TLSv1.2", "TLSv1.3")
    assert h2.sock.compression() is None


# =========================================================================== errors (table)


@dataclass(frozen=True)
class Err:
    """Send something the RFC forbids; the server MUST answer with an error. ``scope``:
    "connection" (GOAWAY), "stream" (RST_STREAM on the stream ``send`` returns), or
    "either" where the RFC text allows both."""

    name: str
    rfc: str
    send: Callable[[H2Conn], int | None]
    scope: str
    wanted: tuple[int, ...]


def _data_over_max(h2: H2Conn) -> int:
    sid = upload(h2)
    size = max_frame(h2) + 1
    if min(h2.stream(sid).send_window, h2.send_window) < size:
        pytest.skip("the server's flow-control window is smaller than its SETTINGS_MAX_FRAME_SIZE")
    h2.send_raw(FrameType.DATA, Flag.END_STREAM, sid, b"x" * size)
    return sid


def _continuation_over_max(h2: H2Conn) -> None:
    sid = h2.new_stream()
    h2.send_headers(sid, static_block(h2), end_headers=False)
    h2.send_raw(
        FrameType.CONTINUATION, Flag.END_HEADERS, sid, hpack_literal(b"x-big", b"a" * (max_frame(h2) + 1))
    )


def _headers_padding_too_long(h2: H2Conn) -> None:
    body = static_block(h2)
    h2.send_raw(
        FrameType.HEADERS,
        Flag.END_STREAM | Flag.END_HEADERS | Flag.PADDED,
        h2.new_stream(),
        bytes([len(body) + 1]) + body,
    )


def _decreasing_stream_id(h2: H2Conn) -> None:
    h2.next_stream_id = 5
    done(h2)
    h2.send_headers(3, block(h2))


def _reused_stream_id(h2: H2Conn) -> None:
    sid = done(h2)
    h2.send_headers(sid, block(h2))


def _trailers_on_held(h2: H2Conn) -> int:
    sid = held(h2)
    h2.send_headers(sid, h2.encoder.encode([("x-trailer", "1")]))
    return sid


def _headers_on_stream_0(h2: H2Conn) -> None:
    h2.send_raw(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, 0, static_block(h2))


def _data_on_idle(h2: H2Conn) -> int:
    h2.send_raw(FrameType.DATA, Flag.END_STREAM, 1, b"data")
    return 1


def _data_after_client_reset(h2: H2Conn) -> int:
    sid = upload(h2)
    h2.rst(sid, E.CANCEL)
    h2.send_raw(FrameType.DATA, Flag.END_STREAM, sid, b"late")
    return sid


def _window_overflow_by_settings(h2: H2Conn) -> None:
    sid = held(h2)
    h2.window_update(sid, MAX_WINDOW - h2.stream(sid).recv_window)
    h2.send_settings([(Setting.INITIAL_WINDOW_SIZE, h2.local_iws + 1)], wait_ack=False)


def _push_promise(h2: H2Conn) -> None:
    sid = upload(h2)
    h2.send_raw(FrameType.PUSH_PROMISE, Flag.END_HEADERS, sid, u32(sid + 1) + static_block(h2))


def _size_update_over_limit(h2: H2Conn) -> bytes:
    limit = h2.server_setting(Setting.HEADER_TABLE_SIZE, DEFAULT_TABLE_SIZE)
    return hpack_int(limit + 1, 5, 0x20) + static_block(h2)


# RFC 7541 5.2 / Appendix B: 'a' is 00011 (5 bits), EOS is thirty 1 bits
HUFFMAN_A_PADDED_8_MORE = bytes([0b00011111, 0xFF])  # 3 + 8 bits of padding
HUFFMAN_A_ZERO_PADDING = bytes([0b00011000])  # padding not from the EOS code
HUFFMAN_A_EOS_A = bytes([0b00011111, 0xFF, 0xFF, 0xFF, 0b11100011])  # 'a', EOS, 'a'
OVERLONG_INT = b"\xff" * 10 + b"\x01"  # continuation octets worth more than 2^64
USER_AGENT = hpack_int(58, 4)  # literal without indexing, name from static entry 58
INDEXED_X_A = hpack_literal(b"x-a", b"b", indexing=True)  # a literal added to the dynamic table
SIZE_UPDATE_4096 = hpack_int(DEFAULT_TABLE_SIZE, 5, 0x20)  # RFC 7541 6.3
ONE_SETTING = settings_payload([(S.MAX_CONCURRENT_STREAMS, 100)])
HEADERS_END = F.END_STREAM | F.END_HEADERS


def setting(ident: int, value: int) -> Callable[[H2Conn], None]:
    """A SETTINGS frame with one (possibly invalid) value, sent raw."""
    return raw(T.SETTINGS, 0, 0, settings_payload([(ident, value)]))


def huffman_value(code: bytes) -> Callable[[H2Conn], None]:
    """A GET whose user-agent value is ``code``, sent as Huffman-coded octets."""
    return after_get(USER_AGENT + hpack_string(code, huffman=True))


ERRORS: list[Err] = [
    # ---- 4.2 frame size, and the fixed lengths of 6.3-6.9
    Err("data_over_max_frame_size", "RFC 9113 4.2", _data_over_max, STREAM, FRAME_SIZE),
    Err("headers_over_max_frame_size", "RFC 9113 4.2", hpack_request(big_literal), CONN, FRAME_SIZE),
    Err("continuation_over_max_frame_size", "RFC 9113 4.2", _continuation_over_max, CONN, FRAME_SIZE),
    Err("headers_priority_short", "RFC 9113 4.2", new_stream(T.HEADERS, HEADERS_END | F.PRIORITY, b"\0\0\0"), CONN, FRAME_SIZE),
    Err("headers_padded_empty", "RFC 9113 4.2, 6.2", new_stream(T.HEADERS, HEADERS_END | F.PADDED, b""), CONN, FRAME_SIZE),
    Err("data_padded_empty", "RFC 9113 4.2, 6.1", on_upload(T.DATA, F.PADDED | F.END_STREAM, b""), EITHER, FRAME_SIZE),
    Err("priority_length_4", "RFC 9113 6.3", on_held(T.PRIORITY, 0, b"\0\0\0\0"), STREAM, FRAME_SIZE),
    Err("priority_length_6", "RFC 9113 6.3", on_held(T.PRIORITY, 0, b"\0\0\0\0\x0f\0"), STREAM, FRAME_SIZE),
    Err("rst_stream_length_3", "RFC 9113 6.4", on_held(T.RST_STREAM, 0, b"\0\0\x08"), CONN, FRAME_SIZE),
    Err("rst_stream_length_5", "RFC 9113 6.4", on_held(T.RST_STREAM, 0, b"\0\0\0\x08\0"), CONN, FRAME_SIZE),
    Err("settings_length_not_multiple_of_6", "RFC 9113 6.5", raw(T.SETTINGS, 0, 0, ONE_SETTING + b"\0"), CONN, FRAME_SIZE),
    Err("settings_ack_with_payload", "RFC 9113 6.5", raw(T.SETTINGS, F.ACK, 0, ONE_SETTING), CONN, FRAME_SIZE),
    Err("ping_length_7", "RFC 9113 6.7", raw(T.PING, 0, 0, PING8[:7]), CONN, FRAME_SIZE),
    Err("ping_length_9", "RFC 9113 6.7", raw(T.PING, 0, 0, PING8 + b"!"), CONN, FRAME_SIZE),
    Err("goaway_length_7", "RFC 9113 4.2, 6.8", raw(T.GOAWAY, 0, 0, b"\0" * 7), CONN, FRAME_SIZE),
    Err("window_update_length_3", "RFC 9113 6.9", raw(T.WINDOW_UPDATE, 0, 0, b"\0\0\x01"), CONN, FRAME_SIZE),
    Err("window_update_length_5", "RFC 9113 6.9", raw(T.WINDOW_UPDATE, 0, 0, b"\0\0\0\x01\0"), CONN, FRAME_SIZE),
    Err("window_update_stream_length_5", "RFC 9113 6.9", on_held(T.WINDOW_UPDATE, 0, b"\0\0\0\x01\0"), CONN, FRAME_SIZE),
    # ---- 6.1, 6.2 padding
    Err("data_padding_too_long", "RFC 9113 6.1", on_upload(T.DATA, F.PADDED, padded(b"abcd", 5, 0)), CONN, PROTOCOL),
    Err("headers_padding_too_long", "RFC 9113 6.2", _headers_padding_too_long, CONN, PROTOCOL),
    # ---- frames that MUST name a stream, or MUST NOT
    Err("data_on_stream_0", "RFC 9113 6.1", raw(T.DATA, F.END_STREAM, 0, b"data"), CONN, PROTOCOL),
    Err("headers_on_stream_0", "RFC 9113 6.2", _headers_on_stream_0, CONN, PROTOCOL),
    Err("priority_on_stream_0", "RFC 9113 6.3", raw(T.PRIORITY, 0, 0, priority_fields(1)), CONN, PROTOCOL),
    Err("rst_stream_on_stream_0", "RFC 9113 6.4", raw(T.RST_STREAM, 0, 0, u32(E.CANCEL)), CONN, PROTOCOL),
    Err("continuation_on_stream_0", "RFC 9113 6.10", raw(T.CONTINUATION, F.END_HEADERS, 0, b"\x82"), CONN, PROTOCOL),
    Err("settings_on_stream_1", "RFC 9113 6.5", raw(T.SETTINGS, 0, 1, b""), CONN, PROTOCOL),
    Err("ping_on_stream_1", "RFC 9113 6.7", raw(T.PING, 0, 1, PING8), CONN, PROTOCOL),
    Err("goaway_on_stream_1", "RFC 9113 6.8", raw(T.GOAWAY, 0, 1, u32(0) + u32(E.NO_ERROR)), CONN, PROTOCOL),
    # ---- 5.1 idle streams take HEADERS and PRIORITY only
    Err("data_on_idle_stream", "RFC 9113 5.1, 6.1", _data_on_idle, EITHER, (E.PROTOCOL_ERROR, E.STREAM_CLOSED)),
    Err("rst_stream_on_idle_stream", "RFC 9113 5.1, 6.4", raw(T.RST_STREAM, 0, 1, u32(E.CANCEL)), CONN, PROTOCOL),
    Err("window_update_on_idle_stream", "RFC 9113 5.1", raw(T.WINDOW_UPDATE, 0, 1, u32(100)), CONN, PROTOCOL),
    Err("continuation_on_idle_stream", "RFC 9113 5.1, 6.10", raw(T.CONTINUATION, F.END_HEADERS, 1, b"\x82"), CONN, PROTOCOL),
    # ---- 5.1.1 stream identifiers
    Err("even_stream_id", "RFC 9113 5.1.1", lambda h2: h2.send_headers(2, block(h2)), CONN, PROTOCOL),
    Err("decreasing_stream_id", "RFC 9113 5.1.1", _decreasing_stream_id, CONN, (E.PROTOCOL_ERROR, E.STREAM_CLOSED)),
    Err("reused_stream_id", "RFC 9113 5.1.1, 5.1", _reused_stream_id, CONN, (E.PROTOCOL_ERROR, E.STREAM_CLOSED)),
    # ---- 5.1 half-closed (remote) takes WINDOW_UPDATE, PRIORITY and RST_STREAM only
    Err("data_on_half_closed_remote", "RFC 9113 5.1", on_held(T.DATA, F.END_STREAM, b"more"), STREAM, CLOSED),
    Err("headers_on_half_closed_remote", "RFC 9113 5.1", _trailers_on_held, STREAM, CLOSED),
    Err("continuation_on_half_closed_remote", "RFC 9113 5.1, 6.10", on_held(T.CONTINUATION, F.END_HEADERS, b"\x82"), EITHER,
        (E.STREAM_CLOSED, E.PROTOCOL_ERROR)),
    # ---- 6.1 DATA on a closed stream; 6.10 CONTINUATION after END_HEADERS
    Err("data_on_closed_stream", "RFC 9113 6.1, 5.1", on_done(T.DATA, F.END_STREAM, b"late"), EITHER, CLOSED),
    Err("data_after_client_rst_stream", "RFC 9113 6.1, 5.1", _data_after_client_reset, EITHER, CLOSED),
    Err("continuation_after_end_headers", "RFC 9113 6.10", on_upload(T.CONTINUATION, F.END_HEADERS, b"\x82"), CONN, PROTOCOL),
    # ---- 4.3, 6.2, 6.10, 5.5 a field block is one contiguous run of frames
    Err("data_inside_field_block", "RFC 9113 4.3, 6.2", in_field_block(T.DATA, 0, b"data"), CONN, PROTOCOL),
    Err("ping_inside_field_block", "RFC 9113 4.3, 6.2", in_field_block(T.PING, 0, PING8), CONN, PROTOCOL),
    Err("priority_inside_field_block", "RFC 9113 6.3", in_field_block(T.PRIORITY, 0, priority_fields(0)), CONN, PROTOCOL),
    Err("settings_inside_field_block", "RFC 9113 4.3", in_field_block(T.SETTINGS, 0, b""), CONN, PROTOCOL),
    Err("unknown_frame_inside_field_block", "RFC 9113 5.5", in_field_block(0xFA, 0, b"ext"), CONN, PROTOCOL),
    Err("other_stream_headers_in_block", "RFC 9113 4.3, 6.2", in_field_block(T.HEADERS, HEADERS_END, b"\x82", 2), CONN, PROTOCOL),
    Err("other_stream_continuation", "RFC 9113 6.2, 6.10", in_field_block(T.CONTINUATION, F.END_HEADERS, b"", 2), CONN, PROTOCOL),
    # ---- 6.5.2 setting values
    Err("enable_push_2", "RFC 9113 6.5.2", setting(S.ENABLE_PUSH, 2), CONN, PROTOCOL),
    Err("initial_window_size_2_31", "RFC 9113 6.5.2", setting(S.INITIAL_WINDOW_SIZE, 2**31), CONN, FLOW),
    Err("max_frame_size_16383", "RFC 9113 6.5.2", setting(S.MAX_FRAME_SIZE, 2**14 - 1), CONN, PROTOCOL),
    Err("max_frame_size_2_24", "RFC 9113 6.5.2", setting(S.MAX_FRAME_SIZE, 2**24), CONN, PROTOCOL),
    # ---- 6.9 flow control
    Err("window_update_0_on_stream", "RFC 9113 6.9", on_held(T.WINDOW_UPDATE, 0, u32(0)), STREAM, PROTOCOL),
    Err("window_update_0_on_connection", "RFC 9113 6.9", raw(T.WINDOW_UPDATE, 0, 0, u32(0)), CONN, PROTOCOL),
    Err("window_overflow_on_connection", "RFC 9113 6.9.1", raw(T.WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW)), CONN, FLOW),
    Err("window_overflow_on_stream", "RFC 9113 6.9.1", on_held(T.WINDOW_UPDATE, 0, u32(MAX_WINDOW)), STREAM, FLOW),
    Err("window_overflow_by_initial_window_size", "RFC 9113 6.9.2", _window_overflow_by_settings, CONN, FLOW),
    # ---- 8.4 a client cannot push
    Err("push_promise_from_client", "RFC 9113 8.4, 6.6", _push_promise, CONN, PROTOCOL),
    # ---- RFC 7541 decoding errors, which RFC 9113 4.3 makes connection errors COMPRESSION_ERROR
    Err("hpack_index_0", "RFC 7541 6.1", after_get(b"\x80"), CONN, COMPRESSION),
    Err("hpack_index_past_static_table", "RFC 7541 2.3.3", after_get(b"\xbe"), CONN, COMPRESSION),
    Err("hpack_index_past_dynamic_table", "RFC 7541 2.3.3", after_get(INDEXED_X_A + b"\xbf"), CONN, COMPRESSION),
    Err("hpack_name_index_out_of_range", "RFC 7541 2.3.3", after_get(hpack_int(70, 6, 0x40) + b"\x01v"), CONN, COMPRESSION),
    Err("hpack_size_update_over_settings", "RFC 7541 6.3", hpack_request(_size_update_over_limit), CONN, COMPRESSION),
    Err("hpack_size_update_after_field", "RFC 7541 4.2", after_get(INDEXED_X_A + SIZE_UPDATE_4096), CONN, COMPRESSION),
    Err("hpack_huffman_padding_over_7_bits", "RFC 7541 5.2", huffman_value(HUFFMAN_A_PADDED_8_MORE), CONN, COMPRESSION),
    Err("hpack_huffman_padding_not_eos", "RFC 7541 5.2", huffman_value(HUFFMAN_A_ZERO_PADDING), CONN, COMPRESSION),
    Err("hpack_huffman_eos_in_string", "RFC 7541 5.2", huffman_value(HUFFMAN_A_EOS_A), CONN, COMPRESSION),
    Err("hpack_integer_overflow_index", "RFC 7541 5.1", after_get(b"\xff" + OVERLONG_INT), CONN, COMPRESSION),
    Err("hpack_integer_overflow_length", "RFC 7541 5.1", after_get(b"\x00\x7f" + OVERLONG_INT), CONN, COMPRESSION),
    Err("hpack_string_past_block_end", "RFC 7541 5.2", after_get(b"\x00\x0aabc"), CONN, COMPRESSION),
    Err("hpack_integer_past_block_end", "RFC 7541 5.1", after_get(b"\xff"), CONN, COMPRESSION),
]  # fmt: skip


@pytest.mark.parametrize("case", ERRORS, ids=[c.name for c in ERRORS])
def test_error_is_reported(server, h2, case):
    """Each case cites its section: the connection error (GOAWAY with the code, then the
    connection closed: RFC 9113 5.4.1) or the stream error (RST_STREAM with the code, the
    connection still usable: 5.4.2) that the RFC requires."""
    sid = case.send(h2)
    if case.scope == CONN:
        connection_error(h2, *case.wanted)
        return
    outcome = h2.wait_error(sid)
    if outcome.kind == "goaway" and (case.scope == EITHER or not STRICT):
        assert outcome.code in codes(*case.wanted), f"{case.rfc}: {outcome!r}"
        h2.expect_closed()
        usable(server.connect())
        return
    assert outcome.kind == "rst" and outcome.frame.stream_id == sid, (
        f"{case.rfc}: expected RST_STREAM on {sid}, got {outcome!r}; frames {h2._recent()}"
    )
    assert outcome.code in codes(*case.wanted), f"{case.rfc}: {outcome!r}"
    usable(h2)


# ============================================= after the response: the stream stays checked (table)
#
# RFC 9113 8.1: a server may answer before the request body is complete. The stream is then
# half-closed (local) on the server, and every rule about the client's frames on it still
# holds: the app's early answer must not switch the checks off. Each case is sent AFTER the
# whole response has been read, in a write of its own, so its answer cannot depend on which
# read of the server it arrives in.


def answered(h2: H2Conn, headers: tuple = ()) -> int:
    """A stream whose response is complete and whose request body is not: POST / is answered
    without the app reading the body (h2_app r_root)."""
    sid = h2.request("POST", "/", headers=headers, end_stream=False)
    resp = h2.response(sid)
    assert resp.complete and resp.body == b"ok", resp
    return sid


def after_answer(ftype: int, flags: int, payload: bytes, headers: tuple = ()) -> Callable[[H2Conn], int]:
    def send(h2: H2Conn) -> int:
        sid = answered(h2, headers)
        h2.send_raw(ftype, flags, sid, payload)
        return sid

    return send


def _late_window_overflow(h2: H2Conn) -> int:
    sid = answered(h2)
    h2.window_update(sid, MAX_WINDOW - h2.stream(sid).recv_window + 1)
    return sid


CL10 = (("content-length", "10"),)
LATE: list[Err] = [
    Err("late_data_over_content_length", "RFC 9113 8.1.1", after_answer(T.DATA, F.END_STREAM, b"x" * 20, CL10), STREAM, PROTOCOL),
    Err("late_data_short_of_content_length", "RFC 9113 8.1.1", after_answer(T.DATA, F.END_STREAM, b"x" * 5, CL10), STREAM, PROTOCOL),
    Err("late_data_padding_too_long", "RFC 9113 6.1", after_answer(T.DATA, F.PADDED, padded(b"abcd", 5, 0)), CONN, PROTOCOL),
    Err("late_window_update_0", "RFC 9113 6.9", after_answer(T.WINDOW_UPDATE, 0, u32(0)), STREAM, PROTOCOL),
    Err("late_window_update_overflow", "RFC 9113 6.9.1", _late_window_overflow, STREAM, FLOW),
    Err("late_headers_without_end_stream", "RFC 9113 8.1", after_answer(T.HEADERS, F.END_HEADERS, b"\x00\x01x\x011"), EITHER, PROTOCOL),
]  # fmt: skip


@pytest.mark.parametrize("case", LATE, ids=[c.name for c in LATE])
def test_error_after_response(server, h2, case):
    """The same errors as before the response (test_error_is_reported's rules)."""
    test_error_is_reported(server, h2, case)


def test_body_after_response_is_dropped(server, h2):
    """RFC 9113 8.1: the rest of a body nobody reads is accepted and dropped, and its window
    given back: more than the whole connection window goes through, in bodies each under the
    bound, and each END_STREAM closes its stream without an error."""
    total = h2.send_window + DEFAULT_WINDOW
    per_stream = h2.server_setting(Setting.INITIAL_WINDOW_SIZE, DEFAULT_WINDOW) * 3 // 4
    sent = 0
    while sent <= total:
        sid = answered(h2)
        h2.send_data(sid, b"y" * per_stream, end_stream=True)  # waits for WINDOW_UPDATE
        sent += per_stream
        assert h2.stream(sid).response.reset is None
    h2.expect_no_error()
    usable(h2)


def test_unread_upload_is_bounded(server, h2):
    """RFC 9113 8.1: past one stream window of dropped bytes, RST_STREAM(NO_ERROR) asks the
    client to stop; the connection keeps serving."""
    sid = answered(h2)
    resp = h2.stream(sid).response
    limit = h2.server_setting(Setting.INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)
    for _ in range(2 * limit // 16384 + 2):  # past the one window the server drops
        h2.send_data(sid, b"z" * 16384, end_stream=False)
        if resp.reset is not None:
            break
        h2.ping_roundtrip()  # the server's answers to what was sent so far are in
        if resp.reset is not None:
            break
    assert resp.reset == E.NO_ERROR, resp
    usable(h2)


# =========================================================================== accepted (table)


@dataclass(frozen=True)
class Ok:
    """Send something the RFC allows (often: something a server MUST ignore); no error may
    follow, the connection keeps serving, and the stream ``send`` returns (if any) gets a
    complete 200 with body "ok"."""

    name: str
    rfc: str
    send: Callable[[H2Conn], int | None]


def _headers_flags(extra: int, pad: int | None = None, priority: bool = False) -> Callable[[H2Conn], int]:
    def send(h2: H2Conn) -> int:
        sid = h2.new_stream()
        payload = block(h2)
        if priority:
            payload = priority_fields(0, 200) + payload
        if pad is not None:
            payload = padded(payload, pad)
        flags = Flag.END_STREAM | Flag.END_HEADERS | extra | (Flag.PADDED if pad is not None else 0)
        h2.send_raw(FrameType.HEADERS, flags | (Flag.PRIORITY if priority else 0), sid, payload)
        return sid

    return send


def _upload_then(
    ftype: int | None, flags: int = 0, payload: bytes = b"", data_flags: int = 0, data: bytes | None = None
) -> Callable[[H2Conn], int]:
    """POST /echo, then the frame (if any) on the open stream, then the body "ok"."""

    def send(h2: H2Conn) -> int:
        sid = upload(h2)
        if ftype is not None:
            h2.send_raw(ftype, flags, sid, payload)
        h2.send_raw(FrameType.DATA, Flag.END_STREAM | data_flags, sid, b"ok" if data is None else data)
        return sid

    return send


def _split_block(pieces: int, empty_last: bool = False, extra_flags: int = 0) -> Callable[[H2Conn], int]:
    """GET / with END_STREAM on the HEADERS and the field block split over CONTINUATION
    frames (``extra_flags``: unused flags on them)."""

    def send(h2: H2Conn) -> int:
        sid = h2.new_stream()
        whole = block(h2)
        step = -(-len(whole) // pieces)
        parts = [whole[i : i + step] for i in range(0, len(whole), step)] + ([b""] if empty_last else [])
        h2.send_raw(FrameType.HEADERS, Flag.END_STREAM, sid, parts[0])
        for index, part in enumerate(parts[1:], start=2):
            h2.send_raw(
                FrameType.CONTINUATION,
                extra_flags | (Flag.END_HEADERS if index == len(parts) else 0),
                sid,
                part,
            )
        return sid

    return send


def _reserved_bit_stream(h2: H2Conn) -> int:
    sid = h2.new_stream()
    h2.send_raw(FrameType.HEADERS, Flag.END_STREAM | Flag.END_HEADERS, sid | 0x80000000, block(h2))
    return sid


def _priority_on_idle_then_lower(h2: H2Conn) -> int:
    h2.send_raw(FrameType.PRIORITY, 0, 99, priority_fields(0))
    return h2.request("GET", "/")


def _skip_ids(h2: H2Conn) -> int:
    done(h2)
    h2.next_stream_id = 11
    return h2.request("GET", "/")


def _settings(pairs, flags: int = 0) -> Callable[[H2Conn], None]:
    return lambda h2: h2.send_settings(pairs, flags=flags)


def _then(
    first: Callable[[H2Conn], object], ftype: int, flags: int, payload: bytes
) -> Callable[[H2Conn], None]:
    def send(h2: H2Conn) -> None:
        sid = first(h2)
        h2.send_raw(ftype, flags, sid, payload)

    return send


ACCEPTED: list[Ok] = [
    # ---- 4.1, 5.5 unknown frame types are ignored
    Ok("unknown_type_on_stream_0", "RFC 9113 4.1, 5.5", raw(0xFA, 0, 0, b"extension")),
    Ok("unknown_type_all_flags", "RFC 9113 4.1, 5.5", raw(0xFA, 0xFF, 0, b"extension")),
    Ok("unknown_type_on_idle_stream", "RFC 9113 5.1, 5.5", raw(0xFA, 0, 101, b"extension")),
    Ok("unknown_type_on_open_stream", "RFC 9113 4.1, 5.5", _upload_then(0xFA, 0x0F, b"extension")),
    # ---- 4.1 unused flags and the reserved bit are ignored
    Ok("headers_unused_flags", "RFC 9113 4.1", _headers_flags(0xD2)),
    Ok("data_unused_flags", "RFC 9113 4.1", _upload_then(None, data_flags=0xF6)),
    Ok("continuation_unused_flags", "RFC 9113 4.1", _split_block(2, extra_flags=0xFB)),
    Ok("priority_unused_flags", "RFC 9113 4.1", raw(T.PRIORITY, 0xFF, 99, priority_fields(0))),
    Ok("rst_stream_unused_flags", "RFC 9113 4.1", _then(upload, T.RST_STREAM, 0xFF, u32(E.CANCEL))),
    Ok("settings_unused_flags", "RFC 9113 4.1", _settings([(S.MAX_CONCURRENT_STREAMS, 100)], flags=0xFE)),
    Ok("window_update_unused_flags", "RFC 9113 4.1", raw(T.WINDOW_UPDATE, 0xFF, 0, u32(1000))),
    Ok("reserved_bit_in_stream_id", "RFC 9113 4.1", _reserved_bit_stream),
    # ---- 4.3, 6.2, 6.10 field blocks over CONTINUATION
    Ok("headers_and_two_continuations", "RFC 9113 4.3, 6.10", _split_block(3)),
    Ok("end_stream_on_headers_before_continuation", "RFC 9113 6.2", _split_block(2)),
    Ok("empty_last_continuation", "RFC 9113 6.10", _split_block(1, empty_last=True)),
    # ---- 6.1, 6.2 padding and (deprecated) priority fields
    Ok("padded_headers", "RFC 9113 6.2", _headers_flags(0, pad=10)),
    Ok("padded_headers_with_priority", "RFC 9113 6.2", _headers_flags(0, pad=3, priority=True)),
    Ok("headers_with_priority", "RFC 9113 6.2, 5.3.2", _headers_flags(0, priority=True)),
    Ok("padded_data", "RFC 9113 6.1", _upload_then(None, data_flags=F.PADDED, data=padded(b"ok", 20))),
    Ok("padded_data_pad_length_0", "RFC 9113 6.1", _upload_then(None, data_flags=F.PADDED, data=padded(b"ok", 0))),
    # ---- 6.3 PRIORITY in any stream state
    Ok("priority_on_idle_stream", "RFC 9113 6.3", raw(T.PRIORITY, 0, 99, priority_fields(0))),
    Ok("priority_on_idle_then_lower_stream_opens", "RFC 9113 6.3, 5.1.1", _priority_on_idle_then_lower),
    Ok("priority_on_open_stream", "RFC 9113 6.3", _upload_then(T.PRIORITY, 0, priority_fields(0))),
    Ok("priority_on_half_closed_remote", "RFC 9113 5.1, 6.3", _then(held, T.PRIORITY, 0, priority_fields(0))),
    Ok("priority_on_closed_stream", "RFC 9113 6.3", _then(done, T.PRIORITY, 0, priority_fields(0))),
    # ---- 5.1, 6.9 WINDOW_UPDATE and RST_STREAM once the client's side is done
    Ok("window_update_on_half_closed_remote", "RFC 9113 5.1, 6.9", _then(held, T.WINDOW_UPDATE, 0, u32(1000))),
    Ok("window_update_on_closed_stream", "RFC 9113 6.9", _then(done, T.WINDOW_UPDATE, 0, u32(1000))),
    Ok("rst_stream_on_closed_stream", "RFC 9113 5.1", _then(done, T.RST_STREAM, 0, u32(E.CANCEL))),
    Ok("rst_stream_on_open_stream", "RFC 9113 6.4", _then(upload, T.RST_STREAM, 0, u32(E.CANCEL))),
    Ok("rst_stream_on_half_closed_remote", "RFC 9113 5.1, 6.4", _then(held, T.RST_STREAM, 0, u32(E.CANCEL))),
    Ok("rst_stream_unknown_error_code", "RFC 9113 7", _then(held, T.RST_STREAM, 0, u32(0xBAD))),
    # ---- 5.1.1 stream identifiers may be skipped
    Ok("skipped_stream_ids", "RFC 9113 5.1.1", _skip_ids),
    # ---- 6.5 settings the server must take
    Ok("settings_empty", "RFC 9113 6.5", _settings([])),
    Ok("settings_unknown_identifier", "RFC 9113 6.5.2", _settings([(0xF00D, 12345)])),
    Ok("max_frame_size_16384", "RFC 9113 6.5.2", _settings([(S.MAX_FRAME_SIZE, 2**14)])),
    Ok("max_frame_size_2_24_minus_1", "RFC 9113 6.5.2", _settings([(S.MAX_FRAME_SIZE, 2**24 - 1)])),
    Ok("initial_window_size_2_31_minus_1", "RFC 9113 6.5.2", _settings([(S.INITIAL_WINDOW_SIZE, MAX_WINDOW)])),
    Ok("enable_push_0", "RFC 9113 6.5.2", _settings([(S.ENABLE_PUSH, 0)])),
    Ok("enable_push_1", "RFC 9113 6.5.2", _settings([(S.ENABLE_PUSH, 1)])),
    Ok("max_concurrent_streams_0", "RFC 9113 6.5.2", _settings([(S.MAX_CONCURRENT_STREAMS, 0)])),
    Ok("max_header_list_size", "RFC 9113 6.5.2", _settings([(S.MAX_HEADER_LIST_SIZE, 100_000)])),
    # ---- RFC 7541 valid forms
    Ok("hpack_size_updates_at_start", "RFC 7541 4.2, 6.3", hpack_request(lambda h2: b"\x20\x3f\xe1\x1f" + static_block(h2))),
    Ok("hpack_never_indexed_literal", "RFC 7541 6.2.3", after_get(b"\x10\x08x-secret\x01v")),
]  # fmt: skip


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.name for c in ACCEPTED])
def test_accepted(server, h2, case):
    """Each case cites its section: what a server MUST accept or ignore."""
    sid = case.send(h2)
    if sid is not None:
        resp = h2.response(sid)
        assert resp.complete and resp.status == 200 and resp.body == b"ok", f"{case.rfc}: {resp!r}"
    h2.expect_no_error()
    usable(h2)


# =========================================================================== 6.7 PING


def test_ping_is_acknowledged_with_its_payload(h2):
    """RFC 9113 6.7: a PING without ACK gets a PING with ACK and the same payload; unused
    flags are ignored (4.1)."""
    h2.ping_roundtrip(b"\x00\xffping\x01\x02")
    h2.send_raw(FrameType.PING, 0xFE, 0, PING8)
    deadline = time.monotonic() + h2.timeout
    while PING8 not in h2.ping_acks:
        assert h2.read_frame(deadline) is not None


def test_ping_ack_is_not_answered(h2):
    """RFC 9113 6.7: an endpoint MUST NOT respond to PING frames with the ACK flag."""
    h2.send_raw(FrameType.PING, Flag.ACK, 0, b"unasked!")
    h2.ping_roundtrip()
    h2.expect_no_error()
    assert b"unasked!" not in h2.ping_acks


# =========================================================================== 6.5 SETTINGS


def test_settings_acknowledged_in_order(h2):
    """RFC 9113 6.5.3: every SETTINGS is acknowledged, in the order received."""
    before = h2.settings_acks
    h2.send_settings([(Setting.MAX_CONCURRENT_STREAMS, 50)], wait_ack=False)
    h2.send_settings([(Setting.MAX_CONCURRENT_STREAMS, 60)], wait_ack=False)
    h2.wait_settings_acked()
    assert h2.settings_acks == before + 2


def test_settings_values_processed_in_order(server):
    """RFC 9113 6.5.3: the values are processed in order, the last one wins: of 65535 then
    100, the stream window is 100 (H2Conn fails on DATA beyond it)."""
    h2 = server.connect(
        settings=[(Setting.INITIAL_WINDOW_SIZE, DEFAULT_WINDOW), (Setting.INITIAL_WINDOW_SIZE, 100)]
    )
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=1000")
    h2.expect_no_error()
    assert len(h2.stream(sid).body) <= 100
    h2.window_update(sid, 900)
    resp = h2.response(sid)
    assert resp.complete and len(resp.body) == 1000


def test_header_table_size_0_is_honoured(h2):
    """RFC 9113 4.3.1, RFC 7541 4.2: once SETTINGS_HEADER_TABLE_SIZE=0 is acknowledged, the
    server's next field block starts with a size update to 0 when its table held entries,
    and it indexes nothing any more."""
    h2.fetch("GET", "/")
    h2.fetch("GET", "/")
    had_entries = len(h2.decoder.header_table.dynamic_entries) > 0
    h2.send_settings([(Setting.HEADER_TABLE_SIZE, 0)])
    sid = h2.request("GET", "/")
    resp = h2.response(sid)
    assert resp.complete and resp.status == 200
    first = h2.stream(sid).raw_blocks[0]
    if had_entries:
        assert first[:1] == b"\x20", f"no size update to 0 at the start of {first[:8]!r}"
    assert len(h2.decoder.header_table.dynamic_entries) == 0
    h2.fetch("GET", "/")
    assert len(h2.decoder.header_table.dynamic_entries) == 0


# =========================================================================== 6.9 flow control


def _collect(h2: H2Conn, sid: int, at_least: int) -> int:
    """Read until ``at_least`` body octets came on ``sid`` or the deadline passed; returns
    the count (H2Conn fails on any DATA beyond the windows)."""
    deadline = time.monotonic() + h2.timeout
    try:
        while len(h2.stream(sid).body) < at_least and not h2.stream(sid).server_ended:
            assert h2.read_frame(deadline) is not None, "connection closed"
    except FrameTimeout:
        pass
    return len(h2.stream(sid).body)


@pytest.mark.parametrize("window", [0, 1, 1000])
def test_server_respects_stream_window(server, window):
    """RFC 9113 6.9.1: the server sends no more DATA than the stream window (our
    SETTINGS_INITIAL_WINDOW_SIZE, 6.9.2); WINDOW_UPDATE lets the rest through."""
    h2 = server.connect(settings=[(Setting.INITIAL_WINDOW_SIZE, window)])
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=5000")
    _collect(h2, sid, window)
    h2.expect_no_error()  # nothing beyond the window: H2Conn checks every DATA
    assert len(h2.stream(sid).body) <= window
    h2.window_update(sid, 5000)
    resp = h2.response(sid)
    assert resp.complete and len(resp.body) == 5000


def test_server_respects_connection_window(server):
    """RFC 9113 6.9.1, 6.9.2: the connection window (65,535, changed only by WINDOW_UPDATE,
    never by SETTINGS) bounds the server even when the stream window is larger."""
    h2 = server.connect(settings=[(Setting.INITIAL_WINDOW_SIZE, MAX_WINDOW)])
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=100000")
    _collect(h2, sid, DEFAULT_WINDOW)
    h2.expect_no_error()
    assert len(h2.stream(sid).body) <= DEFAULT_WINDOW
    h2.window_update(0, 100000)
    resp = h2.response(sid)
    assert resp.complete and len(resp.body) == 100000


def test_initial_window_increase_applies_to_open_streams(server):
    """RFC 9113 6.9.2: a new SETTINGS_INITIAL_WINDOW_SIZE changes the window of every open
    stream by the difference: raising it from 1000 to 3000 lets 2000 more octets through."""
    h2 = server.connect(settings=[(Setting.INITIAL_WINDOW_SIZE, 1000)])
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=3000")
    _collect(h2, sid, 1000)
    h2.send_settings([(Setting.INITIAL_WINDOW_SIZE, 3000)])
    resp = h2.response(sid)
    assert resp.complete and len(resp.body) == 3000


def test_negative_window_after_initial_window_decrease(server):
    """RFC 9113 6.9.2: lowering SETTINGS_INITIAL_WINDOW_SIZE can make a stream window
    negative; the server MUST track it and send nothing until WINDOW_UPDATE makes it
    positive. 1000 sent, window 1000 -> 500 makes it -500; +600 allows 100 more."""
    h2 = server.connect(settings=[(Setting.INITIAL_WINDOW_SIZE, 1000)])
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=3000")
    assert _collect(h2, sid, 1000) == 1000, "the server did not fill the stream window"
    h2.send_settings([(Setting.INITIAL_WINDOW_SIZE, 500)])
    assert h2.stream(sid).recv_window == -500
    h2.expect_no_error()
    h2.window_update(sid, 600)
    h2.expect_no_error()
    assert len(h2.stream(sid).body) <= 1100
    h2.window_update(sid, 3000)
    resp = h2.response(sid)
    assert resp.complete and len(resp.body) == 3000


def test_upload_larger_than_the_initial_windows(h2):
    """RFC 9113 5.2.1, 6.9: a body larger than the server's initial windows goes through as
    the server opens them with WINDOW_UPDATE (H2Conn never exceeds them)."""
    body = os.urandom(300_000)
    resp = h2.fetch("POST", "/echo", body=body)
    assert resp.status == 200 and resp.body == body


def test_ping_answered_while_stream_blocked(server):
    """RFC 9113 5.2.2: an endpoint MUST read and process frames promptly, also while a
    stream waits for flow-control credit."""
    h2 = server.connect(settings=[(Setting.INITIAL_WINDOW_SIZE, 0)])
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=5000")
    h2.ping_roundtrip()
    h2.expect_no_error()
    h2.window_update(sid, 5000)
    assert h2.response(sid).complete


# =========================================================================== 5.1-5.4 streams


def test_concurrent_stream_limit(server, h2, token):
    """RFC 9113 5.1.2: a HEADERS beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS is a
    stream error PROTOCOL_ERROR or REFUSED_STREAM (the RFC leaves the choice); with
    REFUSED_STREAM the app MUST NOT have seen it (8.7)."""
    limit = h2.server_setting(Setting.MAX_CONCURRENT_STREAMS)
    if limit is None or limit > 1000:
        pytest.skip(f"the server advertises no small concurrency limit ({limit})")
    for _ in range(limit):
        held(h2)
    h2.ping_roundtrip()
    sid = h2.request("GET", "/", headers=[("x-mark", token)])
    outcome = h2.wait_error(sid)
    if outcome.kind == "goaway" and not STRICT:
        assert outcome.code in codes(E.PROTOCOL_ERROR, E.REFUSED_STREAM)
        return
    assert outcome.kind == "rst" and outcome.frame.stream_id == sid, f"{outcome!r}; frames {h2._recent()}"
    assert outcome.code in codes(E.PROTOCOL_ERROR, E.REFUSED_STREAM)
    if outcome.code == E.REFUSED_STREAM:
        assert registry(server, token) == []


def test_stream_error_leaves_other_streams(server, h2):
    """RFC 9113 5.4.2: a stream error does not affect the processing of other streams."""
    other = h2.request("GET", "/hold?ms=300")
    bad = held(h2)
    h2.send_raw(FrameType.WINDOW_UPDATE, 0, bad, u32(0))
    stream_error(server, h2, bad, E.PROTOCOL_ERROR)
    if not h2.eof:
        resp = h2.response(other)
        assert resp.complete and resp.body == b"held"


def test_no_rst_stream_in_response_to_rst_stream(h2):
    """RFC 9113 5.4.2: to avoid looping, an endpoint MUST NOT answer RST_STREAM with
    RST_STREAM."""
    sid = held(h2)
    h2.rst(sid, E.CANCEL)
    h2.expect_no_error()
    assert h2.stream(sid).response is None or h2.stream(sid).response.reset is None


def test_no_frames_after_rst_stream(server):
    """RFC 9113 6.4: after receiving RST_STREAM the server MUST NOT send more frames on the
    stream (PRIORITY excepted): a response blocked on flow control stays silent when the
    windows open."""
    h2 = server.connect(settings=[(Setting.INITIAL_WINDOW_SIZE, 100)])
    h2.auto_window_update = False
    sid = h2.request("GET", "/stream?size=50000")
    _collect(h2, sid, 100)
    h2.rst(sid, E.CANCEL)
    h2.ping_roundtrip()  # the server has processed the RST_STREAM
    seen = len(h2.received)
    h2.window_update(0, 50000)
    h2.window_update(sid, 50000)  # on a closed stream: ignored (6.9)
    h2.expect_no_error()
    late = [f for f in h2.received[seen:] if f.stream_id == sid and f.type != FrameType.PRIORITY]
    assert late == [], late


def test_goaway_last_stream_id_covers_processed_streams(h2):
    """RFC 9113 8.7, 6.8: the GOAWAY of a connection error names a last stream identifier
    no lower than any stream whose request reached the application."""
    done(h2)
    processed = done(h2)
    h2.send_raw(FrameType.PING, 0, 1, PING8)  # a connection error (6.7)
    goaway = h2.expect_goaway(*codes(E.PROTOCOL_ERROR))
    assert goaway.last_stream_id >= processed


# =========================================================================== 8 HTTP semantics


def pseudo(p: dict, *regular: tuple, without: tuple = (), **values) -> list:
    """The request pseudo-header fields of ``p`` in the usual order, some left out or given
    other values (``method=``, ``scheme=``, ``authority=``, ``path=``), then ``regular``."""
    order = (":method", ":scheme", ":authority", ":path")
    return [(name, values.get(name[1:], p[name])) for name in order if name not in without] + list(regular)


MALFORMED = [
    # ---- 8.2.1 field names and values
    ("uppercase_field_name", "RFC 9113 8.2.1", lambda p: pseudo(p, ("X-Upper", "1"))),
    ("field_name_with_space", "RFC 9113 8.2.1", lambda p: pseudo(p, ("x y", "1"))),
    ("field_name_with_colon", "RFC 9113 8.2.1", lambda p: pseudo(p, ("x:y", "1"))),
    ("field_name_with_nul", "RFC 9113 8.2.1", lambda p: pseudo(p, (b"x\x00y", b"1"))),
    ("field_name_with_del", "RFC 9113 8.2.1", lambda p: pseudo(p, (b"x\x7fy", b"1"))),
    ("field_name_non_ascii", "RFC 9113 8.2.1", lambda p: pseudo(p, (b"x\xe9y", b"1"))),
    ("field_value_with_nul", "RFC 9113 8.2.1", lambda p: pseudo(p, (b"x-a", b"a\x00b"))),
    ("field_value_with_cr", "RFC 9113 8.2.1", lambda p: pseudo(p, (b"x-a", b"a\rb"))),
    ("field_value_with_lf", "RFC 9113 8.2.1", lambda p: pseudo(p, (b"x-a", b"a\nb"))),
    ("field_value_leading_space", "RFC 9113 8.2.1", lambda p: pseudo(p, ("x-a", " a"))),
    ("field_value_trailing_space", "RFC 9113 8.2.1", lambda p: pseudo(p, ("x-a", "a "))),
    ("field_value_leading_tab", "RFC 9113 8.2.1", lambda p: pseudo(p, ("x-a", "\ta"))),
    ("field_value_trailing_tab", "RFC 9113 8.2.1", lambda p: pseudo(p, ("x-a", "a\t"))),
    # ---- 8.2.2 connection-specific fields
    ("connection", "RFC 9113 8.2.2", lambda p: pseudo(p, ("connection", "keep-alive"))),
    ("keep_alive", "RFC 9113 8.2.2", lambda p: pseudo(p, ("keep-alive", "timeout=5"))),
    ("proxy_connection", "RFC 9113 8.2.2", lambda p: pseudo(p, ("proxy-connection", "keep-alive"))),
    ("transfer_encoding", "RFC 9113 8.2.2", lambda p: pseudo(p, ("transfer-encoding", "chunked"))),
    ("upgrade", "RFC 9113 8.2.2", lambda p: pseudo(p, ("upgrade", "h2c"))),
    ("te_gzip", "RFC 9113 8.2.2", lambda p: pseudo(p, ("te", "gzip"))),
    ("te_trailers_and_gzip", "RFC 9113 8.2.2", lambda p: pseudo(p, ("te", "trailers, gzip"))),
    # ---- 8.3 pseudo-header fields
    (
        "pseudo_after_regular",
        "RFC 9113 8.3",
        lambda p: pseudo(p, ("x-a", "1"), (":path", p[":path"]), without=(":path",)),
    ),
    ("unknown_pseudo", "RFC 9113 8.3", lambda p: pseudo(p, (":foo", "bar"))),
    ("status_in_request", "RFC 9113 8.3", lambda p: pseudo(p, (":status", "200"))),
    ("duplicate_method", "RFC 9113 8.3", lambda p: pseudo(p, (":method", "GET"))),
    ("duplicate_scheme", "RFC 9113 8.3", lambda p: pseudo(p, (":scheme", p[":scheme"]))),
    ("duplicate_authority", "RFC 9113 8.3", lambda p: pseudo(p, (":authority", p[":authority"]))),
    ("duplicate_path", "RFC 9113 8.3", lambda p: pseudo(p, (":path", p[":path"]))),
    # ---- 8.3.1 request pseudo-header fields
    ("missing_method", "RFC 9113 8.3.1", lambda p: pseudo(p, without=(":method",))),
    ("missing_scheme", "RFC 9113 8.3.1", lambda p: pseudo(p, without=(":scheme",))),
    ("missing_path", "RFC 9113 8.3.1", lambda p: pseudo(p, without=(":path",))),
    ("empty_path", "RFC 9113 8.3.1", lambda p: pseudo(p, path="")),
    ("empty_method", "RFC 9113 8.3.1", lambda p: pseudo(p, method="")),
    ("path_not_absolute", "RFC 9113 8.3.1", lambda p: pseudo(p, path="scope")),
    ("asterisk_path_for_get", "RFC 9113 8.3.1", lambda p: pseudo(p, path="*")),
    ("authority_with_userinfo", "RFC 9113 8.3.1", lambda p: pseudo(p, authority="user@" + p[":authority"])),
    # ---- 8.5 CONNECT
    ("connect_with_scheme_and_path", "RFC 9113 8.5", lambda p: pseudo(p, method="CONNECT")),
    ("connect_without_authority", "RFC 9113 8.5", lambda p: [(":method", "CONNECT")]),
]


@pytest.mark.parametrize("name,rfc,fields", MALFORMED, ids=[c[0] for c in MALFORMED])
def test_malformed_request(server, h2, token, name, rfc, fields):
    """Each case cites its section: a malformed request (RFC 9113 8.1.1) is a stream error
    PROTOCOL_ERROR (or, 8.1.1 MAY, a 4xx response); the app never sees it and the
    connection, whose HPACK state the block changed, keeps serving."""
    p = {":method": "GET", ":scheme": "https" if h2.tls else "http", ":authority": h2.authority, ":path": "/"}
    sid = h2.new_stream()
    h2.send_headers(sid, h2.encoder.encode([*fields(p), ("x-mark", token), ("x-sync", token)]))
    stream_error(server, h2, sid, E.PROTOCOL_ERROR, sync=token, malformed=True)
    assert registry(server, token) == [], f"{rfc}: the app saw the malformed request"


def _body(headers=(), data=(b"short",), trailers=None, trailers_end=True) -> Callable[[H2Conn], int]:
    """POST /echo with ``headers``, the ``data`` frames and maybe trailers."""

    def send(h2: H2Conn) -> int:
        sid = upload(h2) if not headers else h2.request("POST", "/echo", headers=headers, end_stream=False)
        for index, chunk in enumerate(data):
            last = index == len(data) - 1 and trailers is None
            h2.send_raw(FrameType.DATA, Flag.END_STREAM if last else 0, sid, chunk)
        if trailers is not None:
            h2.send_headers(sid, h2.encoder.encode(trailers), end_stream=trailers_end)
        return sid

    return send


def _cl_without_data(h2: H2Conn) -> int:
    return h2.request("POST", "/echo", headers=[("content-length", "5")])


MALFORMED_BODIES = [
    ("content_length_above_data", "RFC 9113 8.1.1", _body([("content-length", "10")])),
    ("content_length_below_data", "RFC 9113 8.1.1", _body([("content-length", "2")])),
    (
        "content_length_exceeded_by_second_frame",
        "RFC 9113 8.1.1",
        _body([("content-length", "4")], data=(b"ab", b"cde")),
    ),
    ("content_length_without_data", "RFC 9113 8.1.1", _cl_without_data),
    ("trailers_with_pseudo_header", "RFC 9113 8.1", _body(data=(b"ok",), trailers=[(":path", "/")])),
    (
        "trailers_without_end_stream",
        "RFC 9113 8.1",
        _body(data=(b"ok",), trailers=[("x-t", "1")], trailers_end=False),
    ),
    (
        "second_headers_without_end_stream",
        "RFC 9113 8.1",
        _body(data=(), trailers=[("x-t", "1")], trailers_end=False),
    ),
    ("trailers_uppercase_name", "RFC 9113 8.2.1", _body(data=(b"ok",), trailers=[("X-T", "1")])),
    (
        "trailers_connection_specific",
        "RFC 9113 8.2.2",
        _body(data=(b"ok",), trailers=[("transfer-encoding", "chunked")]),
    ),
]


@pytest.mark.parametrize("name,rfc,send", MALFORMED_BODIES, ids=[c[0] for c in MALFORMED_BODIES])
def test_malformed_message_after_headers(server, h2, name, rfc, send):
    """Each case cites its section: a request that turns malformed after its header section
    (RFC 9113 8.1.1) is a stream error PROTOCOL_ERROR (or a 4xx response); the app's echo
    never comes back as a 2xx."""
    sid = send(h2)
    stream_error(server, h2, sid, E.PROTOCOL_ERROR, malformed=True)


def _trailers_request(h2: H2Conn) -> Response:
    return h2.fetch("POST", "/echo", body=b"ok", trailers=[("x-t", "1")])


SERVED = [
    ("te_trailers", "RFC 9113 8.2.2", lambda h2: h2.fetch("GET", "/", headers=[("te", "trailers")])),
    (
        "host_equal_to_authority",
        "RFC 9113 8.3.1",
        lambda h2: h2.fetch("GET", "/", headers=[("host", h2.authority)]),
    ),
    ("request_trailers", "RFC 9113 8.1", _trailers_request),
    ("data_then_empty_end_stream", "RFC 9113 8.1", lambda h2: _finish(h2, _body(data=(b"o", b"k", b""))(h2))),
    (
        "content_length_matching",
        "RFC 9113 8.1.1",
        lambda h2: h2.fetch("POST", "/echo", headers=[("content-length", "2")], body=b"ok"),
    ),
    ("query_string", "RFC 9113 8.3.1", lambda h2: h2.fetch("GET", "/?a=1&b=2")),
]


def _finish(h2: H2Conn, sid: int) -> Response:
    return h2.response(sid)


@pytest.mark.parametrize("name,rfc,run", SERVED, ids=[c[0] for c in SERVED])
def test_valid_request_served(h2, name, rfc, run):
    """Each case cites its section: valid forms a server MUST NOT refuse."""
    resp = run(h2)
    assert resp.complete and resp.status == 200 and resp.body == b"ok", f"{rfc}: {resp!r}"


def test_cookie_crumbs_joined(h2):
    """RFC 9113 8.2.3: several cookie fields MUST be joined with "; " before they reach a
    generic HTTP server application."""
    resp = h2.fetch("GET", "/scope", headers=[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")])
    cookies = [v for k, v in json.loads(resp.body)["headers"] if k == "cookie"]
    assert cookies == ["a=1; b=2; c=3"]


def test_options_asterisk_served(h2):
    """RFC 9113 8.3.1: OPTIONS with :path "*" is a valid request (the app answers 404)."""
    resp = h2.fetch("OPTIONS", "*")
    assert resp.complete and resp.status == 404 and resp.body == b"no route"


RESPONSES = [
    # (name, rfc, method, path, body, whether a reset stream is an acceptable answer)
    # H2Conn fails on a connection-specific or uppercase field name in any response
    ("connection_specific_fields_dropped", "RFC 9113 8.2.2", "GET", "/hop", b"hop", True),
    ("field_names_lowercased", "RFC 9113 8.2", "GET", "/mixed-case", b"case", True),
    # H2Conn fails on DATA in a response to HEAD, in a 204 or 304, and on a content-length
    # that does not match the DATA
    ("no_content_for_head", "RFC 9113 8.1.1", "HEAD", "/", b"", False),
    ("no_content_for_204", "RFC 9113 8.1.1", "GET", "/status/204", b"", False),
    ("no_content_for_304", "RFC 9113 8.1.1", "GET", "/status/304", b"", False),
    ("app_content_length_mismatch", "RFC 9113 8.1.1", "GET", "/bad-length", b"short", True),
]


@pytest.mark.parametrize("name,rfc,method,path,body,may_reset", RESPONSES, ids=[c[0] for c in RESPONSES])
def test_response_is_well_formed(h2, name, rfc, method, path, body, may_reset):
    """Each case cites its section: what the server generates (H2Conn checks every
    response); where the app asked for something HTTP/2 cannot carry, refusing it (a reset
    stream, or a 5xx of the server's own) is the other acceptable answer."""
    resp = h2.response(h2.request(method, path))
    if may_reset and (resp.reset is not None or (resp.complete and resp.status >= 500)):
        return  # the server refused the app's response (H2Conn checked what it sent instead)
    assert resp.complete and resp.body == body, f"{rfc}: {resp!r}"


def test_response_trailers(h2):
    """RFC 9113 8.1: trailers are one field block that ends the stream and carries no
    pseudo-header fields (H2Conn checks both)."""
    resp = h2.fetch("GET", "/trailers", headers=[("te", "trailers")])
    if resp.body == b"no trailers":
        pytest.skip("the server does not offer the http.response.trailers extension")
    assert resp.status == 200 and resp.body == b"ok"
    assert resp.trailers == [(b"x-check", b"done")]
