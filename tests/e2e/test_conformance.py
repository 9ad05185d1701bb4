"""RFC 9110/9112 conformance of the request line, the request-target, Host and the header
section: every request the RFCs say a server must refuse is refused, every valid one served.

REFUSED: exact bytes in (``{T}`` is replaced by a fresh token), the exact server-made error
out (status line, ``connection: close``), the socket closed, delivered whole and byte by byte.
Where the request's own target is ``/mark/{T}``, the registry shows whether the app ran; every
case is also followed on the same connection by ``GET /mark/{T}``, which must never run.

SERVED: valid forms that must keep working; the ``/scope`` route answers what the app saw.
"""

from __future__ import annotations

import json

import pytest

from support.client import RawConn, exchange, registry
from support.wire_cases import error_response

MODES = ["whole", "bytewise"]
H = b"Host: t\r\n"


def mark(extra: bytes = H, version: bytes = b"HTTP/1.1", method: bytes = b"GET") -> bytes:
    return method + b" /mark/{T} " + version + b"\r\n" + extra + b"\r\n"


# (name, request with {T}, status, whether the app must not have seen the request itself)
REFUSED = [
    # ---- Host (RFC 9112 3.2, RFC 9110 7.2)
    ("no_host_http11", mark(b""), 400),
    ("two_hosts_equal", mark(b"Host: t\r\nHost: t\r\n"), 400),
    ("two_hosts_differing", mark(b"Host: t\r\nHost: u\r\n"), 400),
    ("two_hosts_far_apart", mark(b"Host: t\r\nX-A: 1\r\nHost: t\r\n"), 400),
    ("host_empty", mark(b"Host: \r\n"), 400),
    ("host_only_spaces", mark(b"Host:    \r\n"), 400),
    ("host_userinfo", mark(b"Host: user@t\r\n"), 400),
    ("host_userinfo_password", mark(b"Host: user:pw@t:80\r\n"), 400),
    ("host_with_path", mark(b"Host: t/x\r\n"), 400),
    ("host_with_query", mark(b"Host: t?x\r\n"), 400),
    ("host_with_fragment", mark(b"Host: t#x\r\n"), 400),
    ("host_comma_list", mark(b"Host: a, b\r\n"), 400),
    ("host_comma_no_space", mark(b"Host: a,b\r\n"), 400),
    ("host_inner_space", mark(b"Host: a b\r\n"), 400),
    ("host_inner_tab", mark(b"Host: a\tb\r\n"), 400),
    ("host_backslash", mark(b"Host: a\\b\r\n"), 400),
    ("host_port_not_numeric", mark(b"Host: t:8x\r\n"), 400),
    ("host_port_negative", mark(b"Host: t:-1\r\n"), 400),
    ("host_port_out_of_range", mark(b"Host: t:65536\r\n"), 400),
    ("host_port_overflow", mark(b"Host: t:99999999999999999999999\r\n"), 400),
    ("host_two_ports", mark(b"Host: t:80:80\r\n"), 400),
    ("host_ipv6_unbracketed", mark(b"Host: ::1\r\n"), 400),
    ("host_ipv6_unclosed", mark(b"Host: [::1\r\n"), 400),
    ("host_ipv6_empty_brackets", mark(b"Host: []\r\n"), 400),
    ("host_ipv6_invalid", mark(b"Host: [::g]\r\n"), 400),
    ("host_ipv6_zone_id", mark(b"Host: [fe80::1%25eth0]\r\n"), 400),
    ("host_ipv6_junk_after", mark(b"Host: [::1]x\r\n"), 400),
    ("host_bad_percent", mark(b"Host: a%zz\r\n"), 400),
    ("host_port_only", mark(b"Host: :80\r\n"), 400),
    # ---- request-target (RFC 9112 3.2)
    ("asterisk_with_get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("asterisk_with_post", b"POST * HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", 400),
    ("connect_authority_form", b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", 501),
    ("connect_origin_form", b"CONNECT /mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 501),
    ("fragment", b"GET /mark/{T}#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment_after_query", b"GET /mark/{T}?a=1#frag HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("fragment_empty", b"GET /mark/{T}# HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute_form_other_scheme", b"GET ftp://t/mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute_form_userinfo", b"GET http://user@t/mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute_form_empty_authority", b"GET http:///mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute_form_bad_port", b"GET http://t:99999/mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("absolute_form_fragment", b"GET http://t/mark/{T}#f HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target_without_slash", b"GET mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 400),
    # ---- request line (RFC 9112 3, 2.3)
    ("two_spaces_before_target", b"GET  /mark/{T} HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("two_spaces_before_version", b"GET /mark/{T}  HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("many_spaces_everywhere", b"GET     /mark/{T}     HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("protocol_rtsp", b"GET /mark/{T} RTSP/1.0\r\n" + H + b"\r\n", 400),
    ("protocol_ice", b"GET /mark/{T} ICE/1.0\r\n" + H + b"\r\n", 400),
    ("protocol_lowercase", b"GET /mark/{T} http/1.1\r\n" + H + b"\r\n", 400),
    # ---- header section and body (RFC 9112 6-7)
    (
        "te_chunked_with_parameter",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked;param=x\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te_chunked_parameter_spaced",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked ; q=1\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "te_parameter_without_value",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip;x, chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("te_not_a_token", b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chu@nked\r\n\r\n0\r\n\r\n", 400),
    (
        "te_unknown_coding_with_parameter",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip;level=1\r\n\r\n0\r\n\r\n",
        501,
    ),
    (
        "chunk_extension_64k",
        b"POST /echo HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
        b"1;ext=" + b"x" * 65536 + b"\r\na\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunk_extensions_adding_up",
        b"POST /echo HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"1;e=" + b"x" * 2000 + b"\r\na\r\n" for _ in range(10))
        + b"0\r\n\r\n",
        400,
    ),
]

# cases whose own request reaches no app: the target is /mark/{T} and the refusal comes
# before the request head is complete
NO_APP = {name for name, req, _ in REFUSED if b"/mark/{T}" in req}


def smuggled(tok: str) -> bytes:
    return b"GET /mark/%s HTTP/1.1\r\nHost: t\r\n\r\n" % tok.encode()


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name,request_bytes,code", REFUSED, ids=[c[0] for c in REFUSED])
def test_refused(core, token, name, request_bytes, code, mode):
    req = request_bytes.replace(b"{T}", token.encode())
    received, closed = exchange(core.port, req + smuggled(token), mode)
    assert received == error_response(code), received[:400]
    assert closed, "connection not closed after the refusal"
    assert registry(core.port, token) == [], "the app saw the refused request or the one after it"


def test_no_app_cases_are_marked():
    """The table's NO_APP cases really target the marker route (a typo would make the
    registry check pass vacuously)."""
    assert len(NO_APP) > 40
    assert "connect_authority_form" not in NO_APP


# --------------------------------------------------------------------------- one head limit

LIMIT = ("--no-date-header", "--limit-request-head-size", "1000")


@pytest.mark.parametrize("mode", MODES)
def test_one_limit_for_line_and_fields(serve, token, mode):
    """A 600-byte target plus 1,200 bytes of fields is a head over a 1,000-byte limit, though
    each part alone is under it: 431 (RFC 6585 5)."""
    srv = serve("core_app:app", *LIMIT)
    req = (
        b"GET /mark/"
        + token.encode()
        + b"?"
        + b"q" * 560
        + b" HTTP/1.1\r\n"
        + H
        + b"X-A: "
        + b"a" * 600
        + b"\r\nX-B: "
        + b"b" * 600
        + b"\r\n\r\n"
    )
    received, closed = exchange(srv.port, req, mode)
    assert received == error_response(431)
    assert closed
    assert registry(srv.port, token) == []


@pytest.mark.parametrize("mode", MODES)
def test_one_limit_target_alone_is_414(serve, token, mode):
    srv = serve("core_app:app", *LIMIT)
    req = b"GET /mark/" + token.encode() + b"?" + b"q" * 1000 + b" HTTP/1.1\r\n" + H + b"\r\n"
    received, closed = exchange(srv.port, req, mode)
    assert received == error_response(414)
    assert closed
    assert registry(srv.port, token) == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("size,served", [(1000, True), (1001, False)])
def test_one_limit_boundary(serve, token, mode, size, served):
    """The limit counts the head from the method to the last field value: exactly 1,000
    bytes are served, 1,001 are not."""
    srv = serve("core_app:app", *LIMIT)
    prefix = b"GET /mark/" + token.encode() + b" HTTP/1.1\r\n" + H + b"Connection: close\r\nX-A: "
    req = prefix + b"a" * (size - len(prefix)) + b"\r\n\r\n"
    received, closed = exchange(srv.port, req, mode)
    if served:
        assert received.startswith(b"HTTP/1.1 200 OK\r\n"), received[:200]
        assert registry(srv.port, token) == [{"mark": "GET"}]
    else:
        assert received == error_response(431)
        assert registry(srv.port, token) == []
    assert closed


# --------------------------------------------------------------------------- served


def scope_of(port: int, request: bytes, mode: str = "whole") -> dict:
    received, _ = exchange(port, request, mode)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), received[:300]
    return json.loads(body)["scope"]


def header(scope: dict, name: str) -> list[str]:
    return [v for k, v in scope["headers"] if k == name]


GOOD_HOSTS = [
    b"t",
    b"example.com",
    b"EXAMPLE.com",
    b"example.com:8080",
    b"example.com:80",
    b"t:",
    b"127.0.0.1",
    b"127.0.0.1:8000",
    b"[::1]",
    b"[::1]:8000",
    b"[2001:db8::1]:443",
    b"[::ffff:127.0.0.1]",
    b"[v1.fe80::a+en1]",
    b"a%41b",
    b"xn--bcher-kva.example",
    b"under_score",
    b"a-b.c~d!$&'()*+;=",
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("host", GOOD_HOSTS, ids=[h.decode() for h in GOOD_HOSTS])
def test_valid_host_forms_served(core, host, mode):
    scope = scope_of(
        core.port, b"GET /scope HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n", mode
    )
    assert header(scope, "host") == [host.decode("latin-1")]


@pytest.mark.parametrize("mode", MODES)
def test_options_asterisk_served(core, mode):
    received, closed = exchange(core.port, b"OPTIONS * HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n", mode)
    assert received.startswith(b"HTTP/1.1 404 Not Found\r\n") and received.endswith(b"not found")
    assert closed


@pytest.mark.parametrize("mode", MODES)
def test_absolute_form_authority_wins(core, mode):
    """RFC 9112 3.2.2: the target's authority replaces Host; the app sees it as "host"."""
    scope = scope_of(
        core.port,
        b"GET http://example.com:8080/scope?x=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
        mode,
    )
    assert scope["path"] == "/scope"
    assert scope["raw_path"] == "/scope"
    assert scope["query_string"] == "x=1"
    assert header(scope, "host") == ["example.com:8080"]


def test_absolute_form_scheme_case_insensitive(core):
    scope = scope_of(
        core.port, b"GET HTTPS://Example.COM/scope HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n"
    )
    assert header(scope, "host") == ["Example.COM"]
    assert scope["path"] == "/scope"


def test_absolute_form_ipv6_authority(core):
    scope = scope_of(
        core.port, b"GET http://[::1]:8000/scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert header(scope, "host") == ["[::1]:8000"]


def test_absolute_form_http10_without_host(core):
    scope = scope_of(core.port, b"GET http://example.com/scope HTTP/1.0\r\n\r\n")
    assert header(scope, "host") == ["example.com"]
    assert scope["http_version"] == "1.0"


def test_absolute_form_without_path(core):
    received, _ = exchange(
        core.port, b"GET http://example.com HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert received.startswith(b"HTTP/1.1 404 Not Found\r\n"), received[:200]  # path "/": served


@pytest.mark.parametrize("mode", MODES)
def test_http10_without_host_served(core, mode):
    scope = scope_of(core.port, b"GET /scope HTTP/1.0\r\n\r\n", mode)
    assert scope["http_version"] == "1.0"
    assert header(scope, "host") == []


@pytest.mark.parametrize("mode", MODES)
def test_http10_websocket_upgrade_is_plain_http(core, mode):
    """RFC 9110 7.8: a server MUST ignore Upgrade in an HTTP/1.0 request."""
    scope = scope_of(
        core.port,
        b"GET /scope HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        mode,
    )
    assert scope["type"] == "http"
    assert scope["http_version"] == "1.0"


def test_empty_line_before_request_line(core):
    """RFC 9112 2.2: a server SHOULD ignore at least one empty line before the request-line."""
    scope = scope_of(core.port, b"\r\nGET /scope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert scope["path"] == "/scope"


# --------------------------------------------------------------------------- --header-map

UNDERSCORE = (
    b"GET /scope HTTP/1.1\r\nHost: t\r\nX_Forwarded_For: 6.6.6.6\r\nX-Kept: 1\r\nConnection: close\r\n\r\n"
)


@pytest.mark.parametrize("mode", MODES)
def test_underscore_header_dropped_by_default(core, mode):
    scope = scope_of(core.port, UNDERSCORE, mode)
    assert header(scope, "x_forwarded_for") == []
    assert header(scope, "x-kept") == ["1"]


@pytest.mark.parametrize("mode", MODES)
def test_underscore_header_refused(serve, token, mode):
    srv = serve("core_app:app", "--no-date-header", "--header-map", "refuse")
    req = b"GET /mark/" + token.encode() + b" HTTP/1.1\r\nHost: t\r\nX_Foo: 1\r\n\r\n"
    received, closed = exchange(srv.port, req + smuggled(token), mode)
    assert received == error_response(400)
    assert closed
    assert registry(srv.port, token) == []
    # names without "_" pass under refuse too
    scope = scope_of(srv.port, b"GET /scope HTTP/1.1\r\nHost: t\r\nX-Foo: 1\r\nConnection: close\r\n\r\n")
    assert header(scope, "x-foo") == ["1"]


def test_underscore_header_dangerous(serve):
    srv = serve("core_app:app", "--no-date-header", "--header-map", "dangerous")
    scope = scope_of(srv.port, UNDERSCORE)
    assert header(scope, "x_forwarded_for") == ["6.6.6.6"]
    assert header(scope, "x-kept") == ["1"]


# --------------------------------------------------------------------------- trailers


@pytest.mark.parametrize("mode", MODES)
def test_trailer_fields_never_reach_the_app(core, mode):
    """RFC 9110 6.5.1: Host, Content-Length, Authorization ... are forbidden in trailers; no
    ASGI event carries request trailers, so none reaches the app, and the headers the app
    holds do not change after the body."""
    req = (
        b"POST /headers-after-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\nHost: evil\r\nAuthorization: Basic eA==\r\n"
        b"Cookie: a=b\r\nX_Under: 1\r\nX-Trailer: t\r\n\r\n"
    )
    received, _ = exchange(core.port, req, mode)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n"), received[:300]
    seen = json.loads(body)
    assert seen["body"] == "hello"
    assert seen["headers"] == [["host", "t"], ["transfer-encoding", "chunked"], ["connection", "close"]]


@pytest.mark.parametrize("mode", MODES)
def test_trailer_framing_fields_refused(core, mode):
    """Content-Length in the trailer of a chunked message is a framing conflict llhttp
    refuses (RFC 9112 6.3 makes chunked and Content-Length exclusive): 400 and close."""
    req = (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
        b"Content-Length: 5\r\n\r\n"
    )
    received, closed = exchange(core.port, req, mode)
    assert received == error_response(400)
    assert closed


def test_trailer_section_is_bounded(serve):
    srv = serve("core_app:app", *LIMIT)
    req = (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
        + b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 100) for i in range(20))
        + b"\r\n"
    )
    received, closed = exchange(srv.port, req)
    assert received == error_response(431)
    assert closed


def test_chunk_extensions_under_the_cap_served(core):
    req = (
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"5;a=" + b"x" * 8000 + b"\r\nhello\r\n0\r\n\r\n"
    )
    received, _ = exchange(core.port, req)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"hello")


# --------------------------------------------------------------------------- response side


@pytest.mark.parametrize("mode", MODES)
def test_start_without_body_gets_500(core, token, mode):
    """The head waits for the first body message: an app that returns after
    http.response.start leaves nothing on the wire, so the client gets the logged 500."""
    mark_ = core.log_mark()
    req = b"GET /start-only HTTP/1.1\r\nHost: t\r\nX-Token: " + token.encode() + b"\r\n\r\n"
    received, closed = exchange(core.port, req, mode)
    assert received == error_response(500)
    assert closed
    assert registry(core.port, token) == [{"started": True}]
    assert "returned without sending a response body" in core.wait_log(mark_, "response body")


# --------------------------------------------------------------------------- logging


def test_refusals_log_one_access_line_and_no_traceback(serve, token):
    srv = serve("core_app:app", "--no-date-header", "--access-log", fresh=True)
    cases = [
        (n, r, c)
        for n, r, c in REFUSED
        if n
        in (
            "no_host_http11",
            "host_userinfo",
            "fragment",
            "protocol_rtsp",
            "connect_authority_form",
            "asterisk_with_get",
            "two_spaces_before_target",
        )
    ]
    for _, req, code in cases:
        received, _ = exchange(srv.port, req.replace(b"{T}", token.encode()))
        assert received == error_response(code)
    with RawConn(srv.port) as c:  # the server goes on serving
        assert c.request(b"GET /plain HTTP/1.1\r\nHost: t\r\n\r\n").body == b"hello"
    text = srv.stdout() + srv.log()
    assert "Traceback" not in text
    for status in ("400", "501"):
        assert any(f" {status}" in line for line in text.splitlines()), text[-2000:]
    refused = [line for line in text.splitlines() if '" 400' in line or '" 501' in line]
    assert len(refused) == len(cases), text[-3000:]
