"""The ASGI Path Send and Zero Copy Send extensions in-process, over HTTP/1.1 and HTTP/2:
the bytes on the wire are the file's, Content-Length is added when the app declared none,
HEAD sends none, the app's mistakes raise before anything is on the wire (a 500), the file
is read piece by piece under write flow control and closed on every way out.

The fake transport is not a socket, so HTTP/1.1 takes the pread path here; the os.sendfile
path runs in tests/e2e/test_filesend.py."""

from __future__ import annotations

import os

import h2.settings
import pytest

from fastasgi._http import _core
from support.inproc import advance, connect, feed, lose, make_ctx, run_until_idle, set_writing
from support.wire_cases import error_response
from test_h2_inproc import Client

PIECE = 262144  # the HTTP/1.1 pread piece of filesend.pxi
GET = b"GET /f HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def data() -> bytes:
    # not a multiple of any piece size, with no repeating pattern a misplaced piece would hide
    return os.urandom(3 * PIECE + 12345)


@pytest.fixture
def path(tmp_path, data) -> str:
    p = tmp_path / "file.bin"
    p.write_bytes(data)
    return str(p)


def open_fds_on(path: str) -> int:
    """How many descriptors of this process are open on `path`."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == path:
                n += 1
        except OSError:
            pass
    return n


def file_app(path, headers=(), status=200, seen=None, message=None):
    async def app(scope, receive, send):
        if seen is not None:
            seen.append(scope)
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        try:
            await send(message or {"type": "http.response.pathsend", "path": path})
        except BaseException as exc:
            if seen is not None:
                seen.append(exc)
            raise
        if seen is not None:
            seen.append("sent")

    return app


def split_response(raw: bytes) -> tuple[bytes, dict, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    fields: dict = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        fields.setdefault(name.lower(), []).append(value)
    return lines[0], fields, body


# --- HTTP/1.1 ---------------------------------------------------------------------------------


def test_h1_scope_offers_both_extensions_one_dict_per_connection(loop, path):
    seen: list = []
    ctx = make_ctx(file_app(path, seen=seen), loop)
    proto, transport = connect(ctx)
    feed(proto, GET + GET)
    run_until_idle(loop)
    scopes = [s for s in seen if isinstance(s, dict)]
    assert len(scopes) == 2
    assert scopes[0]["extensions"] == {
        "http.response.early_hint": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }
    assert scopes[0]["extensions"] is scopes[1]["extensions"]


def test_h1_pathsend_body_is_the_file_and_content_length_is_added(loop, path, data):
    seen: list = []
    before = _core.file_send_stats()
    ctx = make_ctx(file_app(path, [(b"content-type", b"application/octet-stream")], seen=seen), loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    status, fields, body = split_response(transport.output())
    assert status == b"HTTP/1.1 200 OK"
    assert fields[b"content-length"] == [str(len(data)).encode()]
    assert b"transfer-encoding" not in fields
    assert body == data
    assert seen[-1] == "sent" and not transport.closed
    assert open_fds_on(path) == 0
    after = _core.file_send_stats()
    assert after["responses"] == before["responses"] + 1
    assert after["pread_bytes"] - before["pread_bytes"] == len(data)
    # the connection carries the next request
    transport.take()
    feed(proto, GET)
    assert split_response(transport.output())[2] == data


def test_h1_declared_content_length_is_kept_once(loop, path, data):
    ctx = make_ctx(file_app(path, [(b"content-length", str(len(data)).encode())]), loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    _, fields, body = split_response(transport.output())
    assert fields[b"content-length"] == [str(len(data)).encode()] and body == data


def test_h1_head_sends_the_length_and_no_body(loop, path, data):
    ctx = make_ctx(file_app(path), loop)
    proto, transport = connect(ctx)
    feed(proto, b"HEAD /f HTTP/1.1\r\nHost: t\r\n\r\n" + GET)
    raw = transport.output()
    first, _, rest = raw.partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(data) in first
    # what follows the HEAD's head is the GET's response, whole
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n") and split_response(rest)[2] == data
    assert open_fds_on(path) == 0


def test_h1_empty_file(loop, tmp_path):
    p = tmp_path / "empty"
    p.write_bytes(b"")
    ctx = make_ctx(file_app(str(p)), loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    _, fields, body = split_response(transport.output())
    assert fields[b"content-length"] == [b"0"] and body == b""


@pytest.mark.parametrize("case", ["relative", "missing", "directory", "length", "fifo", "before-start"])
def test_h1_errors_raise_in_the_app_before_the_wire_and_give_500(loop, tmp_path, path, data, case):
    headers = []
    target = path
    if case == "relative":
        target = os.path.relpath(path)
    elif case == "missing":
        target = str(tmp_path / "nope")
    elif case == "directory":
        target = str(tmp_path)
    elif case == "length":
        headers = [(b"content-length", str(len(data) - 1).encode())]
    elif case == "fifo":
        target = str(tmp_path / "fifo")
        os.mkfifo(target)
    seen: list = []

    async def app(scope, receive, send):
        if case != "before-start":
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            await send({"type": "http.response.pathsend", "path": target})
        except Exception as exc:
            seen.append(exc)
            raise

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    assert len(seen) == 1
    expected = FileNotFoundError if case == "missing" else RuntimeError
    assert isinstance(seen[0], expected), seen
    assert transport.output() == error_response(500)
    assert open_fds_on(path) == 0 and open_fds_on(target) == 0


def test_h1_reads_only_as_the_transport_takes_it(loop, path, data):
    """While the transport is paused no more of the file is read: memory stays one piece."""
    ctx = make_ctx(file_app(path), loop)
    proto, transport = connect(ctx)
    set_writing(proto, True)
    before = _core.file_send_stats()["pread_bytes"]
    feed(proto, GET)
    run_until_idle(loop)
    assert _core.file_send_stats()["pread_bytes"] - before == PIECE, "one piece, then the wait"
    # drained, then full again before the app runs: one more piece
    transport.set_write_paused(False)
    transport.set_write_paused(True)
    run_until_idle(loop)
    assert _core.file_send_stats()["pread_bytes"] - before == 2 * PIECE
    set_writing(proto, False)
    assert split_response(transport.output())[2] == data
    assert open_fds_on(path) == 0


def test_h1_client_gone_mid_file_raises_and_closes_the_file(loop, path):
    seen: list = []
    ctx = make_ctx(file_app(path, seen=seen), loop)
    proto, transport = connect(ctx)
    set_writing(proto, True)
    feed(proto, GET)
    assert open_fds_on(path) == 1
    lose(proto)
    assert isinstance(seen[-1], _core.ClientDisconnected)
    assert open_fds_on(path) == 0
    assert ctx.active_requests == 0


def test_h1_timeout_mid_file_cancels_and_closes_the_file(loop, path):
    seen: list = []
    ctx = make_ctx(file_app(path, seen=seen), loop, timeout_request=5.0)
    proto, transport = connect(ctx)
    set_writing(proto, True)
    feed(proto, GET)
    assert open_fds_on(path) == 1
    advance(loop, ctx, 6.0)
    assert transport.closed
    assert type(seen[-1]).__name__ == "CancelledError"
    assert open_fds_on(path) == 0


def test_h1_zerocopysend_window_then_more_body_is_chunked(loop, path, data):
    seen: list = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with open(path, "rb") as f:
            await send(
                {"type": "http.response.zerocopysend", "file": f, "offset": 10, "count": PIECE + 5, "more_body": True}
            )
            await send({"type": "http.response.zerocopysend", "file": f.fileno(), "offset": 0, "count": 3})
            seen.append(f.tell())

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    _, fields, body = split_response(transport.output())
    assert fields[b"transfer-encoding"] == [b"chunked"]
    # de-chunk
    out, rest = b"", body
    while True:
        size, _, rest = rest.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            assert rest == b"\r\n"
            break
        out, rest = out + rest[:n], rest[n + 2 :]
    assert out == data[10 : 10 + PIECE + 5] + data[:3]
    assert seen == [0], "the app's file is not moved (nor closed)"


def test_h1_zerocopysend_alone_gets_its_length(loop, path, data):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with open(path, "rb") as f:
            f.seek(100)
            await send({"type": "http.response.zerocopysend", "file": f})

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    _, fields, body = split_response(transport.output())
    assert fields[b"content-length"] == [str(len(data) - 100).encode()] and body == data[100:]


def test_h1_zerocopysend_outside_the_file_is_refused(loop, path, data):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with open(path, "rb") as f:
            await send({"type": "http.response.zerocopysend", "file": f, "offset": len(data), "count": 1})

    ctx = make_ctx(app, loop)
    proto, transport = connect(ctx)
    feed(proto, GET)
    assert transport.output() == error_response(500)


# --- HTTP/2 -----------------------------------------------------------------------------------


def read_all(client: Client, stream: int, limit: int = 10000) -> tuple[int, dict, bytes]:
    """Read the stream to its end, handing the windows back as the data comes."""
    for _ in range(limit):
        if client.ended(stream) or client.reset(stream) is not None:
            break
        client.response(stream)  # acknowledges what came
        client.flush()
    status, headers, body = client.response(stream)
    return status, headers, body


def test_h2_scope_keeps_trailers_and_adds_both(path):
    seen: list = []
    client = Client(file_app(path, seen=seen))
    read_all(client, client.request())
    assert seen[0]["extensions"] == {
        "http.response.early_hint": {},
        "http.response.trailers": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }


def test_h2_pathsend_body_is_the_file_and_content_length_is_added(path, data):
    seen: list = []
    client = Client(file_app(path, [(b"content-type", b"application/octet-stream")], seen=seen))
    stream = client.request()
    status, headers, body = read_all(client, stream)
    assert status == 200 and headers[b"content-length"] == str(len(data)).encode()
    assert body == data and client.ended(stream)
    assert seen[-1] == "sent" and open_fds_on(path) == 0


def test_h2_head_sends_the_length_and_no_body(path, data):
    client = Client(file_app(path))
    stream = client.request("HEAD")
    status, headers, body = read_all(client, stream)
    assert status == 200 and headers[b"content-length"] == str(len(data)).encode() and body == b""
    assert client.ended(stream) and open_fds_on(path) == 0


def test_h2_length_mismatch_is_a_500(path, data):
    client = Client(file_app(path, [(b"content-length", b"7")]))
    status, headers, body = read_all(client, client.request())
    assert status == 500 and body == b"Internal Server Error"
    assert open_fds_on(path) == 0


def test_h2_out_buffer_stays_bounded_by_the_window(path, data):
    """With the client's windows closed no more than HIGH_WATER of the file is read ahead."""
    client = Client(file_app(path))
    before = _core.file_send_stats()["pread_bytes"]
    stream = client.request()
    run_until_idle(client.loop)
    read = _core.file_send_stats()["pread_bytes"] - before
    # the client's default window (65535) took one piece; the next waits in the buffer
    assert 0 < read <= 2 * 65536
    status, headers, body = read_all(client, stream)
    assert body == data


