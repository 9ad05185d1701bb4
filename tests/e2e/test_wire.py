"""Wire cases: bytes in, exact bytes out (STYLE.md 13, WIRE.md).

Two tables drive the server started with ``--no-date-header``, each case delivered whole
and byte by byte:

- GOOD: well-formed exchanges. Each case ends with a request carrying ``Connection: close``
  (or is closed by the server), so the expected output is everything up to the close.
- BAD: malformed requests and smuggling attempts. Each is followed on the same connection by
  ``GET /mark/<token>``; the server must answer the exact error, close, and never run that
  second request.
"""

from http import HTTPStatus

import pytest

from conftest import RawConn, error_response, exchange, http_get, registry

H = b"Host: t\r\n"
CLOSE_REQ = b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
SERVER = b"server: fastasgi\r\n"


def ok(body: bytes = b"hello", ctype: bytes = b"text/plain", extra: bytes = b"",
       close: bool = False, keep_alive: bool = False) -> bytes:
    """A 200 whose first body message was final: the server adds content-length, then the
    connection header it decided on."""
    return (
        b"HTTP/1.1 200 OK\r\n" + SERVER
        + (b"content-type: " + ctype + b"\r\n" if ctype else b"")
        + extra
        + b"content-length: %d\r\n" % len(body)
        + (b"connection: close\r\n" if close else b"")
        + (b"connection: keep-alive\r\n" if keep_alive else b"")
        + b"\r\n" + body
    )


CLOSE_RESP = ok(close=True)
STREAM_HEAD = b"HTTP/1.1 200 OK\r\n" + SERVER + b"content-type: text/plain\r\n"
CHUNKED = b"transfer-encoding: chunked\r\n"


def status(code: int, headers: bytes = b"", body: bytes = b"") -> bytes:
    reason = HTTPStatus(code).phrase.encode() if code in HTTPStatus._value2member_map_ else b""
    return b"HTTP/1.1 %d %s\r\n" % (code, reason) + SERVER + headers + b"\r\n" + body


