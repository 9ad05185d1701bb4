"""A real browser against the real server: headless Chromium loads a page from
``ws_echo:app`` (tests/apps/ws_echo.py, ``BROWSER_PAGE``) that opens a websocket back to the
server, echoes a text and a binary message, closes with 4321, and reports what it got with a
second HTTP request, then what the page shows with a third. The test checks the reports the
server received and the close code the app saw.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid

import pytest

from support.client import http_get

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


BROWSER = find_browser()

pytestmark = pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on PATH (Debian: apt-get install chromium); .ci/run installs it",
)


def wait_events(port: int, key: str, timeout: float = 10.0, alive: subprocess.Popen | None = None) -> list:
    """The events filed under ``key``, polled until some arrive, the timeout passes, or the
    process ``alive`` (the browser) has exited."""
    deadline = time.monotonic() + timeout
    while True:
        found = http_get(port, "/events").json().get(key, [])
        if found or time.monotonic() > deadline or (alive is not None and alive.poll() is not None):
            return found
        time.sleep(0.05)


def test_browser_websocket_echo(serve, tmp_path):
    server = serve("ws_echo:app")
    t = uuid.uuid4().hex[:12]
    # Real time, not --virtual-time-budget with --dump-dom: virtual time does not wait for a
    # websocket, so on a slow machine the DOM was dumped before the socket opened. The page
    # reports twice instead (what it received, then what it shows), and Chromium is stopped
    # once the second report is in, or after the deadline.
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--remote-debugging-port=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"http://127.0.0.1:{server.port}/page?t={t}",
    ]
    err_path = tmp_path / "chromium.err"
    with open(err_path, "wb") as err_file:
        # Its own process group, so that Chromium's helper processes go with it.
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.DEVNULL,
            stderr=err_file,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        shown = wait_events(server.port, f"/report?t={t}&shown=1", timeout=60.0, alive=proc)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    report = http_get(server.port, "/events").json().get(f"/report?t={t}", [])
    assert report and shown, (
        f"the page never reported back (report {report}, shown {shown}); Chromium's stderr:\n"
        f"{err_path.read_text(errors='replace')[-2000:]}"
    )
    assert report[0]["got"] == ["h\u00e9llo browser", "1,2,3,250"]
    assert report[0]["protocol"] == "chat"
    # Chromium offers permessage-deflate; the server accepts it
    assert report[0]["extensions"].startswith("permessage-deflate")
    # the app saw the browser's close code and reason
    closed = wait_events(server.port, f"/echo?from=browser&t={t}")
    assert closed == [{"disconnect": 4321, "reason": "done"}]
    # and the page itself shows the result, with the report request's answer
    text = shown[0]["text"]
    assert text.startswith("reported 200 "), text
    assert json.dumps(["h\u00e9llo browser", "1,2,3,250"], ensure_ascii=False, separators=(",", ":")) in text
