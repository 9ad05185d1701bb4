"""The command line, run for real: ``python -m fastasgi ...`` as a subprocess on a free
loopback port (``--port 0``; the port is read from the "running on" log line)."""

from __future__ import annotations

import platform
import re
import signal
import socket
import sys
import threading
import time

import httpx
import pytest
from click.testing import CliRunner
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as ws_connect

from support.server import APPS, HTTP_TIMEOUT, ServerProcess, error_lines, free_port, run_cli, wait_for_port

# --- the app cannot be loaded: one line, exit 3 (1: its own code failed), no traceback -----


def assert_one_line_error(result, expected: str, exit_code: int = 3) -> None:
    """``exit_code``: uvicorn's, 3 when the app cannot be found or called (STARTUP_FAILURE),
    1 when its own code failed or a setting is refused."""
    assert result.returncode == exit_code, result
    lines = error_lines(result.stderr)
    assert lines == [f"ERROR:    {expected}"], result.stderr
    assert "Traceback" not in result.stderr


def test_bad_import_string():
    result = run_cli("cli_app")
    assert_one_line_error(
        result, 'Error loading ASGI app. Import string "cli_app" must be in format "<module>:<attribute>".'
    )


def test_missing_module():
    result = run_cli("nosuch_module_for_cli_test:app")
    assert_one_line_error(
        result, 'Error loading ASGI app. Could not import module "nosuch_module_for_cli_test".'
    )


def test_missing_package_of_dotted_module():
    result = run_cli("nosuch_package_for_cli_test.sub:app")
    assert_one_line_error(
        result, 'Error loading ASGI app. Could not import module "nosuch_package_for_cli_test.sub".'
    )


def test_missing_attribute():
    result = run_cli("cli_app:nope")
    assert_one_line_error(result, 'Error loading ASGI app. Attribute "nope" not found in module "cli_app".')


def test_missing_dotted_attribute():
    result = run_cli("cli_app:Nested.missing")
    assert_one_line_error(
        result, 'Error loading ASGI app. Attribute "Nested.missing" not found in module "cli_app".'
    )


def test_import_error_inside_the_module_is_one_line_with_its_cause():
    result = run_cli("cli_broken_import:app")
    assert_one_line_error(
        result,
        'Error loading ASGI app. Could not import module "cli_broken_import": '
        "No module named 'nosuch_dependency_for_cli_test' (cli_broken_import.py, line 3).",
        exit_code=1,
    )


def test_exception_inside_the_module_shows_the_users_traceback_only():
    result = run_cli("cli_raises:app")
    assert result.returncode == 1
    first = error_lines(result.stderr)[0]
    assert first == (
        'ERROR:    Error loading ASGI app. Importing module "cli_raises" raised RuntimeError: '
        "cli_raises refuses to import"
    )
    # The traceback starts in the user's module: no importlib or fastasgi frames.
    assert 'cli_raises.py", line 8, in <module>' in result.stderr
    assert "importlib" not in result.stderr and "fastasgi/config.py" not in result.stderr


def test_not_callable():
    result = run_cli("cli_app:not_callable")
    assert_one_line_error(result, 'Error loading ASGI app. "cli_app:not_callable" is not callable (got int).')


def test_factory_with_wrong_signature():
    result = run_cli("cli_app:create_app_needs_argument", "--factory")
    assert_one_line_error(result, "Error loading ASGI app factory: missing a required argument: 'setting'")


# --- flags with bad values: click's usage error, naming the flag --------------------------


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--port", "abc"], "--port"),
        (["--port", "70000"], "--port"),
        (["--header", "no-colon-here"], "--header"),
        (["--header", "bad name:value"], "--header"),
        (["--loop", "tokio"], "--loop"),
        (["--lifespan", "sometimes"], "--lifespan"),
        (["--log-level", "loud"], "--log-level"),
        (["--timeout-keep-alive", "-1"], "--timeout-keep-alive"),
        (["--limit-request-head-size", "0"], "--limit-request-head-size"),
        (["--ws", "wsproto"], "--ws"),
        (["--fd", "-3"], "--fd"),
    ],
)
def test_bad_flag_value(args, flag):
    result = run_cli("cli_app:app", *args)
    assert result.returncode == 2, result
    error = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(error) == 1 and f"'{flag}'" in error[0], result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_flag():
    # click's usage line and --help hint first, as uvicorn shows them
    result = run_cli("cli_app:app", "--no-such-flag")
    assert result.returncode == 2
    usage, hint, blank, error = result.stderr.strip().splitlines()
    assert usage == "Usage: python -m fastasgi [OPTIONS] APP"
    assert hint == "Try 'python -m fastasgi --help' for help."
    assert (blank, error) == ("", "Error: No such option '--no-such-flag'.")


