"""Listening sockets, through the real CLI: --uds (mode, stale files, a live socket left
alone), --fd socket activation, IPv6, several --bind addresses at once, --backlog."""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys

import httpx
import pytest

from support.ops import APP, serve
from support.server import HTTP_TIMEOUT, ServerProcess, free_port, run_cli

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")


def has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


needs_ipv6 = pytest.mark.skipif(not has_ipv6_loopback(), reason="no IPv6 loopback")


def get_unix(path, url_path="/scope") -> httpx.Response:
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=HTTP_TIMEOUT) as client:
        return client.get("http://localhost" + url_path)


def short_tmp(tmp_path) -> str:
    # AF_UNIX paths are limited to 107 bytes; pytest's tmp_path can be long.
    return str(tmp_path) if len(str(tmp_path)) < 80 else "/tmp"


# --- unix sockets -----------------------------------------------------------------------------


def test_uds_mode_and_cleanup(tmp_path):
    path = os.path.join(short_tmp(tmp_path), f"ops-{os.getpid()}.sock")
    with ServerProcess.cli(APP, "--uds", path) as server:
        server.wait_for(rf"fastasgi running on unix socket {re.escape(path)} ")
        assert stat.S_ISSOCK(os.stat(path).st_mode)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o666  # uvicorn's mode
        scope = get_unix(path).json()
        assert scope["client"] is None and scope["server"] == [path, None]
        assert server.stop() == 0
    assert not os.path.exists(path)


