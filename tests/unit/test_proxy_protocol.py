"""The PROXY protocol layer (fastasgi/middleware/proxy_protocol.py): the header parser called
directly, then the protocol over the in-process fake transport, each wire case delivered
whole and byte by byte."""

from __future__ import annotations

import ipaddress
import logging
import struct

import pytest

from fastasgi.config import Config, ConfigError
from fastasgi.middleware.proxy_headers import TrustedProxies
from fastasgi.middleware.proxy_protocol import (
    NO_HEADER,
    V1_MAX_LENGTH,
    V2_MAX_LENGTH,
    V2_SIGNATURE,
    ProxyHeader,
    ProxyProtocol,
    ProxyProtocolError,
    detect_version,
    parse_header,
    proxy_protocol_factory,
)
from support.inproc import (
    PEERNAME,
    SOCKNAME,
    FakeTransport,
    advance,
    in_loop,
    make_ctx,
    pieces,
    run_until_idle,
)

# --- building headers -------------------------------------------------------------------------

PROXY, LOCAL = 0x21, 0x20
TCP4, UDP4, TCP6, UNIX_STREAM, UNSPEC = 0x11, 0x12, 0x21, 0x31, 0x00


def v2(command: int, family: int, block: bytes, tlvs: bytes = b"", length: int | None = None) -> bytes:
    """A version 2 header: the signature, version/command, family/transport, the length
    (of ``block`` and ``tlvs`` unless given), then they."""
    body = block + tlvs
    return (
        V2_SIGNATURE
        + bytes([command, family])
        + struct.pack("!H", len(body) if length is None else length)
        + body
    )


def inet(src: str, dst: str, sport: int, dport: int) -> bytes:
    return (
        ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed + struct.pack("!HH", sport, dport)
    )


def unix(src: bytes, dst: bytes) -> bytes:
    return src.ljust(108, b"\x00") + dst.ljust(108, b"\x00")


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


V4_BLOCK = inet("192.0.2.1", "192.0.2.11", 56324, 443)
V6_BLOCK = inet("2001:db8::1", "2001:db8::11", 56324, 8443)
V4_ADDRESSES = (("192.0.2.1", 56324), ("192.0.2.11", 443))
V6_ADDRESSES = (("2001:db8::1", 56324), ("2001:db8::11", 8443))
KEEP = None  # the connection's own addresses are kept

# --- the parser -------------------------------------------------------------------------------

