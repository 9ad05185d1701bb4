"""The websocket connection states (the table at the top of fastasgi/websocket.py): every
change goes through WebSocketProtocol._set_state, which, with the checks on, refuses an edge
the table does not have and leaving OPEN with a close pending. First the table itself, edge by
edge; then real connections over the in-process transport, each asserting the exact sequence
of changes the setter saw and what went out on the wire."""

from __future__ import annotations

import asyncio
import itertools
import os
import types
import uuid

import pytest
from test_ws_codec import BINARY, CLOSE, TEXT, frame
from test_ws_inproc import server_close, settings, upgrade

from fastasgi import websocket
from fastasgi._http import _core
from fastasgi.websocket import (
    CLOSED,
    CLOSING,
    HANDSHAKE,
    OPEN,
    RESPONSE,
    STATE_NAMES,
    WebSocketProtocol,
    _Settings,
    create_ws_upgrade,
)
from support.inproc import connect, feed, lose, make_ctx, run_timers, run_until_idle

# The table as this test reads the module's comment: written out again, so that a change to
# websocket._NEXT has to be made twice, on purpose.
LEGAL = {
    (HANDSHAKE, OPEN),
    (HANDSHAKE, RESPONSE),
    (HANDSHAKE, CLOSED),
    (RESPONSE, CLOSED),
    (OPEN, CLOSING),
    (OPEN, CLOSED),
    (CLOSING, CLOSED),
}
STATES = (HANDSHAKE, RESPONSE, OPEN, CLOSING, CLOSED)


@pytest.fixture
def checked(monkeypatch):
    """The transition checks on, as in a debug build, whatever build this run has."""
    monkeypatch.setattr(websocket, "CHECK_TRANSITIONS", True)


def bare(loop) -> WebSocketProtocol:
    """A protocol that was never connected: only its state is used."""
    ctx = make_ctx(None, loop)
    scope = {"type": "http", "path": "/", "headers": [(b"host", b"x")]}
    return WebSocketProtocol(ctx, _Settings(settings()), scope)


# --------------------------------------------------------------------------- the table


def test_the_table_is_the_one_documented():
    assert {(a, b) for a, nexts in websocket._NEXT.items() for b in nexts} == LEGAL
    assert set(websocket._NEXT) == set(STATES) == set(STATE_NAMES)
    assert websocket._NEXT[CLOSED] == frozenset()  # terminal


@pytest.mark.parametrize("old,new", sorted(LEGAL), ids=lambda s: STATE_NAMES[s])
def test_every_legal_edge_is_taken(loop, checked, old, new):
    proto = bare(loop)
    proto.state = old  # the raw int, as the compiled core holds it
    proto._set_state(new)
    assert proto.state == new and proto.state_name == STATE_NAMES[new]


ILLEGAL = sorted(set(itertools.product(STATES, STATES)) - LEGAL)


@pytest.mark.parametrize("old,new", ILLEGAL, ids=lambda s: STATE_NAMES[s])
def test_every_illegal_edge_raises_naming_both_states(loop, checked, old, new):
    proto = bare(loop)
    proto.state = old
    with pytest.raises(AssertionError, match=f"illegal transition {STATE_NAMES[old]} -> {STATE_NAMES[new]}$"):
        proto._set_state(new)
    assert proto.state == old


def test_without_the_checks_an_illegal_edge_only_assigns(loop, monkeypatch):
    """A release run pays nothing but the assignment."""
    monkeypatch.setattr(websocket, "CHECK_TRANSITIONS", False)
    proto = bare(loop)
    proto.state = CLOSED
    proto._set_state(OPEN)
    assert proto.state == OPEN


def test_checks_follow_the_build():
    """On in a debug build of the core, as the core's own tables are; or by FASTASGI_DEBUG=1 at
    run time (a run of the suite sets neither unless it means to)."""
    assert websocket.CHECK_TRANSITIONS is (_core.DEBUG or os.environ.get("FASTASGI_DEBUG") == "1")


