"""Log configs written for uvicorn (loggers ``uvicorn``, ``uvicorn.error``,
``uvicorn.access``) against a real server: as JSON, YAML and ini files for ``--log-config``,
as a dict through ``fastasgi.run``, and as gunicorn's ``logconfig_dict`` through the
gunicorn worker. Each config uses uvicorn's own formatters and, where the format allows
filters, a health-check filter that reads ``record.args[2]`` of the access record; the
lines checked are the startup lines, access lines, an app's traceback and the app's own
``uvicorn.error`` lines. Plus: a config naming both name sets prints every line once, and
without a log config the app's ``uvicorn.error`` lines look as under uvicorn."""

from __future__ import annotations

import json
import re
import socket
import sys
import time

import pytest

from support.server import HTTP_TIMEOUT, ServerProcess, server_env
from support.supervisors import Supervised, wait_until

pytest.importorskip("uvicorn.logging")  # the formatters the configs name are uvicorn's

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")

APP = "uvicorn_names_app:app"
ERR = "ERR "  # the error handler's prefix in the configs below
ACC = "ACC "  # the access handler's

#: uvicorn's default config with the formatters' fmt prefixed (so the lines are told from
#: fastasgi's own defaults) and the health-check filter on the uvicorn.access logger.
UVICORN_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"no_health": {"()": "uvicorn_names_app.NoHealth"}},
    "formatters": {
        "default": {
            "()": "uvicorn.logging.DefaultFormatter",
            "fmt": ERR + "%(levelprefix)s %(message)s",
            "use_colors": False,
        },
        "access": {
            "()": "uvicorn.logging.AccessFormatter",
            "fmt": ACC + '%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s',
            "use_colors": False,
        },
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler", "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler", "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {
            "handlers": ["access"],
            "level": "INFO",
            "propagate": False,
            "filters": ["no_health"],
        },
    },
}

# fileConfig has no filters: the same formatters and loggers, the /health line stays.
# (fileConfig reads a format raw: its % signs are single.)
UVICORN_INI = f"""
[loggers]
keys=root,uvicorn,error,access

[handlers]
keys=default,access

[formatters]
keys=default,access

[logger_root]
level=WARNING
handlers=

[logger_uvicorn]
level=INFO
handlers=default
qualname=uvicorn
propagate=0

[logger_error]
level=INFO
handlers=
qualname=uvicorn.error
propagate=1

[logger_access]
level=INFO
handlers=access
qualname=uvicorn.access
propagate=0

[handler_default]
class=StreamHandler
formatter=default
args=(sys.stderr,)

[handler_access]
class=StreamHandler
formatter=access
args=(sys.stdout,)

[formatter_default]
class=uvicorn.logging.DefaultFormatter
format={ERR}%(levelprefix)s %(message)s

[formatter_access]
class=uvicorn.logging.AccessFormatter
format={ACC}%(levelprefix)s %(client_addr)s - "%(request_line)s" %(status_code)s
"""


def get(port: int, target: str) -> tuple[int, int]:
    """One request on a new connection; (status, the client's port)."""
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as sock:
        client_port = sock.getsockname()[1]
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), client_port


def wait_lines(read, needles: list[str], what: str) -> list[str]:
    """The lines of ``read()`` once each of ``needles`` is in one of them."""

    def found():
        lines = read().splitlines()
        return lines if all(any(needle in line for line in lines) for needle in needles) else None

    try:
        return wait_until(found, HTTP_TIMEOUT, what)
    except AssertionError:
        raise AssertionError(f"{what}: {needles} not all in:\n{read()}") from None


