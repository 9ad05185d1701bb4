"""The time budget of tests/support/budget.py, in a pytest run of its own (a subprocess): a
test over its budget fails with its traceback, its finalizers run, the run goes on to the
next test and ends with its summary line; what a signal cannot interrupt gets its stacks
dumped to the terminal's stderr, and the run still goes on."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CONFTEST = """
from support.budget import (
    pytest_addoption, pytest_configure, pytest_runtest_call, pytest_runtest_setup,
    pytest_runtest_teardown,
)
"""

CASES = """
import signal
import time

import pytest

@pytest.fixture
def resource(tmp_path_factory):
    yield
    # the finalizer of the test that overran: the run's directory says it ran
    (tmp_path_factory.getbasetemp().parent / "finalized").write_text("yes")

@pytest.mark.budget(0.5)
def test_sleeps_past_its_budget(resource):
    time.sleep(30)  # the line the traceback must point at

@pytest.mark.budget(0.5, grace=0.5)
def test_deaf_to_the_alarm():
    # SIGALRM blocked stands for C code that a signal handler cannot interrupt: the stacks
    # are dumped after budget + grace; once it is unblocked the test fails as usual
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    try:
        time.sleep(2.5)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGALRM})
    time.sleep(30)

@pytest.mark.budget(0.5)
def test_slow_teardown(slow_finalizer):
    pass

@pytest.fixture
def slow_finalizer():
    yield
    time.sleep(30)

@pytest.mark.budget(0.5)
def test_sleeps_a_second():
    time.sleep(1)

def test_next_one_runs():
    assert True

@pytest.mark.budget(5)
def test_within_its_budget():
    time.sleep(0.2)
"""


def run_cases(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # the run's own, not the repository's
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--basetemp", str(tmp_path / "base"),
         *args, str(tmp_path / "test_cases.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return run, time.monotonic() - started


@pytest.mark.budget(150)
def test_an_overrun_fails_that_test_and_the_run_goes_on(tmp_path):
    run, took = run_cases(tmp_path)
    out = run.stdout
    report = f"--- stdout ---\n{out}\n--- stderr ---\n{run.stderr}"
    assert run.returncode == 1, report  # tests failed; not an exit from a watchdog
    # the summary line, with every test accounted for (test_slow_teardown's call passed, its
    # teardown is the error)
    assert "3 failed, 3 passed, 1 error" in out.splitlines()[-1], report
    assert "FAILED test_cases.py::test_sleeps_past_its_budget" in out, report
    assert "FAILED test_cases.py::test_deaf_to_the_alarm" in out, report
    assert "ERROR test_cases.py::test_slow_teardown" in out, report
    assert "FAILED test_cases.py::test_sleeps_a_second" in out, report
    assert "PASSED test_cases.py::test_next_one_runs" in out, report
    assert "PASSED test_cases.py::test_within_its_budget" in out, report
    # the failure says why, and its traceback shows where the test was
    assert "over its time budget of 0.5 s (in call)" in out, report
    assert "over its time budget of 0.5 s (in teardown)" in out, report
    assert "time.sleep(30)  # the line the traceback must point at" in out, report
    # the overrunning test's finalizer ran
    assert (tmp_path / "finalized").read_text() == "yes", report
    # the last resort wrote to the real stderr (not captured into the report) and did not exit
    assert "Timeout (0:00:0" in run.stderr, report  # faulthandler's header: budget + grace
    assert "in test_deaf_to_the_alarm" in run.stderr, report
    assert "Timeout" not in out, report
    # nothing waited for its 30 s sleeps
    assert took < 60, report


@pytest.mark.budget(150)
def test_budget_factor_scales_every_budget(tmp_path):
    # 0.5 s times 10: the second-long sleep that failed above passes
    run, _ = run_cases(tmp_path, "--budget-factor", "10", "-k", "sleeps_a_second or next_one")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "2 passed" in run.stdout.splitlines()[-1], run.stdout
