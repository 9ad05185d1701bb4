"""The HTTP/1.1 protocol state machine in-process (tests/support/inproc.py): flow control,
pipelining, timeouts on the fake clock, disconnects and half-closes, app errors, limits,
Expect: 100-continue and shutdown. Every test asserts exact bytes written or the exact
sequence of transport calls.
"""

from __future__ import annotations

import asyncio

from support.inproc import (
    advance,
    call,
    connect,
    eof,
    feed,
    lose,
    make_ctx,
    run_timers,
    run_until_idle,
    set_writing,
)
from support.wire_cases import error_response, ok

GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n\r\n"
GET_CLOSE = b"GET /%s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


def get(path: str = "", close: bool = False) -> bytes:
    return (GET_CLOSE if close else GET) % path.encode()


def post(path: str, length: int, body: bytes = b"", extra: bytes = b"") -> bytes:
    return (
        b"POST /%s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n" % (path.encode(), length)
        + extra
        + b"\r\n"
        + body
    )


def resp(body: bytes = b"ok", close: bool = False) -> bytes:
    """The bytes of ``send_ok(body)``: a 200 with no app headers."""
    return ok(body, ctype=b"", close=close)


async def send_ok(send, body: bytes = b"ok") -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def read_all(receive) -> bytes | None:
    parts = []
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return None
        parts.append(msg["body"])
        if not msg.get("more_body"):
            return b"".join(parts)


def not_writes(transport) -> list[tuple]:
    """The transport calls that are not writes, in order."""
    return [c for c in transport.calls if c[0] not in ("write", "writelines")]


class Gate:
    """Per-path asyncio.Events an app waits on, opened by the test."""

    def __init__(self, loop):
        self.loop = loop
        self.events: dict[str, asyncio.Event] = {}

    def __getitem__(self, name: str) -> asyncio.Event:
        if name not in self.events:
            self.events[name] = asyncio.Event()
        return self.events[name]

    def open(self, name: str) -> None:
        self[name].set()
        run_until_idle(self.loop)


# --------------------------------------------------------------------------- flow control


def test_unread_body_over_64k_pauses_reading_until_the_app_reads(loop):
    gate = Gate(loop)
    got = []

    async def app(scope, receive, send):
        await gate["read"].wait()
        body = await read_all(receive)
        got.append(len(body))
        await send_ok(send, b"%d" % len(body))

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    size = 200_000
    feed(proto, post("up", size, b"x" * 70_000))
    assert not_writes(t) == [("pause_reading",)], "70 000 unread body bytes > 64 KiB: reading pauses"
    feed(proto, b"y" * (size - 70_000))
    assert t.inbox == [b"y" * (size - 70_000)], "nothing is read while paused"
    assert t.output() == b""

    gate.open("read")
    assert got == [size]
    assert t.output() == resp(b"200000")
    # the app took the first 70 000 bytes: reading resumed; the other 130 000 arrived
    # in one read, over the mark again, and the app took them at once
    assert not_writes(t) == [("pause_reading",), ("resume_reading",), ("pause_reading",), ("resume_reading",)]
    assert t.inbox == [] and not t.reading_paused and not t.closed


