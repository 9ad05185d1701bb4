"""What both harnesses share: the data provider, the watch on what the core reports (its error
log, the loop's exception handler), a bounded loop runner, and a reader of the output that
checks it is a sequence of well-formed HTTP/1.1 responses.

A broken invariant raises ``Violation`` (an AssertionError), which atheris reports as a crash
and keeps the input of.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tests/support/inproc.py is the in-process harness (imported as support.inproc, as the unit
# suite does); the repository root makes this directory importable as the package `fuzz`
for _p in (os.path.join(ROOT, "tests"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

try:  # atheris's provider while fuzzing; the pure-Python mirror replays the same inputs
    from atheris import FuzzedDataProvider
except ImportError:
    from fuzz._fdp import FuzzedDataProvider

from support.inproc import ClockLoop, in_loop, new_loop  # noqa: E402

# what the harnesses take from here, the provider and the loop helpers included
__all__ = [
    "ROOT",
    "WATCH",
    "ClockLoop",
    "FuzzAppError",
    "FuzzedDataProvider",
    "Response",
    "Violation",
    "Watch",
    "check",
    "ignored",
    "in_loop",
    "new_loop",
    "parse_responses",
    "run_timers",
    "run_watched",
    "settle",
    "step",
]


class Violation(AssertionError):
    """An invariant of the core does not hold for this input."""


def check(cond: Any, message: str, *args: Any) -> None:
    if not cond:
        raise Violation(message % args if args else message)


# --------------------------------------------------------------------------- the core's reports

# What an app's own exception may be once it propagated out of the app: the harness app's
# deliberate FuzzAppError, send() refusing a misuse the app chose (RuntimeError, with these
# messages), send() after the client left (ClientDisconnected, an OSError), and the
# cancellation abort() applies.
APP_RUNTIME_ERRORS = (
    "Unexpected ASGI message",
    "Response content longer than Content-Length",
    "Response content shorter than Content-Length",
    "Invalid header",
    "Invalid Content-Length header",
    "Response has both Content-Length and Transfer-Encoding",
)


# Findings reported and not fixed yet, which a long run may skip to look for others
# (FUZZ_IGNORE=name,name; fuzz/README.md): each has a name here, an `if ignored(name)` where
# its invariant is checked, and a strict xfail test. None is open now.
KNOWN: tuple[str, ...] = ()


def ignored(name: str) -> bool:
    assert name in KNOWN, name
    return name in os.environ.get("FUZZ_IGNORE", "").split(",")


class FuzzAppError(Exception):
    """Raised by the harness app on purpose."""


class Watch(logging.Handler):
    """Collects, for one input, the records of the "fastasgi.error" logger and what reaches
    the loop's exception handler; ``verify()`` raises Violation for anything that is a bug
    of the core rather than of the app."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.loop_errors: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> Watch:
        """Take the "fastasgi.error" logger over for one input (and quiet asyncio's)."""
        self.records.clear()
        self.loop_errors.clear()
        log = logging.getLogger("fastasgi.error")
        aio = logging.getLogger("asyncio")
        self._saved = (log.handlers[:], log.level, log.propagate, aio.level)
        log.handlers[:] = [self]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        aio.setLevel(logging.CRITICAL + 1)
        return self

    def __exit__(self, *exc: object) -> None:
        log = logging.getLogger("fastasgi.error")
        log.handlers[:], level, log.propagate, aio_level = self._saved
        log.setLevel(level)
        logging.getLogger("asyncio").setLevel(aio_level)

    def attach(self, loop: ClockLoop) -> None:
        loop.set_exception_handler(lambda _loop, context: self.loop_errors.append(context))

    def verify(self) -> None:
        for ctx in self.loop_errors:
            raise Violation(
                f"the loop's exception handler got: {ctx.get('message')} {ctx.get('exception')!r}"
            )
        for rec in self.records:
            msg = rec.getMessage()
            exc = rec.exc_info[1] if rec.exc_info else None
            check(
                not msg.startswith("Internal error while parsing"), "the parser's callbacks raised: %r", exc
            )
            check(not msg.startswith("Access log failed"), "access_log got bad arguments: %r", exc)
            check(not msg.startswith("ASGI callable returned a value"), msg)
            if exc is None:
                continue
            if isinstance(exc, AssertionError):  # FASTASGI_DEBUG: an illegal transition
                raise Violation(f"{msg}: {exc!r}") from exc
            if msg.startswith("Exception in ASGI application") or "after the client disconnected" in msg:
                ok = (
                    isinstance(exc, (FuzzAppError, OSError))
                    or type(exc).__name__ == "CancelledError"
                    or (type(exc) is RuntimeError and str(exc).startswith(APP_RUNTIME_ERRORS))
                )
                check(ok, "the app saw an exception that is not its own: %r", exc)


