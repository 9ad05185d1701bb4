"""``/livez``, ``/readyz`` and ``--drain-delay``, run for real: one process and ``--workers 2``.

The app (tests/apps/health_app.py) takes ``HEALTH_STARTUP_DELAY`` seconds in lifespan
startup, blocks its event loop on ``/block`` and holds a request on ``/slow``. The admin
port is read from the "Admin listener" log line, which comes before lifespan startup.

The drain tests record a timeline in seconds after SIGTERM (readiness flipped, listener
closed, process exited) and print it (``pytest -s`` shows it). Every wait is bounded;
processes are stopped by their PID only.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import threading
import time

import pytest

from support.server import ServerProcess, server_env
from support.supervisors import Supervised, wait_until

ADMIN_LINE = r"Admin listener \(GET /metrics\) on http://127\.0\.0\.1:(\d+)/metrics"
APP = "health_app:app"

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs os.fork")


def start(*args: str, startup_delay: float = 0.0, workers: int = 1) -> ServerProcess:
    env = server_env({"HEALTH_STARTUP_DELAY": str(startup_delay)})
    cls = Supervised if workers > 1 else ServerProcess
    extra = ("--workers", str(workers)) if workers > 1 else ()
    server = cls.cli(APP, "--port", "0", "--admin-bind", "127.0.0.1:0", *extra, *args, env=env)
    server.admin_port = int(server.wait_for(ADMIN_LINE).group(1))
    return server


def ask(port: int, path: str, timeout: float = 2.0) -> tuple[int, str, dict[str, str]]:
    """One request on a new connection: (status, body, headers)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read().decode()
        return response.status, body, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def health(server: ServerProcess, path: str) -> tuple[int, str]:
    status, body, headers = ask(server.admin_port, path)
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.endswith("\n") and body.count("\n") == 1, body  # one line
    return status, body.strip()


def wait_health(server: ServerProcess, path: str, status: int, timeout: float) -> str:
    """Until ``path`` answers ``status``; its body."""
    seen: list[tuple[int, str]] = []

    def check() -> bool:
        seen.append(health(server, path))
        return seen[-1][0] == status

    try:
        wait_until(check, timeout, f"{path} {status}", interval=0.02)
    except AssertionError:
        raise AssertionError(
            f"{path}: no {status} within {timeout}s; last {seen[-1:]}\n{server._log()}"
        ) from None
    return seen[-1][1]


