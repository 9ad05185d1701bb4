"""``--workers N``: the supervisor process, run for real with real signals.

Each test starts ``python -m fastasgi sup_app:... --workers N --port 0`` as a subprocess,
reads the port from the "running on" line, finds the worker processes as the children of
the supervisor's PID (/proc), and talks to them over loopback. ``sup_app`` answers with the
PID of the worker that served the request. Leaving a test kills the supervisor and every
worker it started that is still alive.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import sys
import threading
import time

import pytest

from support.server import free_port, run_cli, server_env
from support.supervisors import (
    SteadyClient,
    Supervised,
    get,
    is_alive,
    try_get,
    wait_until,
)

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="--workers needs os.fork")


def start(*args: str, app: str = "sup_app:app", env: dict[str, str] | None = None, **kwargs) -> Supervised:
    return Supervised.cli(app, "--port", "0", *args, env=env, **kwargs)


def pid_of(port: int, path: str = "/") -> int:
    status, body = get(port, path)
    assert status == 200
    return int(body)


# -- serving from several processes ------------------------------------------------------


def test_two_workers_serve_from_two_processes():
    with start("--workers", "2") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        assert server.wait_for(r"Started parent process \[(\d+)\]").group(1) == str(server.pid)

        # Both workers accept from one queue, and which one takes a connection is the
        # kernel's choice. While one has its event loop blocked (/block), the next
        # connection can only be the other's.
        blocked: dict[str, tuple[int, bytes]] = {}
        blocker = threading.Thread(
            target=lambda: blocked.update(response=get(port, "/block?s=1")), daemon=True
        )
        blocker.start()
        time.sleep(0.3)
        other = pid_of(port)
        blocker.join(10)
        assert blocked["response"][0] == 200
        assert {int(blocked["response"][1]), other} == workers
        assert {pid_of(port) for _ in range(5)} <= workers

        assert server.stop() == 0
    assert "Stopping parent process" in server.stderr


def test_web_concurrency_sets_the_number_of_workers():
    with start(env=server_env({"WEB_CONCURRENCY": "3"})) as server:
        server.wait_started()
        assert len(server.wait_workers(3)) == 3
        assert server.stop() == 0


def test_workers_on_a_unix_socket(tmp_path):
    path = tmp_path / "sup.sock"
    with Supervised.cli("sup_app:app", "--uds", str(path), "--workers", "2") as server:
        server.wait_for(r"running on unix socket")
        workers = server.wait_workers(2)
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := client.recv(4096):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200 ")
        assert int(response.rpartition(b"\r\n\r\n")[2]) in workers
        assert server.stop() == 0
    assert not path.exists()


def test_workers_on_several_addresses(tmp_path):
    path = tmp_path / "sup.sock"
    with Supervised.cli(
        "sup_app:app", "--bind", "127.0.0.1:0", "--bind", f"unix:{path}", "--workers", "2"
    ) as server:
        port = server.wait_started()
        server.wait_for(rf"running on unix socket {path}")
        workers = server.wait_workers(2)
        assert pid_of(port) in workers
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(5)
            client.connect(str(path))
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert client.recv(4096).startswith(b"HTTP/1.1 200 ")
        assert server.stop() == 0
    assert not path.exists()


# -- a worker that dies, hangs or hits its request limit is replaced ---------------------


def test_a_killed_worker_is_replaced():
    with start("--workers", "2") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf"Child process \[{victim}\] died \(killed by SIGKILL\)")
        now = server.wait_workers(2, exclude={victim})
        assert victim not in now and len(now & workers) == 1
        assert pid_of(port) in now
        assert server.stop() == 0


def test_a_worker_that_crashes_is_replaced():
    with start("--workers", "2") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        with pytest.raises((OSError, http.client.HTTPException)):
            get(port, "/exit", timeout=5)  # the worker exits mid-request: no response
        dead = wait_until(
            lambda: {pid for pid in workers if not is_alive(pid)}, 10, "the crashed worker to exit"
        )
        (crashed,) = dead
        server.wait_for(rf"Child process \[{crashed}\] died \(exit code 1\)")
        server.wait_workers(2, exclude=dead)
        assert server.stop() == 0


def test_a_worker_with_a_blocked_event_loop_is_restarted():
    with start("--workers", "2", "--timeout-worker-healthcheck", "1") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        blocker = threading.Thread(target=lambda: try_get(port, "/block?s=4"), daemon=True)
        blocker.start()
        match = server.wait_for(
            r"Child process \[(\d+)\] missed its heartbeat for [\d.]+s \(--timeout-worker-healthcheck 1s\);"
            r" its Python stacks follow, then it is killed\.",
            10,
        )
        hung = int(match.group(1))
        assert hung in workers
        server.wait_for(rf"Child process \[{hung}\] died \(killed by SIGKILL\)")
        server.wait_workers(2, exclude={hung})
        blocker.join(10)
        assert server.stop() == 0


def test_a_blocked_worker_writes_where_it_was_blocked_before_it_is_killed():
    # --limit-worker-lifetime makes --workers 1 a supervisor with one worker (alone, it means
    # one process, as with uvicorn); the hour never passes in the test.
    args = ("--workers", "1", "--limit-worker-lifetime", "3600", "--timeout-worker-healthcheck", "1")
    with start(*args) as server:
        port = server.wait_started()
        (stuck,) = server.wait_workers(1)
        assert pid_of(port) == stuck
        mark = server.log_mark()
        blocker = threading.Thread(target=lambda: try_get(port, "/block?s=4"), daemon=True)
        blocker.start()
        server.wait_for(rf"Child process \[{stuck}\] died \(killed by SIGKILL\)", 10)
        log = server.log_since(mark)

        # the supervisor's line, then the worker's stacks (faulthandler's), then the death
        announced = re.search(
            rf"Child process \[{stuck}\] missed its heartbeat for ([\d.]+)s"
            r" \(--timeout-worker-healthcheck 1s\); its Python stacks follow, then it is killed\.",
            log,
        )
        assert announced, log
        assert float(announced.group(1)) >= 1.0
        stacks = log[announced.end() : log.index(f"Child process [{stuck}] died")]
        assert "(most recent call first):" in stacks, log
        # the frame on top of the main thread is the app's line that sleeps
        app_file = os.path.join(os.path.dirname(__file__), os.pardir, "apps", "sup_app.py")
        with open(app_file) as source:
            line = next(n for n, text in enumerate(source, 1) if "time.sleep(_seconds(scope, 1))" in text)
        top = re.search(r'File "([^"]+)", line (\d+) in (\w+)', stacks)
        assert top, stacks
        where = (os.path.basename(top.group(1)), int(top.group(2)), top.group(3))
        assert where == ("sup_app.py", line, "_http"), stacks

        (replacement,) = server.wait_workers(1, exclude={stuck})
        assert pid_of(port) == replacement
        blocker.join(10)
        assert server.stop() == 0


def test_a_slow_startup_is_not_a_failed_healthcheck():
    # Lifespan startup takes 2.5 s, the healthcheck 1 s: while a worker starts, a thread of
    # its own reports that the process is alive.
    with start("--workers", "2", "--timeout-worker-healthcheck", "1", app="sup_app:slow_startup") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        assert pid_of(port) in workers
        assert "healthcheck" not in server.stderr
        assert len(server.started_pids()) == 2
        assert server.stop() == 0


def test_limit_max_requests_replaces_the_worker():
    with start("--workers", "2", "--limit-max-requests", "3") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        statuses = [get(port)[0] for _ in range(8)]  # at least one worker serves 3 or more
        assert statuses == [200] * 8
        match = server.wait_for(
            r"Child process \[(\d+)\] reached the request limit; starting a replacement\."
        )
        assert int(match.group(1)) in workers
        server.wait_for(r"Maximum request limit of 3 exceeded")
        assert get(port)[0] == 200
        wait_until(lambda: len(server.started_pids()) >= 3, 10, "the replacement worker")
        server.wait_workers(2)
        assert server.stop() == 0


# -- signals -----------------------------------------------------------------------------


@pytest.mark.parametrize("listeners", [[], ["--reuse-port"]], ids=["shared-socket", "reuse-port"])
def test_sighup_replaces_every_worker_without_a_failed_request(listeners):
    with start("--workers", "2", *listeners) as server:
        port = server.wait_started()
        old = server.wait_workers(2)
        client = SteadyClient(port)
        client.start()
        try:
            wait_until(lambda: client.ok >= 20, 10, "the steady client to get going")
            server.send_signal(signal.SIGHUP)
            server.wait_for(r"Received SIGHUP, restarting processes\.")
            new = wait_until(
                lambda: (c := server.children()) and not (c & old) and len(c) == 2 and c,
                20,
                "all workers replaced",
            )
            served_before = client.ok
            wait_until(lambda: client.ok >= served_before + 20, 10, "requests to the new workers")
        finally:
            client.stop()
        assert client.failures == []
        assert set(client.pids[-10:]) <= new
        for pid in old:
            server.wait_for(rf"Waiting for child process \[{pid}\]")
        assert server.stop() == 0


def test_sighup_keeps_the_old_workers_when_the_new_code_cannot_start(tmp_path):
    app_file = tmp_path / "deployed.py"
    app_file.write_text("from sup_app import app\n")
    with start("--workers", "2", "--app-dir", str(tmp_path), app="deployed:app") as server:
        port = server.wait_started()
        old = server.wait_workers(2)
        app_file.write_text("from sup_app import startup_fails as app\n")  # a bad deploy
        server.send_signal(signal.SIGHUP)
        server.wait_for(
            r"New child process \[\d+\] exit code 3 before it was ready; keeping the old workers and aborting the restart\."
        )
        assert server.children() == old
        assert {pid_of(port) for _ in range(3)} <= old

        app_file.write_text("from sup_app import app\n")  # fixed: the next SIGHUP works
        server.send_signal(signal.SIGHUP)
        new = wait_until(
            lambda: (c := server.children()) and not (c & old) and len(c) == 2 and c, 20, "new workers"
        )
        assert pid_of(port) in new
        assert server.stop() == 0


def test_sigttin_and_sigttou_change_the_number_of_workers():
    with start("--workers", "2") as server:
        port = server.wait_started()
        two = server.wait_workers(2)
        server.send_signal(signal.SIGTTIN)
        server.wait_for(r"Received SIGTTIN, increasing the number of processes\.")
        three = server.wait_workers(3)
        assert two < three
        server.send_signal(signal.SIGTTOU)
        server.wait_for(r"Received SIGTTOU, decreasing number of processes\.")
        wait_until(lambda: len(server.children()) == 2, 10, "one worker less")
        assert get(port)[0] == 200
        server.send_signal(signal.SIGTTOU)
        wait_until(lambda: len(server.children()) == 1, 10, "one worker")
        server.send_signal(signal.SIGTTOU)
        server.wait_for(r"Already reached one process, cannot decrease the number of processes anymore\.")
        assert len(server.children()) == 1
        assert server.stop() == 0


def test_sigterm_lets_the_request_in_flight_finish():
    with start("--workers", "2") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        result: dict[str, object] = {}
        slow = threading.Thread(target=lambda: result.update(response=get(port, "/slow?s=1.5")), daemon=True)
        slow.start()
        server.wait_for(r"slow started (\d+)")
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(15) == 0
        slow.join(5)
        assert result["response"][0] == 200 and int(result["response"][1]) in workers
        assert time.monotonic() - started >= 1.0  # the supervisor waited for the request
        assert not any(is_alive(pid) for pid in workers)
    assert "Received SIGTERM, exiting." in server.stderr


def test_ctrl_c_in_a_terminal_is_a_graceful_stop():
    # A terminal sends SIGINT to the whole process group; then the supervisor forwards
    # SIGTERM: that second signal must not cut the request in flight short.
    in_own_session = "import os, sys; os.setsid(); os.execv(sys.executable, [sys.executable, '-m', 'fastasgi', *sys.argv[1:]])"
    with Supervised(
        [sys.executable, "-c", in_own_session, "sup_app:app", "--port", "0", "--workers", "2"]
    ) as server:
        port = server.wait_started()
        server.wait_workers(2)
        result: dict[str, object] = {}
        slow = threading.Thread(target=lambda: result.update(response=get(port, "/slow?s=1")), daemon=True)
        slow.start()
        server.wait_for(r"slow started")
        os.killpg(server.pid, signal.SIGINT)
        assert server.wait_exit(15) == 0
        slow.join(5)
        assert result["response"][0] == 200
    assert "Received SIGINT, exiting." in server.stderr


def test_graceful_timeout_then_sigkill():
    with start("--workers", "2", "--timeout-graceful-shutdown", "0.5") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        blocker = threading.Thread(target=lambda: try_get(port, "/block?s=8"), daemon=True)
        blocker.start()
        time.sleep(0.3)  # one worker is stuck in time.sleep and cannot even stop gracefully
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(15) == 0
        assert time.monotonic() - started < 6  # 0.5 s + the kill grace, not the 8 s block
        server.wait_for(r"Child process \[\d+\] did not stop in time; killing it\.")
        assert not any(is_alive(pid) for pid in workers)


# -- the app cannot start ----------------------------------------------------------------


def test_lifespan_startup_failure_exits_3():
    with start("--workers", "2", app="sup_app:startup_fails") as server:
        assert server.wait_exit(15) == 3
    assert "the database is not there" in server.stderr
    assert "failed to start, stopping the parent process." in server.stderr
    assert server.stderr.count("Started server process") <= 3  # no restart loop


def test_a_port_in_use_is_one_line_and_exit_3():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("sup_app:app", "--port", str(port), "--workers", "2")
    assert result.returncode == 3  # as uvicorn's supervisor
    assert result.stderr.strip().splitlines() == [
        f"ERROR:    [Errno 98] address already in use: 127.0.0.1:{port}"
    ]


def test_an_app_that_does_not_import_exits_3():
    with start("--workers", "2", app="sup_app:nosuch") as server:
        assert server.wait_exit(15) == 3
    assert 'Attribute "nosuch" not found in module "sup_app".' in server.stderr


# -- --reuse-port ------------------------------------------------------------------------


def test_reuse_port_gives_each_worker_its_own_listener():
    with start("--workers", "2", "--reuse-port") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        # The kernel spreads connections over the listeners by their addresses' hash.
        served = {pid_of(port) for _ in range(40)}
        assert served == workers
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        server.wait_for(rf"Child process \[{victim}\] died")
        now = server.wait_workers(2, exclude={victim})
        served = {pid_of(port) for _ in range(40)}
        assert served == now
        assert server.stop() == 0


def test_reuse_port_sigttou_leaves_no_listener_without_a_worker():
    with start("--workers", "2", "--reuse-port") as server:
        port = server.wait_started()
        workers = server.wait_workers(2)
        victim = min(workers)  # forked first: it serves on the listeners bound first
        (survivor,) = workers - {victim}
        os.kill(victim, signal.SIGKILL)
        assert len(server.wait_workers(2, exclude={victim}) - workers) == 1  # the replacement
        server.send_signal(signal.SIGTTOU)  # stops the replacement, last in the list
        wait_until(lambda: server.children() == {survivor}, 10, "one worker left")
        # A listener still open with no worker would hold its share of connections: these
        # requests would time out.
        assert {int(get(port, timeout=2)[1]) for _ in range(30)} == {survivor}
        assert server.stop() == 0


def test_reuse_port_lets_two_servers_share_a_port():
    port = free_port()
    with Supervised.cli("sup_app:app", "--port", str(port), "--reuse-port") as one:
        one.wait_started()
        with Supervised.cli("sup_app:app", "--port", str(port), "--reuse-port") as two:
            two.wait_started()
            wait_until(
                lambda: {pid_of(port) for _ in range(20)} == {one.pid, two.pid}, 10, "both servers to answer"
            )
            assert two.stop() == 0
        assert one.stop() == 0


def test_reuse_port_with_a_unix_socket_is_refused(tmp_path):
    result = run_cli("sup_app:app", "--uds", str(tmp_path / "s"), "--workers", "2", "--reuse-port")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "ERROR:    --reuse-port needs TCP addresses: it cannot be used with unix sockets or --fd."
    ]


# -- recycling: the replacement is ready before the old worker stops accepting ------------


def recycled_in_order(server: Supervised, old: int) -> int:
    """Wait until ``old`` is stopped; check from the log that its replacement reported ready
    (its lifespan startup finished) before the supervisor told ``old`` to stop. Returns the
    replacement's PID."""
    server.wait_for(rf"Waiting for child process \[{old}\]", timeout=30)
    log = server.stderr
    stopped = log.index(f"Waiting for child process [{old}]")
    starts = [
        (m.start(), int(m.group(1)))
        for m in re.finditer(r"lifespan startup done (\d+)", log)
        if int(m.group(1)) != old
    ]
    assert starts, log
    ready_at, new = starts[0]
    assert ready_at < stopped, log
    return new


