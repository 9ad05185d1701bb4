"""Shared by both suites: where fastasgi is imported from, and a watchdog.

tests/unit/ drives the protocol in-process; tests/e2e/ starts the real server. The helpers
both use live in tests/support/ (imported as ``support``: pyproject's ``pythonpath``).
"""

from __future__ import annotations

import faulthandler
import sys

import pytest

from support.server import SRC, package_root

# A source checkout built in place (setup.py build_ext --inplace) and not installed: import
# fastasgi from src/, the package the servers run too (support.server.server_env).
if package_root() == str(SRC) and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))


@pytest.fixture(autouse=True)
def _watchdog():
    """A test that hangs despite the deadlines dumps its stack and ends the run."""
    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()
