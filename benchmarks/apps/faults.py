"""Deliberately broken apps for the harness's own tests (tests/e2e/test_bench_*.py).

They prove that a server whose responses fail is reported as failing, not as fast.
"""

from benchmarks.apps.raw import _lifespan

_count = 0


def _start(status):
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
    }


_BODY = {"type": "http.response.body", "body": b"Hello, World!"}


async def always_500(scope, receive, send):
    if scope["type"] == "http":
        await send(_start(500))
        await send(_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def flaky_500(scope, receive, send):
    """200 for most requests, 500 for every 50th: the first request (the
    runner's precheck) passes, so only the load generator's count catches it."""
    global _count
    if scope["type"] == "http":
        _count += 1
        await send(_start(500 if _count % 50 == 0 else 200))
        await send(_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def wrong_body(scope, receive, send):
    """200 with a body of the right length and the wrong bytes: only a check of the exact
    body (the precheck; wrk's bench.lua) catches it, not a count of bytes."""
    if scope["type"] == "http":
        await send(_start(200))
        await send({"type": "http.response.body", "body": b"Hello, Wxrld!"})
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def flaky_short_body(scope, receive, send):
    """200 with the right body, but every 50th answer one byte short (Content-Length 12):
    the precheck passes, the load generator's byte count catches the rest."""
    global _count
    if scope["type"] == "http":
        _count += 1
        if _count % 50 == 0:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")],
                }
            )
            await send({"type": "http.response.body", "body": b"Hello, World"})
        else:
            await send(_start(200))
            await send(_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)


async def slow(scope, receive, send):
    """Answers after 1.5 s: longer than the load generator's timeout in the tests."""
    import asyncio

    if scope["type"] == "http":
        await asyncio.sleep(1.5)
        await send(_start(200))
        await send(_BODY)
    elif scope["type"] == "lifespan":
        await _lifespan(receive, send)