@pytest.mark.parametrize("workers", ["1", "2"])
def test_max_requests_replacement_is_ready_before_the_old_worker_stops(workers):
    # The replacement's lifespan startup takes 2.5 s; the old worker serves on meanwhile.
    with start(
        "--workers", workers, "--limit-max-requests", "20", app="sup_app:slow_startup_logged"
    ) as server:
        port = server.wait_started(timeout=30)
        first = server.wait_workers(int(workers))
        client = SteadyClient(port)
        client.start()
        try:
            match = server.wait_for(r"Child process \[(\d+)\] reached the request limit", timeout=30)
            old = int(match.group(1))
            assert old in first
            recycled_in_order(server, old)
            wait_until(lambda: not is_alive(old), 20, "the old worker to exit")
            served = client.ok
            wait_until(lambda: client.ok >= served + 10, 10, "requests to the new worker")
        finally:
            client.stop()
        assert client.failures == []
        # It went on serving past its limit of 20 while the replacement started (2.5 s).
        assert client.pids.count(old) > 20 if workers == "1" else client.pids.count(old) >= 10
        assert server.stop() == 0


def test_worker_lifetime_recycles_without_a_failed_request():
    with start(
        "--workers",
        "1",
        "--limit-worker-lifetime",
        "2",
        "--limit-worker-lifetime-jitter",
        "0.5",
        "--admin-bind",
        "127.0.0.1:0",
        app="sup_app:slow_startup_logged",
    ) as server:
        port = server.wait_started(timeout=30)
        (first,) = server.wait_workers(1)
        client = SteadyClient(port)
        client.start()
        try:
            match = server.wait_for(
                rf"Child process \[{first}\] has served for (\d+)s; starting a replacement", 30
            )
            assert 2 <= int(match.group(1)) <= 4
            second = recycled_in_order(server, first)
            # ... and the replacement is recycled in its turn.
            server.wait_for(rf"Child process \[{second}\] has served for \d+s; starting a replacement", 30)
        finally:
            client.stop()
        assert client.failures == []
        assert first in client.pids and second in client.pids
        admin = int(
            server.wait_for(r"Admin listener \(GET /metrics\) on http://127\.0\.0\.1:(\d+)/").group(1)
        )
        status, body = get(admin, "/metrics")
        assert status == 200
        assert b'fastasgi_worker_restarts_total{cause="lifetime"} ' in body
        assert server.stop() == 0


