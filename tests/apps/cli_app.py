"""Raw ASGI app for the CLI and API tests (tests/test_cli.py, tests/test_api.py).

/scope      the request scope as JSON (bytes as latin-1 text)
/slow?s=N   waits N seconds (default 2), printing "slow started"/"slow done" to stderr
/loop       the module and class name of the running event loop
anything else: "hello from cli_app"
"""

import asyncio
import json
import sys


def _jsonable(value):
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


async def _respond(send, body, content_type=b"text/plain"):
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]  # as frameworks do: routes are below the root path
    if path == "/scope":
        await _respond(send, json.dumps(_jsonable(scope)).encode(), b"application/json")
    elif path == "/slow":
        seconds = float(scope["query_string"].decode().partition("=")[2] or 2)
        print("slow started", file=sys.stderr, flush=True)
        await asyncio.sleep(seconds)
        print("slow done", file=sys.stderr, flush=True)
        await _respond(send, b"slow done")
    elif path == "/loop":
        loop = asyncio.get_running_loop()
        await _respond(send, f"{type(loop).__module__}.{type(loop).__name__}".encode())
    else:
        await _respond(send, b"hello from cli_app")


def create_app():
    """A factory: fastasgi --factory cli_app:create_app."""

    async def factory_app(scope, receive, send):
        if scope["type"] == "http":
            await _respond(send, b"hello from the factory")

    return factory_app


def create_app_needs_argument(setting):
    return app


not_callable = 42


class Nested:
    inner = staticmethod(app)