def test_close_pending_is_only_for_an_open_connection(loop, checked):
    proto = bare(loop)
    proto.transport = types.SimpleNamespace(pause_reading=lambda: None)
    with pytest.raises(AssertionError, match="close pending set in HANDSHAKE"):
        proto._defer(True, 1000, "")
    proto.state = OPEN
    proto._defer(True, 1000, "")
    assert proto.close_pending
    with pytest.raises(AssertionError, match="OPEN -> CLOSING with a close pending"):
        proto._set_state(CLOSING)
    with pytest.raises(AssertionError, match="or twice"):
        proto._defer(False, 1002, "")
    proto._cancel_failure()
    assert not proto.close_pending
    proto._set_state(CLOSING)


# --------------------------------------------------------------------------- real connections


@pytest.fixture
def seen(monkeypatch, checked, loop):
    """Every change the setter makes, as (old, new) names; and whatever reached the loop's
    exception handler (a failed check in a loop callback lands there, not in the test)."""
    changes: list[tuple[str, str]] = []
    errors: list[dict] = []
    original = WebSocketProtocol._set_state

    def recording(self, new):
        changes.append((self.state_name, STATE_NAMES[new]))
        original(self, new)

    monkeypatch.setattr(WebSocketProtocol, "_set_state", recording)
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield types.SimpleNamespace(changes=changes, errors=errors)
    assert errors == []


def path_of(sequence: str) -> list[tuple[str, str]]:
    names = sequence.split()
    return list(zip(names, names[1:]))


class App:
    """An ASGI websocket app following ``script``; what it received is in ``got``."""

    def __init__(self, script):
        self.script = script
        self.got: list[dict] = []

    async def __call__(self, scope, receive, send):
        async def recv():
            message = await receive()
            self.got.append(message)
            return message

        await self.script(recv, send)


def open_ws(loop, app, request: bytes | None = None):
    ctx = make_ctx(app, loop, ws_upgrade=create_ws_upgrade(settings()))
    proto, transport = connect(ctx)
    feed(proto, request if request is not None else upgrade(uuid.uuid4().hex))
    return proto, transport


def frames_out(transport) -> bytes:
    head, _, out = transport.output().partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    return out


def test_closed_by_the_app(loop, seen):
    async def script(recv, send):
        await recv()
        await send({"type": "websocket.accept"})
        await recv()
        await send({"type": "websocket.close", "code": 4001})
        await recv()

    app = App(script)
    proto, transport = open_ws(loop, app)
    feed(proto, frame(TEXT, b"hi"))
    assert transport.protocol.state_name == "CLOSING"  # waiting for the client's close frame
    feed(proto, frame(CLOSE, (4001).to_bytes(2, "big")))
    assert frames_out(transport) == server_close(4001)
    assert transport.lost
    assert seen.changes == path_of("HANDSHAKE OPEN CLOSING CLOSED")
    assert app.got[-1] == {"type": "websocket.disconnect", "code": 4001, "reason": ""}


def test_closed_by_the_client(loop, seen):
    async def script(recv, send):
        await recv()
        await send({"type": "websocket.accept"})
        await recv()

    app = App(script)
    proto, transport = open_ws(loop, app)
    feed(proto, frame(CLOSE, b"\x03\xe8bye"))
    # RFC 6455 5.5.1: the echo of the client's code; 7.1.1: the server closes TCP first
    assert frames_out(transport) == server_close(1000)
    assert transport.lost and ("close",) in transport.calls
    assert seen.changes == path_of("HANDSHAKE OPEN CLOSING CLOSED")
    assert app.got[-1] == {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}


def test_denied_with_close_before_accept(loop, seen):
    async def script(recv, send):
        await recv()
        await send({"type": "websocket.close"})

    proto, transport = open_ws(loop, App(script))
    assert transport.output().startswith(b"HTTP/1.1 403 ")
    assert transport.lost
    # connection_lost found CLOSED already and left it: no CLOSED -> CLOSED
    assert seen.changes == path_of("HANDSHAKE CLOSED")


def test_denied_with_a_response(loop, seen):
    async def script(recv, send):
        await recv()
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"no", "more_body": True})
        await send({"type": "websocket.http.response.body", "body": b"pe"})

    proto, transport = open_ws(loop, App(script))
    out = transport.output()
    assert out.startswith(b"HTTP/1.1 401 ") and out.endswith(b"2\r\nno\r\n2\r\npe\r\n0\r\n\r\n")
    assert transport.lost
    assert seen.changes == path_of("HANDSHAKE RESPONSE CLOSED")


