#!/usr/bin/env python3
"""Fuzz one HTTP/1.1 connection of the compiled core, in-process, app and client both chosen
by the input.

``decode()`` turns the input into a Plan: the server settings (one of PROFILES), what the app
does for each request it gets (a Behaviour per request: answer at once, stream, raise before
or after the start, return early, start and return, read part of the body or all of it,
wait on the fake clock, wait for the client to leave and send anyway, misuse send...), and
a sequence of events on the connection (OPS): bytes from the client in pieces of any size,
its half-close, its reset, pause_writing/resume_writing, loop iterations, clock jumps with
``ctx.tick()``, app timers, graceful shutdown, abort.

``run()`` plays a Plan over tests/support/inproc.py (fake transport, fake clock), then lets
the connection end: the client reads again, every timeout passes, finally the client leaves.
The invariants (each a Violation when broken):

- no exception escapes a protocol method, none reaches the loop's exception handler, the
  core logs no internal error and, in the debug build, no illegal state transition; what the
  app sees raised is its own doing;
- nothing is written after the transport was closed;
- the output is a sequence of well-formed HTTP/1.1 responses (status line, fields, framing by
  Content-Length, chunked or close; nothing after a close), in request order: the k-th
  answers the k-th request the app got, with the status and body the app sent when its send
  completed, and at most one more, a server error that closes;
- once every timeout has passed the connection is closed, unless its app is waiting for the
  client to leave (a long poll); when the client leaves every app task ends.

Run it with fuzz/run.sh fuzz_http SECONDS; ``one_input(data)`` replays an input without
atheris (tests/unit/test_fuzz_findings.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass, field

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fuzz._common import (  # noqa: E402
    FuzzAppError,
    FuzzedDataProvider,
    advance,
    check,
    in_loop,
    parse_responses,
    run_timers,
    run_watched,
    settle,
    step,
)
from support.inproc import connect, make_ctx  # noqa: E402
from support.wire_cases import LIMIT_CTX  # noqa: E402

# --------------------------------------------------------------------------- the plan


def _access_log(scope, status, nbytes, duration):
    """An access log that checks what the core hands it (a failure is logged by the core as
    "Access log failed", which Watch reports)."""
    assert type(status) is int and 100 <= status <= 599, status
    assert nbytes >= 0 and duration >= 0.0, (nbytes, duration)
    assert type(scope["path"]) is str and type(scope["raw_path"]) is bytes, scope
    assert type(scope["method"]) is str and type(scope["headers"]) is list, scope


#: ServerContext settings, one chosen per input
PROFILES = (
    {},
    dict(LIMIT_CTX),
    {
        "max_body_size": 100,
        "keep_alive_timeout": 1.0,
        "timeout_request_head": 2.0,
        "timeout_request_body": 3.0,
    },
    {"limit_concurrency": 1, "root_path": "/root", "access_log": _access_log},
    {
        "header_map": "refuse",
        "access_log": _access_log,
        "server_header": False,
        "extra_headers": [(b"x-extra", b"1")],
    },
    {"header_map": "dangerous", "max_body_size": 0, "date_header": True},
)

MODES = (
    "respond",
    "raise_before",
    "raise_after_start",
    "raise_mid_stream",
    "return_early",
    "start_only",
    "stream_waits",
    "disconnect_then_send",
    "incomplete_stream",
    "bad_header",
    "wrong_length",
    "body_first",
    "twice",
)
STATUSES = [200, 201, 204, 304, 404, 500, 299, 599]  # lists: atheris picks from lists only
HEADER_SETS = 7
SIZES = [0, 1, 7, 1000, 20000]  # 20000: past the core's COPY_LIMIT
WAITS = [0.0, 0.1, 3.0, 45.0, 100.0]  # fake seconds
TICKS = [0.5, 1.0, 2.0, 5.0, 31.0, 61.0]
OPS = ("feed",) * 6 + (
    "eof",
    "lose",
    "pause_writing",
    "resume_writing",
    "tick",
    "step",
    "idle",
    "timers",
    "shutdown",
    "abort",
    "flood",
)
#: "flood" feeds one piece this many times over, in 64 KiB reads: past the core's HIGH_WATER
#: of buffered request body with an input of a few bytes
FLOODS = [16, 256, 4096]
MAX_OPS = 200
MAX_PIECE = 65535
MAX_BEHAVIOURS = 8


@dataclass(frozen=True)
class Behaviour:
    mode: str = "respond"
    status: int = 200
    headers: int = 0  # which of the header sets (app_headers)
    parts: int = 0  # body messages with more_body before the last
    size: int = 7  # bytes in each body message
    reads: int = 0  # receive() calls first: 0-2, 3 = until the body is complete
    wait: float = 0.0  # asyncio.sleep where the mode waits


DEFAULT = Behaviour()


@dataclass(frozen=True)
class Plan:
    profile: int = 0
    behaviours: tuple = ()
    ops: tuple = ()  # ("feed", bytes) / ("flood", bytes, times) / ("tick", seconds) / (name,)


def decode(fdp) -> Plan:
    profile = fdp.ConsumeIntInRange(0, len(PROFILES) - 1)
    behaviours = []
    for _ in range(fdp.ConsumeIntInRange(0, MAX_BEHAVIOURS)):
        behaviours.append(
            Behaviour(
                MODES[fdp.ConsumeIntInRange(0, len(MODES) - 1)],
                fdp.PickValueInList(STATUSES),
                fdp.ConsumeIntInRange(0, HEADER_SETS - 1),
                fdp.ConsumeIntInRange(0, 3),
                fdp.PickValueInList(SIZES),
                fdp.ConsumeIntInRange(0, 3),
                fdp.PickValueInList(WAITS),
            )
        )
    ops = []
    while fdp.remaining_bytes() > 0 and len(ops) < MAX_OPS:
        name = OPS[fdp.ConsumeIntInRange(0, len(OPS) - 1)]
        if name == "feed":
            ops.append((name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, MAX_PIECE))))
        elif name == "tick":
            ops.append((name, fdp.PickValueInList(TICKS)))
        elif name == "flood":
            ops.append((name, fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 255)), fdp.PickValueInList(FLOODS)))
        else:
            ops.append((name,))
    return Plan(profile, tuple(behaviours), tuple(ops))


def encode(plan: Plan, enc) -> None:
    """The inverse of decode (fuzz/make_corpus.py): ``enc`` is a fuzz._fdp.Encoder."""
    enc.int_in_range(0, len(PROFILES) - 1, plan.profile)
    enc.int_in_range(0, MAX_BEHAVIOURS, len(plan.behaviours))
    for b in plan.behaviours:
        enc.int_in_range(0, len(MODES) - 1, MODES.index(b.mode))
        enc.pick(STATUSES, b.status)
        enc.int_in_range(0, HEADER_SETS - 1, b.headers)
        enc.int_in_range(0, 3, b.parts)
        enc.pick(SIZES, b.size)
        enc.int_in_range(0, 3, b.reads)
        enc.pick(WAITS, b.wait)
    for op in plan.ops:
        enc.int_in_range(0, len(OPS) - 1, OPS.index(op[0]))
        if op[0] == "feed":
            enc.int_in_range(0, MAX_PIECE, len(op[1]))
            enc.bytes(op[1])
        elif op[0] == "tick":
            enc.pick(TICKS, op[1])
        elif op[0] == "flood":
            enc.int_in_range(0, 255, len(op[1]))
            enc.bytes(op[1])
            enc.pick(FLOODS, op[2])


# --------------------------------------------------------------------------- the app


@dataclass
class Call:
    """One request as the app got it, and what became of its response."""

    method: str
    http_version: str
    expect_continue: bool
    behaviour: Behaviour
    app_chunked: bool = False
    sent: bool = False  # the last body message's send() returned
    sent_closed: bool = False  # ...while the transport was already closed
    status: int = 0
    body: bytes = b""
    long_poll: bool = False  # waiting in receive() for the client to leave
    ended: bool = False


def app_headers(b: Behaviour, total: int) -> list:
    return [
        [],
        [(b"content-type", b"text/plain")],
        [(b"content-length", b"%d" % total)],
        [(b"connection", b"close")],
        [(b"transfer-encoding", b"chunked")],
        [(b"server", b"app"), (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT")],
        [(b"x-a", b"1"), (b"X-Mixed-Case", b""), (b"connection", b"keep-alive")],
    ][b.headers]


@dataclass
class App:
    behaviours: tuple
    transport: object = None
    calls: list = field(default_factory=list)

    async def __call__(self, scope, receive, send):
        k = len(self.calls)
        b = self.behaviours[k] if k < len(self.behaviours) else DEFAULT
        headers = dict(scope["headers"])
        call = Call(
            scope["method"], scope["http_version"], headers.get(b"expect", b"").lower() == b"100-continue", b
        )
        self.calls.append(call)
        try:
            await self.play(b, call, receive, send)
        finally:
            call.ended = True

    async def read(self, receive, n: int) -> None:
        for i in range(10000):
            if n < 3 and i >= n:
                return
            msg = await receive()
            if msg["type"] == "http.disconnect" or not msg.get("more_body", False):
                return

    async def wait(self, seconds: float) -> None:
        if seconds:
            await asyncio.sleep(seconds)

    async def play(self, b: Behaviour, call: Call, receive, send) -> None:
        mode = b.mode
        total = b.size * (b.parts + 1)
        headers = app_headers(b, total)
        call.app_chunked = b.headers == 4
        if mode == "wrong_length":
            headers = [(b"content-length", b"%d" % (total + 1 if b.parts % 2 == 0 else max(total - 1, 0)))]
        elif mode == "bad_header":
            # CR LF in a value would split the response (RFC 9110 5.5): send() must refuse it
            headers = [*headers, (b"x-evil", b"a\r\nx-injected: 1")]
        start = {"type": "http.response.start", "status": b.status, "headers": headers}
        parts = [bytes([0x61 + i % 26]) * b.size for i in range(b.parts + 1)]

        async def body(i: int, more: bool) -> None:
            await send({"type": "http.response.body", "body": parts[i], "more_body": more})

        async def respond() -> None:
            await send(start)
            for i in range(b.parts):
                await body(i, True)
                if mode == "stream_waits":
                    await self.wait(b.wait)
            call.sent_closed = self.transport.closed
            await body(b.parts, False)
            call.sent, call.status, call.body = True, b.status, b"".join(parts)

        if mode == "body_first":
            await body(0, False)
        elif mode == "raise_mid_stream":
            await send(start)
            await body(0, True)
            await self.wait(b.wait)
            raise FuzzAppError("mid-stream")
        elif mode in ("start_only", "incomplete_stream"):
            await send(start)
            for i in range(b.parts if mode == "incomplete_stream" else 0):
                await body(i, True)
            await self.wait(b.wait)
            return
        await self.read(receive, b.reads)
        if mode == "disconnect_then_send":
            call.long_poll = True
            for _ in range(10000):
                if (await receive())["type"] == "http.disconnect":
                    break
            call.long_poll = False
            await respond()
            return
        if mode not in ("stream_waits", "raise_after_start"):
            await self.wait(b.wait)
        if mode == "raise_before":
            raise FuzzAppError("before start")
        if mode == "return_early":
            return
        if mode == "raise_after_start":
            await send(start)
            await self.wait(b.wait)
            raise FuzzAppError("after start")
        await respond()
        if mode == "twice":
            await send(start)


# --------------------------------------------------------------------------- running a plan

SERVER_ERRORS = (400, 408, 413, 414, 431, 501, 503, 505)


def run(plan: Plan) -> None:
    run_watched(play, plan)


def play(loop, plan: Plan) -> None:
    app = App(plan.behaviours)
    ctx = make_ctx(app, loop, **PROFILES[plan.profile])
    proto, transport = connect(ctx)
    app.transport = transport
    write_paused = False
    for op in plan.ops:
        name = op[0]
        if name == "feed":
            step(loop)  # a real loop runs what is ready between two reads
            transport.feed(op[1])
        elif name == "flood":
            data = op[1] * op[2]
            for i in range(0, len(data), 65536):
                step(loop)
                transport.feed(data[i : i + 65536])
        elif name == "eof":
            if not transport.eof_pending and transport.eof_result == "not delivered":
                transport.feed_eof()
        elif name == "lose":
            transport.peer_lost(None)
        elif name == "pause_writing":
            # asyncio reports the change only, and not once the connection is lost
            if not write_paused and not transport.closed:
                write_paused = True
                transport.set_write_paused(True)
        elif name == "resume_writing":
            if write_paused and not transport.lost:
                write_paused = False
                transport.set_write_paused(False)
        elif name == "tick":
            advance(loop, ctx, op[1])
        elif name == "step":
            step(loop)
        elif name == "idle":
            settle(loop)
        elif name == "timers":
            run_timers(loop, 10.0)
        elif name == "shutdown":
            in_loop(loop, ctx.begin_shutdown)
        elif name == "abort":
            in_loop(loop, proto.abort)

    # the end: the client reads what it is sent, every timeout passes
    settle(loop)
    if write_paused and not transport.lost:
        transport.set_write_paused(False)
    for _ in range(8):
        run_timers(loop, 200.0)  # app sleeps end, whether or not the connection is open
        if transport.lost:
            break
        advance(loop, ctx, 31.0)
    if not transport.lost:
        waiting = [c for c in app.calls if not c.ended]
        check(
            proto.state_name == "REQUEST" and waiting and waiting[-1].long_poll,
            "the connection is still open after every timeout passed: state %s, app %s, "
            "reading paused %s, calls %r",
            proto.state_name,
            "waiting" if waiting else "done",
            transport.reading_paused,
            app.calls[-3:],
        )
        transport.peer_lost(None)  # a long poll ends when the client leaves
        settle(loop)
        run_timers(loop, 200.0)
    check(proto.state_name == "CLOSED", "state %s after the connection was lost", proto.state_name)
    check(not ctx.tasks, "app tasks left after the connection ended: %r", ctx.tasks)
    check(
        all(c.ended for c in app.calls), "an app call never ended: %r", [c for c in app.calls if not c.ended]
    )
    check(ctx.active_requests == 0, "active_requests is %d at the end", ctx.active_requests)
    check_output(transport, app.calls)


def check_output(transport, calls: list) -> None:
    check(
        not transport.writes_after_close,
        "written after the transport was closed: %r",
        b"".join(transport.writes_after_close)[:300],
    )
    responses = parse_responses(transport.output(), lambda k, r: k < len(calls) and calls[k].method == "HEAD")
    finals = [r for r in responses if not r.interim]
    check(
        len(responses) - len(finals) <= sum(c.expect_continue for c in calls),
        "a 100 Continue nobody asked for",
    )
    check(len(finals) <= len(calls) + 1, "%d responses for %d requests the app got", len(finals), len(calls))
    for k, r in enumerate(finals):
        check(not r.values(b"x-injected"), "a header value split the response")
        if k >= len(calls):
            check(
                r.status in SERVER_ERRORS and r.closes,
                "response %d (status %d) answers no request the app got",
                k,
                r.status,
            )
            continue
        c = calls[k]
        if c.http_version == "1.0" and not c.app_chunked:
            check(r.framing != "chunked", "response %d: chunked to an HTTP/1.0 client (RFC 9112 7)", k)
        if c.sent and not c.sent_closed:
            check(r.status == c.status, "response %d: status %d, the app sent %d", k, r.status, c.status)
            bodiless = c.method == "HEAD" or c.status in (204, 304)
            if r.complete:
                check(
                    r.body == (b"" if bodiless else c.body),
                    "response %d: body %r, the app sent %r",
                    k,
                    r.body[:100],
                    c.body[:100],
                )
    for k, c in enumerate(calls):
        if c.sent and not c.sent_closed:
            check(k < len(finals), "the app's response %d was sent but is not on the wire", k)


def one_input(data: bytes) -> None:
    """atheris's TestOneInput: decode, run, check."""
    run(decode(FuzzedDataProvider(data)))


def main() -> None:
    import atheris

    import fastasgi._http._core as core

    print(
        f"fuzz_http: fastasgi._http._core from {core.__file__} (debug build: {core.DEBUG})", file=sys.stderr
    )
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