def test_h2_reset_mid_file_raises_and_closes_the_file(path):
    seen: list = []
    client = Client(file_app(path, seen=seen))
    stream = client.request()
    run_until_idle(client.loop)
    assert open_fds_on(path) == 1
    client.conn.reset_stream(stream)
    client.flush()
    run_until_idle(client.loop)
    assert isinstance(seen[-1], _core.ClientDisconnected)
    assert open_fds_on(path) == 0


def test_h2_large_window_reads_as_the_transport_takes_it(path, data):
    """A client with huge windows that does not read (the transport pauses writing): reads
    of the file stop too, with at most HIGH_WATER more buffered for the stream."""
    client = Client(file_app(path))
    client.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
    client.conn.increment_flow_control_window(2**31 - 1 - 65535)
    client.flush()
    assert client.transport.get_protocol() is not client.proto  # H2Protocol now
    before = _core.file_send_stats()["pread_bytes"]
    stream = client.conn.get_next_available_stream_id()
    client.conn.send_headers(
        stream, [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t"), (b":path", b"/")], end_stream=True
    )
    client.transport.feed(client.conn.data_to_send())  # the app starts, eagerly
    client.transport.set_write_paused(True)
    run_until_idle(client.loop)
    read = _core.file_send_stats()["pread_bytes"] - before
    assert 0 < read <= 4 * 65536 < len(data), read
    advance(client.loop, None, 1.0)
    assert _core.file_send_stats()["pread_bytes"] - before == read, "no read while paused"
    client.transport.set_write_paused(False)
    client.read()
    status, headers, body = read_all(client, stream)
    assert body == data
