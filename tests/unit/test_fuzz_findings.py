"""What the fuzz harnesses (fuzz/README.md) found, each reduced to exact bytes over the
in-process harness, and the replay of their corpora with the normal build.

A finding the core does not fix yet is marked xfail(strict=True) with the place to fix it
(and named in fuzz/_common.KNOWN); once fixed the test passes, strict turns that into a
failure, and the marker and the name go. The three HTTP/1.1 ones below were fixed in the
core (commit 93269c0, "fixes found by the unit suite and the fuzzer") and stay as regression
tests, as do the three HTTP/2 ones fuzz_h2 found (fixed in _http/h2.pxi).
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest

from support.inproc import (
    advance,
    connect,
    feed,
    in_loop,
    make_ctx,
    run_timers,
    run_until_idle,
)
from support.wire_cases import error_response

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
REQ = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


async def answer_ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


# --------------------------------------------------------------------------- findings


@pytest.mark.parametrize("how", ["raises", "returns_without_response"])
def test_server_error_to_head_request_has_no_content(loop, how):
    """fuzz_http head-error-body: HttpProtocol._send_error (_http/protocol.pxi) wrote the
    error's body whatever the request's method; to a HEAD request the server MUST NOT send
    content (RFC 9110 9.3.2)."""

    async def app(scope, receive, send):
        if how == "raises":
            raise RuntimeError("boom")

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
    # the head a GET would get, Content-Length included (RFC 9110 8.6 allows it), no content
    assert transport.output() == error_response(500)[: -len(b"Internal Server Error")]
    assert transport.closed


def test_unread_body_that_stops_coming_is_timed_out(loop):
    """fuzz_http body-stall: HttpProtocol._on_tick (_http/protocol.pxi) applied no timeout to
    a request whose response was complete while its body was still being read and dropped
    (RequestCycle.request DISCARD): timeout_request_body counted only while the app waited
    in receive(), keep_alive_timeout only in IDLE, so a client that stopped sending the body
    held the connection open for ever."""
    ctx = make_ctx(answer_ok, loop, keep_alive_timeout=5.0, timeout_request_body=60.0)
    proto, transport = connect(ctx)
    feed(proto, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab")
    assert transport.output() == b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-length: 2\r\n\r\nok"
    for _ in range(3):
        advance(loop, ctx, 61.0)
    assert transport.closed, f"still open in state {proto.state_name} after 183 s without a byte"
    # the response went out already: the close is all that is left to do
    assert transport.output() == b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-length: 2\r\n\r\nok"


def test_abort_before_the_task_of_a_suspended_app_ran(loop):
    """fuzz_http cancel-before-start: drive()/_continue (_http/driver.pxi) handed a suspended
    app to a Task whose coroutine was _continue; abort() (or server shutdown's
    task.cancel()) before that Task's first step closed _continue unstarted, so neither
    _app_returned nor _app_failed ran: the Task stayed in ctx.tasks, ctx.active_requests
    stayed counted, and the app was never thrown CancelledError (only closed when
    collected)."""
    seen = []

    async def app(scope, receive, send):
        try:
            await asyncio.sleep(1.0)
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    transport.feed(REQ)  # the app suspends in its first step; its Task has not run
    in_loop(loop, proto.abort)  # in the same loop iteration
    run_until_idle(loop)
    run_timers(loop)
    assert transport.aborted
    assert not ctx.tasks, ctx.tasks
    assert ctx.active_requests == 0
    assert seen == ["CancelledError"]


# --------------------------------------------------------------------------- HTTP/2 findings

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def h2_get(stream: int = 1, flags=("END_STREAM", "END_HEADERS")) -> bytes:
    from hpack import Encoder
    from hyperframe.frame import HeadersFrame

    block = Encoder().encode([(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/")])
    return HeadersFrame(stream, block, flags=list(flags)).serialize()


def h2_settings(initial_window_size: int | None = None) -> bytes:
    from hyperframe.frame import SettingsFrame

    settings = {} if initial_window_size is None else {SettingsFrame.INITIAL_WINDOW_SIZE: initial_window_size}
    return SettingsFrame(0, settings=settings).serialize()


@pytest.mark.parametrize("cut", ["no_end_headers", "frame_cut_short"])
def test_h2_field_block_left_open_is_timed_out(loop, cut):
    """fuzz_h2 h2-open-head: (fixed) a HEADERS frame without END_HEADERS (and no CONTINUATION), or cut
    short, starts a stream (nghttp2's on_begin_headers) that no timeout ever ends: not
    timeout_request_head (HTTP/1.1 only), not keep_alive_timeout (streams are open), not the
    stream timeouts (no app runs). A client holds the connection, and its memory, for ever
    with one frame (slowloris); the server should end the connection once
    timeout_request_head has passed (GOAWAY: the HPACK state cannot be resumed)."""
    ctx = make_ctx(answer_ok, loop)
    proto, transport = connect(ctx)
    frame = h2_get(flags=["END_STREAM"]) if cut == "no_end_headers" else h2_get()[:-2]
    feed(proto, H2_PREFACE + h2_settings() + frame)
    assert type(transport.get_protocol()).__name__ == "H2Protocol"
    for _ in range(4):
        advance(loop, ctx, 31.0)
    assert transport.closed, f"still open after 124 s: {transport.get_protocol().state_name}"


def test_h2_app_waiting_in_send_ends_when_the_connection_is_lost(loop):
    """fuzz_h2 h2-lost-sender: (fixed) an app waiting in send() (writing paused here; the same with
    more than HIGH_WATER buffered against a closed window) is never woken when the client
    goes away: connection_lost empties the streams, then releases the senders of none. The
    app's Task stays pending for ever, in ctx.tasks, counted in active_requests."""
    seen = []

    async def app(scope, receive, send):
        await asyncio.sleep(1.0)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"part", "more_body": True})
            await send({"type": "http.response.body", "body": b"end"})
        except BaseException as exc:
            seen.append(type(exc).__name__)
            raise

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, H2_PREFACE + h2_settings() + h2_get())
    transport.set_write_paused(True)  # the client stops reading for a while
    run_timers(loop, 2.0)
    assert ctx.active_requests == 1 and ctx.tasks  # the app waits in its second send()
    transport.peer_lost(None)
    run_until_idle(loop)
    run_timers(loop)
    assert seen == ["ClientDisconnected"], seen
    assert not ctx.tasks, ctx.tasks
    assert ctx.active_requests == 0


