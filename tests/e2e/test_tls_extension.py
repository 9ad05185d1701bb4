"""The ASGI TLS extension (scope["extensions"]["tls"]) on HTTP/1.1, HTTP/2 and websockets over
TLS, with and without a client certificate: the values are checked against what the test
made (its certificates, through cryptography) and what the client negotiated, not against
fastasgi's own code."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys

import httpx
import pytest

from support.h2frames import H2Conn
from support.server import ServerProcess, fastasgi_command, free_port

trustme = pytest.importorskip("trustme")
x509 = pytest.importorskip("cryptography.x509")

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")

APP = "tls_ext_app:app"
TLS_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}
# IANA TLS cipher suite codes of the suites a default OpenSSL negotiates here
CIPHER_CODES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls-ext")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1")
    client = ca.issue_cert("client@example.org")
    files = {name: base / f"{name}.pem" for name in ("ca", "cert", "key", "client")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=index > 0)
    client.private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    files["server_pem"] = server.cert_chain_pems[0].bytes().decode()
    files["client_pem"] = client.cert_chain_pems[0].bytes().decode()
    return files


@pytest.fixture(scope="module", params=["required", "none"])
def server(request, pki):
    port = free_port()
    reqs = ["--ssl-cert-reqs", "2", "--ssl-ca-certs", str(pki["ca"])] if request.param == "required" else []
    proc = ServerProcess(fastasgi_command(APP, "--port", str(port), "--http2", "--ssl-certfile", str(pki["cert"]),
                                          "--ssl-keyfile", str(pki["key"]), *reqs))
    try:
        proc.wait_listening(port)
        yield port, request.param == "required"
    finally:
        proc.kill()
        proc._close_files()


def _context(pki, with_cert: bool, alpn=("http/1.1",)) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if with_cert:
        context.load_cert_chain(str(pki["client"]))
    context.set_alpn_protocols(list(alpn))
    return context


def _negotiated(port: int, context: ssl.SSLContext) -> tuple[int, int]:
    """What the client negotiates with these settings: (version code, cipher code)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            return TLS_VERSIONS[sock.version()], CIPHER_CODES[sock.cipher()[0]]


def _expected(pki, port, context, with_cert: bool) -> dict:
    version, cipher = _negotiated(port, context)
    expected = {
        "server_cert": pki["server_pem"],
        "client_cert_chain": [],
        "client_cert_name": None,
        "client_cert_error": None,
        "tls_version": version,
        "cipher_suite": cipher,
    }
    if with_cert:
        cert = x509.load_pem_x509_certificate(pki["client_pem"].encode())
        expected["client_cert_chain"] = [pki["client_pem"]]
        expected["client_cert_name"] = cert.subject.rfc4514_string()
    return expected


def _same_pems(got: list, want: list) -> bool:
    return [p.strip() for p in got] == [p.strip() for p in want]


def _check(tls: dict, expected: dict) -> None:
    assert _same_pems([tls["server_cert"]], [expected["server_cert"]])
    # Python 3.13+ gives the chain the client sent; before, its certificate alone
    assert _same_pems(tls["client_cert_chain"][:1], expected["client_cert_chain"][:1])
    for key in ("client_cert_name", "client_cert_error", "tls_version", "cipher_suite"):
        assert tls[key] == expected[key], (key, tls[key], expected[key])


def test_http11(server, pki):
    port, required = server
    context = _context(pki, required)
    with httpx.Client(verify=context, timeout=10) as client:
        answer = client.get(f"https://localhost:{port}/").json()
    assert answer["http_version"] == "1.1"
    _check(answer["tls"], _expected(pki, port, context, required))


def test_http2(server, pki):
    port, required = server
    context = _context(pki, required, alpn=("h2",))
    with H2Conn(port, ssl_context=context) as h2:
        h2.handshake()
        answer = json.loads(h2.fetch("GET", "/").body)
    assert answer["http_version"] == "2"
    _check(answer["tls"], _expected(pki, port, _context(pki, required, alpn=("h2",)), required))


def test_websocket(server, pki):
    websockets = pytest.importorskip("websockets")
    port, required = server
    context = _context(pki, required)

    async def fetch() -> dict:
        async with websockets.connect(f"wss://localhost:{port}/", ssl=context, open_timeout=10) as ws:
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    answer = asyncio.run(fetch())
    _check(answer["tls"], _expected(pki, port, context, required))


def test_no_tls_extension_in_cleartext():
    port = free_port()
    proc = ServerProcess(fastasgi_command(APP, "--port", str(port)))
    try:
        proc.wait_listening(port)
        answer = httpx.get(f"http://127.0.0.1:{port}/", timeout=10).json()
    finally:
        proc.kill()
        proc._close_files()
    assert answer["tls"] is None