def test_body_under_64k_does_not_pause_reading(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["read"].wait()
        await send_ok(send, b"%d" % len(await read_all(receive)))

    proto, t = connect(make_ctx(app, loop))
    feed(proto, post("up", 65_536, b"x" * 65_536))
    assert not_writes(t) == []
    gate.open("read")
    assert t.output() == resp(b"65536")
    assert not_writes(t) == []


def test_send_waits_while_writing_is_paused(loop):
    steps = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        steps.append("a")
        await send({"type": "http.response.body", "body": b"b", "more_body": True})
        steps.append("b")
        await send({"type": "http.response.body", "body": b""})
        steps.append("end")

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    set_writing(proto, True)
    feed(proto, get())
    head = b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ntransfer-encoding: chunked\r\n\r\n"
    assert t.output() == head + b"1\r\na\r\n", "the bytes are handed to the transport"
    assert steps == [], "but send() does not complete while writing is paused"
    run_timers(loop)
    assert steps == []

    set_writing(proto, False)
    assert steps == ["a", "b", "end"]
    assert t.output() == head + b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n"
    assert not ctx.tasks


def test_pipelined_requests_wait_while_writing_is_paused(loop):
    async def app(scope, receive, send):
        await send_ok(send, scope["path"].encode())

    proto, t = connect(make_ctx(app, loop))
    set_writing(proto, True)
    feed(proto, get("one") + get("two") + get("three", close=True))
    assert t.output() == resp(b"/one"), "the client is not reading: nothing more is parsed"
    assert t.events() == [("pause_writing",), ("pause_reading",), ("out", resp(b"/one"))]

    set_writing(proto, False)
    assert t.output() == resp(b"/one") + resp(b"/two") + resp(b"/three", close=True)
    assert t.events()[3:] == [
        ("resume_writing",),
        ("resume_reading",),
        ("out", resp(b"/two") + resp(b"/three", close=True)),
        ("close",),
    ]


def test_pipelined_parsing_stops_again_when_writing_pauses_before_it_resumed(loop):
    async def app(scope, receive, send):
        await send_ok(send, scope["path"].encode())

    proto, t = connect(make_ctx(app, loop))
    set_writing(proto, True)
    feed(proto, get("one") + get("two") + get("three", close=True))
    assert t.take() == resp(b"/one")
    # the buffer drains and fills again before the loop turns
    t.set_write_paused(False)
    t.set_write_paused(True)
    run_until_idle(loop)
    assert t.take() == b""
    set_writing(proto, False)
    assert t.take() == resp(b"/two") + resp(b"/three", close=True)
    assert t.closed


# --------------------------------------------------------------------------- pipelining


def test_slow_first_response_is_not_overtaken(loop):
    gate = Gate(loop)
    started = []

    async def app(scope, receive, send):
        started.append(scope["path"])
        if scope["path"] == "/slow":
            await gate["slow"].wait()
        await send_ok(send, scope["path"].encode())

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get("slow") + get("fast") + get("last", close=True))
    assert started == ["/slow"], "the next request is not even started before the first answers"
    assert t.output() == b""
    assert not_writes(t) == [("pause_reading",)]

    gate.open("slow")
    assert started == ["/slow", "/fast", "/last"]
    assert t.output() == resp(b"/slow") + resp(b"/fast") + resp(b"/last", close=True)
    assert t.closed