def test_head_size_and_its_alias_must_agree():
    result = run_cli(
        "cli_app:app", "--limit-request-head-size", "1000", "--h11-max-incomplete-event-size", "2000"
    )
    assert_one_line_error(
        result,
        "--h11-max-incomplete-event-size and --limit-request-head-size are two names for one limit; got 2000 and 1000.",
        exit_code=1,
    )


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    expected = f"fastasgi 0.1.0 with {platform.python_implementation()} {platform.python_version()} on {platform.system()}"
    assert result.stdout.strip() == expected


def test_help_lists_the_flags():
    from fastasgi.cli import main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for flag in (
        "--host", "--port", "--uds", "--fd", "--loop", "--lifespan", "--log-level", "--access-log",
        "--no-access-log", "--root-path", "--app-dir", "--factory", "--timeout-keep-alive",
        "--server-header", "--no-date-header", "--header", "--limit-request-head-size",
        "--h11-max-incomplete-event-size", "--limit-request-fields", "--ws", "--ws-max-size",
        "--ws-max-queue", "--ws-ping-interval", "--ws-ping-timeout", "--ws-per-message-deflate",
        "--timeout-graceful-shutdown", "--version",
    ):  # fmt: skip
        assert flag in result.output, flag


# --- port in use ---------------------------------------------------------------------------


def test_port_in_use():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("cli_app:app", "--port", str(port))
    assert result.returncode == 3  # uvicorn's STARTUP_FAILURE
    assert f"ERROR:    [Errno 98] address already in use: 127.0.0.1:{port}" in result.stderr.splitlines()
    assert "Traceback" not in result.stderr


# --- serving -------------------------------------------------------------------------------


def get(server: ServerProcess, path: str, **kwargs) -> httpx.Response:
    return httpx.get(server.url + path, timeout=HTTP_TIMEOUT, **kwargs)


def test_demo_app_serves():
    with ServerProcess.cli("fastasgi.demo:app", "--port", "0") as server:
        server.wait_started()
        page = get(server, "/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert "fastasgi works" in page.text and "&quot;method&quot;: &quot;GET&quot;" in page.text

        document = get(server, "/json").json()
        assert document["message"] == "fastasgi works" and document["path"] == "/json"

        echoed = httpx.post(server.url + "/echo", content=b"ping " * 1000, timeout=HTTP_TIMEOUT)
        assert echoed.status_code == 200 and echoed.content == b"ping " * 1000

        streamed = get(server, "/stream?n=3&delay=0")
        assert streamed.headers["transfer-encoding"] == "chunked"
        assert streamed.text == "line 1 of 3\nline 2 of 3\nline 3 of 3\n"

        assert get(server, "/nowhere").status_code == 404
        assert httpx.get(server.url + "/echo", timeout=HTTP_TIMEOUT).status_code == 405

        with ws_connect(server.url.replace("http", "ws") + "/ws", open_timeout=HTTP_TIMEOUT) as ws:
            ws.send("ping")
            assert ws.recv(timeout=HTTP_TIMEOUT) == "ping"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=HTTP_TIMEOUT) == b"\x00\x01"
        assert server.stop() == 0
    assert "Application startup complete." in server.stderr


