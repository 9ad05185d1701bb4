"""The fastasgi under test is the installed one, and its compiled module is the one in use.

From a checkout (after ``pip install -e .[test]``): the extension loaded is the one inside the
imported package, and it is not older than its Cython and llhttp sources (a stale in-place
build fails here instead of silently testing old code).

Against a wheel (``scripts/build-wheel.sh`` and cibuildwheel set FASTASGI_EXPECT_INSTALLED=1
and run the tests from a directory holding only copies of tests/, pyproject.toml and
csrc/llhttp/VERSION): fastasgi is imported from site-packages, not from a source tree, and the
loaded extension is byte for byte the file the wheel installed (its RECORD hash).

Always: the compiled llhttp version is the vendored one, and ``fastasgi.__version__``, the
installed distribution's metadata and ``python -m fastasgi --version`` / ``fastasgi --version``
all give the one version from src/fastasgi/_version.py.
"""

import base64
import hashlib
import importlib.machinery
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

try:
    import fastasgi
except ModuleNotFoundError as exc:  # pragma: no cover - a setup problem, not a test result
    raise ImportError(
        "fastasgi is not installed in this interpreter: `pip install -e .[test]` (then pytest), "
        "or test a built wheel with scripts/build-wheel.sh"
    ) from exc
import fastasgi._version
from fastasgi._http import _core

EXPECT_INSTALLED = os.environ.get("FASTASGI_EXPECT_INSTALLED") == "1"
requires_installed = pytest.mark.skipif(
    not EXPECT_INSTALLED, reason="checks an installed wheel; set FASTASGI_EXPECT_INSTALLED=1"
)

# Not resolved: an editable install may reach files through links, and what matters is
# where the import system found them.
PACKAGE_DIR = Path(os.path.abspath(fastasgi.__file__)).parent
CORE_FILE = Path(os.path.abspath(_core.__file__))
# The directory that holds tests/: the checkout, or the copy a wheel test runs in.
PROJECT_DIR = Path(__file__).resolve().parents[2]
LLHTTP_VERSION_FILE = PROJECT_DIR / "csrc" / "llhttp" / "VERSION"

CLI_TIMEOUT = 60


def _version_in(text: str, version: str) -> bool:
    """``version`` appears in ``text`` as a whole token (0.1.0 is not found in 0.1.0.dev1 or 10.1.0)."""
    return re.search(rf"(?<![\w.]){re.escape(version)}(?![\w]|\.\w)", text) is not None


