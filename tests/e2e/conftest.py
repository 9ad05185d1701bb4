"""Fixtures of the end-to-end suite: the real fastasgi server as a subprocess.

Servers are started once per distinct (app, flags) pair for the whole session and stopped by
PID at the end; tests that need a process of their own ask for ``fresh=True``.
"""

from __future__ import annotations

import uuid

import pytest

from support.server import CORE, REPO, ServerProcess, free_port


@pytest.fixture(scope="session")
def serve(tmp_path_factory):
    """``serve(app, *flags, fresh=False)`` -> a running ServerProcess on a loopback port.

    Servers with the same app and flags are shared by the whole session unless ``fresh``;
    every process is terminated by PID at the end of the session.
    """
    logdir = tmp_path_factory.mktemp("servers")
    shared: dict[tuple, ServerProcess] = {}
    broken: dict[tuple, str] = {}  # a server that would not start is not retried per test
    started: list[ServerProcess] = []

    def _serve(app: str, *args: str, fresh: bool = False) -> ServerProcess:
        key = (app, args)
        if key in broken:
            raise RuntimeError(broken[key])
        if not fresh and key in shared and shared[key].alive():
            return shared[key]
        port = free_port()
        proc = ServerProcess.cli(
            app, "--host", "127.0.0.1", "--port", str(port), *args, cwd=REPO, logdir=logdir
        )
        started.append(proc)
        try:
            proc.wait_listening(port)
        except AssertionError as exc:
            proc.close()
            broken[key] = str(exc)
            raise RuntimeError(str(exc)) from None
        if not fresh:
            shared[key] = proc
        return proc

    yield _serve
    for proc in started:
        proc.close()


@pytest.fixture(scope="session")
def core(serve) -> ServerProcess:
    """The server most tests use: the raw ASGI app of tests/apps/core_app.py, exact bytes
    (no Date header)."""
    return serve(CORE, "--no-date-header")


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex
