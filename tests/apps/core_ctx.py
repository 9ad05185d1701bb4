"""Context variables per request: set during the eager first step, read after a real suspension,
never seen by another request (each request runs in its own copy of the context)."""

import asyncio
import contextvars
import json

request_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_var", default="unset")


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    before = request_var.get()
    request_var.set(scope["query_string"].decode())
    await asyncio.sleep(0.01)  # suspends: a Task takes over from the eager first step
    body = json.dumps(
        {"before": before, "after": request_var.get(), "task": asyncio.current_task() is not None}
    ).encode()
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
    )
    await send({"type": "http.response.body", "body": body})
