"""The unit suite once more, against a debug build of the core (FASTASGI_DEBUG=1): every state
transition of a connection, a response and a request message is then checked against the
tables at the top of src/fastasgi/_http/protocol.pxi and cycle.pxi, and one the tables do not
allow raises AssertionError instead of passing silently.

The debug extension is built into a temporary directory (never over the one in src/), the
package's Python files are copied beside it, and tests/unit runs in child processes with that
directory first on sys.path.

The build and the run take minutes on a slow machine, so they are separate tests, each with a
budget of its own and a failure of its own: the build, then tests/unit in three parts that
together are all of it by construction (pytest's own selection: one heavy test function, the
rest of its file, every other file). Each child runs in a process group of its own, ended
when the test ends however it ends (ServerProcess).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "tests" / "unit"
#: the file that takes most of the unit suite's time, and its heaviest test function
WIRE = UNIT / "test_wire_inproc.py"
EVERY_SPLIT = f"{WIRE}::test_bad_every_split"
#: fails unless the child imported the debug build: every part runs it (the last one anyway)
BUILD_CHECK = f"{UNIT / 'test_debug_checks.py'}::test_this_run_has_the_build_it_expects"

#: each part of tests/unit: the pytest arguments that select it
PARTS = {
    "wire-bad-every-split": [BUILD_CHECK, EVERY_SPLIT],
    "wire-rest": [BUILD_CHECK, str(WIRE), "--deselect", EVERY_SPLIT],
    "other-files": [str(UNIT), "--ignore", str(WIRE)],
}

#: the build took 45 s on a loaded 2-core machine (twice that seen in CI), the parts 10-55 s
#: each. A part run on its own (-k) builds first: its budget has room for the build too.
BUILD_BUDGET = 600
PART_BUDGET = 600

needs_source = pytest.mark.skipif(
    not (ROOT / "setup.py").exists() or not (ROOT / "csrc").exists(),
    reason="needs the source tree (not an installed wheel's test run)",
)
needs_cc = pytest.mark.skipif(
    shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler"
)
pytestmark = [pytest.mark.slow, needs_source, needs_cc]


def run(command: list[str], cwd: Path, env: dict[str, str], logdir: Path, timeout: float) -> ServerProcess:
    """``command`` to its end (in a process group of its own, killed whatever happens); the
    finished process, its output readable."""
    logdir.mkdir(parents=True, exist_ok=True)
    with ServerProcess(command, cwd=cwd, env=env, logdir=logdir) as proc:
        proc.wait_exit(timeout)
    return proc


@pytest.fixture(scope="module")
def debug_lib(tmp_path_factory) -> Path:
    """The debug build of the package, built once for the module (a failed build is reported
    by each test that needs it, without building again)."""
    base = tmp_path_factory.mktemp("debug-build")
    lib = base / "lib"
    build = run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(lib), "--build-temp", str(base / "tmp")],
        cwd=ROOT,
        env={**os.environ, "FASTASGI_DEBUG": "1"},
        logdir=base / "logs",
        timeout=BUILD_BUDGET - 30,
    )
    assert build.proc.returncode == 0, build.log()[-3000:]
    shutil.copytree(
        ROOT / "src" / "fastasgi",
        lib / "fastasgi",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"),
    )
    return lib


@pytest.mark.budget(BUILD_BUDGET)
def test_debug_build(debug_lib):
    built = list((debug_lib / "fastasgi" / "_http").glob("_core*"))
    assert built, f"no extension in {debug_lib}"


@pytest.mark.budget(PART_BUDGET)
@pytest.mark.parametrize("part", PARTS)
def test_unit_suite_under_debug_build(debug_lib, part, tmp_path):
    env = {
        **os.environ,
        "FASTASGI_DEBUG_RUN": "1",
        "PYTHONPATH": os.pathsep.join([str(debug_lib), str(ROOT / "tests"), str(ROOT / "tests" / "apps")]),
    }
    child = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", *PARTS[part]],
        cwd=tmp_path,
        env=env,
        logdir=tmp_path / "logs",
        timeout=PART_BUDGET - 60,
    )
    out = child.stdout()
    assert child.proc.returncode == 0, out[-5000:] + child.log()[-2000:]
    assert " passed" in out.splitlines()[-1], out[-2000:]
