"""The wire tables: bytes in, exact bytes out (STYLE.md 12, WIRE.md).

One table of cases drives both suites: tests/e2e/test_wire.py sends each case to a real
server started with ``--no-date-header`` (whole and byte by byte over loopback), and
tests/unit/test_wire_inproc.py feeds the same bytes to the protocol in-process (whole, byte
by byte, and split in two at every point). Both serve tests/apps/core_app.py.

- GOOD: well-formed exchanges. Each case ends with a request carrying ``Connection: close``
  (or is closed by the server), so the expected output is everything up to the close.
- BAD: malformed requests and smuggling attempts. Each is followed on the same connection by
  ``smuggled(token)`` (``GET /mark/<token>``); the server must answer the exact error
  (``error_response(code)``), close, and never run that second request.
- LIMITS: BAD cases under smaller limits (LIMIT_FLAGS on the command line, LIMIT_CTX
  in-process).
"""

from http import HTTPStatus

H = b"Host: t\r\n"
CLOSE_REQ = b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
SERVER = b"server: fastasgi\r\n"


def ok(
    body: bytes = b"hello",
    ctype: bytes = b"text/plain",
    extra: bytes = b"",
    close: bool = False,
    keep_alive: bool = False,
) -> bytes:
    """A 200 whose first body message was final: the server adds content-length, then the
    connection header it decided on."""
    return (
        b"HTTP/1.1 200 OK\r\n"
        + SERVER
        + (b"content-type: " + ctype + b"\r\n" if ctype else b"")
        + extra
        + b"content-length: %d\r\n" % len(body)
        + (b"connection: close\r\n" if close else b"")
        + (b"connection: keep-alive\r\n" if keep_alive else b"")
        + b"\r\n"
        + body
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
    (
        "stream_chunked",
        b"GET /stream HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        STREAM_HEAD + CHUNKED + b"\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n" + CLOSE_RESP,
    ),
    (
        "stream_final_with_data",
        b"GET /stream-last HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        STREAM_HEAD + CHUNKED + b"\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n" + CLOSE_RESP,
    ),
    (
        "app_content_length_kept",
        b"GET /cl HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        STREAM_HEAD + b"content-length: 5\r\n\r\nhello" + CLOSE_RESP,
    ),
    (
        "app_header_order_kept",
        b"GET /headers-order HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        b"HTTP/1.1 200 OK\r\n"
        + SERVER
        + b"x-first: 1\r\ncontent-type: text/plain\r\nx-dup: a\r\nx-dup: b\r\n"
        b"content-length: 2\r\n\r\nok" + CLOSE_RESP,
    ),
    (
        "app_own_server_and_date",
        b"GET /own-server-date HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        b"HTTP/1.1 200 OK\r\nserver: myapp\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
        b"content-length: 3\r\n\r\nown" + CLOSE_RESP,
    ),
    (
        "not_found_from_app",
        b"GET /nope HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        b"HTTP/1.1 404 Not Found\r\n"
        + SERVER
        + b"content-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found"
        + CLOSE_RESP,
    ),
    (
        "options_asterisk",
        b"OPTIONS * HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        b"HTTP/1.1 404 Not Found\r\n"
        + SERVER
        + b"content-type: text/plain\r\ncontent-length: 9\r\n\r\nnot found"
        + CLOSE_RESP,
    ),
    # ---- status codes and bodiless responses
    (
        "status_201",
        b"GET /status/201 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        status(201, b"content-length: 0\r\n") + CLOSE_RESP,
    ),
    (
        "status_418",
        b"GET /status/418 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        status(418, b"content-length: 0\r\n") + CLOSE_RESP,
    ),
    (
        "status_unknown_599_empty_reason",
        b"GET /status/599 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        b"HTTP/1.1 599 \r\n" + SERVER + b"content-length: 0\r\n\r\n" + CLOSE_RESP,
    ),
    (
        "status_204_no_framing",
        b"GET /status/204 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        status(204) + CLOSE_RESP,
    ),
    (
        "status_204_app_body_dropped",
        b"GET /status/204?body=junk HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        status(204) + CLOSE_RESP,
    ),
    (
        "status_304_no_framing",
        b"GET /status/304 HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        status(304, b'etag: "abc"\r\n') + CLOSE_RESP,
    ),
    (
        "status_304_app_body_dropped",
        b"GET /status/304?body=junk HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        status(304, b'etag: "abc"\r\n') + CLOSE_RESP,
    ),
    (
        "head_gets_cl_no_body",
        b"HEAD /plain HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        STREAM_HEAD + b"content-length: 5\r\n\r\n" + CLOSE_RESP,
    ),
    (
        "head_app_cl_no_body",
        b"HEAD /cl HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        STREAM_HEAD + b"content-length: 5\r\n\r\n" + CLOSE_RESP,
    ),
    # ---- request bodies
    (
        "post_content_length",
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 11\r\n\r\nhello world" + CLOSE_REQ,
        ok(b"hello world", b"application/octet-stream") + CLOSE_RESP,
    ),
    (
        "post_chunked",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n" + CLOSE_REQ,
        ok(b"hello world", b"application/octet-stream") + CLOSE_RESP,
    ),
    (
        "post_chunked_ext_and_trailer",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"5;name=val\r\nhello\r\nB\r\n 0123456789\r\n0\r\nX-Trailer: t\r\n\r\n" + CLOSE_REQ,
        ok(b"hello 0123456789", b"application/octet-stream") + CLOSE_RESP,
    ),
    (
        "post_empty_chunked",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + CLOSE_REQ,
        ok(b"", b"application/octet-stream") + CLOSE_RESP,
    ),
    (
        "post_cl_zero",
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n" + CLOSE_REQ,
        ok(b"", b"application/octet-stream") + CLOSE_RESP,
    ),
    # ---- keep-alive and Connection: close (RFC 9112 9.3)
    (
        "client_connection_close",
        b"GET /plain HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\nGET /plain HTTP/1.1\r\n" + H + b"\r\n",
        CLOSE_RESP,
    ),
    (
        "client_connection_close_token_list",
        b"GET /plain HTTP/1.1\r\n" + H + b"Connection: foo, close\r\n\r\n"
        b"GET /plain HTTP/1.1\r\n" + H + b"\r\n",
        CLOSE_RESP,
    ),
    (
        "app_connection_close",
        b"GET /connclose HTTP/1.1\r\n" + H + b"\r\n" + b"GET /plain HTTP/1.1\r\n" + H + b"\r\n",
        b"HTTP/1.1 200 OK\r\n"
        + SERVER
        + b"content-type: text/plain\r\nconnection: close\r\ncontent-length: 3\r\n\r\nbye",
    ),
    ("http10_close_delimited_cl", b"GET /plain HTTP/1.0\r\n\r\n", CLOSE_RESP),
    # RFC 9110 2.5: a higher minor version of HTTP/1 is served as HTTP/1.1 (kept alive)
    ("http_1_2_served_as_1_1", b"GET /plain HTTP/1.2\r\n" + H + b"\r\n" + CLOSE_REQ, ok() + CLOSE_RESP),
    ("http_1_9_served_as_1_1", b"GET /plain HTTP/1.9\r\n" + H + b"\r\n" + CLOSE_REQ, ok() + CLOSE_RESP),
    (
        "http10_stream_raw_body",
        b"GET /stream HTTP/1.0\r\n\r\n",
        STREAM_HEAD + b"connection: close\r\n\r\nabcde",
    ),
    (
        "http10_keep_alive",
        b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + CLOSE_REQ,
        ok(keep_alive=True) + CLOSE_RESP,
    ),
    (
        "http10_keep_alive_twice",
        b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
        b"GET /plain HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + b"GET /plain HTTP/1.0\r\n\r\n",
        2 * ok(keep_alive=True) + CLOSE_RESP,
    ),
    (
        "http10_keep_alive_streamed_must_close",
        b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n" + CLOSE_REQ,
        STREAM_HEAD + b"connection: close\r\n\r\nabcde",
    ),
    (
        "http10_post_cl",
        b"POST /echo HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
        ok(b"abc", b"application/octet-stream", close=True),
    ),
    # ---- pipelining: answered strictly in order
    (
        "pipeline_three",
        b"GET /plain HTTP/1.1\r\n"
        + H
        + b"\r\n"
        + b"GET /stream HTTP/1.1\r\n"
        + H
        + b"\r\n"
        + b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Content-Length: 2\r\n\r\nhi"
        + CLOSE_REQ,
        ok()
        + STREAM_HEAD
        + CHUNKED
        + b"\r\n2\r\nab\r\n3\r\ncde\r\n0\r\n\r\n"
        + ok(b"hi", b"application/octet-stream")
        + CLOSE_RESP,
    ),
    (
        "pipeline_slow_first_not_overtaken",
        b"GET /sleep?t=0.3 HTTP/1.1\r\n" + H + b"\r\n" + b"GET /plain HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ,
        ok(b"slept") + ok() + CLOSE_RESP,
    ),
    (
        "pipeline_chunked_bodies",
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n"
        + b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n1\r\nb\r\n0\r\n\r\n"
        + CLOSE_REQ,
        ok(b"a", b"application/octet-stream") + ok(b"b", b"application/octet-stream") + CLOSE_RESP,
    ),
    # ---- upgrades the server does not support are plain HTTP
    (
        "upgrade_h2c_served_as_http",
        b"GET /plain HTTP/1.1\r\n"
        + H
        + b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
        + CLOSE_REQ,
        ok() + CLOSE_RESP,
    ),
    (
        "upgrade_unknown_with_body",
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Connection: upgrade\r\nUpgrade: foo/2\r\nContent-Length: 5\r\n\r\nhello"
        + CLOSE_REQ,
        ok(b"hello", b"application/octet-stream") + CLOSE_RESP,
    ),
]


