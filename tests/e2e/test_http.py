"""HTTP behaviour of the core protocol against the running server: the ASGI http scope,
response headers and flags, Date, keep-alive timeout, Expect: 100-continue, disconnects,
and every kind of app error (with its log record)."""

import email.utils
import json
import sys
import time

import httpx
import pytest

from support.client import IMF_FIXDATE, RawConn, exchange, http_get, registry, wait_registry
from support.server import CORE, SRC
from support.wire_cases import error_response

H = b"Host: t\r\n"
CLOSE_REQ = b"GET /plain HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
CLOSE_RESP = (
    b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-type: text/plain\r\n"
    b"content-length: 5\r\nconnection: close\r\n\r\nhello"
)


def scope_of(resp):
    assert resp.status == 200, resp.raw
    return resp.json()["scope"]


# --------------------------------------------------------------------------- scope


def test_scope_keys_and_values(core):
    with RawConn(core.port) as c:
        resp = c.request(b"GET /scope/a?x=1&y=2 HTTP/1.1\r\nHost: example.org\r\nUser-Agent: t\r\n\r\n")
        local_port = c.local_port
    data = resp.json()
    scope = data["scope"]
    assert set(data["keys"]) - {"extensions"} == {
        "type",
        "asgi",
        "http_version",
        "method",
        "scheme",
        "path",
        "raw_path",
        "query_string",
        "root_path",
        "headers",
        "client",
        "server",
        "state",
    }
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/scope/a"
    assert scope["raw_path"] == "/scope/a"
    assert scope["query_string"] == "x=1&y=2"
    assert scope["root_path"] == ""
    assert scope["headers"] == [["host", "example.org"], ["user-agent", "t"]]
    assert scope["client"] == ["127.0.0.1", local_port]
    assert scope["server"] == ["127.0.0.1", core.port]
    assert scope["state"] == {"from_lifespan": "yes"}


def test_scope_value_types(core):
    """The JSON view hides bytes vs str; the app reports the Python types it saw."""
    with RawConn(core.port) as c:
        types = c.request(b"GET /scope?q=1 HTTP/1.1\r\n" + H + b"X-A: b\r\n\r\n").json()["types"]
    assert types["type"] == types["method"] == types["path"] == types["scheme"] == "str"
    assert types["http_version"] == types["root_path"] == "str"
    assert types["raw_path"] == types["query_string"] == "bytes"
    assert types["asgi"] == types["state"] == "dict"
    assert types["headers_items"] == ["bytes"]
    assert set(types["headers_pairs"]) <= {"tuple", "list"}
    assert types["client_items"] == types["server_items"] == ["str", "int"]


def test_scope_path_percent_decoded(core):
    target = b"/scope/caf%C3%A9/a%20b/x%2Fy?q=%20%C3%A9&r"
    with RawConn(core.port) as c:
        scope = scope_of(c.request(b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n"))
    assert scope["path"] == "/scope/café/a b/x/y"
    assert scope["raw_path"] == "/scope/caf%C3%A9/a%20b/x%2Fy"
    assert scope["query_string"] == "q=%20%C3%A9&r"


def test_scope_empty_query_and_bare_question_mark(core):
    with RawConn(core.port) as c:
        assert scope_of(c.request(b"GET /scope HTTP/1.1\r\n" + H + b"\r\n"))["query_string"] == ""
        s = scope_of(c.request(b"GET /scope? HTTP/1.1\r\n" + H + b"\r\n"))
        assert s["query_string"] == "" and s["path"] == "/scope"


def test_scope_http10_and_methods(core):
    with RawConn(core.port) as c:
        scope = scope_of(c.request(b"GET /scope HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        assert scope["http_version"] == "1.0"
        for method in (b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS"):
            scope = scope_of(c.request(method + b" /scope HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n"))
            assert scope["method"] == method.decode()
            assert scope["http_version"] == "1.1"


def test_scope_headers_lowercased_order_and_duplicates(core):
    req = (
        b"GET /scope HTTP/1.1\r\nHost: t\r\nX-Dup: 1\r\nAccept: */*\r\nx-DUP: 2\r\n"
        b"X-MiXeD: VaLuE with  spaces\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\n\r\n"
    )
    with RawConn(core.port) as c:
        scope = scope_of(c.request(req))
    assert scope["headers"] == [
        ["host", "t"],
        ["x-dup", "1"],
        ["accept", "*/*"],
        ["x-dup", "2"],
        ["x-mixed", "VaLuE with  spaces"],
        ["x-empty", ""],
        ["x-obs", "caf\xc3\xa9"],
    ]


def test_scope_header_value_whitespace_trimmed(core):
    """RFC 9112 5.1: optional whitespace around the field value is not part of it."""
    with RawConn(core.port) as c:
        scope = scope_of(c.request(b"GET /scope HTTP/1.1\r\nHost:   t \t\r\nX-A:\tb c\t \r\n\r\n"))
    assert scope["headers"] == [["host", "t"], ["x-a", "b c"]]


def test_scope_state_is_a_copy(core):
    with RawConn(core.port) as c:
        first = scope_of(c.request(b"GET /scope?mutate=1 HTTP/1.1\r\n" + H + b"\r\n"))
        second = scope_of(c.request(b"GET /scope HTTP/1.1\r\n" + H + b"\r\n"))
    assert first["state"] == {"from_lifespan": "yes", "mutated_by_request": True}
    assert second["state"] == {"from_lifespan": "yes"}, "a request's change leaked into the shared state"


def test_scope_absolute_form_target(core):
    """RFC 9112 3.2.2: a server MUST accept the absolute form."""
    with RawConn(core.port) as c:
        scope = scope_of(
            c.request(b"GET http://example.org/scope/z?q=1 HTTP/1.1\r\nHost: example.org\r\n\r\n")
        )
    assert scope["path"] == "/scope/z"
    assert scope["query_string"] == "q=1"


def test_root_path(serve):
    """--root-path: scope root_path, and path/raw_path include it (as uvicorn does,
    following the ASGI spec's reading that path is the full path)."""
    srv = serve(CORE, "--no-date-header", "--root-path", "/api")
    scope = scope_of(http_get(srv.port, "/scope/x?a=b"))
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/scope/x"
    assert scope["raw_path"] == "/api/scope/x"
    assert scope["query_string"] == "a=b"


def test_httpx_get_and_post(core):
    with httpx.Client(base_url=core.url, timeout=5) as client:
        r = client.get("/plain")
        assert r.status_code == 200 and r.text == "hello"
        assert r.headers["content-length"] == "5"
        r = client.post("/echo", content=b"payload")
        assert r.content == b"payload"
        r = client.get("/stream")
        assert r.text == "abcde" and r.headers["transfer-encoding"] == "chunked"


# --------------------------------------------------------------------------- response headers


def test_default_server_and_date_headers(serve):
    srv = serve(CORE)
    resp = http_get(srv.port, "/headers-order")
    names = resp.names()
    assert names[:2] == [b"server", b"date"]
    assert resp.headers[0] == (b"server", b"fastasgi")
    assert IMF_FIXDATE.fullmatch(resp.headers[1][1])
    assert names[2:] == [b"x-first", b"content-type", b"x-dup", b"x-dup", b"content-length", b"connection"]


def test_header_flag_order(serve):
    srv = serve(CORE, "--header", "x-a:1", "--header", "X-B:two words")
    with RawConn(srv.port) as c:
        resp = c.request(b"GET /headers-order HTTP/1.1\r\n" + H + b"\r\n")
    assert resp.names() == [
        b"server",
        b"date",
        b"x-a",
        b"x-b",
        b"x-first",
        b"content-type",
        b"x-dup",
        b"x-dup",
        b"content-length",
    ]
    assert resp.header_all("x-b") == [b"two words"]
    assert resp.header_all("x-dup") == [b"a", b"b"]


def test_no_server_no_date_exact_bytes(serve):
    srv = serve(CORE, "--no-server-header", "--no-date-header", "--header", "x-a:1")
    received, closed = exchange(srv.port, CLOSE_REQ)
    assert received == (
        b"HTTP/1.1 200 OK\r\nx-a: 1\r\ncontent-type: text/plain\r\n"
        b"content-length: 5\r\nconnection: close\r\n\r\nhello"
    )
    assert closed


def test_app_own_server_header_replaces_default(serve):
    srv = serve(CORE)
    resp = http_get(srv.port, "/own-server-date")
    assert resp.header_all("server") == [b"myapp"]
    assert resp.header_all("date") == [b"Thu, 01 Jan 1970 00:00:00 GMT"]


def _date_of(port):
    resp = http_get(port, "/plain")
    return resp.header("date")


def test_date_header_is_imf_fixdate_and_current(serve):
    srv = serve(CORE)
    value = _date_of(srv.port)
    assert IMF_FIXDATE.fullmatch(value), value
    ts = email.utils.parsedate_to_datetime(value.decode()).timestamp()
    assert abs(ts - time.time()) < 3


def test_date_shared_across_connections_and_refreshed(serve):
    srv = serve(CORE)
    # three connections within a few ms see the same value (one shared Date; a tick may
    # fall between them, so allow a couple of attempts)
    for _ in range(3):
        conns = [RawConn(srv.port) for _ in range(3)]
        try:
            for c in conns:
                c.send(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n")
            dates = {c.read_response().header("date") for c in conns}
        finally:
            for c in conns:
                c.close()
        if len(dates) == 1:
            break
    assert len(dates) == 1, dates
    # an idle keep-alive connection (default timeout 5 s) still works after 1.2 s and sees
    # a refreshed Date
    with RawConn(srv.port) as c:
        d1 = c.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").header("date")
        time.sleep(1.2)
        d2 = c.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").header("date")
    t1 = email.utils.parsedate_to_datetime(d1.decode()).timestamp()
    t2 = email.utils.parsedate_to_datetime(d2.decode()).timestamp()
    assert t2 > t1


def test_format_date_matches_rfc():
    sys.path.insert(0, str(SRC))
    try:
        from fastasgi._http._core import format_date
    finally:
        sys.path.remove(str(SRC))
    for ts in (0.0, 784111777.0, 1_800_000_000.5, time.time()):
        assert format_date(ts) == email.utils.formatdate(ts, usegmt=True).encode()


# --------------------------------------------------------------------------- keep-alive timeout


def test_keep_alive_timeout_closes_idle_connection(serve):
    srv = serve(CORE, "--no-date-header", "--timeout-keep-alive", "1")
    with RawConn(srv.port) as c:
        assert c.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").body == b"hello"
        t0 = time.monotonic()
        assert c.idle_for(0.6) == b"" and not c.eof, "closed well before the keep-alive timeout"
        assert c.is_closed(timeout=4.0), "idle connection not closed by --timeout-keep-alive 1"
        elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed <= 3.5, elapsed


def test_keep_alive_timeout_does_not_cut_a_slow_request(serve):
    srv = serve(CORE, "--no-date-header", "--timeout-keep-alive", "1")
    with RawConn(srv.port) as c:
        resp = c.request(b"GET /sleep?t=1.8 HTTP/1.1\r\n" + H + b"\r\n")
        assert resp.body == b"slept"
        assert c.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").body == b"hello"


# --------------------------------------------------------------------------- Expect: 100-continue

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def test_expect_100_sent_when_app_reads(core):
    with RawConn(core.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        assert c.read_exact(len(CONTINUE)) == CONTINUE
        c.send(b"hello")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"hello"
        # keep-alive still fine, no stray 100 for a request without Expect
        resp = c.request(b"POST /echo HTTP/1.1\r\n" + H + b"Content-Length: 2\r\n\r\nhi")
        assert resp.raw.startswith(b"HTTP/1.1 200 OK\r\n") and resp.body == b"hi"


def test_expect_100_only_once_app_reads(core):
    """The app sleeps 0.5 s before its first receive(): no 100 before that."""
    with RawConn(core.port) as c:
        c.send(
            b"POST /sleep-read?t=0.5 HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n"
        )
        assert c.idle_for(0.3) == b"", "100 Continue sent before the app asked for the body"
        assert c.read_exact(len(CONTINUE), timeout=3) == CONTINUE
        c.send(b"abc")
        assert c.read_response().body == b"abc"


def test_expect_100_not_sent_when_app_answers_without_reading(core):
    with RawConn(core.port) as c:
        c.send(b"POST /noread HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        resp = c.read_response()
        assert resp.status == 200 and resp.body == b"noread"
        assert b"100 Continue" not in resp.raw
        assert c.idle_for(0.2) == b"" or c.eof


def test_expect_100_chunked(core):
    with RawConn(core.port) as c:
        c.send(b"POST /echo HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
        assert c.read_exact(len(CONTINUE)) == CONTINUE
        c.send(b"3\r\nabc\r\n0\r\n\r\n")
        assert c.read_response().body == b"abc"


def test_expect_100_not_for_http10(core):
    received, closed = exchange(
        core.port, b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"
    )
    assert closed
    assert received.startswith(b"HTTP/1.1 200 OK\r\n") and received.endswith(b"\r\n\r\nabc")


def test_expect_100_body_already_sent(core):
    """A client that sends the body right away: the response must stay parseable (an
    interim 100, if any, comes before the final response and only once)."""
    with RawConn(core.port) as c:
        c.send(
            b"POST /echo HTTP/1.1\r\n"
            + H
            + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
            + CLOSE_REQ
        )
        data, closed = c.read_to_eof()
    assert closed
    assert data.count(b"100 Continue") <= 1
    data = data.removeprefix(CONTINUE)
    assert data.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\nhello" in data
    assert data.endswith(b"connection: close\r\n\r\nhello")


# --------------------------------------------------------------------------- unread bodies


@pytest.mark.parametrize("framing", ["cl", "chunked"])
def test_unread_body_is_never_parsed_as_a_request(core, token, framing):
    inner = b"GET /mark/%s HTTP/1.1\r\nHost: t\r\n\r\n" % token.encode()
    if framing == "cl":
        req = b"POST /noread HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(inner) + inner
    else:
        req = (
            b"POST /noread HTTP/1.1\r\n"
            + H
            + b"Transfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(inner)
            + inner
            + b"\r\n0\r\n\r\n"
        )
    with RawConn(core.port) as c:
        c.send(req + CLOSE_REQ)
        first = c.read_response()
        assert first.status == 200 and first.body == b"noread"
        rest, closed = c.read_to_eof()
    assert closed
    # the server may drain the body and answer the next request, or close instead
    assert rest in (b"", CLOSE_RESP)
    assert registry(core.port, token) == [], "request smuggled inside an unread body was run"


# --------------------------------------------------------------------------- disconnects


def test_receive_after_response_is_disconnect(core, token):
    with RawConn(core.port) as c:
        resp = c.request(b"GET /after-response/%s HTTP/1.1\r\nHost: t\r\n\r\n" % token.encode())
        assert resp.body == b"done"
        # the connection stays open: the disconnect is about the finished request
        entries = wait_registry(core.port, token, lambda e: e)
        assert entries == [{"after": "http.disconnect"}]
        assert c.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").body == b"hello"


@pytest.mark.parametrize("body", ["none", "content-length", "chunked"])
def test_receive_after_last_body_message_waits(core, body):
    """ASGI: once more_body was False, receive() blocks until the response is done or the
    client leaves; it must not hand out another http.request (Django asserts on that)."""
    req = b"POST /receive-after-body HTTP/1.1\r\n" + H
    if body == "none":
        req += b"\r\n"
    elif body == "content-length":
        req += b"Content-Length: 5\r\n\r\nhello"
    else:
        req += b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    with RawConn(core.port) as c:
        result = c.request(req).json()
    assert result == {"len": 0 if body == "none" else 5, "after": "waiting"}


def test_client_goes_away_mid_body(core, token):
    with RawConn(core.port) as c:
        c.send(
            b"POST /wait-disconnect/%s HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n0123456789"
            % token.encode()
        )
        time.sleep(0.2)
    entries = wait_registry(core.port, token, lambda e: e, timeout=6)
    assert len(entries) == 1
    seen = entries[0]["seen"]
    assert seen[-1] == "http.disconnect", seen
    assert set(seen[:-1]) <= {"http.request"}


def test_client_goes_away_while_app_waits(core, token):
    """Long poll: the body is complete, the app awaits receive() until the client leaves."""
    with RawConn(core.port) as c:
        c.send(b"GET /long-poll/%s HTTP/1.1\r\nHost: t\r\n\r\n" % token.encode())
        wait_registry(core.port, token, lambda e: len(e) >= 1)
        time.sleep(0.1)
    entries = wait_registry(core.port, token, lambda e: len(e) >= 2, timeout=6)
    assert entries == [{"first": "http.request", "more_body": False}, {"then": "http.disconnect"}]


def test_client_reset_while_app_waits(core, token):
    with RawConn(core.port) as c:
        c.send(b"GET /long-poll/%s HTTP/1.1\r\nHost: t\r\n\r\n" % token.encode())
        wait_registry(core.port, token, lambda e: len(e) >= 1)
        c.abort()
    entries = wait_registry(core.port, token, lambda e: len(e) >= 2, timeout=6)
    assert entries[1:] == [{"then": "http.disconnect"}]


def test_send_after_disconnect_does_not_break_server(core, token):
    with RawConn(core.port) as c:
        c.send(b"GET /send-after-disconnect/%s HTTP/1.1\r\nHost: t\r\n\r\n" % token.encode())
        time.sleep(0.1)
    entries = wait_registry(core.port, token, lambda e: e, timeout=6)
    assert len(entries) == 1 and entries[0]["disconnect"] == "http.disconnect", entries
    # ASGI 2.4: send() on a closed connection raises a subclass of OSError (or is a no-op)
    assert entries[0]["send"] == "ok" or entries[0].get("oserror"), entries
    assert http_get(core.port, "/plain").body == b"hello"


# --------------------------------------------------------------------------- app errors

ERR_FLAGS = ("--no-date-header", "--no-access-log")
ERR_500 = error_response(500)


@pytest.fixture
def errsrv(serve):
    return serve(CORE, *ERR_FLAGS)


def request_with_token(path: str, tok: str) -> bytes:
    return b"GET %s HTTP/1.1\r\nHost: t\r\nX-Token: %s\r\n\r\n" % (path.encode(), tok.encode())


def assert_logged_once(srv, mark, tok):
    """Exactly one traceback in the server's log since ``mark``."""
    text = srv.wait_log(mark, "Traceback")
    assert text.count("Traceback (most recent call last)") == 1, text
    return text


def assert_still_serving(srv):
    with RawConn(srv.port) as c:
        assert c.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").body == b"hello"


def test_exception_before_start_is_500(errsrv, token):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/raise-before", token) + CLOSE_REQ)
    assert received == ERR_500
    assert closed
    text = assert_logged_once(errsrv, mark, token)
    assert f"boom-{token}" in text and "Boom" in text
    assert "fastasgi.error" in text or "ERROR" in text.upper()
    assert_still_serving(errsrv)


@pytest.mark.parametrize("mode", ["whole", "bytewise"])
def test_exception_after_body_started_closes(errsrv, token, mode):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/raise-after", token) + CLOSE_REQ, mode)
    assert received == (
        b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-type: text/plain\r\n"
        b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n"
    )
    assert closed
    assert f"boom-{token}" in assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_exception_after_start_before_body(errsrv, token):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/raise-after-start", token) + CLOSE_REQ)
    assert closed
    assert b"200 OK" not in received
    assert received in (b"", ERR_500)
    assert f"boom-{token}" in assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_exception_after_complete_response(errsrv, token):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/raise-after-complete", token) + CLOSE_REQ)
    assert closed
    assert received.startswith(
        b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-type: text/plain\r\ncontent-length: 4\r\n"
    )
    rest = received.partition(b"\r\n\r\n")[2]
    assert rest.startswith(b"done")
    assert b"500" not in rest
    assert f"boom-{token}" in assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_return_without_response_is_500(errsrv, token):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/noresponse", token) + CLOSE_REQ)
    assert received == ERR_500
    assert closed
    assert registry(errsrv.port, token) == [{"returned": True}]
    text = errsrv.wait_log(mark, "\n")
    assert text.strip(), "returning without a response was not logged"
    assert "response" in text.lower()
    assert_still_serving(errsrv)


@pytest.mark.parametrize("variant", ["", "body"])
def test_second_response_start_is_an_error(errsrv, token, variant):
    mark = errsrv.log_mark()
    path = "/double-start/" + variant
    received, closed = exchange(errsrv.port, request_with_token(path, token) + CLOSE_REQ)
    assert closed
    entries = registry(errsrv.port, token)
    assert entries[-1]["raised"] == "start2", entries
    assert b"201" not in received, "a second status line reached the wire"
    if variant == "body":
        assert received == (
            b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-type: text/plain\r\n"
            b"transfer-encoding: chunked\r\n\r\n1\r\na\r\n"
        )
    else:
        assert received in (b"", ERR_500)
    assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_content_length_overrun_raises(errsrv, token):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/cl-over/split", token) + CLOSE_REQ)
    assert closed
    entries = registry(errsrv.port, token)
    assert entries[-1]["raised"] == "body2" and entries[-1]["exc"] == "RuntimeError", entries
    assert received == b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-length: 5\r\n\r\nhello"
    assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_content_length_overrun_in_first_message(errsrv, token):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token("/cl-over/first", token) + CLOSE_REQ)
    assert b"world" not in received, f"bytes beyond Content-Length reached the wire: {received!r}"
    assert closed
    entries = registry(errsrv.port, token)
    assert [e.get("exc") for e in entries if "raised" in e] == ["RuntimeError"], entries
    if received.startswith(b"HTTP/1.1 200"):
        assert len(received.partition(b"\r\n\r\n")[2]) <= 5
    else:
        assert received in (b"", ERR_500)
    assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_content_length_underrun_closes(errsrv):
    received, closed = exchange(errsrv.port, b"GET /cl-under HTTP/1.1\r\n" + H + b"\r\n" + CLOSE_REQ)
    assert received == b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-length: 10\r\n\r\nhello"
    assert closed, "connection kept open after a short body: the client would hang"
    assert_still_serving(errsrv)


BAD_HEADER_IDS = [
    "space_in_name",
    "colon_in_name",
    "empty_name",
    "crlf_in_name",
    "crlf_in_value",
    "lf_in_value",
    "cr_in_value",
    "nul_in_value",
]


@pytest.mark.parametrize("index", range(len(BAD_HEADER_IDS)), ids=BAD_HEADER_IDS)
def test_invalid_response_header_rejected(errsrv, token, index):
    mark = errsrv.log_mark()
    received, closed = exchange(errsrv.port, request_with_token(f"/badheader/{index}", token) + CLOSE_REQ)
    assert closed
    entries = registry(errsrv.port, token)
    raised = [e for e in entries if "raised" in e]
    assert raised, f"the app's send accepted an invalid header: {entries}"
    assert b"injected" not in received.lower()
    assert b"body-after-bad-header" not in received
    assert received in (b"", ERR_500), received
    assert_logged_once(errsrv, mark, token)
    assert_still_serving(errsrv)


def test_each_error_logged_once_across_many(errsrv):
    """Several failing requests: exactly one traceback each, and the server is fine."""
    mark = errsrv.log_mark()
    for i in range(5):
        exchange(errsrv.port, request_with_token("/raise-before", f"many{i}"))
    text = errsrv.wait_log(mark, "boom-many4")
    assert text.count("Traceback (most recent call last)") == 5, text
    for i in range(5):
        assert text.count(f"boom-many{i}") >= 1
    assert errsrv.alive()
    assert_still_serving(errsrv)


def test_errors_do_not_disturb_other_connections(errsrv, token):
    """An error on one connection leaves a concurrent keep-alive connection working."""
    with RawConn(errsrv.port) as other:
        assert other.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").body == b"hello"
        exchange(errsrv.port, request_with_token("/raise-after", token))
        exchange(errsrv.port, request_with_token("/raise-before", token))
        assert other.request(b"GET /plain HTTP/1.1\r\n" + H + b"\r\n").body == b"hello"


def test_no_error_logged_when_client_left_before_response(errsrv, token):
    """A long-poll app whose client went away returns without responding: nobody is left to
    get a 500, so this is not an app error (uvicorn logs nothing either)."""
    mark = errsrv.log_mark()
    with RawConn(errsrv.port) as c:
        c.send(b"GET /long-poll/%s HTTP/1.1\r\nHost: t\r\n\r\n" % token.encode())
        wait_registry(errsrv.port, token, lambda e: len(e) >= 1)
    entries = wait_registry(errsrv.port, token, lambda e: len(e) >= 2, timeout=6)
    assert entries[1:] == [{"then": "http.disconnect"}]
    time.sleep(0.2)
    assert "without starting" not in errsrv.log_since(mark), errsrv.log_since(mark)


def test_context_variables_are_per_request_across_suspension(serve):
    """A ContextVar set in the app's eager first step is still set after it suspends, and
    neither that request's later steps nor other requests on the same connection see
    another request's value (each request runs in a copy of the context, as a Task would)."""
    server = serve("core_ctx:app")
    with RawConn(server.port) as c:
        for value in ("one", "two"):
            c.send(b"GET /?%s HTTP/1.1\r\nHost: t\r\n\r\n" % value.encode())
            response = c.read_response()
            assert response.status == 200, response.raw
            assert json.loads(response.body) == {"before": "unset", "after": value, "task": True}
