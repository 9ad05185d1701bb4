"""fastasgi._wshandshake: the WebSocket opening handshake checks (RFC 6455 4.2.1, 4.2.2, 4.4,
9.1) and the permessage-deflate negotiation (RFC 7692 5, 7.1), and their agreement with
``ServerProtocol.process_request`` of the ``websockets`` package, which they replace."""

from __future__ import annotations

import base64

import pytest

from fastasgi._wshandshake import Deflate, HandshakeError, accept_key, check_request

# RFC 6455 1.3 and 4.2.2: the sample key and its accept value
SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

VERSION_426 = b"sec-websocket-version: 13\r\n"


def request(**fields: list[str] | None) -> list[tuple[bytes, bytes]]:
    """The headers of a valid handshake request, with some fields replaced (``None``: removed).

    Keyword names are header names with ``_`` for ``-`` (``sec_websocket_key``); each maps to
    the list of the field's values, one header line each.
    """
    headers: dict[str, list[str] | None] = {
        "host": ["example.com"],
        "connection": ["Upgrade"],
        "upgrade": ["websocket"],
        "sec-websocket-key": [SAMPLE_KEY],
        "sec-websocket-version": ["13"],
    }
    for name, values in fields.items():
        headers[name.replace("_", "-")] = values
    return [
        (name.encode(), value.encode("latin-1"))
        for name, values in headers.items()
        if values is not None
        for value in values
    ]


def key_of(length: int) -> str:
    return base64.b64encode(bytes(range(length))).decode()


def test_accept_key_rfc6455_sample() -> None:
    assert accept_key(SAMPLE_KEY) == SAMPLE_ACCEPT


@pytest.mark.parametrize("deflate", [False, True])
def test_sample_request_is_accepted(deflate: bool) -> None:
    assert check_request(request(), deflate) == (SAMPLE_ACCEPT, None)


@pytest.mark.parametrize(
    "fields",
    [
        {"connection": ["keep-alive, Upgrade"]},
        {"connection": ["upgrade"]},
        {"connection": ["UPGRADE"]},
        {"connection": ["keep-alive", "Upgrade"]},  # the options of every Connection header
        {"connection": [", ,keep-alive ,, Upgrade,"]},  # empty list elements (RFC 7230 7)
        {"upgrade": ["WebSocket"]},
        {"upgrade": [",websocket, "]},
        {"sec_websocket_key": [key_of(16)]},
        {"origin": ["https://example.com"]},
        {"sec_websocket_protocol": ["chat, superchat"], "sec_websocket_extensions": ["foo"]},
        {"sec_websocket_protocol": ["chat", "v2.chat"]},
        # extensions are not parsed at all when deflate is off
        {"sec_websocket_extensions": ["permessage-deflate; ="]},
        {"sec_websocket_extensions": [""]},
        {"content_length": ["0"]},  # an empty body is no body
    ],
)
def test_accepted(fields: dict[str, list[str]]) -> None:
    accept, deflate = check_request(request(**fields), False)
    key = fields.get("sec_websocket_key", [SAMPLE_KEY])[0]
    assert accept == accept_key(key)
    assert deflate is None


