"""Health and drain logic, in-process: the judgements of ``/livez`` and ``/readyz``
(``fastasgi.admin``), the listener's health routes, what a server and a supervisor report
at each stage, and ``--drain-delay``'s validation. The real processes are in
tests/e2e/test_health_drain.py."""

from __future__ import annotations

import http.client
import logging
import time

import pytest

from fastasgi import admin
from fastasgi.config import Config, ConfigError
from fastasgi.server import Server
from fastasgi.supervisors._child import ChildServer
from fastasgi.supervisors.multiprocess import Multiprocess, Worker

# -- the judgements ------------------------------------------------------------------------


def test_liveness_ok_within_the_bound():
    assert admin.judge_liveness(100.0, [("server", 96.0)], 5.0) == (True, "ok: 1 event loop answering")
    assert admin.judge_liveness(100.0, [("a", 99.0), ("b", 95.0)], 5.0) == (
        True,
        "ok: 2 event loops answering",
    )


def test_liveness_names_the_first_silent_loop():
    live, reason = admin.judge_liveness(100.0, [("a", 99.0), ("worker [7]", 93.5), ("c", 90.0)], 5.0)
    assert not live
    assert reason == "worker [7]: event loop silent for 6.5s (bound 5s)"


@pytest.mark.parametrize(
    ("draining", "ready", "total", "served", "workers", "expected"),
    [
        (False, 0, 1, False, False, (False, "starting: lifespan startup not complete")),
        (False, 1, 1, True, False, (True, "ok")),
        (True, 1, 1, True, False, (False, "draining")),
        (False, 0, 2, False, True, (False, "starting: 0 of 2 workers ready")),
        (False, 1, 2, False, True, (False, "starting: 1 of 2 workers ready")),
        (False, 2, 2, False, True, (True, "ok: 2 of 2 workers ready")),
        # after the first startup, a worker being replaced does not take the server out
        (False, 1, 2, True, True, (True, "ok: 1 of 2 workers ready")),
        (False, 0, 2, True, True, (False, "no worker ready: 0 of 2 (restarting)")),
        (True, 2, 2, True, True, (False, "draining")),
        (True, 0, 2, False, True, (False, "draining")),
    ],
)
def test_readiness(draining, ready, total, served, workers, expected):
    assert admin.judge_readiness(draining, ready, total, served, workers) == expected


# -- the listener's routes -------------------------------------------------------------------


class FakeHealth:
    def __init__(self) -> None:
        self.live = (True, "ok: 1 event loop answering")
        self.ready = (False, "starting: 0 of 2 workers ready\nsecond line is never sent")

    def health(self) -> admin.Health:
        return admin.Health(lambda: self.live, lambda: self.ready)


@pytest.fixture
def health_listener():
    fake = FakeHealth()
    server = admin.start(("tcp", ("127.0.0.1", 0)), lambda: admin.Snapshot({}), fake.health())
    yield server.sockets[0].getsockname()[1], fake
    server.close()


