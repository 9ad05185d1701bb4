"""--timeout-request against a real server: a request past it gets 504 (the app is cancelled,
the line is logged), requests within it are untouched, and the flag is validated."""

from __future__ import annotations

import subprocess
import sys
import time

from support.client import exchange, http_get
from support.server import REPO
from support.wire_cases import error_response


def test_slow_request_gets_504_and_a_log_line(serve):
    srv = serve("core_app:app", "--no-date-header", "--timeout-request", "1")
    mark = srv.log_mark()
    started = time.monotonic()
    received, closed = exchange(srv.port, b"GET /sleep?t=30 HTTP/1.1\r\nHost: t\r\n\r\n", timeout=10)
    took = time.monotonic() - started
    assert received == error_response(504)
    assert closed
    assert 1.0 <= took < 5.0, took  # the 1 s limit, checked by the once-a-second tick
    log = srv.wait_log(mark, "timed out")
    assert "Request timed out after" in log and '"GET /sleep"' in log
    assert "Traceback" not in log
    # the server goes on serving, and a quick request is not touched
    assert http_get(srv.port, "/sleep?t=0.1").body == b"slept"


def test_bad_value_is_one_line_error():
    done = subprocess.run(
        [sys.executable, "-m", "fastasgi", "core_app:app", "--timeout-request", "-1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode != 0
    assert "--timeout-request" in done.stderr