GOOD = [
    # ---- framing the server adds
    ("get_plain", b"GET /plain HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ, ok() + CLOSE_RESP),
    ("get_plain_query", b"GET /plain?a=1&b=%20 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ, ok() + CLOSE_RESP),
    ("get_empty_body_gets_cl0", b"GET /empty HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ, ok(b"") + CLOSE_RESP),
    ("stream_chunked", b"GET /stream HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     STREAM_HEAD + CHUNKED + b"\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n" + CLOSE_RESP),
    ("stream_final_with_data", b"GET /stream-last HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     STREAM_HEAD + CHUNKED + b"\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n" + CLOSE_RESP),
    ("app_content_length_kept", b"GET /cl HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     STREAM_HEAD + b"content-length: 5\r\n\r\nhello" + CLOSE_RESP),
    ("app_header_order_kept", b"GET /headers-order HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     b"HTTP/1.1 200 OK\r\n" + SERVER + b"x-first: 1\r\ncontent-type: text/plain\r\nx-dup: a\r\nx-dup: b\r\n"
     b"content-length: 2\r\n\r\nok" + CLOSE_RESP),
    ("app_own_server_and_date", b"GET /own-server-date HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     b"HTTP/1.1 200 OK\r\nserver: myapp\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
     b"content-length: 3\r\n\r\nown" + CLOSE_RESP),
    ("not_found_from_app", b"GET /nope HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     b"HTTP/1.1 404 Not Found\r\n" + SERVER + b"content-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found"
     + CLOSE_RESP),
    ("options_asterisk", b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     b"HTTP/1.1 404 Not Found\r\n" + SERVER + b"content-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found"
     + CLOSE_RESP),
    # ---- status codes and bodiless responses
    ("status_201", b"GET /status/201 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     status(201, b"content-length: 0\r\n") + CLOSE_RESP),
    ("status_418", b"GET /status/418 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     status(418, b"content-length: 0\r\n") + CLOSE_RESP),
    ("status_unknown_599_empty_reason", b"GET /status/599 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     b"HTTP/1.1 599 \r\n" + SERVER + b"content-length: 0\r\n\r\n" + CLOSE_RESP),
    ("status_204_no_framing", b"GET /status/204 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     status(204) + CLOSE_RESP),
    ("status_204_app_body_dropped", b"GET /status/204?body=junk HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     status(204) + CLOSE_RESP),
    ("status_304_no_framing", b"GET /status/304 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     status(304, b'etag: "abc"\r\n') + CLOSE_RESP),
    ("status_304_app_body_dropped", b"GET /status/304?body=junk HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     status(304, b'etag: "abc"\r\n') + CLOSE_RESP),
    ("head_gets_cl_no_body", b"HEAD /plain HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     STREAM_HEAD + b"content-length: 5\r\n\r\n" + CLOSE_RESP),
    ("head_app_cl_no_body", b"HEAD /cl HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     STREAM_HEAD + b"content-length: 5\r\n\r\n" + CLOSE_RESP),
    # ---- request bodies
    ("post_content_length", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\nhello world" + CLOSE_REQ,
     ok(b"hello world", b"application/octet-stream") + CLOSE_RESP),
    ("post_chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + CLOSE_REQ,
     ok(b"hello world", b"application/octet-stream") + CLOSE_RESP),
    ("post_chunked_ext_and_trailer", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
     b"5;name=val\r\nhello\r\nB\r\n 0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" + CLOSE_REQ,
     ok(b"hello 0123456789", b"application/octet-stream") + CLOSE_RESP),
    ("post_empty_chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + CLOSE_REQ,
     ok(b"", b"application/octet-stream") + CLOSE_RESP),
    ("post_cl_zero", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n" + CLOSE_REQ,
     ok(b"", b"application/octet-stream") + CLOSE_RESP),
    # ---- keep-alive and Connection: close (RFC 9112 9.3)
    ("client_connection_close", b"GET /plain HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"
     b"GET /plain HTTP/1.1\r\n" + H + b"\r\n", CLOSE_RESP),
    ("client_connection_close_token_list", b"GET /plain HTTP/1.1\r\n" + H + b"Connection: foo, close\r\n\r\n"
     b"GET /plain HTTP/1.1\r\n" + H + b"\r\n", CLOSE_RESP),
    ("app_connection_close", b"GET /connclose HTTP/1.1\r\n" + H + b"\r\n" + b"GET /plain HTTP/1.1\r\n" + H + b"\r\n",
     b"HTTP/1.1 200 OK\r\n" + SERVER + b"content-type: text/plain\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye"),
    ("http10_close_delimited_cl", b"GET /plain HTTP/1.0\r\n\r\n", CLOSE_RESP),
    ("http10_stream_raw_body", b"GET /stream HTTP/1.0\r\n\r\n",
     STREAM_HEAD + b"connection: close\r\n\r\nabcde"),
    ("http10_keep_alive", b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + CLOSE_REQ,
     ok(keep_alive=True) + CLOSE_RESP),
    ("http10_keep_alive_twice", b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
     b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + b"GET /plain HTTP/1.0\r\n\r\n",
     2 * ok(keep_alive=True) + CLOSE_RESP),
    ("http10_keep_alive_streamed_must_close", b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + CLOSE_REQ,
     STREAM_HEAD + b"connection: close\r\n\r\nabcde"),
    ("http10_post_cl", b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
     ok(b"abc", b"application/octet-stream", close=True)),
    # ---- pipelining: answered strictly in order
    ("pipeline_three", b"GET /plain HTTP/1.1\r\n" + H + b"\r\n" + b"GET /stream HTTP/1.1\r\n" + H + b"\r\n"
     + b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi" + CLOSE_REQ,
     ok() + STREAM_HEAD + CHUNKED + b"\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
     + ok(b"hi", b"application/octet-stream") + CLOSE_RESP),
    ("pipeline_slow_first_not_overtaken", b"GET /sleep?t=0.3 HTTP/1.1\r\n" + H + b"\r\n"
     + b"GET /plain HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
     ok(b"slept") + ok() + CLOSE_RESP),
    ("pipeline_chunked_bodies", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
     + b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n" + CLOSE_REQ,
     ok(b"a", b"application/octet-stream") + ok(b"b", b"application/octet-stream") + CLOSE_RESP),
    # ---- upgrades the server does not support are plain HTTP
    ("upgrade_h2c_served_as_http", b"GET /plain HTTP/1.1\r\n" + H
     + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
     + CLOSE_REQ, ok() + CLOSE_RESP),
    ("upgrade_unknown_with_body", b"POST /echo HTTP/1.1\r\n" + H
     + b"Connection: upgrade\r\nUpgrade: foo/2\r\nContent-Length: 5\r\n\r\nhello" + CLOSE_REQ,
     ok(b"hello", b"application/octet-stream") + CLOSE_RESP),
]

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

BIG = 70_000  # beyond the default 64 KiB head limit
MANY = b"".join(b"X-H%d: v\r\n" % i for i in range(101))  # with Host: 102 fields
ENOUGH = b"".join(b"X-H%d: v\r\n" % i for i in range(99))  # with Host: 100 fields

BAD = [
    # ---- framing conflicts (request smuggling)
    ("cl_and_te", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te_and_cl", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("duplicate_cl_differing", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello", 400),
    ("cl_list_differing", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 40\r\n\r\nhello", 400),
    ("cl_not_a_number", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello", 400),
    ("cl_negative", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\nhello", 400),
    ("cl_plus_sign", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl_overflow", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nhello", 400),
    ("bad_chunk_size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    ("negative_chunk_size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_overflow", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_size_trailing_space", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk_data_longer_than_size", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n", 400),
    ("chunk_size_bare_lf", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400),
    ("chunk_data_bare_lf", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400),
    # ---- line endings
    ("request_line_bare_lf", b"GET /plain HTTP/1.1\n" + H + b"\r\n", 400),
    ("header_bare_lf", b"GET /plain HTTP/1.1\r\nHost: t\nX-A: b\r\n\r\n", 400),
    ("head_end_bare_lf", b"GET /plain HTTP/1.1\r\n" + H + b"\n", 400),
    ("request_line_bare_cr", b"GET /plain HTTP/1.1\rHost: t\r\n\r\n", 400),
    ("obs_fold_space", b"GET /plain HTTP/1.1\r\n" + H + b"X-Folded: a\r\n b\r\n\r\n", 400),
    ("obs_fold_tab", b"GET /plain HTTP/1.1\r\n" + H + b"X-Folded: a\r\n\tb\r\n\r\n", 400),
    ("whitespace_before_first_header", b"GET /plain HTTP/1.1\r\n Host: t\r\n\r\n", 400),
    # ---- forbidden bytes
    ("nul_in_header_value", b"GET /plain HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("nul_in_header_name", b"GET /plain HTTP/1.1\r\n" + H + b"X-\x00A: a\r\n\r\n", 400),
    ("cr_in_header_value", b"GET /plain HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    ("nul_in_target", b"GET /pla\x00in HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("space_before_colon", b"GET /plain HTTP/1.1\r\nHost : t\r\n\r\n", 400),
    ("space_in_header_name", b"GET /plain HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", 400),
    ("header_without_colon", b"GET /plain HTTP/1.1\r\n" + H + b"NoColonHere\r\n\r\n", 400),
    ("te_space_before_colon", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    # ---- request line
    ("method_not_a_token", b"G@T /plain HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method_with_paren", b"GE(T /plain HTTP/1.1\r\n" + H + b"\r\n", 400),
    # no version at all: llhttp reads an HTTP/0.9 simple request, major version 0 -> 505
    ("http_0_9_request_line", b"GET /plain\r\n" + H + b"\r\n", 505),
    ("version_not_http", b"GET /plain HTTX/1.1\r\n" + H + b"\r\n", 400),
    ("version_lowercase", b"GET /plain http/1.1\r\n" + H + b"\r\n", 400),
    ("space_in_target", b"GET /pl ain HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("http_2_0", b"GET /plain HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http_3_0", b"GET /plain HTTP/3.0\r\n" + H + b"\r\n", 505),
    # ---- unsupported transfer codings (RFC 9112 6.1)
    ("te_gzip", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nhello", 501),
    ("te_gzip_chunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te_xchunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    # ---- limits
    ("huge_target_414", b"GET /" + b"a" * BIG + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("huge_header_431", b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * BIG + b"\r\n\r\n", 431),
    ("head_over_limit_431", b"GET /plain HTTP/1.1\r\n" + H + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(70)) + b"\r\n", 431),
    ("too_many_headers_431", b"GET /plain HTTP/1.1\r\n" + H + MANY + b"\r\n", 431),
    # ---- a good request first: it is answered, then the bad one closes the connection
    ("good_then_bad", b"GET /plain HTTP/1.1\r\n" + H + b"\r\n" + b"GET /plain HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
]


def smuggled(tok: str) -> bytes:
    return b"GET /mark/%s HTTP/1.1\r\nHost: t\r\n\r\n" % tok.encode()


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
        core.port, b"GET /plain HTTP/1.1\r\n" + H + b"X-Long: " + long_value + b"\r\n\r\n" + CLOSE_REQ, mode)
    assert received == ok() + CLOSE_RESP


LIMIT_FLAGS = ("--no-date-header", "--limit-request-head-size", "2048", "--limit-request-fields", "10")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,code", [
    ("head_size_flag_431", b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 2100 + b"\r\n\r\n", 431),
    ("target_over_head_size_414", b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("fields_flag_431", b"GET /plain HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(10)) + b"\r\n", 431),
], ids=["head_size_flag_431", "target_over_head_size_414", "fields_flag_431"])
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
        srv.port, b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 1500 + b"\r\n\r\n" + CLOSE_REQ, mode)
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
    from conftest import IMF_FIXDATE
    srv = serve("core_app:app", "--header", "x-extra:1")
    received, closed = exchange(srv.port, b"G@T / HTTP/1.1\r\n\r\n")
    assert closed
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 400 Bad Request"
    assert lines[1] == b"server: fastasgi"
    assert lines[2].startswith(b"date: ") and IMF_FIXDATE.fullmatch(lines[2][6:])
    assert lines[3:] == [b"x-extra: 1", b"content-type: text/plain; charset=utf-8",
                         b"content-length: 11", b"connection: close"]
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
    req = (b"GET /plain HTTP/1.1\r\n" + H + b"Connection: Upgrade\r\nUpgrade: websocket\r\n"
           b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    received, closed = exchange(srv.port, req + CLOSE_REQ, mode)
    assert received == ok() + CLOSE_RESP
    assert closed