@pytest.mark.parametrize(
    ("fields", "deflate", "status", "reason"),
    [
        # Connection must list "upgrade"
        ({"connection": None}, False, 400, "missing Connection header"),
        ({"connection": ["keep-alive"]}, False, 400, "invalid Connection header: keep-alive"),
        ({"connection": ["keep-alive", "close"]}, False, 400, "invalid Connection header: keep-alive, close"),
        ({"connection": ["Upgrade;x"]}, False, 400, "invalid Connection header"),
        ({"connection": ["Upgrade", ""]}, False, 400, "invalid Connection header"),
        ({"connection": [" Upgrade"]}, False, 400, "invalid Connection header"),
        ({"connection": ["Up grade"]}, False, 400, "invalid Connection header"),
        ({"connection": [","]}, False, 400, "invalid Connection header"),
        # Upgrade must be exactly one protocol, "websocket"
        ({"upgrade": None}, False, 400, "missing Upgrade header"),
        ({"upgrade": ["h2c"]}, False, 400, "invalid Upgrade header: h2c"),
        ({"upgrade": ["websocket, h2c"]}, False, 400, "invalid Upgrade header: websocket, h2c"),
        ({"upgrade": ["websocket", "websocket"]}, False, 400, "invalid Upgrade header"),
        ({"upgrade": ["websocket/13"]}, False, 400, "invalid Upgrade header: websocket/13"),
        ({"upgrade": ["websocket/"]}, False, 400, "invalid Upgrade header"),
        # Sec-WebSocket-Key: one base64 value of 16 bytes
        ({"sec_websocket_key": None}, False, 400, "missing Sec-WebSocket-Key header"),
        ({"sec_websocket_key": [SAMPLE_KEY] * 2}, False, 400, "Sec-WebSocket-Key header: multiple values"),
        ({"sec_websocket_key": [""]}, False, 400, "empty Sec-WebSocket-Key header"),
        ({"sec_websocket_key": [key_of(15)]}, False, 400, "invalid Sec-WebSocket-Key header"),
        ({"sec_websocket_key": [key_of(17)]}, False, 400, "invalid Sec-WebSocket-Key header"),
        ({"sec_websocket_key": [SAMPLE_KEY.rstrip("=")]}, False, 400, "invalid Sec-WebSocket-Key header"),
        ({"sec_websocket_key": [SAMPLE_KEY + "="]}, False, 400, "invalid Sec-WebSocket-Key header"),
        ({"sec_websocket_key": [" " + SAMPLE_KEY]}, False, 400, "invalid Sec-WebSocket-Key header"),
        ({"sec_websocket_key": ["dGhlIHNhbXBsZ!Bub25jZQ=="]}, False, 400, "invalid Sec-WebSocket-Key header"),
        ({"sec_websocket_key": ["dGhlIHNhbXBsZ\xe9Bub25jZQ=="]}, False, 400, "invalid Sec-WebSocket-Key"),
        # Sec-WebSocket-Version: one value; a version other than 13 is a 426 (RFC 6455 4.4)
        ({"sec_websocket_version": None}, False, 400, "missing Sec-WebSocket-Version header"),
        ({"sec_websocket_version": ["13"] * 2}, False, 400, "Sec-WebSocket-Version header: multiple values"),
        ({"sec_websocket_version": ["8"]}, False, 426, "invalid Sec-WebSocket-Version header: 8"),
        ({"sec_websocket_version": ["13, 8"]}, False, 426, "invalid Sec-WebSocket-Version header"),
        ({"sec_websocket_version": ["013"]}, False, 426, "invalid Sec-WebSocket-Version header"),
        ({"sec_websocket_version": [""]}, False, 426, "empty Sec-WebSocket-Version header"),
        # the order of the checks: the key before the version, the version before the rest
        ({"sec_websocket_key": ["x"], "sec_websocket_version": ["8"]}, False, 400, "Sec-WebSocket-Key"),
        ({"sec_websocket_version": ["8"], "origin": ["a", "b"]}, True, 426, "Sec-WebSocket-Version"),
        ({"sec_websocket_version": ["8"], "sec_websocket_extensions": [";"]}, True, 426, "Version"),
        # at most one Origin
        ({"origin": ["https://a.example", "https://b.example"]}, False, 400, "invalid Origin header"),
        # no content: the bytes after the head are frames (RFC 6455 4.1, 5)
        ({"content_length": ["5"]}, False, 400, "carries no content"),
        ({"transfer_encoding": ["chunked"]}, False, 400, "carries no content"),
        # Sec-WebSocket-Protocol must be a list of tokens
        ({"sec_websocket_protocol": [""]}, False, 400, "invalid Sec-WebSocket-Protocol header"),
        ({"sec_websocket_protocol": ["chat; v=1"]}, False, 400, "invalid Sec-WebSocket-Protocol header"),
        ({"sec_websocket_protocol": ["chat", "a/b"]}, False, 400, "invalid Sec-WebSocket-Protocol header"),
        # Sec-WebSocket-Extensions must parse, when deflate is on
        ({"sec_websocket_extensions": [""]}, True, 400, "invalid Sec-WebSocket-Extensions header"),
        ({"sec_websocket_extensions": ["permessage-deflate;"]}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ["permessage-deflate; ="]}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ["permessage-deflate x"]}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ["permessage-deflate; a=b=c"]}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ['foo; a="b c"']}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ['foo; a=""']}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ['foo; a="b']}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ['foo; a="b\\"']}, True, 400, "Sec-WebSocket-Extensions"),
        ({"sec_websocket_extensions": ["foo; a=\xe9"]}, True, 400, "Sec-WebSocket-Extensions"),
        # a syntax error in any of the headers fails the handshake, even after an acceptable offer
        ({"sec_websocket_extensions": ["permessage-deflate", "foo;;"]}, True, 400, "Extensions"),
    ],
)
def test_rejected(fields: dict[str, list[str] | None], deflate: bool, status: int, reason: str) -> None:
    with pytest.raises(HandshakeError) as info:
        check_request(request(**fields), deflate)
    assert info.value.status == status
    assert info.value.extra == (VERSION_426 if status == 426 else b"")
    assert reason in str(info.value)


