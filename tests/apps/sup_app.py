"""Raw ASGI apps for the supervisor tests (tests/test_workers.py, tests/test_gunicorn.py).

``app``:
/            the worker's PID, as text
/slow?s=N    waits N seconds (default 2), then answers its PID; prints "slow started <pid>"
             to stderr first
/block?s=N   blocks the event loop for N seconds (time.sleep), then answers its PID
/exit        the process exits at once with code 1 (a crash)
/grow?mb=N   keeps N MiB more resident (written, so in RSS), then answers its PID

``startup_fails``: lifespan startup reports failure (the worker cannot start the app).
``slow_startup``: ``app`` whose lifespan startup takes 2.5 seconds.
``slow_startup_logged``: the same, printing "lifespan startup done <pid>" when it completes.
``lifespan_events``: ``app`` that prints "lifespan startup <pid>" / "lifespan shutdown <pid>".
"""

import asyncio
import os
import sys
import time

#: what /grow keeps alive
_ballast: list[bytes] = []


async def _answer(send, body: bytes) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


def _seconds(scope, default: float) -> float:
    query = scope["query_string"].decode()
    return float(query.partition("=")[2] or default)


async def _lifespan(receive, send, verbose: bool) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if verbose:
                print(f"lifespan startup {os.getpid()}", file=sys.stderr, flush=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if verbose:
                print(f"lifespan shutdown {os.getpid()}", file=sys.stderr, flush=True)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _http(scope, receive, send) -> None:
    path = scope["path"]
    pid = str(os.getpid()).encode()
    if path == "/slow":
        print(f"slow started {os.getpid()}", file=sys.stderr, flush=True)
        await asyncio.sleep(_seconds(scope, 2))
        await _answer(send, pid)
    elif path == "/block":
        time.sleep(_seconds(scope, 1))  # noqa: ASYNC251 (blocking the event loop is the point)
        await _answer(send, pid)
    elif path == "/exit":
        os._exit(1)
    elif path == "/grow":
        _ballast.append(b"x" * int(_seconds(scope, 1) * 1024 * 1024))
        await _answer(send, pid)
    else:
        await _answer(send, pid)


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, verbose=False)
    elif scope["type"] == "http":
        await _http(scope, receive, send)


async def lifespan_events(scope, receive, send):
    if scope["type"] == "lifespan":
        await _lifespan(receive, send, verbose=True)
    elif scope["type"] == "http":
        await _http(scope, receive, send)


async def startup_fails(scope, receive, send):
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": "the database is not there"})
    elif scope["type"] == "http":
        await _http(scope, receive, send)


async def _slow_lifespan(receive, send, verbose: bool) -> None:
    message = await receive()
    assert message["type"] == "lifespan.startup"
    await asyncio.sleep(2.5)
    await send({"type": "lifespan.startup.complete"})
    if verbose:
        print(f"lifespan startup done {os.getpid()}", file=sys.stderr, flush=True)
    await _lifespan(receive, send, verbose=False)


async def slow_startup(scope, receive, send):
    if scope["type"] == "lifespan":
        await _slow_lifespan(receive, send, verbose=False)
    elif scope["type"] == "http":
        await _http(scope, receive, send)


async def slow_startup_logged(scope, receive, send):
    if scope["type"] == "lifespan":
        await _slow_lifespan(receive, send, verbose=True)
    elif scope["type"] == "http":
        await _http(scope, receive, send)