# (name, mode, wire, addresses (client, server) or KEEP)
VALID = [
    ("v1 TCP4", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n", V4_ADDRESSES),
    ("v1 TCP6", "v1", b"PROXY TCP6 2001:db8::1 2001:db8::11 56324 8443\r\n", V6_ADDRESSES),
    ("v1 TCP6 written long", "v1", b"PROXY TCP6 2001:0db8:0:0:0:0:0:1 2001:DB8::11 56324 8443\r\n", V6_ADDRESSES),
    ("v1 ports 0 and 65535", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 0 65535\r\n",
     (("192.0.2.1", 0), ("192.0.2.11", 65535))),
    ("v1 UNKNOWN short", "v1", b"PROXY UNKNOWN\r\n", KEEP),
    ("v1 UNKNOWN with anything", "v1", b"PROXY UNKNOWN whatever 1 2 3\r\n", KEEP),
    ("v1 longest", "v1", b"PROXY UNKNOWN " + b"f" * (V1_MAX_LENGTH - 16) + b"\r\n", KEEP),
    ("v1 under auto", "auto", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n", V4_ADDRESSES),
    ("v2 PROXY TCP4", "v2", v2(PROXY, TCP4, V4_BLOCK), V4_ADDRESSES),
    ("v2 PROXY TCP6", "v2", v2(PROXY, TCP6, V6_BLOCK), V6_ADDRESSES),
    ("v2 PROXY unix", "v2", v2(PROXY, UNIX_STREAM, unix(b"", b"/run/haproxy.sock")),
     (None, ("/run/haproxy.sock", None))),
    ("v2 PROXY unix, no paths", "v2", v2(PROXY, UNIX_STREAM, unix(b"", b"")), (None, None)),
    ("v2 LOCAL", "v2", v2(LOCAL, UNSPEC, b""), KEEP),
    ("v2 LOCAL with a block to skip", "v2", v2(LOCAL, TCP4, V4_BLOCK), KEEP),
    ("v2 LOCAL with any family", "v2", v2(LOCAL, 0xFF, b"xyz"), KEEP),
    ("v2 PROXY UNSPEC", "v2", v2(PROXY, UNSPEC, b""), KEEP),
    ("v2 PROXY UDP4: own addresses", "v2", v2(PROXY, UDP4, V4_BLOCK), KEEP),
    ("v2 TLVs skipped", "v2",
     v2(PROXY, TCP4, V4_BLOCK, tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x04, b"\x00" * 9) + tlv(0x05, b"")),
     V4_ADDRESSES),
    ("v2 TLVs up to the cap", "v2",
     v2(PROXY, TCP4, V4_BLOCK, tlv(0x04, b"\x00" * (V2_MAX_LENGTH - len(V4_BLOCK) - 3))), V4_ADDRESSES),
    ("v2 under auto", "auto", v2(PROXY, TCP4, V4_BLOCK), V4_ADDRESSES),
]  # fmt: skip

# (name, mode, wire, words of the reason)
INVALID = [
    ("v1 without a header", "v1", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "no PROXY protocol v1 header"),
    ("v2 without a header", "v2", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "no PROXY protocol v2 header"),
    ("v2 header under v1", "v1", v2(PROXY, TCP4, V4_BLOCK), "v2 header, but --proxy-protocol is v1"),
    ("v1 header under v2", "v2", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n",
     "v1 header, but --proxy-protocol is v2"),
    ("v1 no CRLF in 107 bytes", "v1", b"PROXY UNKNOWN " + b"f" * 100, "without CRLF in its first 107"),
    ("v1 line of 108 bytes", "v1", b"PROXY UNKNOWN " + b"f" * (V1_MAX_LENGTH - 15) + b"\r\n", "without CRLF"),
    ("v1 bare LF", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\n", "not ended by CRLF"),
    ("v1 bare CR inside", "v1", b"PROXY TCP4 192.0.2.1\r192.0.2.11 56324 443\r\n", "bare CR"),
    ("v1 no space after PROXY", "v1", b"PROXYTCP4 192.0.2.1 192.0.2.11 56324 443\r\n", "malformed"),
    ("v1 unknown protocol", "v1", b"PROXY UDP4 192.0.2.1 192.0.2.11 56324 443\r\n", "unknown protocol 'UDP4'"),
    ("v1 two spaces", "v1", b"PROXY TCP4  192.0.2.1 192.0.2.11 56324 443\r\n", "not 6 fields"),
    ("v1 trailing space", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443 \r\n", "not 6 fields"),
    ("v1 missing port", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324\r\n", "not 6 fields"),
    ("v1 IPv6 under TCP4", "v1", b"PROXY TCP4 2001:db8::1 192.0.2.11 56324 443\r\n", "bad address '2001:db8::1'"),
    ("v1 IPv4 under TCP6", "v1", b"PROXY TCP6 192.0.2.1 2001:db8::11 56324 443\r\n", "bad address '192.0.2.1'"),
    ("v1 leading zero in address", "v1", b"PROXY TCP4 192.0.2.01 192.0.2.11 56324 443\r\n", "bad address"),
    ("v1 octet over 255", "v1", b"PROXY TCP4 192.0.2.256 192.0.2.11 56324 443\r\n", "bad address"),
    ("v1 zone id", "v1", b"PROXY TCP6 fe80::1%eth0 2001:db8::11 56324 443\r\n", "bad address"),
    ("v1 leading zero in port", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 056324 443\r\n", "bad port '056324'"),
    ("v1 port over 65535", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 65536 443\r\n", "bad port '65536'"),
    ("v1 port with a sign", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.11 +1 443\r\n", "bad port"),
    ("v1 not ASCII", "v1", b"PROXY TCP4 192.0.2.1 192.0.2.\xc311 1 443\r\n", "not US-ASCII"),
    ("v1 lower case", "v1", b"PROXY tcp4 192.0.2.1 192.0.2.11 56324 443\r\n", "unknown protocol"),
    ("v2 version 1", "v2", V2_SIGNATURE + b"\x11\x11\x00\x0c" + V4_BLOCK, "version 1"),
    ("v2 version 3", "v2", V2_SIGNATURE + b"\x31\x11\x00\x0c" + V4_BLOCK, "version 3"),
    ("v2 unknown command", "v2", v2(0x22, TCP4, V4_BLOCK), "unknown command 0x2"),
    ("v2 unknown family", "v2", v2(PROXY, 0x41, V4_BLOCK), "unknown family/transport 0x41"),
    ("v2 unknown transport", "v2", v2(PROXY, 0x13, V4_BLOCK), "unknown family/transport 0x13"),
    ("v2 short IPv4 block", "v2", v2(PROXY, TCP4, V4_BLOCK[:8]), "8 address bytes, its family needs 12"),
    ("v2 short IPv6 block", "v2", v2(PROXY, TCP6, V4_BLOCK), "12 address bytes, its family needs 36"),
    ("v2 short unix block", "v2", v2(PROXY, UNIX_STREAM, b"\x00" * 108), "108 address bytes"),
    ("v2 over the cap", "v2", v2(PROXY, TCP4, V4_BLOCK, length=V2_MAX_LENGTH + 1), "over 4096"),
    ("v2 largest length", "v2", v2(PROXY, TCP4, V4_BLOCK, length=0xFFFF), "65535 bytes"),
    ("v2 truncated TLV", "v2", v2(PROXY, TCP4, V4_BLOCK, b"\x01\x00"), "truncated TLV"),
    ("v2 TLV past the end", "v2", v2(PROXY, TCP4, V4_BLOCK, b"\x02\x00\x05abc"), "TLV (type 0x02) running past"),
]  # fmt: skip


@pytest.mark.parametrize("name,mode,wire,addresses", VALID, ids=[c[0] for c in VALID])
def test_valid_headers(name, mode, wire, addresses):
    header = parse_header(wire + b"GET / HTTP/1.1\r\n", mode)
    assert header is not None and header.length == len(wire)
    assert header.version == (1 if wire.startswith(b"PROXY") else 2)
    if addresses is KEEP:
        assert not header.proxied
    else:
        assert header.proxied and (header.client, header.server) == addresses
    # every shorter prefix is incomplete, never an error
    for end in range(len(wire)):
        assert parse_header(wire[:end], mode) is None, end


@pytest.mark.parametrize("name,mode,wire,reason", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_headers(name, mode, wire, reason):
    with pytest.raises(ProxyProtocolError) as caught:
        parse_header(wire, mode)
    assert reason in str(caught.value)
    # never more than a bounded number of bytes is asked for before the verdict
    assert _verdict_after(wire, mode) <= max(V1_MAX_LENGTH, 16 + V2_MAX_LENGTH)


def _verdict_after(wire: bytes, mode: str) -> int:
    for end in range(len(wire) + 1):
        try:
            if parse_header(wire[:end], mode) is not None:
                return end
        except ProxyProtocolError:
            return end
    raise AssertionError("no verdict")


@pytest.mark.parametrize(
    "data,version",
    [(b"", None), (b"P", None), (b"PROX", None), (b"PROXY", 1), (b"POST", 0), (b"\r\n\r\n\x00", None),
     (V2_SIGNATURE, 2), (b"\r\nGET", 0), (b"GET", 0), (b"\x16\x03\x01", 0)],
)  # fmt: skip
def test_detect_version(data, version):
    assert detect_version(data) == version


def test_auto_without_a_header_is_http_after_the_first_telling_byte():
    assert parse_header(b"GET / HTTP/1.1\r\n", "auto") is NO_HEADER
    assert parse_header(b"PO", "auto") is NO_HEADER
    assert parse_header(b"P", "auto") is None
    assert parse_header(b"\r\n\r\n", "auto") is None  # the start of the v2 signature: wait
    assert parse_header(b"\r\n\r\nX", "auto") is NO_HEADER


# --- the protocol over the fake transport -----------------------------------------------------

REQUEST = b"GET /one HTTP/1.1\r\nHost: x\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nserver: fastasgi\r\ncontent-length: 2\r\n\r\nok"


class Recorder:
    """An app that answers "ok" and keeps each request's (path, client, server)."""

    def __init__(self) -> None:
        self.seen: list[tuple] = []

    async def __call__(self, scope, receive, send):
        self.seen.append((scope["path"], scope["client"], scope["server"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def app():
    return Recorder()


def open_conn(loop, app, mode, trusted="127.0.0.1", timeout=5.0, **transport_kw):
    """A ctx over ``loop``, and a ProxyProtocol of it after connection_made over a
    FakeTransport (``peername``/``sockname`` as given, else inproc's)."""
    ctx = make_ctx(app, loop)
    protocol = proxy_protocol_factory(ctx, mode, TrustedProxies(trusted), timeout, 5.0)()
    transport = FakeTransport(loop, **transport_kw)
    transport.protocol = protocol
    in_loop(loop, protocol.connection_made, transport)
    return ctx, protocol, transport


def send(transport, data, split=None):
    for piece in pieces(data, split):
        transport.feed(piece)
        run_until_idle(transport.loop)


def warnings(error_log):
    return [r.getMessage() for r in error_log.records if r.levelno == logging.WARNING]


SPLITS = ["whole", "bytewise"]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name,mode,wire,addresses", VALID, ids=[c[0] for c in VALID])
def test_header_then_http(loop, app, error_log, name, mode, wire, addresses, split):
    ctx, protocol, transport = open_conn(loop, app, mode)
    send(transport, wire + REQUEST, split)
    assert transport.output() == RESPONSE
    expected = (PEERNAME, SOCKNAME) if addresses is KEEP else addresses
    assert app.seen == [("/one", *expected)]
    assert transport.protocol is not protocol and protocol.state == "HTTP"
    assert protocol not in ctx.connections and transport.protocol in ctx.connections
    assert not transport.closed and warnings(error_log) == []


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("name,mode,wire,reason", INVALID, ids=[c[0] for c in INVALID])
def test_refused_header_closes_with_one_warning(loop, app, error_log, name, mode, wire, reason, split):
    ctx, protocol, transport = open_conn(loop, app, mode)
    send(transport, wire + REQUEST, split)
    assert transport.closed and transport.writes == [] and app.seen == []
    assert transport.protocol is protocol and protocol.state == "CLOSED"
    assert protocol not in ctx.connections
    (line,) = warnings(error_log)
    assert line.startswith("PROXY protocol: closing the connection from 127.0.0.1:50000: ")
    assert reason in line


def test_pipelined_requests_all_get_the_header_addresses(loop, app):
    _, _, transport = open_conn(loop, app, "v1")
    wire = b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n"
    requests = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % n for n in range(3))
    send(transport, wire + requests)
    assert transport.output() == RESPONSE * 3
    assert app.seen == [(f"/{n}", *V4_ADDRESSES) for n in range(3)]
    # and on the same connection, later
    send(transport, b"GET /later HTTP/1.1\r\nHost: x\r\n\r\n")
    assert app.seen[-1] == ("/later", *V4_ADDRESSES)


@pytest.mark.parametrize("split", SPLITS)
def test_auto_without_a_header_is_plain_http(loop, app, error_log, split):
    _, _, transport = open_conn(loop, app, "auto")
    send(transport, REQUEST + REQUEST, split)
    assert transport.output() == RESPONSE * 2
    assert app.seen == [("/one", PEERNAME, SOCKNAME)] * 2
    assert warnings(error_log) == []


def test_the_header_alone_then_http_later(loop, app):
    _, protocol, transport = open_conn(loop, app, "v2")
    send(transport, v2(PROXY, TCP6, V6_BLOCK))
    assert transport.protocol is not protocol and transport.output() == b""
    send(transport, REQUEST)
    assert app.seen == [("/one", *V6_ADDRESSES)]


# --- trust ------------------------------------------------------------------------------------

UNTRUSTED = ("10.9.9.9", 40000)


@pytest.mark.parametrize("mode", ["v1", "v2"])
def test_untrusted_peer_is_refused_at_once(loop, app, error_log, mode):
    ctx, protocol, transport = open_conn(loop, app, mode, peername=UNTRUSTED)
    assert transport.closed and protocol not in ctx.connections
    assert warnings(error_log) == [
        "PROXY protocol: closing the connection from 10.9.9.9:40000: the peer is not in --forwarded-allow-ips."
    ]


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize(
    "wire", [b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n", v2(PROXY, TCP4, V4_BLOCK)]
)
def test_auto_untrusted_peer_with_a_header_is_refused(loop, app, error_log, wire, split):
    _, _, transport = open_conn(loop, app, "auto", peername=UNTRUSTED)
    send(transport, wire + REQUEST, split)
    assert transport.closed and transport.writes == [] and app.seen == []
    (line,) = warnings(error_log)
    assert "from 10.9.9.9:40000: a PROXY protocol v" in line and "not in --forwarded-allow-ips" in line


def test_auto_untrusted_peer_without_a_header_is_served(loop, app, error_log):
    _, _, transport = open_conn(loop, app, "auto", peername=UNTRUSTED)
    send(transport, REQUEST, "bytewise")
    assert transport.output() == RESPONSE and app.seen == [("/one", UNTRUSTED, SOCKNAME)]
    assert warnings(error_log) == []


@pytest.mark.parametrize(
    "trusted,peer,accepted",
    [
        ("10.0.0.0/8", ("10.1.2.3", 1), True),
        ("10.0.0.0/8", ("::ffff:10.1.2.3", 1, 0, 0), True),  # dual-stack socket
        ("::1", ("::1", 1, 0, 0), True),
        ("*", ("203.0.113.9", 1), True),
        ("127.0.0.1", ("::1", 1, 0, 0), False),
    ],
)
def test_trusted_peers(loop, app, trusted, peer, accepted):
    _, _, transport = open_conn(loop, app, "v1", trusted=trusted, peername=peer)
    send(transport, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n" + REQUEST)
    assert (app.seen == [("/one", *V4_ADDRESSES)]) is accepted
    assert transport.closed is not accepted


@pytest.mark.parametrize(
    "trusted,accepted",
    [("/run/app.sock", True), ("*", True), ("127.0.0.1,::1", False), ("/run/other.sock", False)],
)
def test_unix_socket_peer_is_trusted_as_proxy_headers_trusts_it(loop, app, error_log, trusted, accepted):
    _, _, transport = open_conn(loop, app, "v2", trusted=trusted, peername="", sockname="/run/app.sock")
    send(transport, v2(PROXY, TCP4, V4_BLOCK) + REQUEST)
    assert (app.seen == [("/one", *V4_ADDRESSES)]) is accepted
    if not accepted:
        assert warnings(error_log) == [
            "PROXY protocol: closing the connection from unix:/run/app.sock: the peer is not in"
            " --forwarded-allow-ips."
        ]


def test_local_over_a_unix_socket_keeps_the_socket_addresses(loop, app):
    _, _, transport = open_conn(loop, app, "v2", trusted="*", peername="", sockname="/run/app.sock")
    send(transport, v2(LOCAL, UNSPEC, b"") + REQUEST)
    assert app.seen == [("/one", None, ("/run/app.sock", None))]


# --- time, end of input, shutdown -------------------------------------------------------------


@pytest.mark.parametrize("sent", [b"", b"PROXY TCP4 192.0.2.1", V2_SIGNATURE + b"\x21\x11\x00\x0c"])
def test_no_complete_header_in_time(loop, app, error_log, sent):
    ctx, protocol, transport = open_conn(loop, app, "auto", timeout=3.0)
    send(transport, sent)
    advance(loop, ctx, 2.9)
    assert not transport.closed and protocol in ctx.connections
    advance(loop, ctx, 0.2)
    assert transport.closed and transport.writes == [] and app.seen == []
    assert warnings(error_log) == [
        "PROXY protocol: closing the connection from 127.0.0.1:50000: no complete PROXY protocol header within 3s."
    ]


def test_the_timer_ends_with_the_header(loop, app, error_log):
    ctx, _, transport = open_conn(loop, app, "v1", timeout=3.0)
    send(transport, b"PROXY UNKNOWN\r\n")
    advance(loop, ctx, 3.5)
    assert not transport.closed and warnings(error_log) == []


def test_timeout_off_falls_back_to_keep_alive(loop, app):
    ctx = make_ctx(app, loop)
    assert proxy_protocol_factory(ctx, "v1", TrustedProxies("*"), None, 5.0)().timeout == 5.0
    assert proxy_protocol_factory(ctx, "v1", TrustedProxies("*"), 0, 0)().timeout is None
    assert proxy_protocol_factory(ctx, "v1", TrustedProxies("*"), 2.5, 5.0)().timeout == 2.5
    with pytest.raises(ValueError):
        proxy_protocol_factory(ctx, "off", TrustedProxies("*"), 1, 1)


@pytest.mark.parametrize("sent", [b"", b"PROXY TCP4 192.0.2.1"])
def test_eof_before_the_header_just_closes(loop, app, error_log, sent):
    ctx, protocol, transport = open_conn(loop, app, "v1")
    send(transport, sent)
    transport.feed_eof()
    run_until_idle(loop)
    assert transport.closed and transport.lost and protocol.state == "CLOSED"
    assert protocol not in ctx.connections and warnings(error_log) == [] and app.seen == []


def test_connection_lost_before_the_header(loop, app, error_log):
    ctx, protocol, transport = open_conn(loop, app, "v2")
    send(transport, V2_SIGNATURE)
    transport.peer_lost(ConnectionResetError())
    run_until_idle(loop)
    assert protocol.state == "CLOSED" and protocol not in ctx.connections
    assert protocol.timer is None and warnings(error_log) == []


def test_shutdown_gives_a_waiting_connection_a_short_grace(loop, app, error_log):
    ctx, _, transport = open_conn(loop, app, "v1", timeout=30.0)
    in_loop(loop, ctx.begin_shutdown)  # calls shutdown() of every connection
    advance(loop, None, 0.5)
    assert not transport.closed
    advance(loop, None, 0.6)
    assert transport.closed
    assert "no complete PROXY protocol header within 1s" in warnings(error_log)[0]


def test_a_header_during_the_grace_is_served_as_shutdown_allows(loop, app):
    ctx, _, transport = open_conn(loop, app, "v1", timeout=30.0)
    in_loop(loop, ctx.begin_shutdown)
    send(transport, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n" + REQUEST)
    assert app.seen == [("/one", *V4_ADDRESSES)]
    assert b"connection: close" in transport.output().lower()


def test_abort_closes_a_waiting_connection(loop, app):
    ctx, protocol, transport = open_conn(loop, app, "v1")
    in_loop(loop, protocol.abort)
    run_until_idle(loop)
    assert transport.aborted and protocol not in ctx.connections and protocol.timer is None


def test_nothing_of_this_layer_stays_on_the_connection(loop, app):
    _, protocol, transport = open_conn(loop, app, "v1")
    send(transport, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n")
    assert isinstance(protocol, ProxyProtocol)
    assert protocol.transport is None and protocol.buffer == b"" and protocol.timer is None
    assert [c[0] for c in transport.calls] == ["set_protocol"]


def test_header_fields():
    wire = b"PROXY TCP4 192.0.2.1 192.0.2.11 1 2\r\n"
    assert parse_header(wire, "v1") == ProxyHeader(1, len(wire), True, ("192.0.2.1", 1), ("192.0.2.11", 2))


# --- settings ---------------------------------------------------------------------------------


def test_config_accepts_the_modes(restore_logging):
    for mode in ("off", "v1", "v2", "auto"):
        assert Config("core_app:app", proxy_protocol=mode).proxy_protocol == mode
    assert Config("core_app:app").proxy_protocol == "off"


def test_config_refuses_a_bad_mode_in_one_line(restore_logging):
    with pytest.raises(ConfigError) as caught:
        Config("core_app:app", proxy_protocol="v3")
    assert (
        str(caught.value)
        == "Invalid value for '--proxy-protocol': 'v3' is not one of 'off', 'v1', 'v2', 'auto'."
    )


def test_config_refuses_proxy_protocol_with_tls(restore_logging):
    with pytest.raises(ConfigError, match=r"^--proxy-protocol v1 cannot be used with TLS \(--ssl-certfile\)"):
        Config("core_app:app", proxy_protocol="v1", ssl_context_factory=lambda config, default: None)
