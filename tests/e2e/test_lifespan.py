"""ASGI lifespan, through the real CLI: --lifespan auto|on|off, state into the request
scope, startup failure -> exit 3, shutdown after the requests in flight."""

from __future__ import annotations

import re
import signal
import threading
import time

import httpx
import pytest

from support.server import HTTP_TIMEOUT, ServerProcess, error_lines, run_cli


def events(server: ServerProcess) -> list[str]:
    return [line[len("event: ") :] for line in server.stderr_lines if line.startswith("event: ")]


def test_state_reaches_each_request_as_a_shallow_copy():
    with ServerProcess.cli("lifespan_apps:with_state", "--port", "0") as server:
        server.wait_started()
        first = httpx.get(server.url + "/state", timeout=HTTP_TIMEOUT).json()
        second = httpx.get(server.url + "/state", timeout=HTTP_TIMEOUT).json()
        assert server.stop() == 0
    assert first == {"state": ["greeting", "items"], "greeting": "hello from startup", "items": []}
    # A key the first request added to its copy is not seen by the second; the values are
    # shared (shallow copy), so the list the first request appended to is.
    assert second == {"state": ["greeting", "items"], "greeting": "hello from startup", "items": [0]}
    assert events(server) == ["startup", "shutdown"]


def test_startup_failed_exits_3_with_the_apps_message():
    result = run_cli("lifespan_apps:startup_failed", "--port", "0")
    assert result.returncode == 3
    lines = error_lines(result.stderr)
    assert "ERROR:    database is unreachable (lifespan test)" in lines
    assert "ERROR:    Application startup failed. Exiting." in lines
    assert not any("running on" in line for line in lines)
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_startup_failed_is_a_failure_in_auto_and_on(mode):
    result = run_cli("lifespan_apps:startup_failed", "--port", "0", "--lifespan", mode)
    assert result.returncode == 3
    assert "database is unreachable (lifespan test)" in result.stderr


def test_exception_in_startup_with_lifespan_on_exits_3_with_traceback():
    result = run_cli("lifespan_apps:startup_raises", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3
    assert "ERROR:    Exception in 'lifespan' protocol" in result.stderr
    assert "RuntimeError: startup exploded (lifespan test)" in result.stderr
    assert "ERROR:    Application startup failed. Exiting." in result.stderr


def test_exception_in_startup_with_lifespan_auto_means_unsupported():
    with ServerProcess.cli("lifespan_apps:startup_raises", "--port", "0") as server:
        server.wait_started()
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).text == "ok"
        assert server.stop() == 0
    assert "INFO:     ASGI 'lifespan' protocol appears unsupported." in server.stderr_lines
    assert "Traceback" not in server.stderr
    # No shutdown event is sent to an app without lifespan support.
    assert "Waiting for application shutdown." not in server.stderr


def test_app_without_lifespan_support_auto():
    with ServerProcess.cli("lifespan_apps:no_lifespan", "--port", "0") as server:
        server.wait_started()
        response = httpx.get(server.url + "/state", timeout=HTTP_TIMEOUT).json()
        assert server.stop() == 0
    assert response["state"] == []  # an empty state dict, still present in the scope
    assert "INFO:     ASGI 'lifespan' protocol appears unsupported." in server.stderr_lines


def test_app_without_lifespan_support_on_fails():
    result = run_cli("lifespan_apps:no_lifespan", "--port", "0", "--lifespan", "on")
    assert result.returncode == 3
    assert "AssertionError: only http is supported" in result.stderr


def test_lifespan_off_sends_no_lifespan_events():
    with ServerProcess.cli("lifespan_apps:records_types", "--port", "0", "--lifespan", "off") as server:
        server.wait_started()
        seen = httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).json()
        assert server.stop() == 0
    assert seen == ["http"]
    assert "Waiting for application startup." not in server.stderr


def test_lifespan_on_sends_the_events():
    with ServerProcess.cli("lifespan_apps:records_types", "--port", "0", "--lifespan", "on") as server:
        server.wait_started()
        seen = httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).json()
        assert server.stop() == 0
    assert seen == ["lifespan", "http"]
    assert "Application shutdown complete." in server.stderr


def test_shutdown_runs_after_the_requests_in_flight():
    with ServerProcess.cli("lifespan_apps:with_state", "--port", "0") as server:
        server.wait_started()
        results: dict = {}

        def slow_request():
            results["response"] = httpx.get(server.url + "/slow", timeout=HTTP_TIMEOUT)

        thread = threading.Thread(target=slow_request, daemon=True)
        thread.start()
        server.wait_for("event: request started")
        server.send_signal(signal.SIGTERM)
        thread.join(HTTP_TIMEOUT)
        assert server.wait_exit() == 0
    assert results["response"].text == "slow done"
    assert events(server) == ["startup", "request started", "request done", "shutdown"]


def test_shutdown_failed_is_logged():
    with ServerProcess.cli("lifespan_apps:shutdown_failed", "--port", "0") as server:
        server.wait_started()
        assert server.stop() == 0
    assert "ERROR:    could not flush the cache (lifespan test)" in server.stderr_lines
    assert "ERROR:    Application shutdown failed." in server.stderr_lines


def test_hanging_startup_is_ended_by_a_second_signal():
    with ServerProcess.cli("lifespan_apps:slow_startup", "--port", "0") as server:
        server.wait_for("event: startup hangs")
        server.send_signal(signal.SIGTERM)  # graceful: startup may still finish...
        time.sleep(0.5)  # (two signals sent at once would be seen as one)
        server.send_signal(signal.SIGTERM)  # ...forced: stop waiting for it
        assert server.wait_exit(10) == 0
    assert not any(re.search("running on", line) for line in server.stderr_lines)
    assert "Finished server process" in server.stderr