WATCH = Watch()


# --------------------------------------------------------------------------- the loop


def step(loop: ClockLoop) -> None:
    """One loop iteration (what is ready now), if anything is ready."""
    if loop.has_ready():
        loop.call_soon(loop.stop)
        loop.run_forever()


def settle(loop: ClockLoop, limit: int = 20000) -> None:
    """Run iterations while anything is ready; more than ``limit`` is a livelock."""
    n = 0
    while loop.has_ready():
        n += 1
        check(n <= limit, "the loop is still busy after %d iterations", limit)
        loop.call_soon(loop.stop)
        loop.run_forever()


def advance(loop: ClockLoop, ctx: Any, seconds: float) -> None:
    """The clock moves on: timers now due run, then the server's ctx.tick()."""
    loop.now += seconds
    loop.call_soon(loop.stop)
    loop.run_forever()
    settle(loop)
    in_loop(loop, ctx.tick)
    settle(loop)


def close_loop(loop: ClockLoop) -> None:
    for task in asyncio.all_tasks(loop):
        task.cancel()
    settle(loop)
    loop.close()


def run_watched(play: Callable[[ClockLoop, Any], None], plan: Any, fatal: str = "", what: str = "") -> None:
    """``play(loop, plan)`` on a new loop under WATCH (nothing to the loop's exception
    handler, no error logged but those expected); with ``fatal``, a log record that starts
    with it is a Violation, reported as ``what``."""
    with WATCH:
        loop = new_loop()
        WATCH.attach(loop)
        try:
            play(loop, plan)
        finally:
            close_loop(loop)
        WATCH.verify()
        for rec in WATCH.records if fatal else ():
            check(
                not rec.getMessage().startswith(fatal),
                "%s: %r",
                what,
                rec.exc_info[1] if rec.exc_info else None,
            )


def run_timers(loop: ClockLoop, limit: float) -> None:
    """Jump the clock to each pending timer (app sleeps) up to ``limit`` seconds ahead."""
    start = loop.now
    settle(loop)
    for _ in range(10000):
        when = loop.next_timer()
        if when is None or when - start > limit:
            return
        loop.now = max(loop.now, when)
        loop.call_soon(loop.stop)
        loop.run_forever()
        settle(loop)
    raise Violation("timers keep coming")


# --------------------------------------------------------------------------- the output

TOKEN = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")
STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [^\r\n\x00]*\Z")
FIELD_VALUE = re.compile(rb"[^\r\n\x00]*\Z")
CHUNK_SIZE = re.compile(rb"[0-9a-f]+\Z")
CONTINUE_100 = b"HTTP/1.1 100 Continue\r\n\r\n"


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""
    framing: str = "none"  # none, length, chunked, close
    complete: bool = True  # False: the output ended inside the body
    interim: bool = False

    def values(self, name: bytes) -> list[bytes]:
        return [v for k, v in self.headers if k == name]

    def tokens(self, name: bytes) -> list[bytes]:
        return [t.strip().lower() for v in self.values(name) for t in v.split(b",") if t.strip()]

    @property
    def closes(self) -> bool:
        return b"close" in self.tokens(b"connection")


