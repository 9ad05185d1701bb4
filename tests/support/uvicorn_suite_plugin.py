"""pytest plugin for the run of uvicorn's suite (``support.uvicorn_suite``): deselects the
tests that are not applicable and writes every test's classification and every applicable
test's outcome to $UVICORN_SUITE_REPORT, which the calling test reads."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from support.uvicorn_suite import APPLICABLE, classify

_classified: dict[str, tuple[str, str]] = {}
_outcomes: dict[str, str] = {}
_longrepr: dict[str, str] = {}
#: modules that did not import: their tests are missing from the count, so the caller fails
_collect_errors: dict[str, str] = {}


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _collect_errors[report.nodeid] = str(report.longrepr)[-3000:]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        _classified[item.nodeid] = classify(item.nodeid)
        (keep if _classified[item.nodeid][0] == APPLICABLE else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # a failure in any phase (setup, call, teardown) fails the test; a skip is a skip only if
    # nothing failed
    if report.failed:
        _outcomes[report.nodeid] = "failed"
        _longrepr[report.nodeid] = str(report.longrepr)[-3000:]
    elif report.skipped and _outcomes.get(report.nodeid) != "failed":
        _outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and report.nodeid not in _outcomes:
        _outcomes[report.nodeid] = "passed"


def pytest_sessionfinish(session: pytest.Session, exitstatus: Any) -> None:
    path = os.environ.get("UVICORN_SUITE_REPORT")
    if path:
        data = {"total": len(_classified), "classified": _classified, "outcomes": _outcomes, "longrepr": _longrepr,
                "collect_errors": _collect_errors}
        with open(path, "w") as f:
            json.dump(data, f)
