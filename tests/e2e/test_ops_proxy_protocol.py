"""--proxy-protocol end to end: the real server behind raw sockets that write PROXY protocol
headers (v1 and v2) before HTTP, then behind a real haproxy (``send-proxy`` and
``send-proxy-v2``, over TCP and over a unix socket). The app (tests/apps/ops_app.py, /scope)
answers the scope it got: its client and server are the header's."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import struct
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from support.client import RawConn, wait_closed
from support.ops import APP
from support.server import HTTP_TIMEOUT, ServerProcess, free_port, run_cli, wait_for_port
from support.supervisors import Supervised

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
GET_SCOPE = b"GET /scope HTTP/1.1\r\nHost: t\r\n\r\n"


def v2_inet(src: str, dst: str, sport: int, dport: int, command: int = 0x21) -> bytes:
    """A PROXY v2 header for TCP over IPv4 or IPv6."""
    source, destination = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    family = 0x11 if source.version == 4 else 0x21
    block = source.packed + destination.packed + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + bytes([command, family]) + struct.pack("!H", len(block)) + block


def scope_after(port: int, header: bytes, requests: int = 1) -> list[dict]:
    """Send ``header`` then ``requests`` pipelined GET /scope on one connection; the scopes."""
    with RawConn(port, HTTP_TIMEOUT) as conn:
        conn.send(header + GET_SCOPE * requests)
        return [conn.read_response().json() for _ in range(requests)]


def addresses(scope: dict) -> tuple:
    return (scope["client"], scope["server"])


# --- raw headers ------------------------------------------------------------------------------


def test_v1_header_sets_client_and_server(serve):
    server = serve(APP, "--proxy-protocol", "v1")
    scopes = scope_after(server.port, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n", requests=3)
    assert [addresses(s) for s in scopes] == [(["192.0.2.1", 56324], ["192.0.2.11", 443])] * 3
    server.wait_for(
        r'INFO:     192\.0\.2\.1:56324 - "GET /scope HTTP/1\.1" 200 OK', stream="stdout", timeout=5
    )
    (scope,) = scope_after(server.port, b"PROXY TCP6 2001:db8::1 2001:db8::11 4711 8443\r\n")
    assert addresses(scope) == (["2001:db8::1", 4711], ["2001:db8::11", 8443])


def test_v2_header_sets_client_and_server(serve):
    server = serve(APP, "--proxy-protocol", "v2")
    scopes = scope_after(server.port, v2_inet("203.0.113.7", "198.51.100.1", 40000, 80), requests=2)
    assert [addresses(s) for s in scopes] == [(["203.0.113.7", 40000], ["198.51.100.1", 80])] * 2
    (scope,) = scope_after(server.port, v2_inet("2001:db8::7", "2001:db8::1", 1, 2))
    assert addresses(scope) == (["2001:db8::7", 1], ["2001:db8::1", 2])
    # LOCAL (a proxy's health check): the connection's own addresses
    with RawConn(server.port, HTTP_TIMEOUT) as conn:
        conn.send(v2_inet("203.0.113.7", "198.51.100.1", 40000, 80, command=0x20) + GET_SCOPE)
        scope = conn.read_response().json()
        assert addresses(scope) == (["127.0.0.1", conn.local_port], ["127.0.0.1", server.port])


def test_header_delivered_byte_by_byte(serve):
    server = serve(APP, "--proxy-protocol", "auto")
    with RawConn(server.port, HTTP_TIMEOUT) as conn:
        assert conn.send_bytewise(v2_inet("203.0.113.7", "198.51.100.1", 40000, 80) + GET_SCOPE, pause=0.001)
        assert addresses(conn.read_response().json()) == (["203.0.113.7", 40000], ["198.51.100.1", 80])


def test_auto_accepts_either_version_or_none(serve):
    server = serve(APP, "--proxy-protocol", "auto")
    (scope,) = scope_after(server.port, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n")
    assert scope["client"] == ["192.0.2.1", 56324]
    (scope,) = scope_after(server.port, v2_inet("203.0.113.7", "198.51.100.1", 40000, 80))
    assert scope["client"] == ["203.0.113.7", 40000]
    response = httpx.get(f"http://127.0.0.1:{server.port}/scope", timeout=HTTP_TIMEOUT)
    assert response.json()["client"][0] == "127.0.0.1"


def test_websocket_scope_gets_the_header_addresses(serve):
    server = serve(APP, "--proxy-protocol", "v1")
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT)
    sock.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n")
    with ws_connect(f"ws://127.0.0.1:{server.port}/scope", sock=sock, open_timeout=HTTP_TIMEOUT) as ws:
        scope = json.loads(ws.recv(timeout=HTTP_TIMEOUT))
    assert (scope["type"], *addresses(scope)) == ("websocket", ["192.0.2.1", 56324], ["192.0.2.11", 443])


@pytest.mark.parametrize(
    "mode,data,reason",
    [
        ("v1", GET_SCOPE, "no PROXY protocol v1 header"),
        ("v1", b"PROXY TCP4 192.0.2.01 192.0.2.11 56324 443\r\n" + GET_SCOPE, "bad address '192.0.2.01'"),
        ("v1", v2_inet("203.0.113.7", "198.51.100.1", 1, 2) + GET_SCOPE, "v2 header, but --proxy-protocol is v1"),
        ("v2", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n" + GET_SCOPE, "v1 header, but --proxy-protocol is v2"),
        ("v2", V2_SIGNATURE + b"\x21\x11\x00\x04abcd" + GET_SCOPE, "4 address bytes, its family needs 12"),
        ("auto", b"PROXY TCP4 192.0.2.1 192.0.2.11 56324\r\n" + GET_SCOPE, "not 6 fields"),
    ],
    ids=["v1-none", "v1-leading-zero", "v1-got-v2", "v2-got-v1", "v2-short-block", "auto-malformed"],
)  # fmt: skip
def test_malformed_or_wrong_header_closes_with_a_log_line(serve, mode, data, reason):
    server = serve(APP, "--proxy-protocol", mode)
    mark = server.log_mark()
    with RawConn(server.port, HTTP_TIMEOUT) as conn:
        conn.send(data)
        _, received = wait_closed(conn, HTTP_TIMEOUT)
        peer = f"127.0.0.1:{conn.local_port}"
    assert received == b""
    log = server.wait_log(mark, reason)
    lines = [line for line in log.splitlines() if "PROXY protocol" in line]
    assert len(lines) == 1 and lines[0].startswith("WARNING:")
    assert f"closing the connection from {peer}: " in lines[0] and reason in lines[0]


def test_untrusted_peer_is_refused(serve):
    server = serve(APP, "--proxy-protocol", "v1", "--forwarded-allow-ips", "10.9.9.9")
    mark = server.log_mark()
    with RawConn(server.port, HTTP_TIMEOUT) as conn:
        conn.send(b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n" + GET_SCOPE)
        _, received = wait_closed(conn, HTTP_TIMEOUT)
    assert received == b""
    assert "the peer is not in --forwarded-allow-ips" in server.wait_log(mark, "forwarded-allow-ips")


def test_no_header_in_time_closes(serve):
    server = serve(APP, "--proxy-protocol", "v2", "--timeout-request-head", "1")
    mark = server.log_mark()
    with RawConn(server.port, HTTP_TIMEOUT) as conn:
        conn.send(V2_SIGNATURE)
        waited, received = wait_closed(conn, HTTP_TIMEOUT)
    assert received == b"" and 0.8 < waited < 3
    assert "no complete PROXY protocol header within 1s" in server.wait_log(mark, "within 1s")


# --- settings ---------------------------------------------------------------------------------


def test_a_bad_mode_is_refused_in_one_line():
    result = run_cli(APP, "--proxy-protocol", "v3")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "Error: Invalid value for '--proxy-protocol': 'v3' is not one of 'off', 'v1', 'v2', 'auto'."
    ]


def test_the_mode_from_the_environment(tmp_path):
    port = free_port()
    env_file = tmp_path / "env"
    env_file.write_text(f"FASTASGI_APP={APP}\nFASTASGI_PORT={port}\nFASTASGI_PROXY_PROTOCOL=v1\n")
    with ServerProcess.cli("--env-file", str(env_file)) as server:
        server.wait_listening(port)
        (scope,) = scope_after(port, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n")
    assert scope["client"] == ["192.0.2.1", 56324]


# --- a real haproxy in front ------------------------------------------------------------------

HAPROXY = shutil.which("haproxy") or next(
    (path for path in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.path.exists(path)), None
)
needs_haproxy = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy; .ci/run installs it)"
)

HAPROXY_CONFIG = """\
global
    maxconn 256

defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s

# v1 (send-proxy) in TCP mode: one backend connection per client connection
frontend v1
    mode tcp
    bind 127.0.0.1:{v1_port}
    default_backend fastasgi_v1

backend fastasgi_v1
    mode tcp
    server app {backend} send-proxy

# v2 (send-proxy-v2) in HTTP mode: haproxy parses HTTP (and proxies websocket upgrades)
frontend v2
    mode http
    bind 127.0.0.1:{v2_port}
    default_backend fastasgi_v2

backend fastasgi_v2
    mode http
    server app {backend} send-proxy-v2
"""


def start_haproxy(directory: Path, backend: str) -> tuple[ServerProcess, int, int]:
    """haproxy in the foreground (-db) with both frontends on free loopback ports, to
    ``backend`` (``127.0.0.1:PORT`` or a unix socket path). A port taken by another process
    between ``free_port`` and haproxy's bind makes haproxy exit: tried again on new ports."""
    config = directory / "haproxy.cfg"
    for _ in range(3):
        v1_port, v2_port = free_port(), free_port()
        if v1_port == v2_port:
            continue
        config.write_text(HAPROXY_CONFIG.format(v1_port=v1_port, v2_port=v2_port, backend=backend))
        check = ServerProcess([HAPROXY, "-c", "-f", str(config)], cwd=directory)
        assert check.wait_exit(15) == 0, check.stderr + check.stdout()
        proxy = ServerProcess([HAPROXY, "-db", "-f", str(config)], cwd=directory)
        try:
            wait_for_port(v1_port)
            wait_for_port(v2_port)
            time.sleep(0.1)
        except AssertionError:
            pass
        if proxy.alive():
            return proxy, v1_port, v2_port
        proxy.close()
    raise AssertionError(f"haproxy did not start:\n{proxy.stderr}")


