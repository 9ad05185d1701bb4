"""wsload, the benchmark harness's websocket load generator (benchmarks/wsload/wsload.c), against
a strict little echo server in this file: when the server's handshake answer carries
``client_no_context_takeover`` (RFC 7692 7.1.1.2), every message wsload sends must inflate on
its own. A wsload that kept its compression context between messages made h2corn (which
answers with that parameter) close the connection at the second message: the benchmark then
reported h2corn as failing the deflate echo, a fault of the harness, not of h2corn."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import socket
import struct
import subprocess
import threading
import zlib

import pytest

from benchmarks import wsclient

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

pytestmark = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)


def read_frame(sock_file) -> tuple[int, bytes] | None:
    head = sock_file.read(2)
    if len(head) < 2:
        return None
    b0, b1 = head
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", sock_file.read(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", sock_file.read(8))[0]
    mask = sock_file.read(4)
    data = bytearray(sock_file.read(n))
    for i in range(n):
        data[i] ^= mask[i & 3]
    return b0, bytes(data)


def serve_one(listener: socket.socket, answer: bytes, results: dict) -> None:
    """Accept one connection, answer the handshake with ``answer`` as the extensions value,
    and echo every message uncompressed, inflating each with a fresh inflater (as a server
    that asked for client_no_context_takeover may)."""
    conn, _ = listener.accept()
    conn.settimeout(10)
    with conn, conn.makefile("rb") as f:
        request = b""
        while not request.endswith(b"\r\n\r\n"):
            request += f.readline()
        key = next(
            line.split(b":", 1)[1].strip()
            for line in request.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
            b"sec-websocket-accept: " + accept + b"\r\nsec-websocket-extensions: " + answer + b"\r\n\r\n"
        )
        while True:
            try:
                got = read_frame(f)
            except (OSError, struct.error):
                return
            if got is None or got[0] & 0x0F == 0x8:
                return
            b0, data = got
            if b0 & 0x40:
                try:
                    data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
                except zlib.error as exc:
                    results["error"] = (
                        f"message {results.get('messages', 0) + 1} does not inflate alone: {exc}"
                    )
                    conn.sendall(b"\x88\x02\x03\xef")  # 1007
                    return
            results["messages"] = results.get("messages", 0) + 1
            head = bytes((0x80 | (b0 & 0x0F), 126)) + struct.pack("!H", len(data))
            try:
                conn.sendall(head + data)
            except OSError:  # wsload stops at the end of its duration
                return


def test_wsload_honours_client_no_context_takeover():
    binary = wsclient.ensure_built()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    results: dict = {}
    answer = b"permessage-deflate; server_no_context_takeover; client_no_context_takeover"
    thread = threading.Thread(target=serve_one, args=(listener, answer, results), daemon=True)
    thread.start()
    try:
        done = subprocess.run(
            [binary, "--port", str(port), "--conns", "1", "--window", "4", "--size", "256",
             "--warmup", "0", "--duration", "0.5", "--deflate", "1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        listener.close()
        thread.join(10)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in results, results["error"]
    assert out["errors"] == 0, out
    # enough messages that later ones would have referred back to earlier ones
    assert results["messages"] > 20 and out["messages"] > 20, (results, out)
