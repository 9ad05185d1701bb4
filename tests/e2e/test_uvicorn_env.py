"""``UVICORN_*`` variables through the real command line (``python -m fastasgi`` as a
subprocess): an image made for uvicorn keeps its address and app, fastasgi's own variables
win, the INFO line names what was taken, and a bad value is refused as uvicorn refuses it."""

from __future__ import annotations

import sys

import httpx

from support.server import APPS, HTTP_TIMEOUT, ServerProcess, run_to_end, server_env

LINE = "Settings from UVICORN_* environment variables: "


def env_with(**variables: str) -> dict[str, str]:
    env = server_env(variables)
    for name in list(env):
        if name.startswith(("FASTASGI_", "UVICORN_")) and name not in variables:
            del env[name]  # only the test's own variables
    return env


def test_an_image_made_for_uvicorn_listens_where_it_said():
    # the case that went wrong: UVICORN_HOST=0.0.0.0 bound 127.0.0.1 without a word
    env = env_with(UVICORN_APP="cli_app:app", UVICORN_HOST="0.0.0.0", UVICORN_PORT="0")
    with ServerProcess([sys.executable, "-m", "fastasgi"], cwd=APPS, env=env) as server:
        port = server.wait_started()
        assert server.host == "0.0.0.0"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=HTTP_TIMEOUT).text == "hello from cli_app"
        [line] = [line for line in server.stderr_lines if LINE in line]
        assert line == f"INFO:     {LINE}app, host, port"
        assert server.stop() == 0


def test_fastasgi_variables_and_flags_win_and_are_not_named():
    env = env_with(
        UVICORN_APP="cli_app:app",
        UVICORN_HOST="0.0.0.0",
        FASTASGI_HOST="127.0.0.1",
        UVICORN_PORT="1",  # a port this test may not bind: the flag must win
        UVICORN_ROOT_PATH="/from-uvicorn-env",
    )
    with ServerProcess([sys.executable, "-m", "fastasgi", "--port", "0"], cwd=APPS, env=env) as server:
        port = server.wait_started()
        assert server.host == "127.0.0.1"
        scope = httpx.get(f"http://127.0.0.1:{port}/scope", timeout=HTTP_TIMEOUT).json()
        assert scope["root_path"] == "/from-uvicorn-env"
        [line] = [line for line in server.stderr_lines if LINE in line]
        assert line == f"INFO:     {LINE}app, root_path"
        assert server.stop() == 0


def test_no_uvicorn_variable_no_line():
    env = env_with(FASTASGI_APP="cli_app:app", FASTASGI_PORT="0")
    with ServerProcess([sys.executable, "-m", "fastasgi"], cwd=APPS, env=env) as server:
        server.wait_started()
        assert not [line for line in server.stderr_lines if LINE in line]
        assert server.stop() == 0


def test_a_bad_uvicorn_value_is_refused_as_uvicorn_refuses_it():
    env = env_with(UVICORN_PORT="abc")
    ours = run_to_end([sys.executable, "-m", "fastasgi", "cli_app:app"], cwd=APPS, env=env, timeout=30)
    theirs = run_to_end([sys.executable, "-m", "uvicorn", "cli_app:app"], cwd=APPS, env=env, timeout=30)
    assert ours.returncode == theirs.returncode == 2, (ours.stderr, theirs.stderr)
    assert "Error: Invalid value for '--port': 'abc'" in ours.stderr
    assert "Error: Invalid value for '--port': 'abc'" in theirs.stderr
