"""Drive the compiled HTTP/1.1 protocol in-process: a fake transport, a loop whose clock the
test sets, and helpers to connect, deliver bytes and let suspended app tasks run.

Nothing here opens a socket or starts a process. The loop is a real asyncio event loop, so
apps that suspend (``await receive()`` with no body yet, ``asyncio.sleep``) continue in real
asyncio Tasks; only its clock is fake: ``loop.time()`` returns what the test set, so
``ctx.tick()`` timeouts and app timers move only when the test moves them.

The transport behaves as asyncio's socket transports do where the protocol can tell:

- ``close()``/``abort()`` make ``is_closing()`` true and call ``connection_lost(None)`` on the
  next loop iteration, once; bytes not yet delivered to the protocol are then dropped.
- ``pause_reading()`` stops delivery: bytes fed meanwhile wait in the transport (as they would
  in the kernel) and are delivered after ``resume_reading()``, in order.
- a half-close by the client is ``eof_received()``; when it returns a false value the
  transport closes itself.

Every call the protocol makes is recorded in order in ``transport.calls``, so a test can
assert the exact sequence (``("write", b"...")``, ``("pause_reading",)``, ``("close",)``...).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from fastasgi._http._core import HttpProtocol, ServerContext

#: where the fake clock starts (any value: only differences matter to the core)
T0 = 1000.0
#: the addresses a connection reports
PEERNAME = ("127.0.0.1", 50000)
SOCKNAME = ("127.0.0.1", 8000)


class ClockLoop(asyncio.SelectorEventLoop):
    """A real selector event loop whose ``time()`` is set by the test."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0

    def time(self) -> float:
        return self.now

    def next_timer(self) -> float | None:
        """When the earliest pending (not cancelled) timer is due, or None."""
        whens = [h.when() for h in self._scheduled if not h.cancelled()]
        return min(whens) if whens else None

    def has_ready(self) -> bool:
        return bool(self._ready)


def new_loop() -> ClockLoop:
    return ClockLoop()


def in_loop(loop: ClockLoop, fn: Callable, *args: Any) -> Any:
    """Call ``fn(*args)`` as the loop calls protocol methods: with ``loop`` as the running
    loop (the app's eager first step and the Tasks it starts need one). What ``fn``
    schedules runs later, in ``run_until_idle``. Exceptions propagate to the test."""
    if asyncio.events._get_running_loop() is loop:
        return fn(*args)
    asyncio.events._set_running_loop(loop)
    try:
        return fn(*args)
    finally:
        asyncio.events._set_running_loop(None)


