"""Raw ASGI 3 app the core protocol tests drive (served as ``core_app:app``).

Routes are chosen by the first path segment. Every request is remembered so a test can ask,
over another connection, whether a request was processed (``/registry/<token>``): that is how
smuggling tests check that nothing after a bad request reached the app.

Query parameters are plain ``k=v`` pairs. The ``x-token`` request header names a registry
entry for routes that record what they observed.
"""

import asyncio
import hashlib
import json
from collections import defaultdict
from urllib.parse import parse_qsl

REGISTRY: dict[str, list] = defaultdict(list)
BIG = b"b" * (256 * 1024)
PATTERN = bytes(range(256)) * 256  # 64 KiB, position-dependent content


def pattern(size: int) -> bytes:
    """The deterministic download body of ``size`` bytes (tests rebuild it to compare)."""
    reps, rest = divmod(size, len(PATTERN))
    return PATTERN * reps + PATTERN[:rest]


def _params(scope) -> dict[str, str]:
    return dict(parse_qsl(scope["query_string"].decode("latin-1")))


def _token(scope) -> str:
    for k, v in scope["headers"]:
        if k == b"x-token":
            return v.decode()
    return ""


def _jsonable(obj):
    if isinstance(obj, bytes):
        return obj.decode("latin-1")
    if isinstance(obj, (list, tuple)):
        return [_jsonable(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    return obj


async def _respond(send, status=200, body=b"", headers=None, content_type=b"text/plain"):
    hdrs = [(b"content-type", content_type)] if content_type else []
    hdrs += headers or []
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive) -> tuple[bytes, list]:
    """The whole request body and the (length, more_body) of each message."""
    parts, seen = [], []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            seen.append(("disconnect",))
            return None, seen
        parts.append(msg.get("body", b""))
        seen.append((len(msg.get("body", b"")), msg.get("more_body", False)))
        if not msg.get("more_body", False):
            return b"".join(parts), seen


# ---------------------------------------------------------------- lifespan


async def lifespan(scope, receive, send):
    while True:
        msg = await receive()
        if msg["type"] == "lifespan.startup":
            if "state" in scope:
                scope["state"]["from_lifespan"] = "yes"
            await send({"type": "lifespan.startup.complete"})
        elif msg["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# ---------------------------------------------------------------- routes


async def r_plain(scope, receive, send, arg):
    await _respond(send, body=b"hello")


async def r_empty(scope, receive, send, arg):
    await _respond(send, body=b"")


async def r_stream(scope, receive, send, arg):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ab", "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": True})
    await send({"type": "http.response.body", "body": b"cde", "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def r_stream_last(scope, receive, send, arg):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"ab", "more_body": True})
    await send({"type": "http.response.body", "body": b"cd"})


async def r_cl(scope, receive, send, arg):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"5")],
        }
    )
    await send({"type": "http.response.body", "body": b"he", "more_body": True})
    await send({"type": "http.response.body", "body": b"llo"})


async def r_status(scope, receive, send, arg):
    """/status/<code>: empty body; 304 carries an ETag. /status/<code>?body=x sends a body
    the server must drop for 204/304."""
    code = int(arg)
    headers = [(b"etag", b'"abc"')] if code == 304 else []
    body = _params(scope).get("body", "").encode()
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def r_connclose(scope, receive, send, arg):
    await _respond(send, body=b"bye", headers=[(b"connection", b"close")])


async def r_headers_order(scope, receive, send, arg):
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"x-first", b"1"),
                (b"content-type", b"text/plain"),
                (b"x-dup", b"a"),
                (b"x-dup", b"b"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"ok"})