# Sec-WebSocket-Extensions values (one header line each) and the response to them with our
# configuration (12-bit windows for both sides); None: no offer accepted
OFFERS: list[tuple[list[str], str | None]] = [
    (["permessage-deflate"], "permessage-deflate; server_max_window_bits=12"),
    (
        ["permessage-deflate; client_max_window_bits"],
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
    ),
    (
        ["permessage-deflate; client_max_window_bits=10"],
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10",
    ),
    (
        ["permessage-deflate; client_max_window_bits=15"],
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
    ),
    (
        ["permessage-deflate; client_max_window_bits=8"],
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=8",
    ),
    (["permessage-deflate; server_max_window_bits=9"], "permessage-deflate; server_max_window_bits=9"),
    (["permessage-deflate; server_max_window_bits=12"], "permessage-deflate; server_max_window_bits=12"),
    (["permessage-deflate; server_max_window_bits=15"], "permessage-deflate; server_max_window_bits=12"),
    # zlib cannot deflate with a 256-byte window: the offer is declined (RFC 7692 5)
    (["permessage-deflate; server_max_window_bits=8"], None),
    (
        ["permessage-deflate; server_no_context_takeover"],
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
    ),
    (
        ["permessage-deflate; client_no_context_takeover"],
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=12",
    ),
    (
        [
            "permessage-deflate; client_max_window_bits=9; server_max_window_bits=10;"
            " client_no_context_takeover; server_no_context_takeover"
        ],
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover;"
        " server_max_window_bits=10; client_max_window_bits=9",
    ),
    # whitespace around the separators, and quoted values that are tokens (RFC 6455 9.1)
    (
        ['permessage-deflate ;client_max_window_bits = 11\t; server_max_window_bits= "10"'],
        "permessage-deflate; server_max_window_bits=10; client_max_window_bits=11",
    ),
    (['permessage-deflate; server_max_window_bits="1\\0"'], "permessage-deflate; server_max_window_bits=10"),
    # declined: unknown parameter, repeated parameter, invalid values
    (["permessage-deflate; foo"], None),
    (["permessage-deflate; Server_Max_Window_Bits=10"], None),
    (["permessage-deflate; server_no_context_takeover; server_no_context_takeover"], None),
    (["permessage-deflate; client_max_window_bits; client_max_window_bits=10"], None),
    (["permessage-deflate; server_no_context_takeover=1"], None),
    (["permessage-deflate; client_no_context_takeover=true"], None),
    (["permessage-deflate; server_max_window_bits"], None),
    (["permessage-deflate; server_max_window_bits=16"], None),
    (["permessage-deflate; server_max_window_bits=7"], None),
    (["permessage-deflate; server_max_window_bits=08"], None),
    (["permessage-deflate; server_max_window_bits=09"], None),
    (["permessage-deflate; client_max_window_bits=08"], None),
    (["permessage-deflate; server_max_window_bits=+9"], None),
    (["permessage-deflate; client_max_window_bits=16"], None),
    (["permessage-deflate; client_max_window_bits=010"], None),
    # other extensions, and names that are not exactly permessage-deflate, are ignored
    (["foo"], None),
    (["x-webkit-deflate-frame"], None),
    (["Permessage-Deflate"], None),
    (["foo; server_max_window_bits=10, permessage-deflate"], "permessage-deflate; server_max_window_bits=12"),
    # the first acceptable offer wins; offers span header lines, in order
    (
        ["permessage-deflate; foo, permessage-deflate; client_max_window_bits=9, permessage-deflate"],
        "permessage-deflate; server_max_window_bits=12; client_max_window_bits=9",
    ),
    (
        ["permessage-deflate; server_max_window_bits=8", "permessage-deflate; server_no_context_takeover"],
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=12",
    ),
    (
        ["foo", "permessage-deflate; server_max_window_bits=11", "permessage-deflate"],
        "permessage-deflate; server_max_window_bits=11",
    ),
    # empty list elements are skipped
    ([", ,permessage-deflate ,, "], "permessage-deflate; server_max_window_bits=12"),
]