def test_handshake_failure(loop, seen):
    """A version we do not speak: 426 (RFC 6455 4.4), and the app is never called."""
    app = App(None)
    request = upgrade(uuid.uuid4().hex).replace(b"sec-websocket-version: 13", b"sec-websocket-version: 8")
    proto, transport = open_ws(loop, app, request)
    assert transport.output().startswith(b"HTTP/1.1 426 ")
    assert transport.lost and app.got == []
    assert seen.changes == path_of("HANDSHAKE CLOSED")


def test_app_failure_before_accept(loop, seen):
    async def script(recv, send):
        await recv()
        raise ValueError("boom")

    proto, transport = open_ws(loop, App(script))
    assert transport.output().startswith(b"HTTP/1.1 500 ")
    assert seen.changes == path_of("HANDSHAKE CLOSED")


def test_close_while_a_message_is_queued(loop, seen):
    """The client's message and its close in one read: the close waits (close pending, state
    still OPEN) until the app has answered the message and waits again (RFC 6455 5.5.1)."""

    async def script(recv, send):
        await recv()
        await send({"type": "websocket.accept"})
        message = await recv()
        await send({"type": "websocket.send", "bytes": message["bytes"]})
        await recv()

    app = App(script)
    proto, transport = open_ws(loop, app)
    ws = transport.protocol
    feed(proto, frame(BINARY, b"m") + frame(CLOSE, b"\x0f\xa0"), settle=False)
    assert ws.close_pending and ws.state_name == "OPEN"
    run_until_idle(loop)
    assert not ws.close_pending
    assert frames_out(transport) == b"\x82\x01m" + server_close(4000)  # the answer, then the echo
    assert transport.lost
    assert seen.changes == path_of("HANDSHAKE OPEN CLOSING CLOSED")
    assert app.got[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": ""}
    assert loop.next_timer() is None  # FAIL_DELAY's timer went with the pending close


@pytest.mark.parametrize(
    "last,code",
    [
        # RFC 6455 7.1.5: the client's close frame had arrived, so its code is the connection's
        (frame(CLOSE, b"\x0f\xa0"), 4000),
        # a protocol error (1002) not yet acted on: no close frame was exchanged, so 1006
        (frame(TEXT, b"x", rsv=2), 1006),
    ],
    ids=["peer-close", "protocol-error"],
)
def test_connection_lost_while_close_pending(loop, seen, last, code):
    async def script(recv, send):
        await recv()
        await send({"type": "websocket.accept"})
        await recv()
        await asyncio.sleep(1)  # busy with the message while the client goes away
        await recv()

    app = App(script)
    proto, transport = open_ws(loop, app)
    ws = transport.protocol
    feed(proto, frame(TEXT, b"m") + last)
    assert ws.close_pending and ws.state_name == "OPEN"
    lose(proto)
    assert not ws.close_pending
    run_timers(loop, 2.0)
    assert frames_out(transport) == b""  # nothing went out: the socket was gone first
    assert seen.changes == path_of("HANDSHAKE OPEN CLOSED")
    assert [m["type"] for m in app.got] == ["websocket.connect", "websocket.receive", "websocket.disconnect"]
    assert app.got[-1]["code"] == code
    assert loop.next_timer() is None


def test_lost_during_handshake(loop, seen):
    async def script(recv, send):
        await recv()
        await recv()

    app = App(script)
    proto, transport = open_ws(loop, app)
    lose(proto)
    assert seen.changes == path_of("HANDSHAKE CLOSED")
    assert app.got[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}


def test_in_loop_checks_reach_the_test(loop, seen):
    """The fixture's guard works: a refused change inside a loop callback is reported."""
    proto = bare(loop)
    proto.state = CLOSED
    loop.call_soon(proto._set_state, OPEN)
    run_until_idle(loop)
    assert len(seen.errors) == 1 and "CLOSED -> OPEN" in str(seen.errors[0]["exception"])
    seen.errors.clear()