def test_pipelined_request_split_across_reads_keeps_order(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await gate["slow"].wait()
        await send_ok(send, scope["path"].encode())

    proto, t = connect(make_ctx(app, loop))
    data = get("slow") + get("b") + get("c", close=True)
    for i in range(len(data)):  # byte by byte, while the first request is in flight
        feed(proto, data[i : i + 1])
    gate.open("slow")
    run_until_idle(loop)
    assert t.output() == resp(b"/slow") + resp(b"/b") + resp(b"/c", close=True)


# --------------------------------------------------------------------------- timeouts


def test_keep_alive_timeout_closes_an_idle_connection_not_before(loop):
    async def app(scope, receive, send):
        await send_ok(send)

    ctx = make_ctx(app, loop, keep_alive_timeout=5.0)
    proto, t = connect(ctx)
    feed(proto, get())
    assert t.output() == resp()
    advance(loop, ctx, 4.5)
    assert not t.closed
    advance(loop, ctx, 0.25)
    assert not t.closed
    advance(loop, ctx, 0.25)
    assert t.closed
    assert not_writes(t) == [("close",)]
    assert t.output() == resp(), "closed without writing anything"
    assert t.lost and proto not in ctx.connections


def test_keep_alive_timeout_is_not_shortened_by_the_tick_interval(loop):
    async def app(scope, receive, send):
        await send_ok(send)

    ctx = make_ctx(app, loop, keep_alive_timeout=1.0)
    proto, t = connect(ctx)
    loop.now += 0.75  # time passes between two ticks
    feed(proto, get())  # answered at T0 + 0.75
    assert t.output() == resp()
    advance(loop, ctx, 0.25)  # the tick at T0 + 1: idle for 0.25 s
    assert not t.closed


def test_keep_alive_timeout_counts_from_the_last_response(loop):
    async def app(scope, receive, send):
        await send_ok(send)

    ctx = make_ctx(app, loop, keep_alive_timeout=5.0)
    proto, t = connect(ctx)
    advance(loop, ctx, 4.0)
    feed(proto, get())
    advance(loop, ctx, 4.0)
    assert not t.closed, "8 s after connecting, but 4 s after the response"
    advance(loop, ctx, 1.0)
    assert t.closed


def test_keep_alive_timeout_closes_a_connection_that_never_sent_a_byte(loop):
    ctx = make_ctx(None, loop, keep_alive_timeout=2.0)
    _proto, t = connect(ctx)
    advance(loop, ctx, 1.5)
    assert not t.closed
    advance(loop, ctx, 0.5)
    assert t.calls == [("close",)]


def test_request_in_flight_is_not_closed_by_keep_alive_timeout(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["go"].wait()
        await send_ok(send)

    ctx = make_ctx(app, loop, keep_alive_timeout=1.0)
    proto, t = connect(ctx)
    feed(proto, get())
    advance(loop, ctx, 10.0)
    assert not t.closed
    gate.open("go")
    assert t.output() == resp()


def test_408_after_timeout_request_head_for_a_partial_head(loop):
    ctx = make_ctx(None, loop, timeout_request_head=10.0, keep_alive_timeout=5.0)
    proto, t = connect(ctx)
    feed(proto, b"GET / HTTP/1.1\r\nHo")
    advance(loop, ctx, 10.0)
    assert not t.closed, "a head in progress is not subject to the keep-alive timeout"
    assert t.output() == b""
    advance(loop, ctx, 0.5)
    assert t.output() == error_response(408)
    assert not_writes(t) == [("close",)]


def test_timeout_request_head_counts_from_the_first_byte_of_the_head(loop):
    ctx = make_ctx(None, loop, timeout_request_head=10.0, keep_alive_timeout=60.0)
    proto, t = connect(ctx)
    advance(loop, ctx, 30.0)  # idle before the request began
    feed(proto, b"G")
    advance(loop, ctx, 9.0)
    feed(proto, b"ET / HTTP/1.1\r\n")  # trickling bytes do not reset it (slowloris)
    advance(loop, ctx, 1.0)
    assert t.output() == b""
    advance(loop, ctx, 0.5)
    assert t.output() == error_response(408)
    assert t.closed


def test_408_after_timeout_request_body_for_a_stalled_body(loop):
    seen = []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            seen.append((msg["type"], msg.get("body")))
            if msg["type"] == "http.disconnect" or not msg.get("more_body"):
                return

    ctx = make_ctx(app, loop, timeout_request_body=3.0)
    proto, t = connect(ctx)
    feed(proto, post("up", 10, b"abc"))
    advance(loop, ctx, 2.0)
    feed(proto, b"de")  # body activity: the timeout starts over
    advance(loop, ctx, 2.5)
    assert t.output() == b""
    advance(loop, ctx, 1.0)
    assert t.output() == error_response(408)
    assert t.closed
    assert seen == [("http.request", b"abc"), ("http.request", b"de"), ("http.disconnect", None)]
    assert not ctx.tasks


def test_timeout_request_body_does_not_apply_while_the_app_is_not_reading(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["go"].wait()
        await send_ok(send, await read_all(receive))

    ctx = make_ctx(app, loop, timeout_request_body=3.0)
    proto, t = connect(ctx)
    feed(proto, post("up", 5, b"abc"))
    advance(loop, ctx, 10.0)
    assert t.output() == b"" and not t.closed, "the client is not stalling: the app is busy"
    gate.open("go")
    feed(proto, b"de")
    assert t.output() == resp(b"abcde")


# --------------------------------------------------------------------------- disconnects


def test_http_disconnect_on_connection_lost_and_send_raises_after(loop):
    seen = []

    async def app(scope, receive, send):
        seen.append(await receive())
        seen.append(await receive())
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:
            seen.append(type(exc).__name__)

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, get())
    assert seen == [{"type": "http.request", "body": b"", "more_body": False}]
    lose(proto)
    assert seen[1:] == [{"type": "http.disconnect"}, "ClientDisconnected"]
    assert t.output() == b""
    assert not ctx.tasks and ctx.active_requests == 0 and proto not in ctx.connections


def test_http_disconnect_while_reading_the_body(loop):
    seen = []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            seen.append(msg["type"])
            if msg["type"] == "http.disconnect":
                return

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, post("up", 10, b"abc"))
    lose(proto, ConnectionResetError())
    assert seen == ["http.request", "http.disconnect"]
    assert t.output() == b"" and not ctx.tasks


def test_receive_after_the_response_reports_disconnect(loop):
    seen = []

    async def app(scope, receive, send):
        await send_ok(send)
        seen.append(await receive())

    proto, t = connect(make_ctx(app, loop))
    feed(proto, post("up", 3, b"abc"))
    assert t.output() == resp()
    # ASGI: once the response is complete, receive() says http.disconnect
    assert seen == [{"type": "http.disconnect"}]


def test_abort_cancels_the_app_task(loop):
    cancelled = []

    async def app(scope, receive, send):
        try:
            await asyncio.sleep(100)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, get())
    assert len(ctx.tasks) == 1
    call(proto, "abort")
    assert cancelled == [True]
    assert t.calls == [("abort",)]
    assert not ctx.tasks and ctx.active_requests == 0


