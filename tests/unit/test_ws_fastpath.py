"""The per-message path of a websocket (WsConn, _http/wsconn.pxi) in-process, over the fake
transport: receive() of a queued message and send() on an open connection complete without a
loop round-trip, the answers to one read go out in one write, and reading pauses at
--ws-max-queue and resumes once the app has drained the queue to half of it."""

from __future__ import annotations

import asyncio

from test_ws_codec import TEXT, frame
from test_ws_inproc import settings, upgrade

from fastasgi._http._core import _Done
from fastasgi.websocket import create_ws_upgrade
from support.inproc import connect, feed, in_loop, lose, make_ctx, run_until_idle, set_writing


def steps(awaitable) -> tuple[int, object]:
    """Step ``awaitable`` once by hand: (0, its result) if it completed without suspending,
    else (1, None) (it is then closed: only the loop could resume it properly)."""
    iterator = awaitable.__await__()
    try:
        iterator.send(None)
    except StopIteration as stop:
        return 0, stop.value
    iterator.close()
    return 1, None


class Recorder:
    """An app that accepts, then does what the test tells it through ``actions``."""

    def __init__(self) -> None:
        self.receive = None
        self.send = None
        self.ready = asyncio.Event()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        self.receive, self.send = receive, send
        self.ready.set()
        await asyncio.Event().wait()  # the test drives receive() and send() itself


def open_socket(app, loop, **options):
    ctx = make_ctx(app, loop, ws_upgrade=create_ws_upgrade(settings(**options)))
    proto, transport = connect(ctx)
    feed(proto, upgrade("fastpath"))
    head = transport.take()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n"), head
    assert type(transport.protocol).__name__ == "WebSocketProtocol"
    # the helpers find the transport by the protocol it was made for
    return proto, transport


def test_receive_of_a_queued_message_does_not_suspend(loop):
    app = Recorder()
    proto, _ = open_socket(app, loop)
    feed(proto, frame(TEXT, b"one") + frame(TEXT, b"two"))
    assert steps(app.receive()) == (0, {"type": "websocket.receive", "text": "one"})
    assert steps(app.receive()) == (0, {"type": "websocket.receive", "text": "two"})
    # nothing queued: receive() waits for the loop
    assert steps(app.receive())[0] == 1


def test_send_returns_the_completed_awaitable_and_one_write_per_iteration(loop):
    app = Recorder()
    _, transport = open_socket(app, loop)
    results = [app.send({"type": "websocket.send", "text": f"m{i}"}) for i in range(8)]
    assert all(type(r) is _Done for r in results)
    assert all(steps(r) == (0, None) for r in results)
    assert transport.writes == []  # queued until the loop runs once
    run_until_idle(loop)
    assert transport.writes == [b"".join(b"\x81\x02m%d" % i for i in range(8))]


def test_receive_that_waits_flushes_what_the_app_wrote(loop):
    app = Recorder()
    _, transport = open_socket(app, loop)
    app.send({"type": "websocket.send", "bytes": b"\x01"})
    waiting = app.receive()
    assert steps(waiting)[0] == 1
    # written before the loop ran: the app is about to wait, so the answer goes out now
    assert transport.writes == [b"\x82\x01\x01"]


def test_reading_pauses_at_max_queue_and_resumes_at_half(loop):
    app = Recorder()
    proto, transport = open_socket(app, loop, ws_max_queue=4)
    feed(proto, b"".join(frame(TEXT, b"%d" % i) for i in range(4)))
    assert transport.reading_paused
    # 4 queued; resume once the queue is down to 2
    assert steps(app.receive())[1]["text"] == "0"
    assert transport.reading_paused
    assert steps(app.receive())[1]["text"] == "1"
    assert not transport.reading_paused


def test_send_while_write_paused_waits_for_the_drain(loop):
    app = Recorder()
    proto, transport = open_socket(app, loop)
    set_writing(proto, True)
    result = app.send({"type": "websocket.send", "text": "later"})
    assert type(result) is not _Done
    task = loop.create_task(result)
    run_until_idle(loop)
    assert not task.done()
    set_writing(proto, False)
    run_until_idle(loop)
    assert task.done() and task.result() is None
    assert transport.writes == [b"\x81\x05later"]


def test_concurrent_receives_share_messages_in_order_and_all_see_the_disconnect(loop):
    """receive() awaited by two tasks at once: each message goes to one of them, the one that
    waited longest first (as from an asyncio.Queue), and the disconnect reaches both. With one
    waiter slot the first task's future was replaced and never completed."""
    app = Recorder()
    proto, _transport = open_socket(app, loop)
    first = loop.create_task(app.receive())
    second = loop.create_task(app.receive())
    run_until_idle(loop)
    feed(proto, frame(TEXT, b"one"))
    assert first.done() and first.result()["text"] == "one"
    assert not second.done()
    feed(proto, frame(TEXT, b"two"))
    assert second.done() and second.result()["text"] == "two"
    third = loop.create_task(app.receive())
    fourth = loop.create_task(app.receive())
    run_until_idle(loop)
    lose(proto)
    assert third.result()["type"] == fourth.result()["type"] == "websocket.disconnect"


def test_a_message_handed_to_a_cancelled_receive_goes_to_the_next(loop):
    app = Recorder()
    _proto, transport = open_socket(app, loop)
    waiting = loop.create_task(app.receive())
    run_until_idle(loop)
    # the message is handed over, then the task is cancelled before it runs again
    in_loop(loop, proto_data_received, transport, frame(TEXT, b"kept"))
    waiting.cancel()
    run_until_idle(loop)
    assert waiting.cancelled()
    assert steps(app.receive()) == (0, {"type": "websocket.receive", "text": "kept"})


def proto_data_received(transport, data: bytes) -> None:
    """Deliver ``data`` to the websocket without letting the loop run afterwards."""
    transport.protocol.data_received(data)
