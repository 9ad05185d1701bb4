"""The app of tests/e2e/test_health_drain.py: a lifespan startup that takes a moment, and
routes that block the event loop or take their time.

- ``HEALTH_STARTUP_DELAY`` (seconds, default 0): how long lifespan startup waits (on the
  event loop, without blocking it);
- ``GET /`` -> the PID of the process that served it;
- ``GET /block?s=N`` -> ``time.sleep(N)`` on the event loop (a blocked loop), then "blocked";
- ``GET /slow?s=N`` -> ``asyncio.sleep(N)`` (a long request in flight), then "slow done".

Lifespan events go to stderr as "event: <name>" lines.
"""

import asyncio
import os
import sys
import time
from urllib.parse import parse_qs


def event(name):
    print(f"event: {name}", file=sys.stderr, flush=True)


async def respond(send, body, status=200):
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


def seconds(scope):
    return float(parse_qs(scope["query_string"].decode()).get("s", ["1"])[0])


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                event("startup begins")
                await asyncio.sleep(float(os.environ.get("HEALTH_STARTUP_DELAY", "0")))
                event("startup complete")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                event("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/block":
        time.sleep(seconds(scope))  # noqa: ASYNC251 - blocking the loop is the point
        await respond(send, b"blocked")
    elif path == "/slow":
        await asyncio.sleep(seconds(scope))
        await respond(send, b"slow done")
    else:
        await respond(send, str(os.getpid()).encode())