def parse_responses(out: bytes, head_request: Callable[[int, Response], bool]) -> list[Response]:
    """Read ``out`` as HTTP/1.1 responses (RFC 9112 4-7) and return them. ``head_request(k,
    response)`` says whether the k-th final response (head parsed) answers a HEAD request:
    then it has no body (RFC 9110 9.3.2).
    Only the last response may be incomplete, and only inside its body; a close-delimited
    body or a ``connection: close`` ends the output. Raises Violation otherwise."""
    responses: list[Response] = []
    finals = 0
    pos = 0
    n = len(out)
    while pos < n:
        if out.startswith(CONTINUE_100, pos):
            responses.append(Response(100, [], interim=True))
            pos += len(CONTINUE_100)
            continue
        end = out.find(b"\r\n\r\n", pos)
        check(
            end >= 0, "response %d: head incomplete or not a head: %r", len(responses), out[pos : pos + 200]
        )
        lines = out[pos:end].split(b"\r\n")
        m = STATUS_LINE.match(lines[0])
        check(
            m,
            "response %d: bad status line %r (after %r)",
            len(responses),
            lines[0][:200],
            out[max(0, pos - 80) : pos],
        )
        status = int(m.group(1))
        check(status >= 200, "a final response with status %d", status)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            check(sep and TOKEN.match(name), "bad header line %r", line[:200])
            value = value.strip(b" \t")
            check(FIELD_VALUE.match(value), "bad header value %r", line[:200])
            headers.append((name.lower(), value))
        resp = Response(status, headers)
        index = finals
        finals += 1
        pos = end + 4
        te = resp.tokens(b"transfer-encoding")
        cls = resp.values(b"content-length")
        check(
            not (te and cls),
            "response %d has both Transfer-Encoding and Content-Length (RFC 9112 6.2)",
            index,
        )
        check(len(set(cls)) <= 1, "response %d: differing Content-Length values %r", index, cls)
        if head_request(index, resp) or status in (204, 304):
            resp.framing = "none"  # RFC 9112 6.3 (1)
        elif te and te[-1] == b"chunked":
            resp.framing = "chunked"
            body = []
            while True:
                eol = out.find(b"\r\n", pos)
                if eol < 0:
                    resp.complete = False
                    pos = n
                    break
                size = out[pos:eol]
                check(CHUNK_SIZE.match(size), "response %d: bad chunk size line %r", index, size[:100])
                size_n = int(size, 16)
                pos = eol + 2
                if size_n == 0:
                    if out[pos : pos + 2] == b"\r\n":
                        pos += 2
                    else:
                        check(n - pos < 2 and out[pos:] in (b"", b"\r"), "response %d: bad last chunk", index)
                        resp.complete = False
                        pos = n
                    break
                if n - pos < size_n + 2:
                    body.append(out[pos : pos + size_n])
                    resp.complete = False
                    pos = n
                    break
                check(
                    out[pos + size_n : pos + size_n + 2] == b"\r\n",
                    "response %d: chunk data not ended by CRLF",
                    index,
                )
                body.append(out[pos : pos + size_n])
                pos += size_n + 2
            resp.body = b"".join(body)
        elif cls:
            check(cls[0].isdigit(), "response %d: bad Content-Length %r", index, cls[0])
            length = int(cls[0])
            resp.framing = "length"
            resp.body = out[pos : pos + length]
            resp.complete = len(resp.body) == length
            pos += len(resp.body)
        else:
            # RFC 9112 6.3 (8): the close ends the body: nothing can follow
            resp.framing = "close"
            resp.body = out[pos:]
            pos = n
        responses.append(resp)
        if not resp.complete or resp.framing == "close" or resp.closes:
            check(
                pos == n,
                "response %d (%s, closes=%s) is followed by more bytes: %r",
                index,
                resp.framing,
                resp.closes,
                out[pos : pos + 200],
            )
    return responses