def exercise_and_check(server: ServerProcess, port: int, pid: int, health_filtered: bool) -> None:
    """The requests and the lines every uvicorn-named config must give."""
    stderr = wait_lines(server.log, ["Application startup complete."], "startup")
    assert f"{ERR}INFO:     Started server process [{pid}]" in stderr
    assert f"{ERR}INFO:     Application startup complete." in stderr

    ports = {target: get(port, target)[1] for target in ("/items?page=2", "/health", "/log", "/raise")}

    expected = [
        f'{ACC}INFO:     127.0.0.1:{ports["/items?page=2"]} - "GET /items?page=2 HTTP/1.1" 200 OK',
        f'{ACC}INFO:     127.0.0.1:{ports["/health"]} - "GET /health HTTP/1.1" 200 OK',
        f'{ACC}INFO:     127.0.0.1:{ports["/log"]} - "GET /log HTTP/1.1" 200 OK',
        f'{ACC}INFO:     127.0.0.1:{ports["/raise"]} - "GET /raise HTTP/1.1" 500 Internal Server Error',
    ]
    if health_filtered:
        del expected[1]  # the filter read record.args[2] == "/health"
    wait_lines(server.stdout, [expected[-1]], "the access lines")
    assert server.stdout().splitlines() == expected

    stderr = wait_lines(server.log, ["RuntimeError: boom in the app"], "the traceback")
    assert f"{ERR}INFO:     app says hello" in stderr
    assert f"{ERR}WARNING:  app warns" in stderr
    start = stderr.index(f"{ERR}ERROR:    Exception in ASGI application")
    traceback = stderr[start + 1 :]
    assert "Traceback (most recent call last):" in traceback[:3]
    assert any('raise RuntimeError("boom in the app")' in line for line in traceback)
    # nothing bypassed the config's handlers (logging's last resort writes bare messages)
    assert not [line for line in stderr if line in ("app warns", "Exception in ASGI application")]


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_file_with_uvicorn_names(tmp_path, kind):
    path = tmp_path / f"logging.{kind}"
    if kind == "json":
        path.write_text(json.dumps(UVICORN_CONFIG))
    elif kind == "yaml":
        import yaml

        # without disable_existing_loggers, as many such files are: dictConfig's default
        # (true) disables every logger the file does not name
        config = {key: value for key, value in UVICORN_CONFIG.items() if key != "disable_existing_loggers"}
        path.write_text(yaml.safe_dump(config))
    else:
        path.write_text(UVICORN_INI)
    with ServerProcess.cli(APP, "--port", "0", "--log-config", str(path), logdir=tmp_path) as server:
        port = server.wait_started()
        assert re.search(
            rf"^{ERR}INFO:     fastasgi running on http://127\.0\.0\.1:{port} \(Press CTRL\+C to quit\)$",
            server.log(),
            re.MULTILINE,
        )
        exercise_and_check(server, port, server.pid, health_filtered=kind != "ini")
        assert server.stop() == 0
    assert f"{ERR}INFO:     Finished server process [{server.pid}]" in server.stderr_lines


def test_dict_through_the_python_api_with_colors(tmp_path):
    """``fastasgi.run(..., log_config=dict)``; with colours on, the startup line is the
    record's ``color_message``, as uvicorn's formatter takes it."""
    config = json.loads(json.dumps(UVICORN_CONFIG))
    script = tmp_path / "serve.py"
    script.write_text(
        "import fastasgi\n"
        f"CONFIG = {config!r}\n"
        "CONFIG['formatters']['default']['use_colors'] = True\n"
        f"fastasgi.run({APP!r}, host='127.0.0.1', port=0, log_config=CONFIG)\n"
    )
    command = [sys.executable, str(script)]
    with ServerProcess(command, cwd=tmp_path, env=server_env(), logdir=tmp_path) as server:
        # the address in bold: the "running on" record's color_message
        running = server.wait_for(
            r"^ERR \x1b\[32mINFO\x1b\[0m:     fastasgi running on \x1b\[1mhttp://127\.0\.0\.1:(\d+)"
        )
        port = int(running.group(1))
        pid = server.pid
        lines = wait_lines(server.log, ["Application startup complete."], "startup")
        assert f"{ERR}\x1b[32mINFO\x1b[0m:     Started server process [\x1b[36m{pid}\x1b[0m]" in lines
        assert f"{ERR}\x1b[32mINFO\x1b[0m:     app says hello" not in lines
        _, log_port = get(port, "/log")
        lines = wait_lines(server.log, ["app warns"], "the app's lines")
        assert f"{ERR}\x1b[32mINFO\x1b[0m:     app says hello" in lines
        assert f"{ERR}\x1b[33mWARNING\x1b[0m:  app warns" in lines
        get(port, "/health")
        _, client_port = get(port, "/items?page=2")
        wait_lines(server.stdout, ["/items"], "the access line")
        # the access formatter of the config has colours off; /health was filtered out
        assert server.stdout().splitlines() == [
            f'{ACC}INFO:     127.0.0.1:{log_port} - "GET /log HTTP/1.1" 200 OK',
            f'{ACC}INFO:     127.0.0.1:{client_port} - "GET /items?page=2 HTTP/1.1" 200 OK',
        ]


