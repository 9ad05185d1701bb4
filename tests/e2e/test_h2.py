"""HTTP/2 against the real server with real clients: Debian's curl (h2c with prior knowledge,
h2 over TLS by ALPN), httpx with http2=True, h2load for load; the real frameworks over h2c
and h2; bodies streamed both ways; the access log, /metrics and the graceful shutdown on
HTTP/2. The frame-level conformance suite is tests/e2e/test_h2_conformance.py.
"""

from __future__ import annotations

import re
import shutil
import signal
import ssl
import subprocess
import threading
import time

import httpx
import pytest

from support.server import HTTP_TIMEOUT, ServerProcess

trustme = pytest.importorskip("trustme")
pytest.importorskip("h2")

CURL = shutil.which("curl")
H2LOAD = shutil.which("h2load")
FRAMEWORKS = {
    "fastapi": "core_fastapi:app",
    "starlette": "core_starlette:app",
    "django": "core_django:app",
    "quart": "core_quart:app",
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    base = tmp_path_factory.mktemp("h2pki")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    files = {"ca": base / "ca.pem", "cert": base / "cert.pem", "key": base / "key.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    for index, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(str(files["cert"]), append=index > 0)
    return files


def tls(pki) -> tuple[str, ...]:
    return ("--ssl-certfile", str(pki["cert"]), "--ssl-keyfile", str(pki["key"]))


def h2_client(server: ServerProcess, pki, secure: bool) -> httpx.Client:
    if secure:
        context = ssl.create_default_context(cafile=str(pki["ca"]))
        return httpx.Client(
            base_url=f"https://127.0.0.1:{server.port}", http2=True, verify=context, timeout=10
        )
    # http:// with HTTP/1.1 off: httpx speaks h2c with prior knowledge
    return httpx.Client(base_url=f"http://127.0.0.1:{server.port}", http1=False, http2=True, timeout=10)


@pytest.fixture(params=["h2c", "h2"], scope="module")
def transport(request):
    return request.param


# -- curl ------------------------------------------------------------------------------------


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_prior_knowledge_and_alpn(serve, pki):
    plain = serve("h2_app:app")
    out = subprocess.run(
        [CURL, "-sS", "--http2-prior-knowledge", "-o", "-", "-w", "\n%{http_version}", f"{plain.url}/"],
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout
    assert out == b"ok\n2"
    secure = serve("h2_app:app", *tls(pki))
    out = subprocess.run(
        [
            CURL,
            "-sS",
            "--http2",
            "--cacert",
            str(pki["ca"]),
            "-o",
            "-",
            "-w",
            "\n%{http_version}",
            f"https://127.0.0.1:{secure.port}/echo",
            "--data-binary",
            "hello over h2",
        ],
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout
    assert out == b"hello over h2\n2"
    # A client that offers only HTTP/1.1 gets it, on the same port.
    out = subprocess.run(
        [
            CURL,
            "-sS",
            "--http1.1",
            "--cacert",
            str(pki["ca"]),
            "-o",
            "-",
            "-w",
            "\n%{http_version}",
            f"https://127.0.0.1:{secure.port}/",
        ],
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout
    assert out == b"ok\n1.1"


# -- httpx, both transports ------------------------------------------------------------------


def test_httpx_scope_and_bodies_both_ways(serve, pki, transport):
    server = serve("h2_app:app", *tls(pki)) if transport == "h2" else serve("h2_app:app")
    with h2_client(server, pki, transport == "h2") as client:
        r = client.get("/scope", headers={"x-test": "1", "cookie": "a=1; b=2"})
        assert r.http_version == "HTTP/2" and r.status_code == 200
        scope = r.json()
        assert scope["http_version"] == "2"
        headers = dict(scope["headers"])
        assert headers["host"] == f"127.0.0.1:{server.port}" and headers["x-test"] == "1"
        # a large body up (more than the stream window: flow control in action) and down
        body = bytes(range(256)) * 8192  # 2 MiB
        r = client.post("/echo", content=body)
        assert r.status_code == 200 and r.content == body
        r = client.get("/stream", params={"size": str(3 * 1024 * 1024 + 7), "chunk": "50000"})
        assert r.status_code == 200 and len(r.content) == 3 * 1024 * 1024 + 7
        # many streams at once on one connection
        results = []

        def get(i: int) -> None:
            results.append(client.get(f"/scope?i={i}").status_code)

        threads = [threading.Thread(target=get, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
        assert results == [200] * 20


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_trailers_reach_an_http2_client(serve):
    server = serve("h2_app:app")
    out = subprocess.run(
        [CURL, "-sS", "--http2-prior-knowledge", "-D", "-", "-o", "/dev/null", f"{server.url}/trailers"],
        capture_output=True,
        timeout=20,
        check=True,
    ).stdout.decode()
    assert out.startswith("HTTP/2 200")
    assert "x-check:" in out.lower()  # curl prints trailer fields after the body's headers


# -- the frameworks over h2c and h2 ------------------------------------------------------------


@pytest.mark.parametrize("framework", list(FRAMEWORKS))
def test_frameworks(serve, pki, transport, framework):
    args = tls(pki) if transport == "h2" else ()
    server = serve(FRAMEWORKS[framework], *args)
    with h2_client(server, pki, transport == "h2") as client:
        r = client.get("/hello")
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200 and r.json() == {"hello": framework}
        payload = {"name": "widget", "tags": ["a", "é"], "price": 2.5}
        r = client.post("/json", json=payload)
        assert r.status_code == 200 and r.json()["got"] == payload
        with client.stream("GET", "/stream") as r:
            assert "".join(r.iter_text()) == "".join(f"part{i}\n" for i in range(5))
        assert client.get("/no/such/path").status_code == 404
        assert client.get("/error").status_code == 500
        assert client.get("/hello").status_code == 200  # and serves on


# -- operations on HTTP/2 --------------------------------------------------------------------


def test_access_log_and_metrics(serve):
    server = serve("h2_app:app", "--admin-bind", "127.0.0.1:0", fresh=True)
    admin = int(server.wait_for(r"Admin listener \(GET /metrics\) on http://127\.0\.0\.1:(\d+)/").group(1))
    with httpx.Client(base_url=server.url, http1=False, http2=True, timeout=10) as client:
        for _ in range(3):
            assert client.get("/").status_code == 200
    server.wait_for(r'"GET / HTTP/2" 200', timeout=5, stream="stdout")
    body = httpx.get(f"http://127.0.0.1:{admin}/metrics", timeout=5).text
    assert re.search(r'fastasgi_requests_total\{method="GET",code="200",protocol="2"\} 3', body), body
    assert 'fastasgi_connections_open{kind="http2"}' in body


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_graceful_shutdown_finishes_streams_in_flight(serve):
    """SIGTERM: GOAWAY goes out, the stream in flight is answered, then the process exits.
    (curl, not httpx: httpcore fails every open stream when a GOAWAY arrives, even those
    the GOAWAY says will be processed.)"""
    server = serve("h2_app:app", fresh=True)
    curl = subprocess.Popen(
        [CURL, "-sS", "--http2-prior-knowledge", "-w", "\n%{http_code}", f"{server.url}/hold?ms=1500"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)  # the stream is open, its app holding the answer
    server.send_signal(signal.SIGTERM)
    out, err = curl.communicate(timeout=15)
    assert out == b"held\n200", err
    assert server.wait_exit(10) == 0


@pytest.mark.skipif(H2LOAD is None, reason="h2load is not installed")
def test_h2load_many_streams(serve):
    server = serve("h2_app:app", "--no-access-log")
    out = subprocess.run(
        [H2LOAD, "-n", "5000", "-c", "8", "-m", "16", f"{server.url}/"],
        capture_output=True,
        timeout=60,
        check=True,
        text=True,
    ).stdout
    assert "5000 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 5000 2xx" in out, out


def test_no_http2_flag(serve):
    server = serve("h2_app:app", "--no-http2")
    with pytest.raises(httpx.HTTPError), httpx.Client(http1=False, http2=True, timeout=3) as client:
        client.get(f"{server.url}/")
    assert httpx.get(f"{server.url}/", timeout=HTTP_TIMEOUT).text == "ok"
