"""nox sessions: the test suite on each supported CPython, and the lint and type checks.

    nox -s tests             # the suite on every supported CPython found on this machine
    nox -s tests-3.13        # on one of them
    nox -s lint              # ruff format --check, ruff check, mypy, cython-lint
    nox -s tests -- -k wire  # arguments after -- go to pytest

``tests`` installs ``-e .[test]`` into a virtualenv under .nox/ (as the README and CI's test
job do: pip builds the extension in place, src/fastasgi/_http/_core.cpython-3X-*.so, one per
interpreter side by side) and runs the suite from the checkout. The built wheel, installed
and tested outside the source tree, is scripts/build-wheel.sh's job. The system tools some
tests use (wrk, chromium) come from the machine, as for a plain pytest run.

Interpreters: nox looks for ``python3.X`` on PATH. The interpreters that pyenv installed
(``$PYENV_ROOT/versions/3.X.Y/bin``; PYENV_ROOT defaults to ~/.pyenv) are put on PATH first
below, since pyenv's shims answer only for the versions pyenv has selected. A supported
version that is not found is skipped, or is an error where CI is set (nox's
``--error-on-missing-interpreters`` default). nox never downloads an interpreter here.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import nox

# requires-python >= 3.10, and the versions wheels are built for ([tool.cibuildwheel] build)
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]

nox.options.sessions = ["lint", "tests"]
nox.options.download_python = "never"
nox.options.reuse_venv = "yes"


def _pyenv_bins() -> list[str]:
    """The bin directory of the newest pyenv-installed CPython of each supported version."""
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    newest: dict[str, tuple[int, Path]] = {}
    for entry in root.glob("3.*") if root.is_dir() else []:
        m = re.fullmatch(r"(3\.\d+)\.(\d+)", entry.name)  # CPython X.Y.Z (not X.Yt, pypy...)
        if not m or m.group(1) not in PYTHONS or not (entry / "bin" / f"python{m.group(1)}").exists():
            continue
        version, patch = m.group(1), int(m.group(2))
        if version not in newest or patch > newest[version][0]:
            newest[version] = (patch, entry / "bin")
    return [str(newest[version][1]) for version in PYTHONS if version in newest]


os.environ["PATH"] = os.pathsep.join([*_pyenv_bins(), os.environ.get("PATH", "")])


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole test suite against fastasgi installed with the test extra."""
    session.install("-e", ".[test]")
    session.run("python", "-c", "import fastasgi, fastasgi._http._core as c; print(c.__file__)")
    session.run("python", "-m", "pytest", "-p", "no:cacheprovider", *session.posargs)


@nox.session(python="3.12")
def lint(session: nox.Session) -> None:
    """ruff (format and check) and mypy on the Python code, cython-lint on the extension."""
    # the lint tools, and the runtime dependencies mypy reads types from; not fastasgi itself
    # (mypy checks src/fastasgi, and the compiled module's types are in _core.pyi)
    pyproject = nox.project.load_toml("pyproject.toml")
    optional = pyproject["project"]["optional-dependencies"]
    session.install(*optional["lint"], *pyproject["project"]["dependencies"], *optional["standard"])
    session.run("ruff", "format", "--check", ".")
    session.run("ruff", "check", ".")
    session.run("mypy")
    session.run("cython-lint", "src/fastasgi/_http")
