"""uvicorn's own tests, from the pinned uvicorn sdist, against fastasgi through the import shim
(tests/support/uvicorn_suite.py says how, and which tests apply).

Green means: every applicable test passes except those listed in KNOWN_FAILURES with a cause,
and at least RECORDED_PASSED pass. The summary (passed / applicable / total and each known
failure) is printed; run with -s to see it."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from support import uvicorn_suite as suite

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdist() -> Path:
    try:
        return suite.fetch_sdist()
    except suite.SuiteUnavailable as exc:
        # CI must measure; a developer without the network is only told
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"uvicorn's test suite is unavailable: {exc}")
        pytest.skip(f"uvicorn's test suite is unavailable: {exc}")


def test_classification_covers_every_known_failure() -> None:
    # a known failure that no applicable pattern reaches would be dead data
    for pattern in suite.KNOWN_FAILURES:
        nodeid = pattern.replace("[[]", "[").rstrip("*")
        assert suite.classify(nodeid)[0] == suite.APPLICABLE, pattern


def test_protocol_variants_are_deduplicated() -> None:
    # one HTTP and one WebSocket implementation in fastasgi: only the httptools/websockets-sansio
    # variant of a parametrized server test runs; the CLI's own "h11" parameter is not a variant
    base = "tests/protocols/test_websocket.py::test_accept_connection"
    assert suite.classify(f"{base}[websockets-sansio-httptools]")[0] == suite.APPLICABLE
    assert suite.classify(f"{base}[websockets-sansio-h11]")[0] == suite.DUPLICATE
    assert suite.classify(f"{base}[wsproto-httptools]")[0] == suite.DUPLICATE
    assert suite.classify("tests/test_cli.py::test_env_variables[h11]")[0] == suite.APPLICABLE


def test_uvicorn_suite(sdist: Path, tmp_path: Path) -> None:
    result = suite.run_suite(sdist, tmp_path)
    summary = result.summary()
    print("\n" + summary)
    assert result.total > 1000, f"collected only {result.total} of uvicorn's tests\n{summary}"
    applicable = result.applicable
    unexpected = [
        n for n in applicable
        if result.outcomes.get(n) not in ("passed", "skipped") and suite.known_failure(n) is None
    ]
    details = "\n\n".join(f"{n}\n{result.longrepr.get(n, 'not run')}" for n in unexpected)
    assert not unexpected, f"applicable uvicorn tests that fail and are not known failures:\n{details}\n{summary}"
    fixed = [n for n in applicable if result.outcomes.get(n) == "passed" and suite.known_failure(n)]
    if fixed:
        print("known failures that now pass (remove them from KNOWN_FAILURES): " + ", ".join(fixed))
    passed = len(result.passed)
    assert passed >= suite.RECORDED_PASSED, f"{passed} passed, fewer than the recorded {suite.RECORDED_PASSED}"
    # the subprocess's own closing line agrees with the report the plugin wrote
    closing = re.findall(r"^.*?\b(\d+) passed\b.* in [\d.]+s", result.output, re.MULTILINE)
    assert closing and int(closing[-1]) == passed, result.output[-2000:]