def ask(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def test_health_routes_answer_one_plain_line(health_listener):
    port, fake = health_listener
    status, headers, body = ask(port, "/livez")
    assert (status, body) == (200, b"ok: 1 event loop answering\n")
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    assert headers["Cache-Control"] == "no-store"
    status, _, body = ask(port, "/readyz?verbose")
    assert (status, body) == (503, b"starting: 0 of 2 workers ready\n")
    fake.ready = (True, "ok: 2 of 2 workers ready")
    fake.live = (False, "server: event loop silent for 6.0s (bound 5s)")
    assert ask(port, "/readyz")[0] == 200
    assert ask(port, "/livez")[:3:2] == (503, b"server: event loop silent for 6.0s (bound 5s)\n")


def test_health_routes_head(health_listener):
    port, _ = health_listener
    status, headers, body = ask(port, "/readyz", "HEAD")
    assert (status, body) == (503, b"")
    assert int(headers["Content-Length"]) == len(b"starting: 0 of 2 workers ready\n")
    assert ask(port, "/livez", "HEAD")[0] == 200
    assert ask(port, "/livez", "POST")[0] == 405


def test_a_failing_check_is_a_503(caplog):
    def broken() -> tuple[bool, str]:
        raise RuntimeError("boom")

    server = admin.start(("tcp", ("127.0.0.1", 0)), lambda: admin.Snapshot({}), admin.Health(broken, broken))
    # directly on the logger: an earlier test's logging configuration may stop propagation
    logger = logging.getLogger("fastasgi.error")
    logger.addHandler(caplog.handler)
    try:
        assert ask(server.sockets[0].getsockname()[1], "/livez")[::2] == (503, b"health check failed\n")
    finally:
        server.close()
        logger.removeHandler(caplog.handler)
    assert "could not check /livez" in caplog.text


# -- what a server reports -------------------------------------------------------------------


def test_server_readiness_follows_startup_and_the_stop_signal():
    server = Server(Config("health_app:app"))
    assert server.check_ready() == (False, "starting: lifespan startup not complete")
    server.started = True
    assert server.check_ready() == (True, "ok")
    server.handle_exit(15, None)  # the first SIGTERM: 503 at once, before anything else
    assert server.check_ready() == (False, "draining")
    assert not server.force_exit


def test_server_liveness_follows_the_tick():
    server = Server(Config("health_app:app", timeout_worker_healthcheck=2))
    server.last_beat = time.monotonic()
    assert server.check_live()[0]
    server.last_beat = time.monotonic() - 2.5
    live, reason = server.check_live()
    assert not live and reason.startswith("server: event loop silent for 2.5s (bound 2s)")


def test_drain_delay_applies_to_the_server_only():
    config = Config("health_app:app", drain_delay=7.5)
    assert Server(config).drain_delay() == 7.5
    # the supervisor drains for its workers; a --reload server is restarted for an edit
    assert ChildServer(config, supervisor_pid=1).drain_delay() == 0.0


@pytest.mark.parametrize("value", [-1, "ten", float("nan"), True])
def test_drain_delay_is_validated(value):
    with pytest.raises(ConfigError) as info:
        Config("health_app:app", drain_delay=value)
    message = str(info.value)
    assert message.startswith("Invalid value for '--drain-delay': ") and "\n" not in message


# -- what a supervisor reports ---------------------------------------------------------------


def supervisor(workers: int = 2, healthcheck: float = 4.0) -> Multiprocess:
    return Multiprocess(Config("health_app:app", workers=workers, timeout_worker_healthcheck=healthcheck))


def test_supervisor_readiness_counts_ready_workers():
    sup = supervisor()
    now = time.monotonic()
    sup.workers = [Worker(10, -1, [], now), Worker(11, -1, [], now)]
    assert sup.check_ready() == (False, "starting: 0 of 2 workers ready")
    sup.workers[0].ready = True
    assert sup.check_ready() == (False, "starting: 1 of 2 workers ready")
    sup.workers[1].ready = True
    assert sup.check_ready() == (True, "ok: 2 of 2 workers ready")
    sup.served = True
    sup.stop_signals = 1  # SIGTERM: the drain begins, the workers still serve
    assert sup.check_ready() == (False, "draining")


def test_supervisor_liveness_bounds():
    sup = supervisor(healthcheck=4.0)
    now = time.monotonic()
    sup.last_turn = now
    sup.workers = [Worker(10, -1, [], now), Worker(11, -1, [], now - 2.5)]
    live, reason = sup.check_live()
    # a worker is reported from half the healthcheck on (the supervisor kills it at 4 s)
    assert not live and reason.startswith("worker [11]: event loop silent for 2.5s (bound 2s)")
    sup.workers[1].last_seen = now - 1.0
    assert sup.check_live() == (True, "ok: 3 event loops answering")
    sup.last_turn = now - 5.0
    live, reason = sup.check_live()
    assert not live and reason.startswith("supervisor: event loop silent for 5.0s (bound 4s)")
