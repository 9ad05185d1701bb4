"""Timeouts, limits and graceful shutdown, against the real CLI (``python -m fastasgi``):
slow clients cut off, 503 beyond --limit-concurrency, 413 beyond --limit-request-body,
SIGTERM with requests in flight and idle keep-alive connections."""

from __future__ import annotations

import http
import signal
import sys
import threading
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from support.client import wait_closed
from support.ops import connect, serve
from support.server import HTTP_TIMEOUT

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")

# "Request Entity Too Large" before Python 3.13, "Content Too Large" (RFC 9110) after
TOO_LARGE = http.HTTPStatus(413).phrase.encode()


# --- slow clients ------------------------------------------------------------------------------


def test_slowloris_head_is_cut_off_after_timeout_request_head():
    with serve("--timeout-request-head", "1", "--timeout-keep-alive", "30") as server:
        sock = connect(server).sock  # the bare socket: sendall raises once we are cut off
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        # Trickle one header line every 0.3 s: the head never completes.
        cut = None
        for number in range(20):
            time.sleep(0.3)
            try:
                sock.sendall(b"X-Trickle-%d: y\r\n" % number)
            except (BrokenPipeError, ConnectionResetError):
                cut = time.monotonic() - started
                break
            sock.settimeout(0.01)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            cut = time.monotonic() - started
            break
        assert cut is not None, "the trickling client was never cut off"
        # Timeouts are checked by the once-a-second tick, against times it keeps: the cut
        # comes within a second of the timeout, either side (+ scheduling slack).
        assert 0.5 <= cut <= 3.0, cut
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        sock.close()
        # Other clients are served as usual.
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).text == "ok"


def test_complete_head_is_not_cut_by_the_head_timeout():
    with serve("--timeout-request-head", "1") as server:
        sock = connect(server)
        sock.send(b"GET / HT")
        time.sleep(0.5)  # well within the timeout
        sock.send(b"TP/1.1\r\nHost: x\r\n\r\n")
        response = sock.read_response()
        assert (response.status, response.body) == (200, b"ok")
        sock.close()


def test_stalled_body_is_cut_off_after_timeout_request_body():
    with serve("--timeout-request-body", "1") as server:
        sock = connect(server)
        sock.send(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 10)
        took, received = wait_closed(sock, timeout=5)
        assert 0.5 <= took <= 3.0, took  # +- the one-second tick, as above
        assert received.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), received
        sock.close()


