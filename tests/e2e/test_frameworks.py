"""Real frameworks served by the real server: FastAPI, Starlette, Django (ASGI) and Quart.

Each app (tests/apps/core_<framework>.py) has /hello, /json (POST), /stream, /error; a path
it does not know answers 404.
"""

import time
from types import SimpleNamespace

import httpx
import pytest

from support.client import RawConn

FRAMEWORKS = {
    "fastapi": "core_fastapi:app",
    "starlette": "core_starlette:app",
    "django": "core_django:app",
    "quart": "core_quart:app",
}


@pytest.fixture(params=list(FRAMEWORKS), scope="module")
def fw(request, serve):
    srv = serve(FRAMEWORKS[request.param])
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        yield SimpleNamespace(name=request.param, srv=srv, client=client)


def test_get_json(fw):
    r = fw.client.get("/hello")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    assert r.json() == {"hello": fw.name}
    assert r.headers["server"] == "fastasgi"


def test_post_json(fw):
    payload = {"name": "widget", "tags": ["a", "é"], "price": 2.5}
    r = fw.client.post("/json", json=payload)
    assert r.status_code == 200, r.text
    assert r.json()["got"] == payload


def test_streaming_response(fw):
    with fw.client.stream("GET", "/stream") as r:
        assert r.status_code == 200
        assert r.headers.get("transfer-encoding") == "chunked"
        pieces = list(r.iter_text())
    assert "".join(pieces) == "".join(f"part{i}\n" for i in range(5))


def test_not_found(fw):
    r = fw.client.get("/no/such/path")
    assert r.status_code == 404


def test_error_is_500_and_server_keeps_serving(fw):
    mark = fw.srv.log_mark()
    r = fw.client.get("/error")
    assert r.status_code == 500
    assert f"{fw.name}-boom" not in r.text, "traceback leaked into the response"
    text = fw.srv.wait_log(mark, f"{fw.name}-boom")
    assert f"{fw.name}-boom" in text, "the error was not logged"
    assert fw.client.get("/hello").status_code == 200
    assert fw.srv.alive()


def test_keep_alive_many_requests(fw):
    with RawConn(fw.srv.port) as c:
        for _ in range(20):
            resp = c.request(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
            assert resp.status == 200 and resp.json() == {"hello": fw.name}


def test_concurrent_clients(fw):
    conns = [RawConn(fw.srv.port) for _ in range(10)]
    try:
        for c in conns:
            c.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        for c in conns:
            resp = c.read_response()
            assert resp.body == "".join(f"part{i}\n" for i in range(5)).encode()
    finally:
        for c in conns:
            c.close()


# --------------------------------------------------------------------------- FastAPI extras


@pytest.fixture(scope="module")
def fastapi_client(serve):
    srv = serve(FRAMEWORKS["fastapi"])
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        yield client


def test_fastapi_sync_endpoint(fastapi_client):
    r = fastapi_client.get("/sync", params={"q": 7})
    assert r.json() == {"q": 7, "in_worker_thread": True}


def test_fastapi_validation_error(fastapi_client):
    r = fastapi_client.post("/json", json={"name": "x"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "price"]


def test_fastapi_dependency_with_yield(fastapi_client):
    before = len(fastapi_client.get("/events").json())
    r = fastapi_client.get("/dep")
    assert r.json() == {"dep": "dep-value"}
    deadline = time.monotonic() + 3
    events = fastapi_client.get("/events").json()[before:]
    while "exit" not in events and time.monotonic() < deadline:
        time.sleep(0.02)
        events = fastapi_client.get("/events").json()[before:]
    assert events == ["enter", "handler", "exit"]


# --------------------------------------------------------------------------- Starlette extras


@pytest.fixture(scope="module")
def starlette_client(serve):
    srv = serve(FRAMEWORKS["starlette"])
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        yield client


def test_starlette_background_task(starlette_client):
    r = starlette_client.get("/bg", params={"name": "task-1"})
    assert r.status_code == 200 and r.text == "scheduled"
    deadline = time.monotonic() + 3
    while "task-1" not in starlette_client.get("/tasks").json() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "task-1" in starlette_client.get("/tasks").json()


def test_starlette_streaming_response_chunks_arrive_incrementally(serve):
    srv = serve(FRAMEWORKS["starlette"])
    with RawConn(srv.port) as c:
        resp = c.request(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
    assert resp.header("transfer-encoding") == b"chunked"
    assert len(resp.chunks) >= 5  # one chunk per yielded part, not one buffered blob
    assert resp.body == "".join(f"part{i}\n" for i in range(5)).encode()


# --------------------------------------------------------------------------- Django extras


def test_django_sync_view_and_head(serve):
    srv = serve(FRAMEWORKS["django"])
    with httpx.Client(base_url=srv.url, timeout=10) as client:
        r = client.get("/sync", params={"q": "x y"})
        assert r.json() == {"sync": True, "q": "x y"}
    # Django sends a body for HEAD; the server must not put it on the wire
    with RawConn(srv.port) as c:
        head = c.request(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n", method="HEAD")
        assert head.status == 200 and head.body == b""
        assert c.idle_for(0.1) == b""
        resp = c.request(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        assert resp.json() == {"hello": "django"}