def test_h2_end_stream_held_back_by_a_closed_window_is_timed_out(loop):
    """fuzz_h2 h2-empty-end-stall: (fixed) the app streams "hello" and then the usual empty last
    message; the client's window (5) is used up and it never opens it. nghttp2 defers even
    an empty DATA frame while the window is 0, so the END_STREAM never goes out; the stall
    timeout (which resets a stream whose window stays closed) looks only at out_len, which
    is 0. The stream, and so the connection, stays for ever."""

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello", "more_body": True})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b""})

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, H2_PREFACE + h2_settings(initial_window_size=5) + h2_get())
    run_timers(loop, 1.0)
    # DATA "hello" without END_STREAM, and nothing after it
    assert transport.output().endswith(b"\x00\x00\x05\x00\x00\x00\x00\x00\x01hello")
    for _ in range(4):
        advance(loop, ctx, 61.0)
    assert transport.closed, f"still open after 244 s: {transport.get_protocol().state_name}"


# --------------------------------------------------------------------------- the corpora


def _fuzz(module: str):
    return pytest.importorskip(f"fuzz.{module}", reason="fuzz/ is not in this tree (an sdist)")


@pytest.mark.parametrize(
    "harness", ["fuzz_http", "fuzz_target", "fuzz_h2", "fuzz_ws", "fuzz_wsconn", "fuzz_proxy_protocol"]
)
def test_corpus_replays(harness, monkeypatch):
    """Every input in fuzz/corpus/<harness>/ through the harness's one-input function, with
    the build the suite runs (no atheris, no sanitizers): the invariants hold. Findings not
    fixed yet (fuzz/_common.KNOWN) are skipped here: their own xfail tests hold them."""
    module = _fuzz(harness)
    monkeypatch.setenv("FUZZ_IGNORE", ",".join(_fuzz("_common").KNOWN))
    folder = os.path.join(CORPUS, harness)
    names = sorted(os.listdir(folder))
    assert len(names) > 20, folder
    for name in names:
        with open(os.path.join(folder, name), "rb") as f:
            data = f.read()
        try:
            module.one_input(data)
        except AssertionError as exc:
            pytest.fail(f"fuzz/corpus/{harness}/{name}: {exc}")


