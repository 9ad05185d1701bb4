"""A real browser against the real server: headless Chromium loads a page from
``ws_echo:app`` (tests/apps/ws_echo.py, ``BROWSER_PAGE``) that opens a websocket back to the
server, echoes a text and a binary message, closes with 4321, and reports what it got with a
second HTTP request. The test checks the report the server received, the close code the app
saw, and the DOM Chromium dumps.
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


def wait_events(port: int, key: str, timeout: float = 10.0) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = http_get(port, "/events").json().get(key, [])
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_browser_websocket_echo(serve, tmp_path):
    server = serve("ws_echo:app")
    t = uuid.uuid4().hex[:12]
    cmd = [
        BROWSER,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={tmp_path / 'profile'}",
        # virtual time lets the page's websocket and fetch finish before the DOM is dumped
        "--virtual-time-budget=10000",
        "--dump-dom",
        f"http://127.0.0.1:{server.port}/page?t={t}",
    ]
    # Its own process group, so that Chromium's helper processes go with it on a timeout.
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:
        dom, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
        pytest.fail("Chromium did not finish within 60 s")

    report = wait_events(server.port, f"/report?t={t}")
    assert report, (
        f"the page never reported back; DOM:\n{dom.decode(errors='replace')[-2000:]}\n"
        f"stderr:\n{err.decode(errors='replace')[-2000:]}"
    )
    assert report[0]["got"] == ["h\u00e9llo browser", "1,2,3,250"]
    assert report[0]["protocol"] == "chat"
    # Chromium offers permessage-deflate; the server accepts it
    assert report[0]["extensions"].startswith("permessage-deflate")
    # the app saw the browser's close code and reason
    closed = wait_events(server.port, f"/echo?from=browser&t={t}")
    assert closed == [{"disconnect": 4321, "reason": "done"}]
    # and the page itself shows the result
    text = dom.decode("utf-8", "replace")
    # The server has the report (above); the DOM may be dumped before the page saw the
    # answer to its report request, so it shows "reporting ..." or "reported 200 ...".
    assert "reporting " in text or "reported 200 " in text, text[-2000:]
    assert json.dumps(["h\u00e9llo browser", "1,2,3,250"], ensure_ascii=False, separators=(",", ":")) in text
