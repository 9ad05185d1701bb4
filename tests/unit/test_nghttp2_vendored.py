"""The vendored nghttp2 (csrc/nghttp2): the library linked into the extension is 1.52.0 with
Debian's security patches (their options exist only in the patched source), and its licence and
VERSION note ship beside it."""

from __future__ import annotations

import importlib.metadata
import os
import re
from pathlib import Path

import pytest

from fastasgi._http import _core

UPSTREAM_VERSION = "1.52.0"
DEBIAN_VERSION = "1.52.0-1+deb12u3"
# the Debian patches of csrc/nghttp2/VERSION that change lib/
CVES = ("CVE-2023-44487", "CVE-2024-28182", "CVE-2026-27135")

EXPECT_INSTALLED = os.environ.get("FASTASGI_EXPECT_INSTALLED") == "1"
# The directory that holds tests/: the checkout, or the copy a wheel test runs in (cibuildwheel
# copies csrc/nghttp2/VERSION and COPYING there: test-sources in pyproject.toml).
PROJECT_DIR = Path(__file__).resolve().parents[2]
NGHTTP2_DIR = PROJECT_DIR / "csrc" / "nghttp2"


@pytest.fixture
def notes() -> Path:
    if not (NGHTTP2_DIR / "VERSION").exists():
        pytest.skip("no csrc/nghttp2/VERSION next to tests/")
    return NGHTTP2_DIR


def test_linked_nghttp2_is_the_vendored_version():
    assert _core.nghttp2_version() == UPSTREAM_VERSION


def test_security_options_of_the_debian_patches_are_linked_in():
    # nghttp2_option_set_stream_reset_rate_limit (CVE-2023-44487) and
    # nghttp2_option_set_max_continuations (CVE-2024-28182): not in upstream 1.52.0
    assert _core.nghttp2_has_security_options() is True


def test_copying_is_nghttp2s_mit_licence(notes):
    text = (notes / "COPYING").read_text()
    assert text.startswith("The MIT License")
    assert "Tatsuhiro Tsujikawa" in text


def test_version_note_names_the_debian_source_and_its_patches(notes):
    text = (notes / "VERSION").read_text()
    assert text.splitlines()[0] == f"nghttp2 {UPSTREAM_VERSION}"
    assert f"apt-get source nghttp2={DEBIAN_VERSION}" in text
    for cve in CVES:
        assert cve in text


def test_generated_version_header_agrees_with_the_note(notes):
    header = notes / "includes" / "nghttp2" / "nghttp2ver.h"
    if not header.exists():
        pytest.skip("a wheel test: only the notes are copied, not the sources")
    text = header.read_text()
    assert re.search(r'#define NGHTTP2_VERSION "(.*)"', text).group(1) == UPSTREAM_VERSION
    assert "#define NGHTTP2_VERSION_NUM 0x013400" in text
    assert "@" not in re.sub(r"\* @macro", "", text), "an unsubstituted @VAR@ in nghttp2ver.h"


@pytest.mark.skipif(not EXPECT_INSTALLED, reason="checks an installed wheel; set FASTASGI_EXPECT_INSTALLED=1")
def test_wheel_carries_the_nghttp2_licence():
    dist = importlib.metadata.distribution("fastasgi")
    assert "csrc/nghttp2/COPYING" in (dist.metadata.get_all("License-File") or [])
    names = {f.as_posix() for f in dist.files or []}
    assert any(n.endswith(".dist-info/licenses/csrc/nghttp2/COPYING") for n in names), sorted(names)
