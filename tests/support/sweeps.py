"""The sweeps that end every server a test or a fixture left running (ServerProcess, by
process group: tests/support/server.py). Re-export these from a conftest to use them
(tests/conftest.py does).

- after each test: the servers it started that are still running (a fixture's finalizers ran
  first) are stopped, and reported as a ServerLeftRunning warning;
- at the end of the session, after the session fixtures' finalizers: all that is left.
"""

from __future__ import annotations

import sys
import warnings

import pytest

from support import server as servers


class ServerLeftRunning(pytest.PytestWarning):
    """A test ended with a server it started still running (the sweep has stopped it)."""


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef, request: pytest.FixtureRequest):
    # A server started while a module- or session-scoped fixture is set up is that fixture's
    # to stop, later than the test that happened to need it first: the sweep after the test
    # leaves it alone (the one at the end of the session does not).
    if fixturedef.scope == "function":
        return (yield)
    with servers.scope(fixturedef.scope):
        return (yield)


@pytest.fixture(autouse=True)
def _servers_stopped():
    """After the test (and its fixtures' finalizers, which ran first): stop each server it
    started that is still running, whatever happened, and report it."""
    before = set(servers.LIVE)
    yield
    left = [proc for proc in servers.LIVE - before if proc.scope == "function"]
    if not left:
        return
    stopped = [proc for proc in servers.sweep(left) if not proc.quiet]
    if stopped:
        names = "; ".join(map(repr, stopped))
        warnings.warn(ServerLeftRunning(f"stopped after the test, still running: {names}"), stacklevel=1)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # After the session-scoped fixtures' finalizers (pytest runs those in its own
    # pytest_sessionfinish): whatever is still running now no finalizer will stop.
    stopped = servers.sweep()
    if stopped:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = [f"stopped at the end of the session, still running: {proc!r}" for proc in stopped]
        if reporter is not None:
            for line in lines:
                reporter.write_line(line, yellow=True)
        else:
            print("\n".join(lines), file=sys.stderr)