class FakeTransport(asyncio.Transport):
    """An asyncio transport that records what the protocol does with it."""

    def __init__(
        self, loop: ClockLoop, *, peername: Any = PEERNAME, sockname: Any = SOCKNAME, sslcontext: Any = None
    ) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: Any = None
        self.calls: list[tuple] = []
        self.writes: list[bytes] = []
        self.closed = False  # close() or abort() was called
        self.aborted = False
        self.lost = False  # connection_lost has been delivered
        self.reading_paused = False
        self.writes_after_close: list[bytes] = []
        self.inbox: list[bytes] = []  # fed bytes not yet delivered (reading paused)
        self.eof_pending = False  # the client half-closed; not yet seen (reading paused)
        self.eof_result: Any = "not delivered"  # what eof_received() returned
        self._extra = {"peername": peername, "sockname": sockname, "sslcontext": sslcontext, "socket": None}

    # ---- what the protocol calls
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes) -> None:
        assert type(data) is bytes, f"only immutable bytes go to write(), got {type(data).__name__}"
        self.calls.append(("write", data))
        if self.closed:
            self.writes_after_close.append(data)
            return
        self.writes.append(data)

    def writelines(self, chunks: Iterable[bytes]) -> None:
        chunks = list(chunks)
        self.calls.append(("writelines", chunks))
        if self.closed:
            self.writes_after_close.extend(chunks)
            return
        self.writes.extend(chunks)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.calls.append(("close",))
        self._shut()

    def abort(self) -> None:
        self.calls.append(("abort",))
        self.aborted = True
        self._shut()

    def pause_reading(self) -> None:
        self.calls.append(("pause_reading",))
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.calls.append(("resume_reading",))
        self.reading_paused = False
        if self.inbox or self.eof_pending:
            # the reader fires at the next select, after what is ready now
            self.loop.call_soon(self.loop.call_soon, self.deliver)

    def is_reading(self) -> bool:
        return not self.reading_paused and not self.closed

    def set_protocol(self, protocol: Any) -> None:
        self.calls.append(("set_protocol", protocol))
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    # ---- what the test calls
    def output(self) -> bytes:
        """Everything written before close, in order."""
        return b"".join(self.writes)

    def take(self) -> bytes:
        """What was written since the last take()."""
        out = b"".join(self.writes)
        self.writes.clear()
        return out

    def events(self) -> list[tuple]:
        """``calls`` with the bytes of writes joined: the calls that are not writes, and
        ("out", bytes) for each run of consecutive writes."""
        merged: list[tuple] = []
        for call in self.calls:
            if call[0] in ("write", "writelines"):
                data = call[1] if call[0] == "write" else b"".join(call[1])
                if merged and merged[-1][0] == "out":
                    merged[-1] = ("out", merged[-1][1] + data)
                else:
                    merged.append(("out", data))
            else:
                merged.append(call)
        return merged

    def feed(self, data: bytes) -> None:
        """Bytes arrive from the client: delivered now unless reading is paused."""
        if data:
            self.inbox.append(data)
        self.deliver()

    def deliver(self) -> None:
        """Hand waiting bytes, then a waiting EOF, to the protocol unless reading is
        paused or the transport closed (as asyncio's reader does)."""
        while self.inbox and not self.reading_paused and not self.closed:
            self._call(self.protocol.data_received, self.inbox.pop(0))
        if self.eof_pending and not self.inbox and not self.reading_paused and not self.closed:
            self.eof_pending = False
            self.eof_result = self._call(self.protocol.eof_received)
            if not self.eof_result:
                self.close()  # asyncio closes the transport when eof_received says so

    def feed_eof(self) -> None:
        """The client half-closes (shutdown(SHUT_WR)) after what it sent. The protocol sees
        it once the bytes before it are delivered and reading is not paused."""
        self.eof_pending = True
        self.deliver()

    def _call(self, fn: Callable, *args: Any) -> Any:
        return in_loop(self.loop, fn, *args)

    def set_write_paused(self, paused: bool) -> None:
        """The kernel buffer fills (True) or drains (False): asyncio calls pause_writing /
        resume_writing on the protocol."""
        self.calls.append(("pause_writing",) if paused else ("resume_writing",))
        self._call(self.protocol.pause_writing if paused else self.protocol.resume_writing)

    def peer_lost(self, exc: BaseException | None = None) -> None:
        """The client goes away (reset): connection_lost now, no more delivery."""
        self.closed = True
        self.inbox.clear()
        if not self.lost:
            self.lost = True
            self._call(self.protocol.connection_lost, exc)

    def _shut(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.inbox.clear()
        self.loop.call_soon(self._lose)

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.protocol.connection_lost(None)


# protocol -> its transport (the protocol does not expose it); the transport keeps the
# protocol alive, so an entry lives exactly as long as the test holds either
_TRANSPORTS: weakref.WeakValueDictionary[int, FakeTransport] = weakref.WeakValueDictionary()


def transport_of(proto: Any) -> FakeTransport:
    return _TRANSPORTS[id(proto)]


def make_ctx(app: Callable, loop: ClockLoop | None = None, **kw: Any) -> ServerContext:
    """A ServerContext over ``loop`` (a new ClockLoop if None) with exact-bytes defaults:
    no Date header."""
    kw.setdefault("date_header", False)
    loop = loop if loop is not None else new_loop()
    kw.setdefault("clock", loop.time)  # the core's timeouts follow the fake clock
    return ServerContext(app, loop, **kw)


def connect(ctx: ServerContext, **transport_kw: Any) -> tuple[HttpProtocol, FakeTransport]:
    """A new HttpProtocol of ``ctx`` with connection_made over a FakeTransport."""
    transport = FakeTransport(ctx.loop, **transport_kw)
    proto = HttpProtocol(ctx)
    transport.protocol = proto
    _TRANSPORTS[id(proto)] = transport
    in_loop(ctx.loop, proto.connection_made, transport)
    return proto, transport


def pieces(data: bytes, split: Any = None) -> list[bytes]:
    """``data`` cut for delivery: None or "whole": one piece; "bytewise": one byte each;
    an int k: ``data[:k]`` and ``data[k:]``; a list of ints: cut at each."""
    if split is None or split == "whole":
        return [data]
    if split == "bytewise":
        return [data[i : i + 1] for i in range(len(data))]
    cuts = [split] if isinstance(split, int) else sorted(split)
    out, prev = [], 0
    for k in cuts:
        out.append(data[prev:k])
        prev = k
    out.append(data[prev:])
    return [p for p in out if p]


def feed(proto: Any, data: bytes, split: Any = None, *, settle: bool = True) -> FakeTransport:
    """Deliver ``data`` to ``proto`` in pieces (see ``pieces``); after each piece let the
    loop run what became ready (``settle``), as a real loop would between two reads."""
    transport = transport_of(proto)
    for piece in pieces(data, split):
        transport.feed(piece)
        if settle:
            run_until_idle(transport.loop)
    return transport


def eof(proto: Any) -> FakeTransport:
    """The client half-closes; then the loop runs what that made ready."""
    transport = transport_of(proto)
    transport.feed_eof()
    run_until_idle(transport.loop)
    return transport


def lose(proto: Any, exc: BaseException | None = None) -> FakeTransport:
    """The client goes away (connection reset): connection_lost, then the loop runs."""
    transport = transport_of(proto)
    transport.peer_lost(exc)
    run_until_idle(transport.loop)
    return transport


def set_writing(proto: Any, paused: bool) -> FakeTransport:
    """The transport's buffer fills (``pause_writing``) or drains (``resume_writing``)."""
    transport = transport_of(proto)
    transport.set_write_paused(paused)
    run_until_idle(transport.loop)
    return transport


def call(proto_or_ctx: Any, method: str, *args: Any) -> Any:
    """Call a control method (``shutdown``, ``abort``, ``begin_shutdown``, ``tick``) from
    inside the loop, as the server does, then let the loop run what it made ready."""
    loop = proto_or_ctx.loop if isinstance(proto_or_ctx, ServerContext) else transport_of(proto_or_ctx).loop
    result = in_loop(loop, getattr(proto_or_ctx, method), *args)
    run_until_idle(loop)
    return result


def run_until_idle(loop: ClockLoop, max_iterations: int = 1000) -> int:
    """Run loop iterations while callbacks are ready (tasks resuming, call_soon); at most
    ``max_iterations``. Timers that are not due on the fake clock do not run. Returns the
    number of iterations run."""
    n = 0
    while loop.has_ready():
        if n >= max_iterations:
            raise AssertionError(f"loop still busy after {max_iterations} iterations")
        loop.call_soon(loop.stop)
        loop.run_forever()
        n += 1
    return n


def advance(loop: ClockLoop, ctx: ServerContext | None, seconds: float) -> None:
    """Move the clock ``seconds`` forward, run what became due, then ``ctx.tick()`` (the
    server's once-a-second tick) and run what that made ready."""
    loop.now += seconds
    loop.call_soon(loop.stop)  # one iteration runs the timers now due
    loop.run_forever()
    run_until_idle(loop)
    if ctx is not None:
        tick(ctx)


def tick(ctx: ServerContext) -> None:
    """The server's once-a-second ``ctx.tick()``, from inside the loop, then what it made
    ready."""
    in_loop(ctx.loop, ctx.tick)
    run_until_idle(ctx.loop)


def run_timers(loop: ClockLoop, limit: float = 60.0) -> float:
    """Let app timers (``asyncio.sleep``, ``wait_for``) fire by jumping the clock to each next
    one, up to ``limit`` seconds of fake time in all; no ``ctx.tick()``, so keep-alive and
    request timeouts do not move. Returns the fake seconds that passed."""
    start = loop.now
    run_until_idle(loop)
    while True:
        when = loop.next_timer()
        if when is None or when - start > limit:
            return loop.now - start
        if when > loop.now:
            loop.now = when
        loop.call_soon(loop.stop)
        loop.run_forever()
        run_until_idle(loop)


def close_loop(loop: ClockLoop) -> None:
    """End what the test left: its connections are lost (so their apps see a disconnect,
    not an error), their tasks cancelled; then close the loop."""
    for transport in list(_TRANSPORTS.values()):
        if transport.loop is loop and not transport.lost:
            transport.peer_lost()
    tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for t in tasks:
        t.cancel()
    for _ in range(10):
        if not loop.has_ready():
            break
        run_until_idle(loop)
    loop.close()
