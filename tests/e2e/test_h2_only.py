"""--http h2: a listener that speaks only HTTP/2, in cleartext by prior knowledge (RFC 9113
3.3). Every connection is HTTP/2 from its first byte, so anything that is not the connection
preface, an HTTP/1.1 request included, is a connection error: GOAWAY(PROTOCOL_ERROR) (RFC 9113
3.4), never an HTTP/1.1 answer."""

from __future__ import annotations

import socket
import ssl

import pytest

from support.h2frames import PREFACE, ErrorCode, FrameType, H2Conn, frame_bytes
from support.server import ServerProcess, fastasgi_command, free_port

trustme = pytest.importorskip("trustme")

APP = "h2_app:app"
PING8 = b"12345678"
BAD_PREFACES = [
    ("http11_request", b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"),
    ("garbled_magic", b"PRI * HTTP/2.0\r\n\r\nXM\r\n\r\n" + frame_bytes(FrameType.SETTINGS, 0, 0)),
    ("ping_instead_of_settings", PREFACE + frame_bytes(FrameType.PING, 0, 0, PING8)),
]


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("h2only-pki")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    ca.cert_pem.write_to_path(str(base / "ca.pem"))
    cert.private_key_pem.write_to_path(str(base / "key.pem"))
    for index, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(str(base / "cert.pem"), append=index > 0)
    return {name: str(base / f"{name}.pem") for name in ("ca", "cert", "key")}


@pytest.fixture(scope="module", params=["h2c", "tls"])
def server(request, pki):
    port = free_port()
    tls = ["--ssl-certfile", pki["cert"], "--ssl-keyfile", pki["key"]] if request.param == "tls" else []
    proc = ServerProcess(fastasgi_command(APP, "--port", str(port), "--http", "h2", *tls))
    try:
        proc.wait_listening(port)
        yield port, (request.param == "tls")
    finally:
        proc.kill()
        proc._close_files()


def _context(pki, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki["ca"])
    context.set_alpn_protocols(alpn)
    return context


def _read_all(sock: socket.socket) -> bytes:
    data = b""
    sock.settimeout(5)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError, ssl.SSLError):
        pass
    return data


def _goaway_code(data: bytes) -> int | None:
    """The error code of the first GOAWAY among the frames in ``data``."""
    offset = 0
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        if data[offset + 3] == FrameType.GOAWAY:
            return int.from_bytes(data[offset + 13 : offset + 17], "big")
        offset += 9 + length
    return None


def test_prior_knowledge_request_is_served(server, pki):
    port, tls = server
    h2 = H2Conn(port, ssl_context=_context(pki, ["h2"]) if tls else None)
    with h2:
        h2.handshake()
        resp = h2.fetch("GET", "/")
        assert resp.status == 200 and resp.body == b"ok"


@pytest.mark.parametrize("name,data", BAD_PREFACES, ids=[c[0] for c in BAD_PREFACES])
def test_invalid_preface_is_a_connection_error(server, pki, name, data):
    port, tls = server
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    # over TLS the client offers http/1.1 only: the listener still speaks HTTP/2 alone
    sock = _context(pki, ["http/1.1"]).wrap_socket(raw, server_hostname="localhost") if tls else raw
    with sock:
        sock.sendall(data)
        answer = _read_all(sock)
    assert not answer.startswith(b"HTTP/1."), answer[:80]
    assert _goaway_code(answer) == ErrorCode.PROTOCOL_ERROR, answer[:200]


def test_alpn_offers_h2_only(server, pki):
    port, tls = server
    if not tls:
        pytest.skip("TLS only")
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with _context(pki, ["h2", "http/1.1"]).wrap_socket(raw, server_hostname="localhost") as sock:
        assert sock.selected_alpn_protocol() == "h2"
