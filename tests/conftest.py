"""Shared by both suites: where fastasgi is imported from, a time budget per test
(support/budget.py), and the sweeps that end every server a test or a fixture left running
(support/sweeps.py).

tests/unit/ drives the protocol in-process; tests/e2e/ starts the real server. The helpers
both use live in tests/support/ (imported as ``support``: pyproject's ``pythonpath``).
"""

from __future__ import annotations

import logging
import sys

import pytest

from support.budget import (  # noqa: F401 (the budget's hooks, registered by being here)
    pytest_addoption,
    pytest_configure,
    pytest_runtest_call,
    pytest_runtest_setup,
    pytest_runtest_teardown,
)
from support.server import SRC, package_root
from support.sweeps import (  # noqa: F401 (the sweeps' hooks and fixture, registered by being here)
    _servers_stopped,
    pytest_fixture_setup,
    pytest_sessionfinish,
)

# A source checkout built in place (setup.py build_ext --inplace) and not installed: import
# fastasgi from src/, the package the servers run too (support.server.server_env).
if package_root() == str(SRC) and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


#: the loggers fastasgi links (fastasgi.logging); tests that build a Config or a gunicorn worker
#: in-process configure them, and a later test must find them as a fresh process would
_LINKED_LOGGERS = ("fastasgi", "fastasgi.error", "fastasgi.access", "uvicorn", "uvicorn.error", "uvicorn.access")


@pytest.fixture(autouse=True)
def _logging_restored():
    """Put the linked loggers back as they were before the test: handlers, level, propagate,
    disabled and filters."""
    saved = []
    for name in _LINKED_LOGGERS:
        logger = logging.getLogger(name)
        disabled = vars(logger).get("_own_disabled", logger.disabled)
        saved.append((logger, list(logger.handlers), logger.level, logger.propagate, disabled,
                      list(logger.filters)))
    yield
    for logger, handlers, level, propagate, disabled, filters in saved:
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate = propagate
        logger.disabled = disabled
        logger.filters[:] = filters