# --------------------------------------------------------------------------- half-close


def test_half_close_when_idle_closes(loop):
    proto, t = connect(make_ctx(None, loop))
    eof(proto)
    assert t.eof_result is None
    assert t.calls == [("close",)]


def test_half_close_after_pipelined_requests_answers_them_then_closes(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await gate["slow"].wait()
        await send_ok(send, scope["path"].encode())

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get("slow") + get("next"))
    eof(proto)
    assert not t.closed, "a client may half-close and still wait for its answers"
    gate.open("slow")
    assert t.output() == resp(b"/slow") + resp(b"/next")
    assert t.closed
    assert t.events()[-1] == ("close",)


def test_half_close_while_the_app_works_lets_it_answer(loop):
    seen = []

    async def app(scope, receive, send):
        seen.append((await receive())["type"])
        seen.append((await receive())["type"])  # the client will send nothing more
        await send_ok(send, b"late")

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get())
    assert seen == ["http.request"]
    eof(proto)
    assert t.eof_result is True, "the transport stays open for the answer"
    assert seen == ["http.request", "http.disconnect"]
    assert t.output() == resp(b"late")
    assert t.closed


def test_half_close_then_app_gives_up_closes_without_error(loop, error_log):
    async def app(scope, receive, send):
        await receive()
        await receive()

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, get())
    eof(proto)
    assert t.output() == b"", "no 500 for a client that left"
    assert t.closed
    assert error_log.messages() == []


def test_half_close_mid_body_is_a_disconnect(loop):
    seen = []

    async def app(scope, receive, send):
        while True:
            msg = await receive()
            seen.append(msg["type"])
            if msg["type"] == "http.disconnect":
                return

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, post("up", 10, b"abc"))
    eof(proto)
    assert seen == ["http.request", "http.disconnect"]
    assert t.output() == b"" and t.closed and not ctx.tasks


# --------------------------------------------------------------------------- app errors


def test_app_raising_before_start_gets_500(loop, error_log):
    async def app(scope, receive, send):
        raise RuntimeError("boom")

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, get())
    assert t.output() == error_response(500)
    assert not_writes(t) == [("close",)]
    assert error_log.messages() == ["Exception in ASGI application\n"]
    assert str(error_log.records[0].exc_info[1]) == "boom"
    assert ctx.active_requests == 0


