"""The production-operations tests' server: ``ops_app`` started with the real CLI on
``--port 0`` (tests/e2e/test_ops_*.py), and raw connections to it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from support.client import RawConn
from support.server import HTTP_TIMEOUT, ServerProcess

APP = "ops_app:app"


@contextlib.contextmanager
def serve(
    *args: str, env: dict[str, str] | None = None, started: bool = True, **kwargs
) -> Iterator[ServerProcess]:
    """``fastasgi ops_app:app --port 0 ARGS``, killed by its PID at the end."""
    server = ServerProcess.cli(APP, "--port", "0", *args, env=env, **kwargs)
    with server:
        if started:
            server.wait_started()
        yield server


def connect(server: ServerProcess, timeout: float = HTTP_TIMEOUT) -> RawConn:
    return RawConn(server.port, timeout)
