"""The whole uvicorn command line: every uvicorn option exists with its default, options from
FASTASGI_* environment variables and --env-file, refusals and bad values in one line,
--use-colors, and the programmatic API with several listeners."""

from __future__ import annotations

import socket
import sys
import textwrap

import click
import httpx
import pytest

from support.ops import APP, serve
from support.server import HTTP_TIMEOUT, ServerProcess, free_port, run_cli, server_env

if sys.platform != "linux":
    pytestmark = pytest.mark.skip("Linux only")

# Where fastasgi's option differs from uvicorn's on purpose (see notes/README-flags.md).
CHOICES_REFUSED = {
    "--loop": {"zuvloop"},  # uvicorn's own loop: fastasgi runs on asyncio or uvloop
    "--ws": {"wsproto"},  # fastasgi's WebSockets are its own implementation
}
# Defaults that differ on purpose: HTTP/2 is served unless --no-http2 (uvicorn's --http2 is
# off); a cleartext HTTP/1.1 client never sends the HTTP/2 preface, so nothing changes for it,
# and over TLS ALPN lets each client choose (README: "HTTP/2").
DEFAULTS_DIFFER = {"--http2": True}
WIDER_TYPES = {
    "--port",
    "--fd",
    "--timeout-keep-alive",
    "--timeout-graceful-shutdown",
    "--timeout-worker-healthcheck",
}


def test_every_uvicorn_option_exists_with_its_default():
    uvicorn_main = pytest.importorskip("uvicorn.main").main
    from fastasgi.cli import main

    ours = {name: param for param in main.params for name in param.opts + param.secondary_opts}
    for param in uvicorn_main.params:
        if not isinstance(param, click.Option):
            continue
        for name in param.opts + param.secondary_opts:
            assert name in ours, f"{name} is missing"
        mine = ours[param.opts[0]]
        if param.opts[0] == "--version":
            continue
        expected = DEFAULTS_DIFFER.get(param.opts[0], param.default)
        assert mine.default == expected, (param.opts[0], mine.default, param.default)
        assert mine.multiple == param.multiple and mine.is_flag == param.is_flag, param.opts[0]
        if isinstance(param.type, click.Choice):
            refused = CHOICES_REFUSED.get(param.opts[0], set())
            accepted = set(getattr(mine.type, "choices", param.type.choices))
            assert set(param.type.choices) - refused <= accepted, param.opts[0]


# --- environment --------------------------------------------------------------------------------


def test_options_from_fastasgi_environment_variables():
    port = free_port()
    env = server_env(
        {
            "FASTASGI_APP": APP,
            "FASTASGI_PORT": str(port),
            "FASTASGI_ROOT_PATH": "/from-env",
            "FASTASGI_HEADER": "x-one:1 x-two:2",  # a repeatable option: whitespace-separated
            "FASTASGI_ACCESS_LOG": "false",
            "FASTASGI_SERVER_HEADER": "0",
        }
    )
    with ServerProcess.cli(env=env) as server:
        assert server.wait_started() == port
        response = httpx.get(server.url + "/scope", timeout=HTTP_TIMEOUT)
        assert server.stop() == 0
    assert response.json()["root_path"] == "/from-env"
    assert (response.headers["x-one"], response.headers["x-two"]) == ("1", "2")
    assert "server" not in response.headers
    assert server.stdout() == ""  # no access log


def test_flags_win_over_environment_variables():
    with serve("--root-path", "/flag", env=server_env({"FASTASGI_ROOT_PATH": "/env"})) as server:
        assert httpx.get(server.url + "/scope", timeout=HTTP_TIMEOUT).json()["root_path"] == "/flag"


