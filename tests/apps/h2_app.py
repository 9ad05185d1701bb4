"""Raw ASGI 3 app the HTTP/2 conformance suite serves (tests/e2e/test_h2_conformance.py),
under fastasgi or a peer server. Routes are chosen by the first path segment:

- ``GET|HEAD /``: 200 "ok"
- ``/echo``: the request body back, once it is complete
- ``/stream?size=N&chunk=K``: N pattern bytes in K-byte messages, no content-length
- ``/hold?ms=N``: reads the request, then answers only after N ms or when the client goes
  away, so that the stream stays open (half-closed (remote)) for the test
- ``/trailers``: "ok" and an ``x-check`` trailer when the scope advertises the
  ``http.response.trailers`` extension, else 200 "no trailers"
- ``/scope``: what the app saw (method, path, headers) as JSON
- ``/hop``: the app asks for connection-specific response fields (RFC 9113 8.2.2)
- ``/mixed-case``: the app sends a response field name with uppercase letters (RFC 9113 8.2)
- ``/bad-length``: the app declares content-length 10 and sends 5 bytes (RFC 9113 8.1.1)
- ``/status/<code>``: an empty response with that status (and a body the server must drop)
- ``/registry/<token>``: the requests that carried ``x-mark: <token>`` (on any route), so a
  test can show that a malformed request never reached the app
"""

import asyncio
import json
from collections import defaultdict
from urllib.parse import parse_qsl

REGISTRY: dict[str, list[str]] = defaultdict(list)
PATTERN = bytes(range(256)) * 64  # 16 KiB, position-dependent content


def pattern(size: int) -> bytes:
    """The deterministic body of ``/stream?size=N`` (tests rebuild it to compare)."""
    reps, rest = divmod(size, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


def _params(scope) -> dict[str, str]:
    return dict(parse_qsl(scope["query_string"].decode("latin-1")))


async def _respond(send, status=200, body=b"", headers=None):
    hdrs = [(b"content-type", b"text/plain"), *(headers or [])]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> bytes | None:
    """The whole request body, or None when the client went away first."""
    parts = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        parts.append(msg.get("body", b""))
        if not msg.get("more_body", False):
            return b"".join(parts)


async def r_root(scope, receive, send, arg):
    await _respond(send, body=b"ok")


async def r_echo(scope, receive, send, arg):
    body = await _read_body(receive)
    if body is not None:
        await _respond(send, body=body, headers=[(b"x-echo-length", str(len(body)).encode())])


async def r_stream(scope, receive, send, arg):
    params = _params(scope)
    size, chunk = int(params.get("size", "100000")), int(params.get("chunk", "16384"))
    body = pattern(size)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/octet-stream")],
        }
    )
    for start in range(0, size, chunk):
        await send({"type": "http.response.body", "body": body[start : start + chunk], "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def r_hold(scope, receive, send, arg):
    if await _read_body(receive) is None:
        return
    ms = int(_params(scope).get("ms", "5000"))
    try:
        msg = await asyncio.wait_for(receive(), ms / 1000)
    except asyncio.TimeoutError:
        await _respond(send, body=b"held")
        return
    if msg["type"] != "http.disconnect":  # pragma: no cover - nothing else can come
        await _respond(send, body=b"held")


async def r_trailers(scope, receive, send, arg):
    await _read_body(receive)
    if "http.response.trailers" not in scope.get("extensions", {}):
        await _respond(send, body=b"no trailers")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
            "trailers": True,
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})
    await send({"type": "http.response.trailers", "headers": [(b"x-check", b"done")], "more_trailers": False})


async def r_scope(scope, receive, send, arg):
    body = await _read_body(receive)
    seen = {
        "method": scope["method"],
        "path": scope["path"],
        "scheme": scope["scheme"],
        "http_version": scope["http_version"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "body_length": None if body is None else len(body),
    }
    await _respond(send, body=json.dumps(seen).encode(), headers=[(b"x-json", b"1")])


async def r_hop(scope, receive, send, arg):
    await _respond(
        send,
        body=b"hop",
        headers=[
            (b"connection", b"keep-alive"),
            (b"keep-alive", b"timeout=5"),
            (b"proxy-connection", b"keep-alive"),
            (b"transfer-encoding", b"chunked"),
            (b"upgrade", b"h2c"),
        ],
    )


async def r_mixed_case(scope, receive, send, arg):
    await _respond(send, body=b"case", headers=[(b"X-Mixed-Case", b"1")])


async def r_bad_length(scope, receive, send, arg):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b"short"})


async def r_status(scope, receive, send, arg):
    code = int(arg)
    await send({"type": "http.response.start", "status": code, "headers": []})
    await send({"type": "http.response.body", "body": b"must not be sent" if code in (204, 304) else b""})


async def r_registry(scope, receive, send, arg):
    await _respond(send, body=json.dumps(REGISTRY.get(arg, [])).encode())


ROUTES = {
    "": r_root,
    "echo": r_echo,
    "stream": r_stream,
    "hold": r_hold,
    "trailers": r_trailers,
    "scope": r_scope,
    "hop": r_hop,
    "mixed-case": r_mixed_case,
    "bad-length": r_bad_length,
    "status": r_status,
    "registry": r_registry,
}


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    for name, value in scope["headers"]:
        if name == b"x-mark":
            REGISTRY[value.decode("latin-1")].append(f"{scope['method']} {scope['path']}")
    first, _, arg = scope["path"].lstrip("/").partition("/")
    route = ROUTES.get(first)
    if route is None:
        await _respond(send, status=404, body=b"no route")
        return
    await route(scope, receive, send, arg)