def test_provider_mirrors_atheris():
    """fuzz/_fdp.py reads inputs exactly as atheris.FuzzedDataProvider does, so that an input
    replays the same with or without atheris."""
    atheris = pytest.importorskip("atheris")
    Mirror = _fuzz("_fdp").FuzzedDataProvider

    rng = random.Random(1)
    for _ in range(500):
        data = bytes(rng.randrange(256) for _ in range(rng.randrange(48)))
        ours, theirs = Mirror(data), atheris.FuzzedDataProvider(data)
        for _ in range(16):
            what = rng.randrange(4)
            if what == 0:
                n = rng.randrange(12)
                assert ours.ConsumeBytes(n) == theirs.ConsumeBytes(n)
            elif what == 1:
                assert ours.ConsumeBool() == theirs.ConsumeBool()
            elif what == 2:
                lo = rng.randrange(-5, 5)
                hi = lo + rng.choice([0, 1, 7, 255, 256, 1000, 65535, 65536, 1 << 20])
                assert ours.ConsumeIntInRange(lo, hi) == theirs.ConsumeIntInRange(lo, hi)
            else:
                values = list(range(rng.randrange(1, 300)))
                assert ours.PickValueInList(values) == theirs.PickValueInList(values)
            assert ours.remaining_bytes() == theirs.remaining_bytes()


def test_encoder_inverts_provider():
    fdp_module = _fuzz("_fdp")
    enc = fdp_module.Encoder()
    enc.int_in_range(0, 5, 3)
    enc.bytes(b"abc")
    enc.int_in_range(-2, 70000, 69999)
    enc.bool(True)
    enc.pick([10, 20, 30], 30)
    fdp = fdp_module.FuzzedDataProvider(enc.data())
    assert fdp.ConsumeIntInRange(0, 5) == 3
    assert fdp.ConsumeBytes(3) == b"abc"
    assert fdp.ConsumeIntInRange(-2, 70000) == 69999
    assert fdp.ConsumeBool() is True
    assert fdp.PickValueInList([10, 20, 30]) == 30
    assert fdp.remaining_bytes() == 0


# --------------------------------------------------------------------------- fuzz_wsconn
# The four findings of fuzz/fuzz_wsconn.py, each its minimal input replayed through the
# harness (which checks every invariant strictly); all four are fixed in websocket.py and
# wsconn.pxi (see each name in fuzz/README.md).
WSCONN_FINDINGS = {
    # the client's EOF closed the transport before the app's accept ran: the 101 was written
    # to a closing transport and accept returned as if it had worked
    "ws-accept-after-close": "11000006010100000101000000000000000400",
    # a second receive() while one waited replaced its future: the first never completed,
    # not even with the disconnect, and the app's task never ended
    "ws-concurrent-receive": "0101000001010000000c0000000400",
    # a keepalive ping timeout while the client's close waited for the app sent 1011 instead
    # of echoing the client's close
    "ws-deferred-ping-timeout": "6869020e000006003d21fa370100000500023d21fa370000000000040e0c0000"
    "06010100000101000200010000020400",
    # the connection ended while the client's close 1000 waited for the app: the app saw 1006,
    # not the code of the close frame received (RFC 6455 7.1.5)
    "ws-deferred-close-lost": "686912000006003d21fa370100000500023d21fa3700000000000c0000060101"
    "00000101000200010000000400",
    # found by the harness in the first fix of ws-concurrent-receive (never landed), which
    # handed each message to a waiter and put it back at the front of the queue when that
    # receive() was cancelled: two readers and an abort, and a reader got the messages out of
    # order. Messages now stay queued until a woken receive() runs, as with an asyncio.Queue.
    "ws-concurrent-receive-order": "68656c6c6f0001ff7015000006013d21fa370000000300033d21fa370000"
    "000100053d21fa3700000000000c0000060101000001010003008e0000000400",
}


@pytest.mark.parametrize("name", sorted(WSCONN_FINDINGS))
def test_wsconn_finding_is_fixed(name, monkeypatch):
    monkeypatch.delenv("FUZZ_IGNORE", raising=False)
    _fuzz("fuzz_wsconn").one_input(bytes.fromhex(WSCONN_FINDINGS[name]))
