"""Lifespan test apps (tests/test_lifespan.py). Events are printed to stderr as
"event: <name>" lines so the tests can check their order."""

import asyncio
import json
import sys


def event(name):
    print(f"event: {name}", file=sys.stderr, flush=True)


async def respond(send, body, status=200):
    await send(
        {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]}
    )
    await send({"type": "http.response.body", "body": body})


async def http_part(scope, receive, send):
    if scope["path"] == "/state":
        state = scope.get("state")
        body = json.dumps(
            {
                "state": sorted(state) if state is not None else None,
                "greeting": (state or {}).get("greeting"),
                "items": (state or {}).get("items"),
            }
        ).encode()
        if state is not None and "items" in state:
            # Mutating the request's copy must not leak into the next request.
            state["leaked"] = True
            state["items"].append(len(state["items"]))
        await respond(send, body)
    elif scope["path"] == "/slow":
        event("request started")
        await asyncio.sleep(1.5)
        event("request done")
        await respond(send, b"slow done")
    else:
        await respond(send, b"ok")


async def with_state(scope, receive, send):
    """Fills the lifespan state; reports it from /state."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hello from startup"
                scope["state"]["items"] = []
                event("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                event("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    else:
        await http_part(scope, receive, send)


async def startup_failed(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database is unreachable (lifespan test)"})
        return
    await http_part(scope, receive, send)


async def startup_raises(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("startup exploded (lifespan test)")
    await http_part(scope, receive, send)


async def no_lifespan(scope, receive, send):
    """Like many hand-written apps: serves HTTP only and rejects any other scope type."""
    assert scope["type"] == "http", "only http is supported"
    await http_part(scope, receive, send)


seen_types = []


async def records_types(scope, receive, send):
    """Reports the scope types it was called with (for --lifespan off)."""
    seen_types.append(scope["type"])
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await respond(send, json.dumps(seen_types).encode())


async def shutdown_failed(scope, receive, send):
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send(
            {"type": "lifespan.shutdown.failed", "message": "could not flush the cache (lifespan test)"}
        )
        return
    await http_part(scope, receive, send)


async def slow_startup(scope, receive, send):
    """Startup never completes: only a forced exit (second signal) stops the server."""
    if scope["type"] == "lifespan":
        await receive()
        event("startup hangs")
        await asyncio.sleep(3600)
    await http_part(scope, receive, send)
