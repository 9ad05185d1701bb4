"""Typing and documentation for the compiled hot path, ``fastasgi._http._core``.

The module is Cython over the vendored llhttp (HTTP/1.1) and nghttp2 (HTTP/2) C libraries. It
holds the connection protocol (``HttpProtocol``: HTTP/1.1, handing a connection to
``H2Protocol`` or to the WebSocket layer when it asks for it), the request model both protocols
share, the WebSocket frame codec, and the per-server context every connection shares.
"""

import asyncio
import collections
import enum
from collections.abc import Awaitable, Callable, Generator, MutableMapping
from typing import Any

ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[dict]], Callable[[dict], Awaitable[None]]],
    Awaitable[None],
]

#: The llhttp version compiled in, e.g. "9.4.3".
LLHTTP_VERSION: str

#: True in a debug build (``FASTASGI_DEBUG=1`` when building): every state transition of a
#: connection, a response and a request message is checked against its table.
DEBUG: bool

class ClientDisconnected(OSError):
    """Raised by ``send()`` once the client has gone away (ASGI spec 2.4), for HTTP and
    WebSocket connections alike."""

class Framing(enum.IntEnum):
    """How a response body is delimited (see ``response_framing``)."""

    FRAMING_NONE = 0
    FRAMING_LENGTH = 1
    FRAMING_ADD_LENGTH = 2
    FRAMING_CHUNKED = 3
    FRAMING_ADD_CHUNKED = 4
    FRAMING_CLOSE = 5
    FRAMING_INVALID = 6

def response_framing(status: int, has_length: bool, app_chunked: bool, final: bool, http10: bool) -> Framing:
    """RFC 9112 6.3 from the sender's side: no body for 1xx/204/304; the app's Content-Length
    (INVALID together with Transfer-Encoding); the app's chunked; else, when the first body
    message is the last, a Content-Length the server adds; else chunked added for HTTP/1.1 or
    the connection close for HTTP/1.0."""

def status_line(status: int) -> bytes:
    """``b"HTTP/1.1 404 Not Found\\r\\n"`` for 100-599 (empty phrase for unnamed codes)."""

def reason_phrase(status: int) -> str:
    """RFC 9110 15's reason phrase ("Not Found"), or "" for a code it does not name."""

def is_token(value: bytes) -> bool:
    """RFC 9110 5.6.2: one or more tchar."""

def default_lines(ctx: ServerContext, has_server: bool = False, has_date: bool = False) -> bytes:
    """The header lines every response starts with: ``server`` and ``date`` unless the app
    sent its own (``has_server``/``has_date``), then the ``--header`` extras."""

def error_response(ctx: ServerContext, status: int, body: bytes | None = None, extra: bytes = b"") -> bytes:
    """A response the server makes itself: status line, the default lines, ``extra`` header
    lines, a text/plain ``body`` (the reason phrase by default), Content-Length and
    ``connection: close``."""