BIG = 70_000  # beyond the default 64 KiB head limit
MANY = b"".join(b"X-H%d: v\r\n" % i for i in range(101))  # with Host: 102 fields
ENOUGH = b"".join(b"X-H%d: v\r\n" % i for i in range(99))  # with Host: 100 fields

BAD = [
    # ---- framing conflicts (request smuggling)
    (
        "cl_and_te",
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te_and_cl",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "duplicate_cl_differing",
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 40\r\n\r\nhello",
        400,
    ),
    ("cl_list_differing", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5, 40\r\n\r\nhello", 400),
    ("cl_not_a_number", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 5x\r\n\r\nhello", 400),
    ("cl_negative", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\nhello", 400),
    ("cl_plus_sign", b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    (
        "cl_overflow",
        b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nhello",
        400,
    ),
    (
        "bad_chunk_size",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "negative_chunk_size",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk_size_overflow",
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk_size_trailing_space",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk_data_longer_than_size",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk_size_bare_lf",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk_data_bare_lf",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        400,
    ),
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
    (
        "te_space_before_colon",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
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
    ("http_0_5", b"GET /plain HTTP/0.5\r\n" + H + b"\r\n", 505),
    ("http_4_1", b"GET /plain HTTP/4.1\r\n" + H + b"\r\n", 505),
    # served as HTTP/1.1, so Host is required as of 1.1 (RFC 9112 3.2)
    ("http_1_2_without_host", b"GET /plain HTTP/1.2\r\n\r\n", 400),
    # ---- unsupported transfer codings (RFC 9112 6.1)
    ("te_gzip", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nhello", 501),
    (
        "te_gzip_chunked",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
    ("te_xchunked", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501),
    # ---- limits
    ("huge_target_414", b"GET /" + b"a" * BIG + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("huge_header_431", b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * BIG + b"\r\n\r\n", 431),
    (
        "head_over_limit_431",
        b"GET /plain HTTP/1.1\r\n"
        + H
        + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(70))
        + b"\r\n",
        431,
    ),
    ("too_many_headers_431", b"GET /plain HTTP/1.1\r\n" + H + MANY + b"\r\n", 431),
    # ---- a good request first: it is answered, then the bad one closes the connection
    (
        "good_then_bad",
        b"GET /plain HTTP/1.1\r\n" + H + b"\r\n" + b"GET /plain HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n",
        400,
    ),
]


def smuggled(tok: str) -> bytes:
    return b"GET /mark/%s HTTP/1.1\r\nHost: t\r\n\r\n" % tok.encode()


def error_response(code: int, server: bool = True, extra: bytes = b"") -> bytes:
    """The exact bytes of a server-generated error (WIRE.md), without a Date header."""
    reason = HTTPStatus(code).phrase.encode()
    return (
        b"HTTP/1.1 %d %s\r\n" % (code, reason)
        + (b"server: fastasgi\r\n" if server else b"")
        + extra
        + b"content-type: text/plain; charset=utf-8\r\n"
        + b"content-length: %d\r\n" % len(reason)
        + b"connection: close\r\n\r\n"
        + reason
    )


def expected_bad(name: str, code: int) -> bytes:
    """What a BAD case gets back: the error, after the answer to a good request before it."""
    expected = error_response(code)
    if name == "good_then_bad":
        expected = ok() + expected
    return expected


# ---- the same checks under smaller limits

LIMIT_FLAGS = ("--no-date-header", "--limit-request-head-size", "2048", "--limit-request-fields", "10")
#: the ServerContext settings LIMIT_FLAGS make
LIMIT_CTX = {"max_header_bytes": 2048, "max_headers": 10}

LIMITS = [
    ("head_size_flag_431", b"GET /plain HTTP/1.1\r\n" + H + b"X-Big: " + b"v" * 2100 + b"\r\n\r\n", 431),
    ("target_over_head_size_414", b"GET /" + b"a" * 2100 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    (
        "fields_flag_431",
        b"GET /plain HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(10)) + b"\r\n",
        431,
    ),
]