def test_gunicorn_logconfig_dict_with_uvicorn_names(tmp_path):
    """gunicorn's ``logconfig_dict`` naming uvicorn's loggers: the worker leaves them to it
    (no --access-logfile needed: the config routes the access lines)."""
    conf = tmp_path / "gunicorn_conf.py"
    # gunicorn merges the dict into its defaults, whose root logger names a handler of
    # theirs the dict's "handlers" replace: a logconfig_dict gives the root as well
    config = dict(UVICORN_CONFIG, root={"level": "WARNING", "handlers": []})
    conf.write_text(f"logconfig_dict = {config!r}\n")
    from gunicorn.config import KNOWN_SETTINGS

    # gunicorn >= 25 opens a control socket in ~/.gunicorn by default: not in a test
    quiet = ["--no-control-socket"] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []
    command = ["-k", "fastasgi.workers.FastASGIWorker", "--bind", "127.0.0.1:0", "--workers", "1", *quiet]
    with Supervised.gunicorn(*command, "--config", str(conf), APP, cwd=tmp_path, logdir=tmp_path) as server:
        port = int(server.wait_for(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
        worker = int(server.wait_for(r"Booting worker with pid: (\d+)").group(1))
        exercise_and_check(server, port, worker, health_filtered=True)


#: both name sets configured, each handler with a prefix of its own, and the root too: a
#: record handled at two places would show twice.
BOTH_CONFIG = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        name: {"format": f"{name} %(levelname)s %(message)s"} for name in ("U", "UA", "F", "FA", "ROOT")
    },
    "handlers": {
        name: {"class": "logging.StreamHandler", "formatter": name, "stream": "ext://sys.stderr"}
        for name in ("U", "UA", "F", "FA", "ROOT")
    },
    "root": {"handlers": ["ROOT"], "level": "INFO"},
    "loggers": {
        "uvicorn": {"handlers": ["U"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["UA"], "level": "INFO", "propagate": False},
        "fastasgi": {"handlers": ["F"], "level": "INFO", "propagate": False},
        "fastasgi.error": {"level": "INFO"},
        "fastasgi.access": {"handlers": ["FA"], "level": "INFO", "propagate": False},
    },
}


def test_config_naming_both_sets_prints_each_line_once(tmp_path):
    path = tmp_path / "both.json"
    path.write_text(json.dumps(BOTH_CONFIG))
    with ServerProcess.cli(APP, "--port", "0", "--log-config", str(path), logdir=tmp_path) as server:
        port = server.wait_started()
        _, client_port = get(port, "/items?page=2")
        get(port, "/log")
        get(port, "/raise")
        access = f'127.0.0.1:{client_port} - "GET /items?page=2 HTTP/1.1" 200'
        lines = wait_lines(server.log, [access, "app warns", "RuntimeError: boom in the app"], "the lines")
        assert server.stop() == 0
    lines = server.stderr_lines
    for message in (
        f"Started server process [{server.pid}]",
        "Application startup complete.",
        f"fastasgi running on http://127.0.0.1:{port} (Press CTRL+C to quit)",
        access,
        "app says hello",
        "app warns",
        "Exception in ASGI application",
        f"Finished server process [{server.pid}]",
    ):
        assert len([line for line in lines if line.endswith(" " + message)]) == 1, (message, lines)
    # where each one was handled: the first configured logger of its chain
    assert f"FA INFO {access}" in lines
    assert "U INFO Application startup complete." in lines
    assert "U INFO app says hello" in lines


def test_app_uvicorn_error_lines_without_a_log_config(tmp_path):
    with ServerProcess.cli(APP, "--port", "0", logdir=tmp_path) as server:
        port = server.wait_started()
        _, client_port = get(port, "/log")
        lines = wait_lines(server.log, ["app warns"], "the app's lines")
        assert "INFO:     app says hello" in lines
        assert "WARNING:  app warns" in lines
        wait_lines(server.stdout, ["/log"], "the access line")
        expected = f'INFO:     127.0.0.1:{client_port} - "GET /log HTTP/1.1" 200 OK'
        assert server.stdout().splitlines() == [expected]

