"""``gunicorn -k fastasgi.workers.FastASGIWorker``: real gunicorn as a subprocess.

gunicorn's arbiter binds (``--bind 127.0.0.1:0``; the port is read from its "Listening at"
line), forks the workers and sends the signals; the tests check that fastasgi serves in its
workers and honours the settings gunicorn passes through.
"""

from __future__ import annotations

import http.client
import re
import signal
import socket
import ssl
import threading
import time

import pytest
from gunicorn.config import KNOWN_SETTINGS
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger

from fastasgi.config import Config
from fastasgi.workers import FastASGIWorker
from support.supervisors import Supervised, get, is_alive, try_get, wait_until

WORKER = "fastasgi.workers.FastASGIWorker"
LISTENING = re.compile(r"Listening at: https?://127\.0\.0\.1:(\d+)")
# gunicorn >= 25 opens a control socket in ~/.gunicorn by default; tests leave it alone.
QUIET = ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []


def start_gunicorn(*args: str, app: str = "sup_app:app") -> Supervised:
    return Supervised.gunicorn("-k", WORKER, "--bind", "127.0.0.1:0", *QUIET, *args, app)


def wait_listening(server: Supervised) -> int:
    return int(server.wait_for(LISTENING.pattern).group(1))


def booted(server: Supervised) -> list[int]:
    return [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.stderr)]


def wait_serving(server: Supervised, count: int, exclude: set[int] = frozenset()) -> set[int]:
    """Wait for ``count`` workers (children of the arbiter) whose app has started."""

    def ready():
        children = server.children() - set(exclude)
        complete = server.stderr.count("Application startup complete.")
        if len(children) == count and complete >= len(booted(server)):
            return children
        return None

    return wait_until(ready, 20, f"{count} gunicorn workers; log:\n{server.stderr}")


def test_gunicorn_serves_and_stops_gracefully():
    with start_gunicorn("--workers", "2") as server:
        port = wait_listening(server)
        workers = wait_serving(server, 2)
        assert set(booted(server)) == workers

        # One worker's event loop blocked: the next connection goes to the other one.
        blocked: dict[str, tuple[int, bytes]] = {}
        blocker = threading.Thread(
            target=lambda: blocked.update(response=get(port, "/block?s=1")), daemon=True
        )
        blocker.start()
        time.sleep(0.3)
        status, body = get(port)
        blocker.join(10)
        assert status == 200 and {int(body), int(blocked["response"][1])} == workers
        assert server.stdout() == ""  # no --access-logfile: no access log

        # SIGTERM to the arbiter: the request in flight completes, then everything stops.
        result: dict[str, tuple[int, bytes]] = {}
        slow = threading.Thread(target=lambda: result.update(response=get(port, "/slow?s=1.5")), daemon=True)
        slow.start()
        server.wait_for(r"slow started \d+")
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
        slow.join(5)
        assert result["response"][0] == 200
        assert not any(is_alive(pid) for pid in workers)
    assert "Application shutdown complete." in server.stderr


def test_gunicorn_settings_pass_through(tmp_path):
    hooks = tmp_path / "hooks.py"
    hooks.write_text(
        'def worker_abort(worker):\n    worker.log.info("worker_abort hook ran in %s", worker.pid)\n'
    )
    with start_gunicorn(
        "--workers", "1", "--keep-alive", "1", "--timeout", "2", "--max-requests", "3",
        "--access-logfile", "-", "--config", str(hooks),
    ) as server:  # fmt: skip
        port = wait_listening(server)
        (first,) = wait_serving(server, 1)

        # --keep-alive 1: an idle keep-alive connection is closed after about a second
        # (fastasgi's own default is 5).
        with socket.create_connection(("127.0.0.1", port), timeout=5) as client:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            response = client.recv(65536)
            assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(str(first).encode())
            idle_since = time.monotonic()
            assert client.recv(65536) == b""
            assert 0.5 <= time.monotonic() - idle_since < 3.5

        # --timeout 2: the worker tells the arbiter it is alive while idle...
        time.sleep(2.5)
        assert is_alive(first) and "WORKER TIMEOUT" not in server.stderr

        # --max-requests 3: after its third request the worker exits and is replaced.
        assert get(port) == (200, str(first).encode())
        assert get(port) == (200, str(first).encode())
        server.wait_for(r"Maximum request limit of 3 exceeded")
        (second,) = wait_serving(server, 1, exclude={first})

        # ...but a worker whose event loop is blocked stops telling it, and is replaced.
        blocker = threading.Thread(target=lambda: try_get(port, "/block?s=5"), daemon=True)
        blocker.start()
        server.wait_for(rf"WORKER TIMEOUT \(pid:{second}\)", 10)
        server.wait_for(rf"worker_abort hook ran in {second}")
        wait_serving(server, 1, exclude={first, second})
        blocker.join(10)

        assert server.stop() == 0
    access_lines = [line for line in server.stdout_lines if '"GET / HTTP/1.1" 200' in line]
    assert len(access_lines) == 3
    assert re.fullmatch(r'127\.0\.0\.1:\d+ - "GET / HTTP/1\.1" 200( OK)?', access_lines[0])