def test_slow_but_steady_body_is_not_cut_off():
    # The body timeout is about inactivity: a body that keeps coming is received whole.
    # (2 s: the tick's one-second granularity must not make a 0.5 s gap look like 1 s.)
    with serve("--timeout-request-body", "2") as server:
        sock = connect(server)
        sock.send(b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n")
        for _ in range(5):
            time.sleep(0.5)
            sock.send(b"b" * 10)
        response = sock.read_response()
        assert (response.status, response.body) == (200, b"50")
        sock.close()


def test_body_timeout_only_while_the_app_waits_for_the_body():
    # The app answers after one body message and never waits for the rest: no 408.
    with serve("--timeout-request-body", "1") as server:
        sock = connect(server)
        sock.send(b"POST /read-one HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"c" * 10)
        response = sock.read_response()
        assert (response.status, response.body) == (200, b"10")
        sock.close()


# --- limits -------------------------------------------------------------------------------------


def test_limit_concurrency_answers_503_beyond_it():
    with serve("--limit-concurrency", "2") as server:
        slow = [connect(server), connect(server)]
        for sock in slow:
            sock.send(b"GET /slow?s=1.5 HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + HTTP_TIMEOUT
        while server.stderr.count("slow started") < 2:
            assert time.monotonic() < deadline, server.stderr
            time.sleep(0.02)
        extra = connect(server)
        extra.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = extra.read_response()
        assert (response.status, response.body, response.header("connection")) == (
            503,
            b"Service Unavailable",
            b"close",
        )
        extra.close()
        for sock in slow:
            assert sock.read_response().status == 200
            sock.close()
        # Below the limit again.
        assert httpx.get(server.url + "/", timeout=HTTP_TIMEOUT).status_code == 200


@pytest.mark.parametrize(
    "request_bytes, expected",
    [
        (b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n" + b"a" * 100, (200, b"100")),
        # refused from the head alone, before any body byte is sent
        (b"POST /body HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", (413, TOO_LARGE)),
        (b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"32\r\n" + b"a" * 50 + b"\r\n" +
         b"32\r\n" + b"a" * 50 + b"\r\n0\r\n\r\n", (200, b"100")),
        (b"POST /body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + b"32\r\n" + b"a" * 50 + b"\r\n" +
         b"33\r\n" + b"a" * 51 + b"\r\n0\r\n\r\n", (413, TOO_LARGE)),
    ],
    ids=["length-at-limit", "length-over", "chunked-at-limit", "chunked-over"],
)  # fmt: skip
def test_limit_request_body(request_bytes, expected):
    with serve("--limit-request-body", "100") as server:
        sock = connect(server)
        sock.send(request_bytes)
        response = sock.read_response()
        assert (response.status, response.body) == expected
        if response.status == 413:
            assert response.header("connection") == b"close"
            assert wait_closed(sock, timeout=5)[1] == b""  # and nothing after it
        sock.close()


def test_no_body_limit_by_default():
    with serve() as server:
        response = httpx.post(server.url + "/body", content=b"z" * 3_000_000, timeout=HTTP_TIMEOUT)
        assert response.text == "3000000"


# --- graceful shutdown --------------------------------------------------------------------------


def _slow_request(server, seconds: float, results: list) -> threading.Thread:
    def go():
        try:
            sock = connect(server)
            sock.send(b"GET /slow?s=%s HTTP/1.1\r\nHost: x\r\n\r\n" % str(seconds).encode())
            results.append(sock.read_response())
            sock.close()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            results.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_sigterm_finishes_requests_closes_idle_connections_and_websockets():
    with serve() as server:
        # An idle keep-alive connection, a websocket, and three requests in flight.
        idle = connect(server)
        idle.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert idle.read_response().status == 200
        with ws_connect(f"ws://127.0.0.1:{server.port}/hold", open_timeout=HTTP_TIMEOUT) as ws:
            results: list = []
            threads = [_slow_request(server, 1.0, results) for _ in range(3)]
            deadline = time.monotonic() + HTTP_TIMEOUT
            while server.stderr.count("slow started") < 3:
                assert time.monotonic() < deadline, server.stderr
                time.sleep(0.02)

            server.send_signal(signal.SIGTERM)
            # Closed without waiting for the requests: at the first tick that finds it idle for
            # the shutdown grace (1 s; a request crossing the close would still be answered).
            took, leftover = wait_closed(idle, timeout=2.5)
            assert leftover == b"" and took < 2.5
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=HTTP_TIMEOUT)
            assert ws.close_code == 1012  # RFC 6455 7.4.1: service restart
        for thread in threads:
            thread.join(HTTP_TIMEOUT)
        assert server.wait_exit() == 0
        idle.close()
    assert len(results) == 3
    for result in results:
        assert not isinstance(result, Exception), result
        assert (result.status, result.body, result.header("connection")) == (200, b"slow done", b"close")
    assert "Cancelling" not in server.stderr and "timed out" not in server.stderr


def test_graceful_shutdown_timeout_cancels_what_is_left_and_says_so():
    with serve("--timeout-graceful-shutdown", "0.5") as server:
        results: list = []
        thread = _slow_request(server, 30, results)
        server.wait_for("slow started")
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        thread.join(HTTP_TIMEOUT)
        assert server.wait_exit() == 0
        took = time.monotonic() - sent
    assert took < 5, took
    assert len(results) == 1 and isinstance(results[0], ConnectionError), results  # closed, no response
    log = server.stderr
    assert (
        "Graceful shutdown timed out after 0.5s: closing 1 connection(s) with 1 request(s) in flight." in log
    )
    assert "Cancelling 1 request task(s) still running." in log
    assert "slow cancelled" in log  # the app saw the cancellation and ran its cleanup
    assert log.index("Cancelling") < log.index("Waiting for application shutdown.")


def test_connection_accepted_just_before_sigterm_is_answered():
    # A client that connected before the signal but whose request arrives after it is
    # answered, not reset: nothing accepted is dropped while within the timeout.
    with serve() as server:
        busy: list = []
        thread = _slow_request(server, 1.0, busy)  # keeps the server draining for a while
        server.wait_for("slow started")
        fresh = connect(server)
        time.sleep(0.2)  # accepted by now
        server.send_signal(signal.SIGTERM)
        server.wait_for("Shutting down")
        time.sleep(0.1)
        fresh.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = fresh.read_response()
        assert (response.status, response.body, response.header("connection")) == (200, b"ok", b"close")
        fresh.close()
        thread.join(HTTP_TIMEOUT)
        assert server.wait_exit() == 0
    assert busy and busy[0].status == 200
