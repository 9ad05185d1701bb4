"""Raw ASGI app for the production-operations tests (tests/test_ops_*.py).

/scope          the request scope as JSON (bytes as latin-1 text); websocket: accept, send it
/hold           websocket: accept and stay open until closed
/body           reads the whole body, answers its length
/read-one       reads one body message, then answers (the rest of the body is never waited for)
/slow?s=N       waits N seconds (default 2), printing "slow started"/"slow done" to stderr;
                a cancellation prints "slow cancelled"
/bytes?n=N      answers N bytes of "x"
/env?name=X     the environment variable X, or <unset>
anything else:  "ok"
Lifespan is supported; the startup prints "ops_app pid=<pid>".
"""

import asyncio
import json
import os
import sys


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def _query(scope, name, default):
    for pair in scope["query_string"].decode().split("&"):
        key, _, value = pair.partition("=")
        if key == name:
            return value
    return default


async def _respond(send, body, status=200, content_type=b"text/plain"):
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", content_type)]}
    )
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            print(f"ops_app pid={os.getpid()}", file=sys.stderr, flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        if scope["path"] == "/hold":  # until the client or the server closes
            while (await receive())["type"] != "websocket.disconnect":
                pass
            return
        await send(
            {
                "type": "websocket.send",
                "text": json.dumps(_jsonable({k: v for k, v in scope.items() if k != "state"})),
            }
        )
        await send({"type": "websocket.close", "code": 1000})
        return
    path = scope["path"]
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]  # as frameworks do: routes are below the root path
    if path == "/scope":
        await _respond(send, json.dumps(_jsonable(scope)).encode(), content_type=b"application/json")
    elif path == "/body":
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _respond(send, str(size).encode())
    elif path == "/read-one":
        message = await receive()
        await _respond(send, str(len(message.get("body", b""))).encode())
    elif path == "/slow":
        seconds = float(_query(scope, "s", "2"))
        print("slow started", file=sys.stderr, flush=True)
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            print("slow cancelled", file=sys.stderr, flush=True)
            raise
        print("slow done", file=sys.stderr, flush=True)
        await _respond(send, b"slow done")
    elif path == "/env":
        await _respond(send, os.environ.get(_query(scope, "name", ""), "<unset>").encode())
    elif path == "/bytes":
        await _respond(send, b"x" * int(_query(scope, "n", "0")))
    else:
        await _respond(send, b"ok")
