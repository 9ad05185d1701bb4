"""Fixtures of the end-to-end suite: the real fastasgi server as a subprocess.

Servers are started once per distinct (app, flags) pair for the whole session and stopped (by
process group) at the end; tests that need a process of their own ask for ``fresh=True``, and
theirs is stopped after the test.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest

from support import server as servers
from support.server import CORE, REPO, ServerProcess, free_port


#: the benchmark harness's tests run servers under load, for seconds a round and several rounds
BENCH_BUDGET = 300


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # a larger budget (tests/support/budget.py) for those tests, unless one says otherwise
    for item in items:
        if item.path.name.startswith("test_bench_") and item.get_closest_marker("budget") is None:
            item.add_marker(pytest.mark.budget(BENCH_BUDGET))


@pytest.fixture(scope="session")
def serve(tmp_path_factory):
    """``serve(app, *flags, fresh=False)`` -> a running ServerProcess on a loopback port.

    Servers with the same app and flags are shared by the whole session unless ``fresh``;
    a fresh one is stopped after the test that asked for it (tests/conftest.py's sweep: the
    fixture is done with it then), the shared ones at the end of the session, all at once.
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
        # a shared one outlives the test (or fixture) that asked first; a fresh one does not
        with contextlib.nullcontext() if fresh else servers.scope("session"):
            proc = ServerProcess.cli(
                app, "--host", "127.0.0.1", "--port", str(port), *args, cwd=REPO, logdir=logdir
            )
        proc.quiet = fresh
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
    servers.sweep(started, grace=5.0)


@pytest.fixture(scope="session")
def core(serve) -> ServerProcess:
    """The server most tests use: the raw ASGI app of tests/apps/core_app.py, exact bytes
    (no Date header)."""
    return serve(CORE, "--no-date-header")


@pytest.fixture
def token() -> str:
    return uuid.uuid4().hex
