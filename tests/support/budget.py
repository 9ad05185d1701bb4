"""A time budget per test: a test that overruns it FAILS, with the traceback of where it was,
and the run goes on (fixture finalizers run, so its servers are stopped).

Why not a whole-process watchdog (faulthandler's ``exit=True``): when it fires, pytest dies
with no summary, the traceback sits in captured output nobody sees, and nothing tears down.
Why not the pytest-timeout plugin: its ``signal`` method does the same as this, but a venv
without it would run with no budget at all and say nothing (an unknown ini key is only a
warning), and the last-resort dump below needs each test's budget; this is a few dozen lines.

How: SIGALRM (``setitimer``) armed around each phase of a test; its handler raises
``pytest.fail`` in the main thread, where pytest runs tests, so the phase ends with that
exception and pytest reports it as it reports any failure. Setup and call share the budget
(the clock starts with setup, so a slow fixture counts); teardown gets the same number of
seconds again, so that the finalizers of a test that overran still have time to run.

What a signal cannot interrupt (C code holding the GIL, SIGALRM blocked) is left to a last
resort: ``faulthandler`` dumps every thread's stack to the terminal's stderr (a copy of fd 2
taken before capture, not the captured one) ``grace`` seconds after the budget. It does not
exit: if the test does come back, the alarm still fails it and the run goes on.

Use: ``@pytest.mark.budget(seconds)`` (``grace=seconds`` too) on a test known to be long;
``--budget-factor`` scales every budget for a slow machine, and 0 turns budgets off (to sit in
a debugger). Re-export the hooks from a conftest to use them (tests/conftest.py does).
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import contextmanager

import pytest

#: a test without a ``budget`` marker: generous, the slowest ordinary e2e test takes ~30 s
DEFAULT_BUDGET = 120.0
#: the last-resort stack dump comes this long after the budget (when no marker says)
DEFAULT_GRACE = 30.0

_deadline = pytest.StashKey[float]()
_stderr_fd: int | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--budget-factor",
        type=float,
        default=1.0,
        help="multiply every test's time budget (tests/support/budget.py); 0: no budgets",
    )


def pytest_configure(config: pytest.Config) -> None:
    global _stderr_fd
    config.addinivalue_line(
        "markers",
        "budget(seconds, grace=None): this test's time budget; over it, the test fails "
        "(tests/support/budget.py)",
    )
    # Capture is suspended between conftest loading and the tests, so fd 2 is the terminal's
    # (or the parent's pipe) here; during a test it is pytest's capture file, which would
    # swallow the dump along with the test's output.
    if _stderr_fd is None:
        _stderr_fd = os.dup(2)


def budget_of(item: pytest.Item) -> tuple[float, float]:
    """(budget, grace) in seconds for ``item``; a budget of 0 means none."""
    marker = item.get_closest_marker("budget")
    seconds = float(marker.args[0]) if marker and marker.args else DEFAULT_BUDGET
    grace = marker.kwargs.get("grace") if marker else None
    grace = DEFAULT_GRACE if grace is None else float(grace)
    factor = item.config.getoption("budget_factor")
    return seconds * factor, grace * factor


def _other_threads() -> str:
    """The stacks of the threads other than this one (the failure's traceback is this one's)."""
    me = threading.get_ident()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    parts = []
    for ident, frame in sys._current_frames().items():
        if ident != me:
            stack = "".join(traceback.format_stack(frame))
            parts.append(f"--- thread {names.get(ident, ident)} ---\n{stack}")
    return "\n".join(parts)


@contextmanager
def _armed(item: pytest.Item, phase: str, deadline: float, budget: float, grace: float):
    if budget <= 0 or threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only: no budget rather than a wrong one
        return

    def overrun(signum, frame):
        __tracebackhide__ = True
        others = _other_threads()
        message = f"{item.nodeid}: over its time budget of {budget:g} s (in {phase}); stopped here"
        pytest.fail(message + (f"\nthe other threads:\n{others}" if others else ""), pytrace=True)

    remaining = max(deadline - time.monotonic(), 0.001)
    previous = signal.signal(signal.SIGALRM, overrun)
    signal.setitimer(signal.ITIMER_REAL, remaining)
    if _stderr_fd is not None:
        faulthandler.dump_traceback_later(remaining + grace, repeat=False, file=_stderr_fd, exit=False)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if _stderr_fd is not None:
            faulthandler.cancel_dump_traceback_later()
        # (None: a handler set from C, which Python cannot put back; the default then)
        signal.signal(signal.SIGALRM, signal.SIG_DFL if previous is None else previous)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item):
    budget, grace = budget_of(item)
    item.stash[_deadline] = time.monotonic() + budget
    with _armed(item, "setup", item.stash[_deadline], budget, grace):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item):
    budget, grace = budget_of(item)
    deadline = item.stash.get(_deadline, time.monotonic() + budget)
    with _armed(item, "call", deadline, budget, grace):
        return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    budget, grace = budget_of(item)
    with _armed(item, "teardown", time.monotonic() + budget, budget, grace):
        return (yield)