def test_app_raising_after_suspending_before_start_gets_500(loop):
    async def app(scope, receive, send):
        await asyncio.sleep(1)
        raise RuntimeError("boom")

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, get())
    assert t.output() == b""
    run_timers(loop)
    assert t.output() == error_response(500)
    assert t.closed and not ctx.tasks


def test_app_raising_after_streaming_started_closes(loop, error_log):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get())
    # what was sent stays sent, with no last chunk: the client sees the response cut short
    assert t.output() == (
        b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ntransfer-encoding: chunked\r\n\r\n4\r\npart\r\n"
    )
    assert not_writes(t) == [("close",)]
    assert error_log.messages() == ["Exception in ASGI application\n"]


def test_app_returning_without_response_gets_500(loop, error_log):
    async def app(scope, receive, send):
        return None

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get())
    assert t.output() == error_response(500)
    assert t.closed
    assert error_log.messages() == ["ASGI callable returned without starting response."]


def test_app_returning_with_response_started_only_closes(loop):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get())
    # http.response.start is held until the first body message: nothing went out yet
    assert t.output() == error_response(500)
    assert t.closed


def test_app_returning_mid_stream_closes(loop):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get())
    assert (
        t.output() == b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ntransfer-encoding: chunked\r\n\r\n1\r\nx\r\n"
    )
    assert not_writes(t) == [("close",)]


# --------------------------------------------------------------------------- limits


