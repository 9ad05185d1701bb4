"""The PROXY protocol: the client and server addresses a proxy saw, read before HTTP.

A proxy that relays TCP connections (haproxy's ``send-proxy``/``send-proxy-v2``, nginx's
``proxy_protocol on`` in its stream module, AWS NLB, ...) writes one header at the start of
each connection it opens to us, saying whom the connection was made by and to. The header
is specified by haproxy ("The PROXY protocol", versions 1 and 2, doc/proxy-protocol.txt in
haproxy's sources; section numbers below are that document's):

- version 1 (2.1): one line of US-ASCII, ``PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\\r\\n``
  (``TCP6`` with IPv6 addresses, or ``PROXY UNKNOWN ...\\r\\n``), at most 107 bytes;
- version 2 (2.2): a 12-byte signature, a version/command byte (``0x21`` PROXY, ``0x20``
  LOCAL), a family/transport byte, a 2-byte length, the addresses (IPv4, IPv6 or unix
  socket paths), then TLVs (skipped here).

``ProxyProtocol`` is the ``asyncio.Protocol`` of a connection while its header is read
(``--proxy-protocol v1|v2|auto``). Once the header is complete it makes the connection's
``HttpProtocol``, gives it the transport and the header's addresses (``set_addresses``) and
the bytes that followed the header, and is out of the path: requests cost nothing more.

States of one connection (transitions only through ``_set_state``):

    HEADER --(complete header; or, with auto, bytes that are no header)--> HTTP
    HEADER --(refused: malformed, wrong version, untrusted peer, timeout)--> CLOSED
    HEADER --(the peer closed or went away first)--> CLOSED

Rules:

- Only peers in ``--forwarded-allow-ips`` may send a header (5: the receiver must only accept
  the header from trusted proxies). A unix-socket peer is trusted as the proxy headers
  middleware trusts it: with ``*`` or when the socket's path is listed. With ``v1``/``v2``
  an untrusted peer is refused at once; with ``auto`` only if it sends a header.
- ``v1`` and ``v2`` require a header of that version on every connection. ``auto`` accepts
  either, or none: a connection whose first bytes are neither signature is HTTP. The
  specification (2) says a receiver must not guess whether the header is there; ``auto`` is
  for moving a listener to the PROXY protocol without a flag day, and is safe only when
  every trusted peer always sends one (a client relayed without a header could send its own).
- A header is complete within ``--timeout-request-head`` seconds of the connection (when
  that is 0: ``--timeout-keep-alive``); 2 asks for a few seconds, at least 3.
- LOCAL (v2), UNKNOWN (v1), an unspecified family or a datagram transport: the connection's
  own addresses are kept (2.1, 2.2).
- Anything refused closes the connection with one warning naming the peer and the reason;
  nothing reaches the app.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastasgi._http._core import HttpProtocol, ServerContext
from fastasgi.middleware.proxy_headers import TrustedProxies

logger = logging.getLogger("fastasgi.error")

#: --proxy-protocol values
MODES = ("off", "v1", "v2", "auto")

# 2.1: "PROXY", one space, the protocol; the whole line with its CRLF is at most 107 bytes.
V1_SIGNATURE = b"PROXY"
V1_MAX_LENGTH = 107
CR, LF = b"\r", b"\n"
# 2.2: the 12-byte signature, then version/command, family/transport and a 2-byte length.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
V2_FIXED_LENGTH = len(V2_SIGNATURE) + 4
#: most bytes after the 16 fixed ones we accept: the addresses (216 at most, unix) and TLVs.
#: haproxy's own TLVs (ALPN, authority, unique id up to 128, SSL details) and those of cloud
#: load balancers take a few hundred bytes; the field itself allows 65535.
V2_MAX_LENGTH = 4096

V2_VERSION = 0x2
V2_LOCAL = 0x0
V2_PROXY = 0x1
AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX = 0x0, 0x1, 0x2, 0x3
TRANSPORT_UNSPEC, TRANSPORT_STREAM, TRANSPORT_DGRAM = 0x0, 0x1, 0x2
IPV4_LENGTH = 4
IPV6_LENGTH = 16
PORT_LENGTH = 2
UNIX_PATH_LENGTH = 108
#: 2.2: the address block's length for each family
ADDRESS_LENGTHS = {
    AF_UNSPEC: 0,
    AF_INET: 2 * IPV4_LENGTH + 2 * PORT_LENGTH,
    AF_INET6: 2 * IPV6_LENGTH + 2 * PORT_LENGTH,
    AF_UNIX: 2 * UNIX_PATH_LENGTH,
}
# 2.2: a TLV is a type byte and a 2-byte length, then the value.
TLV_HEAD_LENGTH = 3

Address = tuple[str, int]
ServerAddress = tuple[str, int | None]


class ProxyProtocolError(ValueError):
    """The bytes are not an acceptable PROXY protocol header; the message says why."""


@dataclass(frozen=True)
class ProxyHeader:
    """What a header says. ``version`` is 1 or 2, or 0 for no header (``auto``);
    ``length`` its bytes on the wire. ``proxied`` is False when the connection's own
    addresses are to be kept (LOCAL, UNKNOWN, unspecified family or transport); otherwise
    ``client`` and ``server`` replace them (a unix-socket client has no address: None)."""

    version: int
    length: int
    proxied: bool = False
    client: Address | None = None
    server: ServerAddress | None = None


#: ``auto`` and bytes that are no header: HTTP from the first byte on
NO_HEADER = ProxyHeader(0, 0)


def detect_version(data: bytes) -> int | None:
    """Which header ``data`` starts with: 1, 2, 0 for neither, None while too few bytes have
    come to tell (they are the start of a signature)."""
    for version, signature in ((1, V1_SIGNATURE), (2, V2_SIGNATURE)):
        if data[: len(signature)] == signature[: len(data)]:
            return version if len(data) >= len(signature) else None
    return 0


def parse_header(data: bytes, mode: str) -> ProxyHeader | None:
    """The header at the start of ``data`` under ``--proxy-protocol mode`` (v1, v2, auto);
    None while it is incomplete. Raises ``ProxyProtocolError``: malformed, the other version
    than ``mode`` asks for, or (v1/v2) no header. Never reads more than ``V1_MAX_LENGTH``
    or ``V2_FIXED_LENGTH + V2_MAX_LENGTH`` bytes to decide."""
    version = detect_version(data)
    if version is None:
        return None
    if version == 0:
        if mode == "auto":
            return NO_HEADER
        raise ProxyProtocolError(f"no PROXY protocol {mode} header (first bytes {bytes(data[:16])!r})")
    if mode != "auto" and mode != f"v{version}":
        raise ProxyProtocolError(f"a PROXY protocol v{version} header, but --proxy-protocol is {mode}")
    return _parse_v1(data) if version == 1 else _parse_v2(data)


def _parse_v1(data: bytes) -> ProxyHeader | None:
    # The line ends at its first LF, which must come with its CR (2.1: a single CR or LF
    # must not be taken for the end of the line), within the first 107 bytes.
    newline = data.find(LF, 0, V1_MAX_LENGTH)
    if newline == -1:
        if len(data) >= V1_MAX_LENGTH:
            raise ProxyProtocolError(f"PROXY v1 line without CRLF in its first {V1_MAX_LENGTH} bytes")
        return None
    raw = bytes(data[: newline - 1])
    length = newline + 1
    if data[newline - 1 : newline] != CR:
        raise ProxyProtocolError(f"PROXY v1 line not ended by CRLF: {bytes(data[:length])!r}")
    if CR in raw:
        raise ProxyProtocolError(f"PROXY v1 line with a bare CR: {raw!r}")
    try:
        fields = raw.decode("ascii").split(" ")
    except UnicodeDecodeError:
        raise ProxyProtocolError(f"PROXY v1 line that is not US-ASCII: {raw!r}") from None
    if fields[0] != "PROXY" or len(fields) < 2:
        raise ProxyProtocolError(f"malformed PROXY v1 line: {raw!r}")
    protocol = fields[1]
    if protocol == "UNKNOWN":
        # 2.1: the rest of the line is ignored; the connection's own addresses are used
        return ProxyHeader(1, length)
    if protocol not in ("TCP4", "TCP6"):
        raise ProxyProtocolError(f"PROXY v1 line with an unknown protocol {protocol!r}")
    if len(fields) != 6:
        raise ProxyProtocolError(f"malformed PROXY v1 line (not 6 fields, one space apart): {raw!r}")
    family = ipaddress.IPv4Address if protocol == "TCP4" else ipaddress.IPv6Address
    source, destination = _v1_address(fields[2], family, raw), _v1_address(fields[3], family, raw)
    source_port, destination_port = _v1_port(fields[4], raw), _v1_port(fields[5], raw)
    return ProxyHeader(1, length, True, (source, source_port), (destination, destination_port))


def _v1_address(text: str, family: type, raw: bytes) -> str:
    # 2.1: the canonical form of the family the protocol names; ipaddress refuses leading
    # zeroes in IPv4. A zone id (fe80::1%eth0) is no part of an address on the wire.
    try:
        if "%" in text:
            raise ValueError(text)
        return str(family(text))
    except ValueError:
        raise ProxyProtocolError(f"PROXY v1 line with a bad address {text!r}: {raw!r}") from None


def _v1_port(text: str, raw: bytes) -> int:
    # 2.1: decimal, 0..65535, no leading zeroes
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or (text[0] == "0" and text != "0"):
        raise ProxyProtocolError(f"PROXY v1 line with a bad port {text!r}: {raw!r}")
    port = int(text)
    if port > 65535:
        raise ProxyProtocolError(f"PROXY v1 line with a bad port {text!r}: {raw!r}")
    return port


def _parse_v2(data: bytes) -> ProxyHeader | None:
    if len(data) < V2_FIXED_LENGTH:
        return None
    signature_length = len(V2_SIGNATURE)
    version_command, family_transport = data[signature_length], data[signature_length + 1]
    length = int.from_bytes(data[signature_length + 2 : V2_FIXED_LENGTH], "big")
    version, command = version_command >> 4, version_command & 0x0F
    # 2.2: the version must be 2; other commands than LOCAL and PROXY must be dropped
    if version != V2_VERSION:
        raise ProxyProtocolError(
            f"PROXY v2 header with version {version} (byte 13 is {version_command:#04x})"
        )
    if command not in (V2_LOCAL, V2_PROXY):
        raise ProxyProtocolError(f"PROXY v2 header with an unknown command {command:#x}")
    if length > V2_MAX_LENGTH:
        raise ProxyProtocolError(
            f"PROXY v2 header of {length} bytes after the first 16, over {V2_MAX_LENGTH}"
        )
    total = V2_FIXED_LENGTH + length
    if len(data) < total:
        return None
    if command == V2_LOCAL:
        # 2.2: a LOCAL connection is the proxy's own (a health check): real addresses; the
        # whole block, family included, is skipped
        return ProxyHeader(2, total)
    family, transport = family_transport >> 4, family_transport & 0x0F
    if family not in ADDRESS_LENGTHS or transport > TRANSPORT_DGRAM:
        raise ProxyProtocolError(f"PROXY v2 header with an unknown family/transport {family_transport:#04x}")
    needed = ADDRESS_LENGTHS[family]
    if length < needed:
        raise ProxyProtocolError(f"PROXY v2 header with {length} address bytes, its family needs {needed}")
    _check_tlvs(data, V2_FIXED_LENGTH + needed, total)
    if family == AF_UNSPEC or transport != TRANSPORT_STREAM:
        # 2.2: an unspecified family or protocol (and, for an HTTP server, a datagram one)
        # falls back to the connection's own addresses
        return ProxyHeader(2, total)
    start = V2_FIXED_LENGTH
    if family == AF_UNIX:
        # ASGI: a unix-socket client has no address (the source path is not used); the
        # server is (path, None)
        destination = _unix_path(data[start + UNIX_PATH_LENGTH : start + 2 * UNIX_PATH_LENGTH])
        return ProxyHeader(2, total, True, None, (destination, None) if destination else None)
    size = IPV4_LENGTH if family == AF_INET else IPV6_LENGTH
    address = ipaddress.IPv4Address if family == AF_INET else ipaddress.IPv6Address
    source_ip = str(address(bytes(data[start : start + size])))
    destination_ip = str(address(bytes(data[start + size : start + 2 * size])))
    ports = start + 2 * size
    source_port = int.from_bytes(data[ports : ports + PORT_LENGTH], "big")
    destination_port = int.from_bytes(data[ports + PORT_LENGTH : ports + 2 * PORT_LENGTH], "big")
    return ProxyHeader(2, total, True, (source_ip, source_port), (destination_ip, destination_port))


def _check_tlvs(data: bytes, start: int, end: int) -> None:
    """2.2: what follows the addresses is TLVs; each must fit in the header. Their values
    are skipped."""
    position = start
    while position < end:
        if end - position < TLV_HEAD_LENGTH:
            raise ProxyProtocolError(f"PROXY v2 header with a truncated TLV at byte {position}")
        kind = data[position]
        value_length = int.from_bytes(data[position + 1 : position + TLV_HEAD_LENGTH], "big")
        position += TLV_HEAD_LENGTH + value_length
        if position > end:
            raise ProxyProtocolError(f"PROXY v2 header with a TLV (type {kind:#04x}) running past its end")


def _unix_path(raw: bytes) -> str:
    # 2.2: 108 bytes, the path then NUL padding
    return os.fsdecode(bytes(raw).split(b"\x00", 1)[0])


# --- the protocol ------------------------------------------------------------------------------

HEADER, HTTP, CLOSED = "HEADER", "HTTP", "CLOSED"
_NEXT = {HEADER: (HTTP, CLOSED), HTTP: (), CLOSED: ()}

#: once the server shuts down, a connection still waiting for its header gets this long more
#: (the header comes with the connection: a proxy that has connected has sent it)
SHUTDOWN_GRACE = 1.0


class ProxyProtocol(asyncio.Protocol):
    """One connection while its PROXY protocol header is read (see the module docstring).
    Made by ``proxy_protocol_factory``. While it waits it is in ``ctx.connections``, so the
    server's shutdown sees it (``shutdown()``, ``abort()``)."""

    __slots__ = (
        "buffer",
        "ctx",
        "mode",
        "peer",
        "peer_trusted",
        "state",
        "timeout",
        "timer",
        "transport",
        "trusted",
    )

    def __init__(self, ctx: ServerContext, mode: str, trusted: TrustedProxies, timeout: float | None) -> None:
        self.ctx = ctx
        self.mode = mode
        self.trusted = trusted
        self.timeout = timeout
        self.state = HEADER
        self.transport: Any = None
        self.peer_trusted = False
        self.buffer = b""
        self.timer: asyncio.TimerHandle | None = None
        #: the peer as the log names it
        self.peer = "?"

    def _set_state(self, new: str) -> None:
        if new not in _NEXT[self.state]:
            raise AssertionError(f"ProxyProtocol: illegal transition {self.state} -> {new}")
        self.state = new
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.ctx.connections.discard(self)
        self.buffer = b""

    # asyncio.Protocol -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        peername = transport.get_extra_info("peername")
        if isinstance(peername, tuple):
            host, port = peername[0], peername[1]
            self.peer = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            self.peer_trusted = host in self.trusted
        else:
            # a unix socket: no peer address; trusted as ProxyHeadersMiddleware trusts it
            sockname = transport.get_extra_info("sockname")
            server = (sockname, None) if isinstance(sockname, str) and sockname else None
            self.peer = f"unix:{sockname}" if server else "unix socket"
            self.peer_trusted = self.trusted.trusts_unix_socket({"server": server})
        if not self.peer_trusted and self.mode != "auto":
            self._refuse("the peer is not in --forwarded-allow-ips")
            return
        self.ctx.connections.add(self)
        if self.timeout:
            self._set_timer(self.timeout)

    def data_received(self, data: bytes) -> None:
        if self.state != HEADER:
            return
        buffer = self.buffer + data if self.buffer else data
        if not self.peer_trusted:
            # auto: HTTP is fine, a header is not (it could name any address)
            version = detect_version(buffer)
            if version is None:
                self.buffer = buffer
            elif version:
                self._refuse(f"a PROXY protocol v{version} header from a peer not in --forwarded-allow-ips")
            else:
                self._hand_over(NO_HEADER, buffer)
            return
        try:
            header = parse_header(buffer, self.mode)
        except ProxyProtocolError as exc:
            self._refuse(str(exc))
            return
        if header is None:
            self.buffer = buffer
            return
        self._hand_over(header, buffer[header.length :])

    def eof_received(self) -> bool | None:
        # the peer half-closed before a whole header: nothing to answer; close
        if self.state == HEADER:
            self._set_state(CLOSED)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state == HEADER:
            self._set_state(CLOSED)

    # the server's controls (ctx.connections) --------------------------------------------------

    def shutdown(self) -> None:
        """The server is shutting down: the header has a short grace left (if it comes, the
        HTTP protocol finishes the connection as it does any other at shutdown)."""
        if self.state != HEADER:
            return
        if self.timer is None or self.timer.when() - self.ctx.loop.time() > SHUTDOWN_GRACE:
            self._set_timer(SHUTDOWN_GRACE)

    def abort(self) -> None:
        """Close the connection now."""
        if self.state == HEADER:
            self._set_state(CLOSED)
            self.transport.abort()

    # ---------------------------------------------------------------------------------------

    def _set_timer(self, seconds: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.ctx.loop.call_later(seconds, self._on_timeout, seconds)

    def _on_timeout(self, seconds: float) -> None:
        self.timer = None
        if self.state == HEADER:
            self._refuse(f"no complete PROXY protocol header within {seconds:g}s")

    def _refuse(self, reason: str) -> None:
        logger.warning("PROXY protocol: closing the connection from %s: %s.", self.peer, reason)
        self._set_state(CLOSED)
        self.transport.close()

    def _hand_over(self, header: ProxyHeader, rest: bytes) -> None:
        """The connection becomes an HTTP connection, with the header's addresses."""
        self._set_state(HTTP)
        transport = self.transport
        self.transport = None
        http = HttpProtocol(self.ctx)
        http.connection_made(transport)
        if header.proxied:
            http.set_addresses(header.client, header.server)
        transport.set_protocol(http)
        if rest:
            http.data_received(rest)


def proxy_protocol_factory(
    ctx: ServerContext,
    mode: str,
    trusted: TrustedProxies,
    timeout_request_head: float | None,
    timeout_keep_alive: float | None,
) -> Callable[[], asyncio.Protocol]:
    """The ``create_protocol`` of a server with ``--proxy-protocol mode`` (v1, v2, auto):
    each connection starts as a ``ProxyProtocol``. The header's deadline is
    ``--timeout-request-head``, or ``--timeout-keep-alive`` when that is off (0 or None);
    when both are, none."""
    if mode not in MODES or mode == "off":
        raise ValueError(f"--proxy-protocol must be one of v1, v2, auto here, not {mode!r}")
    timeout = timeout_request_head or timeout_keep_alive or None

    def create_protocol() -> asyncio.Protocol:
        return ProxyProtocol(ctx, mode, trusted, timeout)

    return create_protocol
