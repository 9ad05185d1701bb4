"""The unit suite once more, against a debug build of the core (FASTASGI_DEBUG=1): every state
transition of a connection, a response and a request message is then checked against the
tables at the top of src/fastasgi/_http/protocol.pxi and cycle.pxi, and one the tables do not
allow raises AssertionError instead of passing silently.

The debug extension is built into a temporary directory (never over the one in src/), the
package's Python files are copied beside it, and tests/unit runs in a child process with that
directory first on sys.path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.skipif(
    not (ROOT / "setup.py").exists() or not (ROOT / "csrc").exists(),
    reason="needs the source tree (not an installed wheel's test run)",
)
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_unit_suite_under_debug_build(tmp_path):
    lib = tmp_path / "lib"
    build = subprocess.run(
        [
            sys.executable,
            "setup.py",
            "-q",
            "build_ext",
            "--build-lib",
            str(lib),
            "--build-temp",
            str(tmp_path / "tmp"),
        ],
        cwd=ROOT,
        env={**os.environ, "FASTASGI_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    shutil.copytree(
        ROOT / "src" / "fastasgi",
        lib / "fastasgi",
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns("*.so", "*.pyd", "*.c", "__pycache__"),
    )
    env = {
        **os.environ,
        "FASTASGI_DEBUG_RUN": "1",
        "PYTHONPATH": os.pathsep.join([str(lib), str(ROOT / "tests"), str(ROOT / "tests" / "apps")]),
    }
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x", str(ROOT / "tests" / "unit")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
