"""receive() awaited by two tasks at once, on HTTP/1.1 (RequestCycle) and HTTP/2 (H2Stream),
in-process. Both are woken by the next change; one cancelled meanwhile (as Starlette's
request.is_disconnected() cancels its receive() at once) is taken out and leaves the other
waiting. With one waiter slot the first task's future was replaced and never completed: that
task, and the app, waited for ever (found by fuzz/fuzz_wsconn's author on the websocket
layer, which had the same slot)."""

from __future__ import annotations

import asyncio

from test_h2_inproc import Client

from support.inproc import connect, feed, lose, make_ctx, run_until_idle


def two_readers(seen: list, cancel_second: bool = False):
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        first = asyncio.ensure_future(receive())
        second = asyncio.ensure_future(receive())
        await asyncio.sleep(0)
        if cancel_second:
            second.cancel()
            seen.append(await first)
            try:
                await second
            except asyncio.CancelledError:
                seen.append("cancelled")
            return
        seen.extend(await asyncio.gather(first, second))

    return app


def test_http11_both_readers_see_the_disconnect(loop):
    seen: list = []
    ctx = make_ctx(two_readers(seen), loop)
    proto, _ = connect(ctx)
    feed(proto, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    run_until_idle(loop)
    assert seen == []
    lose(proto)
    run_until_idle(loop)
    assert seen == [{"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_http11_a_cancelled_reader_leaves_the_other_waiting(loop):
    seen: list = []
    ctx = make_ctx(two_readers(seen, cancel_second=True), loop)
    proto, _ = connect(ctx)
    feed(proto, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
    run_until_idle(loop)
    feed(proto, b"hello")
    run_until_idle(loop)
    assert seen == [{"type": "http.request", "body": b"hello", "more_body": False}, "cancelled"]


def test_h2_both_readers_see_the_reset():
    seen: list = []
    client = Client(two_readers(seen))
    stream = client.request("POST", "/", body=b"", end=False)
    assert seen == []
    client.conn.reset_stream(stream)
    client.flush()
    assert seen == [{"type": "http.disconnect"}, {"type": "http.disconnect"}]


def test_h2_a_cancelled_reader_leaves_the_other_waiting():
    seen: list = []
    client = Client(two_readers(seen, cancel_second=True))
    stream = client.request("POST", "/", body=b"", end=False)
    client.send_body(stream, b"hello", True)
    client.flush()
    run_until_idle(client.loop)
    assert seen == [{"type": "http.request", "body": b"hello", "more_body": False}, "cancelled"]