def test_log_lines_and_access_log():
    with ServerProcess.cli("cli_app:app", "--port", "0") as server:
        port = server.wait_started()
        client = httpx.Client(timeout=HTTP_TIMEOUT)
        assert client.get(server.url + "/hello?x=1&y=%20").status_code == 200
        access = server.wait_for(r'"GET /hello\?x=1&y=%20 HTTP/1.1" 200 OK', stream="stdout")
        client.close()
        assert server.stop() == 0
    pid = server.proc.pid
    assert re.fullmatch(
        r'INFO:     127\.0\.0\.1:\d+ - "GET /hello\?x=1&y=%20 HTTP/1\.1" 200 OK', access.string
    )
    log = server.stderr_lines
    expected_in_order = [
        f"INFO:     Started server process [{pid}]",
        "INFO:     Waiting for application startup.",
        "INFO:     Application startup complete.",
        f"INFO:     fastasgi running on http://127.0.0.1:{port} (Press CTRL+C to quit)",
        "INFO:     Shutting down",
        "INFO:     Waiting for application shutdown.",
        "INFO:     Application shutdown complete.",
        f"INFO:     Finished server process [{pid}]",
    ]
    assert [line for line in log if line in expected_in_order] == expected_in_order


def test_no_access_log():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--no-access-log") as server:
        server.wait_started()
        assert get(server, "/quiet").status_code == 200
        assert server.stop() == 0
    assert "/quiet" not in server.stdout() + server.stderr


def test_log_level_warning_hides_info():
    port = free_port()
    with ServerProcess.cli("cli_app:app", "--port", str(port), "--log-level", "warning") as server:
        wait_for_port(port)
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT).status_code == 200
        assert server.stop() == 0
    assert "INFO" not in server.stderr + server.stdout()
    assert server.stderr_lines == [] and server.stdout_lines == []


def test_header_extras_and_default_headers():
    with ServerProcess.cli(
        "cli_app:app", "--port", "0", "--header", "X-Frame-Options: DENY", "--header", "x-team:core"
    ) as server:
        server.wait_started()
        response = get(server, "/")
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["x-team"] == "core"
        assert response.headers["server"] == "fastasgi"
        assert "date" in response.headers
        server.stop()


def test_header_server_replaces_the_default_one():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--header", "server:custom") as server:
        server.wait_started()
        response = get(server, "/")
        assert response.headers.get_list("server") == ["custom"]
        server.stop()


def test_no_server_header_no_date_header():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--no-server-header", "--no-date-header") as server:
        server.wait_started()
        response = get(server, "/")
        assert response.status_code == 200
        assert "server" not in response.headers and "date" not in response.headers
        server.stop()


def test_root_path_reaches_the_scope():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--root-path", "/api") as server:
        server.wait_started()
        scope = get(server, "/scope").json()
        # As uvicorn and the ASGI spec have it: path is the full path, root_path its prefix.
        assert scope["root_path"] == "/api" and scope["path"] == "/api/scope"
        server.stop()


def test_limit_request_head_size_and_alias():
    big = {"x-big": "a" * 3000}
    for flag in ("--limit-request-head-size", "--h11-max-incomplete-event-size"):
        with ServerProcess.cli("cli_app:app", "--port", "0", flag, "2048") as server:
            server.wait_started()
            assert get(server, "/").status_code == 200
            assert get(server, "/", headers=big).status_code == 431
            server.stop()


def test_limit_request_fields():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--limit-request-fields", "10") as server:
        server.wait_started()
        assert get(server, "/", headers={f"x-h{i}": "v" for i in range(3)}).status_code == 200
        assert get(server, "/", headers={f"x-h{i}": "v" for i in range(20)}).status_code == 431
        server.stop()


def test_factory_flag():
    with ServerProcess.cli("cli_app:create_app", "--factory", "--port", "0") as server:
        server.wait_started()
        assert get(server, "/").text == "hello from the factory"
        server.stop()
    assert "factory detected" not in server.stderr


def test_factory_detected_without_the_flag_warns():
    with ServerProcess.cli("cli_app:create_app", "--port", "0") as server:
        server.wait_started()
        assert get(server, "/").text == "hello from the factory"
        server.stop()
    assert "WARNING:  ASGI app factory detected." in server.stderr


def test_asgi2_app():
    with ServerProcess.cli("cli_asgi2:app", "--port", "0") as server:
        server.wait_started()
        assert get(server, "/").text == "hello from asgi2"
        server.stop()


