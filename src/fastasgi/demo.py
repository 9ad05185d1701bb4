"""A small raw-ASGI demo application: ``fastasgi fastasgi.demo:app``.

Routes:

- ``/``: an HTML page saying fastasgi works, showing the request's ASGI scope;
- ``/json``: a JSON document;
- ``/echo``: POST a body, get it back (streamed back as it arrives);
- ``/stream``: a chunked response, one line every ``delay`` seconds (``?n=10&delay=0.2``);
- ``/ws``: a WebSocket that echoes each message (when WebSockets are on).

It uses no framework, so it also shows what an ASGI application is underneath one.
"""

from __future__ import annotations

import asyncio
import html
import json
import platform
import time
from typing import Any
from urllib.parse import parse_qs

from fastasgi._version import __version__

Scope = dict[str, Any]

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fastasgi works</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; color: #222; }}
  h1 {{ color: #0a7d38; }}
  pre {{ background: #f4f4f4; padding: 1rem; overflow-x: auto; }}
  code {{ background: #f4f4f4; padding: 0 .2rem; }}
</style>
</head>
<body>
<h1>fastasgi works</h1>
<p>fastasgi {version} on {python}, up for {uptime:.0f} s. This page is served by the built-in
demo app <code>fastasgi.demo:app</code>. Serve your own with <code>fastasgi main:app</code>.</p>
<ul>
  <li><a href="{root}/json">{root}/json</a>: a JSON response</li>
  <li><a href="{root}/stream">{root}/stream</a>: a streamed (chunked) response</li>
  <li><code>curl -d hello {base}/echo</code>: POST echo</li>
  <li><code>{ws_base}/ws</code>: WebSocket echo, e.g. <code>python3 -m websockets {ws_base}/ws</code></li>
</ul>
<form method="post" action="{root}/echo"><input name="say" value="hello"> <button>POST to /echo</button></form>
<h2>Your request's ASGI scope</h2>
<pre>{scope}</pre>
</body>
</html>
"""


async def app(scope: Scope, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        await websocket_echo(scope, receive, send)
    elif scope["type"] == "http":
        path = scope["path"]
        if path in ("/", ""):
            await index(scope, send)
        elif path == "/json":
            await json_document(scope, send)
        elif path == "/echo":
            await echo(scope, receive, send)
        elif path == "/stream":
            await stream(scope, send)
        else:
            await respond(send, 404, b"Not Found\n")


async def lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if "state" in scope:
                scope["state"]["started_at"] = time.time()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _base_url(scope: Scope, scheme: str) -> str:
    """The URL this page was reached at, up to the root path, so the commands on the page can
    be pasted as they are: the Host header, else the server's address."""
    host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 8000)
        host = f"[{server[0]}]:{server[1]}" if ":" in str(server[0]) else f"{server[0]}:{server[1]}"
    return f"{scheme}://{host}{scope.get('root_path', '')}"


async def index(scope: Scope, send: Any) -> None:
    started_at = scope.get("state", {}).get("started_at", time.time())
    page = PAGE.format(
        version=__version__,
        python=f"{platform.python_implementation()} {platform.python_version()}",
        uptime=time.time() - started_at,
        root=html.escape(scope.get("root_path", "")),
        base=html.escape(_base_url(scope, scope.get("scheme", "http"))),
        ws_base=html.escape(_base_url(scope, "wss" if scope.get("scheme") == "https" else "ws")),
        scope=html.escape(json.dumps(_printable(scope), indent=2)),
    )
    await respond(send, 200, page.encode(), b"text/html; charset=utf-8")


async def json_document(scope: Scope, send: Any) -> None:
    document = {
        "message": "fastasgi works",
        "server": f"fastasgi {__version__}",
        "python": platform.python_version(),
        "method": scope["method"],
        "path": scope["path"],
        "http_version": scope["http_version"],
    }
    await respond(send, 200, json.dumps(document).encode(), b"application/json")


async def echo(scope: Scope, receive: Any, send: Any) -> None:
    if scope["method"] != "POST":
        await respond(send, 405, b"Method Not Allowed: POST a body to /echo\n", extra=[(b"allow", b"POST")])
        return
    content_type = b"application/octet-stream"
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    # Each piece goes back as it arrives: the response is streamed (chunked).
    more_body = True
    while more_body:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        more_body = message.get("more_body", False)
        await send({"type": "http.response.body", "body": message.get("body", b""), "more_body": more_body})


async def stream(scope: Scope, send: Any) -> None:
    query = parse_qs(scope["query_string"].decode("latin-1"))
    try:
        count = min(max(int(query.get("n", ["10"])[0]), 0), 1000)
        delay = min(max(float(query.get("delay", ["0.2"])[0]), 0.0), 5.0)
    except ValueError:
        await respond(send, 400, b"n must be an integer and delay a number\n")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    for number in range(1, count + 1):
        await send(
            {"type": "http.response.body", "body": f"line {number} of {count}\n".encode(), "more_body": True}
        )
        if delay and number < count:
            await asyncio.sleep(delay)
    await send({"type": "http.response.body", "body": b""})


async def websocket_echo(scope: Scope, receive: Any, send: Any) -> None:
    if scope["path"] != "/ws":
        await send({"type": "websocket.close", "code": 1008})
        return
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})
        else:  # websocket.disconnect
            return


async def respond(
    send: Any, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8", extra: Any = ()
) -> None:
    headers = [(b"content-type", content_type), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _printable(value: Any) -> Any:
    """The scope as JSON-friendly data: bytes shown as text, tuples as lists."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(key): _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)
