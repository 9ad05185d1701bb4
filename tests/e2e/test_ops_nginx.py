"""Behind Debian's nginx as a reverse proxy (tests/support/nginx.py), the way production runs.

First what nginx and the server must agree on: upstream keep-alive over TCP and over a unix
socket, websockets passed through with Upgrade, the X-Forwarded-* fields nginx sets. Then
the lifecycle under a steady load of thousands of requests through nginx, every outcome
counted at the client (tests/support/load.py): a SIGHUP rolling restart, a lone worker
recycled by --limit-max-requests, a worker killed with SIGKILL, and a SIGTERM drain. Each
prints its figures ("requests sent, failed").

The PROXY protocol from a real proxy is tested with haproxy (v1 and v2) in
tests/e2e/test_ops_proxy_protocol.py.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import time

import pytest
from websockets.sync.client import connect as ws_connect

from support.load import SteadyLoad
from support.nginx import needs_nginx, start_nginx
from support.server import HTTP_TIMEOUT, ServerProcess
from support.supervisors import Supervised, is_alive, wait_until

pytestmark = [needs_nginx, pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs os.fork")]

ADMIN_LINE = r"Admin listener \(GET /metrics\) on http://127\.0\.0\.1:(\d+)/metrics"


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def metric(admin_port: int, name: str) -> float:
    status, body = get(admin_port, "/metrics")
    assert status == 200
    match = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(), re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def report(scenario: str, load: SteadyLoad) -> str:
    text = f"through nginx, {scenario}: {load.sent} requests sent, {len(load.failures)} failed"
    print("\n" + text)
    return text


@pytest.fixture
def proxied(tmp_path):
    """Start fastasgi (ops_app) with ARGS on TCP or on a unix socket, and nginx in front of
    it; yields (server, nginx port). Both are ended by their PIDs."""
    started: list[ServerProcess] = []

    def start(*args: str, unix: bool = False, app: str = "ops_app:app") -> tuple[ServerProcess, int]:
        if unix:
            path = tmp_path / "app.sock"
            server = Supervised.cli(app, "--uds", str(path), *args)
            started.append(server)
            server.wait_for(r"running on unix socket")
            upstream = f"unix:{path}"
        else:
            server = Supervised.cli(app, "--port", "0", *args)
            started.append(server)
            upstream = f"127.0.0.1:{server.wait_started()}"
        proxy, port = start_nginx(tmp_path / "nginx", upstream)
        started.append(proxy)
        return server, port

    yield start
    for process in reversed(started):
        process.close()


# -- what nginx and the server agree on ---------------------------------------------------


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_upstream_keepalive(proxied, unix):
    server, port = proxied("--admin-bind", "127.0.0.1:0", "--no-access-log", unix=unix)
    admin = int(server.wait_for(ADMIN_LINE).group(1))
    for _ in range(40):  # forty client connections to nginx...
        assert get(port, "/") == (200, b"ok")
    # ... and nginx reused its kept-alive upstream connection: one (or, after a race with
    # the keep-alive timeout, two) accepted by the server.
    assert metric(admin, "fastasgi_connections_accepted_total") <= 2


def trust_nginx(tmp_path, unix: bool) -> tuple[str, ...]:
    """nginx connects from 127.0.0.1 (trusted by default); on a unix socket there is no
    client address, and the socket's path is what --forwarded-allow-ips trusts."""
    return ("--forwarded-allow-ips", f"127.0.0.1,{tmp_path / 'app.sock'}") if unix else ()


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_forwarded_fields_from_nginx(proxied, tmp_path, unix):
    _, port = proxied(*trust_nginx(tmp_path, unix), unix=unix)
    status, body = get(port, "/scope", {"X-Forwarded-For": "203.0.113.7", "Host": "app.example"})
    assert status == 200
    scope = json.loads(body)
    # nginx appends its peer (127.0.0.1, a trusted proxy) to the client's X-Forwarded-For:
    # the app sees the client nginx was told about.
    assert scope["client"][0] == "203.0.113.7"
    assert scope["scheme"] == "http"
    headers = dict(scope["headers"])
    assert headers["host"] == "app.example"
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    # A location behind TLS termination says so with X-Forwarded-Proto.
    status, body = get(port, "/tls-terminated/scope")
    assert status == 200 and json.loads(body)["scheme"] == "https"


@pytest.mark.parametrize("unix", [False, True], ids=["tcp", "unix"])
def test_websocket_through_nginx(proxied, tmp_path, unix):
    _, port = proxied(*trust_nginx(tmp_path, unix), unix=unix)
    with ws_connect(
        f"ws://127.0.0.1:{port}/scope",
        additional_headers={"X-Forwarded-For": "203.0.113.9"},
        open_timeout=HTTP_TIMEOUT,
    ) as ws:
        scope = json.loads(ws.recv(timeout=HTTP_TIMEOUT))
    assert scope["type"] == "websocket"
    assert scope["client"][0] == "203.0.113.9"
    assert dict(scope["headers"])["upgrade"] == "websocket"
    # A websocket held open through nginx, then the client closes it.
    with ws_connect(f"ws://127.0.0.1:{port}/hold", open_timeout=HTTP_TIMEOUT) as ws:
        ws.ping().wait(HTTP_TIMEOUT)