def test_env_file_sets_app_environment_and_options(tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text(
        "APP_SETTING=from-the-file\nFASTASGI_ROOT_PATH=/file-root\nFASTASGI_TIMEOUT_KEEP_ALIVE=1\n"
    )
    with serve("--env-file", str(env_file)) as server:
        assert httpx.get(server.url + "/env?name=APP_SETTING", timeout=HTTP_TIMEOUT).text == "from-the-file"
        assert httpx.get(server.url + "/scope", timeout=HTTP_TIMEOUT).json()["root_path"] == "/file-root"
    assert f"Loading environment from '{env_file}'" in server.stderr


def test_environment_wins_over_env_file(tmp_path):
    env_file = tmp_path / "prod.env"
    env_file.write_text("APP_SETTING=from-the-file\n")
    with serve(
        "--env-file", str(env_file), env=server_env({"APP_SETTING": "from-the-environment"})
    ) as server:
        assert (
            httpx.get(server.url + "/env?name=APP_SETTING", timeout=HTTP_TIMEOUT).text
            == "from-the-environment"
        )


# --- refusals and bad values: one line naming the flag ---------------------------------------------


@pytest.mark.parametrize(
    "args, flag",
    [
        (["--timeout-request-head", "-1"], "--timeout-request-head"),
        (["--timeout-request-body", "soon"], "--timeout-request-body"),
        (["--limit-request-body", "-5"], "--limit-request-body"),
        (["--limit-concurrency", "0"], "--limit-concurrency"),
        (["--backlog", "0"], "--backlog"),
        (["--ssl-cert-reqs", "3"], "--ssl-cert-reqs"),
        (["--ssl-version", "tls"], "--ssl-version"),
        (["--interface", "cgi"], "--interface"),
        (["--loop", "tokio"], "--loop"),
        (["--ws-max-size", "0"], "--ws-max-size"),
        (["--timeout-graceful-shutdown", "-2"], "--timeout-graceful-shutdown"),
        (["--env-file", "/nonexistent.env"], "--env-file"),
        (["--log-config", "/nonexistent.json"], "--log-config"),
    ],
)
def test_bad_flag_values_are_one_line(args, flag):
    result = run_cli(APP, *args)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: Invalid value for '{flag}'"), result.stderr


def test_bad_value_from_the_environment_names_the_flag():
    with ServerProcess.cli(APP, env=server_env({"FASTASGI_LIMIT_CONCURRENCY": "lots"})) as server:
        assert server.wait_exit() == 2
    assert server.stderr.strip().splitlines() == [
        "Error: Invalid value for '--limit-concurrency': 'lots' is not a valid integer range."
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--http", "h11"], "--http h11 is not supported: fastasgi always uses its own llhttp-based HTTP/1.1 protocol "
                            "(--http auto; --http h2 serves HTTP/2 only)"),
        (["--http", "zttp"], "Invalid value for '--http': 'zttp' is not one of 'auto', 'h11', 'httptools', 'h2'."),
        (["--interface", "wsgi"], "--interface wsgi is not supported: fastasgi serves ASGI 3 and ASGI 2 applications"),
    ],
)  # fmt: skip
def test_options_fastasgi_cannot_honour_are_refused_in_one_line(args, message):
    result = run_cli(APP, *args)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"ERROR:    {message}"]


def test_missing_app_and_unknown_option_show_usage():
    """No APP, or an unknown flag: the usage line and the --help hint, as uvicorn prints them."""
    result = run_cli()
    assert result.returncode == 2
    usage, hint, blank, error = result.stderr.strip().splitlines()  # run as `python -m fastasgi`
    assert usage.startswith("Usage: ") and usage.endswith("fastasgi [OPTIONS] APP")
    assert hint.startswith("Try '") and hint.endswith("fastasgi --help' for help.")
    assert (blank, error) == ("", "Error: Missing argument 'APP'.")
    result = run_cli(APP, "--proxy-header")
    assert result.returncode == 2
    usage, hint, blank, line = result.stderr.strip().splitlines()
    assert usage.endswith("fastasgi [OPTIONS] APP") and hint.endswith("fastasgi --help' for help.")
    assert line.startswith("Error: No such option '--proxy-header'.") and "'--proxy-headers'" in line


# --- colours ---------------------------------------------------------------------------------------


def test_use_colors_forces_colours_and_no_use_colors_removes_them():
    with serve("--use-colors", started=False) as server:
        port = server.wait_for(r"running on \x1b\[1mhttp://127\.0\.0\.1:(\d+)\x1b\[0m").group(1)
        httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT)
        line = server.wait_for("GET /", stream="stdout").string
    assert "\x1b[32mINFO\x1b[0m:" in server.stderr
    assert line.startswith("\x1b[32mINFO\x1b[0m:     127.0.0.1:")
    assert line.endswith('"\x1b[1mGET / HTTP/1.1\x1b[0m" \x1b[32m200 OK\x1b[0m')
    with serve("--no-use-colors") as server:
        httpx.get(server.url + "/", timeout=HTTP_TIMEOUT)
        line = server.wait_for("GET /", stream="stdout").string
    assert "\x1b[" not in server.stderr + line


# --- the programmatic API ---------------------------------------------------------------------------


def test_server_serve_in_a_running_loop_with_several_binds(tmp_path):
    port1, port2 = free_port(), free_port()
    path = tmp_path / "api.py"
    path.write_text(
        textwrap.dedent(
            f"""
            import asyncio
            import fastasgi
            from ops_app import app

            async def main():
                config = fastasgi.Config(app, bind=["127.0.0.1:{port1}", "127.0.0.1:{port2}"],
                                         proxy_headers=False, access_log_format="%(s)s %(U)s")
                server = fastasgi.Server(config)
                task = asyncio.create_task(server.serve())
                while not server.started:
                    await asyncio.sleep(0.01)
                print("serving", flush=True)
                while "stop" not in open({str(tmp_path / "control")!r}).read():
                    await asyncio.sleep(0.02)
                server.should_exit = True
                await task
                print("served", flush=True)

            open({str(tmp_path / "control")!r}, "w").close()
            asyncio.run(main())
            """
        )
    )
    with ServerProcess([sys.executable, str(path)]) as server:
        server.wait_for("serving", stream="stdout")
        for port in (port1, port2):
            scope = httpx.get(f"http://127.0.0.1:{port}/scope", headers={"x-forwarded-for": "1.2.3.4"},
                              timeout=HTTP_TIMEOUT).json()  # fmt: skip
            assert scope["client"][0] == "127.0.0.1"  # proxy_headers=False
        (tmp_path / "control").write_text("stop")
        assert server.wait_exit() == 0
    assert server.stdout_lines == ["serving", "200 /scope", "200 /scope", "served"]
    for port in (port1, port2):
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            pass