def test_app_dir(tmp_path):
    (tmp_path / "cli_elsewhere.py").write_text(
        "async def app(scope, receive, send):\n"
        "    if scope['type'] != 'http':\n"
        "        return\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'found via --app-dir'})\n"
    )
    # Without --app-dir the module is not found from another directory...
    result = run_cli("cli_elsewhere:app", cwd=APPS.parent)
    assert_one_line_error(result, 'Error loading ASGI app. Could not import module "cli_elsewhere".')
    # ...with it, it is.
    with ServerProcess.cli(
        "cli_elsewhere:app", "--app-dir", str(tmp_path), "--port", "0", cwd=APPS.parent
    ) as server:
        server.wait_started()
        assert get(server, "/").text == "found via --app-dir"
        server.stop()


@pytest.mark.parametrize(
    "loop, expected", [("asyncio", "asyncio."), ("uvloop", "uvloop.Loop"), ("auto", None)]
)
def test_loop_choice(loop, expected):
    if loop != "asyncio":
        pytest.importorskip("uvloop")
    with ServerProcess.cli("cli_app:app", "--port", "0", "--loop", loop) as server:
        server.wait_started()
        loop_name = get(server, "/loop").text
        server.stop()
    if expected is None:  # auto: uvloop when installed
        expected = "uvloop.Loop"
    assert loop_name.startswith(expected), loop_name


def test_uds(tmp_path):
    path = tmp_path / "fastasgi.sock"
    with ServerProcess.cli("cli_app:app", "--uds", str(path)) as server:
        server.wait_for(rf"fastasgi running on unix socket {re.escape(str(path))} \(Press CTRL\+C to quit\)")
        transport = httpx.HTTPTransport(uds=str(path))
        with httpx.Client(transport=transport, timeout=HTTP_TIMEOUT) as client:
            response = client.get("http://localhost/scope")
        assert response.status_code == 200
        assert response.json()["client"] is None
        assert server.stop() == 0
    assert not path.exists()  # removed on shutdown


def test_fd():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    fd = listener.fileno()
    try:
        with ServerProcess.cli("cli_app:app", "--fd", str(fd), pass_fds=(fd,)) as server:
            server.wait_for(r"fastasgi running on socket \('127\.0\.0\.1', \d+\)")
            listener.close()  # the server's copy keeps listening
            response = httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT)
            assert response.text == "hello from cli_app"
            assert server.stop() == 0
    finally:
        listener.close()


def test_fd_not_a_socket(tmp_path):
    result = run_cli("cli_app:app", "--fd", "0")
    assert result.returncode == 3  # a bind failure, as any other
    assert "ERROR:    [Errno 88] socket operation on non-socket: fd 0" in result.stderr.splitlines()


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_ipv6_host():
    with ServerProcess.cli("cli_app:app", "--host", "::1", "--port", "0") as server:
        server.wait_started()
        assert server.host == "::1"
        scope = httpx.get(server.url + "/scope", timeout=HTTP_TIMEOUT).json()
        assert scope["server"][0] == "::1" and scope["client"][0] == "::1"
        server.stop()


def test_ws_none_serves_upgrade_requests_as_http():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--ws", "none") as server:
        server.wait_started()
        response = get(
            server,
            "/scope",
            headers={
                "upgrade": "websocket",
                "connection": "upgrade",
                "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
                "sec-websocket-version": "13",
            },
        )
        assert response.status_code == 200 and response.json()["type"] == "http"
        server.stop()


def test_ws_flags_reach_the_websocket_protocol():
    with ServerProcess.cli(
        "fastasgi.demo:app", "--port", "0", "--ws", "websockets", "--ws-max-size", "1000"
    ) as server:
        server.wait_started()
        with ws_connect(server.url.replace("http", "ws") + "/ws", open_timeout=HTTP_TIMEOUT) as ws:
            ws.send("a" * 1000)
            assert ws.recv(timeout=HTTP_TIMEOUT) == "a" * 1000
            ws.send("a" * 1001)
            with pytest.raises(ConnectionClosedError) as info:
                ws.recv(timeout=HTTP_TIMEOUT)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009  # message too big
        assert server.stop() == 0