# -- the lifecycle under load ---------------------------------------------------------------

LOAD_PATHS = ("/", "/", "/", "/bytes?n=2000")


def body_ok(body: bytes) -> bool:
    return body == b"ok" or body == b"x" * 2000 or body == b"slow done"


def test_sighup_rolling_restart_under_load(proxied):
    server, port = proxied("--workers", "2", "--no-access-log")
    old = server.wait_workers(2)
    with SteadyLoad(port, LOAD_PATHS, expect=body_ok) as load:
        load.wait_ok(500)
        server.send_signal(signal.SIGHUP)
        wait_until(
            lambda: not (server.children() & old) and len(server.children()) == 2, 30, "every worker replaced"
        )
        load.wait_ok(500)
    text = report("SIGHUP rolling restart (--workers 2)", load)
    assert load.sent >= 1000, text
    assert load.failures == [], text
    assert server.stop() == 0


def test_lone_worker_recycled_by_max_requests_under_load(proxied):
    server, port = proxied("--workers", "1", "--limit-max-requests", "600", "--no-access-log")
    (first,) = server.wait_workers(1)
    with SteadyLoad(port, LOAD_PATHS, expect=body_ok) as load:
        wait_until(
            lambda: len(re.findall(r"reached the request limit; starting a replacement", server.stderr)) >= 3,
            60,
            "three recycles",
        )
        wait_until(lambda: len(server.children()) == 1 and first not in server.children(), 20, "one worker")
        load.wait_ok(300)
    text = report("--workers 1 recycled by --limit-max-requests 600, three times", load)
    assert load.sent >= 1800, text
    assert load.failures == [], text
    assert server.stop() == 0


def test_worker_killed_under_load(proxied, tmp_path):
    server, port = proxied("--workers", "2", "--no-access-log")
    workers = server.wait_workers(2)
    # Some requests take 0.3 s, so that the killed worker has requests in flight.
    with SteadyLoad(port, (*LOAD_PATHS, "/slow?s=0.3"), threads=6, expect=body_ok) as load:
        load.wait_ok(500)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not is_alive(victim), 10, "the killed worker to be gone")
        replaced = server.wait_workers(2, exclude={victim})
        assert victim not in replaced
        load.wait_ok(500)
    # What was in flight on the killed worker broke (nginx logs each), and nginx tried each
    # of those GETs again (proxy_next_upstream), on the other worker.
    # The kernel ends the killed worker's connections with a FIN ("prematurely closed") or,
    # when request bytes were still unread, a RST ("reset by peer"): nginx logs either.
    log = (tmp_path / "nginx" / "error.log").read_text()
    broken = log.count("upstream prematurely closed connection") + sum(
        1 for line in log.splitlines() if "Connection reset by peer" in line and "upstream" in line
    )
    text = report(f"a worker killed with SIGKILL (--workers 2), {broken} requests in flight on it", load)
    assert re.search(rf"Child process \[{victim}\] died \(killed by SIGKILL\)", server.stderr)
    assert load.sent >= 1000, text
    assert broken >= 1, text
    assert load.failures == [], text
    assert server.stop() == 0


def test_sigterm_drain_under_load(proxied):
    server, port = proxied(
        "--workers", "2", "--drain-delay", "2", "--admin-bind", "127.0.0.1:0", "--no-access-log"
    )
    admin = int(server.wait_for(ADMIN_LINE).group(1))
    server.wait_workers(2)
    wait_until(lambda: get(admin, "/readyz")[0] == 200, 15, "ready")
    flipped = closed = exited = None
    with SteadyLoad(port, LOAD_PATHS, expect=body_ok) as load:
        load.wait_ok(300)
        ok_before = load.ok
        served_in_delay = 0
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        deadline = t0 + 20
        while exited is None and time.monotonic() < deadline:
            now = time.monotonic() - t0
            if flipped is None:
                try:
                    if get(admin, "/readyz")[0] == 503:
                        flipped = now
                except OSError:
                    pass
            if closed is None:
                try:
                    socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
                except ConnectionRefusedError:
                    closed = now
                    served_in_delay = load.ok - ok_before
            if server.proc.poll() is not None:
                exited = now
            time.sleep(0.01)
    assert flipped is not None and closed is not None and exited is not None
    # After the listener closed nginx has nowhere to send a request (this test has one
    # upstream): those are its 502s, and the load balancer's job to avoid (readiness).
    early = [(round(at - t0, 3), what) for at, what in load.failures if at - t0 < closed - 0.05]
    text = (
        f"through nginx, SIGTERM with --drain-delay 2 (--workers 2): {served_in_delay} requests served"
        f" between SIGTERM and the listener's close, {len(early)} failed; readiness flipped {flipped:.2f}s,"
        f" listener closed {closed:.2f}s, process exited {exited:.2f}s after SIGTERM"
    )
    print("\n" + text)
    assert flipped < 0.3, text
    assert 1.9 < closed < 2.8, text
    assert early == [], text
    assert served_in_delay >= 500, text
    assert server.proc.returncode == 0
