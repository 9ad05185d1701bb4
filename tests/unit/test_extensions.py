"""The ASGI extensions the request model carries on both protocols (exchange.pxi), in process:
http.response.early_hint (RFC 8297 103 Early Hints), http.response.trailers on HTTP/1.1 (RFC
9112 7.1.2: a trailer section after chunked content, for a request whose TE names
"trailers"), and the fields RFC 9110 6.5.1 keeps out of trailers. The HTTP/2 side of trailers
is in test_h2_inproc.py; the tls extension, which needs a real TLS connection, in
tests/e2e/test_tls_extension.py."""

from __future__ import annotations

import h2.events
import pytest
from test_h2_inproc import Client

from support.inproc import connect, feed, make_ctx

HINTS = [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload; as=script"]


def _serve(app, request: bytes) -> tuple[bytes, list]:
    errors: list = []

    async def guarded(scope, receive, send):
        try:
            await app(scope, receive, send)
        except Exception as exc:
            errors.append(exc)
            raise

    ctx = make_ctx(guarded)
    proto, transport = connect(ctx)
    feed(proto, request)
    return transport.output(), errors


async def hinted(scope, receive, send):
    assert "http.response.early_hint" in scope["extensions"]
    await send({"type": "http.response.early_hint", "links": HINTS})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ok"})


def test_early_hints_on_http11():
    out, errors = _serve(hinted, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert not errors
    hint, _, rest = out.partition(b"\r\n\r\n")
    assert hint == (
        b"HTTP/1.1 103 Early Hints\r\nlink: </style.css>; rel=preload; as=style\r\n"
        b"link: </app.js>; rel=preload; as=script"
    )
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and rest.endswith(b"\r\n\r\nok")


def test_no_early_hints_to_an_http10_client():
    """RFC 9110 15.2: a server must not send a 1xx response to an HTTP/1.0 client."""
    out, errors = _serve(hinted, b"GET / HTTP/1.0\r\n\r\n")
    assert not errors and out.startswith(b"HTTP/1.1 200 OK\r\n") and b"103" not in out


def test_early_hint_after_the_response_start_is_an_app_error():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200})
        await send({"type": "http.response.early_hint", "links": HINTS})

    out, errors = _serve(app, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert [str(e) for e in errors] == [
        "Unexpected ASGI message 'http.response.early_hint' sent, after 'http.response.start'."
    ]
    assert out.startswith(b"HTTP/1.1 500 ")


def test_an_invalid_link_is_refused():
    async def app(scope, receive, send):
        await send({"type": "http.response.early_hint", "links": [b"</a>\r\nx-injected: 1"]})

    out, errors = _serve(app, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert len(errors) == 1 and out.startswith(b"HTTP/1.1 500 ")


def test_early_hints_on_http2():
    client = Client(hinted)
    stream = client.request()
    informational = client.of(stream, h2.events.InformationalResponseReceived)
    assert len(informational) == 1
    assert informational[0].headers == [(b":status", b"103"), (b"link", HINTS[0]), (b"link", HINTS[1])]
    status, _, body = client.response(stream)
    assert status == 200 and body == b"ok"


# --- trailers on HTTP/1.1 --------------------------------------------------------------------


def trailered(body_parts=(b"one ", b"two"), trailers=((b"x-checksum", b"abc"), (b"X-Count", b"2"))):
    async def app(scope, receive, send):
        assert "http.response.trailers" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain")]})
        for i, part in enumerate(body_parts):
            await send({"type": "http.response.body", "body": part, "more_body": i < len(body_parts) - 1})
        await send({"type": "http.response.trailers", "headers": list(trailers)})

    return app


TE = b"GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n"


@pytest.mark.parametrize("parts", [(b"one ", b"two"), (b"whole",)], ids=["streamed", "one message"])
def test_trailers_follow_the_last_chunk(parts):
    out, errors = _serve(trailered(parts), TE)
    assert not errors
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head and b"content-length" not in head
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts if p)
    assert body == chunks + b"0\r\nx-checksum: abc\r\nx-count: 2\r\n\r\n"


def test_the_connection_is_kept_alive_after_the_trailers():
    app = trailered()
    ctx = make_ctx(app)
    proto, transport = connect(ctx)
    one = b"GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n"
    feed(proto, one + one)
    out = transport.output()
    assert out.count(b"0\r\nx-checksum: abc\r\nx-count: 2\r\n\r\n") == 2
    assert b"connection: close" not in out


def test_no_trailers_extension_without_te_trailers():
    seen = []

    async def app(scope, receive, send):
        seen.append("http.response.trailers" in scope["extensions"])
        await send({"type": "http.response.start", "status": 200, "trailers": True})
        await send({"type": "http.response.body", "body": b"ok"})

    out, errors = _serve(app, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    # without TE: trailers the start's "trailers" is ignored: the response completes with its
    # body, with a content-length, as any other
    assert seen == [False] and not errors
    assert b"content-length: 2\r\n" in out and out.endswith(b"\r\n\r\nok")


def test_trailers_with_a_content_length_are_an_app_error():
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    out, errors = _serve(app, TE)
    assert len(errors) == 1 and "chunked" in str(errors[0]) and out.startswith(b"HTTP/1.1 500 ")


@pytest.mark.parametrize("name", [b"content-length", b"Transfer-Encoding", b"host", b"set-cookie", b"trailer"])
def test_forbidden_trailer_fields_are_refused(name):
    out, errors = _serve(trailered(trailers=((name, b"1"),)), TE)
    assert len(errors) == 1 and "RFC 9110 6.5.1" in str(errors[0])
    # the body was on the wire already: the connection is closed without the last chunk's end
    assert not out.endswith(b"\r\n\r\n")


def test_forbidden_trailer_fields_are_refused_on_http2():
    errors = []

    async def app(scope, receive, send):
        try:
            await trailered(trailers=((b"content-length", b"1"),))(scope, receive, send)
        except RuntimeError as exc:
            errors.append(exc)
            raise

    client = Client(app)
    stream = client.request()
    assert len(errors) == 1 and client.of(stream, h2.events.StreamReset)


def test_head_with_trailers_has_neither_body_nor_trailer_section():
    out, errors = _serve(trailered(), b"HEAD / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\n")
    assert b"x-checksum" not in out
