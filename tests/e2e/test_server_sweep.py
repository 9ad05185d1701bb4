"""ServerProcess ends its whole process group, and the sweeps (tests/support/sweeps.py) end
what a test or a session fixture left running: checked on a stand-in "server" that starts a
child of its own (as a supervisor starts workers), both PIDs written to its stdout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.server import ServerProcess, run_to_end
from support.supervisors import is_alive, wait_until

TESTS = Path(__file__).resolve().parents[1]

#: a parent that starts a child in its group, prints both PIDs, and waits for a signal
FAMILY = (
    "import subprocess, sys, time; "
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
    "print('pids', %s, child.pid, flush=True); time.sleep(120)"
)


def family(prefix: str = "") -> list[str]:
    return [sys.executable, "-c", prefix + FAMILY % "__import__('os').getpid()"]


def pids_of(proc: ServerProcess) -> tuple[int, int]:
    match = proc.wait_for(r"pids (\d+) (\d+)", stream="stdout", timeout=20)
    return int(match.group(1)), int(match.group(2))


def gone(*pids: int) -> bool:
    return not any(is_alive(pid) for pid in pids)


def test_close_ends_the_whole_group():
    proc = ServerProcess(family())
    parent, child = pids_of(proc)
    assert os.getpgid(parent) == parent != os.getpgrp()  # a group of its own, not ours
    assert os.getpgid(child) == parent
    proc.close(grace=0.5)
    wait_until(lambda: gone(parent, child), 5, "the server and its child to be gone")


def test_stragglers_go_after_their_leader_exited():
    proc = ServerProcess(family())
    parent, child = pids_of(proc)
    proc.stop()  # the leader only (SIGTERM): its child stays, as a worker a server forgot
    assert is_alive(child)
    proc.close()
    wait_until(lambda: gone(child), 5, "the child left behind to be gone")


def test_a_command_that_makes_its_own_session():
    # such a command is not started in a new session (its setsid() would fail in a group
    # leader): its own is still ended as a whole
    proc = ServerProcess(family("import os; os.setsid(); "))
    parent, child = pids_of(proc)
    assert os.getsid(parent) == parent
    proc.close(grace=0.5)
    wait_until(lambda: gone(parent, child), 5, "the server and its child to be gone")


CONFTEST = """
from support.budget import (
    pytest_addoption, pytest_configure, pytest_runtest_call, pytest_runtest_setup,
    pytest_runtest_teardown,
)
from support.sweeps import _servers_stopped, pytest_fixture_setup, pytest_sessionfinish
"""

CASES = """
import sys

import pytest

from support.server import ServerProcess, run_to_end

FAMILY = {family!r}

def started(name):
    proc = ServerProcess(FAMILY)
    match = proc.wait_for(r"pids (\\d+) (\\d+)", stream="stdout", timeout=20)
    with open(name, "w") as f:
        f.write(match.group(1) + " " + match.group(2))
    return proc

@pytest.fixture(scope="session")
def forgotten():
    # a session fixture that never stops its server: the end of the session does
    started("session.pids")
    yield

def test_leaves_its_server_running(forgotten):
    started("test.pids")

def test_fails_with_its_server_running():
    started("failed.pids")
    assert False, "failed while its server ran"

def test_the_next_test():
    # the servers above: the two tests' are gone by now, the session fixture's still runs
    from support.supervisors import is_alive, wait_until
    for name, alive in (("test.pids", False), ("failed.pids", False), ("session.pids", True)):
        pids = [int(p) for p in open(name).read().split()]
        wait_until(lambda: all(is_alive(p) == alive for p in pids), 5, name)
"""


@pytest.mark.budget(150)
def test_the_sweeps_stop_what_was_left_running(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_cases.py").write_text(CASES.format(family=family()))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "-W", "always", "test_cases.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = run.stdout
    report = f"--- stdout ---\n{out}\n--- stderr ---\n{run.stderr}"
    assert "1 failed, 2 passed" in out.splitlines()[-1], report
    # both tests' servers were reported, by the sweep after each
    assert out.count("ServerLeftRunning: stopped after the test, still running: <ServerProcess") == 2, report
    # the session fixture's at the end of the session
    assert "stopped at the end of the session, still running: <ServerProcess" in out, report
    pids = [int(p) for name in ("test", "failed", "session") for p in (tmp_path / f"{name}.pids").read_text().split()]
    assert len(pids) == 6
    # (the children were reparented when their parent died: to init, which reaps them)
    wait_until(lambda: gone(*pids), 5, f"every process of the run to be gone: {pids}")


def test_run_to_end_kills_the_group_when_its_wait_ends_early(tmp_path):
    pids = tmp_path / "pids"
    script = (
        "import subprocess, sys, os, time; "
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']); "
        f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}'); time.sleep(120)"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        run_to_end([sys.executable, "-c", script], timeout=3)
    both = [int(pid) for pid in pids.read_text().split()]
    wait_until(lambda: gone(*both), 5, f"the command and its child to be gone: {both}")