@pytest.mark.parametrize(("values", "response"), OFFERS)
def test_extension_offers(values: list[str], response: str | None) -> None:
    accept, deflate = check_request(request(sec_websocket_extensions=values), True)
    assert accept == SAMPLE_ACCEPT
    assert (deflate.response if deflate else None) == response
    # with deflate off the same requests are accepted without extensions
    assert check_request(request(sec_websocket_extensions=values), False) == (SAMPLE_ACCEPT, None)


@pytest.mark.parametrize(
    ("offer", "expected"),
    [
        (
            "permessage-deflate",
            Deflate(False, False, 15, 12, "permessage-deflate; server_max_window_bits=12"),
        ),
        (
            "permessage-deflate; client_max_window_bits; server_no_context_takeover",
            Deflate(
                False,
                True,
                12,
                12,
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=12;"
                " client_max_window_bits=12",
            ),
        ),
        (
            "permessage-deflate; client_no_context_takeover; client_max_window_bits=9; server_max_window_bits=10",
            Deflate(
                True,
                False,
                9,
                10,
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=10;"
                " client_max_window_bits=9",
            ),
        ),
    ],
)
def test_negotiated_parameters(offer: str, expected: Deflate) -> None:
    _, deflate = check_request(request(sec_websocket_extensions=[offer]), True)
    assert deflate == expected


def test_configured_windows() -> None:
    offer = request(sec_websocket_extensions=["permessage-deflate; client_max_window_bits"])
    _, deflate = check_request(offer, True, server_max_window_bits=15, client_max_window_bits=9)
    assert deflate == Deflate(
        False, False, 9, 15, "permessage-deflate; server_max_window_bits=15; client_max_window_bits=9"
    )
    with pytest.raises(ValueError):
        check_request(offer, True, server_max_window_bits=8)
    with pytest.raises(ValueError):
        check_request(offer, True, client_max_window_bits=16)


def test_handshake_error() -> None:
    exc = HandshakeError("missing Sec-WebSocket-Key header")
    assert (str(exc), exc.status, exc.extra) == ("missing Sec-WebSocket-Key header", 400, b"")


# Offers for the comparison with websockets: the table above, and garbled ones (no control
# characters: websockets' Headers refuses those before process_request runs).
GARBLED_OFFERS = [
    "permessage-deflate; client_max_window_bits=",
    "permessage-deflate; =12",
    "permessage-deflate;; client_max_window_bits",
    "permessage-deflate, ;",
    ",",
    " permessage-deflate",
    "permessage-deflate\t",
    "permessage-deflate; server_max_window_bits='10'",
    'permessage-deflate; server_max_window_bits="10',
    'permessage-deflate; server_max_window_bits=10"',
    'permessage-deflate; server_max_window_bits="\\1\\0"',
    'permessage-deflate; server_max_window_bits="1 0"',
    "permessage-deflate; server_max_window_bits=1 0",
    "permessage-deflate; server_max_window_bits=10 ; ",
    "permessage-deflate/1",
    "permessage-deflate; client_max_window_bits=\xe9",
    '"permessage-deflate"',
    "permessage-deflate; server_no_context_takeover=",
    "permessage-deflate; server_no_context_takeover = x",
    "permessage-deflate; client_max_window_bits=9.5",
    "permessage-deflate; client_max_window_bits=-9",
    "permessage-deflate server_no_context_takeover",
]