def test_gunicorn_stops_when_the_app_cannot_start():
    # One worker: gunicorn 27's arbiter itself crashes (exit 1) when a second worker fails
    # to boot while it halts for the first; each worker's exit code 3 is what we control.
    with start_gunicorn("--workers", "1", app="sup_app:startup_fails") as server:
        assert server.wait_exit(20) == 3
    assert "the database is not there" in server.stderr
    assert re.search(r"Worker \(pid:\d+\) exited with code 3", server.stderr)
    assert "Worker failed to boot" in server.stderr


def test_gunicorn_tls(tmp_path):
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    certificate.private_key_and_cert_chain_pem.write_to_path(str(certfile))
    certificate.private_key_pem.write_to_path(str(keyfile))
    with start_gunicorn("--workers", "1", "--certfile", str(certfile), "--keyfile", str(keyfile)) as server:
        port = wait_listening(server)
        (worker,) = wait_serving(server, 1)
        context = ssl.create_default_context()
        authority.configure_trust(context)
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            assert (response.status, response.read()) == (200, str(worker).encode())
            assert connection.sock.version() is not None
        finally:
            connection.close()
        assert server.stop() == 0


# -- the mapping of gunicorn's settings (in-process) --------------------------------------


def worker_for(*argv: str) -> FastASGIWorker:
    cfg = GunicornConfig()
    parser = cfg.parser()
    for key, value in vars(parser.parse_args(list(argv))).items():
        if value is not None and key != "args":
            cfg.set(key, value)
    worker = FastASGIWorker(1, 1, [], None, cfg.timeout / 2, cfg, Logger(cfg))
    worker.wsgi = _app  # what Worker.load_wsgi() sets in a real worker
    return worker


async def _app(scope, receive, send):
    pass


def test_gunicorn_settings_become_config_keywords():
    worker = worker_for(
        "--keep-alive", "7", "--timeout", "40", "--graceful-timeout", "9", "--max-requests", "100",
        "--max-requests-jitter", "10", "--backlog", "55", "--limit-request-fields", "50",
        "--forwarded-allow-ips", "10.0.0.1,10.0.0.2",
    )  # fmt: skip
    kwargs = worker.config_kwargs(access_log=False)
    assert kwargs["timeout_keep_alive"] == 7
    assert kwargs["timeout_notify"] == 20
    assert kwargs["callback_notify"] == worker.callback_notify
    assert kwargs["timeout_graceful_shutdown"] == 9
    assert 100 <= kwargs["limit_max_requests"] <= 110
    assert kwargs["backlog"] == 55
    assert kwargs["limit_request_fields"] == 50
    assert kwargs["forwarded_allow_ips"] == ["10.0.0.1", "10.0.0.2"]
    assert kwargs["access_log"] is False and kwargs["log_config"] is None
    assert "ssl_certfile" not in kwargs
    config = Config(**kwargs)  # gunicorn's values are valid fastasgi settings
    assert config.timeout_keep_alive == 7 and config.limit_max_requests == kwargs["limit_max_requests"]


def test_gunicorn_without_max_requests_means_no_limit():
    kwargs = worker_for().config_kwargs(access_log=True)
    assert kwargs["limit_max_requests"] is None
    assert kwargs["timeout_keep_alive"] == 2  # gunicorn's default
    assert kwargs["timeout_graceful_shutdown"] == 30
