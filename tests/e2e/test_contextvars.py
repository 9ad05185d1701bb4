"""No context variable set by one request is seen by the next on the same connection: kept
alive, pipelined, after a large body (reading paused and resumed from inside the request),
and on HTTP/2 streams; with and without --reset-contextvars. By default a request starts
from a copy of its connection's context, so a variable set outside any request (at import)
is seen; --reset-contextvars starts each request from an empty context (uvicorn's meaning),
which hides it. tests/apps/ctxvar_app.py says what the app answers."""

from __future__ import annotations

import pytest

from support.client import RawConn
from support.h2frames import H2Conn

UNSET = "unset"
BIG = 1024 * 1024  # well past the 64 KiB at which reading pauses until the app takes the body


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def _post(path: str, size: int) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n".encode() + b"x" * size


@pytest.fixture(params=["default", "reset"])
def server(request, serve):
    args = ("--reset-contextvars",) if request.param == "reset" else ()
    proc = serve("ctxvar_app:app", "--http2", *args)
    outer = UNSET if request.param == "reset" else "set at import"
    return proc.port, outer


def _check(answers: list[dict], outer: str) -> None:
    assert answers == [{"seen": UNSET, "outer": outer}] * len(answers), answers


@pytest.mark.parametrize("first", ["/plain", "/sleep"])
def test_kept_alive(server, first):
    port, outer = server
    with RawConn(port) as conn:
        answers = [conn.request(_get(first)).json(), conn.request(_get("/second")).json()]
        answers.append(conn.request(_get("/third")).json())
    _check(answers, outer)


@pytest.mark.parametrize("first", ["/plain", "/sleep"])
def test_pipelined(server, first):
    port, outer = server
    with RawConn(port) as conn:
        conn.send(_get(first) + _get("/second") + _get("/sleep") + _get("/fourth"))
        answers = [conn.read_response().json() for _ in range(4)]
    _check(answers, outer)


def test_after_a_large_body(server):
    port, outer = server
    with RawConn(port, timeout=15) as conn:
        answers = [conn.request(_post("/upload", BIG), method="POST").json()]
        conn.send(_post("/upload2", BIG) + _get("/after"))
        answers += [conn.read_response("POST").json(), conn.read_response().json()]
    _check(answers, outer)


def test_http2_streams(server):
    port, outer = server
    import json

    with H2Conn(port) as h2:
        h2.handshake()
        answers = [json.loads(h2.fetch("GET", path).body) for path in ("/plain", "/sleep", "/third")]
        # several streams at once on the connection
        sids = [h2.request("GET", f"/concurrent{i}") for i in range(4)]
        answers += [json.loads(h2.response(sid).body) for sid in sids]
        answers.append(json.loads(h2.fetch("POST", "/upload", body=b"y" * 100000).body))
        answers.append(json.loads(h2.fetch("GET", "/last").body))
    _check(answers, outer)