def check_through_haproxy(v1_port: int, v2_port: int) -> None:
    """Through each frontend, the app's client is our own socket's address as haproxy saw it,
    and its server the frontend haproxy was reached on."""
    for port in (v1_port, v2_port):
        with RawConn(port, HTTP_TIMEOUT) as conn:
            for _ in range(3):  # keep-alive: every request of the connection
                scope = conn.request(GET_SCOPE).json()
                assert addresses(scope) == (["127.0.0.1", conn.local_port], ["127.0.0.1", port]), port
    sock = socket.create_connection(("127.0.0.1", v2_port), timeout=HTTP_TIMEOUT)
    local_port = sock.getsockname()[1]
    with ws_connect(f"ws://127.0.0.1:{v2_port}/scope", sock=sock, open_timeout=HTTP_TIMEOUT) as ws:
        scope = json.loads(ws.recv(timeout=HTTP_TIMEOUT))
    assert addresses(scope) == (["127.0.0.1", local_port], ["127.0.0.1", v2_port])


@needs_haproxy
def test_behind_haproxy_over_tcp(serve, tmp_path):
    server = serve(APP, "--proxy-protocol", "auto", fresh=True)
    proxy, v1_port, v2_port = start_haproxy(tmp_path, f"127.0.0.1:{server.port}")
    with proxy:
        check_through_haproxy(v1_port, v2_port)
        # and a client straight to the server (auto): its own address
        response = httpx.get(f"http://127.0.0.1:{server.port}/scope", timeout=HTTP_TIMEOUT)
        assert response.json()["client"][0] == "127.0.0.1"
    assert "PROXY protocol" not in server.stderr


@needs_haproxy
def test_behind_haproxy_over_a_unix_socket(tmp_path):
    path = str(tmp_path / "app.sock")
    # the socket's path in --forwarded-allow-ips trusts connections on it (as proxy headers)
    with ServerProcess.cli(
        APP, "--uds", path, "--proxy-protocol", "v2", "--forwarded-allow-ips", path
    ) as server:
        deadline = time.monotonic() + 20
        while not os.path.exists(path):
            assert server.alive() and time.monotonic() < deadline, server.stderr
            time.sleep(0.05)
        proxy, v1_port, v2_port = start_haproxy(tmp_path, path)
        with proxy:
            with RawConn(v2_port, HTTP_TIMEOUT) as conn:
                scope = conn.request(GET_SCOPE).json()
                assert addresses(scope) == (["127.0.0.1", conn.local_port], ["127.0.0.1", v2_port])
            # v1 to a v2-only server: refused, with the reason in the log
            mark = server.log_mark()
            with RawConn(v1_port, HTTP_TIMEOUT) as conn:
                conn.send(GET_SCOPE)
                _, received = wait_closed(conn, HTTP_TIMEOUT)
            assert received == b""
            log = server.wait_log(mark, "v1 header, but --proxy-protocol is v2")
            assert f"closing the connection from unix:{path}: a PROXY protocol v1 header" in log


# --- the gunicorn worker class ----------------------------------------------------------------


def test_gunicorn_proxy_protocol_setting_is_followed():
    from gunicorn.config import KNOWN_SETTINGS

    # gunicorn >= 25 opens a control socket in ~/.gunicorn by default; leave it alone
    quiet = ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []
    worker = "fastasgi.workers.FastASGIWorker"
    with Supervised.gunicorn(
        "-k", worker, "--bind", "127.0.0.1:0", *quiet, "--proxy-protocol", "v1", APP
    ) as server:  # fmt: skip
        port = int(server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        server.wait_for(r"Booting worker with pid")
        deadline = time.monotonic() + 20
        while True:  # the worker serves once its lifespan startup is done
            try:
                (scope,) = scope_after(port, b"PROXY TCP4 192.0.2.1 192.0.2.11 56324 443\r\n")
                break
            except (OSError, AssertionError):
                assert time.monotonic() < deadline, server.stderr
                time.sleep(0.1)
        assert addresses(scope) == (["192.0.2.1", 56324], ["192.0.2.11", 443])
        assert server.stop() == 0
