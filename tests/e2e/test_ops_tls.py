"""HTTPS with the stdlib ssl module, against the real CLI, with certificates made by the test
(trustme): key and certificate files, an encrypted key, client certificates, ciphers, ALPN,
and the https / wss scope schemes."""

from __future__ import annotations

import json
import socket
import ssl
import sys

import httpx
import pytest

from support.ops import APP, serve
from support.server import HTTP_TIMEOUT, run_cli

trustme = pytest.importorskip("trustme")

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from cryptography.hazmat.primitives import serialization

    base = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    files = {
        name: base / f"{name}.pem" for name in ("ca", "cert", "key", "key_encrypted", "client", "stranger")
    }
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["key"]))
    for index, blob in enumerate(server.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=index > 0)
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    files["key_encrypted"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"s3cret"),
        )
    )
    ca.issue_cert("client@example.org").private_key_and_cert_chain_pem.write_to_path(str(files["client"]))
    trustme.CA().issue_cert("mallory@example.org").private_key_and_cert_chain_pem.write_to_path(
        str(files["stranger"])
    )
    return files


def tls_args(pki, *extra: str) -> list[str]:
    return ["--ssl-certfile", str(pki["cert"]), "--ssl-keyfile", str(pki["key"]), *extra]


def client(pki, cert=None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    if cert is not None:
        context.load_cert_chain(str(cert))
    return httpx.Client(verify=context, timeout=HTTP_TIMEOUT)


def https_url(server, path: str) -> str:
    return f"https://127.0.0.1:{server.port}{path}"


def test_https_scope_alpn_and_log_line(pki):
    with serve(*tls_args(pki)) as server:
        server.wait_for(rf"fastasgi running on https://127\.0\.0\.1:{server.port} ")
        with client(pki) as http:
            scope = http.get(https_url(server, "/scope")).json()
        assert scope["scheme"] == "https" and scope["type"] == "http"

        # ALPN (RFC 7301): a client offering only http/1.1 gets it (one offering h2 gets
        # HTTP/2: tests/e2e/test_h2.py; with --no-http2, http/1.1: below).
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.set_alpn_protocols(["http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == "http/1.1"
            tls.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n") and answer.endswith(b"ok")

        # Plain HTTP on the TLS port is not served.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{server.port}/", timeout=HTTP_TIMEOUT)


def test_no_http2_offers_only_http11(pki):
    with serve(*tls_args(pki, "--no-http2")) as server:
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.set_alpn_protocols(["h2", "http/1.1"])
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert tls.selected_alpn_protocol() == "http/1.1"


def test_wss_scope(pki):
    from websockets.sync.client import connect as ws_connect

    with serve(*tls_args(pki)) as server:
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        with ws_connect(f"wss://127.0.0.1:{server.port}/scope", ssl=context, open_timeout=HTTP_TIMEOUT) as ws:
            scope = json.loads(ws.recv(timeout=HTTP_TIMEOUT))
    assert (scope["type"], scope["scheme"]) == ("websocket", "wss")


def test_encrypted_key_with_password(pki):
    args = ["--ssl-certfile", str(pki["cert"]), "--ssl-keyfile", str(pki["key_encrypted"])]
    with serve(*args, "--ssl-keyfile-password", "s3cret") as server, client(pki) as http:
        assert http.get(https_url(server, "/")).text == "ok"
    result = run_cli(APP, "--port", "0", *args, "--ssl-keyfile-password", "wrong")
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(
        "ERROR:    Invalid value for '--ssl-certfile' / '--ssl-keyfile' / '--ssl-keyfile-password': "
        "cannot load the certificate and its key ("
    ), line


def test_client_certificate_required(pki):
    with serve(*tls_args(pki, "--ssl-cert-reqs", "2", "--ssl-ca-certs", str(pki["ca"]))) as server:
        with client(pki, cert=pki["client"]) as http:
            assert http.get(https_url(server, "/")).text == "ok"
        for cert in (None, pki["stranger"]):  # no certificate; one from another CA
            with client(pki, cert=cert) as http, pytest.raises(httpx.HTTPError):
                http.get(https_url(server, "/"))
        # The server goes on serving after refusing those handshakes.
        with client(pki, cert=pki["client"]) as http:
            assert http.get(https_url(server, "/")).text == "ok"


def test_client_certificate_optional(pki):
    with serve(*tls_args(pki, "--ssl-cert-reqs", "1", "--ssl-ca-certs", str(pki["ca"]))) as server:
        for cert in (None, pki["client"]):
            with client(pki, cert=cert) as http:
                assert http.get(https_url(server, "/")).text == "ok"


def test_ciphers(pki):
    # TLS 1.2 so that the cipher list applies (TLS 1.3 suites are not set by set_ciphers).
    with serve(*tls_args(pki, "--ssl-ciphers", "ECDHE+AESGCM")) as server:
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        context.maximum_version = ssl.TLSVersion.TLSv1_2
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            assert "ECDHE" in tls.cipher()[0] and "GCM" in tls.cipher()[0]
        context.set_ciphers("ECDHE+CHACHA20")
        with (
            socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as raw,
            pytest.raises(ssl.SSLError),
        ):
            context.wrap_socket(raw, server_hostname="localhost")


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--ssl-certfile", "/nonexistent/cert.pem"],
         "ERROR:    Invalid value for '--ssl-certfile': '/nonexistent/cert.pem' is not a file."),
        (["--ssl-keyfile", "KEY"], "ERROR:    --ssl-keyfile needs --ssl-certfile: TLS is on only with a certificate."),
        (["--ssl-cert-reqs", "2", "--ssl-ciphers", "HIGH"],
         "ERROR:    --ssl-ciphers, --ssl-cert-reqs need --ssl-certfile: TLS is on only with a certificate."),
        (["CERT", "--ssl-ciphers", "NO-SUCH-CIPHER"],
         "ERROR:    Invalid value for '--ssl-ciphers': 'NO-SUCH-CIPHER' is not a cipher list OpenSSL accepts."),
        (["CERT", "--ssl-version", "99"], "ERROR:    Invalid value for '--ssl-version': 99 cannot be used ("),
        (["--ssl-certfile", "KEY"], "ERROR:    Invalid value for '--ssl-certfile' / '--ssl-keyfile': cannot load"),
    ],
    ids=["missing-cert", "key-without-cert", "settings-without-cert", "bad-ciphers", "bad-version", "not-a-cert"],
)  # fmt: skip
def test_bad_tls_settings_are_one_line(pki, args, expected):
    args = [str(pki["key"]) if arg == "KEY" else arg for arg in args]
    if args[0] == "CERT":
        args = tls_args(pki) + args[1:]
    result = run_cli(APP, "--port", "0", *args)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), result.stderr