def block_loop(server: ServerProcess, seconds: float) -> threading.Thread:
    """GET /block?s=N in a thread: one event loop is blocked for N seconds."""

    def run() -> None:
        # a blocked worker is killed by its supervisor: no response then
        with contextlib.suppress(OSError, http.client.HTTPException):
            ask(server.port, f"/block?s={seconds}", timeout=seconds + 10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


# -- health ------------------------------------------------------------------------------


def test_single_process_health():
    with start("--timeout-worker-healthcheck", "1", startup_delay=1.5) as server:
        # lifespan startup is running: not ready, but alive
        status, reason = health(server, "/readyz")
        assert (status, reason) == (503, "starting: lifespan startup not complete")
        assert health(server, "/livez")[0] == 200
        assert wait_health(server, "/readyz", 200, 10) == "ok"
        server.wait_started()
        assert ask(server.port, "/")[0] == 200

        # the app blocks the event loop for 3 s: the tick stops, /livez says so
        started = time.monotonic()
        blocker = block_loop(server, 3)
        reason = wait_health(server, "/livez", 503, 3)
        assert reason.startswith("server: event loop silent for") and "(bound 1s)" in reason
        assert time.monotonic() - started < 2.5  # the last tick was up to 1 s before the block
        blocker.join(10)
        assert wait_health(server, "/livez", 200, 3) == "ok: 1 event loop answering"
        assert health(server, "/readyz")[0] == 200  # a blocked loop is not a readiness change
        assert server.stop(signal.SIGTERM) == 0


@needs_fork
def test_workers_health():
    with start("--timeout-worker-healthcheck", "2", startup_delay=1.5, workers=2) as server:
        status, reason = health(server, "/readyz")
        assert status == 503 and reason in (
            "starting: 0 of 2 workers ready",
            "starting: 1 of 2 workers ready",
        )
        assert wait_health(server, "/readyz", 200, 15) == "ok: 2 of 2 workers ready"
        assert health(server, "/livez") == (200, "ok: 3 event loops answering")  # supervisor + 2
        server.wait_started()

        # one worker's loop is blocked for 6 s: /livez names it from 1 s (half the bound)
        # on; the supervisor kills it at 2 s and starts another; meanwhile the other worker
        # serves and the server stays ready
        blocker = block_loop(server, 6)
        reason = wait_health(server, "/livez", 503, 4)
        assert reason.startswith("worker [") and "(bound 1s)" in reason, reason
        assert health(server, "/readyz")[0] == 200
        server.wait_for(r"missed its heartbeat .* \(--timeout-worker-healthcheck 2s\)", timeout=5)
        # live again once the blocked worker is gone: its replacement's loop may or may not be
        # counted yet (it starts with a 1.5 s startup delay), then it is
        assert wait_health(server, "/livez", 200, 5) in (
            "ok: 2 event loops answering",
            "ok: 3 event loops answering",
        )
        wait_until(
            lambda: health(server, "/livez") == (200, "ok: 3 event loops answering"),
            10,
            "the replacement's loop",
        )
        wait_until(
            lambda: health(server, "/readyz") == (200, "ok: 2 of 2 workers ready"), 10, "the replacement"
        )
        blocker.join(10)
        assert server.stop(signal.SIGTERM) == 0


# -- drain -------------------------------------------------------------------------------


class Timeline:
    """From a SIGTERM on: /readyz and new-connection requests polled, the process watched."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.t0 = 0.0
        self.ready_flipped: float | None = None
        self.listener_closed: float | None = None
        self.exited: float | None = None
        #: (seconds after SIGTERM, what happened) of every request that failed before the
        #: listener was seen closed
        self.failures: list[tuple[float, str]] = []
        self.served = 0  # requests served after SIGTERM

    def at(self) -> float:
        return time.monotonic() - self.t0

    def sigterm(self) -> None:
        self.t0 = time.monotonic()
        self.server.send_signal(signal.SIGTERM)

    def follow(self, timeout: float, request_timeout: float = 0.5) -> None:
        deadline = time.monotonic() + timeout
        while self.exited is None and time.monotonic() < deadline:
            if self.ready_flipped is None:
                try:
                    if ask(self.server.admin_port, "/readyz")[0] == 503:
                        self.ready_flipped = self.at()
                except OSError:
                    pass
            if self.listener_closed is None:
                sent = self.at()
                try:
                    status = ask(self.server.port, "/", timeout=request_timeout)[0]
                    if status == 200:
                        self.served += 1
                    else:
                        self.failures.append((sent, f"status {status}"))
                except ConnectionRefusedError:
                    self.listener_closed = sent
                except (OSError, http.client.HTTPException) as exc:
                    self.failures.append((sent, type(exc).__name__))
            if self.server.proc.poll() is not None:
                self.exited = self.at()
            time.sleep(0.02)

    def report(self, title: str) -> str:
        def shown(value: float | None) -> str:
            return "never" if value is None else f"{value:.2f}s"

        text = (
            f"drain timeline ({title}), seconds after SIGTERM: readiness flipped {shown(self.ready_flipped)},"
            f" listener closed {shown(self.listener_closed)}, process exited {shown(self.exited)};"
            f" {self.served} requests served after SIGTERM, failures {self.failures}"
        )
        print("\n" + text)
        return text


def held_request(port: int, seconds: float, result: dict) -> threading.Thread:
    """A request in flight across the drain (``/slow``), on a keep-alive connection."""

    def run() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=seconds + 15)
        try:
            connection.request("GET", "/")  # keep-alive established before the stop
            connection.getresponse().read()
            connection.request("GET", f"/slow?s={seconds}")
            response = connection.getresponse()
            result["status"] = response.status
            result["body"] = response.read()
            result["connection"] = response.getheader("Connection")
        except (OSError, http.client.HTTPException) as exc:
            result["error"] = repr(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_drain_single_process():
    with start("--drain-delay", "2", "--timeout-graceful-shutdown", "10") as server:
        server.wait_started()
        assert wait_health(server, "/readyz", 200, 5) == "ok"
        held: dict = {}
        holder = held_request(server.port, 3.5, held)
        time.sleep(0.3)  # the /slow request is in flight
        timeline = Timeline(server)
        timeline.sigterm()
        timeline.follow(timeout=15)
        holder.join(10)
        timeline.report("one process, --drain-delay 2")

        assert timeline.ready_flipped is not None and timeline.ready_flipped < 0.3
        assert timeline.listener_closed is not None and 1.9 < timeline.listener_closed < 2.6
        assert timeline.failures == []
        assert timeline.served >= 10  # new connections were served during the delay
        # the request in flight finished after the listener closed, told to close
        assert held == {"status": 200, "body": b"slow done", "connection": "close"}, held
        assert timeline.exited is not None and 3.1 < timeline.exited < 6
        assert server.proc.returncode == 0
        log = server.log()
        assert "Draining: /readyz answers 503; still serving for 2s (--drain-delay)." in log
        assert log.index("Draining") < log.index("Shutting down") < log.index("event: shutdown")


def test_second_sigterm_ends_the_drain_delay():
    with start("--drain-delay", "30") as server:
        server.wait_started()
        timeline = Timeline(server)
        timeline.sigterm()
        wait_health(server, "/readyz", 503, 1)
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(5) == 0
        assert timeline.at() < 2.0, timeline.at()
        assert "Application shutdown complete." not in server.log()  # forced: skipped


@needs_fork
def test_drain_workers():
    with start("--drain-delay", "2", "--timeout-graceful-shutdown", "10", workers=2) as server:
        server.wait_started()
        assert wait_health(server, "/readyz", 200, 15) == "ok: 2 of 2 workers ready"
        held: dict = {}
        holder = held_request(server.port, 3.5, held)
        time.sleep(0.3)
        timeline = Timeline(server)
        timeline.sigterm()
        timeline.follow(timeout=20)
        holder.join(10)
        text = timeline.report("--workers 2, --drain-delay 2")

        # the supervisor flips readiness at once; the workers, not told yet, serve on; then
        # the listener closes (refused, not left to time out in an accept queue)
        assert timeline.ready_flipped is not None and timeline.ready_flipped < 0.3
        assert timeline.failures == [], text
        assert timeline.listener_closed is not None and 1.9 < timeline.listener_closed < 2.8
        assert timeline.served >= 10
        assert held == {"status": 200, "body": b"slow done", "connection": "close"}, held
        assert timeline.exited is not None and 3.1 < timeline.exited < 8
        assert server.proc.returncode == 0
        log = server.log()
        assert (
            log.index("Draining: /readyz answers 503")
            < log.index("Drain delay over")
            < log.index("Shutting down")
        )


@needs_fork
def test_workers_second_sigterm_ends_the_drain_delay():
    with start("--drain-delay", "30", workers=2) as server:
        server.wait_started()
        wait_health(server, "/readyz", 200, 15)
        t0 = time.monotonic()
        server.send_signal(signal.SIGTERM)
        wait_health(server, "/readyz", 503, 1)
        time.sleep(0.3)
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(8) == 0
        assert time.monotonic() - t0 < 3.0
        assert "ending the drain delay and forcing the child processes to stop" in server.log()


def test_drain_delay_from_the_environment_is_validated():
    env = server_env({"FASTASGI_DRAIN_DELAY": "soon"})
    with ServerProcess.cli(APP, "--port", "0", env=env) as server:
        assert server.wait_exit(20) == 2
        assert "Invalid value for '--drain-delay': 'soon' is not a valid float" in server.log()