def test_max_memory_recycles_a_worker_that_grows():
    with start("--workers", "1", "--limit-max-memory", "150", app="sup_app:lifespan_events") as server:
        port = server.wait_started()
        (first,) = server.wait_workers(1)
        assert get(port, "/grow?mb=200") == (200, str(first).encode())
        match = server.wait_for(
            rf"Child process \[{first}\] uses (\d+) MiB, over its limit of 150 MiB; starting a replacement",
            15,
        )
        assert int(match.group(1)) > 150
        server.wait_for(rf"Waiting for child process \[{first}\]", 15)
        (second,) = server.wait_workers(1, exclude={first})
        wait_until(lambda: not is_alive(first), 15, "the old worker to exit")
        assert pid_of(port) == second
        assert server.stop() == 0


def test_max_memory_below_the_startup_size_is_not_a_restart_loop():
    with start("--workers", "1", "--limit-max-memory", "1") as server:
        port = server.wait_started()
        (first,) = server.wait_workers(1)
        server.wait_for(
            rf"Child process \[{first}\] uses \d+ MiB right after startup, more than its --limit-max-memory"
            r" of 1 MiB: it will not be recycled for memory\.",
            10,
        )
        time.sleep(2.5)  # more than two memory checks
        assert server.children() == {first}
        assert pid_of(port) == first
        assert "starting a replacement" not in server.stderr
        assert server.stop() == 0


