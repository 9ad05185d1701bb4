"""Shared by both suites: where fastasgi is imported from, a time budget per test
(support/budget.py), and the sweeps that end every server a test or a fixture left running
(support/sweeps.py).

tests/unit/ drives the protocol in-process; tests/e2e/ starts the real server. The helpers
both use live in tests/support/ (imported as ``support``: pyproject's ``pythonpath``).
"""

from __future__ import annotations

import sys

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