def test_uds_replaces_a_stale_socket_file_keeping_its_mode(tmp_path):
    path = os.path.join(short_tmp(tmp_path), f"ops-stale-{os.getpid()}.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)  # a socket file nobody listens on, as a killed server leaves it
    stale.close()
    os.chmod(path, 0o660)
    with ServerProcess.cli(APP, "--uds", path) as server:
        server.wait_for("running on unix socket")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert get_unix(path, "/").text == "ok"
        assert server.stop() == 0


def test_uds_refuses_a_live_socket_and_a_regular_file(tmp_path):
    path = os.path.join(short_tmp(tmp_path), f"ops-live-{os.getpid()}.sock")
    live = socket.socket(socket.AF_UNIX)
    live.bind(path)
    live.listen()
    try:
        result = run_cli(APP, "--uds", path)
        assert result.returncode == 3  # a bind failure: uvicorn's STARTUP_FAILURE
        assert f"ERROR:    [Errno 98] address already in use: {path}" in result.stderr.splitlines()
        assert stat.S_ISSOCK(os.stat(path).st_mode)  # the other server's socket is left alone
    finally:
        live.close()
        os.unlink(path)
    regular = tmp_path / "not-a-socket"
    regular.write_text("keep me")
    result = run_cli(APP, "--uds", str(regular))
    assert result.returncode == 3
    assert f"ERROR:    [Errno 98] address already in use: {regular}" in result.stderr.splitlines()
    assert regular.read_text() == "keep me"


# --- socket activation ----------------------------------------------------------------------------


def test_fd_unix_socket(tmp_path):
    path = os.path.join(short_tmp(tmp_path), f"ops-fd-{os.getpid()}.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    try:
        with ServerProcess.cli(APP, "--fd", str(listener.fileno()), pass_fds=(listener.fileno(),)) as server:
            server.wait_for("fastasgi running on socket")
            assert get_unix(path, "/").text == "ok"
            assert server.stop() == 0
        assert os.path.exists(path)  # not ours to remove: it was handed in
    finally:
        listener.close()
        os.unlink(path)


# --- several addresses -----------------------------------------------------------------------------


@needs_ipv6
def test_several_binds_at_once(tmp_path):
    path = os.path.join(short_tmp(tmp_path), f"ops-bind-{os.getpid()}.sock")
    activated = socket.socket()
    activated.bind(("127.0.0.1", 0))
    activated_port = activated.getsockname()[1]
    fd = activated.fileno()
    port4, port6 = free_port(), free_port()
    args = [
        "--bind",
        f"127.0.0.1:{port4}",
        "--bind",
        f"[::1]:{port6}",
        "--bind",
        f"unix:{path}",
        "--bind",
        f"fd://{fd}",
    ]
    try:
        with ServerProcess.cli(APP, *args, pass_fds=(fd,)) as server:
            server.wait_for("running on socket")
            log = server.stderr
            assert f"fastasgi running on http://127.0.0.1:{port4} (Press CTRL+C to quit)" in log
            assert f"fastasgi running on http://[::1]:{port6} (Press CTRL+C to quit)" in log
            assert f"fastasgi running on unix socket {path} (Press CTRL+C to quit)" in log
            assert httpx.get(f"http://127.0.0.1:{port4}/", timeout=HTTP_TIMEOUT).text == "ok"
            assert httpx.get(f"http://[::1]:{port6}/", timeout=HTTP_TIMEOUT).text == "ok"
            assert get_unix(path, "/").text == "ok"
            assert httpx.get(f"http://127.0.0.1:{activated_port}/", timeout=HTTP_TIMEOUT).text == "ok"
            assert server.stop() == 0
        assert not os.path.exists(path)
    finally:
        activated.close()


@needs_ipv6
def test_host_name_binds_each_address_on_one_port(monkeypatch):
    # A name that resolves to 127.0.0.1 and ::1 (here "localhost" may have one address).
    from fastasgi import config as config_module

    def resolve(host, port, *args, **kwargs):
        assert host == "dual.test"
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(config_module.socket, "getaddrinfo", resolve)
    sockets = config_module.Config(APP, host="dual.test", port=0, log_config=None).bind_sockets()
    try:
        assert [sock.family for sock in sockets] == [socket.AF_INET6, socket.AF_INET]
        port = sockets[0].getsockname()[1]
        assert sockets[1].getsockname() == ("127.0.0.1", port)
        # both families on one port: the IPv6 socket leaves IPv4 to the other one
        assert sockets[0].getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        for sock in sockets:
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    finally:
        for sock in sockets:
            sock.close()


@needs_ipv6
def test_ipv6_any_address_is_dual_stack():
    with serve("--host", "::") as server:
        assert server.host == "::"
        v6 = httpx.get(f"http://[::1]:{server.port}/scope", timeout=HTTP_TIMEOUT).json()
        v4 = httpx.get(f"http://127.0.0.1:{server.port}/scope", timeout=HTTP_TIMEOUT).json()
    assert v6["client"][0] == "::1" and v4["client"][0] == "::ffff:127.0.0.1"


def test_bind_in_use_is_one_line_and_leaves_nothing_behind(tmp_path):
    path = os.path.join(short_tmp(tmp_path), f"ops-inuse-{os.getpid()}.sock")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(APP, "--bind", f"unix:{path}", "--bind", f"127.0.0.1:{port}")
    assert result.returncode == 3
    assert f"ERROR:    [Errno 98] address already in use: 127.0.0.1:{port}" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert not os.path.exists(path)  # the unix socket bound before the failure is removed


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bind", "::1"], "Error: Invalid value for '--bind' / '-b': '::1' is an IPv6 address without brackets; "
                            "write it as [ADDRESS]:PORT."),
        (["--bind", "h:70000"], "Error: Invalid value for '--bind' / '-b': 'h:70000' has an invalid port '70000'."),
        (["--bind", "fd://x"], "Error: Invalid value for '--bind' / '-b': 'fd://x' is not fd://N with N a file "
                               "descriptor number."),
        (["--bind", "unix:"], "Error: Invalid value for '--bind' / '-b': 'unix:' has no socket path after 'unix:'."),
    ],
)  # fmt: skip
def test_bad_bind_values(args, message):
    result = run_cli(APP, *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [message]


def test_bind_with_uds_is_refused():
    result = run_cli(APP, "--bind", "127.0.0.1:0", "--uds", "/tmp/x.sock")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ERROR:    --bind cannot be combined with --uds or --fd; give them as --bind unix:PATH or --bind fd://N."
    ]


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss")
def test_backlog_reaches_the_listening_socket():
    with serve("--backlog", "7") as server:
        listing = subprocess.run(
            ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, timeout=10
        ).stdout
    # For a listening socket ss shows the backlog as Send-Q.
    assert listing.split()[2] == "7", listing