def test_limit_concurrency_answers_503_beyond_the_limit(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["go"].wait()
        await send_ok(send)

    ctx = make_ctx(app, loop, limit_concurrency=1)
    p1, t1 = connect(ctx)
    feed(p1, get())
    p2, t2 = connect(ctx)
    feed(p2, get())
    assert t2.output() == error_response(503)
    assert t2.closed
    gate.open("go")
    assert t1.output() == resp()
    assert not t1.closed
    assert ctx.total_requests == 1


def test_limit_concurrency_counts_requests_not_only_connections(loop):
    async def app(scope, receive, send):
        await send_ok(send)

    ctx = make_ctx(app, loop, limit_concurrency=1)
    proto, t = connect(ctx)
    feed(proto, get() + get() + get(close=True))
    assert t.output() == resp() + resp() + resp(close=True), "one connection, one request at a time"


def test_max_body_size_413_on_content_length(loop):
    async def app(scope, receive, send):
        raise AssertionError("not reached")

    ctx = make_ctx(app, loop, max_body_size=4)
    proto, t = connect(ctx)
    feed(proto, post("up", 5, b"hello"))
    assert t.output() == error_response(413)
    assert t.closed and ctx.total_requests == 0


def test_max_body_size_413_on_chunked_body(loop):
    seen = []

    async def app(scope, receive, send):
        seen.append(await read_all(receive))

    ctx = make_ctx(app, loop, max_body_size=4)
    proto, t = connect(ctx)
    feed(proto, b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
    feed(proto, b"2\r\nde\r\n0\r\n\r\n")
    assert t.output() == error_response(413)
    assert t.closed and seen == [None]


# --------------------------------------------------------------------------- Expect: 100-continue

EXPECT = b"Expect: 100-continue\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def test_100_continue_only_when_the_app_calls_receive(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["read"].wait()
        await send_ok(send, await read_all(receive))

    proto, t = connect(make_ctx(app, loop))
    feed(proto, post("up", 5, extra=EXPECT))
    assert t.output() == b"", "no 100 before the app asks for the body"
    gate.open("read")
    assert t.output() == CONTINUE
    feed(proto, b"hello")
    assert t.output() == CONTINUE + resp(b"hello")
    assert not t.closed


def test_100_continue_not_sent_when_the_body_is_already_there(loop):
    async def app(scope, receive, send):
        await send_ok(send, await read_all(receive))

    proto, t = connect(make_ctx(app, loop))
    feed(proto, post("up", 5, b"hello", extra=EXPECT))
    assert t.output() == resp(b"hello")


def test_100_continue_never_sent_when_the_app_answers_without_reading(loop):
    async def app(scope, receive, send):
        await send_ok(send, b"no")

    proto, t = connect(make_ctx(app, loop))
    feed(proto, post("up", 5, extra=EXPECT))
    assert CONTINUE not in t.output()
    assert t.closed, "the client waits for a 100 it will not get: close"


def test_100_continue_refused_response_says_connection_close(loop):
    async def app(scope, receive, send):
        await send_ok(send, b"no")

    proto, t = connect(make_ctx(app, loop))
    feed(proto, post("up", 5, extra=EXPECT))
    assert t.output() == resp(b"no", close=True)


def test_100_continue_ignored_for_http10(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["read"].wait()
        await send_ok(send, await read_all(receive))

    proto, t = connect(make_ctx(app, loop))
    feed(proto, b"POST / HTTP/1.0\r\nContent-Length: 2\r\n" + EXPECT + b"\r\n")
    gate.open("read")
    assert t.output() == b""
    feed(proto, b"hi")
    assert t.output() == resp(b"hi", close=True)


# --------------------------------------------------------------------------- shutdown


def test_shutdown_closes_an_idle_connection_after_the_grace(loop):
    """A kept-alive connection that is idle when the shutdown begins is closed once it has
    been idle for SHUTDOWN_GRACE (1 s); a request arriving meanwhile is answered with
    Connection: close rather than cut by our close (the race a proxy's retry would absorb)."""

    async def app(scope, receive, send):
        await send_ok(send)

    ctx = make_ctx(app, loop)
    proto, t = connect(ctx)
    feed(proto, get())
    call(proto, "shutdown")
    assert not t.closed
    feed(proto, get())  # the next request crosses the shutdown
    assert t.output() == resp() + resp(close=True)
    assert t.closed
    other, t_other = connect(ctx)
    feed(other, get())
    call(other, "shutdown")
    advance(loop, ctx, 0.5)
    assert not t_other.closed
    advance(loop, ctx, 0.6)
    assert t_other.closed and not_writes(t_other) == [("close",)]


def test_shutdown_lets_the_request_in_flight_finish_with_connection_close(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        await gate["go"].wait()
        await send_ok(send)

    proto, t = connect(make_ctx(app, loop))
    feed(proto, get() + get())
    call(proto, "shutdown")
    assert not t.closed
    gate.open("go")
    assert t.output() == resp(close=True), "the pipelined second request is not served"
    assert t.closed


def test_shutdown_waits_for_a_connection_that_has_sent_nothing(loop):
    ctx = make_ctx(None, loop, keep_alive_timeout=60.0)
    _proto, t = connect(ctx)
    call(ctx, "begin_shutdown")
    assert ctx.shutting_down and not t.closed, "a request may be on its way"
    advance(loop, ctx, 0.5)
    assert not t.closed
    advance(loop, ctx, 0.5)
    assert t.calls == [("close",)]


def test_begin_shutdown_closes_idle_and_answers_busy_connections(loop):
    gate = Gate(loop)

    async def app(scope, receive, send):
        if scope["path"] == "/slow":
            await gate["slow"].wait()
        await send_ok(send)

    ctx = make_ctx(app, loop)
    idle, t_idle = connect(ctx)
    feed(idle, get())
    busy, t_busy = connect(ctx)
    feed(busy, get("slow"))
    call(ctx, "begin_shutdown")
    assert not t_idle.closed and not t_busy.closed
    advance(loop, ctx, 1.1)
    assert t_idle.closed and not t_busy.closed  # idle for the grace
    gate.open("slow")
    assert t_busy.output() == resp(close=True)
    assert t_busy.closed
    late, t_late = connect(ctx)
    feed(late, get())
    assert t_late.output() == resp(close=True), "no keep-alive once shutting down"
