#!/usr/bin/env python3
"""Fuzz the PROXY protocol header parser (fastasgi/middleware/proxy_protocol.py).

The header is the first thing a connection sends under ``--proxy-protocol``, before any
HTTP: its bytes are untrusted until parsed. The input chooses the mode (v1, v2, auto),
whether the peer is a trusted proxy, the cut points at which the bytes arrive, optionally
a v2 length field made to match the bytes that follow, and the bytes. Section numbers are
those of haproxy's "The PROXY protocol" (doc/proxy-protocol.txt), as in the parser.

Invariants, each a Violation (any other exception that escapes is a finding too):

- ``parse_header`` either returns a ProxyHeader, returns None (more bytes needed) or raises
  ProxyProtocolError, and which of the three, and the header's fields, are what
  ``expected()`` reads from the same bytes: a second reading of 2.1 and 2.2 written apart
  from the parser (a regular expression for the v1 line, ``socket.inet_pton`` for its
  addresses, a TLV walk of its own), with the parser's documented policy (the 4096-byte
  cap on a v2 header, LOCAL skipping its block unread, US-ASCII v1 lines);
- a header's fields are sane on their own: its length is within the input, ends a v1 line
  with CRLF at most 107 bytes in, is 16 plus the v2 length field; addresses are canonical
  strings of the family the header names, both of the same family, ports ints in 0-65535;
  no addresses unless ``proxied``;
- the verdict does not depend on how the bytes arrive: every prefix the cuts make (and the
  first 128 bytes one at a time) gives None until the verdict, then that same verdict; a
  v1 line gets one within 107 bytes, a v2 header within 16 plus the cap;
- driven through the real ``ProxyProtocol`` over the fake transport, piece by piece as a
  server reads them: a header hands the connection to the HTTP protocol (a recording
  stand-in here) with the header's addresses, and exactly the bytes after the header, in
  order; a refusal closes the connection with one warning and hands nothing on; while
  more is needed the connection waits, open. An untrusted peer under auto is served only
  when its bytes are no signature, with all of them.

``one_input(data)`` replays an input without atheris (the unit suite's corpus replay).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import sys
from typing import ClassVar

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from fastasgi.middleware import proxy_protocol as pp  # noqa: E402
from fastasgi.middleware.proxy_headers import TrustedProxies  # noqa: E402
from fuzz._common import WATCH, FuzzedDataProvider, check, in_loop, new_loop, settle  # noqa: E402
from support.inproc import FakeTransport, make_ctx  # noqa: E402

# lists, not tuples: atheris picks from lists only
MODES = ["v1", "v2", "auto"]
PEERS = ["trusted", "untrusted"]
#: raw: the bytes as they are; v2-length: a v2 length field rewritten to count the bytes
#: after the 16 fixed ones but the last ``extra`` (which then follow the header), so that
#: mutated address blocks and TLVs still reach the parser as a complete header
SHAPES = ["raw", "v2-length"]
MAX_CUTS = 8
MAX_CUT = 8191
MAX_EXTRA = 255
#: libFuzzer's -max_len for this harness (fuzz/run.sh): a v2 header at the cap with what
#: the input's decoding takes and some bytes after it
MAX_LEN = 8192

# 2.1: the v1 signature and the longest line, CRLF included
V1_SIGNATURE = b"PROXY"
V1_LIMIT = 107
# 2.2: the 12-byte v2 signature, then 4 fixed bytes
V2_SIGNATURE = b"\x0d\x0a\x0d\x0a\x00\x0d\x0a\x51\x55\x49\x54\x0a"
V2_FIXED = 16
#: the parser's own cap on what follows the 16 bytes (the field allows 65535): a policy
V2_CAP = pp.V2_MAX_LENGTH
#: 2.2: the address block's bytes for each family (UNSPEC, INET, INET6, UNIX)
V2_BLOCKS = {0x0: 0, 0x1: 12, 0x2: 36, 0x3: 216}
UNIX_PATH = 108

# 2.1: "PROXY" SP protocol, then for TCP4/TCP6 exactly four fields one space apart, ports in
# decimal without leading zeroes; for UNKNOWN anything up to the CRLF is ignored
V1_LINE = re.compile(
    rb"PROXY (?:UNKNOWN(?: [^\r\n]*)?|(TCP4|TCP6) ([^ ]+) ([^ ]+) (0|[1-9][0-9]{0,4}) (0|[1-9][0-9]{0,4}))\r\n\Z"
)

MORE = ("more",)
REFUSED = ("refused",)
NO_HEADER = ("header", 0, 0, False, None, None)


# --------------------------------------------------------------------------- the input


def decode(fdp) -> dict:
    case = {
        "mode": fdp.PickValueInList(MODES),
        "peer": fdp.PickValueInList(PEERS),
        "shape": fdp.PickValueInList(SHAPES),
        "extra": fdp.ConsumeIntInRange(0, MAX_EXTRA),
        "cuts": [],
    }
    for _ in range(fdp.ConsumeIntInRange(0, MAX_CUTS)):
        case["cuts"].append(fdp.ConsumeIntInRange(0, MAX_CUT))
    case["data"] = fdp.ConsumeBytes(fdp.remaining_bytes())
    return case


def encode(case: dict, enc) -> None:
    """The inverse of decode (fuzz/make_corpus.py)."""
    enc.pick(MODES, case["mode"])
    enc.pick(PEERS, case["peer"])
    enc.pick(SHAPES, case["shape"])
    enc.int_in_range(0, MAX_EXTRA, case["extra"])
    enc.int_in_range(0, MAX_CUTS, len(case["cuts"]))
    for cut in case["cuts"]:
        enc.int_in_range(0, MAX_CUT, cut)
    enc.bytes(case["data"])


def wire(case: dict) -> bytes:
    """The bytes the peer sends."""
    data = case["data"]
    if case["shape"] == "v2-length" and data.startswith(V2_SIGNATURE) and len(data) >= V2_FIXED:
        length = min(max(len(data) - V2_FIXED - case["extra"], 0), 0xFFFF)
        data = data[:14] + length.to_bytes(2, "big") + data[V2_FIXED:]
    return data


def cut_points(case: dict, n: int) -> list[int]:
    return sorted({c for c in case["cuts"] if 0 < c < n})


# --------------------------------------------------------------------------- the reference


def _be16(b: bytes) -> int:
    return (b[0] << 8) | b[1]


def _inet(family: int, packed: bytes, port: int) -> tuple:
    return (family, packed, port)


def signature(data: bytes) -> int | None:
    """1 or 2: the bytes start with that version's signature (2.1, 2.2); 0: with neither;
    None: they are a proper prefix of one (the two differ from the first byte on)."""
    for version, sig in ((1, V1_SIGNATURE), (2, V2_SIGNATURE)):
        n = min(len(data), len(sig))
        if data[:n] == sig[:n]:
            return version if n == len(sig) else None
    return 0


def expected(data: bytes, mode: str) -> tuple:
    """The verdict on ``data`` under ``mode``, read from 2.1 and 2.2 (see the module
    docstring): MORE, REFUSED or ("header", version, length, proxied, client, server)
    with each address (family, packed address, port) or ("unix", path bytes) or None."""
    version = signature(data)
    if version is None:
        return MORE
    if version == 0:
        return NO_HEADER if mode == "auto" else REFUSED
    if mode not in ("auto", f"v{version}"):
        return REFUSED
    return _expected_v1(data) if version == 1 else _expected_v2(data)


def _expected_v1(data: bytes) -> tuple:
    # 2.1: a receiver reads at most 107 bytes looking for the CRLF; a line that has none by
    # then is refused, and so is one whose LF comes without its CR or a CR alone
    window = data[:V1_LIMIT]
    if b"\n" not in window:
        return MORE if len(data) < V1_LIMIT else REFUSED
    line = window[: window.index(b"\n") + 1]
    if max(line) > 0x7F:
        return REFUSED  # 2.1: US-ASCII
    m = V1_LINE.match(line)
    if not m:
        return REFUSED
    if m.group(1) is None:
        return ("header", 1, len(line), False, None, None)
    family = socket.AF_INET if m.group(1) == b"TCP4" else socket.AF_INET6
    addresses = []
    for text in (m.group(2), m.group(3)):
        try:
            addresses.append(socket.inet_pton(family, text.decode("ascii")))
        except (OSError, ValueError):
            return REFUSED
    ports = int(m.group(4)), int(m.group(5))
    if max(ports) > 0xFFFF:
        return REFUSED
    return (
        "header",
        1,
        len(line),
        True,
        _inet(family, addresses[0], ports[0]),
        _inet(family, addresses[1], ports[1]),
    )


def _expected_v2(data: bytes) -> tuple:
    if len(data) < V2_FIXED:
        return MORE
    version, command = data[12] >> 4, data[12] & 0x0F
    family, transport = data[13] >> 4, data[13] & 0x0F
    length = _be16(data[14:16])
    # 2.2: version 2 only; commands LOCAL (0) and PROXY (1) only; the length field says how
    # many bytes follow, which the parser caps
    if version != 2 or command > 1 or length > V2_CAP:
        return REFUSED
    total = V2_FIXED + length
    if len(data) < total:
        return MORE
    if command == 0:
        # 2.2: LOCAL: the receiver uses the real endpoints and skips the block unread
        return ("header", 2, total, False, None, None)
    if family not in V2_BLOCKS or transport > 2:
        return REFUSED
    block = V2_BLOCKS[family]
    if length < block:
        return REFUSED
    # 2.2: after the addresses, TLVs (type, 2-byte length, value) fill the rest exactly
    at = V2_FIXED + block
    while at < total:
        if total - at < 3:
            return REFUSED
        at += 3 + _be16(data[at + 1 : at + 3])
    if at != total:
        return REFUSED
    if family == 0 or transport != 1:
        # 2.2: UNSPEC, or a transport other than STREAM: the connection's own addresses
        return ("header", 2, total, False, None, None)
    a = data[V2_FIXED:]
    if family == 0x3:
        destination = a[UNIX_PATH : 2 * UNIX_PATH].split(b"\x00", 1)[0]
        return ("header", 2, total, True, None, ("unix", destination) if destination else None)
    size, af = (4, socket.AF_INET) if family == 0x1 else (16, socket.AF_INET6)
    ports = a[2 * size :]
    return (
        "header",
        2,
        total,
        True,
        _inet(af, a[:size], _be16(ports[0:2])),
        _inet(af, a[size : 2 * size], _be16(ports[2:4])),
    )


# --------------------------------------------------------------------------- the parser's verdict


def _address(value, what: str) -> tuple | None:
    """A header's client or server as ``expected()`` writes it, after the checks that hold
    whatever the reference says."""
    if value is None:
        return None
    check(type(value) is tuple and len(value) == 2, "%s is %r, not (host, port)", what, value)
    host, port = value
    check(type(host) is str, "%s host %r is not a str", what, host)
    if port is None:
        check(what == "server", "a unix-socket client address %r (ASGI: None)", value)
        check(host != "", "server ('', None) instead of None")
        return ("unix", os.fsencode(host))
    check(type(port) is int and 0 <= port <= 0xFFFF, "%s port %r not in 0-65535", what, port)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise AssertionError(f"{what} host {host!r} is not an IP address") from None
    check(str(ip) == host, "%s host %r is not the canonical %r", what, host, str(ip))
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    return _inet(family, ip.packed, port)


def verdict(data: bytes, mode: str) -> tuple:
    """parse_header's answer, in expected()'s form, after its own sanity checks."""
    try:
        header = pp.parse_header(data, mode)
    except pp.ProxyProtocolError as exc:
        check(isinstance(str(exc), str) and str(exc), "a ProxyProtocolError without a reason")
        return REFUSED
    if header is None:
        return MORE
    check(type(header) is pp.ProxyHeader, "parse_header returned %r", header)
    v, n = header.version, header.length
    if v == 0:
        check(mode == "auto", "no header accepted under %s", mode)
        check(header == pp.NO_HEADER, "a version-0 header that is not NO_HEADER: %r", header)
        return NO_HEADER
    check(type(n) is int and 0 < n <= len(data), "header length %r of %d bytes", n, len(data))
    check(mode in ("auto", f"v{v}"), "a v%d header accepted under %s", v, mode)
    if v == 1:
        check(data.startswith(b"PROXY "), "a v1 header from %r", data[:16])
        check(n <= V1_LIMIT, "a v1 line of %d bytes, over %d (2.1)", n, V1_LIMIT)
        check(data[n - 2 : n] == b"\r\n", "a v1 header not ending at its CRLF: %r", data[:n])
        check(b"\n" not in data[: n - 1], "a v1 header past its first LF: %r", data[:n])
    else:
        check(v == 2 and data.startswith(V2_SIGNATURE), "a v%d header from %r", v, data[:16])
        check(n == V2_FIXED + _be16(data[14:16]), "v2 length %d, the field says %d", n, _be16(data[14:16]))
        check(n - V2_FIXED <= V2_CAP, "a v2 header of %d bytes, over the cap", n)
    client, server = _address(header.client, "client"), _address(header.server, "server")
    if not header.proxied:
        check(client is None and server is None, "addresses %r without proxied", header)
    else:
        families = {a[0] for a in (client, server) if a is not None}
        check(len(families) <= 1, "client and server of different families: %r", header)
        if v == 1:
            want = socket.AF_INET if data[6:10] == b"TCP4" else socket.AF_INET6
            check(families == {want}, "a %r line gave %r", data[6:10], header)
    return ("header", v, n, header.proxied, client, server)


# --------------------------------------------------------------------------- the protocol


class HandedOver:
    """What ProxyProtocol makes once a header is complete, in place of the HTTP protocol:
    records the calls so that the hand-over can be compared byte for byte."""

    made: ClassVar[list] = []

    def __init__(self, ctx) -> None:
        self.transport = None
        self.addresses: list = []
        self.received: list[bytes] = []
        self.lost = False
        HandedOver.made.append(self)

    def connection_made(self, transport) -> None:
        check(self.transport is None, "connection_made twice")
        self.transport = transport

    def set_addresses(self, client, server) -> None:
        self.addresses.append((client, server))

    def data_received(self, data: bytes) -> None:
        check(type(data) is bytes and data, "the HTTP protocol got %r", data)
        self.received.append(data)

    def eof_received(self) -> None:
        return None

    def connection_lost(self, exc) -> None:
        self.lost = True


_LOOP = None


def drive(case: dict, data: bytes, mode: str, trusted: bool) -> None:
    """The bytes through ProxyProtocol as the server's reads deliver them (ProxyProtocol
    keeps what came and parses it again with each read), and what it did."""
    global _LOOP
    if _LOOP is None or _LOOP.is_closed():
        _LOOP = new_loop()
    loop = _LOOP
    ctx = make_ctx(_app, loop)
    allow = TrustedProxies("127.0.0.1" if trusted else "192.0.2.200")
    saved, HandedOver.made = pp.HttpProtocol, []
    pp.HttpProtocol = HandedOver
    try:
        with WATCH:
            protocol = pp.proxy_protocol_factory(ctx, mode, allow, None, None)()
            transport = FakeTransport(loop)  # peer 127.0.0.1:50000
            transport.protocol = protocol
            in_loop(loop, protocol.connection_made, transport)
            prev = 0
            for cut in [*cut_points(case, len(data)), len(data)]:
                transport.feed(data[prev:cut])
                prev = cut
                settle(loop)
            warnings = [r.getMessage() for r in WATCH.records if r.levelno >= logging.WARNING]
            WATCH.verify()
    finally:
        pp.HttpProtocol = saved
    made = HandedOver.made
    if trusted:
        want = expected(data, mode)
    elif mode != "auto":
        want = REFUSED  # 5: a header only from a trusted proxy
    else:
        # 5: under auto an untrusted peer may speak HTTP, but not send a header
        want = {None: MORE, 0: NO_HEADER}.get(signature(data), REFUSED)
    if want == REFUSED:
        check(transport.closed and protocol.state == pp.CLOSED, "a refused header left the connection open")
        check(
            not made and not transport.writes, "a refused header reached HTTP or wrote %r", transport.writes
        )
        check(len(warnings) == 1, "a refusal logged %r", warnings)
        check(warnings[0].startswith("PROXY protocol: closing the connection from "), "%r", warnings[0])
    elif want == MORE:
        check(not transport.closed and protocol.state == pp.HEADER, "closed while waiting for the header")
        check(not made and not warnings, "waiting, yet %r %r", made, warnings)
        check(protocol in ctx.connections, "a waiting connection is not in ctx.connections")
        check(protocol.buffer == data, "waiting with %r of %r", protocol.buffer[:40], data[:40])
    else:
        length, proxied = want[2], want[3]
        check(not transport.closed and not warnings, "a header, then closed: %r", warnings)
        check(protocol.state == pp.HTTP and protocol not in ctx.connections, "state %s", protocol.state)
        check(len(made) == 1 and made[0].transport is transport, "handed over %d times", len(made))
        http = made[0]
        check(transport.protocol is http, "the transport still reads into %r", transport.protocol)
        rest = b"".join(http.received)
        check(
            rest == data[length:], "handed on %r, not the %r after the header", rest[:60], data[length:][:60]
        )
        if proxied:
            got = [(_address(c, "client"), _address(s, "server")) for c, s in http.addresses]
            check(got == [want[4:6]], "set_addresses %r, the header says %r", http.addresses, want[4:6])
        else:
            check(not http.addresses, "set_addresses %r for a header that keeps them", http.addresses)


async def _app(scope, receive, send):  # never called: the HTTP protocol is a stand-in
    raise AssertionError("the app ran")


# --------------------------------------------------------------------------- one input


def run(case: dict) -> None:
    data, mode = wire(case), case["mode"]
    whole = verdict(data, mode)
    want = expected(data, mode)
    check(whole == want, "parse_header says %r, 2.1/2.2 say %r, for %r", whole, want, data[:120])
    # every prefix the cuts make, and the first 128 one byte at a time: None up to the
    # verdict, then that verdict (a header's length decides where it ends)
    ends = {*range(min(len(data), 128) + 1), *cut_points(case, len(data)), len(data)}
    if want[0] == "header":
        ends |= {e for e in (want[2] - 1, want[2], want[2] + 1) if 0 <= e <= len(data)}
    first = None
    for end in sorted(ends):
        prefix = data[:end]
        got, spec = verdict(prefix, mode), expected(prefix, mode)
        check(got == spec, "prefix %d: %r, 2.1/2.2 say %r", end, got, spec)
        if first is None and got != MORE:
            first = got
        elif first is not None:
            check(got == first, "prefix %d: %r after %r at a shorter one", end, got, first)
        if got == MORE:
            # 2.1, 2.2: a verdict within 107 bytes (v1) or 16 plus the cap (v2)
            check(end < V1_LIMIT or not prefix.startswith(V1_SIGNATURE), "a v1 line still open at %d", end)
            check(end < V2_FIXED + V2_CAP, "a v2 header still open at %d", end)
    check(first is None or first == whole, "pieces gave %r, the whole %r", first, whole)
    drive(case, data, mode, case["peer"] == "trusted")


def one_input(data: bytes) -> None:
    """atheris's TestOneInput: decode, run, check."""
    run(decode(FuzzedDataProvider(data)))


def _instrument(module) -> None:
    """atheris instrumentation of the functions of ``module`` and its classes' methods (the
    parser is pure Python; the rest of the process needs none)."""
    import atheris

    for obj in list(vars(module).values()):
        if getattr(obj, "__module__", None) != module.__name__:
            continue
        members = vars(obj).values() if isinstance(obj, type) else (obj,)
        for member in members:
            if isinstance(member, property):
                member = member.fget
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if callable(member) and hasattr(member, "__code__"):
                atheris.instrument_func(member)


def main() -> None:
    import atheris

    _instrument(pp)
    _instrument(ipaddress)
    _instrument(sys.modules[__name__])
    print(f"fuzz_proxy_protocol: {pp.__file__}", file=sys.stderr)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
