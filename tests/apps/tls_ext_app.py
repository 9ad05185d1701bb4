"""Raw ASGI 3 app for tests/e2e/test_tls_extension.py: answers (HTTP) or sends (websocket)
the scope's tls extension as JSON, with the http_version it came over."""

import json


def _ext(scope) -> bytes:
    return json.dumps({"http_version": scope.get("http_version"),
                       "tls": (scope.get("extensions") or {}).get("tls")}).encode()


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": _ext(scope).decode()})
        await send({"type": "websocket.close"})
        return
    body = _ext(scope)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": body})