def test_a_recycled_worker_whose_replacement_cannot_start_keeps_serving(tmp_path):
    # The replacement imports a module that the test breaks after the first start.
    (tmp_path / "flaky_app.py").write_text(
        "import os, pathlib\n"
        "if pathlib.Path(os.environ['FLAKY_FLAG']).exists():\n"
        "    raise RuntimeError('broken deploy')\n"
        "from sup_app import app\n"
    )
    flag = tmp_path / "broken"
    env = {"FLAKY_FLAG": str(flag)}
    with start(
        "--workers",
        "1",
        "--limit-max-requests",
        "3",
        "--app-dir",
        str(tmp_path),
        app="flaky_app:app",
        env=env,
    ) as server:
        port = server.wait_started()
        (first,) = server.wait_workers(1)
        flag.write_text("x")
        for _ in range(4):
            assert pid_of(port) == first
        server.wait_for(
            r"New child process \[\d+\] exit code 3 before it was ready; keeping the old workers", 20
        )
        for _ in range(5):
            assert pid_of(port) == first  # the old worker serves on
        flag.unlink()
        # RECYCLE_RETRY (10 s) later the supervisor tries again, and now it starts.
        server.wait_for(rf"Waiting for child process \[{first}\]", 30)
        (second,) = server.wait_workers(1, exclude={first})
        wait_until(lambda: not is_alive(first), 15, "the old worker to exit")
        assert pid_of(port) == second
        assert server.stop() == 0
