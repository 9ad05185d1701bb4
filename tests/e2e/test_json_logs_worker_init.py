"""``--log-format json`` and ``--worker-init`` on real servers: the single process,
``--workers``, ``--reload`` and the gunicorn worker class.

The app (tests/apps/jsonlog_app.py) and the init functions (tests/apps/worker_init_hooks.py)
write what they saw to files in ``$WORKER_INIT_DIR`` (the test's tmp_path): the init its
process id, the app, when it is imported, its process id and whether the init ran first.
"""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import pytest
from gunicorn.config import KNOWN_SETTINGS

from support.server import ServerProcess, free_port, run_cli, server_env
from support.supervisors import Supervised, get, wait_until

APP = "jsonlog_app:app"
RECORD = "worker_init_hooks:record"
JSON_KEYS = ("time", "level", "logger", "message")
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def env_for(directory: Path) -> dict[str, str]:
    return server_env({"WORKER_INIT_DIR": str(directory)})


def json_lines(text: str) -> list[dict]:
    """Every non-empty line of ``text`` as a JSON object (fails on a line that is not)."""
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        assert all(" " <= char <= "~" for char in line), f"not printable ASCII: {line!r}"
        entry = json.loads(line)
        assert isinstance(entry, dict) and all(key in entry for key in JSON_KEYS), line
        assert TIME.fullmatch(entry["time"]), line
        entries.append(entry)
    return entries


def init_pids(directory: Path) -> list[int]:
    path = directory / "init.pids"
    return [int(line) for line in path.read_text().split()] if path.exists() else []


def app_imports(directory: Path) -> list[tuple[int, bool]]:
    path = directory / "app.imports"
    if not path.exists():
        return []
    return [
        (int(pid), ran == "True") for pid, ran in (line.split() for line in path.read_text().splitlines())
    ]


