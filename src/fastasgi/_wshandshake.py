"""The checks of a WebSocket opening handshake request, and the permessage-deflate negotiation.

:func:`check_request` takes the headers of an ``Upgrade: websocket`` request (as in an ASGI
scope) and either returns the ``Sec-WebSocket-Accept`` value and the negotiated
permessage-deflate parameters, or raises :class:`HandshakeError` with the status to refuse the
request with. It does what ``ServerProtocol.process_request`` of the ``websockets`` package (17)
does with a ``ServerPerMessageDeflateFactory`` and no subprotocols or origins configured, with
the same outcome for every request, in the same order:

- ``Connection`` must list ``upgrade`` and ``Upgrade`` must be exactly ``websocket`` (both
  case-insensitive), ``Sec-WebSocket-Key`` must be one base64 value of 16 bytes, and
  ``Sec-WebSocket-Version`` one value, ``13``: RFC 6455 4.2.1. A missing, repeated or invalid
  header is a 400, except an unsupported version: 426 with the version we speak (RFC 6455 4.4).
- ``Origin`` may appear once at most (RFC 6454 7.3), and ``Sec-WebSocket-Protocol`` must parse
  as a list of tokens (RFC 6455 4.1, 11.3.4); the protocols themselves are the app's to pick.
- ``Sec-WebSocket-Extensions`` (RFC 6455 9.1) is parsed only when permessage-deflate is on;
  then a syntax error is a 400, and the first permessage-deflate offer the server can accept is
  accepted (RFC 7692 5, 7.1); every other offer is declined.
- The accept value: RFC 6455 4.2.2.

The header grammars are RFC 7230's list rule (7: ``1#element``, with empty elements skipped),
token (3.2.6) and quoted-string (3.2.6), which RFC 6455 9.1 uses for the extension list.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Callable
from typing import TypeVar

__all__ = ["Deflate", "HandshakeError", "accept_key", "check_request"]

_T = TypeVar("_T")

#: RFC 6455 1.3: appended to the client's key before hashing.
_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

#: RFC 7230 3.2.6: tchar.
_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")

#: RFC 7692 7.1.2: the values of the window bits parameters (no leading zeros, no sign).
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}

#: The request headers looked at, by their lowercased names.
_CONNECTION = b"connection"
_UPGRADE = b"upgrade"
_KEY = b"sec-websocket-key"
_VERSION = b"sec-websocket-version"
_ORIGIN = b"origin"
_EXTENSIONS = b"sec-websocket-extensions"
_PROTOCOL = b"sec-websocket-protocol"
_NAMES = (_CONNECTION, _UPGRADE, _KEY, _VERSION, _ORIGIN, _EXTENSIONS, _PROTOCOL)


class HandshakeError(Exception):
    """The request is not a valid WebSocket handshake: refuse it with ``status``.

    ``str(exc)`` is a short reason; ``extra`` holds header lines for the response (the supported
    version with a 426, RFC 6455 4.4), or is empty.
    """

    def __init__(self, reason: str, status: int = 400, extra: bytes = b"") -> None:
        super().__init__(reason)
        self.status = status
        self.extra = extra


@dataclasses.dataclass(frozen=True, slots=True)
class Deflate:
    """Negotiated permessage-deflate parameters (RFC 7692 7.1), and the response header value."""

    client_no_context_takeover: bool
    server_no_context_takeover: bool
    #: the client's window (what we inflate with): 15 when the response does not limit it
    client_max_window_bits: int
    #: our window (what we deflate with)
    server_max_window_bits: int
    #: the ``Sec-WebSocket-Extensions`` value of the 101 response
    response: str


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value for a ``Sec-WebSocket-Key`` value (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + _GUID).encode()).digest()).decode()


def check_request(
    headers: list[tuple[bytes, bytes]],
    deflate: bool,
    *,
    server_max_window_bits: int = 12,
    client_max_window_bits: int = 12,
) -> tuple[str, Deflate | None]:
    """Check a WebSocket handshake request; return the accept value and the deflate parameters.

    ``headers`` are the request's headers as in an ASGI scope (lowercased names, latin-1 values).
    With ``deflate`` true, a permessage-deflate offer is accepted with at most these windows
    for our side and the client's (the negotiated parameters are ``None`` when no offer is
    accepted); with ``deflate`` false, ``Sec-WebSocket-Extensions`` is ignored. Raises
    :class:`HandshakeError` when the request must be refused.
    """
    # zlib cannot deflate with a 256-byte window (it needs wbits 9..15, see _accept_offer)
    if not 9 <= server_max_window_bits <= 15:
        raise ValueError("server_max_window_bits must be between 9 and 15")
    if not 8 <= client_max_window_bits <= 15:
        raise ValueError("client_max_window_bits must be between 8 and 15")

    fields: dict[bytes, list[str]] = {name: [] for name in _NAMES}
    for name, value in headers:
        values = fields.get(name)
        if values is not None:
            values.append(value.decode("latin-1"))
        elif (name == b"content-length" and value.strip() != b"0") or name == b"transfer-encoding":
            # The handshake is a GET whose bytes after the head are the client's first frames
            # (RFC 6455 4.1, 5): a body there would be read as frames, or frames as a body.
            raise HandshakeError("a WebSocket handshake request carries no content")

    connection = _parse_field("Connection", fields[_CONNECTION], _token)
    if not any(option.lower() == "upgrade" for option in connection):
        raise HandshakeError(_invalid("Connection", ", ".join(connection) if connection else None))

    upgrade = _parse_field("Upgrade", fields[_UPGRADE], _protocol)
    # RFC 6455 4.2.1 treats "websocket" as case-insensitive (11.2 registers it as "WebSocket")
    if not (len(upgrade) == 1 and upgrade[0].lower() == "websocket"):
        raise HandshakeError(_invalid("Upgrade", ", ".join(upgrade) if upgrade else None))

    key = _single("Sec-WebSocket-Key", fields[_KEY])
    try:
        raw_key = base64.b64decode(key.encode(), validate=True)
    except binascii.Error:
        raw_key = b""
    if len(raw_key) != 16:
        raise HandshakeError(_invalid("Sec-WebSocket-Key", key))

    version = _single("Sec-WebSocket-Version", fields[_VERSION])
    if version != "13":
        raise HandshakeError(
            _invalid("Sec-WebSocket-Version", version), 426, b"sec-websocket-version: 13\r\n"
        )

    if len(fields[_ORIGIN]) > 1:
        raise HandshakeError("invalid Origin header: multiple values")

    negotiated = None
    if deflate and fields[_EXTENSIONS]:
        offers = _parse_field("Sec-WebSocket-Extensions", fields[_EXTENSIONS], _extension)
        for extension, params in offers:
            # extension names compare case-sensitively, as in websockets
            if extension == "permessage-deflate":
                negotiated = _accept_offer(params, server_max_window_bits, client_max_window_bits)
                if negotiated is not None:
                    break

    # checked for its syntax only: the app picks the subprotocol from the scope
    _parse_field("Sec-WebSocket-Protocol", fields[_PROTOCOL], _token)

    return accept_key(key), negotiated


def _invalid(name: str, value: str | None) -> str:
    """The reason for a refused header value (websockets' wording)."""
    if value is None:
        return f"missing {name} header"
    return f"invalid {name} header: {value}" if value else f"empty {name} header"


def _single(name: str, values: list[str]) -> str:
    """The value of a header that must appear exactly once."""
    if not values:
        raise HandshakeError(f"missing {name} header")
    if len(values) > 1:
        raise HandshakeError(f"invalid {name} header: multiple values")
    return values[0]


def _accept_offer(params: list[tuple[str, str | None]], server_max: int, client_max: int) -> Deflate | None:
    """Accept a permessage-deflate offer with at most these windows, or decline it (``None``).

    RFC 7692 5: an offer is declined when a parameter is unknown, repeated or has an invalid
    value (7.1), or when the server does not support what it asks for.
    """
    seen: set[str] = set()
    server_no_context_takeover = client_no_context_takeover = False
    server_bits: int | None = None
    client_bits: int | None = None  # the limit the client offered, if it gave a value
    client_bits_offered = False
    for name, value in params:
        if name in seen:
            return None
        seen.add(name)
        if name == "server_no_context_takeover":
            if value is not None:
                return None
            server_no_context_takeover = True
        elif name == "client_no_context_takeover":
            if value is not None:
                return None
            client_no_context_takeover = True
        elif name == "server_max_window_bits":
            # 7.1.2.1: a value is required in an offer
            if value is None or value not in _WINDOW_BITS:
                return None
            server_bits = _WINDOW_BITS[value]
        elif name == "client_max_window_bits":
            # 7.1.2.2: the value is optional in an offer
            if value is not None:
                if value not in _WINDOW_BITS:
                    return None
                client_bits = _WINDOW_BITS[value]
            client_bits_offered = True
        else:
            return None

    # 7.1.2.1: our window is the offered one or smaller; the response always states it.
    if server_bits is None or server_bits > server_max:
        server_bits = server_max
    if server_bits == 8:
        # zlib cannot deflate with a 256-byte window (deflateInit2 rejects raw wbits 8):
        # decline, the offer's configuration is one we do not support (RFC 7692 5)
        return None
    response = ["permessage-deflate"]
    # 7.1.1: each no_context_takeover the client asked for is echoed (accepted)
    if server_no_context_takeover:
        response.append("server_no_context_takeover")
    if client_no_context_takeover:
        response.append("client_no_context_takeover")
    response.append(f"server_max_window_bits={server_bits}")
    # 7.1.2.2: the client's window may be limited only if the offer has client_max_window_bits;
    # without it, the client deflates with up to 15 bits
    if client_bits_offered:
        client_bits = client_max if client_bits is None else min(client_bits, client_max)
        response.append(f"client_max_window_bits={client_bits}")
    else:
        client_bits = 15
    return Deflate(
        client_no_context_takeover=client_no_context_takeover,
        server_no_context_takeover=server_no_context_takeover,
        client_max_window_bits=client_bits,
        server_max_window_bits=server_bits,
        response="; ".join(response),
    )


# --- the header grammars ---------------------------------------------------------------------
# Each parser takes the header value and a position, and returns what it read and the position
# after it; on a syntax error it raises _Malformed, which _parse_field turns into a 400.


class _Malformed(Exception):
    pass


def _parse_field(name: str, values: list[str], item: Callable[[str, int], tuple[_T, int]]) -> list[_T]:
    """The elements of every value of a ``1#item`` header, in order (RFC 7230 7)."""
    items: list[_T] = []
    for value in values:
        try:
            items.extend(_parse_list(value, item))
        except _Malformed as exc:
            raise HandshakeError(f"invalid {name} header: {exc} in {value!r}") from None
    return items


def _parse_list(value: str, item: Callable[[str, int], tuple[_T, int]]) -> list[_T]:
    """``1#item``: items separated by commas and optional whitespace, where empty elements are
    skipped (``a, , b``) but at least one item is required. Leading whitespace is an error, as
    in websockets: HTTP parsers strip it from field values (RFC 7230 3.2.4)."""
    end = len(value)
    pos = _skip_commas(value, 0)
    items = []
    while True:
        element, pos = item(value, pos)
        items.append(element)
        pos = _ows(value, pos)
        if pos == end:
            return items
        if value[pos] != ",":
            raise _Malformed(f"expected a comma at {pos}")
        pos = _skip_commas(value, pos)
        if pos == end:
            return items


def _skip_commas(value: str, pos: int) -> int:
    """Past any commas at ``pos``, each with the whitespace after it."""
    while pos < len(value) and value[pos] == ",":
        pos = _ows(value, pos + 1)
    return pos


def _ows(value: str, pos: int) -> int:
    """Past optional whitespace (RFC 7230 3.2.3: spaces and tabs)."""
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    return pos


def _token(value: str, pos: int) -> tuple[str, int]:
    """``token``: one or more tchar."""
    start = pos
    while pos < len(value) and value[pos] in _TCHAR:
        pos += 1
    if pos == start:
        raise _Malformed(f"expected a token at {start}")
    return value[start:pos], pos


def _protocol(value: str, pos: int) -> tuple[str, int]:
    """An Upgrade protocol: ``token ["/" token]`` (RFC 7230 6.7)."""
    name, pos = _token(value, pos)
    if value.startswith("/", pos) and pos + 1 < len(value) and value[pos + 1] in _TCHAR:
        version, pos = _token(value, pos + 1)
        name += "/" + version
    return name, pos


def _quoted_token(value: str, pos: int) -> tuple[str, int]:
    """A ``quoted-string`` whose content, once unescaped, is a token (RFC 6455 9.1)."""
    start = pos
    chars = []
    pos += 1  # the opening quote
    while pos < len(value) and value[pos] != '"':
        if value[pos] == "\\":  # quoted-pair
            pos += 1
            if pos == len(value):
                break
        chars.append(value[pos])
        pos += 1
    if pos == len(value):
        raise _Malformed(f"unterminated quoted string at {start}")
    content = "".join(chars)
    # every other character, escaped or not, is either not allowed in a quoted-string or not
    # a tchar: the outcome is the same
    if not content or not _TCHAR.issuperset(content):
        raise _Malformed(f"expected a token in the quoted string at {start}")
    return content, pos + 1


def _extension(value: str, pos: int) -> tuple[tuple[str, list[tuple[str, str | None]]], int]:
    """``extension = token *( OWS ";" OWS param )``, ``param = token [ "=" (token /
    quoted-string) ]`` (RFC 6455 9.1), with optional whitespace around the ``=`` as well."""
    name, pos = _token(value, pos)
    pos = _ows(value, pos)
    params: list[tuple[str, str | None]] = []
    while value.startswith(";", pos):
        param, pos = _token(value, _ows(value, pos + 1))
        pos = _ows(value, pos)
        param_value = None
        if value.startswith("=", pos):
            pos = _ows(value, pos + 1)
            if value.startswith('"', pos):
                param_value, pos = _quoted_token(value, pos)
            else:
                param_value, pos = _token(value, pos)
            pos = _ows(value, pos)
        params.append((param, param_value))
    return (name, params), pos