async def r_own_server_date(scope, receive, send, arg):
    """The app sends its own Server and Date headers."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"server", b"myapp"),
                (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"own"})


async def r_echo(scope, receive, send, arg):
    body, seen = await _read_body(receive)
    if body is None:  # client went away
        REGISTRY[_token(scope)].append({"echo": seen})
        return
    await _respond(send, body=body, content_type=b"application/octet-stream")


async def r_echo_stream(scope, receive, send, arg):
    """Every received body message is sent straight back as one chunk."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return
        await send({"type": "http.response.body", "body": msg.get("body", b""), "more_body": True})
        if not msg.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b""})


async def r_digest(scope, receive, send, arg):
    body, seen = await _read_body(receive)
    if body is None:
        REGISTRY[_token(scope)].append({"digest": "disconnect", "seen": seen})
        return
    result = {"len": len(body), "sha256": hashlib.sha256(body).hexdigest(), "messages": seen}
    await _respond(send, body=json.dumps(result).encode(), content_type=b"application/json")


async def r_download(scope, receive, send, arg):
    """/download?size=N[&cl=1][&chunk=K]: N pattern bytes in K-byte messages."""
    p = _params(scope)
    size, chunk = int(p["size"]), int(p.get("chunk", 65536))
    headers = [(b"content-type", b"application/octet-stream")]
    if p.get("cl"):
        headers.append((b"content-length", str(size).encode()))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    data = pattern(size)
    view = memoryview(data)
    for i in range(0, size, chunk):
        await send({"type": "http.response.body", "body": bytes(view[i : i + chunk]), "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def r_sleep(scope, receive, send, arg):
    await asyncio.sleep(float(_params(scope).get("t", "0.2")))
    await _respond(send, body=b"slept")


async def r_sleep_read(scope, receive, send, arg):
    """Sleep, then read the body and echo it (Expect: 100-continue timing)."""
    await asyncio.sleep(float(_params(scope).get("t", "0.3")))
    await r_echo(scope, receive, send, arg)


async def r_noread(scope, receive, send, arg):
    await _respond(send, body=b"noread")


async def r_scope(scope, receive, send, arg):
    if _params(scope).get("mutate") and isinstance(scope.get("state"), dict):
        scope["state"]["mutated_by_request"] = True
    types = {k: type(v).__name__ for k, v in scope.items()}
    types["headers_items"] = sorted({type(x).__name__ for pair in scope["headers"] for x in pair})
    types["headers_pairs"] = sorted({type(pair).__name__ for pair in scope["headers"]})
    for key in ("client", "server"):
        if scope.get(key) is not None:
            types[key + "_items"] = [type(x).__name__ for x in scope[key]]
    body = json.dumps({"scope": _jsonable(dict(scope)), "keys": sorted(scope), "types": types}).encode()
    await _respond(send, body=body, content_type=b"application/json")


async def r_mark(scope, receive, send, arg):
    REGISTRY[arg].append({"mark": scope["method"]})
    await _respond(send, body=b"marked")


async def r_registry(scope, receive, send, arg):
    await _respond(send, body=json.dumps(REGISTRY.get(arg, [])).encode(), content_type=b"application/json")


# ---- app errors: each records into the registry under the x-token header, then fails


class Boom(RuntimeError):
    pass


async def r_raise_before(scope, receive, send, arg):
    raise Boom(f"boom-{_token(scope)}")


async def r_raise_after(scope, receive, send, arg):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hello", "more_body": True})
    raise Boom(f"boom-{_token(scope)}")


async def r_raise_after_start(scope, receive, send, arg):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    raise Boom(f"boom-{_token(scope)}")


async def r_raise_after_complete(scope, receive, send, arg):
    await _respond(send, body=b"done")
    raise Boom(f"boom-{_token(scope)}")


async def r_noresponse(scope, receive, send, arg):
    REGISTRY[_token(scope)].append({"returned": True})


async def r_start_only(scope, receive, send, arg):
    """Start a response, then return without any body message."""
    REGISTRY[_token(scope)].append({"started": True})
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})


