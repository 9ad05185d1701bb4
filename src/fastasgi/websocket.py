"""ASGI websockets over an HTTP/1.1 ``Upgrade: websocket`` request.

The compiled HTTP protocol parses the upgrade request, builds its ``http`` scope, and hands the
connection over by calling the function that :func:`create_ws_upgrade` returns. From there
:class:`WebSocketProtocol` owns the socket: it completes (or refuses) the opening handshake on
the app's word, and runs the frames through the compiled ``WsCodec`` (``_http/ws.pxi``),
which does framing, unmasking, UTF-8 validation, fragmentation limits, control-frame rules,
close codes and permessage-deflate (RFC 7692). The codec decides nothing about the
connection: answering pings and closes, failing the connection, and when, are decided here.

The handshake request is checked by :mod:`fastasgi._wshandshake` (key, version, the
permessage-deflate negotiation), and the HTTP responses (101, 403, 500, the denial response)
are written here, so that they carry the server's default headers and the app's headers,
validated the same way as on plain HTTP responses.

Specifications followed: the ASGI HTTP & WebSocket spec (asgiref ``specs/www.rst``, websocket
spec version 2.4), its "WebSocket Denial Response" extension (``specs/extensions.rst``),
RFC 6455 and RFC 7692.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
from collections.abc import Callable
from typing import Any

from fastasgi._http._core import (
    DEBUG,
    WS_CLOSE,
    WS_CLOSED,
    WS_CLOSING,
    WS_ERROR,
    WS_HANDSHAKE,
    WS_OPEN,
    WS_PING,
    WS_PONG,
    WS_RESPONSE,
    ClientDisconnected,
    Framing,
    WsCodec,
    WsConn,
    _Done,
    check_header,
    default_lines,
    error_response,
    is_token,
    metrics_ws,
    response_framing,
    status_line,
)
from fastasgi._wshandshake import HandshakeError, check_request

__all__ = ["ClientDisconnected", "WebSocketProtocol", "create_ws_upgrade"]

#: the completed awaitable send() returns when it had nothing to wait for (one, shared)
DONE = _Done()
logger = logging.getLogger("fastasgi.error")

#: ASGI websocket spec version this layer implements (2.4: ``reason`` on disconnect, and
#: ``send()`` raising an ``OSError`` subclass on a closed connection).
SPEC_VERSION = "2.4"

#: Seconds to wait, once a close frame is sent, for the peer to answer it and drop the TCP
#: connection; after that the transport is aborted, so a silent peer cannot hold a socket.
CLOSE_TIMEOUT = 5.0

#: Bytes a client may send before the handshake completes (RFC 6455 lets it pipeline frames
#: after the upgrade request); beyond this, reading pauses until the app accepts.
EARLY_DATA_LIMIT = 65536

#: Seconds a pending failure waits for the app to read the messages before it (see the states).
FAIL_DELAY = CLOSE_TIMEOUT

_HANDSHAKE_HEADERS = frozenset(
    (
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
        b"sec-websocket-extensions",
        b"upgrade",
        b"connection",
    )
)

# Connection states (WsConn.state: an int, because the compiled per-message path tests it on
# every frame and every send), changed only through WebSocketProtocol._set_state:
#
#   HANDSHAKE  the app has the websocket.connect event and must answer with websocket.accept,
#              websocket.close or websocket.http.response.start. Nothing is fed to the frame
#              parser yet (it would answer pings before the 101 went out); early bytes are
#              buffered (EARLY_DATA_LIMIT).
#   RESPONSE   the app is sending a denial response (websocket.http.response.*); the
#              connection closes when its last body message is written.
#   OPEN       the 101 went out; frames flow both ways.
#   CLOSING    a close frame was sent (RFC 6455 7.1.2), as the first of the closing handshake or
#              as the answer to the peer's: no message reaches the app any more (1.4), nothing
#              but the pending writes goes out (5.5.1), reading goes on only to see the peer's
#              close frame or EOF, and the CLOSE_TIMEOUT timer aborts the transport if neither
#              comes.
#   CLOSED     the HTTP exchange is over or the transport is gone. Terminal.
#
# Legal transitions, and why each happens:
#   HANDSHAKE -> OPEN      websocket.accept: the 101 is written (RFC 6455 4.2.2).
#   HANDSHAKE -> RESPONSE  websocket.http.response.start (the Denial Response extension).
#   HANDSHAKE -> CLOSED    the handshake is answered with a plain HTTP response and the
#                          connection closes: 400/426 for a bad request (RFC 6455 4.2.1, 4.4),
#                          403 for websocket.close before accept (ASGI spec), 500 for an app
#                          that raised or returned first, 503 during shutdown; or the
#                          transport is lost before the app answered.
#   RESPONSE  -> CLOSED    the denial's last body message is written, the app failed in the
#                          middle of it (500 if nothing went out yet), or the transport is lost.
#   OPEN      -> CLOSING   a close frame goes out: the app's websocket.close, 1000 when the app
#                          returned, 1011 when it raised (RFC 6455 7.4.1), the echo of the
#                          peer's close (5.5.1), a failure (7.1.7: 1002, 1007, 1009, or 1011 for
#                          a keepalive ping timeout), 1012 at server shutdown.
#   OPEN      -> CLOSED    the transport is lost without a closing handshake: the app sees 1006
#                          (RFC 6455 7.1.5), or the code of the peer's close frame when that
#                          frame had arrived and was pending (see below).
#   CLOSING   -> CLOSED    the transport is gone: closed by us once both close frames were
#                          exchanged (RFC 6455 7.1.1), by the peer, or aborted by the close timer.
# Nothing goes back, and no state moves to itself: connection_lost after a plain HTTP answer
# finds CLOSED already and leaves it. A debug build of the core (FASTASGI_DEBUG=1), or
# FASTASGI_DEBUG=1 in the environment at run time, checks every change against _NEXT; a release
# run only assigns, which costs nothing next to the frames (a connection changes state two or
# three times in its life, never per message).
#
# Orthogonal to the state, one flag: "close pending" (WsConn._failure is not None, the
# close_pending property; its FAIL_DELAY timer is _fail_handle). It is only ever set in OPEN: the
# peer sent a close frame, or broke a rule (the codec reported WS_ERROR), after messages the
# app has not finished with. The value is (peer_closed, code, reason). The state stays OPEN (so
# the compiled send() keeps sending the app's answers) and the close frame (the echo of the
# peer's, or the failure's) goes out, making the state CLOSING, when the app next waits in
# receive(), so every message that arrived before reaches the app and its answers go out
# before the close (RFC 6455 5.5.1: an endpoint may delay its close frame until its current
# message is sent). FAIL_DELAY bounds the wait for an app that never reads; an app's own
# websocket.close carries out the pending close instead of its own. The keepalive stops when
# the flag is set (no ping timeout may replace the peer's close with 1011). The flag is cleared
# before the state leaves OPEN: by carrying the close out, or by connection_lost, which first
# takes the peer's code from it (RFC 6455 7.1.5).
#
# The app sees exactly one websocket.disconnect, queued after the messages already received;
# once it has been read, receive() keeps returning it.
# (The numbers are the core's: WsConn, the per-message path, tests them too.)
HANDSHAKE, RESPONSE, OPEN, CLOSING, CLOSED = WS_HANDSHAKE, WS_RESPONSE, WS_OPEN, WS_CLOSING, WS_CLOSED

STATE_NAMES = {
    HANDSHAKE: "HANDSHAKE",
    RESPONSE: "RESPONSE",
    OPEN: "OPEN",
    CLOSING: "CLOSING",
    CLOSED: "CLOSED",
}

#: state -> the states it may move to (the table above)
_NEXT: dict[int, frozenset[int]] = {
    HANDSHAKE: frozenset((OPEN, RESPONSE, CLOSED)),
    RESPONSE: frozenset((CLOSED,)),
    OPEN: frozenset((CLOSING, CLOSED)),
    CLOSING: frozenset((CLOSED,)),
    CLOSED: frozenset(),
}

#: Whether _set_state checks each change against _NEXT (read at every change, so a test can
#: turn it on).
CHECK_TRANSITIONS = DEBUG or os.environ.get("FASTASGI_DEBUG") == "1"


def _ws_extensions(http_scope: dict) -> dict:
    """The websocket scope's extensions: the Denial Response, and the connection's tls
    extension when it has one (built once per connection by the HTTP protocol)."""
    extensions: dict = {"websocket.http.response": {}}
    tls = (http_scope.get("extensions") or {}).get("tls")
    if tls is not None:
        extensions["tls"] = tls
    return extensions


class _Settings:
    """The websocket settings of a ``Config``, read once at start-up."""

    __slots__ = (
        "deflate",
        "deflate_level",
        "max_queue",
        "max_size",
        "ping_interval",
        "ping_timeout",
        "reset_contextvars",
        "resume_at",
    )

    def __init__(self, config: Any) -> None:
        self.max_size: int | None = config.ws_max_size
        self.max_queue: int = max(1, int(config.ws_max_queue))
        # Reading resumes once the app has drained the queue to half of it, so a fast client
        # does not make the transport flip between paused and reading on every message.
        self.resume_at: int = self.max_queue // 2
        self.ping_interval: float | None = config.ws_ping_interval or None
        self.ping_timeout: float | None = config.ws_ping_timeout or None
        self.deflate: bool = bool(config.ws_per_message_deflate)
        self.deflate_level: int = config.ws_per_message_deflate_level
        self.reset_contextvars: bool = bool(config.reset_contextvars)


# permessage-deflate: the settings uvicorn serves with (those of the websockets package):
# 4 KiB windows both ways and memLevel 5 keep a connection's zlib state near 64 KiB instead of
# the 320 KiB of zlib's defaults, for a small loss of compression ratio. The level is
# --ws-per-message-deflate-level (zlib's default, 6, unless told).
DEFLATE_WINDOW_BITS = 12
DEFLATE_MEM_LEVEL = 5


def create_ws_upgrade(config: Any) -> Callable[[Any, asyncio.Transport, dict, bytes], asyncio.Protocol]:
    """Return the ``ws_upgrade`` hook of ``ServerContext`` for these settings.

    ``config`` supplies ``ws_max_size``, ``ws_max_queue``, ``ws_ping_interval``,
    ``ws_ping_timeout`` and ``ws_per_message_deflate`` (uvicorn's names and meanings), and
    ``ws_per_message_deflate_level``. The default response headers (Server, Date,
    ``--header``) come from the ``ServerContext``.
    """
    settings = _Settings(config)

    def ws_upgrade(ctx: Any, transport: asyncio.Transport, scope: dict, leftover: bytes) -> asyncio.Protocol:
        # The HTTP protocol calls connection_made() and data_received(leftover) itself.
        return WebSocketProtocol(ctx, settings, scope)

    return ws_upgrade


def _check_headers(headers: Any, what: str) -> list[tuple[bytes, bytes]]:
    checked = []
    for header in headers:
        name, value = header
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise TypeError(f"{what} headers must be (bytes, bytes) pairs, got {header!r}")
        try:
            check_header(name, value)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc} in {what}") from None
        checked.append((name, value))
    return checked


def _subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The Sec-WebSocket-Protocol values the client offered, in order (RFC 6455 4.1)."""
    offered = []
    for name, value in headers:
        if name.lower() == b"sec-websocket-protocol":
            for token in value.decode("latin-1").split(","):
                token = token.strip()
                if token:
                    offered.append(token)
    return offered


class WebSocketProtocol(WsConn, asyncio.Protocol):
    """One upgraded connection: the handshake, then frames, for one ASGI app call.

    The per-message path (data_received for an open connection, receive(), send() of a
    message, the write batching, reading flow control) is the compiled base class ``WsConn``
    (``_http/wsconn.pxi``); its attributes (state, transport, loop, codec, _queue, _waiters,
    _disconnect, _failure, _pending, _read_paused, _write_paused, _app_busy, ...) are the
    ones this class reads and sets.
    """

    def __init__(self, ctx: Any, settings: _Settings, http_scope: dict) -> None:
        self.ctx = ctx
        self.loop = ctx.loop
        self.settings = settings
        self.max_queue = settings.max_queue
        self.resume_at = settings.resume_at

        headers = http_scope["headers"]
        http_version = http_scope.get("http_version", "1.1")
        asgi = http_scope.get("asgi") or {}
        self.scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": asgi.get("version", "3.0"), "spec_version": SPEC_VERSION},
            "http_version": http_version,
            "scheme": "wss" if http_scope.get("scheme") == "https" else "ws",
            "server": http_scope.get("server"),
            "client": http_scope.get("client"),
            "root_path": http_scope.get("root_path", ""),
            "path": http_scope["path"],
            "raw_path": http_scope.get("raw_path"),
            "query_string": http_scope.get("query_string", b""),
            "headers": headers,
            "subprotocols": _subprotocols(headers),
            "extensions": _ws_extensions(http_scope),
        }
        if "state" in http_scope:
            self.scope["state"] = http_scope["state"]

        # Check the handshake request before the app is called (RFC 6455 4.2.1). On failure,
        # connection_made() answers with this response and the app never runs.
        self._reject: tuple[int, bytes, bytes] | None = None
        self._accept_headers = b""
        # The core hands over only GET requests in HTTP/1.1 (RFC 6455 4.1; an HTTP/1.0 Upgrade
        # is served as plain HTTP, RFC 9110 7.8), so the headers are what is left to check.
        deflate = None
        try:
            accept_key, negotiated = check_request(
                headers,
                settings.deflate,
                server_max_window_bits=DEFLATE_WINDOW_BITS,
                client_max_window_bits=DEFLATE_WINDOW_BITS,
            )
        except HandshakeError as exc:
            # 400, or 426 with the version we speak (RFC 6455 4.4)
            self._reject = (
                exc.status,
                f"Failed to open a WebSocket connection: {exc}.\n".encode(),
                exc.extra,
            )
        else:
            accept = b"sec-websocket-accept: " + accept_key.encode("ascii") + b"\r\n"
            if negotiated is not None:
                accept += b"sec-websocket-extensions: " + negotiated.response.encode("ascii") + b"\r\n"
                # the codec's parameters: the client's side, then ours (RFC 7692 7.1)
                deflate = (
                    negotiated.client_no_context_takeover,
                    negotiated.server_no_context_takeover,
                    negotiated.client_max_window_bits,
                    negotiated.server_max_window_bits,
                    settings.deflate_level,
                    DEFLATE_MEM_LEVEL,
                )
            self._accept_headers = accept
        self.codec = WsCodec(settings.max_size, deflate)

        # Messages for the app (WsConn._queue; receive() parks one waiter when it is empty);
        # the handshake's early bytes until the app accepts.
        self._early: list[bytes] = []
        self._early_size = 0
        # The close pending flag (see the states): WsConn._failure, (peer_closed, code, reason)
        # while set, and the FAIL_DELAY timer that bounds it.
        self._fail_handle: asyncio.TimerHandle | None = None
        self._close_rcvd = False

        # Write flow control: send() waits on this while the transport is paused.
        self._drain: asyncio.Future | None = None

        self._task: asyncio.Task | None = None
        self._lost = False
        self._accepted = False
        self._app_closed = False
        self._ping_handle: asyncio.TimerHandle | None = None
        self._pong_handle: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._close_handle: asyncio.TimerHandle | None = None

        # Denial response (websocket.http.response.*) in progress.
        self._response_head: bytes | None = None
        self._response_status = 0
        self._response_has_length = False
        self._response_has_connection = False
        self._response_chunked = False
        self._response_sent = False

    # State (the table at the top of this module)

    def _set_state(self, new: int) -> None:
        """The one place ``state`` changes. Called on the two or three changes of a connection's
        life, never per message: the compiled per-message path only reads the int."""
        if CHECK_TRANSITIONS:
            old = self.state
            if new not in _NEXT[old]:
                raise AssertionError(
                    f"WebSocketProtocol: illegal transition {STATE_NAMES[old]} -> {STATE_NAMES.get(new, new)}"
                )
            if self._failure is not None:
                # The pending close must be carried out or dropped before leaving OPEN, or a
                # close code would be lost (or sent twice).
                raise AssertionError(
                    f"WebSocketProtocol: {STATE_NAMES[old]} -> {STATE_NAMES[new]} with a close pending"
                )
        self.state = new

    @property
    def state_name(self) -> str:
        """The connection state's name (for tests and debugging)."""
        return STATE_NAMES[self.state]

    @property
    def close_pending(self) -> bool:
        """A peer close or protocol error waits for the app to finish with the messages before
        it (the flag described with the states)."""
        return self._failure is not None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        ctx = self.ctx
        ctx.connections.add(self)
        if self._reject is not None:
            status, body, extra = self._reject
            self._write_plain_response(status, body, extra)
            self._end_exchange()
            return
        if ctx.shutting_down:
            # Upgraded after shutdown() was sent to every connection: this one would be missed.
            self._write_plain_response(503)
            self._end_exchange()
            return
        self._queue.append({"type": "websocket.connect"})
        if self.settings.reset_contextvars:
            # --reset-contextvars: the app starts from an empty context (the Task copies it)
            self._task = contextvars.Context().run(self.loop.create_task, self._run_asgi())
        else:
            self._task = self.loop.create_task(self._run_asgi())
        # The HTTP protocol may have paused reading while it handled the upgrade request; a
        # closed socket must be seen during the handshake, so read (early data is buffered).
        if not transport.is_reading():  # type: ignore[attr-defined]
            transport.resume_reading()  # type: ignore[attr-defined]

    # data_received is WsConn's; bytes before the app accepted come here.

    def _early_data(self, data: bytes) -> None:
        self._early.append(data)
        self._early_size += len(data)
        if self._early_size > EARLY_DATA_LIMIT:
            self._pause_reading()

    def eof_received(self) -> bool | None:
        # Returning None lets the transport close itself: every close path of the protocol
        # ends with closing the TCP connection, and nothing is written after the peer's EOF.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        metrics_ws(closed=1)
        if self._accepted:
            logger.info("connection closed")
        self._lost = True
        # The pending close is read, then dropped with its timer, before the state leaves OPEN.
        failure = self._failure
        self._cancel_timers()
        if self.state != CLOSED:  # CLOSED already after a plain HTTP answer
            self._set_state(CLOSED)
        self.ctx.connections.discard(self)
        self.resume_writing()  # a send() waiting for the drain goes on, to find the socket closed
        if failure is not None and failure[0]:
            # The peer's close frame arrived and was waiting for the app: RFC 6455 7.1.5, the
            # connection's close code is that frame's, even though our answer never went out.
            self._queue_disconnect(failure[1], failure[2])
        else:
            # RFC 6455 7.1.5: 1006 when the connection closed without a close frame.
            self._queue_disconnect(1006, "")

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        drain = self._drain
        if drain is not None:
            self._drain = None
            if not drain.done():
                drain.set_result(None)

    # Server hooks (members of ctx.connections)

    def shutdown(self) -> None:
        """Server shutdown: close an open websocket with 1012 (Service Restart) and give the app
        its websocket.disconnect; refuse a pending handshake with 503."""
        state = self.state
        if state == OPEN:
            self._start_close(1012, "")
        elif state == HANDSHAKE:
            # RFC 9110 15.6.4: 503 is the status for a server that is going away.
            self._write_plain_response(503)
            self._end_exchange(1012)
        # RESPONSE finishes by itself; CLOSING already has its close timer.

    def abort(self) -> None:
        """Close the connection now and cancel the app if it is still running."""
        if self.transport is not None:
            self.transport.abort()
        task = self._task
        if task is not None and not task.done():
            task.cancel()

    # Incoming frames

    def _control(self, event: tuple) -> None:
        """A control frame or a protocol error from WsCodec.feed (see _http/ws.pxi); the
        messages are delivered by WsConn."""
        opcode = event[0]
        if opcode == WS_PING:
            # RFC 6455 5.5.2: answer with a pong carrying the ping's payload; after our close
            # frame nothing more is sent (5.5.1).
            if self.state == OPEN:
                self._write(self.codec.control(WS_PONG, event[1]))
        elif opcode == WS_PONG:
            if self._ping_payload is not None and event[1] == self._ping_payload:
                self._ping_payload = None
                if self._pong_handle is not None:
                    self._pong_handle.cancel()
                    self._pong_handle = None
        elif opcode == WS_CLOSE:
            self._close_received(event[1], event[2])
        elif opcode == WS_ERROR:
            self._protocol_error(event[1], event[2])

    def _close_received(self, code: int, reason: str) -> None:
        self._close_rcvd = True
        if self.state == OPEN and (self._app_busy or self._queue):
            self._defer(True, code, reason)
            return
        self._answer_close(code, reason)

    def _answer_close(self, code: int, reason: str) -> None:
        if self.state == OPEN:
            # The peer started the closing handshake: echo its code (RFC 6455 5.5.1; an empty
            # close frame for one without a code), then close the TCP connection (7.1.1).
            self._cancel_failure()
            self._set_state(CLOSING)
            self._stop_keepalive()
            self._write(self.codec.close_frame(code))
            self._queue_disconnect(code, reason)
        self._write_pending()
        self._close_transport()

    def _protocol_error(self, code: int, reason: str) -> None:
        """The peer broke a rule (1002), sent invalid UTF-8 (1007) or too big a message (1009)."""
        if self.state != OPEN:
            self._close_transport()
        elif self._app_busy or self._queue:
            self._defer(False, code, reason)
        else:
            self._fail(code, reason)

    def _defer(self, peer_closed: bool, code: int, reason: str) -> None:
        """Messages before this close are still with the app: close once it is done. Sets the
        close pending flag (see the states), which only an open connection can have."""
        if CHECK_TRANSITIONS and (self.state != OPEN or self._failure is not None):
            raise AssertionError(
                f"WebSocketProtocol: close pending set in {STATE_NAMES[self.state]}, or twice"
            )
        self._failure = (peer_closed, code, reason)
        # The connection is closing already: a ping timeout now must not replace this close
        # (with 1011) while the app finishes.
        self._stop_keepalive()
        self._pause_reading()
        self._fail_handle = self.loop.call_later(FAIL_DELAY, self._close_deferred)

    def _close_deferred(self) -> None:
        """Carry out the pending close: from receive() once the app is done with the messages
        before it, or from the FAIL_DELAY timer."""
        handle = self._fail_handle
        if handle is not None:
            # Called by receive(): the timer must go, or the loop would keep it, and with it
            # this connection, for FAIL_DELAY after the connection is gone.
            self._fail_handle = None
            handle.cancel()
        failure = self._failure
        if failure is not None and self.state == OPEN:
            peer_closed, code, reason = failure
            if peer_closed:
                self._answer_close(code, reason)
            else:
                self._fail(code, reason)

    def _cancel_failure(self) -> None:
        self._failure = None
        if self._fail_handle is not None:
            self._fail_handle.cancel()
            self._fail_handle = None

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7) with ``code``; the app sees it as its disconnect."""
        self._cancel_failure()
        self._set_state(CLOSING)
        self._stop_keepalive()
        self._write(self.codec.close_frame(code, reason))
        self._queue_disconnect(code, reason)
        self._write_pending()
        self._close_transport()

    # Outgoing data (queued and written by WsConn: _write, _write_pending)

    def _close_transport(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self._close_rcvd:
            # Both close frames have been exchanged: RFC 6455 7.1.1 has the server close the
            # TCP connection first. The peer sends nothing after its close frame, so there is
            # no unread data that would turn the close into a reset.
            transport.close()
            self._arm_close_timer()  # close() waits for the peer to take the buffered data
            return
        # Failing the connection while the peer may still be sending: half-close so the close
        # frame is delivered (closing with unread input would send a TCP reset and the peer
        # could lose it), keep reading and discarding until the peer closes, and give up after
        # CLOSE_TIMEOUT.
        if transport.can_write_eof():
            try:
                transport.write_eof()
            except (OSError, RuntimeError):
                transport.close()
        else:
            transport.close()
        self._resume_reading()
        self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_handle is None and not self._lost:
            self._close_handle = self.loop.call_later(CLOSE_TIMEOUT, self._close_timed_out)

    def _close_timed_out(self) -> None:
        self._close_handle = None
        if self.transport is not None:
            self.transport.abort()

    def _start_close(self, code: int, reason: str) -> None:
        """Send a close frame from OPEN and wait for the peer's (RFC 6455 7.1.2)."""
        if self._failure is not None:
            # the app closes before the pending close was carried out: that one goes out
            self._close_deferred()
            return
        self._set_state(CLOSING)
        self._stop_keepalive()
        self._write(self.codec.close_frame(code, reason))
        self._queue_disconnect(code, reason)
        self._write_pending()
        self._resume_reading()
        self._arm_close_timer()

    # Reading flow control: WsConn's _pause_reading and _resume_reading

    # Keepalive (RFC 6455 5.5.2 / 5.5.3)

    def _start_keepalive(self) -> None:
        interval = self.settings.ping_interval
        if interval is not None:
            self._ping_handle = self.loop.call_later(interval, self._send_ping)

    def _send_ping(self) -> None:
        self._ping_handle = None
        if self.state != OPEN:
            return
        settings = self.settings
        # With a timeout, a ping still unanswered is left to its pong timer; without one, each
        # interval sends a new ping (keeping NAT and proxy idle timers alive).
        if self._ping_payload is None or settings.ping_timeout is None:
            payload = os.urandom(4)
            self._ping_payload = payload
            self._write(self.codec.control(WS_PING, payload))
            if settings.ping_timeout is not None:
                self._pong_handle = self.loop.call_later(settings.ping_timeout, self._ping_timed_out)
        self._ping_handle = self.loop.call_later(settings.ping_interval, self._send_ping)  # type: ignore[arg-type]

    def _ping_timed_out(self) -> None:
        self._pong_handle = None
        if self.state != OPEN:
            return
        logger.info('%s - "WebSocket %s" keepalive ping timeout', *self._describe())
        # RFC 6455 7.4.1: 1011, the server cannot go on with this connection.
        self._fail(1011, "keepalive ping timeout")

    def _stop_keepalive(self) -> None:
        if self._ping_handle is not None:
            self._ping_handle.cancel()
            self._ping_handle = None
        if self._pong_handle is not None:
            self._pong_handle.cancel()
            self._pong_handle = None

    def _cancel_timers(self) -> None:
        self._stop_keepalive()
        if self._close_handle is not None:
            self._close_handle.cancel()
            self._close_handle = None
        self._cancel_failure()

    # The ASGI side

    async def _run_asgi(self) -> None:
        ctx = self.ctx
        # The upgrade request never started an HTTP request cycle, so it is counted here
        # (uvicorn counts it too, for --limit-max-requests).
        ctx.total_requests += 1
        ctx.active_requests += 1
        try:
            result = await ctx.app(self.scope, self.receive, self.send)
        except ClientDisconnected:
            pass  # ASGI spec 2.4: the server raised it; not an application error.
        except Exception:
            logger.exception("Exception in ASGI application")
            self._after_app_error()
        else:
            if result is not None:
                logger.error("ASGI callable should return None, but returned %r.", result)
            self._after_app_return()
        finally:
            ctx.active_requests -= 1

    def _after_app_error(self) -> None:
        state = self.state
        if state == HANDSHAKE:
            # An exception before the handshake is answered is a server-side failure, so 500
            # (RFC 9110 15.6.1), as uvicorn answers it in all of its websocket implementations
            # (run_asgi -> send_500_response). The 403 of the ASGI spec is for a deliberate
            # websocket.close before accept; using it for crashes would tell the client it is
            # forbidden when the server is broken.
            self._write_plain_response(500)
            self._end_exchange()
        elif state == RESPONSE:
            self._abandon_response()
        elif state == OPEN:
            # RFC 6455 7.4.1: 1011, the server hit an unexpected condition.
            self._start_close(1011, "")

    def _after_app_return(self) -> None:
        state = self.state
        if state == HANDSHAKE:
            logger.error("ASGI callable returned without sending handshake.")
            self._write_plain_response(500)
            self._end_exchange()
        elif state == RESPONSE:
            logger.error("ASGI callable returned without completing the websocket.http.response.")
            self._abandon_response()
        elif state == OPEN:
            # The app is done with an open socket: close it normally (ASGI: "if the application
            # dies the socket should be closed").
            self._start_close(1000, "")

    # receive(), and send() of a message on an open connection, are WsConn's.

    async def _send(self, message: dict[str, Any]) -> None:
        if self._write_paused:
            drain = self._drain
            if drain is None:
                drain = self._drain = self.loop.create_future()
            await drain
        msg_type = message["type"]
        state = self.state
        if state == OPEN:
            if msg_type == "websocket.send":
                self._send_message(message)
            elif msg_type == "websocket.close":
                self._app_closed = True
                self._start_close(*self._close_args(message))
            else:
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.send' or 'websocket.close', but got {msg_type!r}."
                )
        elif state == HANDSHAKE:
            if msg_type == "websocket.accept":
                self._accept(message)
            elif msg_type == "websocket.close":
                # ASGI spec, Close - send event: before accept, HTTP 403 and no handshake.
                logger.info('%s - "WebSocket %s" 403', *self._describe())
                self._app_closed = True
                self._write_plain_response(403)
                self._end_exchange()
            elif msg_type == "websocket.http.response.start":
                self._response_start(message)
            else:
                raise RuntimeError(
                    "Expected ASGI message 'websocket.accept', 'websocket.close' or "
                    f"'websocket.http.response.start', but got {msg_type!r}."
                )
        elif state == RESPONSE:
            if msg_type != "websocket.http.response.body":
                raise RuntimeError(
                    f"Expected ASGI message 'websocket.http.response.body', but got {msg_type!r}."
                )
            self._response_body(message)
        elif self._app_closed:
            raise RuntimeError(f"Unexpected ASGI message {msg_type!r} after sending 'websocket.close'.")
        elif msg_type != "websocket.close":
            # Closed by the peer, a protocol error, a timeout or the server: the spec asks for an
            # OSError subclass; a close after that is a no-op, as the socket is closed already.
            raise ClientDisconnected(f"WebSocket connection is closed ({msg_type} not sent).")

    @staticmethod
    def _close_args(message: dict[str, Any]) -> tuple[int, str]:
        code = message.get("code")
        reason = message.get("reason") or ""
        if code is None:
            code = 1000
        # RFC 6455 7.4: 1005, 1006 and 1015 may never be sent, only 1000-1014 and 3000-4999 are
        # sendable; 5.5: the close payload (2 bytes + reason) fits in 125 bytes.
        if not (isinstance(code, int) and (1000 <= code <= 1014 or 3000 <= code <= 4999)) or code in (
            1004,
            1005,
            1006,
        ):
            raise RuntimeError(f"Invalid WebSocket close code {code!r} in websocket.close.")
        if len(reason.encode()) > 123:
            raise RuntimeError("websocket.close reason is longer than 123 bytes (RFC 6455 5.5).")
        return code, reason

    # Handshake answers

    def _accept(self, message: dict[str, Any]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            # The client left (its EOF closed the transport) before the app accepted: the
            # 101 would go nowhere, and the app must not think the socket is open.
            raise ClientDisconnected("WebSocket connection is closed (websocket.accept not sent).")
        subprotocol = message.get("subprotocol")
        app_headers = _check_headers(message.get("headers") or (), "websocket.accept")
        for name, _ in app_headers:
            if name.lower() in _HANDSHAKE_HEADERS:
                # ASGI spec, Accept - send event: the subprotocol goes in 'subprotocol'; the
                # others are the server's part of the handshake (RFC 6455 4.2.2).
                raise RuntimeError(f"websocket.accept may not set the {name.decode()} header.")
        # Head order as on every fastasgi response (notes/WIRE.md): defaults, the app's headers,
        # then what the server adds, here the RFC 6455 4.2.2 handshake fields.
        head = [b"HTTP/1.1 101 Switching Protocols\r\n", self._header_block(app_headers)]
        head.append(b"upgrade: websocket\r\nconnection: Upgrade\r\n")
        head.append(self._accept_headers)
        if subprotocol:
            value = subprotocol.encode("latin-1")
            if not is_token(value):
                raise RuntimeError(f"Invalid subprotocol {subprotocol!r} in websocket.accept.")
            head.append(b"sec-websocket-protocol: " + value + b"\r\n")
        head.append(b"\r\n")
        transport.write(b"".join(head))
        self._set_state(OPEN)
        self._accepted = True
        # The same two lines as uvicorn, so log-based tooling keeps working.
        logger.info('%s - "WebSocket %s" [accepted]', *self._describe())
        logger.info("connection open")
        self._start_keepalive()
        early = self._early
        if early:
            self._early = []
            self._early_size = 0
            self.data_received(b"".join(early))
        if self.state == OPEN and len(self._queue) < self.settings.max_queue:
            self._resume_reading()

    def _header_block(self, app_headers: list[tuple[bytes, bytes]]) -> bytes:
        """The server's default lines (``server`` and ``date`` unless the app sent its own,
        the ``--header`` extras), then the app's headers: the order of every response."""
        names = {name.lower() for name, _ in app_headers} if app_headers else ()
        lines = [default_lines(self.ctx, b"server" in names, b"date" in names)]
        for name, value in app_headers:
            lines.append(b"%s: %s\r\n" % (name, value))
        return b"".join(lines)

    def _write_plain_response(self, status: int, body: bytes | None = None, extra: bytes = b"") -> None:
        """A response of the server's own, the same as the HTTP core's errors: the reason
        phrase (or ``body``) as a text/plain body; the connection closes after it."""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(error_response(self.ctx, status, body, extra))

    def _end_exchange(self, code: int = 1006) -> None:
        """The handshake was answered with a plain HTTP response: close the connection."""
        self._set_state(CLOSED)
        # The client never saw a websocket; for the app, the connection is simply gone.
        self._queue_disconnect(code, "")
        if self.transport is not None:
            self.transport.close()
            self._arm_close_timer()

    def _response_start(self, message: dict[str, Any]) -> None:
        status = message.get("status")
        if not isinstance(status, int) or not 200 <= status <= 599:
            # 1xx would pretend a protocol switch or an interim answer; only final statuses deny.
            raise RuntimeError(f"Invalid HTTP status {status!r} in websocket.http.response.start.")
        headers = _check_headers(message.get("headers") or (), "websocket.http.response.start")
        has_length = has_connection = False
        for name, _ in headers:
            lname = name.lower()
            if lname == b"content-length":
                has_length = True
            elif lname == b"connection":
                has_connection = True
            elif lname == b"transfer-encoding":
                # The server frames the body (below); a second framing would corrupt it.
                raise RuntimeError("websocket.http.response.start may not set transfer-encoding.")
        logger.info('%s - "WebSocket %s" %d', *self._describe(), status)
        self._set_state(RESPONSE)
        self._response_head = status_line(status) + self._header_block(headers)
        self._response_status = status
        self._response_has_length = has_length
        self._response_has_connection = has_connection

    def _response_body(self, message: dict[str, Any]) -> None:
        body = message.get("body", b"")
        more = message.get("more_body", False)
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ClientDisconnected("WebSocket connection is closed.")
        head = self._response_head
        if head is not None:
            self._response_head = None
            self._response_sent = True
            # The same framing decision as HTTP responses (the request is HTTP/1.1, and
            # transfer-encoding from the app was refused above); the connection closes after
            # a denial response.
            framing = response_framing(
                self._response_status, self._response_has_length, False, not more, False
            )
            if framing == Framing.FRAMING_ADD_CHUNKED:
                self._response_chunked = True
                head += b"transfer-encoding: chunked\r\n"
            elif framing == Framing.FRAMING_ADD_LENGTH:
                head += b"content-length: %d\r\n" % len(body)
            if not self._response_has_connection:
                head += b"connection: close\r\n"
            out = head + b"\r\n"
        else:
            out = b""
        if self._response_chunked:
            if body:
                out += b"%x\r\n%s\r\n" % (len(body), body)
            if not more:
                out += b"0\r\n\r\n"
        else:
            out += body
        if out:
            transport.write(out)
        if not more:
            self._end_exchange()

    def _abandon_response(self) -> None:
        if not self._response_sent:
            self._write_plain_response(500)
        self._end_exchange()

    # Helpers

    def _queue_disconnect(self, code: int, reason: str) -> None:
        if self._disconnect is not None:
            return
        message = {"type": "websocket.disconnect", "code": code, "reason": reason}
        self._disconnect = message
        # Queued after the messages already received; every receive() that waits is woken, and
        # once the queue is empty receive() returns it, as often as it is called.
        self._queue.append(message)
        waiters = self._waiters
        if waiters:
            self._waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def _describe(self) -> tuple[str, str]:
        scope = self.scope
        client = scope.get("client")
        where = f"{client[0]}:{client[1]}" if client else "-"
        path = scope["path"]
        query = scope.get("query_string")
        if query:
            path += "?" + query.decode("latin-1")
        return where, path
