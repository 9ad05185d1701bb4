"""Wire cases: bytes in, exact bytes out (STYLE.md 12, WIRE.md), against the real server.

The tables (GOOD, BAD, LIMITS) live in tests/support/wire_cases.py, shared with the
in-process suite. Here they drive the server started with ``--no-date-header``, each case
delivered whole and byte by byte over loopback:

- GOOD: well-formed exchanges. Each case ends with a request carrying ``Connection: close``
  (or is closed by the server), so the expected output is everything up to the close.
- BAD: malformed requests and smuggling attempts. Each is followed on the same connection by
  ``GET /mark/<token>``; the server must answer the exact error, close, and never run that
  second request.
"""

import pytest

from support.client import IMF_FIXDATE, RawConn, exchange, http_get, registry
from support.wire_cases import (
    BAD,
    CLOSE_REQ,
    CLOSE_RESP,
    ENOUGH,
    GOOD,
    LIMIT_FLAGS,
    LIMITS,
    SERVER,
    H,
    error_response,
    ok,
    smuggled,
)

MODES = ["whole", "bytewise"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,expected", GOOD, ids=[c[0] for c in GOOD])
def test_good(core, name, request_bytes, expected, mode):
    received, closed = exchange(core.port, request_bytes, mode)
    assert received == expected, received[:600]
    assert closed, "server did not close after the last response"


@pytest.mark.parametrize("mode", MODES)
def test_head_of_streamed_body(core, mode):
    """HEAD: headers only even when the app streams (WIRE.md); the connection stays usable."""
    received, closed = exchange(core.port, b"HEAD /stream-last HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ, mode)
    assert closed
    head, sep, rest = received.partition(b"\r\n\r\n")
    assert sep and head.startswith(b"HTTP/1.1 200 OK\r\n" + SERVER + b"content-type: text/plain\r\n")
    assert b"content-length" not in head.lower(), "server cannot know the length of a streamed body"
    assert rest == CLOSE_RESP, "body bytes were sent for HEAD"


# --------------------------------------------------------------------------- bad requests


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,code", BAD, ids=[c[0] for c in BAD])
def test_bad(core, token, name, request_bytes, code, mode):
    expected = error_response(code)
    if name == "good_then_bad":
        expected = ok() + expected
    received, closed = exchange(core.port, request_bytes + smuggled(token), mode)
    assert received == expected, received[:400]
    assert closed, "connection not closed after the error"
    assert registry(core.port, token) == [], "the request after the bad one was processed"


@pytest.mark.parametrize("mode", MODES)
def test_te_chunked_not_last(core, token, mode):
    """RFC 9112 6.3 says 400 when chunked is not the final coding of a request; WIRE.md says
    501 for any coding other than chunked. Either way: an error, a close, nothing smuggled."""
    req = b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n"
    received, closed = exchange(core.port, req + smuggled(token), mode)
    assert received in (error_response(400), error_response(501))
    assert closed
    assert registry(core.port, token) == []


@pytest.mark.parametrize("mode", MODES)
def test_limits_boundary_accepted(core, mode):
    """100 header fields and a head just under 64 KiB are within the defaults."""
    received, _ = exchange(core.port, b"GET /plain HTTP/1.1\r\n" + H + ENOUGH + b"\r\n" + CLOSE_REQ, mode)
    assert received == ok() + CLOSE_RESP
    long_value = b"v" * 60_000
    received, _ = exchange(
        core.port, b"GET /plain HTTP/1.1\r\n" + H + b"X-Long: " + long_value + b"\r\n\r\n" + CLOSE_REQ, mode
    )
    assert received == ok() + CLOSE_RESP


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,code", LIMITS, ids=[c[0] for c in LIMITS])
def test_limit_flags(serve, token, name, request_bytes, code, mode):
    srv = serve("core_app:app", *LIMIT_FLAGS)
    received, closed = exchange(srv.port, request_bytes + smuggled(token), mode)
    assert received == error_response(code)
    assert closed
    assert registry(srv.port, token) == []


@pytest.mark.parametrize("mode", MODES)
def test_limit_flags_within(serve, mode):
    srv = serve("core_app:app", *LIMIT_FLAGS)
    ten = b"".join(b"X-H%d: v\r\n" % i for i in range(9))  # + Host = 10 fields
    received, _ = exchange(srv.port, b"GET /plain HTTP/1.1\r\n" + H + ten + b"\r\n" + CLOSE_REQ, mode)
    assert received == ok() + CLOSE_RESP
    received, _ = exchange(
        srv.port, b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 1500 + b"\r\n\r\n" + CLOSE_REQ, mode
    )
    assert received == ok() + CLOSE_RESP


def test_uvicorn_alias_for_head_size(serve, token):
    srv = serve("core_app:app", "--no-date-header", "--h11-max-incomplete-event-size", "2048")
    req = b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 2100 + b"\r\n\r\n"
    received, closed = exchange(srv.port, req + smuggled(token))
    assert received == error_response(431)
    assert closed
    assert http_get(srv.port, "/plain").body == b"hello"


def test_error_response_carries_date_and_extras(serve):
    """Server-made errors have the same Server/Date/--header prefix as app responses."""
    srv = serve("core_app:app", "--header", "x-extra:1")
    received, closed = exchange(srv.port, b"G@T / HTTP/1.1\r\n\r\n")
    assert closed
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 400 Bad Request"
    assert lines[1] == b"server: fastasgi"
    assert lines[2].startswith(b"date: ") and IMF_FIXDATE.fullmatch(lines[2][6:])
    assert lines[3:] == [
        b"x-extra: 1",
        b"content-type: text/plain; charset=utf-8",
        b"content-length: 11",
        b"connection: close",
    ]
    assert body == b"Bad Request"


def test_server_still_serves_after_bad_requests(core):
    for _, req, _ in BAD[:5]:
        exchange(core.port, req)
    with RawConn(core.port) as c:
        for _ in range(3):
            assert c.request(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n").body == b"hello"


@pytest.mark.parametrize("mode", MODES)
def test_websocket_upgrade_with_ws_none_is_plain_http(serve, mode):
    """WIRE.md: with --ws none a WebSocket upgrade request is served as plain HTTP."""
    srv = serve("core_app:app", "--no-date-header", "--ws", "none")
    req = (
        b"GET /plain HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    received, closed = exchange(srv.port, req + CLOSE_REQ, mode)
    assert received == ok() + CLOSE_RESP
    assert closed