async def r_headers_after_body(scope, receive, send, arg):
    """Read the whole body, then answer the request's headers as the app sees them then
    (a server that let trailer fields into the scope would show them here)."""
    body, _ = await _read_body(receive)
    await _respond(
        send,
        body=json.dumps({"headers": _jsonable(scope["headers"]), "body": _jsonable(body)}).encode(),
        content_type=b"application/json",
    )


async def _send_recording(scope, send, msg, label):
    """send(msg); on an exception record it and re-raise it unchanged."""
    try:
        await send(msg)
    except Exception as exc:
        REGISTRY[_token(scope)].append({"raised": label, "exc": type(exc).__name__, "msg": str(exc)})
        raise
    REGISTRY[_token(scope)].append({"sent": label})


async def r_double_start(scope, receive, send, arg):
    start = {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
    await _send_recording(scope, send, start, "start1")
    if arg == "body":
        await _send_recording(
            scope, send, {"type": "http.response.body", "body": b"a", "more_body": True}, "body1"
        )
    await _send_recording(scope, send, dict(start, status=201), "start2")


async def r_cl_over(scope, receive, send, arg):
    """content-length 5 but 11 body bytes: /cl-over/split sends 5 then 6; /cl-over/first
    sends all 11 in the first message."""
    await _send_recording(
        scope,
        send,
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]},
        "start",
    )
    if arg == "first":
        await _send_recording(scope, send, {"type": "http.response.body", "body": b"hello world"}, "body")
    else:
        await _send_recording(
            scope, send, {"type": "http.response.body", "body": b"hello", "more_body": True}, "body1"
        )
        await _send_recording(scope, send, {"type": "http.response.body", "body": b" world"}, "body2")


async def r_cl_under(scope, receive, send, arg):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
    await send({"type": "http.response.body", "body": b"hello"})


BAD_HEADERS = [
    (b"bad name", b"v"),
    (b"bad:name", b"v"),
    (b"", b"v"),
    (b"bad\r\nname", b"v"),
    (b"x-a", b"v\r\nInjected: 1"),
    (b"x-a", b"v\nInjected: 1"),
    (b"x-a", b"v\rInjected: 1"),
    (b"x-a", b"v\x00Injected"),
]


async def r_badheader(scope, receive, send, arg):
    name, value = BAD_HEADERS[int(arg)]
    await _send_recording(
        scope,
        send,
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (name, value)],
        },
        "start",
    )
    await _send_recording(
        scope, send, {"type": "http.response.body", "body": b"body-after-bad-header"}, "body"
    )


# ---- disconnects


async def r_after_response(scope, receive, send, arg):
    """Complete the response, then ask receive() what happens next."""
    await _read_body(receive)
    await _respond(send, body=b"done")
    try:
        msg = await asyncio.wait_for(receive(), 3)
        REGISTRY[arg].append({"after": msg["type"]})
    except asyncio.TimeoutError:
        REGISTRY[arg].append({"after": "timeout"})


async def r_wait_disconnect(scope, receive, send, arg):
    """Read body messages until http.disconnect (the client leaves mid-request)."""
    seen = []
    try:
        while True:
            msg = await asyncio.wait_for(receive(), 5)
            seen.append(msg["type"])
            if msg["type"] == "http.disconnect":
                break
    except asyncio.TimeoutError:
        seen.append("timeout")
    REGISTRY[arg].append({"seen": seen})


async def r_long_poll(scope, receive, send, arg):
    """GET without a response: after the (empty) body, the next receive() blocks until
    the client goes away."""
    first = await receive()
    REGISTRY[arg].append({"first": first["type"], "more_body": first.get("more_body", False)})
    try:
        msg = await asyncio.wait_for(receive(), 5)
        REGISTRY[arg].append({"then": msg["type"]})
    except asyncio.TimeoutError:
        REGISTRY[arg].append({"then": "timeout"})