class ServerContext:
    """Settings and shared state for every connection of one server.

    Built once at start-up by ``fastasgi.server.Server`` from a validated ``Config``.
    The protocol reads these fields; nothing here is computed per request.
    """

    app: ASGIApp
    loop: asyncio.AbstractEventLoop
    #: lifespan state; each request scope gets a shallow copy under "state"
    state: dict[str, Any]
    #: every live connection (HTTP protocols and upgraded WebSocket protocols).
    #: Each member has ``shutdown()`` (graceful: finish the current exchange, then close)
    #: and ``abort()`` (close now).
    connections: set[Any]
    #: the asyncio Tasks of HTTP requests whose app suspended and has not finished
    #: (an app that finishes in its first step never has one); cancel them to end them
    tasks: set[asyncio.Task[Any]]
    #: number of requests being processed right now
    active_requests: int
    #: total requests served since start (for --limit-max-requests)
    total_requests: int
    #: set by begin_shutdown(): keep-alive is refused, idle connections closed
    shutting_down: bool
    #: ``loop.time``; ``now`` is its value at the last ``tick()``
    clock: Callable[[], float]
    now: float

    def __init__(
        self,
        app: ASGIApp,
        loop: asyncio.AbstractEventLoop,
        *,
        root_path: str = "",
        server_header: bool = True,
        date_header: bool = True,
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        max_header_bytes: int = 65536,
        max_headers: int = 100,
        keep_alive_timeout: float = 5,
        state: dict[str, Any] | None = None,
        access_log: Callable[[dict, int, int, float], None] | None = None,
        ws_upgrade: Callable[[ServerContext, asyncio.Transport, dict, bytes], asyncio.Protocol] | None = None,
        limit_concurrency: int | None = None,
        max_body_size: int | None = None,
        timeout_request_head: float | None = 30.0,
        timeout_request_body: float | None = 60.0,
        timeout_request: float | None = None,
        header_map: str = "drop",
        http2: bool = True,
        http2_only: bool = False,
        h2_max_concurrent_streams: int = 100,
        h2_initial_stream_window_size: int = 1048576,
        h2_initial_connection_window_size: int = 4194304,
        h2_max_frame_size: int = 16384,
        h2_max_headers_size: int | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """Parameters:

        ``extra_headers``: (name, value) pairs from ``--header``; added to every response.
        ``max_header_bytes``: one limit on the request head as a whole, request line plus
        header section (431 beyond it; 414 when the request-target alone is over it); a
        trailer section is held to it separately.
        ``max_headers``: most field lines in the head (and, separately, in a trailer section).
        ``keep_alive_timeout``: idle keep-alive connections are closed after this many seconds
        (checked by ``tick()``, no per-request timer).
        ``access_log``: called after each response as ``access_log(scope, status,
        response_body_bytes, duration_seconds)``; ``None`` turns the access log off at no cost.
        ``ws_upgrade``: called for a ``GET`` with ``Upgrade: websocket`` and
        ``Connection: upgrade``, as ``ws_upgrade(ctx, transport, scope, leftover)`` where
        ``scope`` is the finished ``http`` scope of the upgrade request and ``leftover`` the
        bytes received after its head. It returns the protocol that takes the connection over;
        the HTTP protocol then calls ``transport.set_protocol(p)``, ``p.connection_made(transport)``
        and, when ``leftover`` is non-empty, ``p.data_received(leftover)``. ``None`` means
        WebSockets are off and upgrade requests are served as plain HTTP.
        ``limit_concurrency``: beyond this many connections + requests, answer 503.
        ``max_body_size``: request bodies larger than this get 413 (None: no limit).
        ``timeout_request_head``: close a connection whose request head is not complete after
        this many seconds (slowloris); ``timeout_request_body``: close when no body bytes
        arrive for this long while the app waits for them. None disables each.
        ``header_map``: request header fields whose name contains "_": "drop" (never reach
        the app), "refuse" (400) or "dangerous" (passed through), as gunicorn's setting.
        ``http2``: a connection whose first bytes are the HTTP/2 preface (cleartext) or whose
        TLS handshake chose ALPN "h2" is served as HTTP/2 (``H2Protocol``); ``h2_*``: its
        SETTINGS and windows; ``h2_max_headers_size`` None: ``max_header_bytes``.
        ``http2_only``: every connection is HTTP/2, in cleartext by prior knowledge (an invalid
        connection preface is a connection error, GOAWAY(PROTOCOL_ERROR)), never HTTP/1.1.
        """

    def tick(self) -> None:
        """Called once a second by the server: refresh the shared Date header, then let each
        HTTP connection apply its keep-alive and request timeouts."""

    def begin_shutdown(self) -> None:
        """Stop keep-alive: idle connections are closed now, busy ones after their current
        response."""

class HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 server protocol for one connection. ``loop.create_server(lambda:
    HttpProtocol(ctx), ...)``."""

    def __init__(self, ctx: ServerContext) -> None: ...
    #: the connection's state: "IDLE", "HEAD", "REQUEST", "CLOSING", "UPGRADED" or "CLOSED"
    state_name: str
    def set_addresses(self, client: tuple[str, int] | None, server: tuple[str, int | None] | None) -> None:
        """After ``connection_made``: replace the scope's ``client`` and ``server`` for every
        request of this connection (used by the PROXY protocol layer)."""
    def shutdown(self) -> None:
        """Finish the exchange in flight (if any), then close."""
    def abort(self) -> None:
        """Close the connection now."""

class H2Protocol(asyncio.Protocol):
    """One HTTP/2 connection over nghttp2. Not made directly: ``HttpProtocol`` hands its
    connection over (the preface, or ALPN "h2"), and it joins ``ServerContext.connections``."""

    def __init__(self, ctx: ServerContext) -> None: ...
    #: "OPEN", "GOAWAY" (shutting down: the started streams finish) or "CLOSED"
    state_name: str
    def shutdown(self) -> None:
        """Send GOAWAY: the streams already started finish, then the connection closes."""
    def abort(self) -> None:
        """Close the connection now; every stream's app is cancelled."""

def current_date_line() -> bytes:
    """The shared ``date: ...`` header line (with its CRLF), refreshed once a second by
    ``ServerContext.tick()``."""

def check_header(name: bytes, value: bytes) -> int:
    """Raise RuntimeError unless ``name`` is a token (RFC 9110 5.6.2) and ``value`` holds no
    CR, LF or NUL (RFC 9110 5.5): the check every response header passes. Returns 0."""

def format_date(timestamp: float) -> bytes:
    """IMF-fixdate (RFC 9110 5.6.7) for ``timestamp``: ``b"Sat, 21 Nov 2026 04:59:33 GMT"``."""

#: bytes of one process's metrics block (see metrics_attach)
METRICS_SIZE: int

def metrics_attach(buffer: Any) -> None:
    """Count this process's traffic into ``buffer`` (a writable buffer of at least
    ``METRICS_SIZE`` bytes, e.g. a slot of a shared mmap made before fork) from now on.
    Until a block is attached nothing is counted."""

def metrics_detach() -> None:
    """Stop counting."""

def metrics_reset(buffer: Any) -> None:
    """Zero a block."""

def metrics_add(dst: Any, src: Any) -> None:
    """``dst += src`` for the counters and the histogram (not the gauges): how the counts of a
    worker that is gone are kept."""

def metrics_read(buffer: Any) -> dict[str, Any]:
    """A snapshot of a block: ``requests`` {(method, status, protocol): n} (non-zero only;
    method GET HEAD POST PUT DELETE PATCH OPTIONS or OTHER; protocol "1.0"/"1.1"),
    ``duration_buckets`` [(le_seconds, cumulative)] from 0.0001 to 60 (``duration_count`` is
    +Inf), ``duration_sum``, ``in_flight``, ``connections_open`` {"http", "websocket"},
    ``connections_accepted``, ``connections_closed``, ``bytes_received``, ``bytes_sent``,
    ``refused`` {status: n} (answers the server made itself), ``ws_messages_in``,
    ``ws_messages_out``, ``app_exceptions``."""

def metrics_ws(
    messages_in: int = 0, messages_out: int = 0, bytes_in: int = 0, bytes_out: int = 0, closed: int = 0
) -> None:
    """What the WebSocket layer counts: messages and bytes each way, and its connection's end."""

def nghttp2_version() -> str:
    """The version of the nghttp2 library compiled into the extension."""

def nghttp2_has_security_options() -> bool:
    """True: the stream-reset rate limit (CVE-2023-44487) and the CONTINUATION limit
    (CVE-2024-28182) of Debian's patches are there (a build without them does not link)."""

# WebSocket frames (RFC 6455, RFC 7692): _http/ws.pxi, _http/wsdeflate.pxi

WS_CONT: int
WS_TEXT: int
WS_BINARY: int
WS_CLOSE: int
WS_PING: int
WS_PONG: int
#: the kind of WsCodec.feed's protocol-error event (not an opcode)
WS_ERROR: int

class WsCodec:
    """The RFC 6455 frames of one server-side connection: client frames are parsed, unmasked,
    checked (reserved bits and opcodes, masking, control-frame rules, close codes of 7.4,
    UTF-8 at the first invalid byte) and reassembled into messages; messages are built into
    frames. With ``deflate``, permessage-deflate (RFC 7692) on zlib.

    ``max_size``: the largest message in bytes (after inflating), None for no limit.
    ``deflate``: None, or the negotiated ``(client_no_context_takeover,
    server_no_context_takeover, client_max_window_bits, server_max_window_bits, level,
    mem_level)``."""

    deflate: bool

    def __init__(self, max_size: int | None = None, deflate: tuple | None = None) -> None: ...
    def feed(self, data: bytes) -> list[Any]:
        """What ``data`` completed, in wire order: a str (text message), bytes (binary message),
        ``(WS_PING, payload)``, ``(WS_PONG, payload)``, ``(WS_CLOSE, code, reason)`` (code 1005
        for an empty close frame) or ``(WS_ERROR, code, reason)`` with code 1002, 1007 or 1009.
        After a close frame or an error the codec is done and ignores later bytes."""
    def message(self, data: str | bytes | bytearray | memoryview) -> bytes:
        """A data frame: str as text, bytes-like as binary; compressed (RSV1) with deflate."""
    def control(self, opcode: int, payload: bytes = b"") -> bytes:
        """A ping or pong frame; ``payload`` is at most 125 bytes (RFC 6455 5.5)."""
    def close_frame(self, code: int, reason: str = "") -> bytes:
        """A close frame with ``code`` and ``reason``; code 1005 gives an empty close frame."""

#: WsConn's connection states (the Python layer's, see fastasgi/websocket.py)
WS_HANDSHAKE: int
WS_RESPONSE: int
WS_OPEN: int
WS_CLOSING: int
WS_CLOSED: int

class WsConn:
    """The per-message path of an upgraded websocket (``_http/wsconn.pxi``), the base class
    of ``fastasgi.websocket.WebSocketProtocol``: ``data_received`` of an open connection
    (frames to ``websocket.receive`` messages for the app's waiting ``receive()`` or the
    queue, control frames and errors to the subclass's ``_control``; before the handshake's
    answer, the bytes to ``_early_data``), ``receive()``, ``send()`` of ``websocket.send`` on
    an open connection that is not write-paused (others go to the subclass's ``_send``), the
    write batching and reading flow control."""

    state: int
    transport: Any
    loop: asyncio.AbstractEventLoop
    codec: WsCodec
    _queue: collections.deque[dict[str, Any]]
    _waiters: list[asyncio.Future[None]]
    _disconnect: dict[str, Any] | None
    _failure: tuple[bool, int, str] | None
    _pending: list[bytes]
    _pending_size: int
    _read_paused: bool
    _write_paused: bool
    _write_scheduled: bool
    _app_busy: bool
    _in_count: int
    _out_count: int
    max_queue: int
    resume_at: int

    def data_received(self, data: bytes) -> None: ...
    async def receive(self) -> dict[str, Any]: ...
    def send(self, message: dict[str, Any]) -> Awaitable[None]: ...
    def _send_message(self, message: dict[str, Any]) -> None: ...
    def _write(self, data: bytes) -> None: ...
    def _write_scheduled_cb(self) -> None: ...
    def _write_pending(self) -> None: ...
    def _pause_reading(self) -> None: ...
    def _resume_reading(self) -> None: ...

class _Done:
    """An awaitable that is already complete, with the result None; send() returns one
    shared instance when it had nothing to wait for."""

    def __await__(self) -> Generator[Any]: ...

def file_send_stats() -> dict[str, int]:
    """This process's file bodies (the ``http.response.pathsend`` and
    ``http.response.zerocopysend`` extensions): ``responses``, and the bytes sent by
    ``os.sendfile`` (``sendfile_bytes``) and by pread pieces (``pread_bytes``)."""