def websockets_outcome(headers: list[tuple[bytes, bytes]], deflate: bool) -> tuple[object, ...]:
    """What websockets' ServerProtocol.process_request makes of a request, as websocket.py uses it."""
    from websockets.datastructures import Headers
    from websockets.exceptions import InvalidHandshake, InvalidHeaderValue
    from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
    from websockets.http11 import Request
    from websockets.protocol import OPEN
    from websockets.server import ServerProtocol

    factory = ServerPerMessageDeflateFactory(
        server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
    )
    conn = ServerProtocol(state=OPEN, extensions=[factory] if deflate else None)
    req = Request(path="/", headers=Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in headers))
    try:
        accept, extensions, _ = conn.process_request(req)
    except InvalidHeaderValue as exc:
        return ("refused", 426 if exc.name == "Sec-WebSocket-Version" else 400)
    except InvalidHandshake:
        return ("refused", 400)
    params = None
    if conn.extensions:
        ext: object = conn.extensions[0]
        params = tuple(
            getattr(ext, name)
            for name in (
                "remote_no_context_takeover",
                "local_no_context_takeover",
                "remote_max_window_bits",
                "local_max_window_bits",
            )
        )
    return ("accepted", accept, extensions, params)


def our_outcome(headers: list[tuple[bytes, bytes]], deflate: bool) -> tuple[object, ...]:
    try:
        accept, negotiated = check_request(headers, deflate)
    except HandshakeError as exc:
        return ("refused", exc.status)
    if negotiated is None:
        return ("accepted", accept, None, None)
    params = (
        negotiated.client_no_context_takeover,
        negotiated.server_no_context_takeover,
        negotiated.client_max_window_bits,
        negotiated.server_max_window_bits,
    )
    return ("accepted", accept, negotiated.response, params)


COMPARED = [
    *(request(sec_websocket_extensions=values) for values, _ in OFFERS),
    *(request(sec_websocket_extensions=[offer]) for offer in GARBLED_OFFERS),
    request(sec_websocket_extensions=["permessage-deflate", *GARBLED_OFFERS[:2]]),
    request(sec_websocket_extensions=None),
    request(connection=["keep-alive"], sec_websocket_extensions=["permessage-deflate"]),
    request(sec_websocket_version=["8"], sec_websocket_extensions=["permessage-deflate;"]),
    request(sec_websocket_key=[key_of(15)], sec_websocket_version=["8"]),
    request(origin=["a", "b"], sec_websocket_extensions=["permessage-deflate"]),
    request(sec_websocket_protocol=["chat, "], sec_websocket_extensions=["permessage-deflate"]),
    request(sec_websocket_protocol=["chat; x"]),
]


@pytest.mark.parametrize("headers", COMPARED)
@pytest.mark.parametrize("deflate", [True, False])
def test_same_outcome_as_websockets(headers: list[tuple[bytes, bytes]], deflate: bool) -> None:
    pytest.importorskip("websockets")
    assert our_outcome(headers, deflate) == websockets_outcome(headers, deflate)


def test_comparison_covers_both_outcomes() -> None:
    # the comparison is not vacuous: it sees accepted offers, declined offers and refusals
    outcomes = [our_outcome(headers, True) for headers in COMPARED]
    assert any(o[0] == "accepted" and o[2] is not None for o in outcomes)
    assert any(o[0] == "accepted" and o[2] is None for o in outcomes)
    assert {o[1] for o in outcomes if o[0] == "refused"} == {400, 426}
