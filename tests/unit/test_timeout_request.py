"""--timeout-request in-process: past it the app is cancelled; 504 when its response has not
begun, a close when it has; the metrics count it as a 504 refusal."""

from __future__ import annotations

import asyncio

from fastasgi._http import _core
from support.inproc import advance, connect, feed, make_ctx
from support.wire_cases import error_response

REQ = b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"


def slow_app(seen: list, start_first: bool = False):
    async def app(scope, receive, send):
        try:
            if start_first:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"part", "more_body": True})
            await asyncio.sleep(3600)
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    return app


def test_timeout_answers_504_and_cancels_the_app(loop):
    seen: list = []
    ctx = make_ctx(slow_app(seen), loop, timeout_request=5.0)
    proto, transport = connect(ctx)
    feed(proto, REQ)
    advance(loop, ctx, 4.0)
    assert transport.output() == b"" and not transport.closed
    advance(loop, ctx, 2.0)
    assert transport.output() == error_response(504)
    assert transport.closed
    assert seen == ["CancelledError"]
    assert not ctx.tasks and ctx.active_requests == 0


def test_timeout_after_the_response_began_closes(loop):
    seen: list = []
    ctx = make_ctx(slow_app(seen, start_first=True), loop, timeout_request=5.0)
    proto, transport = connect(ctx)
    feed(proto, REQ)
    head = transport.output()
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"4\r\npart\r\n")
    advance(loop, ctx, 6.0)
    assert transport.output() == head, "nothing more after a response began: a close says it"
    assert transport.closed
    assert seen == ["CancelledError"]


def test_no_timeout_by_default_and_finished_requests_are_not_touched(loop):
    async def quick(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    seen: list = []
    ctx = make_ctx(slow_app(seen), loop, timeout_request=None)
    proto, transport = connect(ctx)
    feed(proto, REQ)
    advance(loop, ctx, 100.0)
    assert transport.output() == b"" and not transport.closed and seen == []
    ctx2 = make_ctx(quick, loop, timeout_request=1.0, keep_alive_timeout=1000)
    proto2, transport2 = connect(ctx2)
    feed(proto2, REQ)
    advance(loop, ctx2, 5.0)
    assert transport2.output() == b"HTTP/1.1 204 No Content\r\nserver: fastasgi\r\n\r\n"
    assert not transport2.closed


def test_timeout_is_counted_as_a_504_refusal(loop):
    block = bytearray(_core.METRICS_SIZE)
    _core.metrics_attach(block)
    try:
        seen: list = []
        ctx = make_ctx(slow_app(seen), loop, timeout_request=1.0)
        proto, _ = connect(ctx)
        feed(proto, REQ)
        advance(loop, ctx, 2.0)
        snapshot = _core.metrics_read(block)
    finally:
        _core.metrics_detach()
    assert snapshot["refused"] == {504: 1}
    assert snapshot["requests"] == {("GET", 504, "1.1"): 1}
    assert snapshot["in_flight"] == 0
