"""``--header-map`` (gunicorn's ``header_map``): the setting, its flag, its environment variable,
and gunicorn's own ``--header-map`` reaching fastasgi's worker class.

What the server does with each value (drop, refuse, dangerous) on the wire is tested with the
protocol; here: that the value is validated, parsed and handed to the server.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys

import pytest
from click.testing import CliRunner

from fastasgi import _defaults
from fastasgi.config import Config, ConfigError
from fastasgi.server import _context_options
from support.server import APPS, HTTP_TIMEOUT, error_lines, fastasgi_command, run_cli, server_env
from support.supervisors import Supervised, wait_until

APP = "ops_app:app"
BAD_VALUE = "Invalid value for '--header-map': 'bogus' is not one of 'drop', 'refuse', 'dangerous'."


async def _app(scope, receive, send):
    pass


# --- Config ---------------------------------------------------------------------------------------


def test_config_default_is_drop():
    config = Config(_app, log_config=None)
    assert config.header_map == _defaults.HEADER_MAP == "drop"
    assert _context_options(config)["header_map"] == "drop"


@pytest.mark.parametrize("value", ["drop", "refuse", "dangerous"])
def test_config_values_reach_the_server_context(value):
    config = Config(_app, header_map=value, log_config=None)
    assert _context_options(config)["header_map"] == value


@pytest.mark.parametrize("value", ["bogus", "DROP", "", None, 1])
def test_config_refuses_other_values(value):
    with pytest.raises(ConfigError) as info:
        Config(_app, header_map=value, log_config=None)
    assert str(info.value) == BAD_VALUE.replace("'bogus'", repr(value))


def test_run_with_a_bad_value_exits_1_with_one_line(tmp_path):
    script = tmp_path / "header_map_script.py"
    script.write_text("import fastasgi\nfastasgi.run('cli_app:app', port=0, header_map='bogus')\n")
    result = subprocess.run(
        [sys.executable, str(script)], env=server_env(), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert error_lines(result.stderr) == [f"ERROR:    {BAD_VALUE}"]


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def parsed(monkeypatch):
    """Invoke the click command in-process; the keywords it would pass to ``run``."""
    calls: list[dict] = []
    monkeypatch.setattr("fastasgi.cli.run", lambda app, **options: calls.append(options))

    def parse(*args: str, env: dict[str, str] | None = None) -> dict:
        from fastasgi.cli import main

        result = CliRunner().invoke(main, [APP, *args], env=env)
        assert result.exit_code == 0, result.output
        assert len(calls) == 1
        return calls.pop()

    return parse


def test_cli_default_is_drop(parsed):
    assert parsed()["header_map"] == "drop"


@pytest.mark.parametrize("value", ["drop", "refuse", "dangerous"])
def test_cli_values(parsed, value):
    options = parsed("--header-map", value)
    assert options["header_map"] == value
    Config(APP, **{**options, "log_config": None})  # and Config takes what the command line gives


def test_cli_value_from_the_environment(parsed):
    assert parsed(env={"FASTASGI_HEADER_MAP": "refuse"})["header_map"] == "refuse"
    # the flag wins over the environment
    assert (
        parsed("--header-map", "dangerous", env={"FASTASGI_HEADER_MAP": "refuse"})["header_map"]
        == "dangerous"
    )


def test_cli_help_shows_the_flag_and_its_default():
    from fastasgi.cli import main

    output = CliRunner().invoke(main, ["--help"], terminal_width=200).output
    assert re.search(r"--header-map \[drop\|refuse\|dangerous\]", output)
    assert "[default: drop]" in output


def test_cli_bad_value_is_one_line_and_exit_2():
    result = run_cli(APP, "--header-map", "bogus")
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"Error: {BAD_VALUE}"]


def test_cli_bad_value_from_the_environment_names_the_flag():
    result = subprocess.run(
        fastasgi_command(APP),
        cwd=APPS,
        env=server_env({"FASTASGI_HEADER_MAP": "bogus"}),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert error_lines(result.stderr) == [f"Error: {BAD_VALUE}"]


# --- gunicorn -------------------------------------------------------------------------------------


def test_gunicorn_setting_becomes_the_config_keyword():
    from gunicorn.config import Config as GunicornConfig
    from gunicorn.glogging import Logger

    from fastasgi.workers import FastASGIWorker

    cases = [
        ([], "drop"),
        (["--header-map", "refuse"], "refuse"),
        (["--header-map", "dangerous"], "dangerous"),
    ]
    for argv, expected in cases:
        cfg = GunicornConfig()
        for key, value in vars(cfg.parser().parse_args(argv)).items():
            if value is not None and key != "args":
                cfg.set(key, value)
        worker = FastASGIWorker(1, 1, [], None, cfg.timeout / 2, cfg, Logger(cfg))
        worker.wsgi = _app
        kwargs = worker.config_kwargs(access_log=False)
        assert kwargs["header_map"] == expected
        assert Config(**kwargs).header_map == expected


LISTENING = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")
QUIET_CONTROL_SOCKET = "--no-control-socket"


def _exchange(port: int, request: bytes) -> tuple[int, bytes]:
    """One raw request on a new connection: (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@pytest.mark.parametrize("mode", ["refuse", "dangerous", "drop"])
def test_gunicorn_header_map(mode):
    from gunicorn.config import KNOWN_SETTINGS

    quiet = [QUIET_CONTROL_SOCKET] if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS) else []
    command = ["-k", "fastasgi.workers.FastASGIWorker", "--bind", "127.0.0.1:0", "--workers", "1", *quiet]
    with Supervised.gunicorn(*command, "--header-map", mode, APP) as server:
        port = int(server.wait_for(LISTENING.pattern).group(1))
        wait_until(
            lambda: "Application startup complete." in server.stderr, 20, f"the worker; log:\n{server.stderr}"
        )
        request = b"GET /scope HTTP/1.1\r\nHost: x\r\nX_Foo: 1\r\nX-Bar: 2\r\nConnection: close\r\n\r\n"
        status, body = _exchange(port, request)
        if mode == "refuse":
            assert status == 400
        else:
            assert status == 200
            headers = json.loads(body)["headers"]
            assert ["x-bar", "2"] in headers
            assert (["x_foo", "1"] in headers) == (mode == "dangerous")
        # the other header fields of a request are served either way
        assert _exchange(port, b"GET /scope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")[0] == 200
        assert server.stop() == 0