def test_core_is_the_compiled_extension_inside_the_imported_package():
    assert CORE_FILE.parent == PACKAGE_DIR / "_http", (
        f"fastasgi._http._core was loaded from {CORE_FILE}, outside the imported package {PACKAGE_DIR}"
    )
    assert isinstance(_core.__spec__.loader, importlib.machinery.ExtensionFileLoader)
    assert CORE_FILE.name.startswith("_core.")
    assert any(CORE_FILE.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    # the import system picks the first suffix that exists; no other build for this
    # interpreter may sit beside the one in use
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        candidate = CORE_FILE.parent / f"_core{suffix}"
        if candidate.exists():
            assert candidate == CORE_FILE, f"{candidate} would shadow {CORE_FILE}"
            break


@pytest.mark.skipif(
    not (PACKAGE_DIR / "_http" / "_core.pyx").exists(),
    reason="package is not a source tree (installed from a wheel)",
)
def test_in_tree_build_is_not_older_than_its_sources():
    root = PACKAGE_DIR.parent.parent  # src/fastasgi -> checkout
    sources = [*(PACKAGE_DIR / "_http").glob("*.pyx"), *(PACKAGE_DIR / "_http").glob("*.pxd")]
    sources += [*(root / "csrc").rglob("*.[ch]")]
    built = CORE_FILE.stat().st_mtime
    newer = sorted(str(p.relative_to(root)) for p in sources if p.stat().st_mtime > built)
    assert not newer, (
        f"stale build: {CORE_FILE.name} is older than {newer}; rebuild with "
        "`python3 setup.py build_ext --inplace` or `pip install -e .`"
    )


@requires_installed
def test_package_is_imported_from_site_packages_not_a_source_tree():
    site_dirs = {Path(sysconfig.get_path(k)).resolve() for k in ("purelib", "platlib")}
    assert PACKAGE_DIR.resolve().parent in site_dirs, (
        f"fastasgi imported from {PACKAGE_DIR}, not from site-packages {sorted(map(str, site_dirs))}"
    )
    assert not PACKAGE_DIR.resolve().is_relative_to(PROJECT_DIR), (
        f"fastasgi imported from {PACKAGE_DIR}, inside the test directory {PROJECT_DIR}"
    )
    # a wheel ships no Cython sources; finding them means a source tree is on sys.path
    assert not (PACKAGE_DIR / "_http" / "_core.pyx").exists()
    assert sys.prefix != sys.base_prefix, "expected to run in a virtual environment"


@requires_installed
def test_loaded_extension_is_the_file_the_wheel_installed():
    dist = importlib.metadata.distribution("fastasgi")
    files = dist.files or []
    entries = [
        f
        for f in files
        if f.parent.as_posix() == "fastasgi/_http"
        and f.name.startswith("_core.")
        and any(f.name.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    ]
    assert len(entries) == 1, f"RECORD lists {[str(e) for e in entries]} as the compiled module"
    (entry,) = entries
    assert Path(dist.locate_file(entry)).resolve() == CORE_FILE.resolve()
    assert entry.hash is not None and entry.hash.mode == "sha256"
    digest = hashlib.sha256(CORE_FILE.read_bytes()).digest()
    assert base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == entry.hash.value, (
        f"{CORE_FILE} differs from the file the wheel installed"
    )
    names = {f.as_posix() for f in files}
    assert "fastasgi/py.typed" in names
    assert "fastasgi/_http/_core.pyi" in names
    assert not [n for n in names if n.endswith((".c", ".pyx", ".pxd", ".o"))], "sources in the wheel"


def test_compiled_llhttp_version_is_the_vendored_one():
    compiled = _core.LLHTTP_VERSION
    assert re.fullmatch(r"\d+\.\d+\.\d+", compiled), compiled
    if not LLHTTP_VERSION_FILE.exists():
        if EXPECT_INSTALLED:
            pytest.fail(f"{LLHTTP_VERSION_FILE} missing: the wheel test must copy csrc/llhttp/VERSION")
        pytest.skip("no csrc/llhttp/VERSION next to tests/")
    m = re.match(r"llhttp (\d+\.\d+\.\d+)\b", LLHTTP_VERSION_FILE.read_text())
    assert m, f"unexpected first line in {LLHTTP_VERSION_FILE}"
    assert compiled == m.group(1)
    header = PROJECT_DIR / "csrc" / "llhttp" / "include" / "llhttp.h"
    if header.exists():  # a checkout: the header agrees with the VERSION note
        text = header.read_text()
        parts = [
            re.search(rf"#define LLHTTP_VERSION_{p} (\d+)", text).group(1)
            for p in ("MAJOR", "MINOR", "PATCH")
        ]
        assert ".".join(parts) == compiled


def test_version_has_one_source():
    assert fastasgi.__version__ == fastasgi._version.__version__
    assert importlib.metadata.version("fastasgi") == fastasgi.__version__, (
        "installed metadata and fastasgi.__version__ disagree: reinstall (pip install -e .)"
    )


def _run_version(argv: list[str], cwd: Path) -> str:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    proc = subprocess.run(
        [*argv, "--version"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, f"{argv} --version exited {proc.returncode}: {proc.stderr}"
    return proc.stdout


def test_python_m_fastasgi_version_matches(tmp_path):
    out = _run_version([sys.executable, "-m", "fastasgi"], tmp_path)
    assert _version_in(out, fastasgi.__version__), out
    assert _version_in(out, importlib.metadata.version("fastasgi")), out


def test_console_script_version_matches(tmp_path):
    script = shutil.which("fastasgi", path=sysconfig.get_path("scripts"))
    if script is None:
        if EXPECT_INSTALLED:
            pytest.fail(f"no fastasgi console script in {sysconfig.get_path('scripts')}")
        pytest.skip("no fastasgi console script next to this interpreter")
    out = _run_version([script], tmp_path)
    assert _version_in(out, fastasgi.__version__), out


def test_version_token_matching():
    # the helper above must not accept a different version that merely contains this one
    assert _version_in("fastasgi 0.1.0 (CPython 3.11.7)", "0.1.0")
    assert _version_in("Running fastasgi 0.1.0.", "0.1.0")
    assert not _version_in("fastasgi 10.1.0", "0.1.0")
    assert not _version_in("fastasgi 0.1.0.dev1", "0.1.0")
    assert not _version_in("fastasgi 0.1.01", "0.1.0")
