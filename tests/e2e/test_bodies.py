"""Request and response bodies: streaming with more_body, large bodies both ways (httpx),
slow peers, and flow control in both directions."""

import hashlib
import select
import socket
import time

import httpx
import pytest

from support.client import RawConn, registry, wait_registry

H = b"Host: t\r\n"
MB = 1024 * 1024


def pattern(size: int) -> bytes:
    """Same bytes as core_app.pattern()."""
    block = bytes(range(256)) * 256
    reps, rest = divmod(size, len(block))
    return block * reps + block[:rest]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_messages(messages, total):
    """more_body True on every message but the last; the bodies add up."""
    assert messages, "no http.request message"
    assert all(m[1] is True for m in messages[:-1]), messages
    assert messages[-1][1] is False, messages
    assert sum(m[0] for m in messages) == total


# --------------------------------------------------------------------------- more_body streaming


def test_no_body_is_one_empty_message(core):
    with RawConn(core.port) as c:
        result = c.request(b"GET /digest HTTP/1.1\r\n" + H + b"\r\n").json()
    assert result["messages"] == [[0, False]]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_body_streamed_in_several_messages(core, framing):
    pieces = [b"a" * 1000, b"b" * 2000, b"c" * 3000, b"d" * 10]
    total = sum(map(len, pieces))
    with RawConn(core.port) as c:
        if framing == "content-length":
            c.send(b"POST /digest HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % total)
            for p in pieces:
                time.sleep(0.05)
                c.send(p)
        else:
            c.send(b"POST /digest HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
            for p in pieces:
                time.sleep(0.05)
                c.send(b"%x\r\n%s\r\n" % (len(p), p))
            time.sleep(0.05)
            c.send(b"0\r\n\r\n")
        result = c.read_response().json()
    assert result["len"] == total and result["sha256"] == sha(b"".join(pieces))
    check_messages(result["messages"], total)
    assert len(result["messages"]) >= len(pieces), "body was not streamed as it arrived"


def test_echo_stream_interleaves(core):
    """The app answers each body piece before the next is sent (full duplex)."""
    with RawConn(core.port) as c:
        c.send(b"POST /echo-stream HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n")
        c.send(b"5\r\nfirst\r\n")
        head = c.read_until(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"transfer-encoding: chunked" in head
        assert c.read_until(b"first\r\n").endswith(b"5\r\nfirst\r\n")
        c.send(b"6\r\nsecond\r\n")
        assert c.read_until(b"second\r\n").endswith(b"6\r\nsecond\r\n")
        c.send(b"0\r\n\r\n")
        assert c.read_until(b"0\r\n\r\n").endswith(b"0\r\n\r\n")


# --------------------------------------------------------------------------- large bodies (httpx)


@pytest.fixture(scope="module")
def client(core):
    with httpx.Client(base_url=core.url, timeout=15) as c:
        yield c


def test_large_upload_content_length(client):
    data = pattern(4 * MB + 123)
    r = client.post("/digest", content=data)
    assert r.status_code == 200
    assert r.json()["len"] == len(data) and r.json()["sha256"] == sha(data)


def test_large_upload_chunked(client):
    data = pattern(3 * MB + 7)

    def gen():
        for i in range(0, len(data), 100_000):
            yield data[i : i + 100_000]

    r = client.post("/digest", content=gen())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.json()["len"] == len(data) and r.json()["sha256"] == sha(data)


@pytest.mark.parametrize("cl", [False, True], ids=["chunked", "content-length"])
def test_large_download(client, cl):
    size = 5 * MB + 11
    r = client.get("/download", params={"size": size, **({"cl": 1} if cl else {})})
    assert r.status_code == 200
    if cl:
        assert r.headers["content-length"] == str(size)
    else:
        assert r.headers["transfer-encoding"] == "chunked"
    assert len(r.content) == size and r.content == pattern(size)


def test_large_echo_round_trip(client):
    data = pattern(3 * MB)[::-1]
    r = client.post("/echo", content=data)
    assert r.headers["content-length"] == str(len(data))
    assert r.content == data


def test_large_download_http10(core):
    size = 3 * MB + 5
    with RawConn(core.port, timeout=10) as c:
        c.send(b"GET /download?size=%d HTTP/1.0\r\n\r\n" % size)
        resp = c.read_response()
    assert resp.close_delimited and resp.header("transfer-encoding") is None
    assert resp.body == pattern(size)


# --------------------------------------------------------------------------- slow peers


def test_slow_uploader(core):
    data = pattern(1 * MB)
    with RawConn(core.port, timeout=10) as c:
        c.send(b"POST /digest HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n\r\n" % len(data))
        for i in range(0, len(data), 64 * 1024):
            c.send(data[i : i + 64 * 1024])
            time.sleep(0.02)
        result = c.read_response(timeout=10).json()
    assert result["len"] == len(data) and result["sha256"] == sha(data)


def test_slow_reader_gets_everything(core):
    size = 4 * MB
    with RawConn(core.port, timeout=10) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        c.send(b"GET /download?size=%d HTTP/1.1\r\n" % size + H + b"\r\n")
        head = c.read_until(b"\r\n\r\n")
        assert b"transfer-encoding: chunked" in head
        c.buf = bytearray(c.buf)
        body = bytearray()
        deadline = time.monotonic() + 20
        # read slowly: 64 KiB every 5 ms
        while not body.endswith(b"0\r\n\r\n") and time.monotonic() < deadline:
            time.sleep(0.005)
            c.fill(len(c.buf) + 1, timeout=5)
            body += c.buf
            c.buf.clear()
    decoded = bytearray()
    view = bytes(body)
    pos = 0
    while True:
        end = view.index(b"\r\n", pos)
        n = int(view[pos:end], 16)
        if n == 0:
            break
        decoded += view[end + 2 : end + 2 + n]
        pos = end + 2 + n + 2
    assert len(decoded) == size and decoded == pattern(size)


# --------------------------------------------------------------------------- flow control


def test_write_flow_control_app_send_waits(core, token):
    """A client that does not read: the app's send() must wait instead of buffering the
    whole 64 MiB response in the server."""
    size = 64 * MB
    with RawConn(core.port, timeout=10) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
        rss0 = core.rss_kib()
        c.send(b"GET /stream-big/%s?size=%d HTTP/1.1\r\n" % (token.encode(), size) + H + b"\r\n")
        time.sleep(0.8)
        progress = wait_registry(core.port, token, lambda e: e)[0]
        rss1 = core.rss_kib()
        assert progress["sent"] < 24 * MB, (
            f"app pushed {progress['sent']} bytes to a client that reads nothing"
        )
        assert not progress["done"]
        assert rss1 - rss0 < 32 * 1024, f"server RSS grew by {(rss1 - rss0) // 1024} MiB"
        # now read it all: nothing lost
        c.read_until(b"\r\n\r\n")
        got = 0
        tail = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            c.fill(1, timeout=5)
            chunk = bytes(c.buf)
            c.buf.clear()
            got += len(chunk)
            tail = (tail + chunk)[-5:]
            if tail == b"0\r\n\r\n":
                break
    assert tail == b"0\r\n\r\n"
    # 1024 chunks of "10000\r\n" + 64 KiB + "\r\n", then the last chunk
    assert got == (size // 65536) * (65536 + 9) + 5
    assert registry(core.port, token)[0]["done"] is True


def test_read_flow_control_pauses_reading(core, token):
    """The app does not read its body for 1.5 s: the server must stop reading from the
    socket instead of buffering the upload (the client's sends then block)."""
    total = 48 * MB
    chunk = memoryview(b"u" * MB)
    with RawConn(core.port, timeout=10) as c:
        rss0 = core.rss_kib()
        c.send(
            b"POST /slow-consumer/%s?t=1.5 HTTP/1.1\r\n" % token.encode()
            + H
            + b"Content-Length: %d\r\n\r\n" % total
        )
        c.sock.setblocking(False)
        sent = 0
        stop = time.monotonic() + 0.8
        while sent < total and time.monotonic() < stop:
            _, w, _ = select.select([], [c.sock], [], 0.05)
            if not w:
                continue
            try:
                sent += c.sock.send(chunk[: min(len(chunk), total - sent)])
            except BlockingIOError:
                pass
        rss1 = core.rss_kib()
        assert sent < 24 * MB, f"server accepted {sent} bytes the app never asked for"
        assert rss1 - rss0 < 32 * 1024, f"server RSS grew by {(rss1 - rss0) // 1024} MiB"
        c.sock.settimeout(10)
        while sent < total:
            sent += c.sock.send(chunk[: min(len(chunk), total - sent)])
        resp = c.read_response(timeout=10)
    assert resp.body == str(total).encode()


def test_pipelined_flood_is_not_buffered(core, token):
    """300 pipelined requests for 256 KiB each from a client that does not read: the server
    answers them in order as the client reads, not all at once into memory."""
    n = 300
    reqs = b"".join(b"GET /big/%s/%d HTTP/1.1\r\nHost: t\r\n\r\n" % (token.encode(), i) for i in range(n))
    with RawConn(core.port, timeout=10) as c:
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 128 * 1024)
        rss0 = core.rss_kib()
        c.send(reqs)
        time.sleep(0.8)
        processed = len(registry(core.port, token))
        rss1 = core.rss_kib()
        assert processed < n // 2, f"{processed} of {n} pipelined requests run while the client read nothing"
        assert rss1 - rss0 < 32 * 1024, f"server RSS grew by {(rss1 - rss0) // 1024} MiB"
        for _ in range(n):
            resp = c.read_response(timeout=10)
            assert resp.status == 200 and len(resp.body) == 256 * 1024 and resp.body == b"b" * (256 * 1024)
    assert len(registry(core.port, token)) == n