async def r_receive_after_body(scope, receive, send, arg):
    """After the last body message, receive() must wait (for a disconnect): record what a
    short wait gives, then respond."""
    body, _ = await _read_body(receive)
    try:
        msg = await asyncio.wait_for(receive(), 0.3)
        after = msg["type"]
    except asyncio.TimeoutError:
        after = "waiting"
    await _respond(
        send,
        body=json.dumps({"len": len(body or b""), "after": after}).encode(),
        content_type=b"application/json",
    )


async def r_send_after_disconnect(scope, receive, send, arg):
    """Wait for the client to go away, then try to respond."""
    await receive()
    try:
        msg = await asyncio.wait_for(receive(), 5)
    except asyncio.TimeoutError:
        msg = {"type": "timeout"}
    try:
        await _respond(send, body=b"late")
        REGISTRY[arg].append({"disconnect": msg["type"], "send": "ok"})
    except Exception as exc:  # noqa: BLE001 - the test asserts which exception send raised
        REGISTRY[arg].append(
            {"disconnect": msg["type"], "send": type(exc).__name__, "oserror": isinstance(exc, OSError)}
        )


# ---- flow control


async def r_big(scope, receive, send, arg):
    """/big/<token>/<i>: count the request, answer 256 KiB."""
    tok = arg.split("/")[0]
    REGISTRY[tok].append(1)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(BIG)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": BIG})


async def r_stream_big(scope, receive, send, arg):
    """/stream-big/<token>?size=N: stream N bytes in 64 KiB chunks, recording progress."""
    size = int(_params(scope)["size"])
    progress = {"sent": 0, "done": False}
    REGISTRY[arg].append(progress)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    chunk = b"s" * 65536
    while progress["sent"] < size:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        progress["sent"] += len(chunk)
    await send({"type": "http.response.body", "body": b""})
    progress["done"] = True


async def r_slow_consumer(scope, receive, send, arg):
    """Do not read the body for t seconds, then read it all and report its length."""
    await asyncio.sleep(float(_params(scope).get("t", "1.0")))
    body, _ = await _read_body(receive)
    REGISTRY[arg].append({"len": None if body is None else len(body)})
    if body is not None:
        await _respond(send, body=str(len(body)).encode())


async def r_not_found(scope, receive, send, arg):
    await _respond(send, status=404, body=b"not found")


ROUTES = {
    "plain": r_plain,
    "empty": r_empty,
    "stream": r_stream,
    "stream-last": r_stream_last,
    "cl": r_cl,
    "status": r_status,
    "connclose": r_connclose,
    "headers-order": r_headers_order,
    "own-server-date": r_own_server_date,
    "echo": r_echo,
    "echo-stream": r_echo_stream,
    "digest": r_digest,
    "download": r_download,
    "sleep": r_sleep,
    "sleep-read": r_sleep_read,
    "noread": r_noread,
    "scope": r_scope,
    "mark": r_mark,
    "registry": r_registry,
    "raise-before": r_raise_before,
    "raise-after": r_raise_after,
    "raise-after-start": r_raise_after_start,
    "raise-after-complete": r_raise_after_complete,
    "noresponse": r_noresponse,
    "start-only": r_start_only,
    "headers-after-body": r_headers_after_body,
    "double-start": r_double_start,
    "cl-over": r_cl_over,
    "cl-under": r_cl_under,
    "badheader": r_badheader,
    "after-response": r_after_response,
    "wait-disconnect": r_wait_disconnect,
    "long-poll": r_long_poll,
    "send-after-disconnect": r_send_after_disconnect,
    "receive-after-body": r_receive_after_body,
    "big": r_big,
    "stream-big": r_stream_big,
    "slow-consumer": r_slow_consumer,
}


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await lifespan(scope, receive, send)
    assert scope["type"] == "http", scope["type"]
    path = scope["path"]
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    first, _, arg = path.lstrip("/").partition("/")
    await ROUTES.get(first, r_not_found)(scope, receive, send, arg)