def raw_request(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(request)
        received = b""
        while chunk := client.recv(65536):
            received += chunk
    return received


# -- --log-format json --------------------------------------------------------------------


def test_json_logs_every_line_is_an_object_and_access_lines_have_the_fields(tmp_path):
    port = free_port()
    with ServerProcess.cli(APP, "--port", str(port), "--log-format", "json", logdir=tmp_path) as server:
        server.wait_listening(port)
        assert get(port, "/hello?x=1") == (200, b"hello")
        assert get(port, "/raise")[0] == 500
        # a control character (percent-encoded on the wire) and raw obs-text bytes in a header
        response = raw_request(
            port,
            b"GET /p%1b?q=%00 HTTP/1.1\r\nHost: x\r\nUser-Agent: caf\xc3\xa9 \xff\r\n"
            b"Referer: http://r/\r\nX-Forwarded-For: 10.9.8.7\r\nConnection: close\r\n\r\n",
        )
        assert response.startswith(b"HTTP/1.1 200 ")
        assert server.stop() == 0
        stdout, stderr = server.stdout(), server.log()

    access = json_lines(stdout)
    errors = json_lines(stderr)
    assert "\x1b" not in stdout + stderr  # the app's exception text carries one

    assert {entry["logger"] for entry in access} == {"fastasgi.access"}
    hello = next(entry for entry in access if entry["path"] == "/hello")
    assert {key: hello[key] for key in ("level", "method", "query", "protocol", "status", "bytes")} == {
        "level": "INFO",
        "method": "GET",
        "query": "x=1",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 5,
    }
    assert hello["client"] == "127.0.0.1" and isinstance(hello["client_port"], int)
    assert isinstance(hello["request_time"], float) and 0 <= hello["request_time"] < 5
    assert hello["message"].endswith('"GET /hello?x=1 HTTP/1.1" 200')
    assert hello["forwarded_for"] is None and hello["referer"] is None

    failed = next(entry for entry in access if entry["path"] == "/raise")
    assert failed["status"] == 500
    odd = next(entry for entry in access if entry["path"] == "/p%1b")
    assert odd["query"] == "q=%00"
    assert odd["user_agent"] == "caf\u00e9 \\xff"  # UTF-8 decoded, the invalid byte shown as \xff
    assert (odd["referer"], odd["forwarded_for"]) == ("http://r/", "10.9.8.7")
    assert odd["client"] == "10.9.8.7"  # trusted proxy (127.0.0.1): the forwarded client

    assert {entry["logger"] for entry in errors} == {"fastasgi.error"}
    messages = [entry["message"] for entry in errors]
    assert "Application startup complete." in messages and "Application shutdown complete." in messages
    (exception,) = [entry for entry in errors if entry["level"] == "ERROR"]
    assert exception["message"] == "Exception in ASGI application"
    assert exception["exception"].startswith("Traceback (most recent call last):")
    assert exception["exception"].endswith("RuntimeError: boom \x1b[31m in the app")


def test_json_logs_with_a_custom_access_format(tmp_path):
    port = free_port()
    with ServerProcess.cli(
        APP, "--port", str(port), "--log-format", "json", "--access-log-format", "%(m)s %(U)s %(s)s %(B)s",
        logdir=tmp_path,
    ) as server:  # fmt: skip
        server.wait_listening(port)
        assert get(port, "/x") == (200, b"hello")
        server.wait_for(r'"path":"/x"', stream="stdout")
    (entry,) = json_lines(server.stdout())
    assert entry["message"] == "GET /x 200 5"
    assert (entry["method"], entry["path"], entry["status"], entry["bytes"]) == ("GET", "/x", 200, 5)


def test_text_is_still_the_default(serve):
    server = serve(APP)
    assert get(server.port, "/text") == (200, b"hello")
    server.wait_for(r'"GET /text HTTP/1.1" 200', stream="stdout")
    assert not any(line.startswith("{") for line in server.stdout_lines + server.stderr_lines)


# -- --worker-init ------------------------------------------------------------------------


def test_worker_init_runs_once_in_each_worker_before_the_app(tmp_path):
    with Supervised.cli(
        APP, "--port", "0", "--workers", "2", "--worker-init", RECORD, "--log-format", "json",
        env=env_for(tmp_path), logdir=tmp_path,
    ) as server:  # fmt: skip
        port = server.wait_started()
        workers = server.wait_workers(2)
        pids = init_pids(tmp_path)
        assert sorted(pids) == sorted(workers) and len(set(pids)) == 2
        assert server.pid not in pids  # never in the supervisor
        assert sorted(app_imports(tmp_path)) == sorted((pid, True) for pid in workers)
        assert int(get(port, "/pid")[1]) in workers
        server.send_signal(signal.SIGTERM)
        assert server.wait_exit(20) == 0
    json_lines(server.log())  # the supervisor's lines too
    json_lines(server.stdout())


def test_worker_init_runs_in_the_reload_server_process(tmp_path):
    pytest.importorskip("watchfiles")
    watched = tmp_path / "watched"
    watched.mkdir()
    with Supervised.cli(
        APP, "--port", "0", "--reload", "--reload-dir", str(watched), "--worker-init", RECORD,
        env=env_for(tmp_path), logdir=tmp_path,
    ) as server:  # fmt: skip
        port = server.wait_started()
        child = int(get(port, "/pid")[1])
        assert init_pids(tmp_path) == [child]
        assert child != server.pid and child in server.children()
        assert app_imports(tmp_path) == [(child, True)]


def test_worker_init_in_the_gunicorn_worker_class(tmp_path):
    quiet = ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []
    with Supervised.gunicorn(
        "-k", "fastasgi.workers.FastASGIWorker", "--bind", "127.0.0.1:0", *quiet, "--workers", "2",
        "-e", f"FASTASGI_WORKER_INIT={RECORD}", APP,
        env=env_for(tmp_path), logdir=tmp_path,
    ) as server:  # fmt: skip
        server.wait_for(r"Listening at: http://127\.0\.0\.1:\d+")

        def started() -> list[int] | None:
            booted = [int(pid) for pid in re.findall(r"Booting worker with pid: (\d+)", server.stderr)]
            ready = server.stderr.count("Application startup complete.")
            return booted if len(booted) == 2 and ready == 2 else None

        booted = wait_until(started, 20, f"2 gunicorn workers; log:\n{server.stderr}")
        assert sorted(init_pids(tmp_path)) == sorted(booted)
        assert server.pid not in init_pids(tmp_path)  # never in the arbiter
        assert sorted(app_imports(tmp_path)) == sorted((pid, True) for pid in booted)


def test_worker_init_failing_in_gunicorn_stops_the_arbiter(tmp_path):
    with Supervised.gunicorn(
        "-k", "fastasgi.workers.FastASGIWorker", "--bind", "127.0.0.1:0", "--workers", "1",
        "-e", "FASTASGI_WORKER_INIT=worker_init_hooks:boom", APP,
        env=env_for(tmp_path), logdir=tmp_path,
    ) as server:  # fmt: skip
        assert server.wait_exit(20) != 0
    assert "--worker-init 'worker_init_hooks:boom' raised RuntimeError: the tracer could not be set up" in (
        server.stderr
    )
    assert app_imports(tmp_path) == []


@pytest.mark.parametrize(
    "value,code,says",
    [
        (
            "no_such_module:init",
            3,
            'Error loading the --worker-init function. Could not import module "no_such_module".',
        ),
        (
            "worker_init_hooks:nothing",
            3,
            'Error loading the --worker-init function. Attribute "nothing" not found',
        ),
        (
            "worker_init_hooks:not_a_function",
            3,
            "'worker_init_hooks:not_a_function' is not callable (got int).",
        ),
        (
            "nocolon",
            1,
            "Invalid value for '--worker-init': 'nocolon' is not of the form \"module:function\".",
        ),
    ],
)
def test_bad_worker_init_is_one_line(tmp_path, value, code, says):
    result = run_cli(APP, "--port", "0", "--worker-init", value)
    assert result.returncode == code, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("ERROR:    ") and says in lines[0], result.stderr
    assert "--worker-init" in lines[0]


def test_worker_init_that_raises(tmp_path):
    result = run_cli(APP, "--port", "0", "--log-format", "json", "--worker-init", "worker_init_hooks:boom")
    assert result.returncode == 3, result
    (entry,) = json_lines(result.stderr)  # the traceback is in the one JSON line
    assert entry["level"] == "ERROR"
    assert entry["message"] == (
        "--worker-init 'worker_init_hooks:boom' raised RuntimeError: the tracer could not be set up"
    )
    assert 'in boom\n    raise RuntimeError("the tracer could not be set up")' in entry["exception"]


def test_bad_worker_init_with_workers_stops_the_supervisor(tmp_path):
    result = run_cli(APP, "--port", "0", "--workers", "2", "--worker-init", "no_such_module:init")
    assert result.returncode == 3, result
    assert (
        'Error loading the --worker-init function. Could not import module "no_such_module".' in result.stderr
    )
