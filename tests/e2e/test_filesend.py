"""The Path Send extension served by the real server to real clients: Starlette's FileResponse
(tests/apps/core_files.py) over HTTP/1.1 on both loops and over h2c, Range requests and HEAD,
and the server's memory while 100 slow clients download a 64 MiB file."""

from __future__ import annotations

import os
import select
import socket
import time

import h2.config
import h2.connection
import h2.events
import h2.settings
import httpx
import pytest

APP = "core_files:app"
BIG = 64 * 1024 * 1024
CLIENTS = 100


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    small = d / "small.bin"
    small.write_bytes(os.urandom(700_001))
    big = d / "big.bin"
    block = os.urandom(1024 * 1024)
    with open(big, "wb") as f:
        for _ in range(BIG // len(block)):
            f.write(block)
    return {"small": str(small), "small_data": small.read_bytes(), "big": str(big)}


def spy(client: httpx.Client) -> dict:
    return client.get("/spy").json()


@pytest.fixture(params=["asyncio", "uvloop", "h2c"])
def via(request, serve):
    """A client of a server: HTTP/1.1 on each loop, and h2c (prior knowledge) on the default."""
    loop = "asyncio" if request.param == "h2c" else request.param
    srv = serve(APP, "--loop", loop)
    http2 = request.param == "h2c"
    with httpx.Client(base_url=srv.url, timeout=20, http1=not http2, http2=http2) as client:
        yield request.param, srv, client


def test_file_response_uses_pathsend(via, files):
    kind, srv, client = via
    before = spy(client)
    r = client.get("/file", params={"path": files["small"]})
    assert r.status_code == 200
    assert r.http_version == ("HTTP/2" if kind == "h2c" else "HTTP/1.1")
    assert r.content == files["small_data"]
    assert r.headers["content-length"] == str(len(files["small_data"]))
    after = spy(client)
    assert after["sent"][-1] == ["http.response.start", "http.response.pathsend"]
    assert "http.response.pathsend" in after["extensions"][-1]
    assert "http.response.zerocopysend" in after["extensions"][-1]
    grew = {k: after["stats"][k] - before["stats"][k] for k in after["stats"]}
    assert grew["responses"] == 1
    if kind == "asyncio":
        # a plain TCP socket of asyncio's loop: the kernel copies the file (os.sendfile)
        assert grew["sendfile_bytes"] > 0
        assert grew["sendfile_bytes"] + grew["pread_bytes"] == len(files["small_data"])
    else:
        # uvloop's transport and HTTP/2's frames take the bytes in bounded pieces
        assert grew["sendfile_bytes"] == 0 and grew["pread_bytes"] == len(files["small_data"])


def test_head_has_the_length_and_no_body(via, files):
    kind, srv, client = via
    r = client.head("/file", params={"path": files["small"]})
    assert r.status_code == 200 and r.content == b""
    assert r.headers["content-length"] == str(len(files["small_data"]))
    # then the connection serves the next request whole
    assert client.get("/file", params={"path": files["small"]}).content == files["small_data"]


def test_ranges(via, files):
    kind, srv, client = via
    data = files["small_data"]
    r = client.get("/file", params={"path": files["small"]}, headers={"range": "bytes=100-1099"})
    assert r.status_code == 206 and r.content == data[100:1100]
    assert r.headers["content-range"] == f"bytes 100-1099/{len(data)}"
    r = client.get("/file", params={"path": files["small"]}, headers={"range": "bytes=0-9,500000-500009"})
    assert r.status_code == 206
    assert r.headers["content-type"].startswith("multipart/byteranges; boundary=")
    assert data[0:10] in r.content and data[500000:500010] in r.content
    assert r.headers["content-length"] == str(len(r.content))
    # Starlette sends ranges as body messages: the server serves both kinds on one connection
    assert spy(client)["sent"][-2][-1] == "http.response.body"
    assert client.get("/file", params={"path": files["small"]}).content == data


def test_missing_file_is_a_500(via, files):
    kind, srv, client = via
    r = client.get("/file", params={"path": files["small"] + ".nope"})
    assert r.status_code == 500


# --- memory with 100 slow clients --------------------------------------------------------------


def _h1_clients(port: int, path: str) -> list[socket.socket]:
    socks = []
    for _ in range(CLIENTS):
        s = socket.socket()
        # a small receive buffer: the client, not the kernel, holds the transfer back
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /file?path={path} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        s.setblocking(False)
        socks.append(s)
    return socks


class _H2Client:
    """One h2c connection that gives the server all the window it could want."""

    def __init__(self, port: int, path: str) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        self.sock.connect(("127.0.0.1", port))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        self.conn.increment_flow_control_window(2**31 - 1 - 65535)
        sid = self.conn.get_next_available_stream_id()
        fields = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", f"/file?path={path}")]
        self.conn.send_headers(sid, fields, end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        self.sock.setblocking(False)
        self.got = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def take(self, data: bytes) -> None:
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.got += len(event.data)
        out = self.conn.data_to_send()
        if out:
            self.sock.send(out)


@pytest.mark.budget(90)
@pytest.mark.parametrize("kind", ["asyncio", "uvloop", "h2c"])
def test_memory_stays_flat_with_100_slow_clients(serve, files, kind):
    srv = serve(APP, "--loop", "uvloop" if kind == "uvloop" else "asyncio", fresh=True)
    with httpx.Client(base_url=srv.url, timeout=20) as client:
        # warm up (imports, the first file response), then the baseline
        assert client.get("/file", params={"path": files["small"]}).status_code == 200
    base = srv.rss_kib()
    h2c = kind == "h2c"
    clients = [_H2Client(srv.port, files["big"]) for _ in range(CLIENTS)] if h2c else _h1_clients(srv.port, files["big"])
    got = [0] * CLIENTS
    peak = base
    try:
        deadline = time.monotonic() + 6.0
        while time.monotonic() < deadline:
            # each client reads at most 16 KiB every 50 ms: ~320 KiB/s, 2 MiB of 64 in the test
            ready, _, _ = select.select(clients, [], [], 0.05)
            for c in ready:
                i = clients.index(c)
                sock = c.sock if h2c else c
                try:
                    data = sock.recv(16384)
                except BlockingIOError:
                    continue
                if h2c:
                    c.take(data)
                else:
                    got[i] += len(data)
            time.sleep(0.05)
            peak = max(peak, srv.rss_kib())
        if h2c:
            got = [c.got for c in clients]
    finally:
        for c in clients:
            (c.sock if h2c else c).close()
    # every client is mid-transfer: the server is holding 100 downloads of the file open
    assert min(got) > 0 and max(got) < BIG // 4, (min(got), max(got))
    growth_mib = (peak - base) / 1024
    print(f"{kind}: RSS base {base / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, growth {growth_mib:.1f} MiB")
    # the whole file buffered for even one client would be 64 MiB
    assert growth_mib < 64, growth_mib
