"""Raw ASGI 3 app for tests/e2e/test_contextvars.py: what a request sees of context variables
that an earlier request on the same connection set, and of one set outside any request.

Every http request answers JSON ``{"seen": ..., "outer": ...}``: the value of REQUEST_VAR when
the request began (``"unset"`` unless something leaked) and of OUTER (set when this module was
imported, outside any request: visible by default, hidden by --reset-contextvars). Then it sets
REQUEST_VAR to its own path. ``POST`` reads the whole body first, so a large body makes the
server pause and resume reading from inside the request (the path by which asyncio's
transports carry one request's context into the next: CPython issue 140947); ``/sleep``
suspends before answering.
"""

import asyncio
import contextvars
import json

REQUEST_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")
OUTER: contextvars.ContextVar[str] = contextvars.ContextVar("outer", default="unset")
OUTER.set("set at import")


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
    seen = {"seen": REQUEST_VAR.get(), "outer": OUTER.get()}
    REQUEST_VAR.set(scope["path"])
    if scope["method"] == "POST":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
    if scope["path"] == "/sleep":
        await asyncio.sleep(0.01)
    body = json.dumps(seen).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
    REQUEST_VAR.set("set after the response of " + scope["path"])
