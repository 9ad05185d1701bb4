#!/usr/bin/env python3
"""Fuzz the WebSocket frame codec (WsCodec, _http/ws.pxi) and its inflater (wsdeflate.pxi).

The input chooses the codec's settings (a max_size or none, permessage-deflate or not, with
or without context takeover) and how the client bytes are made: either raw (the input is the
byte stream, masking and all) or framed (the rest of the input is a sequence of frames whose
opcode, flags and payload it chooses; with RSV1 the payload goes to the inflater as is). The
bytes are delivered in pieces whose sizes the input also chooses. The invariants:

- no exception escapes feed();
- the events do not depend on how the bytes were cut: the pieces give what the whole stream
  gives;
- each event is a str, bytes, or (opcode, ...) with PING/PONG/CLOSE/ERROR, an error code is
  1002, 1007 or 1009, a close code is 1005 or a code RFC 6455 7.4 lets a peer send, nothing
  follows a close or an error, and no message is longer than max_size.

Run it with fuzz/run.sh fuzz_ws SECONDS; ``one_input(data)`` replays an input without atheris.
"""

from __future__ import annotations

import os
import struct
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fastasgi._http._core import WS_CLOSE, WS_ERROR, WS_PING, WS_PONG, WsCodec  # noqa: E402
from fuzz._fdp import FuzzedDataProvider  # noqa: E402

MAX_SIZES = [None, 0, 1, 125, 126, 65536]
DEFLATE = [None, (False, False, 15, 15, -1, 8), (True, True, 9, 12, 1, 5)]


class Violation(AssertionError):
    pass


def check(ok: bool, what: str, *args: object) -> None:
    if not ok:
        raise Violation(what % args)


def framed(fdp: FuzzedDataProvider) -> bytes:
    out = []
    while fdp.remaining_bytes() > 0 and len(out) < 32:
        b0 = fdp.ConsumeIntInRange(0, 255)
        n = fdp.ConsumeIntInRange(0, 300)
        payload = fdp.ConsumeBytes(n)
        mask = fdp.ConsumeBytes(4).ljust(4, b"\0")
        n = len(payload)
        if n < 126:
            head = bytes((b0, 0x80 | n))
        else:
            head = struct.pack("!BBH", b0, 0x80 | 126, n)
        out.append(head + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(payload)))
    return b"".join(out)


def run(max_size, deflate, stream: bytes, cuts: list[int]) -> None:
    whole = WsCodec(max_size, deflate).feed(stream)
    codec = WsCodec(max_size, deflate)
    pieces = []
    prev = 0
    for cut in sorted(cuts):
        pieces += codec.feed(stream[prev:cut])
        prev = cut
    pieces += codec.feed(stream[prev:])
    check(pieces == whole, "events differ by delivery: %r vs %r", pieces[:5], whole[:5])
    for k, event in enumerate(whole):
        if type(event) in (str, bytes):
            size = len(event.encode() if type(event) is str else event)
            check(max_size is None or size <= max_size, "message of %d over max_size %r", size, max_size)
            continue
        check(type(event) is tuple and event[0] in (WS_PING, WS_PONG, WS_CLOSE, WS_ERROR), "event %r", event)
        if event[0] in (WS_CLOSE, WS_ERROR):
            check(k == len(whole) - 1, "events after %r", event)
        if event[0] == WS_ERROR:
            check(event[1] in (1002, 1007, 1009), "error code %r", event)
        if event[0] == WS_CLOSE:
            code = event[1]
            check(
                code == 1005 or 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999,
                "%r",
                event,
            )


def one_input(data: bytes) -> None:
    fdp = FuzzedDataProvider(data)
    max_size = MAX_SIZES[fdp.ConsumeIntInRange(0, len(MAX_SIZES) - 1)]
    deflate = DEFLATE[fdp.ConsumeIntInRange(0, len(DEFLATE) - 1)]
    ncuts = fdp.ConsumeIntInRange(0, 8)
    cuts = [fdp.ConsumeIntInRange(0, 4096) for _ in range(ncuts)]
    stream = framed(fdp) if fdp.ConsumeBool() else fdp.ConsumeBytes(fdp.remaining_bytes())
    run(max_size, deflate, stream, [c for c in cuts if c <= len(stream)])


def main() -> None:
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