def test_timeout_keep_alive_closes_idle_connections():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--timeout-keep-alive", "1") as server:
        server.wait_started()
        with socket.create_connection(("127.0.0.1", server.port), timeout=HTTP_TIMEOUT) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            received = b""
            while not received.endswith(b"hello from cli_app"):
                chunk = conn.recv(4096)
                assert chunk, received
                received += chunk
            idle_since = time.monotonic()
            assert conn.recv(4096) == b""  # closed by the server, not by the 10 s socket timeout
            idle = time.monotonic() - idle_since
        assert 0.9 <= idle <= 3.0, idle
        server.stop()


def test_python_dash_m_and_cli_main_are_the_same_command():
    import fastasgi.__main__  # noqa: F401  (importing must not start anything)
    from fastasgi.cli import main

    result = CliRunner().invoke(main, ["cli_app"])
    assert result.exit_code == 3  # a bad import string, refused as uvicorn refuses it


# --- signals and graceful shutdown ----------------------------------------------------------


def request_in_thread(url: str, results: dict) -> threading.Thread:
    def go():
        try:
            results["response"] = httpx.get(url, timeout=HTTP_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_a_slow_request_lets_it_finish(sig):
    with ServerProcess.cli("cli_app:app", "--port", "0") as server:
        server.wait_started()
        results: dict = {}
        thread = request_in_thread(server.url + "/slow?s=1.5", results)
        server.wait_for("slow started")
        server.send_signal(sig)
        server.wait_for("Shutting down")
        # Listeners are closed: a new connection is not served while the request runs
        # (refused, or reset when it reached the kernel's queue just before the close).
        with pytest.raises((httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError)):
            httpx.get(server.url + "/", timeout=HTTP_TIMEOUT)
        thread.join(HTTP_TIMEOUT)
        assert server.wait_exit() == 0
    assert "error" not in results, results
    assert results["response"].status_code == 200 and results["response"].text == "slow done"
    assert results["response"].headers["connection"] == "close"
    log = server.stderr
    assert (
        log.index("Waiting for connections to close.")
        < log.index("slow done")
        < log.index("Finished server process")
    )


def test_graceful_shutdown_timeout_closes_what_is_left():
    with ServerProcess.cli("cli_app:app", "--port", "0", "--timeout-graceful-shutdown", "0.5") as server:
        server.wait_started()
        results: dict = {}
        thread = request_in_thread(server.url + "/slow?s=30", results)
        server.wait_for("slow started")
        server.send_signal(signal.SIGTERM)
        thread.join(HTTP_TIMEOUT)
        assert server.wait_exit(10) == 0
    assert isinstance(results.get("error"), httpx.HTTPError), results
    assert (
        "Graceful shutdown timed out after 0.5s: closing 1 connection(s) with 1 request(s) in flight."
        in server.stderr
    )
    assert "Finished server process" in server.stderr


def test_second_signal_forces_exit():
    with ServerProcess.cli("cli_app:app", "--port", "0") as server:
        server.wait_started()
        results: dict = {}
        thread = request_in_thread(server.url + "/slow?s=30", results)
        server.wait_for("slow started")
        server.send_signal(signal.SIGINT)
        server.wait_for("Waiting for connections to close")
        server.send_signal(signal.SIGINT)
        assert server.wait_exit(10) == 0
        thread.join(HTTP_TIMEOUT)
    assert "Forced exit: closing 1 connection(s)." in server.stderr
    assert "Waiting for application shutdown." not in server.stderr  # forced: no lifespan shutdown
    assert "error" in results


def test_idle_keep_alive_connection_does_not_delay_shutdown():
    with ServerProcess.cli("cli_app:app", "--port", "0") as server:
        server.wait_started()
        with httpx.Client(timeout=HTTP_TIMEOUT) as client:
            assert client.get(server.url + "/").status_code == 200  # connection stays open
            server.send_signal(signal.SIGTERM)
            assert server.wait_exit(5) == 0
    assert "Finished server process" in server.stderr


if sys.platform != "linux":  # errno texts and --fd checks above are Linux's
    pytestmark = pytest.mark.skip("Linux only")
